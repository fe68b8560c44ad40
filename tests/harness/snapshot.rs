//! Helpers of the snapshot scenarios:
//!
//! - [`Shape`] / [`ShapedTable`]: table shapes a snapshot must handle (mixed
//!   types under a `bigint` key, a composite key, no key under `REPLICA
//!   IDENTITY FULL`, out-of-line TOAST values, empty), created and filled
//!   server-side with `INSERT … SELECT generate_series` (fast).
//! - [`Churn`]: a seeded workload of inserts, updates and deletes (single
//!   statements, small transactions, rollbacks, large streamed transactions,
//!   primary-key changes) on the *same keys* a snapshot copies. It remembers
//!   every key a committed transaction deleted (ids are never reused), so a
//!   scenario can prove no deleted row was resurrected.
//! - the checkpoint's `snapshot` object ([`snapshot_state`]) and the wait for
//!   snapshots to finish ([`wait_snapshots_done`]), with diagnostics (locks,
//!   sessions, logs) when they do not;
//! - the lake side: `_op` counts per table ([`op_counts`]), the manifests'
//!   `snapshot` file flags ([`manifest_files`]), the keys a merged table holds
//!   ([`lake_keys`]);
//! - `tributary snapshot` ([`request_snapshot_cli`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value as Json;
use tokio_postgres::Client;
use tributary::envelope::Value;

use super::daemon::{Daemon, TestConfig};
use super::lake;
use super::postgres::{TestDb, pg_error, quote_literal};

// ---------------------------------------------------------------------------
// Table shapes
// ---------------------------------------------------------------------------

/// What a snapshot table looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `id bigint PRIMARY KEY` plus text, numeric(12,2), timestamptz, bool,
    /// jsonb and int[] columns (NULLs sprinkled).
    Mixed,
    /// `PRIMARY KEY (region int, n bigint)`.
    Composite,
    /// No key at all, `REPLICA IDENTITY FULL`; rows are kept distinct (`seq`
    /// is unique in practice, without a constraint), since under FULL
    /// without a key the whole row is the identity.
    Keyless,
    /// `id bigint PRIMARY KEY` and a `body` of > 4 KB incompressible text
    /// (stored out of line); most updates leave it unchanged.
    Toast,
    /// `id bigint PRIMARY KEY, v text`, never filled.
    Empty,
}

/// A table of a [`Shape`]: row `g` of the generator has identity `g`
/// (`id`, `n` or `seq`).
#[derive(Debug, Clone)]
pub struct ShapedTable {
    /// Unqualified name (the table lives in `public`).
    pub name: String,
    pub shape: Shape,
}

impl ShapedTable {
    pub fn new(name: &str, shape: Shape) -> ShapedTable {
        ShapedTable {
            name: name.to_string(),
            shape,
        }
    }

    /// `public.name`.
    pub fn qualified(&self) -> String {
        format!("public.{}", self.name)
    }

