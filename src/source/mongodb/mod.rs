//! The MongoDB source: a database's change stream (through
//! `tributary-mongodb`) mapped into envelopes, after an optional initial
//! copy of the collections.
//!
//! ```text
//!  hello/preflight ─▶ cluster time T ─▶ CollectionCopy (each collection in _id order, r at T−1)
//!                                            │ done
//!                                            ▼
//!  change stream (startAtOperationTime T, later startAfter <token>) ─ChangeEvent─▶ rows (document_row)
//! ```
//!
//! Start-up ([`MongoSource::open`]): connect, run the preflight (replica set
//! or sharded cluster, pre-/post-images for `full_document = "required"`;
//! each problem stops the source with its fix), rebuild each collection's
//! shape from its latest registered version, then copy (first start, or an
//! interrupted copy) or resume the stream after the checkpoint's token.
//!
//! Streaming: insert → `c`, update/replace → `u` (the full document: the
//! post-image with `required`, the looked-up current document with
//! `update_lookup`; an update whose document is already gone is skipped, the
//! later delete says so), delete → `d` (key, or the pre-image), drop →
//! `t`, dropDatabase → `t` of every collection, rename → `t` of the old
//! name (and a reset snapshot of a captured new name), invalidate → the
//! stream is reopened after it. Events of one
//! multi-document transaction (same `lsid` + `txnNumber`) share the
//! envelope's transaction id and are committed together. Positions are the
//! event's cluster time plus an ordinal among events with that cluster
//! time; the checkpoint's resume point is the token after the last durable
//! event.

pub mod collection_copy;
pub mod document_row;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use tributary_mongodb::bson::{Bson, Document, Timestamp};
use tributary_mongodb::mongodb::Client;
use tributary_mongodb::mongodb::options::{ClientOptions, Credential};
use tributary_mongodb::{
    ChangeEvent, ChangeOp, ChangeStreamConfig, CollectionShape, FullDocumentMode,
    MongoChangeStream, MongoError, StartAt, TxnId, extended_json,
};

use crate::checkpoint::Checkpoint;
use crate::config::{MongoFullDocument, MongoSourceConfig, SnapshotMode};
use crate::envelope::{Envelope, Op, Row, SourceInfo};
use crate::position::{Position, ResumePoint};
use crate::registry::SchemaRegistry;
use crate::schema::{TableSchema, subject_name};
use crate::snapshot::{ChunkCursor, SnapshotKind, SnapshotState};
use crate::snapshot_request::{REQUEST_POLL_INTERVAL, SnapshotRequests};
use crate::source::{Source, SourceError, SourceEvent};
use collection_copy::CollectionCopy;
use document_row::{
    ColumnIds, bson_from_extended_json, document_row, key_row, shape_of, table_schema,
};

/// The `_xid` of a multi-document transaction's events: a transaction is
/// its session (`lsid`) and the session's `txnNumber`, so the id is the
/// first 63 bits of SHA-256 over both (`txnNumber` alone repeats across
/// sessions).
pub fn transaction_id(txn: &TxnId) -> u64 {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(extended_json(&txn.lsid).as_bytes());
    hash.update(txn.txn_number.to_be_bytes());
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) >> 1
}

