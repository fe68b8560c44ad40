//! The initial copy: every table read under the slot's exported snapshot by
//! parallel workers, emitted in chunk order, before streaming starts.
//!
//! ```text
//!  ExportedSlot ─ snapshot name ─▶ N worker sessions (REPEATABLE READ, SET TRANSACTION SNAPSHOT)
//!                                    │ chunk jobs from one queue, COPY binary → rows
//!                                    ▼
//!               reorder buffer (by chunk number, ≤ N+1 chunks in memory)
//!                                    ▼
//!      Change(r)… Commit Progress  per chunk, in order ─▶ pipeline
//! ```
//!
//! Snapshot rows take positions just below the slot's consistent point
//! (`commit_lsn = consistent_point − 1`, ordinal = row number of the copy),
//! so every streamed change sorts after them. Chunks are emitted strictly in
//! order, which makes each table's progress a single cursor: after a crash
//! the table continues at its next unfinished chunk (incrementally, because
//! the exported snapshot died with the old process).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_postgres::Client;
use tributary_postgres::ExportedSlot;
use tributary_postgres::catalog::TypeCache;

use super::chunk_reader::ChunkError;
use super::columnar_reader::{ColumnarChunk, read_chunk_columnar};
use super::progress::ProgressReporter;
use super::table_plan::{ChunkKey, TablePlan, quoted};
use crate::config::PostgresSourceConfig;
use crate::envelope::{ReadBatch, SourceInfo};
use crate::position::{Position, ResumePoint};
use crate::snapshot::{ChunkCursor, SnapshotState, TableSnapshot};
use crate::source::postgres::connect_catalog;
use crate::source::{SourceError, SourceEvent};

/// One unit of work: a query and where the table's cursor stands after it.
#[derive(Debug, Clone)]
struct ChunkJob {
    table: usize,
    copy_sql: String,
    /// Cursor once this chunk is durable; `None` = the table is complete.
    cursor_after: Option<ChunkCursor>,
}

type ChunkResult = (u64, Result<ColumnarChunk, ChunkError>, OwnedSemaphorePermit);

/// A running initial copy.
#[derive(Debug)]
pub struct InitialCopy {
    plans: Vec<Arc<TablePlan>>,
    jobs: Vec<ChunkJob>,
    results: mpsc::Receiver<ChunkResult>,
    reorder: BTreeMap<u64, (Result<ColumnarChunk, ChunkError>, OwnedSemaphorePermit)>,
    next_seq: u64,
    skipped: Vec<bool>,
    /// Row positions: `commit_lsn` is just below the consistent point.
    commit_lsn: u64,
    ordinal: u64,
    resume: ResumePoint,
    info: SourceInfo,
    reporter: ProgressReporter,
    workers: tokio::task::JoinSet<()>,
}

/// Opens a worker session inside the exported snapshot.
async fn snapshot_session(
    config: &PostgresSourceConfig,
    snapshot_name: &str,
) -> Result<Client, SourceError> {
    let client = connect_catalog(config).await?;
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
            tributary_postgres::sql::quote_literal(snapshot_name)
        ))
        .await
        .map_err(|e| SourceError::from(tributary_postgres::PgError::from(e)))?;
    Ok(client)
}

