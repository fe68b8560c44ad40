//! The schema registry: every shape of every table, versioned, with its Avro
//! schema, kept in the lake it describes.
//!
//! Where it sits in the data path:
//!
//! ```text
//! source ──Envelope{table: TableSchema}──▶ pipeline ──register(shape)──▶ SchemaRegistry ──▶ <lake>/_schemas/
//!                                             │  (first change of a shape this run; checked for compatibility)
//!                                             ▼
//!                                          LakeSink: files and manifest entries name subject/version/id
//! ```
//!
//! The pipeline registers a shape before buffering the first change of it,
//! so every version a file or manifest names is already durable. A shape
//! registered before (same fingerprint) returns its version without touching
//! storage; a new shape is checked against the subject's history
//! ([`compatibility::check`]) and, if it passes (or the source says
//! `new_version`), written as the next version. The HTTP API (`crate::http`)
//! serves the same data read-only in the Confluent REST shape.
//!
//! Schema ids are derived from the Avro schema text (the first 31 bits of
//! its SHA-256, 0 mapped to 1): the same schema has the same id under every
//! subject and in every lake, and an id never depends on registration order.
//! Should two different schema texts of one registry ever collide, the later
//! one takes the next free id (and keeps it: ids are persisted with their
//! version).

pub mod avro_schema;
pub mod compatibility;
pub mod version_file;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use apache_avro::Schema;
use apache_avro::rabin::Rabin;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::config::{Compatibility, OnIncompatible};
use crate::schema::TableSchema;
use crate::sink::{LakeStore, SinkError};
pub use version_file::{REGISTRY_DIR, SchemaVersion, version_path};

/// Version files read concurrently when a registry opens.
const PARALLEL_READS: usize = 16;

/// Errors of the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A change of shape that breaks the compatibility mode, under
    /// `on_incompatible_schema = "fail"` (definite; nothing was written).
    #[error(
        "table {table} changed shape incompatibly ({mode_name}) after schema version {latest_version} of {subject}: {change_list}; {problem_list}. Options: revert the change at the source; or set on_incompatible_schema = \"new_version\" for this source to register version {next} and continue (the manifest marks the boundary); or relax schema_compatibility / table_compatibility. The checkpoint has not moved past this change; restart after changing the config",
        mode_name = .mode.confluent_name(),
        change_list = in_words(.changes, "the shape changed"),
        problem_list = in_words(.problems, "the check failed"),
        next = .latest_version + 1,
    )]
    Incompatible {
        subject: String,
        /// `namespace.table`.
        table: String,
        /// The subject's latest version, the one the change follows.
        latest_version: u32,
        /// The mode the check failed under.
        mode: Compatibility,
        /// What changed against the latest version, in words.
        changes: Vec<String>,
        /// Why the check failed, each naming the direction and version.
        problems: Vec<String>,
    },
    /// Reading or writing the registry's files failed (transient or
    /// definite as the [`SinkError`] is).
    #[error("schema registry: {0}")]
    Store(#[from] SinkError),
    /// A registry file is damaged, missing or newer than this build
    /// (definite; the message names the file and the remedy).
    #[error("schema registry: {0}")]
    Corrupt(String),
    /// A table shape has no valid Avro schema (a bug; definite).
    #[error("schema registry: {0}")]
    InvalidSchema(String),
}

/// `items` joined by `; `, or `empty` when there are none.
fn in_words(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        empty.to_string()
    } else {
        items.join("; ")
    }
}

impl RegistryError {
    /// Whether retrying may succeed (storage unavailable).
    pub fn is_transient(&self) -> bool {
        matches!(self, RegistryError::Store(e) if e.is_transient())
    }
}

/// The result of [`SchemaRegistry::register`].
#[derive(Debug, Clone)]
pub struct Registered {
    /// The version this shape has (new or found).
    pub version: SchemaVersion,
    /// True when this call wrote the version.
    pub new: bool,
}

/// The registry of one lake root (cheap to clone; shared by the pipelines
/// writing to that root and by the HTTP server).
#[derive(Debug, Clone)]
pub struct SchemaRegistry {
    store: LakeStore,
    state: Arc<RwLock<State>>,
    /// Serialises registrations (version numbers never race).
    writing: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug, Default)]
