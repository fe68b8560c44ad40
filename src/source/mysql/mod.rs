//! The MySQL/MariaDB source: the binlog (through `tributary-mysql`) mapped
//! into envelopes, after an optional consistent initial copy.
//!
//! Start-up ([`MysqlSource::open`]): connect, run the preflight (binlog on,
//! ROW format, privileges, unique `server_id`; every problem stops the
//! source with its fix), read the captured tables from `information_schema`,
//! then either copy them ([`initial_copy`], when there is no checkpoint yet
//! or an earlier copy did not finish) or resume the binlog at the
//! checkpoint. Streaming: transactions become envelopes positioned by the
//! binlog offset of their first event; DDL on a captured table reloads its
//! schema (a new shape, registered like any other), `TRUNCATE` becomes a
//! `t` change; a statement that changes a captured table in a way the
//! source cannot follow stops it.

pub mod initial_copy;
pub mod row_value;
pub mod table_catalog;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tributary_mysql::mysql_async::{self, Conn, Opts, OptsBuilder};
use tributary_mysql::{
    BinlogFile, DdlEvent, MysqlEvent, MysqlReplication, MysqlReplicationConfig, MysqlResume,
    RowsKind, TableName,
};

use tributary_mysql::mysql_async::binlog::events::{OptionalMetadataField, TableMapEvent};

use crate::checkpoint::Checkpoint;
use crate::config::{MysqlSourceConfig, SnapshotMode};
use crate::envelope::{Envelope, Op, Row, SourceInfo};
use crate::position::{Position, ResumePoint};
use crate::registry::SchemaRegistry;
use crate::schema::{TableSchema, subject_name};
use crate::snapshot::{SnapshotKind, SnapshotState};
use crate::source::{Source, SourceError, SourceEvent};
use initial_copy::InitialCopy;
use table_catalog::MysqlTable;

impl From<tributary_mysql::MysqlError> for SourceError {
    fn from(error: tributary_mysql::MysqlError) -> SourceError {
        if error.is_transient() {
            SourceError::Transient {
                message: error.to_string(),
            }
        } else {
            SourceError::Definite {
                message: error.to_string(),
            }
        }
    }
}

/// Connection options of a source (the password resolved from the
/// environment or its file; never logged).
pub fn connect_opts(config: &MysqlSourceConfig) -> Result<Opts, SourceError> {
    let password = config
        .resolve_password("source")
        .map_err(|e| SourceError::definite(e.to_string()))?;
    Ok(OptsBuilder::default()
        .ip_or_hostname(config.host.clone())
        .tcp_port(config.port)
        .user(Some(config.user.clone()))
        .pass(password.map(|p| p.expose().to_string()))
        .init(vec!["SET time_zone = '+00:00'".to_string()])
        .into())
}

/// Opens a session.
pub async fn connect(config: &MysqlSourceConfig) -> Result<Conn, SourceError> {
    let opts = connect_opts(config)?;
    Conn::new(opts).await.map_err(|e| {
        SourceError::from(tributary_mysql::MysqlError::from_driver(
            e,
            &format!("connecting to {}", config.describe()),
            "-",
        ))
    })
}

/// The transaction being mapped.
#[derive(Debug)]
struct OpenTxn {
    file_seq: u64,
    txn_pos: u64,
    ordinal: u64,
    commit_ts_micros: i64,
}

#[derive(Debug)]
enum Phase {
    Copying(Box<InitialCopy>),
    Streaming(Box<MysqlReplication>),
}

/// A running MySQL/MariaDB source.
#[derive(Debug)]
pub struct MysqlSource {
    config: MysqlSourceConfig,
    name: Arc<str>,
    database: Arc<str>,
    catalog: Conn,
    tables: HashMap<(String, String), MysqlTable>,
    phase: Phase,
    /// Where streaming starts (after a copy: the copy's position).
    start: MysqlResume,
    pending: VecDeque<SourceEvent>,
    /// An event taken from the binlog whose handling awaits (a DDL reload);
    /// kept until done so a cancelled `next` repeats it.
    held: Option<MysqlEvent>,
    txn: Option<OpenTxn>,
    state: SnapshotState,
    /// Earlier shapes of the captured tables, for binlog rows written before
    /// a DDL that the catalog has already moved past (a replay after a
    /// restart): looked up in the registry by the table map's column names.
    registry: SchemaRegistry,
    historic: HashMap<(String, String, Vec<String>), MysqlTable>,
}

