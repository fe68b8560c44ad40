//! The PostgreSQL source: logical replication (pgoutput) through the
//! `tributary-postgres` connector, mapped into envelopes.
//!
//! Start-up ([`PostgresSource::open`]): connect an ordinary catalog session,
//! resolve the captured tables, make sure the publication and the slot exist
//! (creating them when allowed), refuse tables that cannot identify rows for
//! updates/deletes, then start streaming at the checkpoint's resume LSN.
//! Streaming: connector events are mapped by [`ChangeMapper`]; commits become
//! [`SourceEvent::Commit`] with the commit's end LSN as the resume point.

pub mod binary_value;
mod change_mapper;
pub mod schema_change;
pub mod snapshot;
mod text_value;
mod type_map;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use tributary_postgres::catalog;
use tributary_postgres::slot::{self, PublicationTables};
use tributary_postgres::{ExportedSlot, Lsn, PgEvent, PgReplication, PgReplicationConfig};

pub use change_mapper::ChangeMapper;
pub use text_value::{ValueError, parse_text};
pub use type_map::map_type;

use crate::checkpoint::Checkpoint;
use crate::config::{DaemonConfig, PostgresSourceConfig, SnapshotMode, SslMode};
use crate::position::ResumePoint;
use crate::registry::SchemaRegistry;
use crate::snapshot::{SnapshotKind, SnapshotState};
use crate::source::{Source, SourceError, SourceEvent};
use schema_change::LakeAction;
use snapshot::signal::{self, SIGNAL_PREFIX, SnapshotSignal};
use snapshot::{ChunkOutcome, ClosedChunk, InitialCopy, WATERMARK_PREFIX, WatermarkSnapshots};

/// Session settings that fix the text form pgoutput uses for dates, times and
/// floats, so [`parse_text`] has exactly one grammar per type.
pub const SESSION_OPTIONS: &str =
    "-c datestyle=ISO,YMD -c timezone=UTC -c extra_float_digits=3 -c bytea_output=hex";

/// A running PostgreSQL source.
#[derive(Debug)]
pub struct PostgresSource {
    config: PostgresSourceConfig,
    phase: Phase,
    mapper: ChangeMapper,
    pending: VecDeque<SourceEvent>,
    /// Snapshot progress; reported after the rows it counts.
    state: SnapshotState,
    /// How to start streaming once an initial copy is done.
    stream: PgReplicationConfig,
    watermarks: Option<WatermarkSnapshots>,
    signal_table: Option<String>,
    /// Report the snapshot state after the current transaction's commit.
    progress_after_commit: bool,
    /// Catalog session: column details for Relation messages, and the
    /// signal messages the source writes itself.
    catalog: Arc<tokio_postgres::Client>,
    /// Replication events received but not mapped yet (a Relation waits
    /// here while its catalog details are read, so a cancelled `next`
    /// loses nothing).
    unmapped: VecDeque<PgEvent>,
    /// Schema history: the baseline a Relation is compared with when this
    /// run has not seen the table yet.
    registry: SchemaRegistry,
}

/// What the source is doing.
#[derive(Debug)]
enum Phase {
    /// Copying tables under the exported snapshot; streaming starts after.
    Copying {
        copy: Box<InitialCopy>,
        then_stream: bool,
    },
    /// The copy is complete; streaming starts next (or the source stops).
    CopyDone {
        then_stream: bool,
    },
    Streaming(PgReplication),
    /// `initial_only` is done.
    Finished,
}

