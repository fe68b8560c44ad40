//! Daemon configuration: the TOML a DBA writes, parsed into serde structs and
//! checked by a pure [`Config::validate`].
//!
//! Sits at the very start of the data path: it decides which sources run,
//! which sink each writes to, and how often the sink flushes. Every struct
//! rejects unknown keys, and every validation error names the key path
//! (`source[0].slot`) so an operator can find the line to fix. Secrets never
//! live in the file: a password is `${ENV_VAR}` or `password_file`, and
//! [`Secret`] never prints its value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// How often a sink flushes when changes keep arriving slowly: 500 ms keeps
/// commit-to-lake latency p99 under one second while producing at most two
/// files per table per second.
pub const DEFAULT_FLUSH_INTERVAL_MS: u64 = 500;
/// Rows buffered before a flush: 50K narrow rows encode to about 1-2 MB of
/// Parquet, big enough for efficient scans, small enough that the batch being
/// filled and the batch being written fit the 150 MB RSS budget together.
pub const DEFAULT_FLUSH_ROWS: usize = 50_000;
/// Bytes buffered (in-memory estimate) before a flush: 32 MiB, so that with
/// wide rows two batches (one filling, one being written) stay well under the
/// 150 MB RSS budget.
pub const DEFAULT_FLUSH_BYTES: usize = 32 * 1024 * 1024;
/// Memory for buffering streamed (in-progress) transactions before spilling to
/// disk: 16 MiB. Spilling is sequential I/O and cheap; memory is what the
/// 150 MB RSS budget cannot spare when a huge transaction arrives.
pub const DEFAULT_TXN_MEMORY_MB: usize = 16;
/// Rows per snapshot chunk: each snapshot worker holds one decoded chunk in
/// memory and an incremental chunk is held between its two watermarks, so
/// 20K rows (a few MB to tens of MB) keeps the initial copy within its 300 MB
/// budget with one worker per core, keeps watermark windows to well under a
/// second, and is still large enough that per-chunk queries cost nothing.
pub const DEFAULT_SNAPSHOT_CHUNK_ROWS: usize = 20_000;
/// Upper bound on `snapshot_workers`: every worker is one database session
/// holding a long transaction; more than this hurts the source database.
pub const MAX_SNAPSHOT_WORKERS: usize = 32;
/// PostgreSQL's standard port.
pub const DEFAULT_PG_PORT: u16 = 5432;

/// Errors found while reading or validating a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config is not valid TOML or has a wrong key: {0}")]
    Parse(String),
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    pub daemon: DaemonConfig,
    /// Named sinks; sources refer to them by name.
    pub sink: BTreeMap<String, SinkConfig>,
    pub source: Vec<SourceConfig>,
}

/// The file as first parsed: sink and source blocks are kept as spanned
/// tables so each can be decoded by its `kind` with errors that name the
/// block, the key and the line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    daemon: DaemonConfig,
    #[serde(default)]
    sink: BTreeMap<String, toml::Spanned<toml::Table>>,
    #[serde(default)]
    source: Vec<toml::Spanned<toml::Table>>,
}

/// Decodes one `kind`-tagged block into `T`.
fn decode_block<T: serde::de::DeserializeOwned>(
    text: &str,
    key: &str,
    block: &toml::Spanned<toml::Table>,
) -> Result<T, ConfigError> {
    let line = text[..block.span().start.min(text.len())]
        .matches('\n')
        .count()
        + 1;
    let mut table = block.get_ref().clone();
    table.remove("kind");
    toml::Value::Table(table).try_into::<T>().map_err(|e| {
        let message = e.to_string().trim().replace('\n', " ");
        ConfigError::invalid(key, format!("{message} (block at line {line})"))
    })
}

fn block_kind<'a>(
    key: &str,
    block: &'a toml::Spanned<toml::Table>,
    kinds: &[&str],
) -> Result<&'a str, ConfigError> {
    match block.get_ref().get("kind") {
        Some(toml::Value::String(kind)) if kinds.contains(&kind.as_str()) => Ok(kind.as_str()),
        Some(toml::Value::String(kind)) => Err(ConfigError::invalid(
            format!("{key}.kind"),
            format!(
                "unknown kind {kind:?}; expected one of: {}",
                kinds.join(", ")
            ),
        )),
        _ => Err(ConfigError::invalid(
            format!("{key}.kind"),
            format!("missing; expected one of: {}", kinds.join(", ")),
        )),
    }
}

/// The `[daemon]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Local working directory (spill files of huge transactions).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `text` (human) or `json` (one JSON object per line) logs.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Address of the daemon's HTTP port (`/healthz`, `/readyz` and the
    /// read-only schema registry API), e.g. `127.0.0.1:9187` or
    /// `0.0.0.0:9187` in a container. Absent: no HTTP port.
    #[serde(default)]
    pub http_listen: Option<String>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            data_dir: default_data_dir(),
            log_format: LogFormat::default(),
            http_listen: None,
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/tributary")
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A `[sink.NAME]` section, by `kind`.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    /// Parquet deltas + bronze merge manifests on local disk or object storage.
    Lake(LakeSinkConfig),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeSinkConfig {
    /// `file:///abs/path` (or an absolute path), `s3://bucket/prefix`,
    /// `gs://bucket/prefix`, `az://container/prefix`.
    pub url: String,
    #[serde(default = "default_flush_interval_ms")]
    pub flush_interval_ms: u64,
    #[serde(default = "default_flush_rows")]
    pub flush_rows: usize,
    #[serde(default = "default_flush_bytes")]
    pub flush_bytes: usize,
}

