//! The lake sink: buffers envelopes per table shape and flushes them as
//! Parquet delta files plus one manifest.
//!
//! Sits between the pipeline and the store (`pipeline → LakeSink::write →
//! DeltaBuilder`; `pipeline → LakeSink::flush → files → manifest`). The flush
//! order is the whole durability story: every file is durable before the
//! manifest that lists it is written, and the flush is reported durable only
//! after the manifest is. See [`super`] for the full contract.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::delta_writer::DeltaBuilder;
use super::error::SinkError;
use super::manifest::MANIFEST_VERSION;
use super::manifest::{
    Manifest, ManifestCheckpoint, ManifestFile, ManifestTable, ManifestWriter, MergeRule,
    RegisteredShape, SchemaChange, delta_path,
};
use super::store::LakeStore;
use crate::envelope::{ENVELOPE_VERSION, Envelope, ReadBatch};
use crate::schema::TableSchema;

/// Files written concurrently during one flush.
const PARALLEL_PUTS: usize = 8;

/// Buffers of one source, keyed by (`namespace.name`, schema fingerprint).
type Builders = BTreeMap<(String, String), DeltaBuilder>;

/// The Parquet lake sink of one source. See the module doc of [`super`].
#[derive(Debug)]
pub struct LakeSink {
    store: LakeStore,
    source: String,
    manifests: ManifestWriter,
    next_seq: u64,
    latest: Option<Manifest>,
    builders: Builders,
    /// Registered schema versions by table fingerprint.
    shapes: HashMap<String, RegisteredShape>,
}

impl LakeSink {
    /// Opens the sink of `source`; the next manifest follows the newest one.
    pub async fn open(store: LakeStore, source: &str) -> Result<LakeSink, SinkError> {
        let manifests = ManifestWriter::new(store.clone(), source);
        let latest = manifests.latest().await?;
        Ok(LakeSink {
            next_seq: latest.as_ref().map_or(1, |m| m.seq + 1),
            store,
            source: source.to_string(),
            manifests,
            latest,
            builders: Builders::new(),
            shapes: HashMap::new(),
        })
    }

    /// Whether the shape with this fingerprint has its schema version.
    pub fn knows_shape(&self, fingerprint: &str) -> bool {
        self.shapes.contains_key(fingerprint)
    }

    /// Records the registered schema version of a table shape; files of
    /// that shape name it from now on.
    pub fn add_shape(&mut self, fingerprint: &str, shape: RegisteredShape) {
        self.shapes.insert(fingerprint.to_string(), shape);
    }

    /// The buffer of one table shape.
    fn builder(&mut self, table: &Arc<TableSchema>) -> &mut DeltaBuilder {
        let key = (table.qualified_name(), table.fingerprint.clone());
        let shapes = &self.shapes;
        let source = &self.source;
        self.builders.entry(key).or_insert_with(|| {
            let mut builder = DeltaBuilder::new(table.clone(), source);
            if let Some(shape) = shapes.get(&table.fingerprint) {
                builder.set_shape(shape.clone());
            }
            builder
        })
    }

    /// Buffers one change. A rejected envelope (value does not fit its
    /// column) leaves the buffers unchanged.
    pub fn write(&mut self, env: &Envelope) -> Result<(), SinkError> {
        self.builder(&env.table).append(env)
    }

    /// Buffers a chunk of snapshot reads in columnar form.
    pub fn write_reads(&mut self, reads: &ReadBatch) -> Result<(), SinkError> {
        self.builder(&reads.table).append_reads(reads)
    }

    pub fn buffered_rows(&self) -> usize {
        self.builders.values().map(DeltaBuilder::rows).sum()
    }

    pub fn buffered_bytes(&self) -> usize {
        self.builders.values().map(DeltaBuilder::approx_bytes).sum()
    }

    /// The newest durable manifest (written by this sink or found at open).
    pub fn latest_manifest(&self) -> Option<&Manifest> {
        self.latest.as_ref()
    }

    pub fn store(&self) -> &LakeStore {
        &self.store
    }

