//! The pipeline: one ordered task per source that moves changes from the
//! source into the sink and commits progress only behind durable data.
//!
//! ```text
//!  source.next() ─▶ skip if ≤ checkpoint ─▶ sink.write() ─▶ flush due? ─▶ sink.flush()  (files, then manifest)
//!                                                                         └▶ checkpoint.save() ─▶ source.ack()
//! ```
//!
//! A flush happens when the buffered rows or bytes reach the sink's limits
//! (even inside a huge transaction, so memory stays flat), or when the flush
//! interval has passed and a transaction has just committed. Shutdown is
//! passed in as a [`CancellationToken`]: on cancel the pipeline flushes what
//! it holds, saves the checkpoint, acknowledges and returns `Ok`.
//! Transient failures restart the task from the last checkpoint with
//! exponential backoff (logging why); definite ones stop the daemon.

use std::collections::BTreeMap;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{CHECKPOINT_VERSION, Checkpoint, CheckpointStore};
use crate::config::{Config, DaemonConfig, LakeSinkConfig, SinkConfig, SourceConfig};
use crate::error::RunError;
use crate::http::{self, Health, SourceState};
use crate::position::{Position, ResumePoint};
use crate::registry::SchemaRegistry;
use crate::schema::{TableSchema, subject_name};
use crate::sink::{
    LakeSink, LakeStore, Manifest, ManifestCheckpoint, ManifestWriter, RegisteredShape, SchemaRef,
    SinkError,
};
use crate::snapshot::SnapshotState;
use crate::source::{AnySource, Source, SourceError, SourceEvent};

/// Longest wait between two attempts after a transient failure: long enough
/// not to hammer a database that is restarting, short enough that a blip
/// costs seconds, not minutes.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);
/// First retry delay.
pub const MIN_RETRY_DELAY: Duration = Duration::from_millis(250);
/// Events already decoded by the source that are applied back to back before
/// the loop looks at shutdown, timers and finished flushes again: large
/// enough to amortise the select, small enough (a few ms of work) to keep
/// shutdown and flush deadlines prompt.
const READY_BATCH: usize = 1024;

