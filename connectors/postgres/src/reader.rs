//! The reader task: walsender socket → decoder → batched events on a channel.
//!
//! One task owns the `LogicalReplicationStream` and the [`PgoutputDecoder`].
//! It drains every frame that is already buffered without waiting, decodes
//! them into one batch (up to [`MAX_BATCH_EVENTS`]) and only hands the batch
//! to the channel when the socket has nothing more or the batch is full — one
//! channel operation per batch, not per row. While it waits (for data, or for
//! room in the channel) it also listens for acknowledgements from
//! [`crate::PgReplication::ack`] and sends them to the server at once.
//!
//! Dropping a pending `next_raw_event` future is safe: pg_walstream's libpq
//! read path only awaits socket readability and consumes input synchronously
//! afterwards, so an unfinished read loses nothing (frames stay queued in
//! libpq or pg_walstream's queue). A feedback write cut short stays in libpq's
//! output buffer and goes out with the next write.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::FutureExt;
use pg_walstream::{CancellationToken, LogicalReplicationStream, RawXLogData, ReplicationError};
use tokio::sync::{Notify, mpsc};
use tokio::time::MissedTickBehavior;

use crate::decoder::{PgEvent, PgoutputDecoder};
use crate::error::PgError;
use crate::lsn::Lsn;

/// What travels on the channel: a batch of events or the error that ended the reader.
pub(crate) type Batch = Result<Vec<PgEvent>, PgError>;

/// Most events per batch.
pub const MAX_BATCH_EVENTS: usize = 2048;
/// How long to let frames accumulate after the socket ran dry mid-burst. Reading
/// in larger gulps spares the walsender a wake-up of this process per message,
/// which on loopback is the walsender's largest cost.
const COALESCE: Duration = Duration::from_millis(1);
/// How often an idle reader checks for a new keepalive position.
const IDLE_TICK: Duration = Duration::from_millis(250);
/// How often feedback is re-sent while the channel is full (keeps the walsender from timing out).
const BLOCKED_FEEDBACK: Duration = Duration::from_secs(10);

/// How [`crate::PgReplication::ack`] reaches the reader: a flag checked once per
/// batch on the busy path, and a notification that wakes an idle reader.
#[derive(Debug, Default)]
pub(crate) struct AckSignal {
    pending: AtomicBool,
    notify: Notify,
}

impl AckSignal {
    pub(crate) fn raise(&self) {
        self.pending.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    fn take(&self) -> bool {
        self.pending.swap(false, Ordering::AcqRel)
    }
}

/// Why the pump stopped.
enum Exit {
    /// Shutdown requested, or the handle was dropped.
    Stop,
    /// A real failure, reported to the handle.
    Failed(PgError),
}

impl From<PgError> for Exit {
    fn from(e: PgError) -> Self {
        Exit::Failed(e)
    }
}

enum Wakeup {
    Stop,
    Ack,
    Tick,
    Raw(Result<RawXLogData, ReplicationError>),
}

pub(crate) struct Reader {
    stream: LogicalReplicationStream,
    decoder: PgoutputDecoder,
    tx: mpsc::Sender<Batch>,
    acks: Arc<AckSignal>,
    cancel: CancellationToken,
    batch: Vec<PgEvent>,
    /// Highest position already conveyed to the daemon by a Commit or Keepalive.
    reported: Lsn,
    /// Whether the last drain found frames (a burst may be in progress).
    busy: bool,
}

impl Reader {
    pub(crate) fn new(
        stream: LogicalReplicationStream,
        decoder: PgoutputDecoder,
        tx: mpsc::Sender<Batch>,
        acks: Arc<AckSignal>,
        cancel: CancellationToken,
        start: Lsn,
    ) -> Self {
        Self {
            stream,
            decoder,
            tx,
            acks,
            cancel,
            batch: Vec::with_capacity(MAX_BATCH_EVENTS),
            reported: start,
            busy: false,
        }
    }

    pub(crate) async fn run(mut self) {
        let outcome = self.pump().await;
        // Final feedback (pg_walstream logs, and otherwise ignores, a failure here).
        let _ = self.stream.stop().await;
        if let Err(Exit::Failed(e)) = outcome {
            tracing::warn!(error = %e, transient = e.is_transient(), "replication reader stopped");
            let batch = std::mem::take(&mut self.batch);
            if !batch.is_empty() {
                let _ = self.tx.send(Ok(batch)).await;
            }
            let _ = self.tx.send(Err(e)).await;
        }
    }