/// Connects the catalog session (ordinary queries over `tokio-postgres`),
/// with TLS per the source's `sslmode`: `disable` plain; `prefer` TLS
/// without verification when the server offers it; `require` TLS without
/// verification; `verify-ca`/`verify-full` TLS verified against
/// `sslrootcert` (or the system roots), `verify-full` also checking the host
/// name. Transient failures (refused, reset) come back transient so the
/// pipeline retries with backoff.
pub async fn connect_catalog(
    config: &PostgresSourceConfig,
) -> Result<tokio_postgres::Client, SourceError> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    use tokio_postgres::config::SslMode as PgSslMode;

    let password = config
        .resolve_password("source")
        .map_err(|e| SourceError::definite(e.to_string()))?;
    let mut pg = tokio_postgres::Config::new();
    pg.host(&config.host)
        .port(config.port)
        .dbname(&config.database)
        .user(&config.user)
        .application_name("tributary")
        .options(SESSION_OPTIONS)
        .connect_timeout(std::time::Duration::from_secs(10));
    if let Some(pw) = &password {
        pg.password(pw.expose());
    }
    let tls_error = |e: openssl::error::ErrorStack| {
        SourceError::definite(format!(
            "cannot set up TLS for {}: {e}; check sslrootcert",
            config.describe()
        ))
    };
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(tls_error)?;
    let verify = matches!(config.sslmode, SslMode::VerifyCa | SslMode::VerifyFull);
    if verify {
        if let Some(root) = &config.sslrootcert {
            builder.set_ca_file(root).map_err(tls_error)?;
        }
    } else {
        builder.set_verify(SslVerifyMode::NONE);
    }
    pg.ssl_mode(match config.sslmode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Prefer => PgSslMode::Prefer,
        _ => PgSslMode::Require,
    });
    let mut tls = postgres_openssl::MakeTlsConnector::new(builder.build());
    if config.sslmode == SslMode::VerifyCa {
        tls.set_callback(|connect, _| {
            connect.set_verify_hostname(false);
            Ok(())
        });
    }
    let (client, connection) = pg
        .connect(tls)
        .await
        .map_err(|e| SourceError::from(tributary_postgres::PgError::from(e)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "catalog connection closed");
        }
    });
    Ok(client)
}

/// The libpq connection string for a source, with fixed session options.
pub fn source_conninfo(config: &PostgresSourceConfig) -> Result<String, SourceError> {
    let password = config
        .resolve_password("source")
        .map_err(|e| SourceError::definite(e.to_string()))?;
    Ok(format!(
        "{} options='{}'",
        config.conninfo(password.as_ref()),
        SESSION_OPTIONS
    ))
}

/// Names the role in a missing-REPLICATION error (the replication
/// connection cannot ask the server who it is).
fn with_user(error: tributary_postgres::PgError, user: &str) -> tributary_postgres::PgError {
    match error {
        tributary_postgres::PgError::ReplicationPrivilege { message, .. } => {
            tributary_postgres::PgError::ReplicationPrivilege {
                user: user.to_string(),
                message,
            }
        }
        other => other,
    }
}

/// The tables a source captures, as configured.
pub fn publication_tables(config: &PostgresSourceConfig) -> PublicationTables {
    match &config.schema {
        Some(schema) => PublicationTables::Schema(schema.clone()),
        None => PublicationTables::Tables(config.table_list()),
    }
}