    /// The column holding the row identity `g`.
    pub fn id_column(&self) -> &'static str {
        match self.shape {
            Shape::Composite => "n",
            Shape::Keyless => "seq",
            _ => "id",
        }
    }

    pub fn ddl(&self) -> String {
        let t = &self.name;
        match self.shape {
            Shape::Mixed => format!(
                "CREATE TABLE {t} (id bigint PRIMARY KEY, label text, amount numeric(12,2), \
                 at timestamptz, flag bool, doc jsonb, nums int[])"
            ),
            Shape::Composite => format!(
                "CREATE TABLE {t} (region int NOT NULL, n bigint NOT NULL, qty int NOT NULL, \
                 note text, PRIMARY KEY (region, n))"
            ),
            Shape::Keyless => format!(
                "CREATE TABLE {t} (seq bigint NOT NULL, label text, amount numeric(12,2)); \
                 ALTER TABLE {t} REPLICA IDENTITY FULL"
            ),
            Shape::Toast => format!(
                "CREATE TABLE {t} (id bigint PRIMARY KEY, version int NOT NULL, title text, body text)"
            ),
            Shape::Empty => format!("CREATE TABLE {t} (id bigint PRIMARY KEY, v text)"),
        }
    }

    /// `INSERT … SELECT` of generator rows `from..=to`; `variant` changes
    /// the non-key values (0 for the initial fill).
    pub fn insert_sql(&self, from: i64, to: i64, variant: u32) -> String {
        let t = &self.name;
        let series = format!("generate_series({from}::bigint, {to}::bigint) g");
        match self.shape {
            Shape::Mixed => format!(
                "INSERT INTO {t} (id, label, amount, at, flag, doc, nums) SELECT g, \
                 CASE WHEN g % 13 = 0 THEN NULL ELSE 'row ' || g || ' v{variant} ' || repeat(chr(97 + (g % 26)::int), (g % 23)::int) END, \
                 CASE WHEN g % 17 = 0 THEN NULL ELSE ((g * 7919 + {variant}) % 2000000000 - 1000000000) / 100.0 END, \
                 CASE WHEN g % 19 = 0 THEN NULL ELSE timestamptz '2001-02-03 04:05:06.789012+00' + g * interval '1 second 7 microseconds' + {variant} * interval '1 day' END, \
                 CASE WHEN g % 7 = 0 THEN NULL ELSE (g + {variant}) % 2 = 0 END, \
                 CASE WHEN g % 11 = 0 THEN NULL ELSE jsonb_build_object('g', g, 'tag', 't' || (g % 100), 'v', {variant}, 'arr', jsonb_build_array(g % 3, 'x')) END, \
                 CASE WHEN g % 29 = 0 THEN NULL WHEN g % 31 = 0 THEN '{{}}'::int[] ELSE ARRAY[(g % 1000)::int, NULL, -((g + {variant}) % 7)::int] END \
                 FROM {series}"
            ),
            Shape::Composite => format!(
                "INSERT INTO {t} (region, n, qty, note) SELECT (g % 97)::int, g, ((g + {variant}) % 1000)::int, \
                 CASE WHEN g % 5 = 0 THEN NULL ELSE 'line ' || g || ' v{variant}' END FROM {series}"
            ),
            Shape::Keyless => format!(
                "INSERT INTO {t} (seq, label, amount) SELECT g, 'k' || g || ' v{variant}', \
                 CASE WHEN g % 9 = 0 THEN NULL ELSE ((g + {variant}) % 100000) / 100.0 END FROM {series}"
            ),
            Shape::Toast => format!(
                "INSERT INTO {t} (id, version, title, body) SELECT g, 1, 'doc ' || g || ' v{variant}', \
                 (SELECT string_agg(md5(g::text || '.' || i::text || '.' || random()::text), '') \
                  FROM generate_series(1, 160) i) FROM {series}"
            ),
            Shape::Empty => {
                format!("INSERT INTO {t} (id, v) SELECT g, 'v' || g || ' v{variant}' FROM {series}")
            }
        }
    }

    /// Creates the table and fills generator rows `1..=rows`.
    pub async fn create(&self, db: &TestDb, rows: i64) {
        db.execute(&self.ddl()).await;
        if rows > 0 && self.shape != Shape::Empty {
            db.execute(&self.insert_sql(1, rows, 0)).await;
        }
    }

    /// Row count in the source.
    pub async fn count(&self, db: &TestDb) -> i64 {
        let rows = db
            .query_text(&format!("SELECT count(*) FROM {}", self.name))
            .await;
        rows[0][0].as_deref().unwrap_or("0").parse().expect("count")
    }

    /// WHERE clause selecting generator row `g`.
    fn where_one(&self, g: i64) -> String {
        match self.shape {
            Shape::Composite => format!("region = {} AND n = {g}", g % 97),
            _ => format!("{} = {g}", self.id_column()),
        }
    }

    fn where_range(&self, from: i64, to: i64) -> String {
        format!("{} BETWEEN {from} AND {to}", self.id_column())
    }

    /// A random update of row `g` (never touching its identity).
    fn update_one(&self, rng: &mut StdRng, g: i64) -> String {
        let t = &self.name;
        let w = self.where_one(g);
        match self.shape {
            Shape::Mixed => {
                let mut sets = Vec::new();
                if rng.random_bool(0.5) {
                    sets.push(format!(
                        "label = {}",
                        nullable(rng, |r| quote_literal(&format!(
                            "upd {}",
                            r.random::<u32>()
                        )))
                    ));
                }
                if rng.random_bool(0.4) {
                    let cents: i64 = rng.random_range(-99_999_999_999..99_999_999_999);
                    sets.push(format!(
                        "amount = {}",
                        nullable(rng, |_| super::truth::format_decimal(cents as i128, 2))
                    ));
                }
                if rng.random_bool(0.3) {
                    sets.push(format!(
                        "flag = {}",
                        nullable(rng, |_| "NOT coalesce(flag, false)".to_string())
                    ));
                }
                if rng.random_bool(0.3) {
                    sets.push(format!(
                        "doc = {}",
                        nullable(rng, |r| {
                            format!("jsonb_build_object('u', {}, 'g', {g})", r.random::<u16>())
                        })
                    ));
                }
                if rng.random_bool(0.3) {
                    sets.push(format!(
                        "nums = {}",
                        nullable(rng, |r| format!(
                            "ARRAY[{}, NULL]::int[]",
                            r.random::<i32>()
                        ))
                    ));
                }
                if sets.is_empty() || rng.random_bool(0.3) {
                    sets.push("at = at + interval '1 hour 1 microsecond'".to_string());
                }
                format!("UPDATE {t} SET {} WHERE {w}", sets.join(", "))
            }
            Shape::Composite => format!(
                "UPDATE {t} SET qty = qty + 1, note = {} WHERE {w}",
                nullable(rng, |r| quote_literal(&format!(
                    "upd {}",
                    r.random::<u32>()
                )))
            ),
            Shape::Keyless => format!(
                "UPDATE {t} SET label = {}, amount = {} WHERE {w}",
                quote_literal(&format!("upd {g} {}", rng.random::<u32>())),
                nullable(rng, |r| {
                    format!(
                        "{}.{:02}",
                        r.random_range(0..1_000_000),
                        r.random_range(0..100)
                    )
                })
            ),
            Shape::Toast => {
                if rng.random_bool(0.8) {
                    // The body is left alone: pgoutput sends it as "unchanged TOAST".
                    format!(
                        "UPDATE {t} SET version = version + 1, title = {} WHERE {w}",
                        quote_literal(&format!("title {}", rng.random::<u32>()))
                    )
                } else {
                    format!(
                        "UPDATE {t} SET version = version + 1, body = \
                         (SELECT string_agg(md5(i::text || random()::text), '') FROM generate_series(1, 150) i) WHERE {w}"
                    )
                }
            }
            Shape::Empty => format!(
                "UPDATE {t} SET v = {} WHERE {w}",
                quote_literal(&format!("upd {}", rng.random::<u32>()))
            ),
        }
    }

    /// An update of every row in `from..=to` (a large, streamed transaction).
    fn update_range(&self, from: i64, to: i64) -> String {
        let t = &self.name;
        let w = self.where_range(from, to);
        match self.shape {
            Shape::Mixed => format!(
                "UPDATE {t} SET amount = round(coalesce(amount, 0) / 3, 2), label = 'bulk ' || id, flag = NOT coalesce(flag, true) WHERE {w}"
            ),
            Shape::Composite => format!("UPDATE {t} SET qty = qty + 7, note = 'bulk' WHERE {w}"),
            Shape::Keyless => format!("UPDATE {t} SET label = 'bulk ' || seq WHERE {w}"),
            Shape::Toast => format!("UPDATE {t} SET version = version + 1 WHERE {w}"),
            Shape::Empty => format!("UPDATE {t} SET v = 'bulk' WHERE {w}"),
        }
    }
}