impl From<MongoError> for SourceError {
    fn from(error: MongoError) -> SourceError {
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

/// `seconds << 32 | increment`.
pub fn pack(time: Timestamp) -> u64 {
    (u64::from(time.time) << 32) | u64::from(time.increment)
}

fn unpack(packed: u64) -> Timestamp {
    Timestamp {
        time: (packed >> 32) as u32,
        increment: (packed & 0xFFFF_FFFF) as u32,
    }
}

/// A client for `config` (password from the environment or its file;
/// never logged).
pub async fn connect(config: &MongoSourceConfig) -> Result<Client, SourceError> {
    let mut options = ClientOptions::parse(&config.uri).await.map_err(|e| {
        SourceError::definite(format!(
            "source {}: uri cannot be used ({e}); write mongodb://host:27017/?replicaSet=rs0",
            config.name
        ))
    })?;
    options.app_name = Some("tributary".into());
    if let Some(user) = &config.user {
        let password = config
            .resolve_password("source")
            .map_err(|e| SourceError::definite(e.to_string()))?;
        options.credential = Some(
            Credential::builder()
                .username(user.clone())
                .password(password.map(|p| p.expose().to_string()))
                .build(),
        );
    }
    Client::with_options(options).map_err(|e| {
        SourceError::from(MongoError::from_driver(
            e,
            &format!("connecting to {}", config.describe()),
        ))
    })
}

/// What the preflight found: problems that stop the source (each with its
/// fix) and warnings that do not.
#[derive(Debug, Default)]
pub struct PreflightReport {
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

/// Runs the preflight.
pub async fn preflight(
    client: &Client,
    config: &MongoSourceConfig,
) -> Result<PreflightReport, SourceError> {
    let report = tributary_mongodb::preflight(client, &config.database, &config.collections)
        .await
        .map_err(SourceError::from)?;
    let mut out = PreflightReport::default();
    for problem in report.problems(mode(config)) {
        match problem {
            // Collections are created by their first insert: one not there
            // yet is captured from then on.
            MongoError::UnknownCollection { collection, .. } => out.warnings.push(format!(
                "collection {}.{collection} does not exist yet; it is captured from its first insert",
                config.database
            )),
            other => out.problems.push(other.to_string()),
        }
    }
    if config.full_document == MongoFullDocument::UpdateLookup {
        for collection in &report.without_pre_images {
            out.warnings.push(format!(
                "collection {}.{collection} has no pre- and post-images: updates carry the document as it is when read (update_lookup), deletes only the key; for exact images (MongoDB 6.0+) run {} and set full_document = \"required\"",
                config.database,
                tributary_mongodb::error::pre_images_command(collection)
            ));
        }
    }
    Ok(out)
}

fn mode(config: &MongoSourceConfig) -> FullDocumentMode {
    match config.full_document {
        MongoFullDocument::UpdateLookup => FullDocumentMode::UpdateLookup,
        MongoFullDocument::Required => FullDocumentMode::Required,
    }
}

/// A captured collection as the source maps it.
#[derive(Debug)]
struct Collection {
    shape: CollectionShape,
    ids: ColumnIds,
    schema: Arc<TableSchema>,
}

#[derive(Debug)]
enum Phase {
    Copying(Option<Box<CollectionCopy>>),
    Streaming(Box<MongoChangeStream>),
}

/// A running MongoDB source.
#[derive(Debug)]
pub struct MongoSource {
    config: MongoSourceConfig,
    name: Arc<str>,
    database: Arc<str>,
    client: Client,
    collections: HashMap<String, Collection>,
    phase: Phase,
    /// Where streaming starts (before any event: the cluster time).
    start: ResumePoint,
    pending: VecDeque<SourceEvent>,
    state: SnapshotState,
    registry: SchemaRegistry,
    /// Cluster time and ordinal of the last change placed.
    placed: (u64, u64),
    /// The open multi-document transaction and the resume point after its
    /// last event so far.
    open_txn: Option<(TxnId, ResumePoint)>,
    /// Cluster time of the last event seen (for idle checkpoints).
    last_cluster_time: u64,
    /// The resume point after the last event or empty batch.
    last_resume: ResumePoint,
    /// An incremental snapshot chunk read at a cluster time, waiting for
    /// the stream to pass that time.
    chunk: Option<HeldChunk>,
    requests: SnapshotRequests,
    next_request_poll: Instant,
}

/// A chunk of an incremental snapshot: the documents after a cursor exactly
/// as of cluster time `at`. It is placed at `at`: after every event at or
/// before `at` (the stream has passed them when the chunk is emitted) and
/// before every later one, so later changes apply on top.
#[derive(Debug)]
struct HeldChunk {
    table: String,
    collection: String,
    at: u64,
    documents: Vec<Document>,
    next: Option<ChunkCursor>,
    truncate_first: bool,
}

impl MongoSource {
    pub async fn open(
        config: &MongoSourceConfig,
        checkpoint: Option<&Checkpoint>,
        registry: &SchemaRegistry,
    ) -> Result<MongoSource, SourceError> {
        tracing::info!(source = %config.name, server = %config.describe(), "connecting");
        let client = connect(config).await?;
        let report = preflight(&client, config).await?;
        for warning in &report.warnings {
            tracing::warn!(source = %config.name, "{warning}");
        }
        if !report.problems.is_empty() {
            return Err(SourceError::definite(format!(
                "{} cannot be captured yet: {}",
                config.describe(),
                report.problems.join("; ")
            )));
        }
        let names = match config.collections.as_slice() {
            [] => {
                let mut names = client
                    .database(&config.database)
                    .list_collection_names()
                    .await
                    .map_err(|e| {
                        SourceError::from(MongoError::from_driver(e, "listing the collections"))
                    })?;
                names.retain(|n| !n.starts_with("system."));
                names.sort();
                names
            }
            listed => listed.to_vec(),
        };
        let mut source = MongoSource {
            config: config.clone(),
            name: config.name.as_str().into(),
            database: config.database.as_str().into(),
            client,
            collections: HashMap::new(),
            phase: Phase::Copying(None),
            start: ResumePoint::Mongo {
                token: None,
                cluster_time: 0,
            },
            pending: VecDeque::new(),
            state: checkpoint
                .and_then(|c| c.snapshot.clone())
                .unwrap_or_default(),
            registry: registry.clone(),
            placed: match checkpoint.and_then(|c| c.last_position) {
                Some(Position::Mongo {
                    cluster_time,
                    ordinal,
                }) => (cluster_time, ordinal),
                _ => (0, 0),
            },
            open_txn: None,
            last_cluster_time: 0,
            last_resume: ResumePoint::Mongo {
                token: None,
                cluster_time: 0,
            },
            chunk: None,
            requests: SnapshotRequests::new(registry.store().clone(), &config.name),
            next_request_poll: Instant::now(),
        };
        for name in &names {
            source.collection(name);
        }
        let qualified: Vec<String> = names
            .iter()
            .map(|n| format!("{}.{n}", config.database))
            .collect();
        let resume = checkpoint.and_then(|c| c.resume.clone());
        let copying = match (&resume, checkpoint) {
            (None, None) if config.snapshot == SnapshotMode::Initial => {
                source.state = SnapshotState::default();
                for table in &qualified {
                    source.state.enqueue(table, SnapshotKind::Initial);
                }
                true
            }
            _ => source
                .state
                .pending
                .iter()
                .any(|p| p.kind == SnapshotKind::Initial),
        };
        if checkpoint.is_some() {
            for table in qualified
                .iter()
                .filter(|t| !source.state.tables.contains(t))
            {
                tracing::warn!(source = %config.name, table = %table, "collection added since the last run: streamed from now on, its existing documents are not copied (reset the checkpoint with --to current to copy every collection again)");
            }
        }
        source.state.tables = qualified;
        source.start = match resume {
            Some(point @ ResumePoint::Mongo { .. }) => point,
            Some(other) => {
                return Err(SourceError::definite(format!(
                    "the checkpoint of {} holds {other}, not a MongoDB resume token; this lake folder belongs to another kind of source",
                    config.name
                )));
            }
            None => {
                let now = tributary_mongodb::cluster_time(&source.client)
                    .await
                    .map_err(SourceError::from)?;
                ResumePoint::Mongo {
                    token: None,
                    cluster_time: pack(now),
                }
            }
        };
        source.last_resume = source.start.clone();
        if let ResumePoint::Mongo { cluster_time, .. } = source.start {
            source.last_cluster_time = cluster_time;
        }
        if copying {
            tracing::info!(source = %config.name, start = %source.start, "initial copy; the change stream starts at the cluster time taken before it");
        } else {
            source.phase = Phase::Streaming(Box::new(
                open_stream(&source.client, &source.config, &source.start).await?,
            ));
        }
        source
            .pending
            .push_back(SourceEvent::Progress(source.state.clone()));
        Ok(source)
    }

    /// Where the source starts (the checkpoint's resume point before the
    /// first commit).
    pub fn start_point(&self) -> ResumePoint {
        self.start.clone()
    }

    /// The collection `name`, its shape rebuilt from the registry on first use.
    fn collection(&mut self, name: &str) -> &mut Collection {
        if !self.collections.contains_key(name) {
            let subject = subject_name(&self.config.name, &format!("{}.{name}", self.database));
            let latest = self.registry.latest(&subject);
            let shape = latest
                .as_ref()
                .map(|v| shape_of(&v.table))
                .unwrap_or_default();
            let mut ids = latest
                .as_ref()
                .map(|v| ColumnIds::of(&v.table))
                .unwrap_or_default();
            let schema = Arc::new(table_schema(&self.database, name, &shape, &mut ids));
            self.collections
                .insert(name.to_string(), Collection { shape, ids, schema });
        }
        self.collections.get_mut(name).expect("inserted above")
    }

    fn captures(&self, collection: &str) -> bool {
        self.config.collections.is_empty()
            || self.config.collections.iter().any(|c| c == collection)
    }

    fn next_position(&mut self, cluster_time: u64) -> Position {
        if self.placed.0 == cluster_time {
            self.placed.1 += 1;
        } else {
            self.placed = (cluster_time, 1);
        }
        Position::Mongo {
            cluster_time: self.placed.0,
            ordinal: self.placed.1,
        }
    }

    fn info(&self, commit_ts_micros: i64, txn: Option<&TxnId>) -> SourceInfo {
        SourceInfo {
            source: self.name.clone(),
            database: self.database.clone(),
            xid: txn.map(transaction_id),
            change_lsn: None,
            commit_ts_micros,
        }
    }

    /// The row of `document` in `collection`, widening its shape first (a
    /// new shape is a new table version, registered by the pipeline).
    fn row(
        &mut self,
        collection: &str,
        document: &Document,
    ) -> Result<(Arc<TableSchema>, Row), SourceError> {
        let database = self.database.clone();
        let entry = self.collection(collection);
        if entry.shape.observe(document) {
            entry.schema = Arc::new(table_schema(
                &database,
                collection,
                &entry.shape,
                &mut entry.ids,
            ));
        }
        let row = document_row(&entry.schema, &entry.shape, document).ok_or_else(|| {
            SourceError::definite(format!(
                "document {} of {database}.{collection} does not fit the shape inferred for it; this is a bug in tributary's shape inference, please report it with the document",
                extended_json(document)
            ))
        })?;
        Ok((entry.schema.clone(), row))
    }

    async fn fill(&mut self) -> Result<(), SourceError> {
        while self.pending.is_empty() {
            match &mut self.phase {
                Phase::Copying(current) => {
                    if current.is_none() {
                        let next = self
                            .state
                            .pending
                            .iter()
                            .find(|p| p.kind == SnapshotKind::Initial)
                            .cloned();
                        let Some(next) = next else {
                            tracing::info!(source = %self.name, "initial copy done; streaming changes");
                            self.phase = Phase::Streaming(Box::new(
                                open_stream(&self.client, &self.config, &self.start).await?,
                            ));
                            self.pending
                                .push_back(SourceEvent::Progress(self.state.clone()));
                            continue;
                        };
                        let collection = next
                            .table
                            .split_once('.')
                            .map(|(_, c)| c.to_string())
                            .unwrap_or_default();
                        let copy = CollectionCopy::open(
                            &self.client,
                            &self.config.database,
                            &collection,
                            next.cursor.as_ref(),
                            self.config.snapshot_batch,
                            self.config.snapshot_parallelism,
                        )
                        .await?;
                        if next.cursor.is_none() {
                            // Replaces whatever an interrupted earlier copy wrote.
                            let schema = self.collection(&collection).schema.clone();
                            let position = self.copy_position();
                            let info = self.info(chrono::Utc::now().timestamp_micros(), None);
                            self.pending.push_back(SourceEvent::Change(Envelope {
                                op: Op::Truncate,
                                table: schema,
                                after: None,
                                before: None,
                                unchanged: Vec::new(),
                                position,
                                source: info,
                            }));
                        }
                        self.phase = Phase::Copying(Some(Box::new(copy)));
                        continue;
                    }
                    let copy = current.as_mut().expect("checked above");
                    let batch = copy.next_batch().await?;
                    let collection = copy.collection.clone();
                    let rows = batch.documents.len() as u64;
                    let info = self.info(chrono::Utc::now().timestamp_micros(), None);
                    for document in &batch.documents {
                        let (table, row) = self.row(&collection, document)?;
                        let position = self.copy_position();
                        self.pending.push_back(SourceEvent::Change(Envelope {
                            op: Op::Read,
                            table,
                            after: Some(row),
                            before: None,
                            unchanged: Vec::new(),
                            position,
                            source: info.clone(),
                        }));
                    }
                    self.pending.push_back(SourceEvent::Commit {
                        resume: self.start.clone(),
                    });
                    let table = format!("{}.{collection}", self.database);
                    let done = batch.next.is_none();
                    let total = self.state.chunk_done(&table, rows, batch.next);
                    if done {
                        tracing::info!(source = %self.name, table = %table, rows = total, "collection copied");
                        self.phase = Phase::Copying(None);
                    }
                    self.pending
                        .push_back(SourceEvent::Progress(self.state.clone()));
                }
                Phase::Streaming(_) => {
                    if self.open_txn.is_none() && self.snapshot_step().await? {
                        continue;
                    }
                    self.read_stream().await?;
                }
            }
        }
        Ok(())
    }

    /// One read of the change stream.
    async fn read_stream(&mut self) -> Result<(), SourceError> {
        let Phase::Streaming(stream) = &mut self.phase else {
            return Ok(());
        };
        match stream.try_next_event().await {
            Ok(Some(event)) => self.on_event(event)?,
            Ok(None) => {
                // An empty batch: the stream is caught up to a time after
                // any held chunk was read.
                if let Some((_, resume)) = self.open_txn.take() {
                    self.last_resume = resume.clone();
                    self.pending.push_back(SourceEvent::Commit { resume });
                } else if let Some(token) = stream.resume_token() {
                    self.last_resume = ResumePoint::Mongo {
                        token: Some(extended_json(&token)),
                        cluster_time: self.last_cluster_time,
                    };
                    self.pending.push_back(SourceEvent::Idle {
                        resume: self.last_resume.clone(),
                    });
                }
                if let Some(chunk) = self.chunk.take() {
                    self.emit_chunk(chunk);
                }
            }
            Err(MongoError::StreamClosed { .. }) => {
                // After an invalidate: continue after it.
                if let Some((_, resume)) = self.open_txn.take() {
                    self.last_resume = resume.clone();
                    self.pending.push_back(SourceEvent::Commit { resume });
                }
                self.phase = Phase::Streaming(Box::new(
                    open_stream(&self.client, &self.config, &self.last_resume).await?,
                ));
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Copy rows sit just before the cluster time the stream starts at.
    fn copy_position(&mut self) -> Position {
        let ResumePoint::Mongo { cluster_time, .. } = self.start else {
            unreachable!("checked in open")
        };
        self.next_position(cluster_time.saturating_sub(1))
    }

    fn on_event(&mut self, event: ChangeEvent) -> Result<(), SourceError> {
        let cluster_time = event.cluster_time.map(pack).ok_or_else(|| {
            SourceError::definite(format!(
                "change event {} has no clusterTime; tributary orders changes by it",
                extended_json(&event.resume_token)
            ))
        })?;
        self.last_cluster_time = cluster_time;
        let resume = ResumePoint::Mongo {
            token: Some(extended_json(&event.resume_token)),
            cluster_time,
        };
        if let Some((txn, previous)) = &self.open_txn {
            if event.txn.as_ref() != Some(txn) {
                self.pending.push_back(SourceEvent::Commit {
                    resume: previous.clone(),
                });
                self.last_resume = previous.clone();
                self.open_txn = None;
            }
        }
        if self.open_txn.is_none() && self.chunk.as_ref().is_some_and(|c| cluster_time > c.at) {
            let chunk = self.chunk.take().expect("checked");
            self.emit_chunk(chunk);
        }
        let commit_ts = event
            .wall_time
            .map(|w| w.timestamp_millis() * 1000)
            .unwrap_or(i64::from((cluster_time >> 32) as u32) * 1_000_000);
        let info = self.info(commit_ts, event.txn.as_ref());
        let collection = event.namespace.as_ref().and_then(|n| n.coll.clone());
        let mut changed = false;
        match (&event.op, collection) {
            (ChangeOp::Insert | ChangeOp::Update | ChangeOp::Replace, Some(coll))
                if self.captures(&coll) =>
            {
                match &event.full_document {
                    Some(document) => {
                        let (table, after) = self.row(&coll, document)?;
                        let before = match &event.full_document_before_change {
                            Some(pre) => Some(self.row(&coll, pre)?.1),
                            None => None,
                        };
                        let op = if event.op == ChangeOp::Insert {
                            Op::Create
                        } else {
                            Op::Update
                        };
                        let position = self.next_position(cluster_time);
                        self.pending.push_back(SourceEvent::Change(Envelope {
                            op,
                            table,
                            after: Some(after),
                            before,
                            unchanged: Vec::new(),
                            position,
                            source: info,
                        }));
                        changed = true;
                    }
                    None => {
                        tracing::debug!(source = %self.name, collection = %coll, "update of a document already deleted (no document to look up); the delete follows");
                    }
                }
            }
            (ChangeOp::Delete, Some(coll)) if self.captures(&coll) => {
                let key = event.key().cloned().ok_or_else(|| {
                    SourceError::definite(format!(
                        "delete event {} has no documentKey._id",
                        extended_json(&event.resume_token)
                    ))
                })?;
                let before = match &event.full_document_before_change {
                    Some(pre) => self.row(&coll, pre)?.1,
                    None => key_row(&self.collection(&coll).schema, &key),
                };
                let table = self.collection(&coll).schema.clone();
                let position = self.next_position(cluster_time);
                self.pending.push_back(SourceEvent::Change(Envelope {
                    op: Op::Delete,
                    table,
                    after: None,
                    before: Some(before),
                    unchanged: Vec::new(),
                    position,
                    source: info,
                }));
                changed = true;
            }
            (ChangeOp::Drop, Some(coll)) if self.captures(&coll) => {
                self.truncate(&coll, cluster_time, &info);
                changed = true;
            }
            (ChangeOp::Rename, Some(coll)) => {
                if self.captures(&coll) {
                    self.truncate(&coll, cluster_time, &info);
                    changed = true;
                }
                if let Some(to) = event.to.as_ref().and_then(|t| t.coll.clone()) {
                    if self.captures(&to) {
                        // Its documents arrive without events: snapshot it
                        // again, emptied first.
                        let table = format!("{}.{to}", self.database);
                        tracing::info!(source = %self.name, from = %coll, to = %to, "a collection was renamed onto a captured name; snapshotting it again");
                        if !self.state.tables.contains(&table) {
                            self.state.tables.push(table.clone());
                            self.state.tables.sort();
                        }
                        self.state
                            .enqueue_with(&table, SnapshotKind::Incremental, true);
                        self.pending
                            .push_back(SourceEvent::Progress(self.state.clone()));
                    }
                }
            }
            (ChangeOp::DropDatabase, _) => {
                let names: Vec<String> = self.collections.keys().cloned().collect();
                for coll in names {
                    self.truncate(&coll, cluster_time, &info);
                    changed = true;
                }
            }
            _ => {}
        }
        match event.txn {
            Some(txn) => self.open_txn = Some((txn, resume)),
            None => {
                self.last_resume = resume.clone();
                if changed {
                    self.pending.push_back(SourceEvent::Commit { resume });
                } else {
                    self.pending.push_back(SourceEvent::Idle { resume });
                }
            }
        }
        Ok(())
    }

    /// Between events: act on snapshot requests, read the next chunk of a
    /// pending incremental snapshot. `true` when events were queued.
    async fn snapshot_step(&mut self) -> Result<bool, SourceError> {
        let now = Instant::now();
        if now >= self.next_request_poll {
            self.next_request_poll = now + REQUEST_POLL_INTERVAL;
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
                return Ok(true);
            }
        }
        if self.chunk.is_some() {
            return Ok(false);
        }
        let Some(entry) = self
            .state
            .pending
            .iter()
            .find(|p| p.kind == SnapshotKind::Incremental)
            .cloned()
        else {
            return Ok(false);
        };
        let collection = entry
            .table
            .split_once('.')
            .map(|(_, c)| c.to_string())
            .unwrap_or_default();
        if entry.cursor.is_none() && entry.rows == 0 {
            tracing::info!(source = %self.name, table = %entry.table, reset = entry.reset, "incremental snapshot of collection started");
        }
        let at = tributary_mongodb::cluster_time(&self.client)
            .await
            .map_err(SourceError::from)?;
        let batch = collection_copy::read_chunk_at(
            &self.client,
            &self.config.database,
            &collection,
            entry.cursor.as_ref(),
            self.config.snapshot_batch,
            at,
        )
        .await?;
        self.chunk = Some(HeldChunk {
            table: entry.table.clone(),
            collection,
            at: pack(at),
            documents: batch.documents,
            next: batch.next,
            truncate_first: entry.reset && entry.cursor.is_none(),
        });
        Ok(false)
    }

    /// Queues a chunk's rows at its cluster time, a commit and the
    /// collection's progress (durable together).
    fn emit_chunk(&mut self, chunk: HeldChunk) {
        let info = self.info(chrono::Utc::now().timestamp_micros(), None);
        // Never before a change already placed (a server whose reported
        // cluster time lags the events it has streamed): the chunk still
        // sorts after every event the stream passed.
        let at = chunk.at.max(self.placed.0);
        if chunk.truncate_first {
            self.truncate(&chunk.collection, at, &info);
        }
        let rows = chunk.documents.len() as u64;
        for document in &chunk.documents {
            match self.row(&chunk.collection, document) {
                Ok((table, row)) => {
                    let position = self.next_position(at);
                    self.pending.push_back(SourceEvent::Change(Envelope {
                        op: Op::Read,
                        table,
                        after: Some(row),
                        before: None,
                        unchanged: Vec::new(),
                        position,
                        source: info.clone(),
                    }));
                }
                Err(e) => {
                    tracing::error!(source = %self.name, table = %chunk.table, "{e}");
                }
            }
        }
        self.pending.push_back(SourceEvent::Commit {
            resume: self.last_resume.clone(),
        });
        let total = self
            .state
            .chunk_done(&chunk.table, rows, chunk.next.clone());
        if chunk.next.is_none() {
            tracing::info!(source = %self.name, table = %chunk.table, rows = total, "incremental snapshot of collection finished");
        }
        self.pending
            .push_back(SourceEvent::Progress(self.state.clone()));
    }

    fn truncate(&mut self, collection: &str, cluster_time: u64, info: &SourceInfo) {
        let table = self.collection(collection).schema.clone();
        let position = self.next_position(cluster_time);
        self.pending.push_back(SourceEvent::Change(Envelope {
            op: Op::Truncate,
            table,
            after: None,
            before: None,
            unchanged: Vec::new(),
            position,
            source: info.clone(),
        }));
    }
}

/// Opens the change stream at `start` (a free function: the source is not
/// `Sync`, so no `&MongoSource` may live across an await).
async fn open_stream(
    client: &Client,
    config: &MongoSourceConfig,
    from: &ResumePoint,
) -> Result<MongoChangeStream, SourceError> {
    let start = match from {
        ResumePoint::Mongo {
            token: Some(token), ..
        } => {
            let Some(Bson::Document(token)) = bson_from_extended_json(token) else {
                return Err(SourceError::definite(format!(
                    "checkpoint resume token {token} is not an Extended JSON document; fix or reset the checkpoint"
                )));
            };
            StartAt::After(token)
        }
        ResumePoint::Mongo { cluster_time, .. } => StartAt::OperationTime(unpack(*cluster_time)),
        _ => unreachable!("checked in open"),
    };
    let mut stream = ChangeStreamConfig::new(&config.database);
    stream.collections = config.collections.clone();
    stream.start = start;
    stream.full_document = mode(config);
    let opened = MongoChangeStream::open(client, &stream)
        .await
        .map_err(SourceError::from)?;
    tracing::info!(source = %config.name, target = %stream.target(), start = %from, "change stream opened");
    Ok(opened)
}

impl Source for MongoSource {
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
        // The oplog has no slot: the checkpoint's token alone says where to
        // resume, as long as the oplog still holds it.
        Ok(())
    }

    async fn close(self) -> Result<(), SourceError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactions_are_told_apart_by_session_and_number() {
        let txn = |session: u8, number: i64| TxnId {
            lsid: tributary_mongodb::bson::doc! { "id": tributary_mongodb::bson::Binary {
                subtype: tributary_mongodb::bson::spec::BinarySubtype::Uuid,
                bytes: vec![session; 16],
            } },
            txn_number: number,
        };
        assert_eq!(transaction_id(&txn(1, 5)), transaction_id(&txn(1, 5)));
        assert_ne!(transaction_id(&txn(1, 5)), transaction_id(&txn(2, 5)));
        assert_ne!(transaction_id(&txn(1, 5)), transaction_id(&txn(1, 6)));
        assert!(transaction_id(&txn(3, 1)) <= i64::MAX as u64);
    }

    #[test]
    fn cluster_times_pack_in_order() {
        let a = Timestamp {
            time: 10,
            increment: 9,
        };
        let b = Timestamp {
            time: 11,
            increment: 1,
        };
        assert!(pack(a) < pack(b));
        assert_eq!(unpack(pack(a)), a);
    }
}