    /// Makes everything buffered durable: files, then the manifest carrying
    /// `checkpoint`. Returns the manifest once it is durable, `None` when
    /// nothing was buffered. On error nothing is durable from the
    /// checkpoint's point of view and the buffers are kept, so calling flush
    /// again writes the same files (same names, same bytes).
    pub async fn flush(
        &mut self,
        checkpoint: ManifestCheckpoint,
    ) -> Result<Option<Manifest>, SinkError> {
        let Some(sealed) = self.seal(checkpoint) else {
            return Ok(None);
        };
        match sealed.write().await {
            Ok(manifest) => {
                self.committed(&manifest);
                Ok(Some(manifest))
            }
            Err(error) => {
                // Put the buffers back so a retry writes the same content.
                // The encoder task has finished, so the buffers are ours again.
                if let Ok(builders) = Arc::try_unwrap(sealed.builders) {
                    self.next_seq = sealed.seq;
                    self.builders = builders;
                }
                Err(error)
            }
        }
    }

    /// Takes everything buffered as one flush with the next manifest number,
    /// leaving the sink empty for new writes. The caller writes it
    /// ([`SealedFlush::write`], possibly on another task while this sink keeps
    /// buffering) and reports success with [`LakeSink::committed`]. Flushes
    /// must be written in the order they were sealed: seal the next one only
    /// after the previous one is durable, so manifests stay gapless and
    /// ordered. `None` when nothing is buffered.
    pub fn seal(&mut self, checkpoint: ManifestCheckpoint) -> Option<SealedFlush> {
        if self.buffered_rows() == 0 {
            return None;
        }
        let builders = std::mem::take(&mut self.builders);
        let (schema_versions, schema_changes) = schema_boundaries(
            self.latest
                .as_ref()
                .map(|m| m.schema_versions.clone())
                .unwrap_or_default(),
            &builders,
        );
        let sealed = SealedFlush {
            store: self.store.clone(),
            manifests: self.manifests.clone(),
            source: self.source.clone(),
            seq: self.next_seq,
            checkpoint,
            builders: Arc::new(builders),
            schema_versions,
            schema_changes,
        };
        self.next_seq += 1;
        Some(sealed)
    }

    /// Records a sealed flush's manifest as durable.
    pub fn committed(&mut self, manifest: &Manifest) {
        self.latest = Some(manifest.clone());
    }
}

/// One flush taken out of a [`LakeSink`]: its buffers, manifest number and
/// checkpoint. Writing it is independent of the sink, so the pipeline can keep
/// buffering the next batch while this one is encoded and made durable.
#[derive(Debug)]
pub struct SealedFlush {
    store: LakeStore,
    manifests: ManifestWriter,
    source: String,
    seq: u64,
    checkpoint: ManifestCheckpoint,
    builders: Arc<Builders>,
    /// The manifest's cumulative `schema_versions`.
    schema_versions: BTreeMap<String, u32>,
    /// The `schema_change` of each buffer that starts a new version.
    schema_changes: HashMap<(String, String), SchemaChange>,
}

impl SealedFlush {
    /// Rows in this flush.
    pub fn rows(&self) -> usize {
        self.builders.values().map(DeltaBuilder::rows).sum()
    }

    /// Encodes every table (on blocking threads), writes every file durably,
    /// then the manifest; returns the manifest once it is durable.
    pub async fn write(&self) -> Result<Manifest, SinkError> {
        let task = Arc::clone(&self.builders);
        let encoded = tokio::task::spawn_blocking(move || encode_all(&task))
            .await
            .map_err(|e| SinkError::Encode {
                table: "a buffered table".into(),
                message: format!("encoder thread failed: {e}"),
            })?
            .into_iter()
            .collect::<Result<Vec<Bytes>, SinkError>>()?;
        let mut tables = Vec::with_capacity(self.builders.len());
        let mut puts = Vec::with_capacity(self.builders.len());
        for (builder, bytes) in self.builders.values().zip(encoded) {
            let (table, path) = self.describe(builder, bytes.len());
            tables.push(table);
            puts.push((path, bytes));
        }
        futures::stream::iter(puts)
            .map(|(path, bytes)| {
                let store = &self.store;
                async move { store.put_durable(&path, bytes).await }
            })
            .buffer_unordered(PARALLEL_PUTS)
            .try_collect::<Vec<()>>()
            .await?;
        // Entries in change order: a table's old shape before its new one.
        tables.sort_by(|a, b| (&a.table, &a.first_pos).cmp(&(&b.table, &b.first_pos)));
        let manifest = Manifest {
            manifest_version: MANIFEST_VERSION,
            seq: self.seq,
            source: self.source.clone(),
            envelope_version: ENVELOPE_VERSION,
            created_at: chrono::Utc::now().to_rfc3339(),
            first_pos: tables
                .iter()
                .map(|t| t.first_pos.clone())
                .min()
                .unwrap_or_default(),
            last_pos: tables
                .iter()
                .map(|t| t.last_pos.clone())
                .max()
                .unwrap_or_default(),
            checkpoint: self.checkpoint.clone(),
            tables,
            schema_versions: self.schema_versions.clone(),
            merge_rule: MergeRule::default(),
        };
        self.manifests.write(&manifest).await?;
        Ok(manifest)
    }

