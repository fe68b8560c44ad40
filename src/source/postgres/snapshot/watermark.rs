//! Incremental snapshots while streaming: the DBLog watermark algorithm.
//!
//! ```text
//!  driver task (own session)                     replication stream (source)
//!  ─────────────────────────                     ──────────────────────────────────────────
//!  emit LOW watermark  ───── WAL ─────────────▶  LOW seen: open the chunk's window
//!  SELECT chunk (COPY binary, key order)          changes of the table in the window: remember their keys
//!  hand rows to the source
//!  emit HIGH watermark ───── WAL ─────────────▶  HIGH seen: drop chunk rows whose key changed in the
//!                                                window, emit the rest as `r` inside HIGH's transaction
//! ```
//!
//! Watermarks are transactional logical messages
//! (`pg_logical_emit_message(true, 'tributary.watermark', …)`), so they need
//! no table and reach only logical decoding. The stream is never paused and
//! no change is reordered: every change committed before the chunk was read
//! sorts before the chunk rows (which sit at HIGH's position), and any change
//! the chunk could have missed or pre-empted happened inside the window, is
//! streamed itself, and removed the chunk's copy of that row. Watermark ids
//! carry a per-process run id, so watermarks replayed after a restart are
//! ignored and the interrupted chunk is simply read again.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Client;
use tributary_postgres::catalog::TypeCache;

use super::chunk_reader::{ChunkError, read_chunk};
use super::progress::ProgressReporter;
use super::table_plan::{ChunkKey, TablePlan};
use crate::config::PostgresSourceConfig;
use crate::envelope::{Envelope, Op, Row, Value};
use crate::schema::TableSchema;
use crate::snapshot::{ChunkCursor, SnapshotState};
use crate::source::SourceError;
use crate::source::postgres::connect_catalog;

/// Prefix of watermark messages.
pub const WATERMARK_PREFIX: &str = "tributary.watermark";

/// A watermark message's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Watermark {
    run: String,
    chunk: u64,
    mark: Mark,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Mark {
    Low,
    High,
}

/// A chunk to read.
#[derive(Debug)]
struct ChunkRequest {
    id: u64,
    table: String,
    cursor: Option<ChunkCursor>,
}

/// What the driver read for one chunk.
#[derive(Debug)]
pub enum ChunkOutcome {
    Rows {
        schema: Arc<TableSchema>,
        rows: Vec<ChunkRow>,
        /// `None`: this was the table's last chunk.
        cursor_after: Option<ChunkCursor>,
    },
    /// The table no longer exists (dropped meanwhile): skip it.
    Gone(String),
}

/// One row of a chunk; `unchanged` lists columns the merge must take from
/// the newer streamed changes instead (see [`KeyChange::Unknown`]).
#[derive(Debug)]
pub struct ChunkRow {
    pub row: Row,
    pub unchanged: Vec<usize>,
}

/// The chunk currently between its watermarks.
#[derive(Debug)]
struct Window {
    id: u64,
    table: String,
    open: bool,
    changed: HashMap<String, KeyChange>,
    truncated: bool,
}

/// What the window's changes say about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyChange {
    /// Inserted or deleted (or re-keyed) in the window: the stream holds
    /// its whole current state; the chunk's copy is dropped.
    Replaced,
    /// Only updated, and these columns (indexes) were reported unchanged by
    /// every update (unchanged TOAST): the stream never supplied their
    /// values. The chunk's copy supplies exactly those (they did not change
    /// in the window, so any copy read in it is current).
    Unknown(Vec<usize>),
}

/// What the source must do with the rows of a chunk whose high watermark
/// was just seen.
#[derive(Debug)]
pub struct ClosedChunk {
    pub table: String,
    pub outcome: ChunkOutcome,
}

/// The incremental-snapshot machinery of one running source.
#[derive(Debug)]
pub struct WatermarkSnapshots {
    run_id: String,
    next_id: u64,
    requests: mpsc::Sender<ChunkRequest>,
    results: mpsc::Receiver<(u64, ChunkOutcome)>,
    failure: oneshot::Receiver<SourceError>,
    driver: tokio::task::JoinHandle<()>,
    window: Option<Window>,
    reporter: ProgressReporter,
}