/// `NULL` one time in ten, else the value `make` builds.
fn nullable(rng: &mut StdRng, make: impl FnOnce(&mut StdRng) -> String) -> String {
    if rng.random_bool(0.1) {
        "NULL".to_string()
    } else {
        make(rng)
    }
}

/// Creates and fills several tables; asserts the TOAST ones really store
/// their bodies out of line (otherwise the scenario would test nothing).
pub async fn create_tables(db: &TestDb, tables: &[(&ShapedTable, i64)]) {
    for (table, rows) in tables {
        table.create(db, *rows).await;
        if table.shape == Shape::Toast && *rows > 0 {
            let out = db
                .query_text(&format!(
                    "SELECT pg_relation_size(reltoastrelid)::text, \
                     (SELECT min(pg_column_size(body)) FROM {t})::text \
                     FROM pg_class WHERE oid = '{t}'::regclass",
                    t = table.name
                ))
                .await;
            let toast_bytes: i64 = out[0][0].as_deref().unwrap_or("0").parse().unwrap_or(0);
            let min_size: i64 = out[0][1].as_deref().unwrap_or("0").parse().unwrap_or(0);
            assert!(
                toast_bytes > 0 && min_size > 4096,
                "table {} should hold its bodies out of line: TOAST relation {toast_bytes} bytes, smallest body {min_size} bytes",
                table.name
            );
        }
    }
}

// ---------------------------------------------------------------------------
// The churn workload
// ---------------------------------------------------------------------------

/// What a churn run did.
#[derive(Debug, Clone, Default)]
pub struct ChurnStats {
    pub committed: u64,
    pub rolled_back: u64,
    pub large: u64,
    pub key_changes: u64,
    pub statements: u64,
}

/// Random inserts/updates/deletes on the same rows a snapshot copies.
#[derive(Debug)]
pub struct Churn {
    pub seed: u64,
    rng: StdRng,
    tables: Vec<ShapedTable>,
    /// Highest generator id handed out so far (ids are never reused).
    next_id: i64,
    /// Per table (qualified): ids a committed transaction deleted (or moved
    /// away from by a key change). None of them may exist afterwards.
    pub deleted: BTreeMap<String, BTreeSet<i64>>,
    /// Per table: rows inserted (fresh ids) by committed transactions.
    pub inserted: BTreeMap<String, u64>,
    pub stats: ChurnStats,
    /// Random pause between transactions (ms, 0 = none).
    pub max_pause_ms: u64,
    /// Rows a large transaction touches at most.
    pub large_rows: i64,
    /// Only single-row updates of existing ids, in autocommit (no inserts,
    /// deletes or large transactions): hammers the rows a snapshot copies.
    pub updates_only: bool,
}

/// One transaction under construction.
#[derive(Default)]
struct ChurnTxn {
    sql: Vec<String>,
    deleted: Vec<(String, i64, i64)>,
    inserted: Vec<(String, u64)>,
    key_changes: u64,
}

