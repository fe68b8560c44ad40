//! MySQL/MariaDB binlog replication for Tributary.
//!
//! This crate owns everything that speaks the MySQL replication protocol;
//! the daemon (`tributary`) owns envelopes, the lake and checkpoints.
//!
//! ```text
//!  server ──COM_BINLOG_DUMP(_GTID)──▶ MysqlReplication ──MysqlEvent───▶ daemon's MySQL source adapter
//!     ▲        (mysql_async)          (transactions,  ──DecodedEvent─▶ (rows as MysqlValue,
//!     │                                positions, GTIDs)                 statements as DdlEvent)
//!     └──────── preflight: log_bin, binlog_format=ROW, row image/metadata, server_id, grants, GTIDs
//! ```
//!
//! - [`position`]: binlog file coordinates, MariaDB GTID positions, MySQL
//!   GTID sets (and their `COM_BINLOG_DUMP_GTID` encoding), the
//!   [`MysqlResume`] a checkpoint stores and the [`DumpStart`] asked for.
//! - [`reader`]: [`MysqlReplication`], the binlog as committed transactions
//!   ([`MysqlEvent`], or [`DecodedEvent`] with typed rows).
//! - [`column_meta`] / [`column_value`] / [`charset`]: table-map column
//!   facts and row cells as [`MysqlValue`]s.
//! - [`ddl`]: QUERY-event statements classified as [`DdlEvent`]s.
//! - [`mod@preflight`] / [`grants`]: what a server must provide, each problem
//!   with its fix.
//! - [`error`]: [`MysqlError`], transient vs definite.

pub mod charset;
pub mod column_meta;
pub mod column_value;
pub mod ddl;
pub mod error;
pub mod grants;
pub mod position;
pub mod preflight;
pub mod reader;

pub use charset::CharsetMap;
pub use column_meta::ColumnMeta;
pub use column_value::MysqlValue;
pub use ddl::{AlterChange, DdlEvent, TableName};
pub use error::MysqlError;
pub use position::{
    BinlogFile, DumpStart, MariaGtid, MariaGtidEvent, MariaGtidPos, MysqlGtidSet, MysqlResume,
};
pub use preflight::{Flavor, Preflight, preflight};
pub use reader::{
    DecodedEvent, DecodedRow, MysqlEvent, MysqlReplication, MysqlReplicationConfig, RowsKind,
    StartBy,
};

/// The driver, for callers that run their own queries (catalog, snapshots).
pub use mysql_async;