fn default_flush_interval_ms() -> u64 {
    DEFAULT_FLUSH_INTERVAL_MS
}
fn default_flush_rows() -> usize {
    DEFAULT_FLUSH_ROWS
}
fn default_flush_bytes() -> usize {
    DEFAULT_FLUSH_BYTES
}

/// A `[[source]]` block, by `kind`.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    Postgres(PostgresSourceConfig),
    Mysql(MysqlSourceConfig),
    Mongo(MongoSourceConfig),
}

impl SourceConfig {
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::Postgres(pg) => &pg.name,
            SourceConfig::Mysql(my) => &my.name,
            SourceConfig::Mongo(mongo) => &mongo.name,
        }
    }

    pub fn sink(&self) -> &str {
        match self {
            SourceConfig::Postgres(pg) => &pg.sink,
            SourceConfig::Mysql(my) => &my.sink,
            SourceConfig::Mongo(mongo) => &mongo.sink,
        }
    }

    /// The schema compatibility mode of one `schema.table`.
    pub fn compatibility_of(&self, qualified: &str) -> Compatibility {
        match self {
            SourceConfig::Postgres(pg) => pg.compatibility_of(qualified),
            SourceConfig::Mysql(my) => my.compatibility_of(qualified),
            SourceConfig::Mongo(mongo) => mongo.compatibility_of(qualified),
        }
    }

    /// What happens on an incompatible change of shape.
    pub fn on_incompatible_schema(&self) -> OnIncompatible {
        match self {
            SourceConfig::Postgres(pg) => pg.on_incompatible_schema,
            SourceConfig::Mysql(my) => my.on_incompatible_schema,
            SourceConfig::Mongo(mongo) => mongo.on_incompatible_schema,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// A PostgreSQL source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSourceConfig {
    /// Unique name; also the top-level folder of this source in the lake.
    pub name: String,
    /// Name of the `[sink.NAME]` this source writes to.
    pub sink: String,
    pub host: String,
    #[serde(default = "default_pg_port")]
    pub port: u16,
    pub database: String,
    pub user: String,
    /// `${ENV_VAR}` only: the password itself never belongs in the file.
    #[serde(default)]
    pub password: Option<String>,
    /// A file holding the password (e.g. a mounted Kubernetes secret).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub sslmode: SslMode,
    /// Root certificate for `verify-ca`/`verify-full`.
    #[serde(default)]
    pub sslrootcert: Option<PathBuf>,
    /// Logical replication slot (pgoutput); created if missing.
    pub slot: String,
    /// Publication; created/extended when `manage_publication` is true.
    pub publication: String,
    #[serde(default = "default_true")]
    pub manage_publication: bool,
    /// Explicit `schema.table` list ...
    #[serde(default)]
    pub tables: Vec<String>,
    /// ... or every table of one schema.
    #[serde(default)]
    pub schema: Option<String>,
    /// Memory for streamed in-progress transactions before spilling (MiB).
    #[serde(default = "default_txn_memory_mb")]
    pub txn_memory_mb: usize,
    /// Whether tables are copied before streaming (see [`SnapshotMode`]).
    #[serde(default)]
    pub snapshot: SnapshotMode,
    /// Parallel sessions of the initial copy (default: CPU cores).
    #[serde(default)]
    pub snapshot_workers: Option<usize>,
    /// Rows per snapshot chunk (the unit of parallelism and of resumption).
    #[serde(default = "default_snapshot_chunk_rows")]
    pub snapshot_chunk_rows: usize,
    /// Per-table override of `snapshot` (`"schema.table" = "never"`).
    #[serde(default)]
    pub table_snapshot: BTreeMap<String, SnapshotMode>,
    /// A table operators INSERT snapshot requests into (id, type, data).
    #[serde(default)]
    pub signal_table: Option<String>,
    /// How a new schema version of a table must relate to the earlier ones
    /// (see [`Compatibility`]); default `backward`.
    #[serde(default)]
    pub schema_compatibility: Compatibility,
    /// Per-table override of `schema_compatibility`.
    #[serde(default)]
    pub table_compatibility: BTreeMap<String, Compatibility>,
    /// What happens when a table changes shape incompatibly (see
    /// [`OnIncompatible`]); default `fail`.
    #[serde(default)]
    pub on_incompatible_schema: OnIncompatible,
}

/// Schema compatibility modes, with Confluent Schema Registry's meaning:
/// BACKWARD — consumers using the new schema can read data written with the
/// previous one; FORWARD — consumers still on the previous schema can read
/// data written with the new one; FULL — both; NONE — no check. The
/// TRANSITIVE forms check against every earlier version, not just the latest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compatibility {
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
    None,
}

impl Compatibility {
    /// The Confluent name (`BACKWARD`, `FULL_TRANSITIVE`, ...).
    pub fn confluent_name(self) -> &'static str {
        match self {
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
            Compatibility::None => "NONE",
        }
    }

    /// The config spelling (`backward`, `full_transitive`, ...).
    pub fn config_name(self) -> String {
        self.confluent_name().to_lowercase()
    }
}