impl MysqlSource {
    pub async fn open(
        config: &MysqlSourceConfig,
        checkpoint: Option<&Checkpoint>,
        registry: &SchemaRegistry,
    ) -> Result<MysqlSource, SourceError> {
        tracing::info!(source = %config.name, server = %config.describe(), "connecting");
        let mut catalog = connect(config).await?;
        let report = tributary_mysql::preflight(&mut catalog, config.server_id).await?;
        for check in &report.checks {
            if let Some(warning) = &check.warning {
                tracing::warn!(source = %config.name, check = check.name, "{warning}");
            }
        }
        // Our own previous connection (a restart right after a stop or a
        // crash) can still be registered under this server_id until the
        // server notices it is gone: retry that, with backoff, rather than
        // stop; every retry logs it.
        let only_id_taken = report.checks.iter().all(|c| {
            c.problem.is_none()
                || (c.name == "server_id"
                    && c.problem
                        .as_deref()
                        .is_some_and(|p| p.contains("another replica")))
        });
        if !report.ok() && only_id_taken {
            return Err(SourceError::Transient {
                message: format!(
                    "{}: {} (a previous run of this source may still be registered; if this repeats, another replica uses the id)",
                    config.describe(),
                    report.problems().join("; ")
                ),
            });
        }
        if !report.ok() {
            return Err(SourceError::definite(format!(
                "{} ({}) cannot be captured yet: {}",
                config.describe(),
                report.version,
                report.problems().join("; ")
            )));
        }
        let mut tables = HashMap::new();
        for (database, table) in config.table_list() {
            let loaded = table_catalog::load(&mut catalog, &database, &table)
                .await?
                .ok_or_else(|| {
                    SourceError::definite(format!(
                        "table {database}.{table} does not exist on {}; create it or remove it from `tables`",
                        config.describe()
                    ))
                })?;
            tables.insert((database, table), loaded);
        }
        let captured: Vec<String> = {
            let mut names: Vec<String> = tables.keys().map(|(d, t)| format!("{d}.{t}")).collect();
            names.sort();
            names
        };
        let mut state = checkpoint
            .and_then(|c| c.snapshot.clone())
            .unwrap_or_default();
        let unfinished = state
            .pending
            .iter()
            .any(|p| p.kind == SnapshotKind::Initial);
        let copy = config.snapshot == SnapshotMode::Initial && (checkpoint.is_none() || unfinished);
        let resume = checkpoint.and_then(|c| match &c.resume {
            Some(ResumePoint::Mysql(r)) => Some(r.clone()),
            _ => None,
        });
        let (phase, start) = if copy {
            state = SnapshotState::default();
            for table in &captured {
                state.enqueue(table, SnapshotKind::Initial);
            }
            state.tables = captured.clone();
            let copy = InitialCopy::start(config, &captured).await?;
            let start = copy.position().clone();
            tracing::info!(source = %config.name, position = %start, tables = captured.len(), "initial snapshot consistent with the binlog position");
            (Phase::Copying(Box::new(copy)), start)
        } else {
            let start = match resume {
                Some(r) => r,
                None => {
                    tributary_mysql::reader::current_position(&mut catalog, report.flavor).await?
                }
            };
            state.tables = captured.clone();
            let replication = MysqlReplication::start(MysqlReplicationConfig {
                opts: connect_opts(config)?,
                server_id: config.server_id,
                flavor: report.flavor,
                start: Some(start.clone()),
                heartbeat: Duration::from_millis(config.heartbeat_ms),
            })
            .await?;
            (Phase::Streaming(Box::new(replication)), start)
        };
        let mut source = MysqlSource {
            config: config.clone(),
            name: config.name.as_str().into(),
            database: config.host.as_str().into(),
            catalog,
            tables,
            phase,
            start,
            pending: VecDeque::new(),
            held: None,
            txn: None,
            state,
            registry: registry.clone(),
            historic: HashMap::new(),
        };
        source
            .pending
            .push_back(SourceEvent::Progress(source.state.clone()));
        Ok(source)
    }

    /// Where the source starts (the checkpoint's resume point before the
    /// first commit).
    pub fn start_point(&self) -> ResumePoint {
        ResumePoint::Mysql(self.start.clone())
    }