impl PostgresSource {
    pub async fn open(
        config: &PostgresSourceConfig,
        daemon: &DaemonConfig,
        checkpoint: Option<&Checkpoint>,
        registry: &SchemaRegistry,
    ) -> Result<PostgresSource, SourceError> {
        let conninfo = source_conninfo(config)?;
        tracing::info!(source = %config.name, server = %config.describe(), "connecting");
        let client = Arc::new(connect_catalog(config).await?);

        let mut tables = publication_tables(config);
        let signal_table = config.signal_table();
        if let (PublicationTables::Tables(list), Some(signal)) = (&mut tables, &signal_table) {
            if !list.contains(signal) {
                list.push(signal.clone());
            }
        }
        let resolved = match &tables {
            PublicationTables::Schema(schema) => catalog::schema_tables(&client, schema).await?,
            PublicationTables::Tables(list) => list.clone(),
        };
        let mapper = ChangeMapper::new(&config.name, &config.database);
        let mut recreated = Vec::new();
        for (schema, table) in &resolved {
            let identity = catalog::table_identity(&client, schema, table).await?;
            let qualified = format!("{schema}.{table}");
            let has_key =
                !identity.primary_key.is_empty() || !identity.identity_index_columns.is_empty();
            if let Some(problem) =
                change_mapper::identity_problem(&qualified, identity.replica_identity, has_key)
            {
                return Err(SourceError::definite(problem));
            }
            // The lake's latest version of the table belongs to another
            // relation: it was dropped and recreated (or another table was
            // renamed onto its name) while the daemon was down.
            let oid = catalog::table_oid(&client, schema, table).await?;
            let latest = registry.latest(&schema_change::subject(&config.name, &qualified));
            if let (Some(oid), Some(latest)) = (oid, latest) {
                if latest.table.source_id.is_some_and(|id| id != oid) {
                    recreated.push(qualified.clone());
                }
            }
        }
        slot::ensure_publication(
            &client,
            &config.publication,
            &tables,
            config.manage_publication,
        )
        .await?;

        let signal_qualified = signal_table.as_ref().map(|(s, t)| format!("{s}.{t}"));
        let mut captured: Vec<String> = resolved
            .iter()
            .map(|(s, t)| format!("{s}.{t}"))
            .filter(|t| Some(t) != signal_qualified.as_ref())
            .collect();
        captured.sort();
        let first_start = checkpoint.is_none();
        let mut state = match checkpoint.and_then(|c| c.snapshot.clone()) {
            Some(state) => state,
            // A lake written before snapshots existed: its tables are known.
            None if !first_start => SnapshotState {
                tables: captured.clone(),
                ..SnapshotState::default()
            },
            None => SnapshotState::default(),
        };
        state.pending.retain(|p| captured.contains(&p.table));
        let added: Vec<String> = captured
            .iter()
            .filter(|t| !state.tables.contains(t))
            .filter(|t| config.snapshot_mode_of(t) != SnapshotMode::Never)
            .cloned()
            .collect();
        state.tables = captured.clone();

        let spill_dir: PathBuf = daemon.data_dir.join(&config.name).join("spill");
        let start_lsn = match checkpoint.and_then(|c| c.resume.as_ref()) {
            Some(ResumePoint::Postgres { lsn }) if *lsn > 0 => Some(Lsn(*lsn)),
            _ => None,
        };
        let stream = PgReplicationConfig {
            conninfo: conninfo.clone(),
            slot: config.slot.clone(),
            publication: config.publication.clone(),
            start_lsn,
            spill_dir,
            memory_budget_bytes: config.txn_memory_mb * 1024 * 1024,
            channel_capacity: 4,
        };

        let slot_state = slot::slot_state(&client, &config.slot).await?;
        let phase = if config.snapshot == SnapshotMode::InitialOnly {
            // A one-off copy: a temporary slot provides the consistent
            // snapshot and disappears with it, so no WAL is retained after.
            for table in &added {
                state.enqueue(table, SnapshotKind::Initial);
            }
            if state.pending.is_empty() {
                Phase::Finished
            } else {
                let temp = format!("tributary_copy_{}", std::process::id());
                let exported = ExportedSlot::create(&conninfo, &temp, true)
                    .await
                    .map_err(|e| with_user(e, &config.user))?;
                let copy = InitialCopy::start(config, exported, &mut state).await?;
                Phase::Copying {
                    copy: Box::new(copy),
                    then_stream: false,
                }
            }
        } else if !slot_state.exists && first_start && !added.is_empty() {
            for table in &added {
                state.enqueue(table, SnapshotKind::Initial);
            }
            let exported = ExportedSlot::create(&conninfo, &config.slot, false)
                .await
                .map_err(|e| with_user(e, &config.user))?;
            tracing::info!(
                source = %config.name,
                slot = %config.slot,
                tables = state.pending.len(),
                "initial snapshot under the slot's exported snapshot"
            );
            let copy = InitialCopy::start(config, exported, &mut state).await?;
            Phase::Copying {
                copy: Box::new(copy),
                then_stream: true,
            }
        } else {
            let slot_state = slot::ensure_slot(&client, &config.slot).await?;
            tracing::info!(
                source = %config.name,
                slot = %config.slot,
                confirmed_flush = ?slot_state.confirmed_flush_lsn.map(|l| l.to_string()),
                tables = resolved.len(),
                "slot and publication ready"
            );
            // Whatever was not copied under an exported snapshot (an
            // interrupted initial copy, added tables, a pre-existing slot)
            // is copied incrementally while streaming.
            state.demote_initial();
            for table in &added {
                state.enqueue(table, SnapshotKind::Incremental);
            }
            if !recreated.is_empty() {
                let signal = SnapshotSignal {
                    source: config.name.clone(),
                    tables: recreated.clone(),
                    reset: true,
                    reason: Some("dropped and recreated while the daemon was down".into()),
                };
                signal::emit(&client, &signal)
                    .await
                    .map_err(|e| SourceError::from(tributary_postgres::PgError::from(e)))?;
                tracing::warn!(source = %config.name, tables = ?recreated, "tables were dropped and recreated while the daemon was down; they are emptied in the lake and snapshotted again");
            }
            Phase::Streaming(PgReplication::start(stream.clone(), Some(client.clone())).await?)
        };
        let mut source = PostgresSource {
            config: config.clone(),
            phase,
            mapper,
            pending: VecDeque::new(),
            state,
            stream,
            watermarks: None,
            signal_table: signal_qualified,
            progress_after_commit: false,
            catalog: client,
            unmapped: VecDeque::new(),
            registry: registry.clone(),
        };
        if !source.state.pending.is_empty() || !added.is_empty() || first_start {
            source
                .pending
                .push_back(SourceEvent::Progress(source.state.clone()));
        }
        Ok(source)
    }

