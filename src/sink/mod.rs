//! Sinks: where envelopes become durable.
//!
//! Sits at the right end of the data path
//! (`Source → Envelope → pipeline → sink → lake store`). Today there is one
//! sink, [`LakeSink`]: ordered Parquet delta files per table plus a gapless
//! log of bronze merge manifests on local disk or object storage.
//!
//! Files, one job each:
//! - [`store`]: the object store / local disk behind the lake, durable puts.
//! - [`values`]: typed values into Arrow arrays (and JSON for `_before`).
//! - [`delta_writer`]: the buffered rows of one table shape → one Parquet file.
//! - [`manifest`]: the manifest format, paths, and the manifest log.
//! - [`lake`]: [`LakeSink`], tying the above into write / flush.
//! - [`error`]: [`SinkError`], transient vs definite.
//!
//! # The sink contract
//!
//! - **Ordering.** Envelopes of one source arrive in [`Position`] order. The
//!   sink keeps them as `_pos` sort keys; readers order by `_pos`, never by
//!   file or arrival order.
//! - **At-least-once.** After a crash the source redelivers from the last
//!   checkpoint, so positions the sink already wrote can arrive again. That
//!   is harmless: a delta file's name is derived from its first and last
//!   positions and schema fingerprint, so a rewrite of the same changes lands
//!   on the same name with the same bytes, and readers treat the same `_pos`
//!   seen twice as one change.
//! - **All-or-nothing flushes.** [`LakeSink::flush`] writes every file
//!   durably, then the manifest that lists them, and only then returns it.
//!   The manifest carries the checkpoint ([`ManifestCheckpoint`]), so from
//!   the checkpoint's point of view a flush happened exactly when its
//!   manifest exists. Files without a manifest (an interrupted flush) are
//!   ignored by readers and overwritten by the retry.
//! - **Never drop.** A value that does not fit its column is a definite
//!   error naming table, column and position.
//!
//! [`Position`]: crate::position::Position

pub mod delta_writer;
pub mod error;
pub mod lake;
pub mod manifest;
pub mod store;
pub mod values;

pub use error::SinkError;
pub use lake::{LakeSink, SealedFlush};
pub use manifest::{
    Manifest, ManifestCheckpoint, ManifestFile, ManifestTable, ManifestWriter, MergeRule,
    RegisteredShape, SchemaChange, SchemaRef,
};
pub use store::LakeStore;

#[cfg(test)]
mod tests;