impl InitialCopy {
    /// Imports `exported` into the worker sessions, releases the export,
    /// plans every pending table and starts the workers. `state` is updated
    /// for tables found missing while planning.
    pub async fn start(
        config: &PostgresSourceConfig,
        exported: ExportedSlot,
        state: &mut SnapshotState,
    ) -> Result<InitialCopy, SourceError> {
        let workers = config.snapshot_workers();
        let mut sessions = Vec::with_capacity(workers);
        for _ in 0..workers {
            sessions.push(snapshot_session(config, &exported.snapshot_name).await?);
        }
        let consistent_point = exported.consistent_point.0;
        // Every worker holds the snapshot now; the export is no longer needed.
        exported.release();
        lock_tables(config, &sessions, state).await?;

        let mut types = TypeCache::new();
        let mut plans = Vec::new();
        let mut jobs = Vec::new();
        let mut estimates = Vec::new();
        let pending: Vec<TableSnapshot> = state.pending.clone();
        for table in pending {
            let (schema, name) = table.table.split_once('.').expect("qualified table name");
            let planner = &sessions[0];
            let Some(plan) = TablePlan::load(
                planner,
                &mut types,
                &config.name,
                &config.database,
                schema,
                name,
            )
            .await?
            else {
                tracing::warn!(source = %config.name, table = %table.table, "table no longer exists; snapshot skipped");
                state.skip(&table.table);
                continue;
            };
            let index = plans.len();
            let (chunks, estimate) = plan_chunks(
                planner,
                &plan,
                table.cursor.as_ref(),
                config.snapshot_chunk_rows,
            )
            .await?;
            tracing::info!(
                source = %config.name,
                table = %plan.qualified,
                chunks = chunks.len(),
                estimated_rows = estimate,
                chunked_by = %match &plan.chunk_key { ChunkKey::Pages => "ctid pages".to_string(), ChunkKey::Columns { .. } => format!("key {}", plan.key_columns_sql()) },
                "planned initial snapshot"
            );
            estimates.push((plan.qualified.clone(), estimate));
            if chunks.is_empty() {
                // An empty table: nothing to copy, but a job still marks it done.
                jobs.push(ChunkJob {
                    table: index,
                    copy_sql: plan.key_range_copy(None, None),
                    cursor_after: None,
                });
            }
            for mut chunk in chunks {
                chunk.table = index;
                jobs.push(chunk);
            }
            plans.push(Arc::new(plan));
        }

        let permits = Arc::new(Semaphore::new(workers + 1));
        let queue: Arc<Mutex<VecDeque<(u64, ChunkJob)>>> = Arc::new(Mutex::new(
            jobs.iter()
                .cloned()
                .enumerate()
                .map(|(i, j)| (i as u64, j))
                .collect(),
        ));
        let (tx, results) = mpsc::channel(workers * 2 + 2);
        let mut tasks = tokio::task::JoinSet::new();
        let chunk_rows = config.snapshot_chunk_rows;
        for client in sessions {
            let queue = queue.clone();
            let permits = permits.clone();
            let tx = tx.clone();
            let plans = plans.clone();
            tasks.spawn(async move {
                loop {
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        return;
                    };
                    let Some((seq, job)) = queue.lock().expect("queue lock").pop_front() else {
                        break;
                    };
                    let plan = &plans[job.table];
                    let result =
                        read_chunk_columnar(&client, plan, &job.copy_sql, chunk_rows).await;
                    if tx.send((seq, result, permit)).await.is_err() {
                        return;
                    }
                }
                let _ = client.batch_execute("COMMIT").await;
            });
        }
        let now = chrono::Utc::now().timestamp_micros();
        Ok(InitialCopy {
            skipped: vec![false; plans.len()],
            plans,
            jobs,
            results,
            reorder: BTreeMap::new(),
            next_seq: 0,
            commit_lsn: consistent_point.saturating_sub(1),
            ordinal: 0,
            resume: ResumePoint::Postgres {
                lsn: consistent_point,
            },
            info: SourceInfo {
                source: config.name.as_str().into(),
                database: config.database.as_str().into(),
                xid: None,
                change_lsn: None,
                commit_ts_micros: now,
            },
            reporter: ProgressReporter::new(&config.name, "initial", estimates),
            workers: tasks,
        })
    }

    /// Where streaming starts once the copy is done.
    pub fn resume(&self) -> &ResumePoint {
        &self.resume
    }

    /// Emits the next chunk in order into `out` (rows, a commit, progress).
    /// Returns `false` once every chunk was emitted.
    pub async fn fill(
        &mut self,
        state: &mut SnapshotState,
        out: &mut VecDeque<SourceEvent>,
    ) -> Result<bool, SourceError> {
        if self.next_seq as usize >= self.jobs.len() {
            self.reporter.finish();
            return Ok(false);
        }
        let seq = self.next_seq;
        let (result, permit) = loop {
            if let Some(ready) = self.reorder.remove(&seq) {
                break ready;
            }
            match self.results.recv().await {
                Some((s, result, permit)) => {
                    self.reorder.insert(s, (result, permit));
                }
                None => {
                    return Err(SourceError::Transient {
                        message: "snapshot workers stopped before finishing".into(),
                    });
                }
            }
        };
        self.next_seq += 1;
        let job = self.jobs[seq as usize].clone();
        let plan = self.plans[job.table].clone();
        if self.skipped[job.table] {
            drop(permit);
            return Ok(true);
        }
        let chunk = match result {
            Ok(chunk) => chunk,
            Err(ChunkError::Gone(why)) => {
                tracing::warn!(table = %plan.qualified, reason = %why, "table dropped during the snapshot; snapshot skipped");
                self.skipped[job.table] = true;
                self.reporter.table_finished(&plan.qualified);
                state.skip(&plan.qualified);
                out.push_back(SourceEvent::Progress(state.clone()));
                return Ok(true);
            }
            Err(ChunkError::Source(e)) => return Err(e),
        };
        drop(permit);
        let count = chunk.rows as u64;
        if chunk.rows > 0 {
            let first = Position::Postgres {
                commit_lsn: self.commit_lsn,
                ordinal: self.ordinal + 1,
            };
            self.ordinal += count;
            out.push_back(SourceEvent::Reads(ReadBatch {
                table: plan.schema.clone(),
                columns: chunk.columns,
                rows: chunk.rows,
                first,
                source: self.info.clone(),
                approx_bytes: chunk.approx_bytes,
            }));
        }
        out.push_back(SourceEvent::Commit {
            resume: self.resume.clone(),
        });
        self.reporter.chunk_done(&plan.qualified, count);
        let total = state.chunk_done(&plan.qualified, count, job.cursor_after.clone());
        if job.cursor_after.is_none() {
            self.reporter.table_finished(&plan.qualified);
            tracing::info!(table = %plan.qualified, rows = total, "snapshot complete");
        }
        out.push_back(SourceEvent::Progress(state.clone()));
        Ok(true)
    }

    /// Stops the workers (their sessions end their transactions).
    pub async fn stop(mut self) {
        self.workers.abort_all();
        while self.workers.join_next().await.is_some() {}
    }
}

