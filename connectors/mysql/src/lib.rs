//! MySQL/MariaDB binlog replication for Tributary.
//!
//! ```text
//!  server ──COM_BINLOG_DUMP──▶ MysqlReplication ──MysqlEvent──▶ daemon's MySQL source adapter
//!     ▲      (mysql_async)       (transactions,                 (envelopes, checkpoints)
//!     │                           positions, GTIDs)
//!     └──────── preflight: log_bin, binlog_format=ROW, row image, server_id, privileges
//! ```
//!
//! - [`position`]: binlog file coordinates, MariaDB GTID positions, MySQL
//!   GTID sets, and the [`MysqlResume`] a checkpoint stores.
//! - [`reader`]: [`MysqlReplication`], the binlog as committed transactions.
//! - [`preflight`]: what a server must provide, each problem with its fix.
//! - [`error`]: [`MysqlError`], transient vs definite.

pub mod error;
pub mod position;
pub mod preflight;
pub mod reader;

pub use error::MysqlError;
pub use position::{BinlogFile, MariaGtid, MariaGtidPos, MysqlGtidSet, MysqlResume};
pub use preflight::{Flavor, Preflight, preflight};
pub use reader::{MysqlEvent, MysqlReplication, MysqlReplicationConfig, RowsKind};

/// The driver, for callers that run their own queries (catalog, snapshots).
pub use mysql_async;
