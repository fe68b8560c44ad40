//! The replication handle the daemon holds: start, read events, acknowledge, shut down.
//!
//! [`PgReplication::start`] opens the walsender connection (pg_walstream,
//! libpq), starts `START_REPLICATION` with pgoutput protocol version 2 and
//! `streaming=on`, and spawns the reader task (`reader.rs`) that decodes
//! into [`PgEvent`] batches on a bounded channel. The daemon pulls events with
//! [`next`](PgReplication::next) / [`next_batch`](PgReplication::next_batch)
//! and reports durable progress with [`ack`](PgReplication::ack), which the
//! reader forwards to the server promptly.
//!
//! There is no automatic reconnect: after an error the handle is finished.
//! The daemon discards the partial transaction, and on a transient error
//! starts a new `PgReplication` from its last acknowledged LSN (the server
//! resends every transaction committing after it).

use std::path::PathBuf;
use std::sync::Arc;

use pg_walstream::{
    CancellationToken, LogicalReplicationStream, ReplicationStreamConfig, SharedLsnFeedback,
    StreamingMode,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use crate::catalog::CatalogTypeResolver;
use crate::decoder::{PROTOCOL_VERSION, PgEvent, PgoutputDecoder};
use crate::error::PgError;
use crate::lsn::Lsn;
pub use crate::reader::MAX_BATCH_EVENTS;
use crate::reader::{AckSignal, Batch, Reader};
use crate::transaction_buffer::TransactionBuffer;

/// Settings of one replication stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgReplicationConfig {
    /// libpq conninfo (`key=value …` or `postgresql://` URL) without `replication=`; it is added.
    pub conninfo: String,
    /// An existing pgoutput slot (see [`crate::slot::ensure_slot`]).
    pub slot: String,
    /// The publication to stream.
    pub publication: String,
    /// Resume position: transactions committing before it are skipped by the server.
    /// `None` resumes at the slot's `confirmed_flush_lsn`. Counts as acknowledged.
    pub start_lsn: Option<Lsn>,
    /// Directory for spill files of large streamed transactions (one directory per stream).
    pub spill_dir: PathBuf,
    /// Memory for buffered streamed transactions before they spill to disk.
    pub memory_budget_bytes: usize,
    /// Capacity of the event channel, in batches (each up to [`MAX_BATCH_EVENTS`] events).
    pub channel_capacity: usize,
}

impl PgReplicationConfig {
    /// A config with defaults: 256 MiB memory budget, 16 batches of channel capacity.
    pub fn new(
        conninfo: impl Into<String>,
        slot: impl Into<String>,
        publication: impl Into<String>,
        spill_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            conninfo: conninfo.into(),
            slot: slot.into(),
            publication: publication.into(),
            start_lsn: None,
            spill_dir: spill_dir.into(),
            memory_budget_bytes: 256 << 20,
            channel_capacity: 16,
        }
    }
}

/// Append `replication=database` to a conninfo in either syntax (unless present).
pub fn replication_conninfo(conninfo: &str) -> String {
    let trimmed = conninfo.trim();
    if trimmed.contains("replication=") {
        return trimmed.to_owned();
    }
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        let sep = if trimmed.contains('?') { '&' } else { '?' };
        format!("{trimmed}{sep}replication=database")
    } else {
        format!("{trimmed} replication=database")
    }
}

/// A running logical replication stream (see the module docs).
#[derive(Debug)]
pub struct PgReplication {
    rx: mpsc::Receiver<Batch>,
    current: std::vec::IntoIter<PgEvent>,
    feedback: Arc<SharedLsnFeedback>,
    acks: Arc<AckSignal>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
    failure: Option<PgError>,
}