struct State {
    /// Versions of each subject, version `i + 1` at index `i`.
    subjects: BTreeMap<String, Vec<SchemaVersion>>,
    /// Schema id → (subject, version) of every version with that id.
    ids: HashMap<u32, Vec<(String, u32)>>,
}

impl State {
    fn add(&mut self, version: SchemaVersion) {
        self.ids
            .entry(version.id)
            .or_default()
            .push((version.subject.clone(), version.version));
        self.subjects
            .entry(version.subject.clone())
            .or_default()
            .push(version);
    }

    /// A free id for `schema` starting from its hash (reusing the id of an
    /// identical schema text).
    fn id_for(&self, schema: &str) -> u32 {
        let digest = Sha256::digest(schema.as_bytes());
        let mut id = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) & 0x7fff_ffff;
        loop {
            if id == 0 {
                id = 1;
            }
            match self.ids.get(&id).and_then(|v| v.first()) {
                None => return id,
                Some((subject, version)) => {
                    if self.subjects[subject][*version as usize - 1].schema == schema {
                        return id;
                    }
                }
            }
            id = (id + 1) & 0x7fff_ffff;
        }
    }
}

impl SchemaRegistry {
    /// The lake store the registry lives in.
    pub fn store(&self) -> &LakeStore {
        &self.store
    }

