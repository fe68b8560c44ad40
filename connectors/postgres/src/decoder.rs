//! pgoutput (protocol version 2, `streaming=on`) → [`PgEvent`]s of committed transactions.
//!
//! Sits between the replication stream and the daemon: the reader task in
//! [`crate::replication`] hands every XLogData payload to
//! [`PgoutputDecoder::decode`]. Ordinary transactions (`Begin … Commit`) pass
//! straight through. Streamed in-progress transactions arrive as chunks
//! (`StreamStart xid … StreamStop`), interleaved with each other and with
//! ordinary transactions; their messages are parked undecoded in the
//! [`TransactionBuffer`] under the top-level xid and replayed as
//! `Begin, Change…, Commit` when `StreamCommit` arrives, so the daemon only
//! ever sees committed transactions in commit order.
//!
//! We parse with pg_walstream's raw `LogicalReplicationParser` rather than its
//! higher-level `ChangeEvent`s because the raw tuples keep pgoutput's `'u'`
//! (unchanged TOAST) markers, which the daemon must distinguish from NULL.
//!
//! `Relation` messages inside a chunk are buffered like changes and applied at
//! replay, so the `Relation` event is emitted right before the buffered changes
//! that use it. They are kept even when their subtransaction aborts: pgoutput
//! sends a relation's schema only once per streamed transaction, and later
//! changes of other subtransactions may depend on it.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use pg_walstream::{LogicalReplicationMessage as Msg, LogicalReplicationParser, TupleData};

use crate::catalog::TypeResolver;
use crate::error::PgError;
use crate::lsn::Lsn;
use crate::transaction_buffer::{Replay, TransactionBuffer};

pub use crate::event::{
    Cell, ChangeKind, PgChange, PgEvent, RelColumn, RelationDesc, ReplicaIdentity, Tuple,
    pg_to_unix_micros,
};

/// The pgoutput protocol version this decoder speaks.
pub const PROTOCOL_VERSION: u32 = 2;

/// A streamed transaction whose `StreamCommit` arrived and whose items are being replayed.
#[derive(Debug)]
struct PendingReplay {
    replay: Replay,
    xid: u32,
    commit_lsn: Lsn,
    end_lsn: Lsn,
    commit_ts_micros: i64,
}

/// Decodes pgoutput messages into [`PgEvent`]s (see the module docs).
pub struct PgoutputDecoder {
    /// Parser for the live stream; tracks the `StreamStart`/`StreamStop` context.
    parser: LogicalReplicationParser,
    /// Parser for replayed (xid-prefix-free) buffered messages.
    replay_parser: LogicalReplicationParser,
    resolver: Box<dyn TypeResolver>,
    relations: HashMap<u32, Arc<RelationDesc>>,
    buffer: TransactionBuffer,
    /// xid of the open non-streamed transaction.
    open_txn: Option<u32>,
    /// Top-level xid of the streamed chunk being received.
    stream_xid: Option<u32>,
    pending: Option<PendingReplay>,
}

impl std::fmt::Debug for PgoutputDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgoutputDecoder")
            .field("relations", &self.relations.len())
            .field("buffer", &self.buffer)
            .field("open_txn", &self.open_txn)
            .field("stream_xid", &self.stream_xid)
            .field("replaying", &self.pending.as_ref().map(|p| p.xid))
            .finish()
    }
}

impl PgoutputDecoder {
    /// A decoder resolving column types through `resolver` and parking streamed transactions in `buffer`.
    pub fn new(resolver: Box<dyn TypeResolver>, buffer: TransactionBuffer) -> Self {
        Self {
            parser: LogicalReplicationParser::with_protocol_version(PROTOCOL_VERSION),
            replay_parser: LogicalReplicationParser::with_protocol_version(PROTOCOL_VERSION),
            resolver,
            relations: HashMap::new(),
            buffer,
            open_txn: None,
            stream_xid: None,
            pending: None,
        }
    }

    /// Whether a non-streamed transaction is open or a streamed one is being replayed;
    /// a keepalive position must not be reported then.
    pub fn in_transaction(&self) -> bool {
        self.open_txn.is_some() || self.pending.is_some()
    }

    /// Whether [`replay_step`](Self::replay_step) has work to do.
    pub fn has_pending_replay(&self) -> bool {
        self.pending.is_some()
    }

    /// The streamed-transaction buffer (for metrics).
    pub fn buffer(&self) -> &TransactionBuffer {
        &self.buffer
    }

    /// The current description of relation `oid`, if known.
    pub fn relation(&self, oid: u32) -> Option<&Arc<RelationDesc>> {
        self.relations.get(&oid)
    }