impl PgReplication {
    /// Connect, start streaming and spawn the reader task.
    ///
    /// `catalog` is an ordinary connection used to resolve column types; pass
    /// `None` to open one from `cfg.conninfo` (without TLS). The slot must exist
    /// and the publication must cover the tables (see [`crate::slot`]).
    pub async fn start(
        cfg: PgReplicationConfig,
        catalog: Option<Arc<Client>>,
    ) -> Result<PgReplication, PgError> {
        let catalog = match catalog {
            Some(c) => c,
            None => Arc::new(connect_catalog(&cfg.conninfo).await?),
        };
        let version: i32 = catalog
            .query_one("SELECT current_setting('server_version_num')::int4", &[])
            .await?
            .get(0);
        if version < 140_000 {
            return Err(PgError::UnsupportedServerVersion {
                version: format!("{}.{}", version / 10_000, version % 10_000),
            });
        }
        let user: String = catalog
            .query_one("SELECT current_user::text", &[])
            .await?
            .get(0);
        let buffer = TransactionBuffer::new(&cfg.spill_dir, cfg.memory_budget_bytes)?;
        let decoder = PgoutputDecoder::new(Box::new(CatalogTypeResolver::new(catalog)), buffer);

        let stream_cfg =
            ReplicationStreamConfig::builder(cfg.slot.clone(), cfg.publication.clone())
                .with_protocol_version(PROTOCOL_VERSION)
                .with_streaming_mode(StreamingMode::On)
                .with_messages(true)
                .with_existing_slot_required(true);
        let fill_user = |e: PgError| match e {
            PgError::ReplicationPrivilege { message, .. } => PgError::ReplicationPrivilege {
                user: user.clone(),
                message,
            },
            other => other,
        };
        let mut stream =
            LogicalReplicationStream::new(&replication_conninfo(&cfg.conninfo), stream_cfg)
                .await
                .map_err(|e| fill_user(e.into()))?;
        stream
            .start(cfg.start_lsn.map(|l| l.0))
            .await
            .map_err(|e| fill_user(e.into()))?;
        tracing::info!(slot = %cfg.slot, publication = %cfg.publication, start = ?cfg.start_lsn, "logical replication started");

        let feedback = Arc::clone(&stream.shared_lsn_feedback);
        let acks = Arc::new(AckSignal::default());
        let cancel = CancellationToken::new();
        let (tx, rx) = mpsc::channel(cfg.channel_capacity.max(1));
        let reader = Reader::new(
            stream,
            decoder,
            tx,
            Arc::clone(&acks),
            cancel.clone(),
            cfg.start_lsn.unwrap_or_default(),
        );
        let task = tokio::spawn(reader.run());
        Ok(PgReplication {
            rx,
            current: Vec::new().into_iter(),
            feedback,
            acks,
            cancel,
            task: Some(task),
            failure: None,
        })
    }

    /// The next event. Errors are final: once one is returned, every later call returns it again.
    pub async fn next(&mut self) -> Result<PgEvent, PgError> {
        loop {
            if let Some(event) = self.current.next() {
                return Ok(event);
            }
            self.current = self.next_batch().await?.into_iter();
        }
    }

    /// The next batch of events (the rest of a partly consumed batch first); never empty.
    /// Cheaper than [`next`](Self::next) per event.
    pub async fn next_batch(&mut self) -> Result<Vec<PgEvent>, PgError> {
        let rest: Vec<PgEvent> = self.current.by_ref().collect();
        if !rest.is_empty() {
            return Ok(rest);
        }
        if let Some(e) = &self.failure {
            return Err(e.clone());
        }
        loop {
            match self.rx.recv().await {
                Some(Ok(batch)) if batch.is_empty() => continue,
                Some(Ok(batch)) => return Ok(batch),
                Some(Err(e)) => {
                    self.failure = Some(e.clone());
                    return Err(e);
                }
                None => {
                    let e = PgError::Stopped {
                        message: "the reader task ended".into(),
                    };
                    self.failure = Some(e.clone());
                    return Err(e);
                }
            }
        }
    }

    /// Report that everything up to `flush` is durable. The server may then
    /// recycle that WAL and resumes after it on restart. Sent promptly; values
    /// lower than an earlier ack are ignored. Never reports more than was acked
    /// (or `start_lsn`).
    pub fn ack(&self, flush: Lsn) {
        self.feedback.update_applied_lsn(flush.0);
        self.acks.raise();
    }

    /// The highest LSN acknowledged so far (including `start_lsn`).
    pub fn acked(&self) -> Lsn {
        Lsn(self.feedback.get_applied_lsn())
    }

    /// Send final feedback and stop the reader task.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "replication reader task panicked");
            }
        }
    }
}

impl Drop for PgReplication {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Open an ordinary (catalog) connection without TLS and drive it on a task.
pub async fn connect_catalog(conninfo: &str) -> Result<Client, PgError> {
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "catalog connection ended");
        }
    });
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_gets_replication_database() {
        assert_eq!(
            replication_conninfo("host=h port=5 dbname=d"),
            "host=h port=5 dbname=d replication=database"
        );
        assert_eq!(
            replication_conninfo("postgresql://u@h/d"),
            "postgresql://u@h/d?replication=database"
        );
        assert_eq!(
            replication_conninfo("postgres://u@h/d?sslmode=disable"),
            "postgres://u@h/d?sslmode=disable&replication=database"
        );
        assert_eq!(
            replication_conninfo("host=h replication=database"),
            "host=h replication=database"
        );
    }
}
