//! Reading the schema registry a daemon persisted in the lake
//! (`_schemas/subjects/<subject>/versions/<v>.json`) and checking the files
//! the manifests list against it: the rule "a delta file never mixes two
//! schema versions" checked from the outside.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value as Json;

use super::daemon::{Daemon, TestConfig, wait_caught_up};
use super::lake;
use super::postgres::TestDb;
use super::snapshot::wait_snapshots_done;

/// The subject of `table` (`schema.table`) of `source`.
pub fn subject(source: &str, table: &str) -> String {
    format!("{source}.{table}-value")
}

/// Every persisted version of `subject`, ascending.
pub fn versions(lake_root: &Path, subject: &str) -> Vec<Json> {
    let dir = lake_root
        .join("_schemas")
        .join("subjects")
        .join(subject)
        .join("versions");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<Json> = entries
        .map(|e| {
            let path = e.expect("reading the registry directory").path();
            let text = std::fs::read_to_string(&path).expect("reading a version file");
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}\n{text}", path.display()))
        })
        .collect();
    out.sort_by_key(|v| v["version"].as_u64());
    for (i, v) in out.iter().enumerate() {
        assert_eq!(
            v["version"].as_u64(),
            Some(i as u64 + 1),
            "versions of {subject} are not 1..n: {out:#?}"
        );
    }
    out
}

/// Column names of a version's table schema.
pub fn version_columns(version: &Json) -> Vec<String> {
    version["table"]["columns"]
        .as_array()
        .expect("a version has table.columns")
        .iter()
        .map(|c| c["name"].as_str().expect("column name").to_string())
        .collect()
}

/// Checks every manifest entry against the registry: it names a registered
/// version whose fingerprint is the entry's; every file it lists holds
/// exactly that version (Parquet metadata `tributary.schema`) and exactly
/// that version's columns. Returns, per table, the versions in manifest
/// order (deduplicated), and the `schema_change` markers seen.
pub fn assert_files_match_versions(
    lake_root: &Path,
    source: &str,
) -> BTreeMap<String, (Vec<u64>, Vec<Json>)> {
    let mut seen: BTreeMap<String, (Vec<u64>, Vec<Json>)> = BTreeMap::new();
    for manifest in lake::manifests(lake_root, source) {
        for entry in manifest.json["tables"].as_array().expect("tables") {
            let table = entry["table"].as_str().expect("table").to_string();
            let schema = &entry["schema"];
            let version = schema["version"].as_u64().unwrap_or_else(|| {
                panic!(
                    "manifest {} entry {table} names no schema version: {entry}",
                    manifest.seq
                )
            });
            let subject_name = schema["subject"].as_str().expect("subject");
            assert_eq!(subject_name, subject(source, &table));
            let registered = versions(lake_root, subject_name);
            let v = registered.get(version as usize - 1).unwrap_or_else(|| {
                panic!("{subject_name} has no version {version} in the registry")
            });
            assert_eq!(
                v["fingerprint"], entry["schema_fingerprint"],
                "manifest {} entry {table}: fingerprint differs from registry version {version}",
                manifest.seq
            );
            assert_eq!(v["id"], schema["id"], "schema id of {table} v{version}");
            let columns = version_columns(v);
            for file in entry["files"].as_array().expect("files") {
                let path = lake_root.join(file["path"].as_str().expect("path"));
                let bytes = std::fs::read(&path).expect("reading a delta file");
                let reader = parquet::file::serialized_reader::SerializedFileReader::new(
                    bytes::Bytes::from(bytes),
                )
                .expect("a Parquet file");
                use parquet::file::reader::FileReader;
                let meta = reader.metadata().file_metadata();
                let kv: BTreeMap<String, String> = meta
                    .key_value_metadata()
                    .map(|kvs| {
                        kvs.iter()
                            .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
                            .collect()
                    })
                    .unwrap_or_default();
                let file_schema: Json =
                    serde_json::from_str(kv.get("tributary.schema").unwrap_or_else(|| {
                        panic!("{} has no tributary.schema metadata", path.display())
                    }))
                    .expect("tributary.schema is JSON");
                assert_eq!(
                    file_schema["version"].as_u64(),
                    Some(version),
                    "{} holds version {file_schema} but its manifest entry says {version}",
                    path.display()
                );
                let data: Vec<String> = meta
                    .schema_descr()
                    .root_schema()
                    .get_fields()
                    .iter()
                    .map(|f| f.name().to_string())
                    .filter(|n| !n.starts_with('_'))
                    .collect();
                let expected: Vec<String> = columns
                    .iter()
                    .filter(|c| !c.starts_with('_'))
                    .cloned()
                    .collect();
                assert_eq!(
                    data,
                    expected,
                    "{} has columns {data:?}, but version {version} of {table} has {expected:?}",
                    path.display()
                );
            }
            let (order, changes) = seen.entry(table).or_default();
            if order.last() != Some(&version) {
                order.push(version);
            }
            if !entry["schema_change"].is_null() {
                changes.push(entry["schema_change"].clone());
            }
        }
    }
    seen
}

/// Waits until the daemon has acted on everything up to now: two catch-ups
/// (the second marker is written after the daemon handled the first, so any
/// snapshot request it wrote into the WAL while handling a change of shape
/// precedes it), then no snapshot pending.
pub async fn settle(db: &TestDb, config: &TestConfig, tables: &[&str], daemon: &mut dyn Daemon) {
    for _ in 0..2 {
        wait_caught_up(
            db,
            &config.lake,
            &config.source,
            Duration::from_secs(120),
            daemon,
        )
        .await;
    }
    wait_snapshots_done(db, config, tables, Duration::from_secs(180), daemon).await;
}