    /// Pulls work until at least one source event is ready.
    async fn fill(&mut self) -> Result<(), SourceError> {
        let mut envelopes = Vec::new();
        while self.pending.is_empty() {
            if !self.unmapped.is_empty() {
                self.map_unmapped(&mut envelopes).await?;
                continue;
            }
            match &mut self.phase {
                Phase::Copying { copy, then_stream } => {
                    if copy.fill(&mut self.state, &mut self.pending).await? {
                        continue;
                    }
                    // `next` may be cancelled at any await: change phase
                    // first, then do the slow parts in steps that are safe
                    // to repeat.
                    let then_stream = *then_stream;
                    let Phase::Copying { copy, .. } =
                        std::mem::replace(&mut self.phase, Phase::CopyDone { then_stream })
                    else {
                        unreachable!()
                    };
                    tokio::spawn(copy.stop());
                }
                Phase::CopyDone { then_stream: true } => {
                    let replication =
                        PgReplication::start(self.stream.clone(), Some(self.catalog.clone()))
                            .await?;
                    tracing::info!(source = %self.config.name, "initial snapshot done; streaming");
                    self.phase = Phase::Streaming(replication);
                }
                Phase::CopyDone { then_stream: false } => {
                    tracing::info!(source = %self.config.name, "initial_only snapshot done; stopping the source");
                    self.phase = Phase::Finished;
                }
                Phase::Finished => self.pending.push_back(SourceEvent::Finished),
                Phase::Streaming(replication) => {
                    if !self.state.pending.is_empty() && self.watermarks.is_none() {
                        self.watermarks = Some(WatermarkSnapshots::start(&self.config).await?);
                    }
                    let batch = match &mut self.watermarks {
                        Some(watermarks) => {
                            watermarks.request_next(&self.state);
                            tokio::select! {
                                batch = replication.next_batch() => batch?,
                                error = watermarks.failed() => return Err(error),
                            }
                        }
                        None => replication.next_batch().await?,
                    };
                    self.unmapped.extend(batch);
                }
            }
        }
        Ok(())
    }