/// What a source does when a table's new shape breaks its compatibility mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnIncompatible {
    /// Stop the source before writing any change of the new shape; the
    /// checkpoint stays before it. The operator reverts the change, or
    /// switches to `new_version` (or a looser mode) and restarts.
    #[default]
    Fail,
    /// Register the new version anyway and continue; the manifest marks the
    /// boundary (`schema_change.compatible = false`).
    NewVersion,
}

/// When a source copies its tables' existing rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotMode {
    /// Copy every table on first start (and tables added later), consistent
    /// with the stream, then stream.
    #[default]
    Initial,
    /// Stream only: rows that existed before the slot are not copied.
    Never,
    /// Copy once, then stop the source (no streaming, no slot left behind).
    InitialOnly,
}

fn default_snapshot_chunk_rows() -> usize {
    DEFAULT_SNAPSHOT_CHUNK_ROWS
}

fn default_pg_port() -> u16 {
    DEFAULT_PG_PORT
}
fn default_true() -> bool {
    true
}
fn default_txn_memory_mb() -> usize {
    DEFAULT_TXN_MEMORY_MB
}

/// A secret value that never appears in `Debug`/`Display` output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl PostgresSourceConfig {
    /// Resolves the password from `${ENV}` or `password_file`. Errors name
    /// the key but never the value.
    pub fn resolve_password(&self, key: &str) -> Result<Option<Secret>, ConfigError> {
        resolve_password(key, self.password.as_deref(), self.password_file.as_deref())
    }

    /// libpq key=value connection string (password included, so never log it;
    /// use [`PostgresSourceConfig::describe`] for messages).
    pub fn conninfo(&self, password: Option<&Secret>) -> String {
        let mut parts = vec![
            format!("host={}", quote_conninfo(&self.host)),
            format!("port={}", self.port),
            format!("dbname={}", quote_conninfo(&self.database)),
            format!("user={}", quote_conninfo(&self.user)),
            format!("sslmode={}", self.sslmode.as_str()),
            "application_name=tributary".to_string(),
        ];
        if let Some(root) = &self.sslrootcert {
            parts.push(format!(
                "sslrootcert={}",
                quote_conninfo(&root.to_string_lossy())
            ));
        }
        if let Some(pw) = password {
            parts.push(format!("password={}", quote_conninfo(pw.expose())));
        }
        parts.join(" ")
    }

    /// Where this source connects, without secrets: `user@host:port/db`.
    pub fn describe(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }

    /// `(schema, table)` pairs from `tables`.
    pub fn table_list(&self) -> Vec<(String, String)> {
        self.tables.iter().filter_map(|t| split_table(t)).collect()
    }

    /// Snapshot workers to run: the configured number, else one per core.
    pub fn snapshot_workers(&self) -> usize {
        self.snapshot_workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .min(MAX_SNAPSHOT_WORKERS)
        })
    }

    /// The snapshot mode of one `schema.table` (its override, else the source's).
    pub fn snapshot_mode_of(&self, qualified: &str) -> SnapshotMode {
        self.table_snapshot
            .iter()
            .find(|(name, _)| qualify(name).as_deref() == Some(qualified))
            .map(|(_, mode)| *mode)
            .unwrap_or(self.snapshot)
    }

    /// Whether `schema.table` is one of this source's tables (listed, or in
    /// its schema).
    pub fn captures(&self, qualified: &str) -> bool {
        let listed = self
            .table_list()
            .iter()
            .any(|(s, t)| format!("{s}.{t}") == qualified);
        let in_schema = self
            .schema
            .as_deref()
            .is_some_and(|schema| qualified.starts_with(&format!("{schema}.")));
        listed || in_schema
    }

    /// The compatibility mode of one `schema.table` (its override, else the
    /// source's).
    pub fn compatibility_of(&self, qualified: &str) -> Compatibility {
        self.table_compatibility
            .iter()
            .find(|(name, _)| qualify(name).as_deref() == Some(qualified))
            .map(|(_, mode)| *mode)
            .unwrap_or(self.schema_compatibility)
    }

    /// The signal table as `(schema, table)`.
    pub fn signal_table(&self) -> Option<(String, String)> {
        self.signal_table.as_deref().and_then(split_table)
    }
}

/// The password of a source from `${ENV}` or a file; errors name the key
/// but never the value.
fn resolve_password(
    key: &str,
    password: Option<&str>,
    password_file: Option<&Path>,
) -> Result<Option<Secret>, ConfigError> {
    if let Some(path) = password_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::invalid(
                format!("{key}.password_file"),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        return Ok(Some(Secret(
            text.trim_end_matches(['\n', '\r']).to_string(),
        )));
    }
    match password {
        None => Ok(None),
        Some(raw) => {
            let var = env_reference(raw).ok_or_else(|| {
                ConfigError::invalid(
                    format!("{key}.password"),
                    "a literal password is not allowed in the config file; write \"${VAR}\" and set VAR in the environment, or use password_file",
                )
            })?;
            let value = std::env::var(var).map_err(|_| {
                ConfigError::invalid(
                    format!("{key}.password"),
                    format!("environment variable {var} is not set"),
                )
            })?;
            Ok(Some(Secret(value)))
        }
    }
}

/// MySQL's standard port.
pub const DEFAULT_MYSQL_PORT: u16 = 3306;
/// How often an idle MySQL/MariaDB server sends a heartbeat: 1 s keeps the
/// checkpoint moving on a quiet server without measurable load.
pub const DEFAULT_HEARTBEAT_MS: u64 = 1000;

