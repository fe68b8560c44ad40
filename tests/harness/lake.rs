//! Reading a lake directory the way an outside consumer would: the
//! checkpoint file, the manifest log and the delta files the manifests list.
//! JSON is read with `serde_json::Value` so these checks do not depend on
//! the daemon's own types.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use tributary::envelope::Value;

/// `<lake>/<source>/_checkpoint.json`.
pub fn checkpoint_path(lake_root: &Path, source: &str) -> PathBuf {
    lake_root.join(source).join("_checkpoint.json")
}

/// The checkpoint file, if it exists (panics if it is not JSON).
pub fn read_checkpoint(lake_root: &Path, source: &str) -> Option<Json> {
    let path = checkpoint_path(lake_root, source);
    let bytes = std::fs::read(&path).ok()?;
    Some(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{} is not JSON ({e}): {}",
            path.display(),
            String::from_utf8_lossy(&bytes)
        )
    }))
}

/// Whether a checkpoint records a table whose snapshot is under way (a
/// pending entry with a cursor: some chunks are durable, not all).
pub fn snapshot_under_way(checkpoint: &Json) -> bool {
    checkpoint["snapshot"]["pending"]
        .as_array()
        .is_some_and(|p| p.iter().any(|t| !t["cursor"].is_null()))
}

/// Whether a checkpoint has no snapshot pending.
pub fn snapshots_done(checkpoint: &Json) -> bool {
    checkpoint["snapshot"]["pending"]
        .as_array()
        .is_none_or(|p| p.is_empty())
}

/// `last_position.commit_lsn` of a checkpoint (or of a manifest's embedded
/// checkpoint).
pub fn checkpoint_commit_lsn(checkpoint: &Json) -> Option<u64> {
    checkpoint.get("last_position")?.get("commit_lsn")?.as_u64()
}

/// `resume.lsn` of a checkpoint.
pub fn checkpoint_resume_lsn(checkpoint: &Json) -> Option<u64> {
    checkpoint.get("resume")?.get("lsn")?.as_u64()
}

/// One manifest of the log.
#[derive(Debug, Clone)]
pub struct ManifestFile {
    pub seq: u64,
    pub path: PathBuf,
    pub json: Json,
}

impl ManifestFile {
    /// The checkpoint this manifest completes (`checkpoint` field).
    pub fn checkpoint(&self) -> &Json {
        self.json.get("checkpoint").unwrap_or_else(|| {
            panic!(
                "manifest {} has no `checkpoint`: {}",
                self.path.display(),
                self.json
            )
        })
    }

    /// `(table, delta file path relative to the lake root)` for every file.
    pub fn files(&self, lake_root: &Path, source: &str) -> Vec<(String, PathBuf)> {
        let tables = self
            .json
            .get("tables")
            .and_then(Json::as_array)
            .unwrap_or_else(|| {
                panic!(
                    "manifest {} has no `tables` array: {}",
                    self.path.display(),
                    self.json
                )
            });
        let mut out = Vec::new();
        for table in tables {
            let name = table_name(table).unwrap_or_else(|| {
                panic!(
                    "manifest {}: a table entry has no name: {table}",
                    self.path.display()
                )
            });
            let files = table
                .get("files")
                .and_then(Json::as_array)
                .unwrap_or_else(|| {
                    panic!(
                        "manifest {}: table {name} has no `files`: {table}",
                        self.path.display()
                    )
                });
            for file in files {
                let rel = file
                    .get("path")
                    .or_else(|| file.get("key"))
                    .or_else(|| file.get("file"))
                    .and_then(Json::as_str)
                    .unwrap_or_else(|| {
                        panic!(
                            "manifest {}: file entry without a path: {file}",
                            self.path.display()
                        )
                    });
                out.push((name.clone(), resolve(lake_root, source, rel)));
            }
        }
        out
    }
}

/// A manifest's table entry name: `table` / `name` (maybe with `namespace`).
fn table_name(table: &Json) -> Option<String> {
    let name = table
        .get("table")
        .or_else(|| table.get("qualified_name"))
        .or_else(|| table.get("name"))?
        .as_str()?;
    match table.get("namespace").and_then(Json::as_str) {
        Some(ns) if !name.contains('.') => Some(format!("{ns}.{name}")),
        _ => Some(name.to_string()),
    }
}

/// A manifest's file path: relative to the lake root, or to the source dir.
fn resolve(lake_root: &Path, source: &str, rel: &str) -> PathBuf {
    let rel = rel.trim_start_matches('/');
    let from_root = lake_root.join(rel);
    if from_root.exists() || rel.starts_with(&format!("{source}/")) {
        from_root
    } else {
        lake_root.join(source).join(rel)
    }
}

/// Every manifest of `source`, in sequence order.
pub fn manifests(lake_root: &Path, source: &str) -> Vec<ManifestFile> {
    let dir = lake_root.join(source).join("_manifests");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.expect("reading the manifest dir").path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = file_name.strip_suffix(".json") else {
            continue;
        };
        if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue; // staged uploads, other files
        }
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let json: Json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("manifest {} is not JSON: {e}", path.display()));
        let seq: u64 = stem.parse().expect("digits");
        if let Some(inner) = json.get("seq").and_then(Json::as_u64) {
            assert_eq!(inner, seq, "manifest {} says seq {inner}", path.display());
        }
        out.push(ManifestFile { seq, path, json });
    }
    out.sort_by_key(|m| m.seq);
    out
}