    /// Maps the received events in order. A Relation first has its catalog
    /// details read (and its change of shape acted on); it leaves the queue
    /// only once that is done, so cancelling at an await repeats the step.
    async fn map_unmapped(
        &mut self,
        envelopes: &mut Vec<crate::envelope::Envelope>,
    ) -> Result<(), SourceError> {
        while let Some(event) = self.unmapped.front() {
            if let PgEvent::Relation(rel) = event {
                let rel = rel.clone();
                self.on_relation(&rel).await?;
                self.unmapped.pop_front();
                continue;
            }
            let event = self.unmapped.pop_front().expect("front exists");
            self.map_event(event, envelopes)?;
        }
        Ok(())
    }

    /// A Relation message: the table's shape as of the changes that follow.
    /// Reads what pgoutput leaves out (column ids, nullability, defaults),
    /// compares the new shape with the previous one, and asks for what the
    /// lake needs to stay exact (see [`schema_change`]).
    async fn on_relation(
        &mut self,
        rel: &tributary_postgres::RelationDesc,
    ) -> Result<(), SourceError> {
        let columns = catalog::column_details(&self.catalog, rel.oid).await?;
        let qualified = format!("{}.{}", rel.namespace, rel.name);
        let subject = schema_change::subject(&self.config.name, &qualified);
        let registered = self.registry.latest(&subject).map(|v| Arc::new(v.table));
        // The relation's previous shape: seen in this run, else the lake's
        // latest version of the table that had this OID (the same name
        // first; another name means it was renamed).
        let previous_of_oid = self.mapper.schema_of(rel.oid).or_else(|| {
            registered
                .clone()
                .filter(|t| t.source_id == Some(rel.oid))
                .or_else(|| {
                    self.registry
                        .latest_with_source_id(&format!("{}.", self.config.name), rel.oid)
                        .into_iter()
                        .next()
                        .map(|v| Arc::new(v.table))
                })
        });
        let previous = self
            .mapper
            .schema_named(&qualified)
            .or(registered)
            .or_else(|| previous_of_oid.clone());
        self.mapper.set_columns(rel.oid, columns);
        self.mapper.relation(rel, previous_of_oid.as_deref());
        let current = self
            .mapper
            .schema_of(rel.oid)
            .expect("relation just mapped");
        self.mapper
            .forget_other_relations_named(rel.oid, &qualified);
        if self.signal_table.as_deref() == Some(qualified.as_str()) {
            return Ok(());
        }
        let action =
            schema_change::lake_action(previous_of_oid.as_deref(), previous.as_deref(), &current);
        match action {
            LakeAction::None => Ok(()),
            LakeAction::RenamedAway { from } if !self.config.captures(&qualified) => {
                Err(SourceError::definite(format!(
                    "table {from} was renamed to {qualified}, which source {} does not capture; replace {from} with {qualified} in `tables` (or remove it) and restart: {qualified} is then snapshotted under its new name, and {from}'s lake rows stay as they were",
                    self.config.name
                )))
            }
            LakeAction::RenamedAway { from } => {
                self.ask(
                    vec![qualified.clone()],
                    true,
                    format!("renamed from {from}"),
                )
                .await
            }
            LakeAction::Reset { reason } => self.ask(vec![qualified], true, reason).await,
            LakeAction::Resnapshot { reason } => {
                if self.config.snapshot_mode_of(&qualified) == SnapshotMode::Never {
                    tracing::warn!(source = %self.config.name, table = %qualified, reason = %reason, "the change of shape rewrote stored values, but the table's snapshot mode is never: rows not changed since keep their old values in the lake");
                    return Ok(());
                }
                self.ask(vec![qualified], false, reason).await
            }
        }
    }