/// How long a snapshot session waits for a table lock before giving up: a
/// DDL statement waiting for its exclusive lock queues every later reader
/// behind it, so waiting forever would stall the copy.
const LOCK_TIMEOUT: &str = "10s";

/// Takes ACCESS SHARE on every table to copy in every session, before any of
/// them reads. A `DROP`/`ALTER` arriving later then simply waits for the copy
/// (it cannot wedge itself between two sessions' first reads, a wait cycle
/// PostgreSQL cannot detect). A table already gone is skipped; a lock that
/// cannot be had within [`LOCK_TIMEOUT`] (DDL in progress) is a transient
/// failure: the source restarts and copies incrementally instead.
async fn lock_tables(
    config: &PostgresSourceConfig,
    sessions: &[Client],
    state: &mut SnapshotState,
) -> Result<(), SourceError> {
    let pg = |e: tokio_postgres::Error| SourceError::from(tributary_postgres::PgError::from(e));
    let mut present = Vec::new();
    for table in state.pending.clone() {
        let (schema, name) = table.table.split_once('.').expect("qualified table name");
        let quoted = format!("{}.{}", quoted(schema), quoted(name));
        let exists: Option<String> = sessions[0]
            .query_one("SELECT to_regclass($1)::text", &[&quoted])
            .await
            .map_err(pg)?
            .get(0);
        if exists.is_none() {
            tracing::warn!(source = %config.name, table = %table.table, "table no longer exists; snapshot skipped");
            state.skip(&table.table);
        } else {
            present.push(quoted);
        }
    }
    if present.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; LOCK TABLE {} IN ACCESS SHARE MODE",
        present.join(", ")
    );
    for session in sessions {
        session.batch_execute(&sql).await.map_err(|e| {
            if e.code().is_some_and(|c| c.code() == "55P03") {
                SourceError::Transient {
                    message: format!(
                        "could not lock the tables to snapshot within {LOCK_TIMEOUT} (a DDL statement holds or waits for them); retrying, the copy then continues incrementally"
                    ),
                }
            } else {
                pg(e)
            }
        })?;
    }
    Ok(())
}

