//! The versioned change envelope: the one shape every source produces and
//! every sink consumes.
//!
//! Sits in the middle of the data path (`Source → Envelope → Sink`). Sources
//! translate their native log records (pgoutput tuples, binlog rows, change
//! stream documents) into [`Envelope`]s whose values are already typed
//! ([`Value`]) according to the table's [`TableSchema`]. Sinks never look at
//! source-specific bytes, so adding a source never touches a sink.
//!
//! The envelope version ([`ENVELOPE_VERSION`]) is written into every delta
//! file's metadata and every manifest. A reader that sees a newer major version
//! than it knows must stop rather than guess; new optional fields are added as
//! new nullable `_`-prefixed columns without a version bump.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::position::Position;
use crate::schema::TableSchema;

/// Version of the envelope layout written to deltas and manifests.
pub const ENVELOPE_VERSION: u32 = 1;

/// What happened to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// `c`: a row was inserted.
    Create,
    /// `u`: a row was updated (its after image is the new state).
    Update,
    /// `d`: a row was deleted (only the key / before image is known).
    Delete,
    /// `r`: a row read by a snapshot (base image).
    Read,
    /// `t`: the whole table was truncated.
    Truncate,
}

impl Op {
    /// The one-letter code written to the `_op` column.
    pub fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
        }
    }

    /// Parses a one-letter code back.
    pub fn from_code(code: &str) -> Option<Op> {
        Some(match code {
            "c" => Op::Create,
            "u" => Op::Update,
            "d" => Op::Delete,
            "r" => Op::Read,
            "t" => Op::Truncate,
            _ => return None,
        })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A typed column value. Which variant a column holds is fixed by its
/// [`crate::schema::ColumnType`]; `Null` is valid for every type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    /// Unscaled decimal; the scale comes from the column type.
    Decimal(i128),
    Text(String),
    Bytes(Vec<u8>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    /// Microseconds since 1970-01-01 00:00:00 (no zone, or UTC for `TimestampTz`).
    Timestamp(i64),
    List(Vec<Value>),
    /// A nested record: one value per field of the column's
    /// [`crate::schema::ColumnType::Struct`], in field order, `Null` for a
    /// field the source did not have.
    Struct(Vec<Value>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// One row image: values in the table schema's column order.
pub type Row = Vec<Value>;

/// Where a change came from (the `source` block of the envelope).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    /// Configured source name.
    pub source: Arc<str>,
    /// Database the change was read from.
    pub database: Arc<str>,
    /// Source transaction id (PostgreSQL xid), when the source has one.
    pub xid: Option<u64>,
    /// LSN (or offset) of the change record itself.
    pub change_lsn: Option<u64>,
    /// Commit timestamp, microseconds since the Unix epoch.
    pub commit_ts_micros: i64,
}

/// One change to one row (or, for `t`, one table).
#[derive(Debug, Clone)]
pub struct Envelope {
    pub op: Op,
    /// Table schema (and its fingerprint) the row images follow.
    pub table: Arc<TableSchema>,
    /// Row after the change (`c`, `u`, `r`); `None` for `d` and `t`.
    pub after: Option<Row>,
    /// Row before the change when the source provides it: the key columns
    /// only under REPLICA IDENTITY DEFAULT/USING INDEX, all columns under FULL.
    /// Columns the source did not send are `Null` and listed in
    /// `before_present == false`.
    pub before: Option<Row>,
    /// Column indexes whose value in `after` is *not* known because the source
    /// reported it unchanged (PostgreSQL unchanged TOAST). The merge keeps the
    /// previous value for them; they are never to be read as NULL.
    pub unchanged: Vec<usize>,
    /// Total order of this change within its source.
    pub position: Position,
    pub source: SourceInfo,
}

impl Envelope {
    /// The key values of the row this change identifies: from `after` for
    /// inserts/updates/reads, from `before` for deletes.
    pub fn key(&self) -> Vec<Value> {
        let image = match self.op {
            Op::Delete => self.before.as_ref(),
            _ => self.after.as_ref(),
        };
        match image {
            Some(row) => self.table.key.iter().map(|&i| row[i].clone()).collect(),
            None => Vec::new(),
        }
    }
}

/// Snapshot reads (`r`) already in columnar form: an initial copy decodes
/// each chunk straight into Arrow arrays and hands the sink one batch
/// instead of one [`Envelope`] per row. Row `i` has the position of
/// [`ReadBatch::first`] with its ordinal advanced by `i`; every row shares
/// `source`.
#[derive(Debug, Clone)]
pub struct ReadBatch {
    pub table: Arc<TableSchema>,
    /// One array per data column, typed as [`crate::schema::ColumnType::arrow_type`].
    pub columns: Vec<arrow_array::ArrayRef>,
    pub rows: usize,
    pub first: Position,
    pub source: SourceInfo,
    /// In-memory size of the arrays (for flush limits).
    pub approx_bytes: usize,
}

impl ReadBatch {
    /// Position of row `i`.
    pub fn position(&self, i: usize) -> Position {
        match self.first {
            Position::Postgres {
                commit_lsn,
                ordinal,
            } => Position::Postgres {
                commit_lsn,
                ordinal: ordinal + i as u64,
            },
            Position::Mysql {
                file_seq,
                txn_pos,
                ordinal,
            } => Position::Mysql {
                file_seq,
                txn_pos,
                ordinal: ordinal + i as u64,
            },
            Position::Mongo {
                cluster_time,
                ordinal,
            } => Position::Mongo {
                cluster_time,
                ordinal: ordinal + i as u64,
            },
        }
    }

    /// Position of the last row.
    pub fn last(&self) -> Position {
        self.position(self.rows.saturating_sub(1))
    }
}
