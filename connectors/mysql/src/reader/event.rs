//! The events a [`crate::MysqlReplication`] yields: [`MysqlEvent`] (rows
//! as driver values, what the daemon consumes today) and [`DecodedEvent`]
//! (rows as [`MysqlValue`]s, statements classified as [`DdlEvent`]s).

use std::sync::Arc;

use mysql_async::binlog::events::TableMapEvent;
use mysql_async::binlog::value::BinlogValue;

use crate::column_meta::ColumnMeta;
use crate::column_value::MysqlValue;
use crate::ddl::{DdlEvent, TableName};
use crate::position::{BinlogFile, MysqlResume};

/// One row change of a rows event: before and after images in table-map
/// column order (only the columns the image carries).
pub type RowImages = (
    Option<Vec<BinlogValue<'static>>>,
    Option<Vec<BinlogValue<'static>>>,
);

/// One row change as typed values: before and after images with one value
/// per table column ([`MysqlValue::Unchanged`] where the image lacks it).
pub type DecodedRow = (Option<Vec<MysqlValue>>, Option<Vec<MysqlValue>>);

/// What kind of rows event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsKind {
    /// WRITE_ROWS: after images only.
    Insert,
    /// UPDATE_ROWS: before and after images.
    Update,
    /// DELETE_ROWS: before images only.
    Delete,
}

/// One step of the binlog, in order: only committed transactions, each as
/// `Begin`, its rows and statements, `Commit`.
#[derive(Debug)]
pub enum MysqlEvent {
    /// A transaction starts.
    Begin {
        /// The transaction's GTID, when the server uses them.
        gtid: Option<String>,
        /// Where the transaction's first event (its GTID, else its BEGIN)
        /// starts: transactions are written whole, in commit order, so this
        /// orders them.
        at: BinlogFile,
        /// Commit time (seconds since the epoch, from the event header).
        timestamp: u32,
    },
    /// Row changes of one table.
    Rows {
        /// Insert, update or delete.
        kind: RowsKind,
        /// The table map describing the rows.
        table: Box<TableMapEvent<'static>>,
        /// The changed rows.
        rows: Vec<RowImages>,
        /// Offset of the event in its file (orders the rows of a
        /// transaction).
        at: BinlogFile,
    },
    /// A statement: DDL (`ALTER TABLE …`), or anything else logged as a
    /// statement. `database` is the session's default database.
    Query {
        /// The session's default database.
        database: String,
        /// The statement.
        sql: String,
    },
    /// The transaction committed.
    Commit {
        /// Where to resume to continue after this transaction.
        resume: MysqlResume,
        /// Commit time (seconds since the epoch).
        timestamp: u32,
        /// The XID of an InnoDB commit (`None` for a `COMMIT` statement and
        /// standalone DDL).
        xid: Option<u64>,
    },
    /// Idle server: nothing is pending; everything before `resume` was
    /// delivered.
    Heartbeat {
        /// The position after everything delivered.
        resume: MysqlResume,
    },
}

/// [`MysqlEvent`] with rows decoded and statements classified (from
/// [`crate::MysqlReplication::next_decoded`]).
#[derive(Debug, Clone, PartialEq)]
pub enum DecodedEvent {
    /// A transaction starts.
    Begin {
        /// The transaction's GTID, when the server uses them.
        gtid: Option<String>,
        /// Where the transaction's first event starts.
        at: BinlogFile,
        /// Commit time (seconds since the epoch).
        timestamp: u32,
    },
    /// Row changes of one table.
    Rows {
        /// The table.
        table: TableName,
        /// Insert, update or delete.
        kind: RowsKind,
        /// The table's columns as the binlog describes them.
        columns: Arc<Vec<ColumnMeta>>,
        /// The changed rows.
        rows: Vec<DecodedRow>,
        /// Offset of the event in its file.
        at: BinlogFile,
    },
    /// A statement, classified.
    Query {
        /// The session's default database.
        database: String,
        /// The statement.
        sql: String,
        /// What it does to tables.
        ddl: DdlEvent,
    },
    /// The transaction committed.
    Commit {
        /// Where to resume to continue after this transaction.
        resume: MysqlResume,
        /// Commit time (seconds since the epoch).
        timestamp: u32,
        /// The XID of an InnoDB commit.
        xid: Option<u64>,
    },
    /// Idle server; everything before `resume` was delivered.
    Heartbeat {
        /// The position after everything delivered.
        resume: MysqlResume,
    },
}