    async fn fill(&mut self) -> Result<(), SourceError> {
        while self.pending.is_empty() {
            match &mut self.phase {
                Phase::Copying(copy) => {
                    if let Some(events) = copy
                        .next_chunk(&self.tables, &self.name, &self.database)
                        .await?
                    {
                        self.pending.extend(events);
                        continue;
                    }
                    // The copy is complete: its rows end with a commit at
                    // the copy's position, then the binlog continues there.
                    for table in self.state.tables.clone() {
                        self.state.finish(&table);
                    }
                    self.pending.push_back(SourceEvent::Commit {
                        resume: ResumePoint::Mysql(self.start.clone()),
                    });
                    self.pending
                        .push_back(SourceEvent::Progress(self.state.clone()));
                    let flavor = copy.flavor();
                    let replication = MysqlReplication::start(MysqlReplicationConfig {
                        opts: connect_opts(&self.config)?,
                        server_id: self.config.server_id,
                        flavor,
                        start: Some(self.start.clone()),
                        heartbeat: Duration::from_millis(self.config.heartbeat_ms),
                    })
                    .await?;
                    tracing::info!(source = %self.name, "initial snapshot done; streaming the binlog");
                    self.phase = Phase::Streaming(Box::new(replication));
                }
                Phase::Streaming(replication) => {
                    let event = match self.held.take() {
                        Some(event) => event,
                        None => replication.next().await?,
                    };
                    self.held = Some(event);
                    self.handle_held().await?;
                }
            }
        }
        Ok(())
    }

    /// Maps the held binlog event; it is released only when done.
    async fn handle_held(&mut self) -> Result<(), SourceError> {
        let Some(event) = self.held.as_ref() else {
            return Ok(());
        };
        if let MysqlEvent::Query { database, sql } = event {
            let (database, sql) = (database.clone(), sql.clone());
            self.on_statement(&database, &sql).await?;
            self.held = None;
            return Ok(());
        }
        let event = self.held.take().expect("held above");
        match event {
            MysqlEvent::Begin { at, timestamp, .. } => {
                self.txn = Some(OpenTxn {
                    file_seq: file_seq(&at)?,
                    txn_pos: at.pos,
                    ordinal: 0,
                    commit_ts_micros: i64::from(timestamp) * 1_000_000,
                });
            }
            MysqlEvent::Rows {
                kind,
                table,
                rows,
                at,
            } => {
                let key = (
                    table.database_name().to_string(),
                    table.table_name().to_string(),
                );
                let Some(current) = self.tables.get(&key).cloned() else {
                    return Ok(());
                };
                let captured = self.shape_of_rows(&key, current, &table, &at)?;
                for (before, after) in rows {
                    let before = self.row(&captured, before, &at)?;
                    let after = self.row(&captured, after, &at)?;
                    match kind {
                        RowsKind::Insert => {
                            self.push(&captured, Op::Create, None, after, at.pos)?
                        }
                        RowsKind::Delete => {
                            self.push(&captured, Op::Delete, before, None, at.pos)?
                        }
                        RowsKind::Update => {
                            let key_of = |row: &Option<Row>| {
                                row.as_ref().map(|r| {
                                    captured
                                        .schema
                                        .key
                                        .iter()
                                        .map(|&i| r[i].clone())
                                        .collect::<Vec<_>>()
                                })
                            };
                            if !captured.schema.key.is_empty() && key_of(&before) != key_of(&after)
                            {
                                // A key change: the old key goes away.
                                self.push(&captured, Op::Delete, before, None, at.pos)?;
                                self.push(&captured, Op::Create, None, after, at.pos)?;
                            } else {
                                self.push(&captured, Op::Update, before, after, at.pos)?;
                            }
                        }
                    }
                }
            }
            MysqlEvent::Query { .. } => unreachable!("handled above"),
            MysqlEvent::Commit { resume, .. } => {
                self.txn = None;
                self.pending.push_back(SourceEvent::Commit {
                    resume: ResumePoint::Mysql(resume),
                });
            }
            MysqlEvent::Heartbeat { resume } => {
                if self.txn.is_none() {
                    self.pending.push_back(SourceEvent::Idle {
                        resume: ResumePoint::Mysql(resume),
                    });
                }
            }
        }
        Ok(())
    }

