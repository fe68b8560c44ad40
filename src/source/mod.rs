//! Sources: the left end of the data path. A source turns a database's change
//! log into an ordered stream of [`SourceEvent`]s carrying [`Envelope`]s.
//!
//! Sources are dispatched through the closed enum [`AnySource`] (one variant
//! per database kind, like mini-redis' `Command`), not a plugin registry: the
//! set of sources is part of the product, and the compiler checks every
//! `match` when one is added.

pub mod mongodb;
pub mod mysql;
pub mod postgres;

use crate::checkpoint::Checkpoint;
use crate::config::{DaemonConfig, SourceConfig};
use crate::envelope::{Envelope, ReadBatch};
use crate::position::ResumePoint;
use crate::registry::SchemaRegistry;
#[allow(unused_imports)]
use crate::schema::TableSchema;
use crate::snapshot::SnapshotState;

pub use mongodb::MongoSource;
pub use mysql::MysqlSource;
pub use postgres::PostgresSource;

/// What a source yields, in source order.
#[derive(Debug)]
pub enum SourceEvent {
    /// One row change. Changes of one transaction arrive contiguously, in the
    /// order the database made them, and only for committed transactions.
    Change(Envelope),
    /// A chunk of snapshot reads in columnar form (initial copy), in order
    /// with the surrounding events like the changes it stands for.
    Reads(ReadBatch),
    /// The end of a source transaction. `resume` is where the source restarts
    /// once every change delivered so far is durable.
    Commit { resume: ResumePoint },
    /// The source is idle and has delivered everything up to `resume`; if all
    /// delivered changes are durable, acknowledging `resume` is safe (it lets
    /// PostgreSQL recycle WAL while the captured tables are quiet).
    Idle { resume: ResumePoint },
    /// Snapshot progress changed. Everything the new state counts as copied
    /// was delivered before this event (and before it, the `Commit` that
    /// closed those rows), so it may be persisted with the next flush.
    Progress(SnapshotState),
    /// The source has delivered everything it ever will (`initial_only`):
    /// flush, checkpoint and stop it cleanly.
    Finished,
}

/// Errors of a source, split into transient (reconnect with backoff) and
/// definite (stop; the message names the cause and the remedy).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{message}")]
    Transient { message: String },
    #[error("{message}")]
    Definite { message: String },
}

impl SourceError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SourceError::Transient { .. })
    }

    pub fn definite(message: impl Into<String>) -> SourceError {
        SourceError::Definite {
            message: message.into(),
        }
    }
}

