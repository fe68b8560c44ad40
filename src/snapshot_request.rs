//! On-demand snapshot requests for sources whose log cannot carry a
//! message from us (MySQL/MariaDB: the binlog holds only what the server
//! writes). PostgreSQL sources use a WAL message instead
//! (`source::postgres::snapshot::signal`).
//!
//! `tributary snapshot` writes `<source>/_requests/snapshot-<id>.json` into
//! the source's lake, next to its checkpoint. The running source (or its
//! next start) polls the folder, queues the tables and records the id in its
//! [`SnapshotState::requests`], which travels in the checkpoint. A request
//! file is deleted only once a *durable* checkpoint lists its id, so a crash
//! between reading a request and checkpointing it reads it again, and a
//! request is never acted on twice after it was recorded.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::checkpoint::CheckpointStore;
use crate::sink::{LakeStore, SinkError};
use crate::snapshot::{SnapshotKind, SnapshotState};

/// Version of the request file format.
pub const REQUEST_VERSION: u32 = 1;

/// How often a running source looks for new requests. Requests are rare
/// and a listing is one cheap call; two seconds keeps `tributary snapshot`
/// feeling immediate.
pub const REQUEST_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// One request file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRequest {
    pub request_version: u32,
    /// `database.table` names.
    pub tables: Vec<String>,
    /// Empty each table in the lake before copying it.
    #[serde(default)]
    pub reset: bool,
    /// When it was written (RFC 3339), for operators.
    pub requested_at: String,
}

/// The request folder of one source.
#[derive(Debug, Clone)]
pub struct SnapshotRequests {
    store: LakeStore,
    source: String,
}

impl SnapshotRequests {
    pub fn new(store: LakeStore, source: &str) -> SnapshotRequests {
        SnapshotRequests {
            store,
            source: source.to_string(),
        }
    }

    fn folder(&self) -> String {
        format!("{}/_requests/", self.source)
    }

    /// Writes a request durably; returns its id.
    pub async fn submit(&self, request: &SnapshotRequest) -> Result<String, SinkError> {
        let id = format!(
            "snapshot-{}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            std::process::id()
        );
        let body = serde_json::to_vec_pretty(request).expect("request serializes");
        self.store
            .put_durable(&format!("{}{id}.json", self.folder()), Bytes::from(body))
            .await?;
        Ok(id)
    }

    /// Requests waiting, oldest first, as `(id, request or why unreadable)`.
    pub async fn waiting(
        &self,
    ) -> Result<Vec<(String, Result<SnapshotRequest, String>)>, SinkError> {
        let mut paths = self.store.list(&self.folder()).await?;
        paths.sort();
        let mut out = Vec::new();
        for path in paths {
            let Some(id) = path
                .rsplit('/')
                .next()
                .and_then(|name| name.strip_suffix(".json"))
            else {
                continue;
            };
            let Some(bytes) = self.store.get(&path).await? else {
                continue;
            };
            let parsed = serde_json::from_slice::<SnapshotRequest>(&bytes)
                .map_err(|e| format!("{path}: {e}"))
                .and_then(|r| {
                    if r.request_version == REQUEST_VERSION {
                        Ok(r)
                    } else {
                        Err(format!(
                            "{path}: request_version {} is not {REQUEST_VERSION}; written by another tributary version",
                            r.request_version
                        ))
                    }
                });
            out.push((id.to_string(), parsed));
        }
        Ok(out)
    }

    /// Acts on waiting requests: queues their tables (those in
    /// `state.tables`) as incremental snapshots, records their ids, and
    /// cleans up recorded ones. `true` when `state` changed.
    pub async fn poll(&self, state: &mut SnapshotState) -> Result<bool, SinkError> {
        let waiting = self.waiting().await?;
        let ids: Vec<String> = waiting.iter().map(|(id, _)| id.clone()).collect();
        let before = state.clone();
        for (id, request) in waiting {
            if state.requests.contains(&id) {
                continue;
            }
            match request {
                Err(why) => {
                    tracing::warn!(source = %self.source, request = %id, "ignoring an unreadable snapshot request: {why}");
                }
                Ok(request) => {
                    for table in &request.tables {
                        if state.tables.contains(table) {
                            state.enqueue_with(table, SnapshotKind::Incremental, request.reset);
                        } else {
                            tracing::warn!(source = %self.source, request = %id, table = %table, "requested table is not captured by this source; skipped");
                        }
                    }
                    tracing::info!(source = %self.source, request = %id, tables = ?request.tables, reset = request.reset, "snapshot requested");
                    state.requests.push(id);
                }
            }
        }
        self.clean_up(state, &ids).await?;
        Ok(*state != before)
    }

    /// Deletes the files of requests a durable checkpoint records, and
    /// forgets (in `state`) ids whose file is gone.
    pub async fn clean_up(
        &self,
        state: &mut SnapshotState,
        waiting: &[String],
    ) -> Result<(), SinkError> {
        if state.requests.is_empty() {
            return Ok(());
        }
        let durable = CheckpointStore::new(self.store.clone(), &self.source)
            .load()
            .await?
            .and_then(|c| c.snapshot)
            .map(|s| s.requests)
            .unwrap_or_default();
        for id in &state.requests {
            if waiting.contains(id) && durable.contains(id) {
                self.store
                    .delete(&format!("{}{id}.json", self.folder()))
                    .await?;
            }
        }
        state.requests.retain(|id| waiting.contains(id));
        Ok(())
    }
}