/// Runs every configured source until `shutdown` is cancelled or one fails
/// definitely (then the others are stopped cleanly and the error returned).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    config.validate()?;
    let registries = open_registries(&config).await?;
    let health = Health::new(config.source.iter().map(|s| s.name().to_string()));
    let stop_all = shutdown.child_token();
    let http = match &config.daemon.http_listen {
        Some(addr) => {
            let listener = http::bind(addr).await.map_err(|e| RunError::Pipeline {
                source_name: "-".into(),
                message: e.to_string(),
            })?;
            tracing::info!(listen = %addr, "HTTP port: /healthz, /readyz, schema registry API");
            let served: Vec<SchemaRegistry> = registries.values().cloned().collect();
            Some(tokio::spawn(http::serve(
                listener,
                served,
                health.clone(),
                stop_all.clone(),
            )))
        }
        None => None,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for source in config.source.clone() {
        let sink = config.sink[source.sink()].clone();
        let SinkConfig::Lake(lake) = &sink;
        let registry = registries[&lake.url].clone();
        let daemon = config.daemon.clone();
        let stop = stop_all.clone();
        let health = health.clone();
        tasks.spawn(async move { run_source(source, sink, daemon, registry, health, stop).await });
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.unwrap_or_else(|e| {
            Err(RunError::Pipeline {
                source_name: "?".into(),
                message: format!("pipeline task panicked: {e}"),
            })
        });
        if let Err(error) = result {
            tracing::error!(error = %error, "source stopped");
            stop_all.cancel();
            first_error.get_or_insert(error);
        }
    }
    stop_all.cancel();
    if let Some(http) = http {
        let _ = http.await;
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// One schema registry per lake root (sources writing to the same root
/// share it, so versions and ids never race).
async fn open_registries(config: &Config) -> Result<BTreeMap<String, SchemaRegistry>, RunError> {
    let mut registries = BTreeMap::new();
    for (name, sink) in &config.sink {
        let SinkConfig::Lake(lake) = sink;
        if registries.contains_key(&lake.url) {
            continue;
        }
        let store = LakeStore::from_url(&lake.url).map_err(|error| RunError::Sink {
            source_name: format!("(sink {name})"),
            error,
        })?;
        let registry = SchemaRegistry::open(store)
            .await
            .map_err(|error| RunError::Schema {
                source_name: format!("(sink {name})"),
                error: Box::new(error),
            })?;
        registries.insert(lake.url.clone(), registry);
    }
    Ok(registries)
}

/// Runs one source, restarting it after transient failures.
async fn run_source(
    source: SourceConfig,
    sink: SinkConfig,
    daemon: DaemonConfig,
    registry: SchemaRegistry,
    health: Health,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let SinkConfig::Lake(lake) = sink;
    let mut delays = retry_delays();
    let name = source.name().to_string();
    loop {
        let mut progressed = false;
        health.set_source_state(&name, SourceState::Starting);
        let result = run_once(
            &source,
            &lake,
            &daemon,
            &registry,
            &health,
            &shutdown,
            &mut progressed,
        )
        .await;
        match result {
            Ok(()) => {
                health.set_source_state(&name, SourceState::Stopped);
                return Ok(());
            }
            Err(error) if error.is_transient() && !shutdown.is_cancelled() => {
                health.set_source_state(
                    &name,
                    SourceState::Retrying {
                        error: error.to_string(),
                    },
                );
                if progressed {
                    delays = retry_delays();
                }
                let delay = delays.next().unwrap_or(MAX_RETRY_DELAY);
                tracing::warn!(
                    source = %source.name(),
                    error = %error,
                    retry_in_ms = delay.as_millis() as u64,
                    "transient failure; restarting from the last checkpoint"
                );
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Err(error) => {
                health.set_source_state(
                    &name,
                    SourceState::Failed {
                        error: error.to_string(),
                    },
                );
                return Err(error);
            }
        }
    }
}

fn retry_delays() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(MIN_RETRY_DELAY)
        .with_max_delay(MAX_RETRY_DELAY)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Everything one run of a source needs, and the state of its current batch.
struct Run<'a> {
    name: &'a str,
    config: &'a SourceConfig,
    registry: SchemaRegistry,
    health: &'a Health,
    lake: &'a LakeSinkConfig,
    sink: LakeSink,
    checkpoints: CheckpointStore,
    checkpoint: Option<Checkpoint>,
    /// Changes at or before this are already durable (replay after a crash).
    skip_through: Option<Position>,
    /// Resume point of the last transaction fully handed to the sink.
    last_commit: Option<ResumePoint>,
    /// Position of the last change handed to the sink.
    last_written: Option<Position>,
    in_txn: bool,
    /// When the oldest buffered change must be flushed by.
    deadline: Option<Instant>,
    /// The deadline passed inside a transaction: flush at its commit.
    flush_at_commit: bool,
    /// The flush being written while the next batch is buffered.
    in_flight: Option<InFlight>,
    /// Latest snapshot progress reported by the source; persisted with the
    /// next flush (every row it counts was handed to the sink before it).
    snapshot: Option<SnapshotState>,
}

/// A sealed flush being encoded and written on its own task.
struct InFlight {
    handle: tokio::task::JoinHandle<Result<Manifest, SinkError>>,
    last_position: Position,
    started: std::time::Instant,
}

/// Whether the source has more to deliver after an event.
enum Handled {
    Continue,
    Finished,
}

/// What woke the pipeline loop.
enum Wake {
    Shutdown,
    FlushDone(Box<Result<Result<Manifest, SinkError>, tokio::task::JoinError>>),
    Deadline,
    Event(Result<SourceEvent, SourceError>),
}

/// Completes when the in-flight flush does; never when there is none.
async fn wait_flight(
    flight: &mut Option<InFlight>,
) -> Result<Result<Manifest, SinkError>, tokio::task::JoinError> {
    match flight {
        Some(f) => (&mut f.handle).await,
        None => std::future::pending().await,
    }
}

async fn run_once(
    config: &SourceConfig,
    lake: &LakeSinkConfig,
    daemon: &DaemonConfig,
    registry: &SchemaRegistry,
    health: &Health,
    shutdown: &CancellationToken,
    progressed: &mut bool,
) -> Result<(), RunError> {
    let name = config.name();
    let sink_err = |error: SinkError| RunError::Sink {
        source_name: name.to_string(),
        error,
    };
    let source_err = |error: SourceError| RunError::Source {
        source_name: name.to_string(),
        error,
    };
    let store = LakeStore::from_url(&lake.url).map_err(sink_err)?;
    let manifests = ManifestWriter::new(store.clone(), name);
    let checkpoints = CheckpointStore::new(store.clone(), name);
    let checkpoint = checkpoints.recover(&manifests).await.map_err(sink_err)?;
    let sink = LakeSink::open(store.clone(), name)
        .await
        .map_err(sink_err)?;
    let resume = checkpoint.as_ref().and_then(|c| c.resume.clone());
    tracing::info!(
        source = %name,
        lake = %store.root_display(),
        resume = %resume.as_ref().map(|r| r.to_string()).unwrap_or_else(|| "slot position".into()),
        "starting"
    );
    let mut source = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        opened = AnySource::open(config, daemon, checkpoint.as_ref(), registry) => opened.map_err(source_err)?,
    };
    let snapshotting = checkpoint
        .as_ref()
        .and_then(|c| c.snapshot.as_ref())
        .is_none_or(|s| !s.pending.is_empty());
    health.set_source_state(
        name,
        if snapshotting {
            SourceState::Snapshotting
        } else {
            SourceState::Streaming
        },
    );
    if let Some(resume) = &resume {
        // A crash between saving the checkpoint and acknowledging it.
        source.ack(resume).await.map_err(source_err)?;
    }
    let checkpoint_snapshot = checkpoint.as_ref().and_then(|c| c.snapshot.clone());
    let mut run = Run {
        name,
        config,
        registry: registry.clone(),
        health,
        lake,
        sink,
        checkpoints,
        skip_through: checkpoint.as_ref().and_then(|c| c.last_position),
        last_commit: resume.or_else(|| source.start_point()),
        checkpoint,
        last_written: None,
        in_txn: false,
        deadline: None,
        flush_at_commit: false,
        in_flight: None,
        snapshot: checkpoint_snapshot,
    };
    let result = run.stream(&mut source, shutdown, progressed).await;
    match result {
        Ok(()) => {
            // Clean shutdown: make everything handed to the sink durable.
            run.flush(&mut source).await?;
            run.finish_in_flight(&mut source).await?;
            source.close().await.map_err(source_err)?;
            tracing::info!(source = %name, "stopped cleanly");
            Ok(())
        }
        Err(error) => {
            // Let a flush already writing finish (or fail) before the caller
            // restarts from the manifest log, so two runs never write the
            // same manifest number.
            if let Some(flight) = run.in_flight.take() {
                let _ = flight.handle.await;
            }
            Err(error)
        }
    }
}

impl Run<'_> {
    fn sink_err(&self, error: SinkError) -> RunError {
        RunError::Sink {
            source_name: self.name.to_string(),
            error,
        }
    }

    fn source_err(&self, error: SourceError) -> RunError {
        RunError::Source {
            source_name: self.name.to_string(),
            error,
        }
    }

    fn over_limits(&self) -> bool {
        self.sink.buffered_rows() >= self.lake.flush_rows
            || self.sink.buffered_bytes() >= self.lake.flush_bytes
    }

    async fn stream(
        &mut self,
        source: &mut AnySource,
        shutdown: &CancellationToken,
        progressed: &mut bool,
    ) -> Result<(), RunError> {
        loop {
            let deadline = self.deadline;
            let mut flight = self.in_flight.take();
            let wake = tokio::select! {
                biased;
                _ = shutdown.cancelled() => Wake::Shutdown,
                done = wait_flight(&mut flight) => Wake::FlushDone(Box::new(done)),
                _ = sleep_until_opt(deadline) => Wake::Deadline,
                event = source.next() => Wake::Event(event),
            };
            match wake {
                Wake::Shutdown => {
                    self.in_flight = flight;
                    return Ok(());
                }
                Wake::FlushDone(done) => {
                    let flight = flight.take().expect("a flush was in flight");
                    self.complete(flight, *done, source).await?;
                    *progressed = true;
                    continue;
                }
                Wake::Deadline => {
                    self.in_flight = flight;
                    // Interval passed: flush at the next commit, or now if idle.
                    if !self.in_txn {
                        self.flush(source).await?;
                    } else {
                        // Not a fresh deadline: the changes already buffered
                        // are due, so flush at this transaction's commit.
                        self.deadline = None;
                        self.flush_at_commit = true;
                    }
                    continue;
                }
                Wake::Event(event) => {
                    self.in_flight = flight;
                    let event = event.map_err(|e| self.source_err(e))?;
                    if let Handled::Finished = self.handle(event, source).await? {
                        return Ok(());
                    }
                    // Handle what the source has already decoded without
                    // going through the select (and its timers) per change.
                    for _ in 0..READY_BATCH {
                        let Some(event) = source.next_ready() else {
                            break;
                        };
                        if let Handled::Finished = self.handle(event, source).await? {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    /// Applies one source event: buffer a change, close a transaction
    /// (flushing when due), or advance an idle checkpoint.
    async fn handle(
        &mut self,
        event: SourceEvent,
        source: &mut AnySource,
    ) -> Result<Handled, RunError> {
        match event {
            SourceEvent::Change(envelope) => {
                self.in_txn = true;
                if self.skip_through.is_some_and(|p| envelope.position <= p) {
                    return Ok(Handled::Continue);
                }
                if !self.sink.knows_shape(&envelope.table.fingerprint) {
                    self.register_shape(&envelope.table).await?;
                }
                self.sink.write(&envelope).map_err(|e| self.sink_err(e))?;
                self.written(envelope.position, source).await?;
            }
            SourceEvent::Reads(reads) => {
                self.in_txn = true;
                let last = reads.last();
                if reads.rows == 0 || self.skip_through.is_some_and(|p| last <= p) {
                    return Ok(Handled::Continue);
                }
                if !self.sink.knows_shape(&reads.table.fingerprint) {
                    self.register_shape(&reads.table).await?;
                }
                self.sink
                    .write_reads(&reads)
                    .map_err(|e| self.sink_err(e))?;
                self.written(last, source).await?;
            }
            SourceEvent::Commit { resume } => {
                self.in_txn = false;
                self.last_commit = Some(resume);
                let due =
                    self.flush_at_commit || self.deadline.is_some_and(|d| d <= Instant::now());
                if self.sink.buffered_rows() > 0 && (due || self.over_limits()) {
                    self.flush(source).await?;
                } else if self.sink.buffered_rows() == 0
                    && (self.in_flight.is_some()
                        || self.checkpoint.as_ref().is_some_and(|c| !c.txn_complete))
                {
                    // A huge transaction was flushed in parts and its last
                    // part ended exactly at its last change: nothing is
                    // left to write, but the checkpoint must say the
                    // transaction is complete and the slot may move past it.
                    self.finish_in_flight(source).await?;
                    if self.checkpoint.as_ref().is_some_and(|c| !c.txn_complete) {
                        let resume = self.last_commit.clone().expect("set above");
                        self.advance_idle(source, resume).await?;
                    }
                }
            }
            SourceEvent::Idle { resume } => {
                if !self.in_txn && self.sink.buffered_rows() == 0 && self.in_flight.is_none() {
                    self.advance_idle(source, resume).await?;
                }
            }
            SourceEvent::Progress(state) => {
                self.health.set_source_state(
                    self.name,
                    if state.pending.is_empty() {
                        SourceState::Streaming
                    } else {
                        SourceState::Snapshotting
                    },
                );
                self.snapshot = Some(state);
                if !self.in_txn && self.sink.buffered_rows() == 0 && self.in_flight.is_none() {
                    // Nothing waits to be written: what the state counts is
                    // already durable, so record it now.
                    self.save_snapshot_state().await?;
                }
            }
            SourceEvent::Finished => return Ok(Handled::Finished),
        }
        Ok(Handled::Continue)
    }

    /// A table shape not written before in this run: register it (checking
    /// compatibility) before any change of it is buffered. Under
    /// `on_incompatible_schema = "fail"` an incompatible shape stops the
    /// source here: nothing of it was buffered, so the checkpoint stays
    /// before it and a restart meets it again.
    async fn register_shape(&mut self, table: &TableSchema) -> Result<(), RunError> {
        let qualified = table.qualified_name();
        let subject = subject_name(self.name, &qualified);
        let namespace = format!("tributary.{}.{}", self.name, table.namespace);
        let registered = self
            .registry
            .register(
                &subject,
                &namespace,
                table,
                self.config.compatibility_of(&qualified),
                self.config.on_incompatible_schema(),
            )
            .await
            .map_err(|error| RunError::Schema {
                source_name: self.name.to_string(),
                error: Box::new(error),
            })?;
        let version = registered.version;
        if registered.new {
            if version.compatible {
                tracing::info!(source = %self.name, subject = %subject, version = version.version, id = version.id, changes = ?version.changes, "schema version registered");
            } else {
                tracing::warn!(source = %self.name, subject = %subject, version = version.version, id = version.id, changes = ?version.changes, problems = ?version.problems, "INCOMPATIBLE schema version registered (on_incompatible_schema = \"new_version\"); the manifest marks the boundary");
            }
        }
        self.sink.add_shape(
            &table.fingerprint,
            RegisteredShape {
                schema: SchemaRef {
                    subject,
                    version: version.version,
                    id: version.id,
                },
                compatibility: version.compatibility.confluent_name().to_string(),
                compatible: version.compatible,
                changes: version.changes,
                problems: version.problems,
            },
        );
        Ok(())
    }

    /// Rows up to `last` were handed to the sink: arm the flush deadline and
    /// flush when the buffers reached their limits.
    async fn written(&mut self, last: Position, source: &mut AnySource) -> Result<(), RunError> {
        self.last_written = Some(last);
        if self.deadline.is_none() && !self.flush_at_commit {
            self.deadline =
                Some(Instant::now() + Duration::from_millis(self.lake.flush_interval_ms));
        }
        if self.over_limits() {
            self.flush(source).await?;
        }
        Ok(())
    }

    /// Saves the checkpoint with the current snapshot state (creating the
    /// first checkpoint when no flush has happened yet).
    async fn save_snapshot_state(&mut self) -> Result<(), RunError> {
        let checkpoint = match self.checkpoint.as_mut() {
            Some(current) => current,
            None => self.checkpoint.insert(Checkpoint {
                checkpoint_version: CHECKPOINT_VERSION,
                source: self.name.to_string(),
                manifest_seq: 0,
                last_position: None,
                resume: self.last_commit.clone(),
                txn_complete: true,
                snapshot: None,
                updated_at: String::new(),
            }),
        };
        checkpoint.snapshot = self.snapshot.clone();
        checkpoint.updated_at = chrono::Utc::now().to_rfc3339();
        let copy = checkpoint.clone();
        self.checkpoints
            .save(&copy)
            .await
            .map_err(|e| self.sink_err(e))
    }

    /// Starts flushing the buffered changes on their own task (files, then
    /// manifest) after the previous flush is complete, so the next batch is
    /// read and buffered while this one is encoded and written.
    async fn flush(&mut self, source: &mut AnySource) -> Result<(), RunError> {
        self.deadline = None;
        self.flush_at_commit = false;
        let Some(last_position) = self.last_written else {
            return Ok(());
        };
        if self.sink.buffered_rows() == 0 {
            return Ok(());
        }
        // Manifests are written in order: the previous one first.
        self.finish_in_flight(source).await?;
        let resume = self
            .last_commit
            .clone()
            .unwrap_or(ResumePoint::Postgres { lsn: 0 });
        let Some(sealed) = self.sink.seal(ManifestCheckpoint {
            last_position,
            resume,
            txn_complete: !self.in_txn,
            snapshot: self.snapshot.clone(),
        }) else {
            return Ok(());
        };
        self.in_flight = Some(InFlight {
            handle: tokio::spawn(async move { sealed.write().await }),
            last_position,
            started: std::time::Instant::now(),
        });
        Ok(())
    }

    /// Waits for the in-flight flush (if any) and completes it.
    async fn finish_in_flight(&mut self, source: &mut AnySource) -> Result<(), RunError> {
        if let Some(mut flight) = self.in_flight.take() {
            let done = (&mut flight.handle).await;
            self.complete(flight, done, source).await?;
        }
        Ok(())
    }

    /// A flush's manifest is durable: save the checkpoint it completes, then
    /// acknowledge the source.
    async fn complete(
        &mut self,
        flight: InFlight,
        done: Result<Result<Manifest, SinkError>, tokio::task::JoinError>,
        source: &mut AnySource,
    ) -> Result<(), RunError> {
        let manifest = done
            .map_err(|e| RunError::Pipeline {
                source_name: self.name.to_string(),
                message: format!("flush task failed: {e}"),
            })?
            .map_err(|e| self.sink_err(e))?;
        self.sink.committed(&manifest);
        let checkpoint = Checkpoint::from_manifest(&manifest);
        self.checkpoints
            .save(&checkpoint)
            .await
            .map_err(|e| self.sink_err(e))?;
        if let Some(resume) = &checkpoint.resume {
            if !matches!(resume, ResumePoint::Postgres { lsn: 0 }) {
                source.ack(resume).await.map_err(|e| self.source_err(e))?;
            }
        }
        let rows: u64 = manifest
            .tables
            .iter()
            .map(|t| t.files.iter().map(|f| f.rows).sum::<u64>())
            .sum();
        tracing::info!(
            source = %self.name,
            manifest = manifest.seq,
            rows,
            tables = manifest.tables.len(),
            through = %flight.last_position,
            flush_ms = flight.started.elapsed().as_millis() as u64,
            "flushed"
        );
        self.skip_through = Some(flight.last_position);
        self.checkpoint = Some(checkpoint);
        // Snapshot progress reported while this flush was being written,
        // with nothing buffered since, is durable now: record it.
        if self.sink.buffered_rows() == 0
            && !self.in_txn
            && self.checkpoint.as_ref().map(|c| &c.snapshot) != Some(&self.snapshot)
        {
            self.save_snapshot_state().await?;
        }
        Ok(())
    }

    /// Idle source, nothing buffered: move the checkpoint's resume point up to
    /// what the source has fully delivered, so the slot can free WAL.
    async fn advance_idle(
        &mut self,
        source: &mut AnySource,
        resume: ResumePoint,
    ) -> Result<(), RunError> {
        let Some(current) = self.checkpoint.as_mut() else {
            return Ok(());
        };
        let newer = match &current.resume {
            Some(old) => resume.is_after(old),
            None => true,
        };
        if !newer {
            if current.snapshot != self.snapshot {
                return self.save_snapshot_state().await;
            }
            return Ok(());
        }
        current.resume = Some(resume.clone());
        current.txn_complete = true;
        current.snapshot = self.snapshot.clone();
        current.updated_at = chrono::Utc::now().to_rfc3339();
        let snapshot = current.clone();
        self.checkpoints
            .save(&snapshot)
            .await
            .map_err(|e| self.sink_err(e))?;
        self.last_commit = Some(resume.clone());
        source.ack(&resume).await.map_err(|e| self.source_err(e))?;
        Ok(())
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