    /// Writes a signal for this source into the WAL (durable before the
    /// changes of the new shape are handed on), acted on when it arrives.
    async fn ask(
        &mut self,
        tables: Vec<String>,
        reset: bool,
        reason: String,
    ) -> Result<(), SourceError> {
        tracing::info!(source = %self.config.name, tables = ?tables, reset, reason = %reason, "change of shape: asking for a snapshot");
        let signal = SnapshotSignal {
            source: self.config.name.clone(),
            tables,
            reset,
            reason: Some(reason),
        };
        signal::emit(&self.catalog, &signal)
            .await
            .map_err(|e| SourceError::from(tributary_postgres::PgError::from(e)))?;
        Ok(())
    }

    fn map_event(
        &mut self,
        event: PgEvent,
        envelopes: &mut Vec<crate::envelope::Envelope>,
    ) -> Result<(), SourceError> {
        match event {
            // Relations are handled by `on_relation` before this.
            PgEvent::Relation(rel) => self.mapper.relation(&rel, None),
            PgEvent::Begin {
                xid,
                commit_lsn,
                commit_ts_micros,
            } => {
                self.mapper.begin(xid, commit_lsn.0, commit_ts_micros);
            }
            PgEvent::Change(change) => {
                self.mapper.change(&change, envelopes)?;
                for envelope in envelopes.drain(..) {
                    if self
                        .signal_table
                        .as_deref()
                        .is_some_and(|signal| envelope.table.is(signal))
                    {
                        self.signal_row(&envelope);
                        continue;
                    }
                    if let Some(watermarks) = &mut self.watermarks {
                        watermarks.observe(&envelope);
                    }
                    self.pending.push_back(SourceEvent::Change(envelope));
                }
            }
            PgEvent::Message {
                prefix,
                content,
                lsn,
                ..
            } => {
                if prefix == WATERMARK_PREFIX {
                    if let Some(watermarks) = &mut self.watermarks {
                        if let Some(closed) = watermarks.on_message(&content)? {
                            self.close_chunk(closed, lsn.0)?;
                        }
                    }
                } else if prefix == SIGNAL_PREFIX {
                    if let Some(signal) = signal::signal_from_message(&self.config.name, &content) {
                        if signal.reset {
                            self.reset_tables(&signal, lsn.0)?;
                        }
                        self.request_snapshot(signal.tables);
                    }
                }
            }
            PgEvent::Commit { end_lsn, .. } => {
                self.mapper.commit();
                self.pending.push_back(SourceEvent::Commit {
                    resume: ResumePoint::Postgres { lsn: end_lsn.0 },
                });
                if std::mem::take(&mut self.progress_after_commit) {
                    self.pending
                        .push_back(SourceEvent::Progress(self.state.clone()));
                }
            }
            PgEvent::Keepalive { wal_end } if !self.mapper.in_transaction() => {
                self.pending.push_back(SourceEvent::Idle {
                    resume: ResumePoint::Postgres { lsn: wal_end.0 },
                });
            }
            PgEvent::Keepalive { .. } => {}
        }
        Ok(())
    }

    /// A chunk's high watermark: its surviving rows become `r` changes of
    /// the watermark's transaction, and the table's cursor moves.
    fn close_chunk(&mut self, closed: ClosedChunk, lsn: u64) -> Result<(), SourceError> {
        match closed.outcome {
            ChunkOutcome::Rows {
                schema,
                rows,
                cursor_after,
            } => {
                let count = rows.len() as u64;
                for chunk_row in rows {
                    let envelope = self.mapper.read_envelope(
                        schema.clone(),
                        chunk_row.row,
                        chunk_row.unchanged,
                        lsn,
                    )?;
                    self.pending.push_back(SourceEvent::Change(envelope));
                }
                let complete = cursor_after.is_none();
                let total = self.state.chunk_done(&closed.table, count, cursor_after);
                if complete {
                    tracing::info!(source = %self.config.name, table = %closed.table, rows = total, "snapshot complete");
                }
            }
            ChunkOutcome::Gone(why) => {
                tracing::warn!(source = %self.config.name, table = %closed.table, reason = %why, "table no longer exists; snapshot skipped");
                self.state.skip(&closed.table);
            }
        }
        self.progress_after_commit = true;
        Ok(())
    }