impl From<tributary_postgres::PgError> for SourceError {
    fn from(error: tributary_postgres::PgError) -> SourceError {
        // A slot held by another walsender is retried: after a crash the old
        // walsender keeps it until the server notices the dead connection,
        // and a second daemon on the same slot then acts as a warm standby.
        // Each retry logs the holder's PID and the fix.
        let slot_busy = matches!(error, tributary_postgres::PgError::SlotInUse { .. });
        if error.is_transient() || slot_busy {
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

/// The contract every source implements.
///
/// - **Ordering**: [`Source::next`] yields changes in the source's commit
///   order, each transaction's changes contiguous and followed by one
///   [`SourceEvent::Commit`]. Positions strictly increase.
/// - **At-least-once**: after a restart the source redelivers everything
///   after the [`ResumePoint`] it was opened with, which may include changes
///   the sink already wrote (a crash between a flush and the checkpoint, or a
///   partially flushed transaction). The pipeline drops changes at or before
///   the checkpoint's last durable position; sinks must still tolerate
///   rewriting the same positions with the same content.
/// - **Acknowledgement**: [`Source::ack`] is called only with a resume point
///   whose changes are durable in the sink *and* recorded in the checkpoint.
///   A source must never let the database discard log beyond it.
/// - **Cancel safety**: the pipeline polls `next` in a `select!` with
///   shutdown, flush completions and timers, so a call may be dropped at any
///   await point; it must never lose or half-apply state when that happens
///   (change state only after the awaits it depends on, or in steps that are
///   safe to repeat).
/// - **Shapes**: every envelope carries its table's [`TableSchema`]; a new
///   shape is a new `Arc` with a new fingerprint, announced by nothing else.
///   The pipeline registers it before buffering the change. A source must
///   itself arrange whatever the lake needs beyond a new version when a
///   change of shape rewrote stored data without log rows (PostgreSQL:
///   `schema_change`).
/// - **Tolerate**: `next` may be cancelled between events by shutdown;
///   dropping the source without `ack` must be safe (it only means replay).
#[allow(async_fn_in_trait)]
pub trait Source {
    /// The next event; `Err` when the source failed.
    async fn next(&mut self) -> Result<SourceEvent, SourceError>;
    /// The next event if one is already decoded, without waiting: lets the
    /// pipeline apply a burst of changes back to back. Same order as `next`.
    fn next_ready(&mut self) -> Option<SourceEvent>;
    /// Acknowledge that everything up to `resume` is durable.
    async fn ack(&mut self, resume: &ResumePoint) -> Result<(), SourceError>;
    /// Stop cleanly after a final acknowledgement.
    async fn close(self) -> Result<(), SourceError>;
}

/// Every source kind Tributary supports.
#[derive(Debug)]
pub enum AnySource {
    Postgres(Box<PostgresSource>),
    Mysql(Box<MysqlSource>),
    Mongo(Box<MongoSource>),
}

impl AnySource {
    /// Connects and prepares the source configured in `config`, resuming
    /// where `checkpoint` says (on first start, `None`: the source snapshots
    /// its tables as configured, then streams). `registry` is the schema
    /// history of the source's lake: the baseline a source compares a
    /// table's shape with when it first sees it in a run.
    pub async fn open(
        config: &SourceConfig,
        daemon: &DaemonConfig,
        checkpoint: Option<&Checkpoint>,
        registry: &SchemaRegistry,
    ) -> Result<AnySource, SourceError> {
        match config {
            SourceConfig::Postgres(pg) => Ok(AnySource::Postgres(Box::new(
                PostgresSource::open(pg, daemon, checkpoint, registry).await?,
            ))),
            SourceConfig::Mysql(my) => Ok(AnySource::Mysql(Box::new(
                MysqlSource::open(my, checkpoint, registry).await?,
            ))),
            SourceConfig::Mongo(mongo) => Ok(AnySource::Mongo(Box::new(
                MongoSource::open(mongo, checkpoint, registry).await?,
            ))),
        }
    }
}

impl AnySource {
    /// Where the source started, for a checkpoint written before its first
    /// commit (`None`: the source has no such point; PostgreSQL resumes at
    /// its slot).
    pub fn start_point(&self) -> Option<ResumePoint> {
        match self {
            AnySource::Postgres(_) => None,
            AnySource::Mysql(s) => Some(s.start_point()),
            AnySource::Mongo(s) => Some(s.start_point()),
        }
    }
}

impl Source for AnySource {
    async fn next(&mut self) -> Result<SourceEvent, SourceError> {
        match self {
            AnySource::Postgres(s) => s.next().await,
            AnySource::Mysql(s) => s.next().await,
            AnySource::Mongo(s) => s.next().await,
        }
    }

    fn next_ready(&mut self) -> Option<SourceEvent> {
        match self {
            AnySource::Postgres(s) => s.next_ready(),
            AnySource::Mysql(s) => s.next_ready(),
            AnySource::Mongo(s) => s.next_ready(),
        }
    }

    async fn ack(&mut self, resume: &ResumePoint) -> Result<(), SourceError> {
        match self {
            AnySource::Postgres(s) => s.ack(resume).await,
            AnySource::Mysql(s) => s.ack(resume).await,
            AnySource::Mongo(s) => s.ack(resume).await,
        }
    }

    async fn close(self) -> Result<(), SourceError> {
        match self {
            AnySource::Postgres(s) => (*s).close().await,
            AnySource::Mysql(s) => (*s).close().await,
            AnySource::Mongo(s) => (*s).close().await,
        }
    }
}
