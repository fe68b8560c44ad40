//! MongoDB change streams for Tributary.
//!
//! This crate owns everything that speaks to MongoDB; the daemon
//! (`tributary`) owns envelopes, the lake and checkpoints.
//!
//! ```text
//!  server ──change stream (watch)──▶ MongoChangeStream ──ChangeEvent──▶ daemon's MongoDB source adapter
//!    │  ▲     aggregate/getMore       (resume tokens,      (+ apply_update when an update has
//!    │  │                               startAfter)           no fullDocument)
//!    │  └──── preflight: replica set, version, pre-/post-images; cluster_time
//!    └──────── snapshot: split_id_ranges ─▶ scan_range ─Document─▶ daemon
//!                                     documents ─▶ CollectionShape (typed columns) + extended_json (_doc)
//! ```
//!
//! - [`stream`]: [`MongoChangeStream`], a database's or collection's change
//!   stream as [`ChangeEvent`]s, with the resume token after each.
//! - [`event`]: [`ChangeEvent`], decoded from the documented event shapes.
//! - [`update`]: [`apply_update`], an update description applied to the
//!   previous document.
//! - [`shape`]: [`CollectionShape`] and [`FieldType`], per-collection type
//!   inference with widening.
//! - [`extended_json`](mod@extended_json): documents as deterministic
//!   canonical Extended JSON.
//! - [`snapshot`]: `_id` ranges and range scans for initial snapshots.
//! - [`hello`](mod@hello) / [`preflight`](mod@preflight): what the server
//!   is and what it must provide, each problem with its fix.
//! - [`error`]: [`MongoError`], transient vs definite.

pub mod error;
pub mod event;
pub mod extended_json;
pub mod hello;
pub mod preflight;
pub mod shape;
pub mod snapshot;
pub mod stream;
pub mod update;

pub use error::MongoError;
pub use event::{ChangeEvent, ChangeOp, Namespace, TruncatedArray, TxnId, UpdateDescription};
pub use extended_json::{extended_json, extended_json_value};
pub use hello::{Hello, Topology, cluster_time, hello};
pub use preflight::{Preflight, preflight};
pub use shape::{CollectionShape, FieldType};
pub use snapshot::{IdRange, RangeScan, ScanConsistency, scan_range, split_id_ranges};
pub use stream::{
    ChangeStreamConfig, FullDocumentMode, MongoChangeStream, StartAt, collection_filter,
};
pub use update::apply_update;

/// The driver, for callers that run their own queries (catalog, snapshots).
pub use mongodb;
/// BSON types, as the driver re-exports them.
pub use mongodb::bson;