/// A MySQL or MariaDB source (`kind = "mysql"`): the binlog in ROW format.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSourceConfig {
    /// Unique name; also the top-level folder of this source in the lake.
    pub name: String,
    pub sink: String,
    pub host: String,
    #[serde(default = "default_mysql_port")]
    pub port: u16,
    pub user: String,
    /// `${ENV_VAR}` only.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The replica id presented to the server: unique among its replicas
    /// and different from its own `server_id`.
    pub server_id: u32,
    /// `database.table` list.
    pub tables: Vec<String>,
    /// `initial` (copy the tables consistently with the binlog position,
    /// then stream) or `never` (stream from the current position).
    #[serde(default)]
    pub snapshot: SnapshotMode,
    /// Rows per snapshot query.
    #[serde(default = "default_snapshot_chunk_rows")]
    pub snapshot_chunk_rows: usize,
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    #[serde(default)]
    pub schema_compatibility: Compatibility,
    #[serde(default)]
    pub table_compatibility: BTreeMap<String, Compatibility>,
    #[serde(default)]
    pub on_incompatible_schema: OnIncompatible,
    /// What the source does with a statement on a captured table that its
    /// DDL parser cannot read.
    #[serde(default)]
    pub on_unparsed_ddl: OnUnparsedDdl,
}

/// What a MySQL source does with a table statement it cannot parse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnparsedDdl {
    /// Stop before any later row of the table; the checkpoint stays before
    /// the statement. The operator checks what it did and restarts with
    /// `reload` (or removes the table).
    #[default]
    Stop,
    /// Re-read the named tables' columns from `information_schema` and go
    /// on (their rows are decoded by that shape, which is right whenever
    /// the statement is the last change of shape in the binlog ahead).
    Reload,
}

fn default_mysql_port() -> u16 {
    DEFAULT_MYSQL_PORT
}
fn default_heartbeat_ms() -> u64 {
    DEFAULT_HEARTBEAT_MS
}

impl MysqlSourceConfig {
    pub fn resolve_password(&self, key: &str) -> Result<Option<Secret>, ConfigError> {
        resolve_password(key, self.password.as_deref(), self.password_file.as_deref())
    }

    /// `user@host:port` for messages.
    pub fn describe(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }

    /// `(database, table)` pairs.
    pub fn table_list(&self) -> Vec<(String, String)> {
        self.tables
            .iter()
            .filter_map(|t| t.split_once('.'))
            .map(|(d, t)| (d.to_string(), t.to_string()))
            .collect()
    }

    pub fn compatibility_of(&self, qualified: &str) -> Compatibility {
        self.table_compatibility
            .get(qualified)
            .copied()
            .unwrap_or(self.schema_compatibility)
    }
}

fn validate_mysql(key: &str, my: &MysqlSourceConfig) -> Result<(), ConfigError> {
    if my.host.trim().is_empty() {
        return Err(ConfigError::invalid(
            format!("{key}.host"),
            "must not be empty",
        ));
    }
    if my.server_id == 0 {
        return Err(ConfigError::invalid(
            format!("{key}.server_id"),
            "must be a non-zero replica id no other replica of the server uses",
        ));
    }
    if my.tables.is_empty() {
        return Err(ConfigError::invalid(
            format!("{key}.tables"),
            "list at least one \"database.table\"",
        ));
    }
    for table in &my.tables {
        let ok = table
            .split_once('.')
            .is_some_and(|(d, t)| !d.is_empty() && !t.is_empty() && !t.contains('.'));
        if !ok {
            return Err(ConfigError::invalid(
                format!("{key}.tables"),
                format!("{table:?} is not a table name; write database.table"),
            ));
        }
    }
    if my.snapshot == SnapshotMode::InitialOnly {
        return Err(ConfigError::invalid(
            format!("{key}.snapshot"),
            "\"initial_only\" is not supported for mysql sources yet; use \"initial\" or \"never\"",
        ));
    }
    if my.snapshot_chunk_rows == 0 || my.heartbeat_ms == 0 {
        return Err(ConfigError::invalid(
            format!("{key}.snapshot_chunk_rows"),
            "snapshot_chunk_rows and heartbeat_ms must be > 0",
        ));
    }
    Ok(())
}

/// Documents per snapshot batch of a MongoDB source: a `find` batch of
/// about 1,000 typical documents is well under the 16 MiB reply limit and
/// amortises the round trip.
pub const DEFAULT_MONGO_SNAPSHOT_BATCH: u32 = 1000;

/// A MongoDB source (`kind = "mongodb"`): a replica set's or sharded
/// cluster's change stream on one database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoSourceConfig {
    /// Unique name; also the top-level folder of this source in the lake.
    pub name: String,
    pub sink: String,
    /// `mongodb://host1,host2/?replicaSet=rs0&tls=true`, without a password
    /// (use `user` + `password`/`password_file`).
    pub uri: String,
    #[serde(default)]
    pub user: Option<String>,
    /// `${ENV_VAR}` only.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The database to watch.
    pub database: String,
    /// Collections to capture; empty: every collection of the database.
    #[serde(default)]
    pub collections: Vec<String>,
    /// `initial` (copy the collections, then stream from the cluster time
    /// taken before the copy) or `never`.
    #[serde(default)]
    pub snapshot: SnapshotMode,
    #[serde(default = "default_mongo_snapshot_batch")]
    pub snapshot_batch: u32,
    /// `_id` ranges of a collection read in parallel by the initial copy.
    #[serde(default = "default_mongo_snapshot_parallelism")]
    pub snapshot_parallelism: usize,
    /// `update_lookup` (default; any version) or `required` (exact pre- and
    /// post-images; MongoDB 6.0+ with changeStreamPreAndPostImages on).
    #[serde(default)]
    pub full_document: MongoFullDocument,
    #[serde(default)]
    pub schema_compatibility: Compatibility,
    #[serde(default)]
    pub table_compatibility: BTreeMap<String, Compatibility>,
    /// Default `new_version`: a schemaless collection's documents decide
    /// its shape, so refusing a shape would stop the source on data.
    #[serde(default = "default_mongo_on_incompatible")]
    pub on_incompatible_schema: OnIncompatible,
}