    /// Decode one XLogData payload starting at `wal_start`, appending events to `out`.
    ///
    /// After a `StreamCommit` the committed transaction is replayed incrementally:
    /// call [`replay_step`](Self::replay_step) until [`has_pending_replay`](Self::has_pending_replay)
    /// is false before decoding the next message (if you do not, this method finishes
    /// the replay into `out` first, unbounded).
    pub async fn decode(
        &mut self,
        wal_start: Lsn,
        data: Bytes,
        out: &mut Vec<PgEvent>,
    ) -> Result<(), PgError> {
        while self.replay_step(out, usize::MAX).await? {}
        let Some(&tag) = data.first() else {
            return Err(PgError::protocol("empty pgoutput message"));
        };
        if let Some(top) = self.stream_xid {
            let transactional_message = tag == b'M' && data.get(5).is_some_and(|f| f & 1 == 1);
            if matches!(tag, b'I' | b'U' | b'D' | b'T' | b'R') || transactional_message {
                let subxid = data
                    .get(1..5)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    .ok_or_else(|| {
                        PgError::protocol(format!("streamed '{}' message too short", tag as char))
                    })?;
                return self.buffer.append_parts(
                    top,
                    subxid,
                    wal_start.0,
                    tag == b'R',
                    &[&[tag], &data[5..]],
                );
            }
        }
        let msg = self.parser.parse_wal_message_bytes(data)?;
        self.apply(msg.message, wal_start, out).await
    }

    /// Replay up to `max_events` buffered items of a committed streamed transaction into `out`.
    /// Returns whether more remain. Emits the closing `Commit` with the last step.
    pub async fn replay_step(
        &mut self,
        out: &mut Vec<PgEvent>,
        max_events: usize,
    ) -> Result<bool, PgError> {
        let Some(mut pending) = self.pending.take() else {
            return Ok(false);
        };
        let mut done = 0;
        while done < max_events {
            let Some(item) = pending.replay.next_item()? else {
                out.push(PgEvent::Commit {
                    xid: pending.xid,
                    commit_lsn: pending.commit_lsn,
                    end_lsn: pending.end_lsn,
                    commit_ts_micros: pending.commit_ts_micros,
                });
                return Ok(false);
            };
            let msg = self.replay_parser.parse_wal_message_bytes(item.payload)?;
            self.apply(msg.message, Lsn(item.lsn), out).await?;
            done += 1;
        }
        self.pending = Some(pending);
        Ok(true)
    }

