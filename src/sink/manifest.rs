//! Bronze merge manifests: the ordered log of what each flush made durable.
//!
//! Sits at the end of every flush: [`super::LakeSink`] writes the delta files,
//! then one [`Manifest`] listing them, and only then reports the flush
//! durable. The manifest log (`<source>/_manifests/<seq>.json`, `seq` gapless
//! from 1) is therefore the authoritative record of the lake: readers take
//! exactly the files manifests list (orphans from an interrupted flush are
//! ignored), and each manifest embeds the checkpoint it completes, so a crash
//! after the manifest but before the checkpoint file is rolled forward.
//!
//! Every manifest states the merge rule ([`MergeRule`]) a reader applies to
//! build the current table state; `crate::merge` and `scripts/lake_merge.py`
//! implement it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::delta_writer::OpCounts;
use super::error::SinkError;
use super::store::LakeStore;
use crate::envelope::ENVELOPE_VERSION;
use crate::position::{Position, ResumePoint};
use crate::schema::ColumnSchema;
use crate::snapshot::SnapshotState;

/// Version of the manifest format. 2: tables name their schema version
/// (`schema`, `schema_change`, `schema_versions`) and the merge rule matches
/// columns by id (rule version 2); readers of version 1 would merge renamed
/// columns wrongly, so they must refuse. Version 1 manifests are still read.
pub const MANIFEST_VERSION: u32 = 2;

/// The checkpoint a manifest completes (given by the pipeline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestCheckpoint {
    /// The last change included in this or an earlier manifest.
    pub last_position: Position,
    /// Where the source resumes.
    pub resume: ResumePoint,
    /// False when the flush ended inside a transaction.
    pub txn_complete: bool,
    /// Snapshot progress as of this flush (absent in lakes written before
    /// snapshots existed; an optional field, so no version bump).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotState>,
}

/// The registered schema version a shape of a table was written with (see
/// `crate::registry`): the subject, its version, and the schema id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaRef {
    pub subject: String,
    pub version: u32,
    pub id: u32,
}

/// A table shape as registered: its schema version and what the registry
/// recorded about the change that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredShape {
    pub schema: SchemaRef,
    /// The compatibility mode it was checked under (`BACKWARD`, ...).
    pub compatibility: String,
    /// False when registered by `on_incompatible_schema = "new_version"`.
    pub compatible: bool,
    /// What changed against the previous version.
    pub changes: Vec<String>,
    /// Why the check failed (empty when compatible).
    pub problems: Vec<String>,
}

/// Marks a boundary in the manifest log: the first files of a table written
/// with a schema version other than the one its previous files had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaChange {
    /// The version of the table's previous files (`None`: its first files).
    pub previous_version: Option<u32>,
    pub compatibility: String,
    /// False: consumers must treat this as a breaking change.
    pub compatible: bool,
    pub changes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// One delta file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path relative to the lake root.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub first_pos: String,
    pub last_pos: String,
    /// Every row is a snapshot read (`r`).
    pub snapshot: bool,
}

/// The files of one table shape in one flush.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestTable {
    /// `namespace.name`.
    pub table: String,
    pub namespace: String,
    pub name: String,
    pub schema_fingerprint: String,
    /// The registered schema version of these files (absent only in lakes
    /// written before the registry existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaRef>,
    /// Present when these files start a new schema version of the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_change: Option<SchemaChange>,
    pub key_columns: Vec<String>,
    pub columns: Vec<ColumnSchema>,
    pub files: Vec<ManifestFile>,
    pub ops: OpCounts,
    pub first_pos: String,
    pub last_pos: String,
}

/// How to turn the deltas into the current state of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeRule {
    pub rule_version: u32,
    pub order_by: String,
    pub rules: Vec<String>,
}