    /// Opens the registry under `store`'s root, loading every version.
    pub async fn open(store: LakeStore) -> Result<SchemaRegistry, RegistryError> {
        let paths = store.list(&format!("{REGISTRY_DIR}/subjects")).await?;
        let paths: Vec<String> = paths.into_iter().filter(|p| p.ends_with(".json")).collect();
        let loaded: Vec<Result<SchemaVersion, RegistryError>> = futures::stream::iter(paths)
            .map(|path| {
                let store = store.clone();
                async move {
                    let bytes = store.get(&path).await?.ok_or_else(|| {
                        RegistryError::Corrupt(format!(
                            "{path} vanished while the registry was read"
                        ))
                    })?;
                    version_file::parse_version(&bytes, &path)
                }
            })
            .buffered(PARALLEL_READS)
            .collect()
            .await;
        let mut versions = loaded.into_iter().collect::<Result<Vec<_>, _>>()?;
        versions.sort_by(|a, b| (&a.subject, a.version).cmp(&(&b.subject, b.version)));
        let mut state = State::default();
        for version in versions {
            let expected = state
                .subjects
                .get(&version.subject)
                .map_or(1, |v| v.len() + 1);
            if version.version as usize != expected {
                return Err(RegistryError::Corrupt(format!(
                    "subject {} in {} has version {} where version {expected} was expected; restore the missing version file from a backup",
                    version.subject,
                    store.root_display(),
                    version.version
                )));
            }
            state.add(version);
        }
        Ok(SchemaRegistry {
            store,
            state: Arc::new(RwLock::new(state)),
            writing: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// The subject of `table` read by source `source`:
    /// `<source>.<namespace>.<table>-value` (Debezium/Confluent naming).
    pub fn subject_name(source: &str, table: &TableSchema) -> String {
        crate::schema::subject_name(source, &table.qualified_name())
    }

    /// Registers `table` under `subject` (or finds it registered), checking
    /// compatibility per `mode` and applying `on_incompatible`. The Avro
    /// record is placed in `avro_namespace`.
    pub async fn register(
        &self,
        subject: &str,
        avro_namespace: &str,
        table: &TableSchema,
        mode: Compatibility,
        on_incompatible: OnIncompatible,
    ) -> Result<Registered, RegistryError> {
        if let Some(version) = self.lookup(subject, &table.fingerprint) {
            return Ok(Registered {
                version,
                new: false,
            });
        }
        let _writing = self.writing.lock().await;
        if let Some(version) = self.lookup(subject, &table.fingerprint) {
            return Ok(Registered {
                version,
                new: false,
            });
        }
        let history: Vec<SchemaVersion> = self.history(subject);
        let previous: Vec<&TableSchema> = history.iter().map(|v| &v.table).collect();
        let text = avro_schema::avro_schema(avro_namespace, table, &previous)?;
        let parse = |text: &str, what: &str| {
            Schema::parse_str(text).map_err(|e| {
                RegistryError::Corrupt(format!("{what} of {subject} does not parse as Avro: {e}"))
            })
        };
        let schema = parse(&text, "the new schema")?;
        let old: Vec<compatibility::Version> = history
            .iter()
            .map(|v| (&v.table, v.schema.as_str()))
            .collect();
        let changes = history
            .last()
            .map(|latest| compatibility::describe_change(&latest.table, table))
            .unwrap_or_default();
        let problems = match compatibility::check(mode, (table, &text), &old) {
            Ok(()) => Vec::new(),
            Err(problems) => problems,
        };
        let number = history.len() as u32 + 1;
        if !problems.is_empty() && on_incompatible == OnIncompatible::Fail {
            return Err(RegistryError::Incompatible {
                subject: subject.to_string(),
                table: table.qualified_name(),
                latest_version: number - 1,
                mode,
                changes,
                problems,
            });
        }
        let id = self
            .state
            .read()
            .expect("registry lock poisoned")
            .id_for(&text);
        let version = SchemaVersion {
            format_version: version_file::REGISTRY_FORMAT_VERSION,
            subject: subject.to_string(),
            version: number,
            id,
            fingerprint: table.fingerprint.clone(),
            avro_fingerprint: hex::encode(schema.fingerprint::<Rabin>().bytes),
            schema: text,
            table: table.clone(),
            compatibility: mode,
            compatible: problems.is_empty(),
            problems,
            changes,
            registered_at: chrono::Utc::now().to_rfc3339(),
        };
        let json = serde_json::to_vec_pretty(&version)
            .map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
        self.store
            .put_durable(&version_path(subject, number), json.into())
            .await?;
        self.state
            .write()
            .expect("registry lock poisoned")
            .add(version.clone());
        Ok(Registered { version, new: true })
    }

    fn history(&self, subject: &str) -> Vec<SchemaVersion> {
        self.state
            .read()
            .expect("registry lock poisoned")
            .subjects
            .get(subject)
            .cloned()
            .unwrap_or_default()
    }

    /// The version of `subject` with this table fingerprint, if registered.
    pub fn lookup(&self, subject: &str, fingerprint: &str) -> Option<SchemaVersion> {
        let state = self.state.read().expect("registry lock poisoned");
        state
            .subjects
            .get(subject)?
            .iter()
            .find(|v| v.fingerprint == fingerprint)
            .cloned()
    }

    /// Every subject, sorted.
    pub fn subjects(&self) -> Vec<String> {
        let state = self.state.read().expect("registry lock poisoned");
        state.subjects.keys().cloned().collect()
    }

    /// Version numbers of `subject`.
    pub fn versions(&self, subject: &str) -> Option<Vec<u32>> {
        let state = self.state.read().expect("registry lock poisoned");
        Some(
            state
                .subjects
                .get(subject)?
                .iter()
                .map(|v| v.version)
                .collect(),
        )
    }

    /// Version `version` of `subject`.
    pub fn version(&self, subject: &str, version: u32) -> Option<SchemaVersion> {
        let state = self.state.read().expect("registry lock poisoned");
        state
            .subjects
            .get(subject)?
            .get((version as usize).checked_sub(1)?)
            .cloned()
    }

    /// The latest version of `subject`.
    pub fn latest(&self, subject: &str) -> Option<SchemaVersion> {
        let state = self.state.read().expect("registry lock poisoned");
        state.subjects.get(subject)?.last().cloned()
    }

    /// Latest versions, among subjects starting with `prefix`, of tables
    /// with the source's table id `source_id` (who had this relation OID).
    pub fn latest_with_source_id(&self, prefix: &str, source_id: u32) -> Vec<SchemaVersion> {
        let state = self.state.read().expect("registry lock poisoned");
        state
            .subjects
            .iter()
            .filter(|(subject, _)| subject.starts_with(prefix))
            .filter_map(|(_, versions)| versions.last())
            .filter(|v| v.table.source_id == Some(source_id))
            .cloned()
            .collect()
    }

    /// A version whose schema has id `id`.
    pub fn by_id(&self, id: u32) -> Option<SchemaVersion> {
        let state = self.state.read().expect("registry lock poisoned");
        let (subject, version) = state.ids.get(&id)?.first()?;
        state.subjects[subject].get(*version as usize - 1).cloned()
    }

    /// Every `(subject, version)` registered with schema id `id`.
    pub fn subjects_of_id(&self, id: u32) -> Vec<(String, u32)> {
        let state = self.state.read().expect("registry lock poisoned");
        state.ids.get(&id).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