    /// A reset signal: each named table is emptied in the lake at this
    /// position (its snapshot, queued next, fills it again).
    fn reset_tables(&mut self, signal: &SnapshotSignal, lsn: u64) -> Result<(), SourceError> {
        for table in &signal.tables {
            let Some(qualified) = crate::config::qualify(table) else {
                continue;
            };
            if !self.state.tables.contains(&qualified) && self.config.captures(&qualified) {
                self.state.tables.push(qualified.clone());
                self.state.tables.sort();
            }
            let schema = self.mapper.schema_named(&qualified).or_else(|| {
                self.registry
                    .latest(&schema_change::subject(&self.config.name, &qualified))
                    .map(|v| Arc::new(v.table))
            });
            // Nothing of the table in the lake yet: nothing to empty.
            let Some(schema) = schema else { continue };
            tracing::warn!(source = %self.config.name, table = %qualified, reason = ?signal.reason, "table reset: emptied in the lake, snapshot follows");
            let envelope = self.mapper.truncate_envelope(schema, lsn)?;
            self.pending.push_back(SourceEvent::Change(envelope));
        }
        Ok(())
    }

    /// Queues incremental snapshots of captured tables.
    fn request_snapshot(&mut self, tables: Vec<String>) {
        for table in tables {
            let Some(qualified) = crate::config::qualify(&table) else {
                tracing::warn!(source = %self.config.name, table = %table, "snapshot request names no table; ignored");
                continue;
            };
            if !self.state.tables.contains(&qualified) {
                tracing::warn!(source = %self.config.name, table = %qualified, "snapshot requested for a table this source does not capture; ignored");
                continue;
            }
            if self.state.enqueue(&qualified, SnapshotKind::Incremental) {
                tracing::info!(source = %self.config.name, table = %qualified, "incremental snapshot requested");
                self.progress_after_commit = true;
            }
        }
    }

    /// An INSERT into the signal table (never written to the lake).
    fn signal_row(&mut self, envelope: &crate::envelope::Envelope) {
        if envelope.op != crate::envelope::Op::Create {
            return;
        }
        let Some(row) = &envelope.after else {
            return;
        };
        match signal::tables_from_row(&envelope.table, row) {
            Ok(tables) => self.request_snapshot(tables),
            Err(why) => {
                tracing::warn!(source = %self.config.name, table = %envelope.table.qualified_name(), reason = %why, "signal row ignored")
            }
        }
    }
}

impl Source for PostgresSource {
    async fn next(&mut self) -> Result<SourceEvent, SourceError> {
        if self.pending.is_empty() {
            self.fill().await?;
        }
        Ok(self.pending.pop_front().expect("fill leaves an event"))
    }

    fn next_ready(&mut self) -> Option<SourceEvent> {
        self.pending.pop_front()
    }

    async fn ack(&mut self, resume: &ResumePoint) -> Result<(), SourceError> {
        if let (ResumePoint::Postgres { lsn }, Phase::Streaming(replication)) =
            (resume, &self.phase)
        {
            replication.ack(Lsn(*lsn));
        }
        Ok(())
    }

    async fn close(self) -> Result<(), SourceError> {
        match self.phase {
            Phase::Streaming(replication) => replication.shutdown().await,
            Phase::Copying { copy, .. } => copy.stop().await,
            Phase::CopyDone { .. } | Phase::Finished => {}
        }
        Ok(())
    }
}
