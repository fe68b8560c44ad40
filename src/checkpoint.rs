//! Checkpoints: how far a source's changes are durable in the lake.
//!
//! Sits at the right end of the data path: the pipeline saves a checkpoint
//! only after the manifest of a flush is durable, and acknowledges the source
//! only after the checkpoint is saved. The invariant, always:
//!
//! ```text
//!   slot flush LSN  ≤  checkpoint.resume  ≤  what durable manifests cover
//! ```
//!
//! The manifest log is authoritative. Every manifest embeds the checkpoint it
//! completes, so a crash between writing a manifest and saving this file is
//! repaired at start-up by [`CheckpointStore::recover`], which rolls forward
//! to the newest manifest. The file itself (`<source>/_checkpoint.json` beside
//! the manifests) exists so operators can `checkpoint show` and
//! `checkpoint reset` without reading the log.

use serde::{Deserialize, Serialize};

use crate::position::{Position, ResumePoint};
use crate::sink::{LakeStore, Manifest, ManifestWriter, SinkError};
use crate::snapshot::SnapshotState;

/// Version of the checkpoint file format.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Durable progress of one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub checkpoint_version: u32,
    pub source: String,
    /// Sequence number of the newest manifest this checkpoint accounts for.
    pub manifest_seq: u64,
    /// The last change durable in the lake; replayed changes at or before it
    /// are skipped. `None` after a reset or before the first flush.
    pub last_position: Option<Position>,
    /// Where the source restarts (and how far it may be acknowledged).
    pub resume: Option<ResumePoint>,
    /// False when the last flush ended inside a transaction (a huge
    /// transaction flushed in parts); `resume` then points before it.
    pub txn_complete: bool,
    /// Snapshot progress (see [`SnapshotState`]); absent before the first
    /// snapshot-aware run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotState>,
    pub updated_at: String,
}

impl Checkpoint {
    /// The checkpoint a manifest completes.
    pub fn from_manifest(manifest: &Manifest) -> Checkpoint {
        Checkpoint {
            checkpoint_version: CHECKPOINT_VERSION,
            source: manifest.source.clone(),
            manifest_seq: manifest.seq,
            last_position: Some(manifest.checkpoint.last_position),
            resume: Some(manifest.checkpoint.resume.clone()),
            txn_complete: manifest.checkpoint.txn_complete,
            snapshot: manifest.checkpoint.snapshot.clone(),
            updated_at: chrono::Utc::now().to_rfc3339(),
        }
    }
}

/// Reads and writes one source's checkpoint file through the lake store.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    store: LakeStore,
    source: String,
}

impl CheckpointStore {
    pub fn new(store: LakeStore, source: &str) -> CheckpointStore {
        CheckpointStore {
            store,
            source: source.to_string(),
        }
    }

    fn path(&self) -> String {
        format!("{}/_checkpoint.json", self.source)
    }

    /// The saved checkpoint file, if any.
    pub async fn load(&self) -> Result<Option<Checkpoint>, SinkError> {
        let Some(bytes) = self.store.get(&self.path()).await? else {
            return Ok(None);
        };
        let checkpoint: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| {
            SinkError::corrupt(format!(
                "checkpoint {} is not valid ({e}); restore it or run `tributary checkpoint reset`",
                self.path()
            ))
        })?;
        if checkpoint.checkpoint_version > CHECKPOINT_VERSION {
            return Err(SinkError::corrupt(format!(
                "checkpoint {} has version {}, newer than this tributary understands ({CHECKPOINT_VERSION}); upgrade tributary",
                self.path(),
                checkpoint.checkpoint_version
            )));
        }
        Ok(Some(checkpoint))
    }

    /// Saves durably (fsync on local disk, single put on object stores).
    pub async fn save(&self, checkpoint: &Checkpoint) -> Result<(), SinkError> {
        let json = serde_json::to_vec_pretty(checkpoint).expect("checkpoint serializes");
        self.store.put_durable(&self.path(), json.into()).await
    }

    /// The checkpoint to start from: the saved file, rolled forward to the
    /// newest manifest when a crash happened after a manifest was written but
    /// before the file was saved.
    pub async fn recover(
        &self,
        manifests: &ManifestWriter,
    ) -> Result<Option<Checkpoint>, SinkError> {
        let saved = self.load().await?;
        let latest = manifests.latest().await?;
        let recovered = match (saved, latest) {
            (Some(saved), Some(latest)) if latest.seq > saved.manifest_seq => {
                tracing::info!(
                    source = %self.source,
                    manifest = latest.seq,
                    "checkpoint behind the manifest log; rolling forward"
                );
                Some(Checkpoint::from_manifest(&latest))
            }
            (None, Some(latest)) => Some(Checkpoint::from_manifest(&latest)),
            (saved, _) => saved,
        };
        if let Some(checkpoint) = &recovered {
            self.save(checkpoint).await?;
        }
        Ok(recovered)
    }
}
