//! MongoDB change streams for Tributary (work in progress).

pub mod error;

pub use error::MongoError;

/// The driver, for callers that run their own queries (catalog, snapshots).
pub use mongodb;
/// BSON types, as the driver re-exports them.
pub use mongodb::bson;