    async fn apply(
        &mut self,
        msg: Msg,
        wal_start: Lsn,
        out: &mut Vec<PgEvent>,
    ) -> Result<(), PgError> {
        match msg {
            Msg::Insert { relation_id, tuple } => {
                let relation = self.lookup(relation_id)?;
                out.push(change(
                    ChangeKind::Insert,
                    relation,
                    None,
                    Some(tuple_of(tuple)?),
                    false,
                    wal_start,
                ));
            }
            Msg::Update {
                relation_id,
                old_tuple,
                new_tuple,
                key_type,
            } => {
                let relation = self.lookup(relation_id)?;
                let old = old_tuple.map(tuple_of).transpose()?;
                let key_only = key_type == Some('K');
                out.push(change(
                    ChangeKind::Update,
                    relation,
                    old,
                    Some(tuple_of(new_tuple)?),
                    key_only,
                    wal_start,
                ));
            }
            Msg::Delete {
                relation_id,
                old_tuple,
                key_type,
            } => {
                let relation = self.lookup(relation_id)?;
                let old = Some(tuple_of(old_tuple)?);
                out.push(change(
                    ChangeKind::Delete,
                    relation,
                    old,
                    None,
                    key_type == 'K',
                    wal_start,
                ));
            }
            Msg::Truncate { relation_ids, .. } => {
                let truncated = relation_ids
                    .iter()
                    .map(|&oid| self.lookup(oid))
                    .collect::<Result<Vec<_>, _>>()?;
                let relation = truncated
                    .first()
                    .cloned()
                    .ok_or_else(|| PgError::protocol("TRUNCATE message without relations"))?;
                out.push(PgEvent::Change(PgChange {
                    kind: ChangeKind::Truncate,
                    relation,
                    truncated,
                    old: None,
                    new: None,
                    old_is_key_only: false,
                    lsn: wal_start,
                }));
            }
            Msg::Begin {
                final_lsn,
                timestamp,
                xid,
            } => {
                if let Some(open) = self.open_txn {
                    return Err(PgError::protocol(format!(
                        "BEGIN of xid {xid} while xid {open} is still open"
                    )));
                }
                self.open_txn = Some(xid);
                out.push(PgEvent::Begin {
                    xid,
                    commit_lsn: Lsn(final_lsn),
                    commit_ts_micros: pg_to_unix_micros(timestamp),
                });
            }
            Msg::Commit {
                commit_lsn,
                end_lsn,
                timestamp,
                ..
            } => {
                let xid = self
                    .open_txn
                    .take()
                    .ok_or_else(|| PgError::protocol("COMMIT without BEGIN"))?;
                out.push(PgEvent::Commit {
                    xid,
                    commit_lsn: Lsn(commit_lsn),
                    end_lsn: Lsn(end_lsn),
                    commit_ts_micros: pg_to_unix_micros(timestamp),
                });
            }
            Msg::Relation {
                relation_id,
                namespace,
                relation_name,
                replica_identity,
                columns,
            } => {
                let mut cols = Vec::with_capacity(columns.len());
                for c in columns {
                    let type_info = self.resolver.resolve(c.type_id, c.type_modifier).await?;
                    cols.push(RelColumn {
                        is_key: c.is_key(),
                        name: c.name.to_string(),
                        type_oid: c.type_id,
                        type_modifier: c.type_modifier,
                        type_info,
                    });
                }
                let desc = Arc::new(RelationDesc {
                    oid: relation_id,
                    namespace: namespace.to_string(),
                    name: relation_name.to_string(),
                    replica_identity: ReplicaIdentity::from_code(replica_identity),
                    columns: cols,
                });
                self.relations.insert(relation_id, Arc::clone(&desc));
                out.push(PgEvent::Relation(desc));
            }
            Msg::Type {
                type_id,
                namespace,
                type_name,
            } => {
                tracing::debug!(type_id, %namespace, %type_name, "pgoutput Type message: invalidating cached type");
                self.resolver.invalidate(type_id);
            }
            Msg::Origin {
                origin_name,
                origin_lsn,
            } => {
                tracing::debug!(%origin_name, origin_lsn = %Lsn(origin_lsn), "ignoring pgoutput Origin message");
            }
            Msg::Message {
                flags,
                lsn,
                prefix,
                content,
            } => {
                out.push(PgEvent::Message {
                    lsn: Lsn(lsn),
                    transactional: flags & 1 == 1,
                    prefix,
                    content,
                });
            }
            Msg::StreamStart { xid, .. } => self.stream_xid = Some(xid),
            Msg::StreamStop => self.stream_xid = None,
            Msg::StreamCommit {
                xid,
                commit_lsn,
                end_lsn,
                timestamp,
                ..
            } => {
                let replay = self.buffer.commit(xid)?;
                let commit_ts_micros = pg_to_unix_micros(timestamp);
                out.push(PgEvent::Begin {
                    xid,
                    commit_lsn: Lsn(commit_lsn),
                    commit_ts_micros,
                });
                self.pending = Some(PendingReplay {
                    replay,
                    xid,
                    commit_lsn: Lsn(commit_lsn),
                    end_lsn: Lsn(end_lsn),
                    commit_ts_micros,
                });
            }
            Msg::StreamAbort {
                xid,
                subtransaction_xid,
                ..
            } => self.buffer.abort(xid, subtransaction_xid),
            Msg::BeginPrepare { .. }
            | Msg::Prepare { .. }
            | Msg::CommitPrepared { .. }
            | Msg::RollbackPrepared { .. }
            | Msg::StreamPrepare { .. } => {
                return Err(PgError::protocol(
                    "two-phase message received although two_phase was not requested",
                ));
            }
        }
        Ok(())
    }

    fn lookup(&self, oid: u32) -> Result<Arc<RelationDesc>, PgError> {
        self.relations.get(&oid).cloned().ok_or_else(|| {
            PgError::protocol(format!(
                "change for relation OID {oid} before its Relation message"
            ))
        })
    }
}

fn change(
    kind: ChangeKind,
    relation: Arc<RelationDesc>,
    old: Option<Tuple>,
    new: Option<Tuple>,
    old_is_key_only: bool,
    lsn: Lsn,
) -> PgEvent {
    PgEvent::Change(PgChange {
        kind,
        relation,
        truncated: Vec::new(),
        old,
        new,
        old_is_key_only,
        lsn,
    })
}

fn tuple_of(t: TupleData) -> Result<Tuple, PgError> {
    let mut cells = Vec::with_capacity(t.columns.len());
    for c in t.columns {
        cells.push(match c.data_type {
            b'n' => Cell::Null,
            b'u' => Cell::Unchanged,
            b't' => Cell::Text(c.into_bytes()),
            other => {
                return Err(PgError::protocol(format!(
                    "column data of kind '{}' (binary mode was not requested)",
                    other as char
                )));
            }
        });
    }
    Ok(Tuple(cells))
}

#[cfg(test)]
mod tests;