impl Drop for WatermarkSnapshots {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// The dedup identity of a row: its key values.
fn key_string(values: impl Iterator<Item = Value>) -> String {
    let key: Vec<Value> = values.collect();
    format!("{key:?}")
}

impl WatermarkSnapshots {
    /// Connects the driver session and starts its task.
    pub async fn start(config: &PostgresSourceConfig) -> Result<WatermarkSnapshots, SourceError> {
        let client = connect_catalog(config).await?;
        let (requests, request_rx) = mpsc::channel(1);
        let (result_tx, results) = mpsc::channel(1);
        let (failure_tx, failure) = oneshot::channel();
        let run_id = format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        let driver = Driver {
            client,
            types: TypeCache::new(),
            source: config.name.clone(),
            database: config.database.clone(),
            chunk_rows: config.snapshot_chunk_rows,
            run_id: run_id.clone(),
        };
        let task = tokio::spawn(driver.run(request_rx, result_tx, failure_tx));
        Ok(WatermarkSnapshots {
            run_id,
            next_id: 0,
            requests,
            results,
            failure,
            driver: task,
            window: None,
            reporter: ProgressReporter::new(&config.name, "incremental", Vec::new()),
        })
    }

    /// Starts the next chunk of the first pending table, unless a chunk is
    /// already between its watermarks.
    pub fn request_next(&mut self, state: &SnapshotState) {
        if self.window.is_some() {
            return;
        }
        let Some(next) = state.pending.first() else {
            return;
        };
        self.next_id += 1;
        self.reporter.add_table(&next.table, 0);
        let request = ChunkRequest {
            id: self.next_id,
            table: next.table.clone(),
            cursor: next.cursor.clone(),
        };
        self.window = Some(Window {
            id: self.next_id,
            table: next.table.clone(),
            open: false,
            changed: HashMap::new(),
            truncated: false,
        });
        if self.requests.try_send(request).is_err() {
            // The driver is gone; `failed` reports why.
            self.window = None;
        }
    }

    /// Completes when the driver failed.
    pub async fn failed(&mut self) -> SourceError {
        match (&mut self.failure).await {
            Ok(error) => error,
            Err(_) => std::future::pending().await,
        }
    }

    /// Notes a change the stream delivered (keys changed inside a window).
    pub fn observe(&mut self, envelope: &Envelope) {
        let Some(window) = self.window.as_mut() else {
            return;
        };
        if !window.open || !envelope.table.is(&window.table) {
            return;
        }
        if envelope.op == Op::Truncate {
            window.truncated = true;
            return;
        }
        let key = key_string(envelope.key().into_iter());
        let change = match envelope.op {
            Op::Update => KeyChange::Unknown(envelope.unchanged.clone()),
            _ => KeyChange::Replaced,
        };
        let merged = match (window.changed.remove(&key), change) {
            (None, change) => change,
            (Some(KeyChange::Unknown(before)), KeyChange::Unknown(now)) => {
                KeyChange::Unknown(before.into_iter().filter(|i| now.contains(i)).collect())
            }
            (Some(KeyChange::Replaced), KeyChange::Unknown(_)) | (_, KeyChange::Replaced) => {
                KeyChange::Replaced
            }
        };
        window.changed.insert(key, merged);
    }