/// What MongoDB update events carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MongoFullDocument {
    #[default]
    UpdateLookup,
    Required,
}

/// `_id` ranges read in parallel per collection by a MongoDB initial copy:
/// four cursors overlap the server's and the network's latency without
/// taking more than a few of a replica set member's read tickets (128 by
/// default).
pub const DEFAULT_MONGO_SNAPSHOT_PARALLELISM: usize = 4;

fn default_mongo_snapshot_parallelism() -> usize {
    DEFAULT_MONGO_SNAPSHOT_PARALLELISM
}

fn default_mongo_snapshot_batch() -> u32 {
    DEFAULT_MONGO_SNAPSHOT_BATCH
}
fn default_mongo_on_incompatible() -> OnIncompatible {
    OnIncompatible::NewVersion
}

impl MongoSourceConfig {
    pub fn resolve_password(&self, key: &str) -> Result<Option<Secret>, ConfigError> {
        resolve_password(key, self.password.as_deref(), self.password_file.as_deref())
    }

    /// The URI's hosts and the database, for messages (never credentials).
    pub fn describe(&self) -> String {
        let rest = self
            .uri
            .split_once("://")
            .map(|(_, r)| r)
            .unwrap_or(&self.uri);
        let hosts = rest.split(['/', '?']).next().unwrap_or(rest);
        let hosts = hosts.rsplit_once('@').map(|(_, h)| h).unwrap_or(hosts);
        format!("{hosts}/{}", self.database)
    }

    pub fn compatibility_of(&self, qualified: &str) -> Compatibility {
        self.table_compatibility
            .get(qualified)
            .copied()
            .unwrap_or(self.schema_compatibility)
    }
}

