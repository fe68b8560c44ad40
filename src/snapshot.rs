//! Snapshot progress: which tables a source captures, which have their base
//! image in the lake, and how far the unfinished ones got.
//!
//! Sits beside the checkpoint on the sink side of the data path. A source
//! reports its progress as [`crate::source::SourceEvent::Progress`] only
//! *after* the rows it covers were handed to the sink, and the pipeline
//! persists it inside the next manifest's checkpoint (or the checkpoint file
//! when nothing is buffered), so a recorded chunk is always durable. After a
//! crash the source resumes every [`TableSnapshot`] at its [`ChunkCursor`]:
//! a 100M-row table continues at its next unfinished chunk, not from zero.
//!
//! Source-neutral on purpose: a cursor is the text form of key values or a
//! page number, which any source with ordered keys (MySQL, MongoDB `_id`)
//! can use too.

use serde::{Deserialize, Serialize};

/// Snapshot progress of one source (persisted in checkpoints and manifests).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotState {
    /// Tables the source captures as of this state (`schema.table`, sorted).
    /// A configured table missing here was added since: it gets snapshotted.
    pub tables: Vec<String>,
    /// Tables whose snapshot finished (their base image is in the lake).
    pub done: Vec<String>,
    /// Snapshots in progress or queued, in the order they run.
    pub pending: Vec<TableSnapshot>,
    /// Ids of on-demand requests (`crate::snapshot_request`) already
    /// queued; a request file is removed once a durable checkpoint lists it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<String>,
}

/// One table's unfinished snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSnapshot {
    /// `schema.table`.
    pub table: String,
    pub kind: SnapshotKind,
    /// Everything up to the cursor is durable; `None` = nothing yet.
    pub cursor: Option<ChunkCursor>,
    /// Rows written by this snapshot so far.
    pub rows: u64,
    /// Empty the table in the lake before its first chunk (its lake rows may
    /// include rows the source no longer has and will never delete: a
    /// table renamed onto this name, or changes lost with a purged log).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
}

/// How a table is being copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKind {
    /// Under the slot's exported snapshot, before streaming starts.
    Initial,
    /// Chunk by chunk between watermarks while the stream runs (DBLog).
    Incremental,
}

/// Where the next chunk of a table starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChunkCursor {
    /// Rows whose chunk key is greater than these values (text form, in
    /// key-column order) remain.
    KeyAfter { values: Vec<String> },
    /// Rows stored at or after this heap page remain (tables without a key).
    PageFrom { page: u32 },
}

impl SnapshotState {
    /// Whether `table` has a queued or running snapshot.
    pub fn is_pending(&self, table: &str) -> bool {
        self.pending.iter().any(|p| p.table == table)
    }

    /// Queues a snapshot of `table` (no-op when one is already pending).
    pub fn enqueue(&mut self, table: &str, kind: SnapshotKind) -> bool {
        self.enqueue_with(table, kind, false)
    }

    /// Like [`SnapshotState::enqueue`]; `reset` empties the table in the lake
    /// first. A reset asked for while a snapshot is pending restarts that
    /// snapshot from the beginning with the reset.
    pub fn enqueue_with(&mut self, table: &str, kind: SnapshotKind, reset: bool) -> bool {
        if let Some(entry) = self.pending_mut(table) {
            if reset && !entry.reset {
                entry.reset = true;
                entry.cursor = None;
                entry.rows = 0;
                return true;
            }
            return false;
        }
        self.pending.push(TableSnapshot {
            table: table.to_string(),
            kind,
            cursor: None,
            rows: 0,
            reset,
        });
        true
    }

    /// Records a durable chunk of `table` with `rows` rows. `next` is where
    /// the table's next chunk starts; `None` means the table is complete (it
    /// moves to `done`). Returns the rows the table's snapshot has written.
    pub fn chunk_done(&mut self, table: &str, rows: u64, next: Option<ChunkCursor>) -> u64 {
        let Some(entry) = self.pending_mut(table) else {
            return rows;
        };
        entry.rows += rows;
        let total = entry.rows;
        match next {
            Some(cursor) => entry.cursor = Some(cursor),
            None => self.finish(table),
        }
        total
    }

    /// Marks the first pending snapshot of `table` finished.
    pub fn finish(&mut self, table: &str) {
        self.pending.retain(|p| p.table != table);
        if !self.done.iter().any(|d| d == table) {
            self.done.push(table.to_string());
            self.done.sort();
        }
    }

    /// Drops a pending snapshot without marking it done (table gone).
    pub fn skip(&mut self, table: &str) {
        self.pending.retain(|p| p.table != table);
    }

    /// The pending entry of `table`.
    pub fn pending_mut(&mut self, table: &str) -> Option<&mut TableSnapshot> {
        self.pending.iter_mut().find(|p| p.table == table)
    }

    /// After a restart the exported snapshot of an interrupted initial copy
    /// is gone: its unfinished tables continue incrementally from their
    /// cursors (never as a copy inconsistent with the stream).
    pub fn demote_initial(&mut self) {
        for p in &mut self.pending {
            p.kind = SnapshotKind::Incremental;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enqueue_finish_skip() {
        let mut s = SnapshotState::default();
        assert!(s.enqueue("public.a", SnapshotKind::Initial));
        assert!(!s.enqueue("public.a", SnapshotKind::Incremental));
        assert!(s.enqueue("public.b", SnapshotKind::Initial));
        s.demote_initial();
        assert!(
            s.pending
                .iter()
                .all(|p| p.kind == SnapshotKind::Incremental)
        );
        assert_eq!(
            s.chunk_done("public.a", 5, Some(ChunkCursor::PageFrom { page: 3 })),
            5
        );
        assert_eq!(s.chunk_done("public.a", 2, None), 7);
        s.skip("public.b");
        assert_eq!(s.done, vec!["public.a".to_string()]);
        assert!(s.pending.is_empty());
    }

    #[test]
    fn cursor_json_shape() {
        let c = ChunkCursor::KeyAfter {
            values: vec!["42".into()],
        };
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"kind":"key_after","values":["42"]}"#
        );
    }
}