impl Churn {
    /// `tables` already hold generator rows `1..=max_initial_id` (at most);
    /// fresh ids start above it.
    pub fn new(seed: u64, tables: &[ShapedTable], max_initial_id: i64) -> Churn {
        Churn {
            seed,
            rng: StdRng::seed_from_u64(seed ^ 0x5eed_c4a2),
            tables: tables.to_vec(),
            next_id: max_initial_id,
            deleted: BTreeMap::new(),
            inserted: BTreeMap::new(),
            stats: ChurnStats::default(),
            max_pause_ms: 0,
            large_rows: 3000,
            updates_only: false,
        }
    }

    fn fresh(&mut self, n: i64) -> (i64, i64) {
        let from = self.next_id + 1;
        self.next_id += n;
        (from, self.next_id)
    }

    /// A random id that exists or existed (or never will: 0-row statements
    /// are fine).
    fn pick(&mut self) -> i64 {
        self.rng.random_range(1..=self.next_id.max(1))
    }

    fn random_op(&mut self, txn: &mut ChurnTxn) {
        let table = self.tables[self.rng.random_range(0..self.tables.len())].clone();
        let q = table.qualified();
        match self.rng.random_range(0..100) {
            0..50 => {
                let g = self.pick();
                let sql = table.update_one(&mut self.rng, g);
                txn.sql.push(sql);
            }
            50..70 => {
                let n = self.rng.random_range(1..=4);
                let mut ids = BTreeSet::new();
                for _ in 0..n {
                    ids.insert(self.pick());
                }
                for &g in &ids {
                    txn.sql.push(format!(
                        "DELETE FROM {} WHERE {}",
                        table.name,
                        table.where_one(g)
                    ));
                    txn.deleted.push((q.clone(), g, g));
                }
            }
            70..93 => {
                let n = self.rng.random_range(1..=5);
                let (from, to) = self.fresh(n);
                let variant = self.rng.random_range(1..1000);
                txn.sql.push(table.insert_sql(from, to, variant));
                txn.inserted.push((q, n as u64));
            }
            _ if table.shape == Shape::Mixed => {
                // Primary-key change: the old key is gone for good.
                let old = self.pick();
                let (new, _) = self.fresh(1);
                txn.sql.push(format!(
                    "UPDATE {} SET id = {new}, label = 'moved from {old}' WHERE id = {old}",
                    table.name
                ));
                txn.deleted.push((q.clone(), old, old));
                // The row (if `old` existed) lives on under a fresh id.
                txn.inserted.push((q, 1));
                txn.key_changes += 1;
            }
            _ => {
                let g = self.pick();
                let sql = table.update_one(&mut self.rng, g);
                txn.sql.push(sql);
            }
        }
    }

    fn update_only_op(&mut self, txn: &mut ChurnTxn) {
        let table = self.tables[self.rng.random_range(0..self.tables.len())].clone();
        let g = self.pick();
        let sql = table.update_one(&mut self.rng, g);
        txn.sql.push(sql);
    }

    /// A transaction of thousands of rows (streamed while in progress).
    fn large_op(&mut self, txn: &mut ChurnTxn) {
        let table = self.tables[self.rng.random_range(0..self.tables.len())].clone();
        let q = table.qualified();
        let width = self
            .rng
            .random_range(self.large_rows / 3..=self.large_rows)
            .max(1);
        match self.rng.random_range(0..3) {
            0 => {
                let from = self.pick();
                txn.sql.push(table.update_range(from, from + width));
            }
            1 => {
                let width = (width / 4).max(1);
                let from = self.pick();
                // Never past the highest id handed out: ids above it are
                // handed out later, and must not count as deleted.
                let to = (from + width).min(self.next_id);
                txn.sql.push(format!(
                    "DELETE FROM {} WHERE {}",
                    table.name,
                    table.where_range(from, to)
                ));
                txn.deleted.push((q, from, to));
            }
            _ => {
                let (from, to) = self.fresh(width);
                txn.sql.push(table.insert_sql(from, to, 7));
                txn.inserted.push((q, width as u64));
            }
        }
    }

    /// Runs one random transaction.
    pub async fn one_transaction(&mut self, client: &Client) {
        let mut txn = ChurnTxn::default();
        let roll = if self.updates_only {
            self.update_only_op(&mut txn);
            -1
        } else {
            self.rng.random_range(0..100)
        };
        let commit = match roll {
            -1 => true,
            0..55 => {
                self.random_op(&mut txn);
                true
            }
            55..82 => {
                for _ in 0..self.rng.random_range(2..=6) {
                    self.random_op(&mut txn);
                }
                true
            }
            82..88 => {
                for _ in 0..self.rng.random_range(1..=4) {
                    self.random_op(&mut txn);
                }
                false
            }
            _ => {
                self.large_op(&mut txn);
                self.random_op(&mut txn);
                self.stats.large += 1;
                self.rng.random_bool(0.85)
            }
        };
        let mut sql = String::from("BEGIN;\n");
        for s in &txn.sql {
            sql.push_str(s);
            sql.push_str(";\n");
        }
        sql.push_str(if commit { "COMMIT;" } else { "ROLLBACK;" });
        self.stats.statements += txn.sql.len() as u64;
        if let Err(e) = client.batch_execute(&sql).await {
            panic!(
                "churn transaction failed (seed {}): {}\n{}",
                self.seed,
                pg_error(&e),
                super::abbreviate(&sql, 3000)
            );
        }
        if commit {
            self.stats.committed += 1;
            self.stats.key_changes += txn.key_changes;
            for (table, from, to) in txn.deleted {
                self.deleted.entry(table).or_default().extend(from..=to);
            }
            for (table, n) in txn.inserted {
                *self.inserted.entry(table).or_default() += n;
            }
        } else {
            self.stats.rolled_back += 1;
        }
    }