    /// The shape the rows of `table_map` were written with: the table's
    /// current shape when the table map's column names (binlog_row_metadata
    /// = FULL) match it, else the registered version that has exactly those
    /// columns.
    fn shape_of_rows(
        &mut self,
        key: &(String, String),
        current: MysqlTable,
        table_map: &TableMapEvent<'static>,
        at: &BinlogFile,
    ) -> Result<MysqlTable, SourceError> {
        let Some(names) = table_map_names(table_map) else {
            return Ok(current);
        };
        let matches = |t: &TableSchema| {
            t.columns.len() == names.len()
                && t.columns.iter().zip(&names).all(|(c, n)| c.name == *n)
        };
        if matches(&current.schema) {
            return Ok(current);
        }
        let cache_key = (key.0.clone(), key.1.clone(), names.clone());
        if let Some(found) = self.historic.get(&cache_key) {
            return Ok(found.clone());
        }
        let subject = subject_name(&self.config.name, &format!("{}.{}", key.0, key.1));
        let versions = self.registry.versions(&subject).unwrap_or_default();
        let found = versions
            .iter()
            .rev()
            .filter_map(|&v| self.registry.version(&subject, v))
            .find(|v| matches(&v.table))
            .ok_or_else(|| {
                SourceError::definite(format!(
                    "binlog rows of {}.{} at {at} have columns {names:?}, which neither the table now nor any registered version has; the source cannot decode them. Copy the table again (remove the source's checkpoint and lake folder, restart)",
                    key.0, key.1
                ))
            })?;
        let decode = found
            .table
            .columns
            .iter()
            .map(|c| {
                let data_type = c.source_type.split(['(', ' ']).next().unwrap_or_default();
                table_catalog::map_type(data_type, &c.source_type).1
            })
            .collect();
        tracing::info!(source = %self.name, table = %found.table.qualified_name(), version = found.version, "decoding binlog rows written before a later change of shape with their registered version");
        let table = MysqlTable {
            schema: Arc::new(found.table),
            decode,
        };
        self.historic.insert(cache_key, table.clone());
        Ok(table)
    }