/// Cuts a table into chunk jobs from `cursor` on; also returns the row
/// estimate (for progress). Runs inside the exported snapshot.
async fn plan_chunks(
    client: &Client,
    plan: &TablePlan,
    cursor: Option<&ChunkCursor>,
    chunk_rows: usize,
) -> Result<(Vec<ChunkJob>, u64), SourceError> {
    let pg = |e: tokio_postgres::Error| SourceError::from(tributary_postgres::PgError::from(e));
    let Some(size) = plan.size(client).await.map_err(pg)? else {
        return Ok((Vec::new(), 0));
    };
    let reltuples = size.estimated_rows;
    let chunk_rows = chunk_rows.max(1) as u64;
    let mut jobs = Vec::new();
    match &plan.chunk_key {
        ChunkKey::Columns { integer: true, .. } => {
            let key = plan.key_columns_sql();
            let row = client
                .query_one(
                    &format!(
                        "SELECT min({key})::int8, max({key})::int8 FROM {}{}",
                        plan.from(),
                        plan.after_condition(cursor)
                    ),
                    &[],
                )
                .await
                .map_err(pg)?;
            let (Some(min), Some(max)) =
                (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1))
            else {
                return Ok((jobs, 0));
            };
            let span = (max as i128) - (min as i128) + 1;
            let estimate = if reltuples > 0 {
                reltuples
            } else {
                span as u64
            };
            let chunks = estimate.div_ceil(chunk_rows).max(1) as i128;
            let width = (span + chunks - 1) / chunks;
            let after0: Option<Vec<String>> = match cursor {
                Some(ChunkCursor::KeyAfter { values }) => Some(values.clone()),
                _ => None,
            };
            let mut lo = min as i128;
            let mut first = true;
            while lo <= max as i128 {
                let hi = lo + width - 1;
                let last = hi >= max as i128;
                let after = if first {
                    after0.clone()
                } else {
                    Some(vec![(lo - 1).to_string()])
                };
                let upto = (!last).then(|| vec![hi.to_string()]);
                jobs.push(ChunkJob {
                    table: 0,
                    copy_sql: plan.key_range_copy(after.as_deref(), upto.as_deref()),
                    cursor_after: upto.clone().map(|values| ChunkCursor::KeyAfter { values }),
                });
                first = false;
                lo = hi + 1;
            }
            Ok((jobs, estimate))
        }
        ChunkKey::Columns { .. } => {
            let key = plan.key_columns_sql();
            let ChunkKey::Columns { columns, names, .. } = &plan.chunk_key else {
                unreachable!()
            };
            let texts: Vec<String> = names.iter().map(|c| format!("{c}::text")).collect();
            let rows = client
                .query(
                    &format!(
                        "SELECT {} FROM (SELECT {key}, row_number() OVER (ORDER BY {key}) AS tributary_rn FROM {}{}) s \
                         WHERE tributary_rn % {chunk_rows} = 0 ORDER BY tributary_rn",
                        texts.join(", "),
                        plan.from(),
                        plan.after_condition(cursor)
                    ),
                    &[],
                )
                .await
                .map_err(pg)?;
            let bounds: Vec<Vec<String>> = rows
                .iter()
                .map(|r| (0..columns.len()).map(|i| r.get::<_, String>(i)).collect())
                .collect();
            let mut after: Option<Vec<String>> = match cursor {
                Some(ChunkCursor::KeyAfter { values }) => Some(values.clone()),
                _ => None,
            };
            for bound in bounds {
                jobs.push(ChunkJob {
                    table: 0,
                    copy_sql: plan.key_range_copy(after.as_deref(), Some(&bound)),
                    cursor_after: Some(ChunkCursor::KeyAfter {
                        values: bound.clone(),
                    }),
                });
                after = Some(bound);
            }
            jobs.push(ChunkJob {
                table: 0,
                copy_sql: plan.key_range_copy(after.as_deref(), None),
                cursor_after: None,
            });
            Ok((jobs, reltuples))
        }
        ChunkKey::Pages => {
            let start = match cursor {
                Some(ChunkCursor::PageFrom { page }) => *page,
                _ => 0,
            };
            let step = size.pages_per_chunk(chunk_rows as usize);
            let total = size.pages;
            let mut from = start;
            while from + step < total {
                jobs.push(ChunkJob {
                    table: 0,
                    copy_sql: plan.pages_copy(from, Some(from + step)),
                    cursor_after: Some(ChunkCursor::PageFrom { page: from + step }),
                });
                from += step;
            }
            jobs.push(ChunkJob {
                table: 0,
                copy_sql: plan.pages_copy(from, None),
                cursor_after: None,
            });
            Ok((jobs, reltuples))
        }
    }
}