    /// The manifest entry and file path of one buffer.
    fn describe(&self, builder: &DeltaBuilder, bytes: usize) -> (ManifestTable, String) {
        let schema = builder.table();
        let (first, last) = builder.pos_range().unwrap_or_default();
        let (first, last) = (first.to_string(), last.to_string());
        let path = delta_path(
            &self.source,
            &schema.qualified_name(),
            builder.first_commit_ts().unwrap_or_default(),
            &first,
            &last,
            builder.shape().map(|s| s.schema.version),
            &schema.fingerprint,
        );
        let file = ManifestFile {
            path: path.clone(),
            rows: builder.rows() as u64,
            bytes: bytes as u64,
            first_pos: first.clone(),
            last_pos: last.clone(),
            snapshot: builder.is_snapshot(),
        };
        let table = ManifestTable {
            table: schema.qualified_name(),
            namespace: schema.namespace.clone(),
            name: schema.name.clone(),
            schema_fingerprint: schema.fingerprint.clone(),
            schema: builder.shape().map(|s| s.schema.clone()),
            schema_change: self
                .schema_changes
                .get(&(schema.qualified_name(), schema.fingerprint.clone()))
                .cloned(),
            key_columns: schema.key_names(),
            columns: schema.columns.clone(),
            files: vec![file],
            ops: builder.op_counts(),
            first_pos: first,
            last_pos: last,
        };
        (table, path)
    }
}

/// Where this flush changes a table's schema version: the cumulative
/// version map after it, and a [`SchemaChange`] for every buffer whose
/// version differs from the version of the table's previous files (buffers
/// of one table are taken in position order).
fn schema_boundaries(
    mut versions: BTreeMap<String, u32>,
    builders: &Builders,
) -> (
    BTreeMap<String, u32>,
    HashMap<(String, String), SchemaChange>,
) {
    let mut ordered: Vec<(&(String, String), &DeltaBuilder)> = builders.iter().collect();
    ordered.sort_by(|a, b| (&a.0.0, a.1.pos_range()).cmp(&(&b.0.0, b.1.pos_range())));
    let mut changes = HashMap::new();
    for (key, builder) in ordered {
        let Some(shape) = builder.shape() else {
            continue;
        };
        let previous = versions.insert(key.0.clone(), shape.schema.version);
        if previous != Some(shape.schema.version) {
            changes.insert(
                key.clone(),
                SchemaChange {
                    previous_version: previous,
                    compatibility: shape.compatibility.clone(),
                    compatible: shape.compatible,
                    changes: shape.changes.clone(),
                    problems: shape.problems.clone(),
                },
            );
        }
    }
    (versions, changes)
}

/// Encodes each builder, spreading them over the available cores.
fn encode_all(builders: &Builders) -> Vec<Result<Bytes, SinkError>> {
    let list: Vec<&DeltaBuilder> = builders.values().collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(list.len())
        .max(1);
    if threads == 1 {
        return list.iter().map(|b| b.encode()).collect();
    }
    let chunk = list.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = list
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|b| b.encode()).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![Err(SinkError::Encode {
                        table: "a buffered table".into(),
                        message: "encoder thread panicked".into(),
                    })]
                })
            })
            .collect()
    })
}
