//! The decoded events the connector hands to the daemon.
//!
//! These types are the boundary between PostgreSQL's wire format and the rest
//! of Tributary: [`crate::decoder`] produces them from pgoutput messages and
//! [`crate::PgReplication::next`] delivers them, only for committed
//! transactions and in commit order. Values stay in pgoutput's text format
//! ([`Cell::Text`]) — turning them into typed Arrow values is the daemon's job,
//! guided by each column's resolved [`PgTypeInfo`].

use std::sync::Arc;

use bytes::Bytes;

use crate::catalog::PgTypeInfo;
use crate::lsn::Lsn;

/// Difference between the Unix epoch and PostgreSQL's epoch (2000-01-01) in microseconds.
pub const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// Convert a pgoutput timestamp (microseconds since 2000-01-01) to Unix-epoch microseconds.
pub const fn pg_to_unix_micros(pg_micros: i64) -> i64 {
    pg_micros + PG_EPOCH_OFFSET_MICROS
}

/// A table's `REPLICA IDENTITY`: what old-row data updates and deletes carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplicaIdentity {
    /// The primary key (nothing if there is none).
    Default,
    /// Nothing: updates and deletes carry no old-row data.
    Nothing,
    /// The whole old row.
    Full,
    /// The columns of a chosen unique index.
    Index,
}

impl ReplicaIdentity {
    /// From `pg_class.relreplident` / the pgoutput byte (`d`, `n`, `f`, `i`).
    pub fn from_code(code: u8) -> Self {
        match code {
            b'n' => ReplicaIdentity::Nothing,
            b'f' => ReplicaIdentity::Full,
            b'i' => ReplicaIdentity::Index,
            _ => ReplicaIdentity::Default,
        }
    }

    /// The catalog code.
    pub fn code(self) -> u8 {
        match self {
            ReplicaIdentity::Default => b'd',
            ReplicaIdentity::Nothing => b'n',
            ReplicaIdentity::Full => b'f',
            ReplicaIdentity::Index => b'i',
        }
    }
}

/// One column as described by a pgoutput `Relation` message, with its type resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelColumn {
    /// Column name.
    pub name: String,
    /// Type OID as sent by pgoutput.
    pub type_oid: u32,
    /// Type modifier as sent by pgoutput (`-1` = none).
    pub type_modifier: i32,
    /// Whether the column is part of the replica identity key.
    pub is_key: bool,
    /// The resolved type (domains and arrays resolved).
    pub type_info: PgTypeInfo,
}

/// A version of a relation's schema. A new `Arc` is produced for each pgoutput
/// `Relation` message, so pointer identity changes when the schema may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationDesc {
    /// Relation OID.
    pub oid: u32,
    /// Schema name.
    pub namespace: String,
    /// Table name.
    pub name: String,
    /// The replica identity at the time of the message.
    pub replica_identity: ReplicaIdentity,
    /// Published columns in order.
    pub columns: Vec<RelColumn>,
}

/// One column value in pgoutput's text format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An unchanged TOASTed value that pgoutput did not send (updates without REPLICA IDENTITY FULL).
    Unchanged,
    /// The value in PostgreSQL's text output format.
    Text(Bytes),
}

/// A row: one [`Cell`] per column of the relation, in relation column order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuple(pub Vec<Cell>);

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// A row was inserted (`new` is set).
    Insert,
    /// A row was updated (`new` is set; `old` when the identity changed or is FULL).
    Update,
    /// A row was deleted (`old` is set unless REPLICA IDENTITY NOTHING).
    Delete,
    /// Tables were truncated (`truncated` lists them).
    Truncate,
}

/// One row change (or a truncate) of a committed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgChange {
    /// What happened.
    pub kind: ChangeKind,
    /// The relation changed (for `Truncate`: the first truncated relation).
    pub relation: Arc<RelationDesc>,
    /// For `Truncate`: all truncated relations; empty otherwise.
    pub truncated: Vec<Arc<RelationDesc>>,
    /// The old row or key (updates/deletes).
    pub old: Option<Tuple>,
    /// The new row (inserts/updates).
    pub new: Option<Tuple>,
    /// `true` when `old` holds only the replica-identity key columns (pgoutput `K`),
    /// `false` when it is the full old row (`O`); other columns of a key-only tuple are `Null`.
    pub old_is_key_only: bool,
    /// WAL start position of the change's message.
    pub lsn: Lsn,
}

/// An event delivered to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgEvent {
    /// A (new version of a) relation schema; precedes the first change that uses it.
    Relation(Arc<RelationDesc>),
    /// Start of a committed transaction.
    Begin {
        /// Top-level transaction id.
        xid: u32,
        /// LSN of the commit record.
        commit_lsn: Lsn,
        /// Commit time, Unix-epoch microseconds.
        commit_ts_micros: i64,
    },
    /// A change of the current transaction.
    Change(PgChange),
    /// End of a committed transaction. Acknowledge `end_lsn` once the transaction is durable.
    Commit {
        /// Top-level transaction id.
        xid: u32,
        /// LSN of the commit record.
        commit_lsn: Lsn,
        /// End of the commit record: the position to acknowledge.
        end_lsn: Lsn,
        /// Commit time, Unix-epoch microseconds.
        commit_ts_micros: i64,
    },
    /// A logical decoding message (`pg_logical_emit_message`).
    Message {
        /// LSN of the message.
        lsn: Lsn,
        /// Transactional messages appear inside their transaction; others stand alone.
        transactional: bool,
        /// The message prefix.
        prefix: String,
        /// The message content.
        content: Bytes,
    },
    /// Every transaction committing at or below `wal_end` has been delivered.
    Keepalive {
        /// The server's sent position.
        wal_end: Lsn,
    },
}
