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

pub mod chunk_reader;
pub mod incremental;
pub mod initial_copy;
pub mod row_value;
pub mod table_catalog;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tributary_mysql::mysql_async::{self, Conn, Opts, OptsBuilder};
use tributary_mysql::{
    AlterChange, BinlogFile, DdlEvent, Flavor, MysqlEvent, MysqlReplication,
    MysqlReplicationConfig, MysqlResume, RowsKind, StartBy, TableName,
};

use tributary_mysql::mysql_async::binlog::events::{OptionalMetadataField, TableMapEvent};

use crate::checkpoint::Checkpoint;
use crate::config::{MysqlSourceConfig, OnUnparsedDdl, SnapshotMode};
use crate::envelope::{Envelope, Op, Row, SourceInfo};
use crate::position::{Position, ResumePoint};
use crate::registry::SchemaRegistry;
use crate::schema::{TableSchema, subject_name};
use crate::snapshot::{SnapshotKind, SnapshotState};
use crate::snapshot_request::{REQUEST_POLL_INTERVAL, SnapshotRequests};
use crate::source::{Source, SourceError, SourceEvent};
use incremental::{HeldChunk, IncrementalChunks};
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
    flavor: Flavor,
    /// Incremental snapshot chunks (requested, after a rewriting DDL, or
    /// an interrupted initial copy continued).
    chunks: IncrementalChunks,
    /// Where the last transaction the stream read began.
    last_begin: Option<BinlogFile>,
    /// Where the stream is (end of the last transaction or heartbeat) and
    /// how to resume there.
    last_resume: MysqlResume,
    requests: SnapshotRequests,
    next_request_poll: Instant,
    /// A chunk was not read because its table's shape is ahead of the stream.
    next_chunk_try: Instant,
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
        // An interrupted copy's session is gone: its unfinished tables
        // continue from their cursors as incremental snapshots.
        let copy = config.snapshot == SnapshotMode::Initial && checkpoint.is_none();
        if unfinished && !copy {
            tracing::info!(source = %config.name, "continuing the interrupted initial copy incrementally from each table's cursor");
            state.demote_initial();
        }
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
            let start = with_gtid(&mut catalog, report.flavor, copy.position().clone()).await?;
            tracing::info!(source = %config.name, position = %start, tables = captured.len(), "initial snapshot consistent with the binlog position");
            (Phase::Copying(Box::new(copy)), start)
        } else {
            let start = match resume {
                Some(r) => r,
                None => {
                    tributary_mysql::reader::current_position(&mut catalog, report.flavor).await?
                }
            };
            let start = with_gtid(&mut catalog, report.flavor, start).await?;
            state.pending.retain(|p| captured.contains(&p.table));
            if checkpoint.is_some() && config.snapshot == SnapshotMode::Initial {
                // Tables added to `tables` since the last run.
                let added: Vec<String> = captured
                    .iter()
                    .filter(|t| !state.tables.contains(t))
                    .cloned()
                    .collect();
                for table in &added {
                    tracing::info!(source = %config.name, table = %table, "table added to the configuration; snapshotting it incrementally");
                    state.enqueue(table, SnapshotKind::Incremental);
                }
            }
            state.tables = captured.clone();
            let replication = MysqlReplication::start_with(
                MysqlReplicationConfig {
                    opts: connect_opts(config)?,
                    server_id: config.server_id,
                    flavor: report.flavor,
                    start: Some(start.clone()),
                    heartbeat: Duration::from_millis(config.heartbeat_ms),
                },
                start_by(report.flavor),
            )
            .await?;
            (Phase::Streaming(Box::new(replication)), start)
        };
        let now = Instant::now();
        let mut source = MysqlSource {
            flavor: report.flavor,
            chunks: IncrementalChunks::new(checkpoint.and_then(|c| c.last_position)),
            last_begin: None,
            last_resume: start.clone(),
            requests: SnapshotRequests::new(registry.store().clone(), &config.name),
            next_request_poll: now,
            next_chunk_try: now,
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
                    if let Some(chunk) = copy
                        .next_chunk(&self.tables, &self.name, &self.database)
                        .await?
                    {
                        // Each chunk is durable with its cursor.
                        self.pending.extend(chunk.events);
                        self.pending.push_back(SourceEvent::Commit {
                            resume: ResumePoint::Mysql(self.start.clone()),
                        });
                        self.state.chunk_done(&chunk.table, chunk.rows, chunk.next);
                        self.pending
                            .push_back(SourceEvent::Progress(self.state.clone()));
                        continue;
                    }
                    // The copy is complete; the binlog continues at its position.
                    for table in self.state.tables.clone() {
                        if self
                            .state
                            .pending
                            .iter()
                            .any(|p| p.table == table && p.kind == SnapshotKind::Initial)
                        {
                            self.state.finish(&table);
                        }
                    }
                    self.pending
                        .push_back(SourceEvent::Progress(self.state.clone()));
                    self.chunks.placed_through(copy.last_position());
                    let flavor = copy.flavor();
                    let replication = MysqlReplication::start_with(
                        MysqlReplicationConfig {
                            opts: connect_opts(&self.config)?,
                            server_id: self.config.server_id,
                            flavor,
                            start: Some(self.start.clone()),
                            heartbeat: Duration::from_millis(self.config.heartbeat_ms),
                        },
                        start_by(flavor),
                    )
                    .await?;
                    tracing::info!(source = %self.name, "initial snapshot done; streaming the binlog");
                    self.phase = Phase::Streaming(Box::new(replication));
                }
                Phase::Streaming(_) => {
                    if self.txn.is_none() && self.held.is_none() && self.snapshot_step().await? {
                        continue;
                    }
                    let Phase::Streaming(replication) = &mut self.phase else {
                        unreachable!("matched above")
                    };
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
                self.last_begin = Some(at.clone());
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
                    let logged = usize::try_from(table.columns_count()).unwrap_or(0);
                    for image in [&before, &after].into_iter().flatten() {
                        if image.len() < logged {
                            return Err(partial_image(&key, &at));
                        }
                    }
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
                self.last_resume = resume.clone();
                self.pending.push_back(SourceEvent::Commit {
                    resume: ResumePoint::Mysql(resume),
                });
            }
            MysqlEvent::Heartbeat { resume } => {
                if self.txn.is_none() {
                    if resume.file > self.last_resume.file {
                        self.last_resume = resume.clone();
                    }
                    self.pending.push_back(SourceEvent::Idle {
                        resume: ResumePoint::Mysql(resume),
                    });
                }
            }
        }
        Ok(())
    }

    /// One step of incremental snapshots between binlog transactions:
    /// emit a held chunk the stream has reached, act on new requests, or
    /// read the next chunk. `true` when events were queued.
    async fn snapshot_step(&mut self) -> Result<bool, SourceError> {
        if let Some(chunk) = self
            .chunks
            .take_ready(&self.last_resume.file, self.last_begin.as_ref())
        {
            self.emit_chunk(chunk);
            return Ok(true);
        }
        let now = Instant::now();
        if now >= self.next_request_poll {
            self.next_request_poll = now + REQUEST_POLL_INTERVAL;
            if self.poll_requests().await? {
                return Ok(true);
            }
        }
        if self.chunks.holds() || now < self.next_chunk_try {
            return Ok(false);
        }
        let Some(entry) = self.state.pending.first().cloned() else {
            return Ok(false);
        };
        let key = entry
            .table
            .split_once('.')
            .map(|(d, t)| (d.to_string(), t.to_string()))
            .unwrap_or_default();
        let Some(table) = self.tables.get(&key).cloned() else {
            tracing::warn!(source = %self.name, table = %entry.table, "table no longer captured or gone; its snapshot is dropped");
            self.state.skip(&entry.table);
            self.pending
                .push_back(SourceEvent::Progress(self.state.clone()));
            return Ok(true);
        };
        if entry.cursor.is_none() && entry.rows == 0 {
            tracing::info!(source = %self.name, table = %entry.table, reset = entry.reset, "incremental snapshot of table started");
        }
        if !self
            .chunks
            .read(&self.config, self.flavor, &table, &entry)
            .await?
        {
            // The catalog is ahead of the stream (a DDL not yet streamed).
            self.next_chunk_try = now + Duration::from_millis(200);
            return Ok(false);
        }
        match self
            .chunks
            .take_ready(&self.last_resume.file, self.last_begin.as_ref())
        {
            Some(chunk) => {
                self.emit_chunk(chunk);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Queues a chunk's rows, a commit at the stream's position and the
    /// table's progress (durable together).
    fn emit_chunk(&mut self, chunk: HeldChunk) {
        let table = chunk.table.clone();
        let rows = chunk.row_count();
        let next = chunk.next.clone();
        let info = SourceInfo {
            source: self.name.clone(),
            database: self.database.clone(),
            xid: None,
            change_lsn: None,
            commit_ts_micros: chrono::Utc::now().timestamp_micros(),
        };
        self.pending.extend(self.chunks.changes(chunk, &info));
        self.pending.push_back(SourceEvent::Commit {
            resume: ResumePoint::Mysql(self.last_resume.clone()),
        });
        let total = self.state.chunk_done(&table, rows, next.clone());
        if next.is_none() {
            tracing::info!(source = %self.name, table = %table, rows = total, "incremental snapshot of table finished");
        }
        self.pending
            .push_back(SourceEvent::Progress(self.state.clone()));
    }

    /// Reads `tributary snapshot` requests from the lake; `true` when the
    /// snapshot state changed (a Progress event was queued).
    async fn poll_requests(&mut self) -> Result<bool, SourceError> {
        let changed =
            self.requests
                .poll(&mut self.state)
                .await
                .map_err(|e| SourceError::Transient {
                    message: format!("reading snapshot requests: {e}"),
                })?;
        if changed {
            self.pending
                .push_back(SourceEvent::Progress(self.state.clone()));
        }
        Ok(changed)
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
                "binlog rows of {} at {at} have {} columns but the table now has {}: the table changed shape after these rows were written and before this start, without column names in the binlog to tell which version they belong to (binlog_row_metadata = FULL). Copy the table again: with the daemon stopped, `tributary checkpoint reset --config <file> --source <name> --to current`",
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
        if ddl == DdlEvent::NotDdl {
            return Ok(());
        }
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
                let reload = self.config.on_unparsed_ddl == OnUnparsedDdl::Reload;
                if reload && !tables.is_empty() {
                    for table in tables.iter().filter(|t| is_configured(t)) {
                        tracing::warn!(source = %self.name, table = %table, statement = %sql, "statement not understood; re-reading the table's columns (on_unparsed_ddl = \"reload\")");
                        self.reload(key_of(table), sql, Arrival::Altered).await?;
                    }
                    return Ok(());
                }
                if tables.is_empty() || tables.iter().any(is_configured) {
                    let names: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
                    return Err(SourceError::definite(format!(
                        "cannot understand this statement on {}: {sql:?}; if it changes a captured table, later rows would be decoded wrongly, so the source stops. If the statement does not change the table's columns (or is the last change of shape ahead), set on_unparsed_ddl = \"reload\" for this source and restart; otherwise remove the table from `tables` and copy it again",
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
                // Names another table was renamed onto (an online schema
                // change tool's cut-over swaps a shadow table in).
                let renamed_onto: Vec<TableName> = match &ddl {
                    DdlEvent::RenameTable { renames } => {
                        renames.iter().map(|(_, to)| to.clone()).collect()
                    }
                    DdlEvent::AlterTable { changes, .. } => changes
                        .iter()
                        .filter_map(|c| match c {
                            AlterChange::RenameTable { to } => Some(to.clone()),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                let mut seen = Vec::new();
                for table in ddl.tables() {
                    if !is_configured(&table) || seen.contains(&table) {
                        continue;
                    }
                    seen.push(table.clone());
                    let key = key_of(&table);
                    let arrival = if renamed_onto.contains(&table) {
                        Arrival::RenamedOnto
                    } else if created && (or_replace || !self.tables.contains_key(&key)) {
                        // `CREATE TABLE IF NOT EXISTS` on a live table changes nothing.
                        Arrival::Created
                    } else {
                        Arrival::Altered
                    };
                    self.reload(key, sql, arrival).await?;
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
        arrival: Arrival,
    ) -> Result<(), SourceError> {
        let fresh = arrival == Arrival::Created;
        let name = format!("{}.{}", key.0, key.1);
        let Some(table) = table_catalog::load(&mut self.catalog, &key.0, &key.1).await? else {
            // Renamed away or dropped in the same statement.
            self.tables.remove(&key);
            return Ok(());
        };
        tracing::info!(source = %self.name, table = %name, statement = %sql, "table changed shape; schema reloaded");
        // (reason, empty the lake table first)
        let recopy = match (arrival, self.tables.get(&key)) {
            (Arrival::Created, _) => None,
            (Arrival::RenamedOnto, _) | (Arrival::Altered, None) => Some((
                "another table was renamed onto this captured name".to_string(),
                true,
            )),
            (Arrival::Altered, Some(old)) => {
                rewritten_columns(&old.schema, &table.schema).map(|why| (why, false))
            }
        };
        self.chunks.forget(&name);
        self.tables.insert(key, table.clone());
        if fresh {
            // Created (again): whatever the lake held belongs to a dropped
            // table; rows of the new one follow as row events.
            let at = self.txn.as_ref().map(|t| t.txn_pos).unwrap_or_default();
            self.push(&table, Op::Truncate, None, None, at)?;
            if self.state.is_pending(&name) {
                self.state.skip(&name);
                self.pending
                    .push_back(SourceEvent::Progress(self.state.clone()));
            }
        }
        if let Some((why, reset)) = recopy {
            // Every row is read again, chunk by chunk, while the stream goes
            // on: the lake converges to the new values (and, after a
            // rename, loses the rows of the table that had the name).
            tracing::info!(source = %self.name, table = %name, reason = %why, "stored values changed without row events; snapshotting the table again");
            self.state
                .enqueue_with(&name, SnapshotKind::Incremental, reset);
            self.pending
                .push_back(SourceEvent::Progress(self.state.clone()));
        }
        Ok(())
    }
}

/// How a captured table reached its new state in a DDL statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// Changed in place (ALTER, or a statement re-read on request).
    Altered,
    /// Created (again): starts empty, rows follow as row events.
    Created,
    /// Another table took the name: its rows replace the lake's.
    RenamedOnto,
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

/// How a stream asks for its start: MariaDB by GTID position (it survives
/// a failover to a replica with other file names; the position is always
/// complete, see [`with_gtid`]); MySQL by file coordinates (a GTID set read
/// from mid-file would miss the earlier `Previous_gtids`).
fn start_by(flavor: Flavor) -> StartBy {
    match flavor {
        Flavor::MariaDb => StartBy::Gtid,
        Flavor::MySql => StartBy::FileCoordinates,
    }
}

/// The resume point at binlog coordinates `file` (with its GTID position on
/// MariaDB), for `checkpoint reset`.
pub async fn resume_at(
    conn: &mut Conn,
    flavor: Flavor,
    file: BinlogFile,
) -> Result<MysqlResume, SourceError> {
    with_gtid(
        conn,
        flavor,
        MysqlResume {
            file,
            mariadb_gtid: None,
            mysql_gtid: None,
        },
    )
    .await
}

/// Fills in the MariaDB GTID position of a file position that lacks one
/// (an initial copy's, or a checkpoint written before GTIDs were tracked):
/// `BINLOG_GTID_POS` gives the exact position at those coordinates.
async fn with_gtid(
    conn: &mut Conn,
    flavor: Flavor,
    mut resume: MysqlResume,
) -> Result<MysqlResume, SourceError> {
    use tributary_mysql::mysql_async::prelude::Queryable;
    if flavor != Flavor::MariaDb || resume.mariadb_gtid.is_some() {
        return Ok(resume);
    }
    let gtid: Option<Option<String>> = conn
        .exec_first(
            "SELECT BINLOG_GTID_POS(?, ?)",
            (resume.file.file.as_str(), resume.file.pos),
        )
        .await
        .map_err(|e| {
            SourceError::from(tributary_mysql::MysqlError::from_driver(
                e,
                &format!("reading the GTID position at {}", resume.file),
                "-",
            ))
        })?;
    resume.mariadb_gtid = gtid.flatten().filter(|g| !g.is_empty());
    Ok(resume)
}

/// A rows event whose images lack columns (`binlog_row_image` MINIMAL or
/// NOBLOB): the missing values are unknown, so the source stops.
fn partial_image(key: &(String, String), at: &BinlogFile) -> SourceError {
    SourceError::definite(format!(
        "binlog rows of {}.{} at {at} carry only some columns (binlog_row_image is MINIMAL or NOBLOB), so the unlogged values cannot be known; run SET GLOBAL binlog_row_image = 'FULL' (and set it in the server's configuration), then, with the daemon stopped, `tributary checkpoint reset --config <file> --source <name> --to current` to copy the tables again",
        key.0, key.1
    ))
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