    /// Every row of `table` as it is now, in primary-key order.
    ///
    /// Read after the DDL that made it necessary and emitted at that DDL's
    /// position: changes between the DDL and the read are then replayed on
    /// top from the binlog, and since row events carry full images
    /// (`binlog_row_image = FULL`), the result converges to the source.
    async fn read_table(&mut self, table: &MysqlTable) -> Result<Vec<Row>, SourceError> {
        use tributary_mysql::mysql_async::prelude::Queryable;
        let schema = &table.schema;
        let ident = |n: &str| format!("`{}`", n.replace('`', "``"));
        let columns: Vec<String> = schema.columns.iter().map(|c| ident(&c.name)).collect();
        let order: Vec<String> = schema
            .key
            .iter()
            .map(|&i| ident(&schema.columns[i].name))
            .collect();
        let mut sql = format!(
            "SELECT {} FROM {}.{}",
            columns.join(", "),
            ident(&schema.namespace),
            ident(&schema.name)
        );
        if !order.is_empty() {
            sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
        }
        let rows: Vec<mysql_async::Row> = self.catalog.exec(sql, ()).await.map_err(|e| {
            SourceError::from(tributary_mysql::MysqlError::from_driver(
                e,
                &format!("copying {} again", schema.qualified_name()),
                "-",
            ))
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut image = Vec::with_capacity(schema.columns.len());
            for ((value, column), decode) in row
                .unwrap()
                .into_iter()
                .zip(&schema.columns)
                .zip(&table.decode)
            {
                image.push(row_value::to_value(column, decode, value).map_err(|e| {
                    SourceError::definite(format!(
                        "{} (copy after DDL): {e}",
                        schema.qualified_name()
                    ))
                })?);
            }
            out.push(image);
        }
        Ok(out)
    }

    /// A row image in schema order.
    fn row(
        &self,
        table: &MysqlTable,
        image: Option<Vec<mysql_async::binlog::value::BinlogValue<'static>>>,
        at: &BinlogFile,
    ) -> Result<Option<Row>, SourceError> {
        let Some(values) = image else {
            return Ok(None);
        };
        let schema = &table.schema;
        if values.len() != schema.columns.len() {
            return Err(SourceError::definite(format!(
                "binlog rows of {} at {at} have {} columns but the table now has {}: the table changed shape after these rows were written and before this start; the source cannot decode them by the current schema. Re-copy the table: `tributary checkpoint` to a position after the change is not possible, so remove the source's checkpoint and lake folder and start again",
                schema.qualified_name(),
                values.len(),
                schema.columns.len()
            )));
        }
        let mut row = Vec::with_capacity(values.len());
        for ((value, column), decode) in values.into_iter().zip(&schema.columns).zip(&table.decode)
        {
            let value = mysql_async::Value::try_from(value).map_err(|e| {
                SourceError::definite(format!(
                    "{}.{} at {at}: {e}",
                    schema.qualified_name(),
                    column.name
                ))
            })?;
            let value = row_value::from_binlog(decode, value);
            row.push(row_value::to_value(column, decode, value).map_err(|e| {
                SourceError::definite(format!("{} at {at}: {e}", schema.qualified_name()))
            })?);
        }
        Ok(Some(row))
    }

    fn push(
        &mut self,
        table: &MysqlTable,
        op: Op,
        before: Option<Row>,
        after: Option<Row>,
        change_pos: u64,
    ) -> Result<(), SourceError> {
        let txn = self
            .txn
            .as_mut()
            .ok_or_else(|| SourceError::definite("binlog rows outside a transaction"))?;
        txn.ordinal += 1;
        self.pending.push_back(SourceEvent::Change(Envelope {
            op,
            table: table.schema.clone(),
            after,
            before,
            unchanged: Vec::new(),
            position: Position::Mysql {
                file_seq: txn.file_seq,
                txn_pos: txn.txn_pos,
                ordinal: txn.ordinal,
            },
            source: SourceInfo {
                source: self.name.clone(),
                database: self.database.clone(),
                xid: None,
                change_lsn: Some(change_pos),
                commit_ts_micros: txn.commit_ts_micros,
            },
        }));
        Ok(())
    }

    /// A statement in the binlog (classified by `tributary_mysql::ddl`):
    /// DDL on a captured table reloads its schema; TRUNCATE empties it in
    /// the lake; a table created or renamed into a captured name starts
    /// from what it holds; a DROP leaves the lake as it was; a statement on
    /// a captured table that cannot be understood stops the source.
    async fn on_statement(&mut self, default_db: &str, sql: &str) -> Result<(), SourceError> {
        let ddl = tributary_mysql::ddl::classify(default_db, sql);
        let configured: Vec<(String, String)> = self.config.table_list();
        let is_configured = |t: &TableName| {
            configured
                .iter()
                .any(|(d, n)| *d == t.database && *n == t.name)
        };
        let key_of = |t: &TableName| (t.database.clone(), t.name.clone());
        match &ddl {
            DdlEvent::NotDdl => Ok(()),
            DdlEvent::Unknown { tables, .. } => {
                if tables.is_empty() || tables.iter().any(is_configured) {
                    let names: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
                    return Err(SourceError::definite(format!(
                        "cannot understand this statement on {}: {sql:?}; if it changes a captured table, later rows would be decoded wrongly, so the source stops. Rewrite it as plain ALTER/CREATE/DROP/RENAME TABLE, or remove the table from `tables`, then restart",
                        if names.is_empty() {
                            "an unnamed table".to_string()
                        } else {
                            names.join(", ")
                        }
                    )));
                }
                Ok(())
            }
            DdlEvent::TruncateTable { table } => {
                if let Some(captured) = self.tables.get(&key_of(table)).cloned() {
                    let at = self.txn.as_ref().map(|t| t.txn_pos).unwrap_or_default();
                    self.push(&captured, Op::Truncate, None, None, at)?;
                }
                Ok(())
            }
            DdlEvent::DropTable { tables } => {
                for table in tables {
                    if self.tables.remove(&key_of(table)).is_some() {
                        tracing::warn!(source = %self.name, table = %table, "table dropped at the source; its lake rows stay as they were until it is created again");
                    }
                }
                Ok(())
            }
            DdlEvent::DropDatabase { database } => {
                let before = self.tables.len();
                self.tables.retain(|(d, _), _| d != database);
                if self.tables.len() != before {
                    tracing::warn!(source = %self.name, database = %database, "database dropped at the source; its tables' lake rows stay as they were until they are created again");
                }
                Ok(())
            }
            DdlEvent::CreateTable { .. }
            | DdlEvent::AlterTable { .. }
            | DdlEvent::RenameTable { .. } => {
                // A table created empty gets its rows from later row events
                // (CREATE … SELECT logs them); one renamed into a captured
                // name arrives with rows and no row events: copy it.
                let (created, or_replace) = match &ddl {
                    DdlEvent::CreateTable { or_replace, .. } => (true, *or_replace),
                    _ => (false, false),
                };
                for table in ddl.tables() {
                    if !is_configured(&table) {
                        continue;
                    }
                    let key = key_of(&table);
                    // `CREATE TABLE IF NOT EXISTS` on a live table changes nothing.
                    let fresh = created && (or_replace || !self.tables.contains_key(&key));
                    self.reload(key, sql, fresh).await?;
                }
                Ok(())
            }
        }
    }

    /// Re-reads a captured table's shape after `sql` changed it, copying
    /// its rows again when the change rewrote them without row events.
    async fn reload(
        &mut self,
        key: (String, String),
        sql: &str,
        fresh: bool,
    ) -> Result<(), SourceError> {
        let name = format!("{}.{}", key.0, key.1);
        let Some(table) = table_catalog::load(&mut self.catalog, &key.0, &key.1).await? else {
            // Renamed away or dropped in the same statement.
            self.tables.remove(&key);
            return Ok(());
        };
        tracing::info!(source = %self.name, table = %name, statement = %sql, "table changed shape; schema reloaded");
        let recopy = match self.tables.get(&key) {
            _ if fresh => None,
            Some(old) => rewritten_columns(&old.schema, &table.schema),
            None => Some("a table was renamed into this captured name".to_string()),
        };
        // Read first (awaits), change state after: a cancelled `next`
        // repeats this whole step.
        let rows = match &recopy {
            Some(why) => {
                tracing::info!(source = %self.name, table = %name, reason = %why, "stored values changed without row events; copying the table again");
                Some(self.read_table(&table).await?)
            }
            None => None,
        };
        self.tables.insert(key, table.clone());
        let at = self.txn.as_ref().map(|t| t.txn_pos).unwrap_or_default();
        if fresh {
            // Created (again): whatever the lake held belongs to a dropped
            // table; rows of the new one follow as row events.
            self.push(&table, Op::Truncate, None, None, at)?;
        }
        if let Some(rows) = rows {
            self.push(&table, Op::Truncate, None, None, at)?;
            for row in rows {
                self.push(&table, Op::Read, None, Some(row), at)?;
            }
        }
        Ok(())
    }
}

/// Why a change of shape rewrote stored values without row events (a
/// column added with a default or NOT NULL, a column's type changed), so
/// the lake needs the table again; `None` when it did not.
fn rewritten_columns(old: &TableSchema, new: &TableSchema) -> Option<String> {
    let mut reasons = Vec::new();
    for column in &new.columns {
        match old.columns.iter().find(|c| c.name == column.name) {
            None if column.default.is_some() || !column.nullable => {
                reasons.push(format!("column {} added with a default", column.name));
            }
            Some(before) if before.source_type != column.source_type => {
                reasons.push(format!(
                    "column {}: {} → {}",
                    column.name, before.source_type, column.source_type
                ));
            }
            _ => {}
        }
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// Column names a table map carries (with `binlog_row_metadata = FULL`).
fn table_map_names(table_map: &TableMapEvent<'_>) -> Option<Vec<String>> {
    for field in table_map.iter_optional_meta() {
        if let Ok(OptionalMetadataField::ColumnName(names)) = field {
            return names
                .iter_names()
                .map(|n| n.ok().map(|n| n.name().to_string()))
                .collect();
        }
    }
    None
}

fn file_seq(at: &BinlogFile) -> Result<u64, SourceError> {
    at.sequence().ok_or_else(|| {
        SourceError::definite(format!(
            "binlog file name {:?} has no sequence number suffix; tributary orders changes by it",
            at.file
        ))
    })
}

impl Source for MysqlSource {
    async fn next(&mut self) -> Result<SourceEvent, SourceError> {
        if self.pending.is_empty() {
            self.fill().await?;
        }
        Ok(self.pending.pop_front().expect("fill leaves an event"))
    }

    fn next_ready(&mut self) -> Option<SourceEvent> {
        self.pending.pop_front()
    }

    async fn ack(&mut self, _resume: &ResumePoint) -> Result<(), SourceError> {
        // The binlog has no slot: the server keeps files by its own expiry
        // policy, and the checkpoint alone says where to resume.
        Ok(())
    }

    async fn close(self) -> Result<(), SourceError> {
        if let Phase::Streaming(replication) = self.phase {
            replication.close().await?;
        }
        Ok(())
    }
}