impl Default for MergeRule {
    fn default() -> MergeRule {
        MergeRule {
            rule_version: 2,
            order_by: "_pos".into(),
            rules: [
                "order every row of a table by _pos (a plain string comparison); rows with the same _pos are the same change (a replayed flush) and count once",
                "per key (key_columns) the row with the largest _pos wins",
                "a winning row with _op 'd' removes the key",
                "a row with _op 't' removes every row of the table with a smaller _pos",
                "a column named in _unchanged keeps the value from the latest earlier row of the same key (after its last 'd' and the last 't') where it was not unchanged",
                "rows with _op 'r' (snapshot) are ordinary base images, merged like 'c'",
                "tables without key columns are append-only: every row is its own key",
                "columns are matched across schema versions by the `id` in each manifest entry's columns (a rename keeps the id; a column dropped and added again gets a new one), by name where a column has no id; the table's columns are those of its latest entry",
                "a row from a file that lacks one of the table's columns has NULL there; a column no longer in the latest entry (dropped at the source) is not part of the table",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// One flush of one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub seq: u64,
    pub source: String,
    pub envelope_version: u32,
    /// RFC 3339; the only field that differs when a flush is retried.
    pub created_at: String,
    pub first_pos: String,
    pub last_pos: String,
    pub checkpoint: ManifestCheckpoint,
    pub tables: Vec<ManifestTable>,
    /// The schema version of every table's latest files as of this manifest
    /// (cumulative over the log), so the next flush knows where a version
    /// changes without reading older manifests.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub schema_versions: std::collections::BTreeMap<String, u32>,
    pub merge_rule: MergeRule,
}

/// Path of manifest `seq` of `source`.
pub fn manifest_path(source: &str, seq: u64) -> String {
    format!("{source}/_manifests/{seq:020}.json")
}

/// Path of a delta file:
/// `<source>/<ns>.<table>/date=YYYY-MM-DD/<first>_<last>_v<version>_<fp8>.parquet`,
/// dated by the commit timestamp (UTC) of its first row; `v<version>` is the
/// registered schema version (left out when there is none).
pub fn delta_path(
    source: &str,
    qualified_table: &str,
    first_commit_ts_micros: i64,
    first_pos: &str,
    last_pos: &str,
    schema_version: Option<u32>,
    fingerprint: &str,
) -> String {
    let date = DateTime::<Utc>::from_timestamp_micros(first_commit_ts_micros)
        .unwrap_or_default()
        .format("%Y-%m-%d");
    let fp: String = fingerprint.chars().take(8).collect();
    let version = schema_version.map(|v| format!("v{v}_")).unwrap_or_default();
    format!("{source}/{qualified_table}/date={date}/{first_pos}_{last_pos}_{version}{fp}.parquet")
}

/// Reads and writes one source's manifest log.
#[derive(Debug, Clone)]
pub struct ManifestWriter {
    store: LakeStore,
    source: String,
}

impl ManifestWriter {
    pub fn new(store: LakeStore, source: &str) -> ManifestWriter {
        ManifestWriter {
            store,
            source: source.to_string(),
        }
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Writes a manifest durably. The caller writes its files first.
    pub async fn write(&self, manifest: &Manifest) -> Result<(), SinkError> {
        let json = serde_json::to_vec_pretty(manifest).map_err(|e| SinkError::Encode {
            table: format!("manifest {}", manifest.seq),
            message: e.to_string(),
        })?;
        self.store
            .put_durable(&manifest_path(&self.source, manifest.seq), json.into())
            .await
    }

    /// Sequence numbers of every manifest, ascending.
    pub async fn list(&self) -> Result<Vec<u64>, SinkError> {
        let prefix = format!("{}/_manifests", self.source);
        let mut seqs = Vec::new();
        for path in self.store.list(&prefix).await? {
            let name = path.rsplit('/').next().unwrap_or_default();
            let Some(seq) = name
                .strip_suffix(".json")
                .and_then(|s| s.parse::<u64>().ok())
            else {
                tracing::warn!(path = %path, "ignoring a file in the manifest directory that is not a manifest");
                continue;
            };
            seqs.push(seq);
        }
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// Manifest `seq`; a definite error when it is missing or unreadable.
    pub async fn read(&self, seq: u64) -> Result<Manifest, SinkError> {
        let path = manifest_path(&self.source, seq);
        let bytes = self.store.get(&path).await?.ok_or_else(|| {
            SinkError::corrupt(format!(
                "manifest {path} in {} is missing; restore it from a backup (the manifest log must be gapless)",
                self.store.root_display()
            ))
        })?;
        parse_manifest(&bytes, &path)
    }

    /// The newest manifest, if any.
    pub async fn latest(&self) -> Result<Option<Manifest>, SinkError> {
        match self.list().await?.last() {
            Some(&seq) => self.read(seq).await.map(Some),
            None => Ok(None),
        }
    }
}

/// Parses and version-checks a manifest read from `path`.
pub fn parse_manifest(bytes: &[u8], path: &str) -> Result<Manifest, SinkError> {
    #[derive(Deserialize)]
    struct Versions {
        manifest_version: u32,
        envelope_version: u32,
    }
    let versions: Versions = serde_json::from_slice(bytes).map_err(|e| {
        SinkError::corrupt(format!(
            "manifest {path} is not a tributary manifest ({e}); restore it from a backup or remove the source's lake directory and re-snapshot"
        ))
    })?;
    if versions.manifest_version > MANIFEST_VERSION || versions.envelope_version > ENVELOPE_VERSION
    {
        return Err(SinkError::corrupt(format!(
            "manifest {path} has manifest version {} / envelope version {}, newer than this tributary understands ({MANIFEST_VERSION} / {ENVELOPE_VERSION}); upgrade tributary",
            versions.manifest_version, versions.envelope_version
        )));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        SinkError::corrupt(format!(
            "manifest {path} is damaged ({e}); restore it from a backup or remove the source's lake directory and re-snapshot"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_sort_and_date() {
        assert_eq!(
            manifest_path("pg", 7),
            "pg/_manifests/00000000000000000007.json"
        );
        assert!(manifest_path("pg", 9) < manifest_path("pg", 10));
        let p = delta_path(
            "pg",
            "public.t",
            86_400_000_000,
            "A",
            "B",
            Some(3),
            "0123456789abcdef",
        );
        assert_eq!(p, "pg/public.t/date=1970-01-02/A_B_v3_01234567.parquet");
    }

    #[test]
    fn newer_versions_are_refused() {
        let json = br#"{"manifest_version": 3, "envelope_version": 1}"#;
        let err = parse_manifest(json, "x").unwrap_err().to_string();
        assert!(err.contains("upgrade tributary"), "{err}");
        let err = parse_manifest(b"{", "x").unwrap_err().to_string();
        assert!(err.contains("not a tributary manifest"), "{err}");
    }
}