fn validate_mongo(key: &str, mongo: &MongoSourceConfig) -> Result<(), ConfigError> {
    let Some((scheme, rest)) = mongo.uri.split_once("://") else {
        return Err(ConfigError::invalid(
            format!("{key}.uri"),
            "write a MongoDB connection string: mongodb://host:27017/?replicaSet=rs0",
        ));
    };
    if scheme != "mongodb" && scheme != "mongodb+srv" {
        return Err(ConfigError::invalid(
            format!("{key}.uri"),
            format!("scheme {scheme:?} is not mongodb:// or mongodb+srv://"),
        ));
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if let Some((credentials, _)) = authority.rsplit_once('@') {
        if credentials.contains(':') {
            return Err(ConfigError::invalid(
                format!("{key}.uri"),
                "must not contain a password; set user = \"…\" and password = \"${MONGO_PASSWORD}\" (or password_file)",
            ));
        }
    }
    if mongo.database.trim().is_empty() || mongo.database.contains(['.', '/', ' ']) {
        return Err(ConfigError::invalid(
            format!("{key}.database"),
            "name one database (no dots, slashes or spaces)",
        ));
    }
    if let Some(bad) = mongo
        .collections
        .iter()
        .find(|c| c.trim().is_empty() || c.starts_with("system."))
    {
        return Err(ConfigError::invalid(
            format!("{key}.collections"),
            format!("{bad:?} cannot be captured (empty, or a system collection)"),
        ));
    }
    if mongo.snapshot == SnapshotMode::InitialOnly {
        return Err(ConfigError::invalid(
            format!("{key}.snapshot"),
            "\"initial_only\" is not supported for mongodb sources yet; use \"initial\" or \"never\"",
        ));
    }
    if mongo.snapshot_parallelism == 0 || mongo.snapshot_parallelism > 64 {
        return Err(ConfigError::invalid(
            format!("{key}.snapshot_parallelism"),
            "must be between 1 and 64",
        ));
    }
    if mongo.snapshot_batch == 0 {
        return Err(ConfigError::invalid(
            format!("{key}.snapshot_batch"),
            "must be > 0",
        ));
    }
    Ok(())
}

/// `name` or `schema.name` → `schema.name` (`public` by default).
pub fn qualify(name: &str) -> Option<String> {
    split_table(name).map(|(s, t)| format!("{s}.{t}"))
}

fn split_table(name: &str) -> Option<(String, String)> {
    match name.split_once('.') {
        Some((s, t)) if !s.is_empty() && !t.is_empty() && !t.contains('.') => {
            Some((s.to_string(), t.to_string()))
        }
        None if !name.is_empty() => Some(("public".to_string(), name.to_string())),
        _ => None,
    }
}

fn quote_conninfo(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `${NAME}` → `NAME`.
fn env_reference(raw: &str) -> Option<&str> {
    let inner = raw.strip_prefix("${")?.strip_suffix('}')?;
    let valid = !inner.is_empty() && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some(inner)
}

fn valid_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml_str(&text)
    }

    /// Parses and validates TOML text.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Parse(e.to_string().trim().to_string()))?;
        let mut sink = BTreeMap::new();
        for (name, block) in &raw.sink {
            let key = format!("sink.{name}");
            // One kind today; later kinds (kafka) add match arms here.
            block_kind(&key, block, &["lake"])?;
            let decoded = SinkConfig::Lake(decode_block(text, &key, block)?);
            sink.insert(name.clone(), decoded);
        }
        let mut source = Vec::new();
        for (i, block) in raw.source.iter().enumerate() {
            let key = format!("source[{i}]");
            let decoded = match block_kind(&key, block, &["postgres", "mysql", "mongodb"])? {
                "mysql" => SourceConfig::Mysql(decode_block(text, &key, block)?),
                "mongodb" => SourceConfig::Mongo(decode_block(text, &key, block)?),
                _ => SourceConfig::Postgres(decode_block(text, &key, block)?),
            };
            source.push(decoded);
        }
        let config = Config {
            daemon: raw.daemon,
            sink,
            source,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks everything that can be checked without touching the network.
    /// Pure: reads nothing but `self` (and the environment for `${VAR}`
    /// presence is checked later, at connect time).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(listen) = &self.daemon.http_listen {
            if listen.parse::<std::net::SocketAddr>().is_err() {
                return Err(ConfigError::invalid(
                    "daemon.http_listen",
                    format!(
                        "{listen:?} is not an address; write host:port, e.g. \"127.0.0.1:9187\""
                    ),
                ));
            }
        }
        if self.source.is_empty() {
            return Err(ConfigError::invalid(
                "source",
                "no [[source]] block; add one with kind = \"postgres\"",
            ));
        }
        for (name, sink) in &self.sink {
            let key = format!("sink.{name}");
            match sink {
                SinkConfig::Lake(lake) => {
                    if lake.url.trim().is_empty() {
                        return Err(ConfigError::invalid(
                            format!("{key}.url"),
                            "must not be empty",
                        ));
                    }
                    let url = lake.url.as_str();
                    let known = url.starts_with('/')
                        || [
                            "file://", "s3://", "s3a://", "gs://", "az://", "abfs://", "abfss://",
                            "azure://",
                        ]
                        .iter()
                        .any(|p| url.starts_with(p));
                    if !known {
                        return Err(ConfigError::invalid(
                            format!("{key}.url"),
                            format!(
                                "unsupported URL {url:?}; use an absolute path, file://, s3://, gs:// or az://"
                            ),
                        ));
                    }
                    if lake.flush_interval_ms == 0 {
                        return Err(ConfigError::invalid(
                            format!("{key}.flush_interval_ms"),
                            "must be > 0",
                        ));
                    }
                    if lake.flush_rows == 0 {
                        return Err(ConfigError::invalid(
                            format!("{key}.flush_rows"),
                            "must be > 0",
                        ));
                    }
                    if lake.flush_bytes < 1024 * 1024 {
                        return Err(ConfigError::invalid(
                            format!("{key}.flush_bytes"),
                            "must be at least 1048576 (1 MiB)",
                        ));
                    }
                }
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, source) in self.source.iter().enumerate() {
            let key = format!("source[{i}]");
            if !valid_identifier(source.name()) {
                return Err(ConfigError::invalid(
                    format!("{key}.name"),
                    "must be 1-63 characters of a-z, 0-9 and _",
                ));
            }
            if !names.insert(source.name().to_string()) {
                return Err(ConfigError::invalid(
                    format!("{key}.name"),
                    format!("duplicate source name {:?}", source.name()),
                ));
            }
            if !self.sink.contains_key(source.sink()) {
                let known: Vec<_> = self.sink.keys().cloned().collect();
                return Err(ConfigError::invalid(
                    format!("{key}.sink"),
                    format!(
                        "no sink named {:?}; defined sinks: [{}]",
                        source.sink(),
                        known.join(", ")
                    ),
                ));
            }
            match source {
                SourceConfig::Postgres(pg) => validate_postgres(&key, pg)?,
                SourceConfig::Mysql(my) => validate_mysql(&key, my)?,
                SourceConfig::Mongo(mongo) => validate_mongo(&key, mongo)?,
            }
        }
        Ok(())
    }
}