/// Asserts there is at least one manifest, that the sequence has no gaps and
/// every file a manifest lists exists. Returns the manifests.
pub fn assert_manifests_sound(lake_root: &Path, source: &str) -> Vec<ManifestFile> {
    let all = manifests(lake_root, source);
    assert!(
        !all.is_empty(),
        "no manifest under {}",
        lake_root.join(source).join("_manifests").display()
    );
    for pair in all.windows(2) {
        assert_eq!(
            pair[1].seq,
            pair[0].seq + 1,
            "manifest sequence has a gap between {} and {}",
            pair[0].path.display(),
            pair[1].path.display()
        );
    }
    let mut missing = Vec::new();
    for manifest in &all {
        for (table, file) in manifest.files(lake_root, source) {
            if !file.is_file() {
                missing.push(format!(
                    "manifest {} table {table}: {}",
                    manifest.seq,
                    file.display()
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "files listed in manifests are missing:\n{}",
        missing.join("\n")
    );
    all
}

/// Reads a Parquet file with the daemon's reader: column names and rows.
pub fn read_parquet(path: &Path) -> (Vec<String>, Vec<Vec<Value>>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    tributary::merge::read_parquet_rows(bytes::Bytes::from(bytes))
        .unwrap_or_else(|e| panic!("cannot read Parquet {}: {e}", path.display()))
}

/// One delta row as seen through its position.
#[derive(Debug, Clone)]
pub struct DeltaRow {
    pub manifest: u64,
    pub file: PathBuf,
    /// Every column but `_pos`, as `name=value` debug text.
    pub content: String,
}

/// Reads every delta file listed by a manifest and groups rows by
/// `(table, _pos)`. Returns the map of every occurrence.
pub fn delta_rows_by_position(
    lake_root: &Path,
    source: &str,
) -> BTreeMap<(String, String), Vec<DeltaRow>> {
    let mut by_pos: BTreeMap<(String, String), Vec<DeltaRow>> = BTreeMap::new();
    for manifest in manifests(lake_root, source) {
        for (table, file) in manifest.files(lake_root, source) {
            let (columns, rows) = read_parquet(&file);
            let pos_index = columns.iter().position(|c| c == "_pos").unwrap_or_else(|| {
                panic!(
                    "delta file {} has no _pos column: {columns:?}",
                    file.display()
                )
            });
            for row in rows {
                let pos = match &row[pos_index] {
                    Value::Text(s) => s.clone(),
                    other => panic!("_pos in {} is not text: {other:?}", file.display()),
                };
                let content: Vec<String> = columns
                    .iter()
                    .zip(&row)
                    .enumerate()
                    .filter(|(i, _)| *i != pos_index)
                    .map(|(_, (name, value))| format!("{name}={value:?}"))
                    .collect();
                by_pos
                    .entry((table.clone(), pos))
                    .or_default()
                    .push(DeltaRow {
                        manifest: manifest.seq,
                        file: file.clone(),
                        content: content.join(", "),
                    });
            }
        }
    }
    by_pos
}

/// Asserts every `(table, _pos)` that appears more than once has identical
/// content everywhere (a replay after a crash may rewrite, never change).
/// With `allow_duplicates == false`, any repeat fails (clean restarts).
/// Returns (distinct positions, total occurrences).
pub fn assert_positions_consistent(
    lake_root: &Path,
    source: &str,
    allow_duplicates: bool,
) -> (usize, usize) {
    let by_pos = delta_rows_by_position(lake_root, source);
    let total: usize = by_pos.values().map(Vec::len).sum();
    let mut problems = Vec::new();
    let mut repeated = 0usize;
    for ((table, pos), rows) in &by_pos {
        if rows.len() < 2 {
            continue;
        }
        repeated += 1;
        let differs = rows.iter().any(|r| r.content != rows[0].content);
        if differs || !allow_duplicates {
            if problems.len() < 10 {
                let mut text = format!(
                    "{table} _pos {pos} appears {} times{}:\n",
                    rows.len(),
                    if differs {
                        " WITH DIFFERENT CONTENT"
                    } else {
                        ""
                    }
                );
                for r in rows {
                    text.push_str(&format!(
                        "    manifest {} file {}: {}\n",
                        r.manifest,
                        r.file.display(),
                        super::abbreviate(&r.content, 400)
                    ));
                }
                problems.push(text);
            } else {
                problems.push(String::new());
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} positions violate the delta invariant ({} repeated of {} distinct; first 10 shown):\n{}",
        problems.len(),
        repeated,
        by_pos.len(),
        problems.concat()
    );
    eprintln!(
        "delta check: {} distinct positions, {total} rows, {repeated} replayed positions (all identical)",
        by_pos.len()
    );
    (by_pos.len(), total)
}
