//! Tributary: change data capture from database logs into a lake of ordered
//! Parquet deltas plus bronze merge manifests.
//!
//! ```text
//!  ┌──────────────────┐ events ┌──────────────┐ Envelope ┌──────────┐ files+manifest ┌────────────┐
//!  │ connector        │──────▶│ source adapter│────────▶│ LakeSink │──────────────▶│ lake store │
//!  │ pgoutput, binlog,│        │ (typed rows)  │          │ (Parquet)│                └────────────┘
//!  │ change streams   │        └──────────────┘          └──────────┘                      │ durable
//!  └──────────────────┘                                                                      ▼
//!        ▲────── ack(resume point) ◀──────── CheckpointStore ◀──────────────────── manifest written
//! ```
//!
//! One ordered task per source ([`pipeline`]): next change → envelope → sink
//! write → flush (rows/bytes/interval) → manifest durable → checkpoint saved →
//! source acked. Nothing is acknowledged to a source before the data it covers
//! is durable in the lake, so a crash at any moment replays, never loses.

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod envelope;
pub mod error;
pub mod http;
pub mod merge;
pub mod pipeline;
pub mod position;
pub mod registry;
pub mod schema;
pub mod sink;
pub mod snapshot;
pub mod snapshot_request;
pub mod source;