fn validate_postgres(key: &str, pg: &PostgresSourceConfig) -> Result<(), ConfigError> {
    if pg.host.trim().is_empty() {
        return Err(ConfigError::invalid(
            format!("{key}.host"),
            "must not be empty",
        ));
    }
    if pg.port == 0 {
        return Err(ConfigError::invalid(
            format!("{key}.port"),
            "must be 1-65535",
        ));
    }
    if pg.database.is_empty() {
        return Err(ConfigError::invalid(
            format!("{key}.database"),
            "must not be empty",
        ));
    }
    if pg.user.is_empty() {
        return Err(ConfigError::invalid(
            format!("{key}.user"),
            "must not be empty",
        ));
    }
    if !valid_identifier(&pg.slot) {
        return Err(ConfigError::invalid(
            format!("{key}.slot"),
            "a replication slot name is 1-63 characters of a-z, 0-9 and _",
        ));
    }
    if pg.publication.is_empty() {
        return Err(ConfigError::invalid(
            format!("{key}.publication"),
            "must not be empty",
        ));
    }
    if pg.password.is_some() && pg.password_file.is_some() {
        return Err(ConfigError::invalid(
            format!("{key}.password"),
            "set either password (\"${VAR}\") or password_file, not both",
        ));
    }
    if let Some(raw) = &pg.password {
        if env_reference(raw).is_none() {
            return Err(ConfigError::invalid(
                format!("{key}.password"),
                "a literal password is not allowed in the config file; write \"${VAR}\" and set VAR in the environment, or use password_file",
            ));
        }
    }
    match (&pg.schema, pg.tables.is_empty()) {
        (Some(_), false) => {
            return Err(ConfigError::invalid(
                format!("{key}.tables"),
                "set either tables or schema, not both",
            ));
        }
        (None, true) => {
            return Err(ConfigError::invalid(
                format!("{key}.tables"),
                "list the tables to capture (tables = [\"public.orders\"]) or set schema = \"public\"",
            ));
        }
        _ => {}
    }
    for (j, table) in pg.tables.iter().enumerate() {
        if split_table(table).is_none() {
            return Err(ConfigError::invalid(
                format!("{key}.tables[{j}]"),
                format!("{table:?} is not a table name; write schema.table"),
            ));
        }
    }
    if pg.txn_memory_mb == 0 {
        return Err(ConfigError::invalid(
            format!("{key}.txn_memory_mb"),
            "must be > 0",
        ));
    }
    if let Some(workers) = pg.snapshot_workers {
        if workers == 0 || workers > MAX_SNAPSHOT_WORKERS {
            return Err(ConfigError::invalid(
                format!("{key}.snapshot_workers"),
                format!("must be 1-{MAX_SNAPSHOT_WORKERS} (each worker is one database session)"),
            ));
        }
    }
    if pg.snapshot_chunk_rows == 0 {
        return Err(ConfigError::invalid(
            format!("{key}.snapshot_chunk_rows"),
            "must be > 0",
        ));
    }
    for (table, mode) in &pg.table_snapshot {
        let Some(qualified) = qualify(table) else {
            return Err(ConfigError::invalid(
                format!("{key}.table_snapshot.{table}"),
                "is not a table name; write schema.table",
            ));
        };
        if !pg.captures(&qualified) {
            return Err(ConfigError::invalid(
                format!("{key}.table_snapshot.{table}"),
                "names a table this source does not capture; add it to `tables` or remove the override",
            ));
        }
        if *mode == SnapshotMode::InitialOnly && pg.snapshot != SnapshotMode::InitialOnly {
            return Err(ConfigError::invalid(
                format!("{key}.table_snapshot.{table}"),
                "\"initial_only\" applies to a whole source (it stops the source after the copy); use it as `snapshot`",
            ));
        }
    }
    for table in pg.table_compatibility.keys() {
        let captured = qualify(table).is_some_and(|q| pg.captures(&q));
        if !captured {
            return Err(ConfigError::invalid(
                format!("{key}.table_compatibility.{table}"),
                "names a table this source does not capture; add it to `tables` or remove the override",
            ));
        }
    }
    if let Some(signal) = &pg.signal_table {
        if pg.signal_table().is_none() {
            return Err(ConfigError::invalid(
                format!("{key}.signal_table"),
                format!("{signal:?} is not a table name; write schema.table"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[daemon]
data_dir = "/tmp/trib"

[sink.lake]
kind = "lake"
url = "/tmp/lake"

[[source]]
name = "app"
kind = "postgres"
sink = "lake"
host = "127.0.0.1"
database = "app"
user = "cdc"
password = "${PGPASSWORD_TEST_UNSET}"
slot = "tributary_app"
publication = "tributary_app"
tables = ["public.orders"]
"#;

    fn err(text: &str) -> String {
        Config::from_toml_str(text).unwrap_err().to_string()
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../config/tributary.example.toml");
        let config = Config::from_toml_str(text).unwrap();
        config.validate().unwrap();
        assert_eq!(config.daemon.http_listen.as_deref(), Some("127.0.0.1:9187"));
    }

    #[test]
    fn mysql_sources_parse_and_validate() {
        let text = GOOD.replace(
            "[[source]]",
            "[[source]]\nname = \"shop\"\nkind = \"mysql\"\nsink = \"lake\"\nhost = \"db\"\nuser = \"cdc\"\nserver_id = 7\ntables = [\"shop.orders\"]\n\n[[source]]",
        );
        let config = Config::from_toml_str(&text).unwrap();
        let SourceConfig::Mysql(my) = &config.source[0] else {
            panic!("a mysql source")
        };
        assert_eq!(
            (my.port, my.heartbeat_ms),
            (DEFAULT_MYSQL_PORT, DEFAULT_HEARTBEAT_MS)
        );
        assert_eq!(
            my.table_list(),
            vec![("shop".to_string(), "orders".to_string())]
        );
        let e = err(&text.replace("server_id = 7", "server_id = 0"));
        assert!(e.contains("source[0].server_id"), "{e}");
        let e = err(&text.replace("[\"shop.orders\"]", "[\"orders\"]"));
        assert!(
            e.contains("source[0].tables") && e.contains("database.table"),
            "{e}"
        );
        let e = err(&text.replace("server_id = 7", "server_id = 7\nslot = \"x\""));
        assert!(e.contains("slot"), "{e}");
    }

    #[test]
    fn mongodb_sources_parse_and_validate() {
        let text = GOOD.replace(
            "[[source]]",
            "[[source]]\nname = \"cat\"\nkind = \"mongodb\"\nsink = \"lake\"\nuri = \"mongodb://m1,m2/?replicaSet=rs0\"\nuser = \"t\"\npassword = \"${MONGO_PW}\"\ndatabase = \"catalog\"\n\n[[source]]",
        );
        let config = Config::from_toml_str(&text).unwrap();
        config.validate().unwrap();
        let SourceConfig::Mongo(mongo) = &config.source[0] else {
            panic!("a mongodb source")
        };
        assert_eq!(
            (mongo.snapshot_batch, mongo.snapshot_parallelism),
            (
                DEFAULT_MONGO_SNAPSHOT_BATCH,
                DEFAULT_MONGO_SNAPSHOT_PARALLELISM
            )
        );
        assert_eq!(mongo.on_incompatible_schema, OnIncompatible::NewVersion);
        assert_eq!(mongo.describe(), "m1,m2/catalog");
        let e = err(&text.replace("mongodb://m1", "mongodb://t:secret@m1"));
        assert!(
            e.contains("source[0].uri") && e.contains("must not contain a password"),
            "{e}"
        );
        let e = err(&text.replace("mongodb://m1", "http://m1"));
        assert!(e.contains("source[0].uri"), "{e}");
        let e = err(&text.replace("database = \"catalog\"", "database = \"a.b\""));
        assert!(e.contains("source[0].database"), "{e}");
        let e = err(&text.replace(
            "database = \"catalog\"",
            "database = \"catalog\"\nsnapshot_parallelism = 0",
        ));
        assert!(e.contains("source[0].snapshot_parallelism"), "{e}");
        let e = err(&text.replace(
            "database = \"catalog\"",
            "database = \"catalog\"\nserver_id = 3",
        ));
        assert!(e.contains("server_id"), "{e}");
    }

    #[test]
    fn schema_policy_keys() {
        let text = format!(
            "{GOOD}schema_compatibility = \"full_transitive\"\non_incompatible_schema = \"new_version\"\ntable_compatibility = {{ \"orders\" = \"none\" }}\n"
        );
        let config = Config::from_toml_str(&text).unwrap();
        config.validate().unwrap();
        let source = &config.source[0];
        assert_eq!(
            source.compatibility_of("public.orders"),
            Compatibility::None
        );
        assert_eq!(
            source.compatibility_of("public.other"),
            Compatibility::FullTransitive
        );
        assert_eq!(source.on_incompatible_schema(), OnIncompatible::NewVersion);
        let text = format!("{GOOD}table_compatibility = {{ \"public.nope\" = \"none\" }}\n");
        let e = err(&text);
        assert!(
            e.contains("source[0].table_compatibility.public.nope"),
            "{e}"
        );
        let text = format!("{GOOD}schema_compatibility = \"sideways\"\n");
        let e = err(&text);
        assert!(e.contains("sideways"), "{e}");
        let text = GOOD.replace(
            "data_dir = \"/tmp/trib\"",
            "data_dir = \"/tmp/trib\"\nhttp_listen = \"localhost\"",
        );
        let e = err(&text);
        assert!(e.contains("daemon.http_listen"), "{e}");
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let config = Config::from_toml_str(GOOD).unwrap();
        let SinkConfig::Lake(lake) = &config.sink["lake"];
        assert_eq!(lake.flush_interval_ms, DEFAULT_FLUSH_INTERVAL_MS);
        let SourceConfig::Postgres(pg) = &config.source[0] else {
            panic!("a postgres source")
        };
        assert_eq!(pg.port, 5432);
        assert!(pg.manage_publication);
    }

    #[test]
    fn unknown_key_is_named_with_line() {
        let text = GOOD.replace("slot = ", "slott = \"x\"\nslot = ");
        let message = err(&text);
        assert!(message.contains("unknown field `slott`"), "{message}");
        assert!(
            message.contains("source[0]") && message.contains("line 9"),
            "{message}"
        );
    }

    #[test]
    fn literal_password_is_refused_without_echoing_it() {
        let text = GOOD.replace("${PGPASSWORD_TEST_UNSET}", "hunter2");
        let message = err(&text);
        assert!(message.contains("source[0].password"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn missing_sink_is_named() {
        let text = GOOD.replace("sink = \"lake\"", "sink = \"nope\"");
        let message = err(&text);
        assert!(
            message.contains("source[0].sink") && message.contains("nope"),
            "{message}"
        );
    }

    #[test]
    fn bad_slot_and_table_are_named() {
        assert!(
            err(&GOOD.replace("slot = \"tributary_app\"", "slot = \"Bad-Slot\""))
                .contains("source[0].slot")
        );
        assert!(
            err(&GOOD.replace("[\"public.orders\"]", "[\"a.b.c\"]"))
                .contains("source[0].tables[0]")
        );
        assert!(
            err(&GOOD.replace("tables = [\"public.orders\"]", "")).contains("source[0].tables")
        );
    }

    #[test]
    fn unset_env_password_names_variable_not_value() {
        let config = Config::from_toml_str(GOOD).unwrap();
        let SourceConfig::Postgres(pg) = &config.source[0] else {
            panic!("a postgres source")
        };
        let message = pg.resolve_password("source[0]").unwrap_err().to_string();
        assert!(message.contains("PGPASSWORD_TEST_UNSET"), "{message}");
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret("topsecret".into());
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
    }
}
