//! MongoDB change streams for Tributary (work in progress).

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