    /// A logical message from the stream. Returns the chunk to emit when it
    /// is this run's high watermark of the current chunk.
    pub fn on_message(&mut self, content: &[u8]) -> Result<Option<ClosedChunk>, SourceError> {
        let Ok(mark) = serde_json::from_slice::<Watermark>(content) else {
            return Ok(None);
        };
        let Some(window) = self.window.as_mut() else {
            return Ok(None);
        };
        if mark.run != self.run_id || mark.chunk != window.id {
            return Ok(None);
        }
        match mark.mark {
            Mark::Low => {
                window.open = true;
                Ok(None)
            }
            Mark::High => {
                let window = self.window.take().expect("checked above");
                // The driver hands over the rows before it writes HIGH.
                let (id, outcome) = self.results.try_recv().map_err(|_| {
                    SourceError::definite(
                        "incremental snapshot: high watermark seen before its chunk was read (internal error); restart the daemon",
                    )
                })?;
                if id != window.id {
                    return Err(SourceError::definite(format!(
                        "incremental snapshot: chunk {id} arrived for watermark {} (internal error); restart the daemon",
                        window.id
                    )));
                }
                let outcome = match outcome {
                    ChunkOutcome::Rows {
                        schema,
                        rows,
                        cursor_after,
                    } => {
                        let read = rows.len();
                        let kept: Vec<ChunkRow> = if window.truncated {
                            Vec::new()
                        } else {
                            rows.into_iter()
                                .filter_map(|chunk_row| {
                                    let key = key_string(
                                        schema.key.iter().map(|&i| chunk_row.row[i].clone()),
                                    );
                                    match window.changed.get(&key) {
                                        None => Some(chunk_row),
                                        Some(KeyChange::Unknown(missing))
                                            if !missing.is_empty() =>
                                        {
                                            // A patch: only the values the
                                            // stream never sent; the rest are
                                            // kept from the newer changes.
                                            let unchanged = (0..chunk_row.row.len())
                                                .filter(|i| {
                                                    !missing.contains(i) && !schema.key.contains(i)
                                                })
                                                .collect();
                                            Some(ChunkRow {
                                                row: chunk_row.row,
                                                unchanged,
                                            })
                                        }
                                        Some(_) => None,
                                    }
                                })
                                .collect()
                        };
                        tracing::debug!(table = %window.table, read, kept = kept.len(), changed_in_window = window.changed.len(), "chunk closed");
                        self.reporter.chunk_done(&window.table, kept.len() as u64);
                        if cursor_after.is_none() {
                            self.reporter.table_finished(&window.table);
                        }
                        ChunkOutcome::Rows {
                            schema,
                            rows: kept,
                            cursor_after,
                        }
                    }
                    gone => {
                        self.reporter.table_finished(&window.table);
                        gone
                    }
                };
                if let ChunkOutcome::Rows {
                    cursor_after: Some(_),
                    ..
                } = &outcome
                {
                    // The driver goes on with the table's next chunk.
                    self.next_id = window.id + 1;
                    self.window = Some(Window {
                        id: self.next_id,
                        table: window.table.clone(),
                        open: false,
                        changed: HashMap::new(),
                        truncated: false,
                    });
                }
                Ok(Some(ClosedChunk {
                    table: window.table,
                    outcome,
                }))
            }
        }
    }
}

fn full_rows(rows: Vec<Row>) -> Vec<ChunkRow> {
    rows.into_iter()
        .map(|row| ChunkRow {
            row,
            unchanged: Vec::new(),
        })
        .collect()
}

/// The task that writes watermarks and reads chunks on its own session.
struct Driver {
    client: Client,
    types: TypeCache,
    source: String,
    database: String,
    chunk_rows: usize,
    run_id: String,
}

impl Driver {
    async fn run(
        mut self,
        mut requests: mpsc::Receiver<ChunkRequest>,
        results: mpsc::Sender<(u64, ChunkOutcome)>,
        failure: oneshot::Sender<SourceError>,
    ) {
        while let Some(mut request) = requests.recv().await {
            // A table's chunks run back to back: the next low watermark
            // follows this chunk's high one, so windows never overlap, and
            // the next chunk is read while the stream reaches this one's
            // high watermark.
            loop {
                match self.chunk(&request, &results).await {
                    Ok(Some(cursor)) => {
                        request.id += 1;
                        request.cursor = Some(cursor);
                    }
                    Ok(None) => break,
                    Err(error) => {
                        let _ = failure.send(error);
                        return;
                    }
                }
            }
        }
    }