    /// Runs transactions until `stop` is cancelled (at least `min_txns`).
    pub async fn run_until(
        mut self,
        db: TestDb,
        stop: tokio_util::sync::CancellationToken,
        min_txns: u64,
    ) -> Churn {
        let client = db.client().await;
        let mut done = 0u64;
        while !stop.is_cancelled() || done < min_txns {
            self.one_transaction(&client).await;
            done += 1;
            if self.max_pause_ms > 0 {
                let pause = self.rng.random_range(0..=self.max_pause_ms);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
        self
    }

    /// Starts [`Churn::run_until`] on its own task.
    pub fn spawn(
        self,
        db: &TestDb,
        min_txns: u64,
    ) -> (
        tokio_util::sync::CancellationToken,
        tokio::task::JoinHandle<Churn>,
    ) {
        let stop = tokio_util::sync::CancellationToken::new();
        let handle = tokio::spawn(self.run_until(db.clone(), stop.clone(), min_txns));
        (stop, handle)
    }

    /// Ids deleted from `table` (qualified).
    pub fn deleted_from(&self, table: &str) -> BTreeSet<i64> {
        self.deleted.get(table).cloned().unwrap_or_default()
    }

    pub fn inserted_into(&self, table: &str) -> u64 {
        self.inserted.get(table).copied().unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------
// The checkpoint's snapshot object
// ---------------------------------------------------------------------------

/// `public.` added to an unqualified name.
pub fn qualify(table: &str) -> String {
    if table.contains('.') {
        table.to_string()
    } else {
        format!("public.{table}")
    }
}

/// The checkpoint file's `snapshot` object, if any.
pub fn snapshot_state(lake_root: &Path, source: &str) -> Option<Json> {
    lake::read_checkpoint(lake_root, source)?
        .get("snapshot")
        .filter(|s| !s.is_null())
        .cloned()
}

/// `done` of a snapshot object.
pub fn done_tables(state: &Json) -> Vec<String> {
    state
        .get("done")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Json::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `pending[].table` of a snapshot object.
pub fn pending_tables(state: &Json) -> Vec<String> {
    state
        .get("pending")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p.get("table").and_then(Json::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The pending entry of `table`, if any.
pub fn pending_entry(state: &Json, table: &str) -> Option<Json> {
    state
        .get("pending")?
        .as_array()?
        .iter()
        .find(|p| p.get("table").and_then(Json::as_str) == Some(table))
        .cloned()
}

/// Sessions of the test database and ungranted locks (for hang reports).
pub async fn activity_report(db: &TestDb) -> String {
    let sessions = db
        .query_text(&format!(
            "SELECT pid::text, coalesce(application_name, ''), coalesce(state, ''), \
             coalesce(wait_event_type || ':' || wait_event, ''), \
             coalesce(now() - xact_start, '0')::text, left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), 160) \
             FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid() ORDER BY pid",
            quote_literal(&db.name)
        ))
        .await;
    let locks = db
        .query_text(
            "SELECT l.pid::text, l.mode, coalesce(l.relation::regclass::text, l.locktype), \
             array_to_string(pg_blocking_pids(l.pid), ',') \
             FROM pg_locks l WHERE NOT l.granted",
        )
        .await;
    let mut out = String::from("----- sessions (pid, app, state, wait, xact age, query) -----\n");
    for row in sessions {
        let cells: Vec<&str> = row.iter().map(|c| c.as_deref().unwrap_or("")).collect();
        out.push_str(&cells.join(" | "));
        out.push('\n');
    }
    out.push_str("----- ungranted locks (pid, mode, relation, blocked by) -----\n");
    for row in locks {
        let cells: Vec<&str> = row.iter().map(|c| c.as_deref().unwrap_or("")).collect();
        out.push_str(&cells.join(" | "));
        out.push('\n');
    }
    out
}

/// Waits until the checkpoint's snapshot object has no pending snapshot
/// and lists every one of `tables` as done. Callers make sure the tables
/// were not done before (so "done" means this snapshot finished). Panics
/// with the checkpoint, sessions/locks, daemon and server logs on timeout
/// or if the daemon dies. Returns the snapshot object.
pub async fn wait_snapshots_done(
    db: &TestDb,
    config: &TestConfig,
    tables: &[&str],
    timeout: Duration,
    daemon: &mut dyn Daemon,
) -> Json {
    let wanted: Vec<String> = tables.iter().map(|t| qualify(t)).collect();
    let started = Instant::now();
    let mut last_report = started;
    loop {
        let state = snapshot_state(&config.lake, &config.source);
        if let Some(state) = &state {
            let done = done_tables(state);
            if pending_tables(state).is_empty() && wanted.iter().all(|t| done.contains(t)) {
                eprintln!(
                    "snapshots of {wanted:?} done in {:.1}s",
                    started.elapsed().as_secs_f64()
                );
                return state.clone();
            }
            if last_report.elapsed() > Duration::from_secs(10) {
                eprintln!(
                    "… waiting for snapshots of {wanted:?} ({:.0}s): done {done:?}, pending {}",
                    started.elapsed().as_secs_f64(),
                    state.get("pending").cloned().unwrap_or(Json::Null)
                );
                last_report = Instant::now();
            }
        }
        let dead = daemon.exited();
        if dead.is_some() || started.elapsed() > timeout {
            let why = match dead {
                Some(how) => format!("the daemon {how}"),
                None => format!("timed out after {timeout:?}"),
            };
            let checkpoint = lake::read_checkpoint(&config.lake, &config.source);
            panic!(
                "waiting for the snapshots of {wanted:?} to finish: {why}\ncheckpoint ({}):\n{}\n{}\n{}\n----- PostgreSQL log -----\n{}",
                lake::checkpoint_path(&config.lake, &config.source).display(),
                checkpoint
                    .map(|c| serde_json::to_string_pretty(&c).unwrap_or_default())
                    .unwrap_or_else(|| "(none yet)".into()),
                activity_report(db).await,
                daemon.logs(),
                db.server_log_tail(40),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until at least one manifest exists (the first flush of a copy).
pub async fn wait_first_manifest(
    db: &TestDb,
    config: &TestConfig,
    timeout: Duration,
    daemon: &mut dyn Daemon,
) {
    let started = Instant::now();
    let dir = config.lake.join(&config.source).join("_manifests");
    loop {
        let any = std::fs::read_dir(&dir)
            .map(|entries| {
                entries.filter_map(Result::ok).any(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".json"))
                        .is_some_and(|stem| {
                            stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit())
                        })
                })
            })
            .unwrap_or(false);
        if any {
            eprintln!(
                "first manifest after {:.2}s",
                started.elapsed().as_secs_f64()
            );
            return;
        }
        if let Some(how) = daemon.exited() {
            panic!(
                "the daemon {how} before its first manifest\n{}",
                daemon.logs()
            );
        }
        if started.elapsed() > timeout {
            panic!(
                "no manifest within {timeout:?}\n{}\n{}",
                activity_report(db).await,
                daemon.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------
// The lake side
// ---------------------------------------------------------------------------

/// One delta file as a manifest lists it.
#[derive(Debug, Clone)]
pub struct ListedFile {
    pub manifest: u64,
    pub table: String,
    pub path: PathBuf,
    /// The entry's `snapshot` flag (`None` when absent).
    pub snapshot: Option<bool>,
}

/// Every file every manifest lists, with its `snapshot` flag.
pub fn manifest_files(lake_root: &Path, source: &str) -> Vec<ListedFile> {
    let mut out = Vec::new();
    for manifest in lake::manifests(lake_root, source) {
        // `files()` walks tables and their files in order; walk the JSON
        // the same way for the flags.
        let flags: Vec<Option<bool>> = manifest
            .json
            .get("tables")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .flat_map(|t| {
                t.get("files")
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                    .map(|f| f.get("snapshot").and_then(Json::as_bool))
            })
            .collect();
        let files = manifest.files(lake_root, source);
        assert_eq!(
            flags.len(),
            files.len(),
            "manifest {}",
            manifest.path.display()
        );
        for ((table, path), snapshot) in files.into_iter().zip(flags) {
            out.push(ListedFile {
                manifest: manifest.seq,
                table,
                path,
                snapshot,
            });
        }
    }
    out
}

/// `(_op, _pos)` of every row of a delta file (only those two columns are
/// decoded).
pub fn ops_and_positions(path: &Path) -> Vec<(String, String)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .unwrap_or_else(|e| panic!("{} is not Parquet: {e}", path.display()));
    let schema = builder.parquet_schema();
    let wanted: Vec<usize> = (0..schema.num_columns())
        .filter(|&i| matches!(schema.column(i).name(), "_op" | "_pos"))
        .collect();
    let mask = ProjectionMask::leaves(schema, wanted);
    let reader = builder
        .with_projection(mask)
        .build()
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let column = |name: &str| -> Vec<String> {
            let array = batch
                .column_by_name(name)
                .unwrap_or_else(|| panic!("{} has no {name} column", path.display()));
            match array.data_type() {
                DataType::Utf8 => array
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.unwrap_or_default().to_string())
                    .collect(),
                DataType::LargeUtf8 => array
                    .as_string::<i64>()
                    .iter()
                    .map(|v| v.unwrap_or_default().to_string())
                    .collect(),
                DataType::Utf8View => array
                    .as_string_view()
                    .iter()
                    .map(|v| v.unwrap_or_default().to_string())
                    .collect(),
                other => panic!("{name} in {} has type {other}", path.display()),
            }
        };
        let ops = column("_op");
        let positions = column("_pos");
        assert_eq!(ops.len(), batch.num_rows());
        out.extend(ops.into_iter().zip(positions));
    }
    out
}

/// How many rows of each `_op` a table has in the lake (files listed by
/// manifests): `distinct` counts positions once (a flush replayed after a
/// crash lists the same rows again), `total` counts every occurrence.
#[derive(Debug, Clone, Default)]
pub struct OpCounts {
    pub distinct: BTreeMap<String, usize>,
    pub total: BTreeMap<String, usize>,
}

impl OpCounts {
    pub fn distinct(&self, op: &str) -> usize {
        self.distinct.get(op).copied().unwrap_or(0)
    }
    pub fn total(&self, op: &str) -> usize {
        self.total.get(op).copied().unwrap_or(0)
    }
}

pub fn op_counts(lake_root: &Path, source: &str, table: &str) -> OpCounts {
    let table = qualify(table);
    let mut seen: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    let mut counts = OpCounts::default();
    let mut files_seen = HashSet::new();
    for file in manifest_files(lake_root, source) {
        if file.table != table {
            continue;
        }
        let first_time = files_seen.insert(file.path.clone());
        for (op, pos) in ops_and_positions(&file.path) {
            *counts.total.entry(op.clone()).or_default() += 1;
            if first_time {
                seen.entry(op).or_default().insert(pos);
            }
        }
    }
    counts.distinct = seen.into_iter().map(|(op, set)| (op, set.len())).collect();
    counts
}

/// Asserts every file a manifest flags `"snapshot": true` holds only `r`
/// rows; returns the flagged files of `table` (qualified).
pub fn assert_snapshot_flags_truthful(lake_root: &Path, source: &str, table: &str) -> Vec<PathBuf> {
    let table = qualify(table);
    let mut flagged = Vec::new();
    for file in manifest_files(lake_root, source) {
        if file.snapshot != Some(true) {
            continue;
        }
        let not_r: Vec<String> = ops_and_positions(&file.path)
            .into_iter()
            .filter(|(op, _)| op != "r")
            .map(|(op, pos)| format!("{op}@{pos}"))
            .take(5)
            .collect();
        assert!(
            not_r.is_empty(),
            "manifest {} flags {} as a snapshot file, but it holds non-`r` rows: {not_r:?}",
            file.manifest,
            file.path.display()
        );
        if file.table == table {
            flagged.push(file.path);
        }
    }
    flagged
}

/// The values of `column` (an integer column) of a merged lake table;
/// `None` when the lake has no such table.
pub async fn lake_keys(
    lake_root: &Path,
    source: &str,
    table: &str,
    column: &str,
) -> Option<BTreeSet<i64>> {
    let tables = super::truth::load_lake_tables(lake_root, source).await;
    let merged = tables.get(&qualify(table))?;
    let index = merged
        .columns
        .iter()
        .position(|(name, _)| name == column)
        .unwrap_or_else(|| panic!("lake table {table} has no column {column}"));
    Some(
        merged
            .rows
            .iter()
            .map(|row| match &row[index] {
                Value::Int64(v) => *v,
                Value::Int32(v) => i64::from(*v),
                other => panic!("lake {table}.{column} holds {other:?}, not an integer"),
            })
            .collect(),
    )
}

/// Asserts no id the churn deleted from each table is in the merged lake
/// (a snapshot must never resurrect a deleted row), and that the source
/// agrees they are gone (the check itself is sound). Merges the lake once.
pub async fn assert_no_resurrection(
    db: &TestDb,
    config: &TestConfig,
    tables: &[(&ShapedTable, BTreeSet<i64>)],
) {
    let merged = super::truth::load_lake_tables(&config.lake, &config.source).await;
    for (table, deleted) in tables {
        if deleted.is_empty() {
            eprintln!("{}: the churn deleted nothing", table.qualified());
            continue;
        }
        let column = table.id_column();
        let in_source = db
            .query_text(&format!("SELECT {column}::text FROM {}", table.name))
            .await;
        let source_ids: BTreeSet<i64> = in_source
            .iter()
            .filter_map(|r| r[0].as_deref().and_then(|v| v.parse().ok()))
            .collect();
        let still_there: Vec<&i64> = deleted.intersection(&source_ids).take(10).collect();
        assert!(
            still_there.is_empty(),
            "harness bug: ids the churn deleted from {} still exist in the source: {still_there:?}",
            table.name
        );
        let lake_ids: BTreeSet<i64> = match merged.get(&table.qualified()) {
            None => BTreeSet::new(),
            Some(lake_table) => {
                let index = lake_table
                    .columns
                    .iter()
                    .position(|(name, _)| name == column)
                    .unwrap_or_else(|| panic!("lake table {} has no column {column}", table.name));
                lake_table
                    .rows
                    .iter()
                    .map(|row| match &row[index] {
                        Value::Int64(v) => *v,
                        Value::Int32(v) => i64::from(*v),
                        other => panic!("lake {}.{column} holds {other:?}", table.name),
                    })
                    .collect()
            }
        };
        let resurrected: Vec<&i64> = deleted.intersection(&lake_ids).collect();
        assert!(
            resurrected.is_empty(),
            "{} deleted row(s) of {} are alive in the merged lake (resurrected by a snapshot?): first {:?} (of {} deleted ids)",
            resurrected.len(),
            table.qualified(),
            resurrected.iter().take(20).collect::<Vec<_>>(),
            deleted.len()
        );
        eprintln!(
            "{}: none of the {} deleted ids is in the lake",
            table.qualified(),
            deleted.len()
        );
    }
}

// ---------------------------------------------------------------------------
// The CLI
// ---------------------------------------------------------------------------

/// `tributary snapshot --config F --source S --table T…`; panics unless it
/// exits 0. Returns its stdout.
pub fn request_snapshot_cli(config_path: &Path, source: &str, tables: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tributary"));
    cmd.arg("snapshot")
        .arg("--config")
        .arg(config_path)
        .args(["--source", source]);
    for t in tables {
        cmd.args(["--table", t]);
    }
    let out = cmd.output().expect("running tributary snapshot");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "`tributary snapshot` failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    eprintln!("tributary snapshot: {}", stdout.trim());
    stdout
}

/// Counts lines of a log file containing every one of `needles`.
pub fn log_lines_with(path: &Path, needles: &[&str]) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------
// Resumption
// ---------------------------------------------------------------------------

/// A pending table's cursor as something ordered: an integer key, text
/// key values, or a heap page.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum CursorPos {
    Int(i64),
    Text(Vec<String>),
    Page(u64),
}

/// The cursor of a `pending` entry (`None`: nothing copied yet).
pub fn cursor_pos(entry: &Json) -> Option<CursorPos> {
    let cursor = entry.get("cursor").filter(|c| !c.is_null())?;
    if let Some(page) = cursor.get("page").and_then(Json::as_u64) {
        return Some(CursorPos::Page(page));
    }
    let values: Vec<String> = cursor
        .get("values")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect()
        })
        .unwrap_or_else(|| panic!("unrecognized snapshot cursor {cursor}"));
    match values.as_slice() {
        [one] => match one.parse::<i64>() {
            Ok(v) => Some(CursorPos::Int(v)),
            Err(_) => Some(CursorPos::Text(values)),
        },
        _ => Some(CursorPos::Text(values)),
    }
}

/// The snapshot object of the newest manifest (what is durable), else of
/// the checkpoint file.
pub fn durable_snapshot_state(lake_root: &Path, source: &str) -> Option<Json> {
    let from_manifest = lake::manifests(lake_root, source)
        .last()
        .and_then(|m| m.json.get("checkpoint")?.get("snapshot").cloned())
        .filter(|s| !s.is_null());
    from_manifest.or_else(|| snapshot_state(lake_root, source))
}

/// Walks the snapshot progress every manifest recorded, in sequence order,
/// and asserts that for each of `tables` it only ever moves forward: while
/// pending, the cursor never goes back (in particular never back to "nothing
/// copied" — a restart from zero), and once done the table stays done.
/// Returns, per table, how many manifests saw it pending.
pub fn assert_snapshot_progress_monotonic(
    lake_root: &Path,
    source: &str,
    tables: &[&str],
) -> BTreeMap<String, usize> {
    let mut seen_pending: BTreeMap<String, usize> = BTreeMap::new();
    for table in tables {
        let table = qualify(table);
        let mut last: Option<(u64, Option<CursorPos>)> = None;
        let mut done_at: Option<u64> = None;
        let mut pending_count = 0usize;
        for manifest in lake::manifests(lake_root, source) {
            let Some(state) = manifest
                .json
                .get("checkpoint")
                .and_then(|c| c.get("snapshot"))
                .filter(|s| !s.is_null())
            else {
                continue;
            };
            let done = done_tables(state).contains(&table);
            let entry = pending_entry(state, &table);
            if let Some(at) = done_at {
                assert!(
                    done && entry.is_none(),
                    "{table} was done in manifest {at} but manifest {} has it {}: {state}",
                    manifest.seq,
                    if done { "pending again" } else { "not done" }
                );
                continue;
            }
            if done {
                done_at = Some(manifest.seq);
                continue;
            }
            let Some(entry) = entry else { continue };
            pending_count += 1;
            let cursor = cursor_pos(&entry);
            if let Some((seq, Some(previous))) = &last {
                match &cursor {
                    None => panic!(
                        "{table}: manifest {seq} recorded snapshot cursor {previous:?}, but manifest {} starts it over (cursor null): {entry}",
                        manifest.seq
                    ),
                    Some(now) => assert!(
                        now >= previous,
                        "{table}: snapshot cursor went back from {previous:?} (manifest {seq}) to {now:?} (manifest {}): a restart did not resume at the next unfinished chunk",
                        manifest.seq
                    ),
                }
            }
            last = Some((manifest.seq, cursor));
        }
        seen_pending.insert(table, pending_count);
    }
    seen_pending
}
