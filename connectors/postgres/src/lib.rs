//! PostgreSQL logical replication for Tributary.
//!
//! This crate owns everything that speaks PostgreSQL's protocols; the daemon
//! (`tributary`) owns everything about envelopes, the lake and checkpoints.
//!
//! ```text
//!   walsender ──pgoutput v2──▶ ReplicationStream ──▶ PgoutputDecoder ──▶ PgEvent (committed txns, commit order)
//!                                    ▲                      │ streamed in-progress chunks
//!                                    │ ack(flush LSN)       ▼
//!                               daemon sink side     TransactionBuffer (memory budget, spills to disk)
//! ```
//!
//! API the daemon uses (implemented in the modules below):
//! - [`Lsn`]: the LSN newtype (`X/X` text form, serde as string).
//! - [`PgReplication::start`] → [`PgReplication::next`] yields [`PgEvent`]s:
//!   only committed transactions, in commit order, as `Begin`, `Change`…,
//!   `Commit`; `Relation` events precede the first change that uses a (new
//!   version of a) relation; `Keepalive` reports that every commit at or below
//!   `wal_end` has been delivered. [`PgReplication::ack`] reports the durable
//!   flush LSN; it is sent to the server promptly (not only on keepalives) and
//!   never exceeds what the caller passed.
//! - [`catalog`]: catalog queries over `tokio-postgres` (type resolution,
//!   tables of a publication/schema, replica identity, primary keys).
//! - [`slot`]: create/reuse slot and publication; slot state queries.
//! - [`exported_slot`]: create a slot with an exported snapshot (initial copy hand-off).
//! - [`preflight`]: the checks behind `tributary check`.
//! - [`decoder`] / [`event`] / [`transaction_buffer`]: pgoutput decoding into
//!   [`PgEvent`]s; streamed in-progress transactions are buffered (spilling to
//!   disk past a memory budget) until they commit.
//! - [`error`]: [`PgError`], split by [`PgError::is_transient`]; definite errors
//!   name their fix.

pub mod catalog;
pub mod decoder;
pub mod error;
pub mod event;
pub mod exported_slot;
pub mod lsn;
pub mod preflight;
mod reader;
pub mod replication;
pub mod slot;
pub mod sql;
pub mod transaction_buffer;

pub use catalog::{PgTypeInfo, PgTypeKind, TableIdentity};
pub use decoder::{
    Cell, ChangeKind, PgChange, PgEvent, RelColumn, RelationDesc, ReplicaIdentity, Tuple,
};
pub use error::PgError;
pub use exported_slot::ExportedSlot;
pub use lsn::Lsn;
pub use preflight::{PreflightConfig, Problem};
pub use replication::{PgReplication, PgReplicationConfig};
pub use slot::{PublicationTables, SlotState};