    async fn emit(&self, chunk: u64, mark: Mark) -> Result<(), SourceError> {
        let content = serde_json::to_string(&Watermark {
            run: self.run_id.clone(),
            chunk,
            mark,
        })
        .expect("watermark serializes");
        self.client
            .execute(
                "SELECT pg_catalog.pg_logical_emit_message(true, $1, $2)",
                &[&WATERMARK_PREFIX, &content],
            )
            .await
            .map_err(|e| SourceError::from(tributary_postgres::PgError::from(e)))?;
        Ok(())
    }

    /// Loads the table's plan for every chunk, so a column added or
    /// dropped during a long snapshot is read with the current shape.
    async fn plan(&mut self, table: &str) -> Result<Option<TablePlan>, SourceError> {
        let (schema, name) = table.split_once('.').expect("qualified table name");
        TablePlan::load(
            &self.client,
            &mut self.types,
            &self.source,
            &self.database,
            schema,
            name,
        )
        .await
    }

    /// Reads one chunk between its watermarks; returns the cursor of the
    /// table's next chunk, if any.
    async fn chunk(
        &mut self,
        request: &ChunkRequest,
        results: &mpsc::Sender<(u64, ChunkOutcome)>,
    ) -> Result<Option<ChunkCursor>, SourceError> {
        self.emit(request.id, Mark::Low).await?;
        let outcome = match self.plan(&request.table).await? {
            None => ChunkOutcome::Gone(format!("{} does not exist", request.table)),
            Some(plan) => match self.read(&plan, request.cursor.as_ref()).await {
                Ok(outcome) => outcome,
                Err(ChunkError::Gone(why)) => ChunkOutcome::Gone(why),
                Err(ChunkError::Source(e)) => return Err(e),
            },
        };
        let next = match &outcome {
            ChunkOutcome::Rows { cursor_after, .. } => cursor_after.clone(),
            ChunkOutcome::Gone(_) => None,
        };
        if results.send((request.id, outcome)).await.is_err() {
            return Ok(None);
        }
        self.emit(request.id, Mark::High).await?;
        Ok(next)
    }

    async fn read(
        &self,
        plan: &TablePlan,
        cursor: Option<&ChunkCursor>,
    ) -> Result<ChunkOutcome, ChunkError> {
        match &plan.chunk_key {
            ChunkKey::Columns { .. } => {
                let after = match cursor {
                    Some(ChunkCursor::KeyAfter { values }) => Some(values.as_slice()),
                    _ => None,
                };
                let sql = plan.keyset_copy(after, self.chunk_rows);
                let chunk = read_chunk(
                    &self.client,
                    plan,
                    &sql,
                    plan.key_text_columns(),
                    self.chunk_rows,
                )
                .await?;
                let cursor_after = if chunk.rows.len() < self.chunk_rows {
                    None
                } else {
                    chunk
                        .last_key
                        .map(|values| ChunkCursor::KeyAfter { values })
                };
                Ok(ChunkOutcome::Rows {
                    schema: plan.schema.clone(),
                    rows: full_rows(chunk.rows),
                    cursor_after,
                })
            }
            ChunkKey::Pages => {
                let from = match cursor {
                    Some(ChunkCursor::PageFrom { page }) => *page,
                    _ => 0,
                };
                let size = plan
                    .size(&self.client)
                    .await
                    .map_err(|e| ChunkError::Source(tributary_postgres::PgError::from(e).into()))?
                    .ok_or_else(|| {
                        ChunkError::Gone(format!("{} does not exist", plan.qualified))
                    })?;
                let step = size.pages_per_chunk(self.chunk_rows);
                let to = from + step;
                let last = to >= size.pages;
                let sql = plan.pages_copy(from, (!last).then_some(to));
                let chunk = read_chunk(&self.client, plan, &sql, 0, self.chunk_rows).await?;
                Ok(ChunkOutcome::Rows {
                    schema: plan.schema.clone(),
                    rows: full_rows(chunk.rows),
                    cursor_after: (!last).then_some(ChunkCursor::PageFrom { page: to }),
                })
            }
        }
    }
}
