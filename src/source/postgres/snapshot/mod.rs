//! PostgreSQL snapshots: the rows that existed before the stream, copied
//! consistently with it.
//!
//! - [`InitialCopy`]: on first start, every table read under the slot's
//!   exported snapshot by parallel workers, before streaming starts.
//! - [`WatermarkSnapshots`]: while streaming, tables re-copied chunk by chunk
//!   between low/high watermarks (DBLog) — for `tributary snapshot`, the
//!   signal table, tables added to the config, and initial copies
//!   interrupted by a crash.
//! - [`TablePlan`] / [`chunk_reader`]: how a table is chunked and read
//!   (binary COPY decoded straight into typed rows).
//! - [`signal`]: snapshot requests arriving through the stream.
//!
//! Progress is a [`crate::snapshot::SnapshotState`], reported to the pipeline
//! after the rows it counts, and persisted with them.

pub mod chunk_reader;
mod columnar_reader;
mod initial_copy;
mod progress;
pub mod signal;
mod table_plan;
mod watermark;

pub use initial_copy::InitialCopy;
pub use table_plan::{ChunkKey, TablePlan};
pub use watermark::{ChunkOutcome, ClosedChunk, WATERMARK_PREFIX, WatermarkSnapshots};