    async fn pump(&mut self) -> Result<(), Exit> {
        let mut tick = tokio::time::interval(IDLE_TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if self.cancel.is_cancelled() {
                return Err(Exit::Stop);
            }
            if self.decoder.has_pending_replay() {
                let room = MAX_BATCH_EVENTS.saturating_sub(self.batch.len()).max(1);
                self.decoder.replay_step(&mut self.batch, room).await?;
                self.note_commit();
                if self.batch.len() >= MAX_BATCH_EVENTS {
                    self.flush().await?;
                }
                continue;
            }
            if self.batch.len() < MAX_BATCH_EVENTS {
                // Take a frame only if it is available without waiting.
                if let Some(raw) = self.stream.next_raw_event(&self.cancel).now_or_never() {
                    self.busy = true;
                    self.on_raw(raw).await?;
                    continue;
                }
            }
            if !self.batch.is_empty() {
                self.push_keepalive_if_new();
                self.flush().await?;
                continue;
            }
            if std::mem::take(&mut self.busy) {
                tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => return Err(Exit::Stop),
                    _ = self.acks.notify.notified() => self.forward_ack().await?,
                    _ = tokio::time::sleep(COALESCE) => {}
                }
                continue;
            }
            let wakeup = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => Wakeup::Stop,
                _ = self.acks.notify.notified() => Wakeup::Ack,
                _ = tick.tick() => Wakeup::Tick,
                raw = self.stream.next_raw_event(&self.cancel) => Wakeup::Raw(raw),
            };
            match wakeup {
                Wakeup::Stop => return Err(Exit::Stop),
                Wakeup::Ack => self.forward_ack().await?,
                Wakeup::Tick => {
                    self.push_keepalive_if_new();
                    if !self.batch.is_empty() {
                        self.flush().await?;
                    }
                    self.stream.maybe_send_feedback().await;
                }
                Wakeup::Raw(raw) => self.on_raw(raw).await?,
            }
        }
    }

    async fn on_raw(&mut self, raw: Result<RawXLogData, ReplicationError>) -> Result<(), Exit> {
        match raw {
            Ok(raw) => {
                self.decoder
                    .decode(Lsn(raw.wal_start.0), raw.data, &mut self.batch)
                    .await?;
                self.note_commit();
                Ok(())
            }
            Err(e) if e.is_cancelled() => Err(Exit::Stop),
            Err(e) => Err(Exit::Failed(e.into())),
        }
    }

    fn note_commit(&mut self) {
        if let Some(PgEvent::Commit { end_lsn, .. }) = self.batch.last() {
            self.reported = self.reported.max(*end_lsn);
        }
    }

    /// Outside transactions, report the server's position if it moved past what
    /// Commit events already conveyed. pg_walstream consumes keepalive frames
    /// itself; `current_lsn` is the highest `wal_end` of any frame so far, and every
    /// transaction committing at or below it has already been sent to us.
    fn push_keepalive_if_new(&mut self) {
        if self.decoder.in_transaction() {
            return;
        }
        let current = Lsn(self.stream.current_lsn());
        if current > self.reported {
            self.batch.push(PgEvent::Keepalive { wal_end: current });
            self.reported = current;
        }
    }

    /// Send feedback if an ack arrived since the last check.
    async fn forward_ack(&mut self) -> Result<(), Exit> {
        if self.acks.take() {
            self.send_feedback().await?;
        }
        Ok(())
    }

    async fn send_feedback(&mut self) -> Result<(), Exit> {
        self.stream
            .send_feedback()
            .await
            .map_err(|e| Exit::Failed(e.into()))
    }

    /// Hand the batch to the channel, waiting for room while still forwarding acks.
    async fn flush(&mut self) -> Result<(), Exit> {
        self.forward_ack().await?;
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(MAX_BATCH_EVENTS));
        match self.tx.try_reserve() {
            Ok(permit) => {
                permit.send(Ok(batch));
                return Ok(());
            }
            Err(mpsc::error::TrySendError::Closed(())) => return Err(Exit::Stop),
            Err(mpsc::error::TrySendError::Full(())) => {}
        }
        let mut keep_alive = tokio::time::interval_at(
            tokio::time::Instant::now() + BLOCKED_FEEDBACK,
            BLOCKED_FEEDBACK,
        );
        loop {
            let send = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Err(Exit::Stop),
                permit = self.tx.reserve() => {
                    let Ok(permit) = permit else { return Err(Exit::Stop) };
                    permit.send(Ok(batch));
                    return Ok(());
                }
                _ = self.acks.notify.notified() => self.acks.take(),
                _ = keep_alive.tick() => true,
            };
            if send {
                self.send_feedback().await?;
            }
        }
    }
}
