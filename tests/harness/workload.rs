//! A seeded, randomized OLTP workload over four tables that between them
//! exercise every mapped type and every shape of change pgoutput produces:
//!
//! - `orders`: one column of every type in the mapping table (NULLs
//!   sprinkled), `bigint` key; inserts, updates of random column subsets,
//!   primary-key changes, deletes.
//! - `docs`: a text column holding > 8 KB of incompressible text (TOASTed
//!   out of line), updated mostly *without* touching it (pgoutput sends the
//!   value as "unchanged TOAST"); no key changes here (documented limitation).
//! - `line_items`: a composite primary key `(order_id, line_no)`, including
//!   key changes and multi-row updates/deletes.
//! - `events_full`: `REPLICA IDENTITY FULL`, primary-key-changing updates,
//!   sometimes with a large unchanged TOASTed column.
//! - `bulk`: only [`big_transaction`] writes it (never truncated), so the
//!   rows of huge streamed transactions are still there to be checked.
//!
//! Transactions: single statements, multi-statement commits, `ROLLBACK`,
//! `SAVEPOINT` + `ROLLBACK TO SAVEPOINT` (+ `RELEASE`), an occasional
//! `TRUNCATE`, medium transactions of a few thousand rows (past
//! `logical_decoding_work_mem`, so streamed) that sometimes abort, and
//! [`big_transaction`] for one huge `INSERT … SELECT generate_series`.
//!
//! The generator keeps a model of which keys exist (restored on rollback) so
//! every update/delete hits a real row and no statement ever fails. Values
//! avoid only what the lake documents as unrepresentable (NaN/infinity in
//! `numeric(p,s)`, infinite dates/timestamps, multi-dimensional arrays).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio_postgres::Client;

use super::postgres::{pg_error, quote_literal};

/// The tables the workload writes, as `schema.table`.
pub const TABLES: &[&str] = &[
    "public.orders",
    "public.docs",
    "public.line_items",
    "public.events_full",
    "public.bulk",
];

const DDL: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'ecstatic', 'with space', 'quo''te');
CREATE DOMAIN posint AS int4 CHECK (VALUE >= 0);
CREATE TABLE orders (
    id          bigint PRIMARY KEY,
    c_int2      int2,
    c_int4      int4,
    c_int8      int8,
    c_num       numeric(12,2),
    c_numeric   numeric,
    c_float4    float4,
    c_float8    float8,
    c_bool      bool,
    c_text      text,
    c_varchar   varchar(40),
    c_char      char(8),
    c_bytea     bytea,
    c_uuid      uuid,
    c_json      json,
    c_jsonb     jsonb,
    c_date      date,
    c_time      time,
    c_timetz    timetz,
    c_ts        timestamp,
    c_tstz      timestamptz,
    c_interval  interval,
    c_int4arr   int4[],
    c_textarr   text[],
    c_mood      mood,
    c_inet      inet,
    c_cidr      cidr,
    c_macaddr   macaddr,
    c_money     money,
    c_posint    posint
);
CREATE TABLE docs (
    id       bigint PRIMARY KEY,
    title    text NOT NULL,
    body     text,
    version  int4 NOT NULL,
    tags     text[]
);
CREATE TABLE line_items (
    order_id bigint NOT NULL,
    line_no  int4 NOT NULL,
    qty      int4 NOT NULL,
    price    numeric(10,2),
    note     text,
    PRIMARY KEY (order_id, line_no)
);
CREATE TABLE events_full (
    id       bigint PRIMARY KEY,
    code     text,
    amount   float8,
    payload  jsonb,
    tags     text[],
    note     text
);
ALTER TABLE events_full REPLICA IDENTITY FULL;
CREATE TABLE bulk (
    batch    bigint NOT NULL,
    n        bigint NOT NULL,
    qty      int4 NOT NULL,
    price    numeric(10,2),
    note     text,
    PRIMARY KEY (batch, n)
);
"#;

/// Which keys exist, per table (restored on ROLLBACK / ROLLBACK TO SAVEPOINT).
#[derive(Debug, Clone, Default)]
struct Model {
    orders: BTreeSet<i64>,
    docs: BTreeSet<i64>,
    lines: BTreeSet<(i64, i32)>,
    events: BTreeSet<i64>,
}

/// What a run did (printed by the scenarios).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub committed: u64,
    pub rolled_back: u64,
    pub savepoint_rollbacks: u64,
    pub truncates: u64,
    pub streamed: u64,
    pub statements: u64,
}

/// The workload generator. Deterministic for a seed (given the same order
/// of calls).
#[derive(Debug)]
pub struct Workload {
    pub seed: u64,
    rng: StdRng,
    model: Model,
    next_id: i64,
    pub stats: Stats,
    /// Random pause between transactions (0 = none), to spread a workload
    /// over time when a daemon is being killed meanwhile.
    pub max_pause_ms: u64,
}

/// A transaction under construction: statements plus the model as of its
/// start and of its savepoint.
struct Txn {
    sql: Vec<String>,
}

impl Workload {
    pub fn new(seed: u64) -> Workload {
        Workload {
            seed,
            rng: StdRng::seed_from_u64(seed),
            model: Model::default(),
            next_id: 1,
            stats: Stats::default(),
            max_pause_ms: 0,
        }
    }

    /// The tables this workload writes (`schema.table`).
    pub fn tables(&self) -> Vec<&'static str> {
        TABLES.to_vec()
    }

    /// Creates the types and tables.
    pub async fn setup(&self, client: &Client) {
        client
            .batch_execute(DDL)
            .await
            .unwrap_or_else(|e| panic!("workload DDL failed: {}", pg_error(&e)));
    }

    /// Runs `n_txns` random transactions.
    pub async fn run(&mut self, client: &Client, n_txns: usize) -> Stats {
        for _ in 0..n_txns {
            self.one_transaction(client).await;
            if self.max_pause_ms > 0 {
                let pause = self.rng.random_range(0..=self.max_pause_ms);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
        self.stats.clone()
    }

    fn fresh_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    async fn execute(&mut self, client: &Client, sql: &str) {
        self.stats.statements += 1;
        if let Err(e) = client.batch_execute(sql).await {
            panic!(
                "workload statement failed (seed {}): {}\n{}",
                self.seed,
                pg_error(&e),
                super::abbreviate(sql, 4000)
            );
        }
    }

    async fn one_transaction(&mut self, client: &Client) {
        let roll: u32 = self.rng.random_range(0..100);
        let before = self.model.clone();
        let mut txn = Txn { sql: Vec::new() };
        match roll {
            // A single autocommit statement.
            0..15 => {
                self.random_op(&mut txn);
                let sql = txn.sql.join(";\n");
                self.execute(client, &sql).await;
                self.stats.committed += 1;
            }
            // BEGIN; ops; COMMIT
            15..72 => {
                let n = self.rng.random_range(1..=8);
                for _ in 0..n {
                    self.random_op(&mut txn);
                }
                self.finish(client, txn, true).await;
            }
            // BEGIN; ops; ROLLBACK
            72..80 => {
                let n = self.rng.random_range(1..=6);
                for _ in 0..n {
                    self.random_op(&mut txn);
                }
                self.finish(client, txn, false).await;
                self.model = before;
            }
            // Savepoints.
            80..93 => {
                for _ in 0..self.rng.random_range(0..=3) {
                    self.random_op(&mut txn);
                }
                let at_savepoint = self.model.clone();
                txn.sql.push("SAVEPOINT a".into());
                for _ in 0..self.rng.random_range(1..=4) {
                    self.random_op(&mut txn);
                }
                txn.sql.push("ROLLBACK TO SAVEPOINT a".into());
                self.model = at_savepoint;
                self.stats.savepoint_rollbacks += 1;
                for _ in 0..self.rng.random_range(0..=3) {
                    self.random_op(&mut txn);
                }
                if self.rng.random_bool(0.5) {
                    txn.sql.push("SAVEPOINT b".into());
                    for _ in 0..self.rng.random_range(1..=3) {
                        self.random_op(&mut txn);
                    }
                    txn.sql.push("RELEASE SAVEPOINT b".into());
                }
                self.finish(client, txn, true).await;
            }
            // TRUNCATE, maybe refilled in the same transaction.
            93..95 => {
                let which = self.rng.random_range(0..10);
                let (sql, tables): (&str, &[&str]) = match which {
                    0..4 => ("TRUNCATE line_items", &["lines"]),
                    4..7 => ("TRUNCATE docs, events_full", &["docs", "events"]),
                    7..9 => ("TRUNCATE events_full", &["events"]),
                    _ => ("TRUNCATE orders", &["orders"]),
                };
                txn.sql.push(sql.into());
                for t in tables {
                    match *t {
                        "lines" => self.model.lines.clear(),
                        "docs" => self.model.docs.clear(),
                        "events" => self.model.events.clear(),
                        _ => self.model.orders.clear(),
                    }
                }
                self.stats.truncates += 1;
                for _ in 0..self.rng.random_range(0..=4) {
                    self.random_op(&mut txn);
                }
                self.finish(client, txn, true).await;
            }
            // A medium transaction, past logical_decoding_work_mem (streamed),
            // sometimes aborted, sometimes with a rolled-back subtransaction.
            _ => {
                self.stats.streamed += 1;
                let order_id = self.fresh_id();
                let rows: i32 = self.rng.random_range(500..3000);
                txn.sql.push(format!(
                    "INSERT INTO line_items (order_id, line_no, qty, price, note) \
                     SELECT {order_id}, g, g % 97, (g * 7 % 100000) / 100.0, \
                            CASE WHEN g % 5 = 0 THEN NULL ELSE 'medium ' || g || repeat('x', g % 40) END \
                     FROM generate_series(1, {rows}) g"
                ));
                for line in 1..=rows {
                    self.model.lines.insert((order_id, line));
                }
                if self.rng.random_bool(0.3) {
                    let at_savepoint = self.model.clone();
                    txn.sql.push("SAVEPOINT big".into());
                    txn.sql.push(format!(
                        "UPDATE line_items SET qty = qty + 1000, note = 'rolled back' WHERE order_id = {order_id}"
                    ));
                    txn.sql.push(format!(
                        "DELETE FROM line_items WHERE order_id = {order_id} AND line_no % 3 = 0"
                    ));
                    txn.sql.push("ROLLBACK TO SAVEPOINT big".into());
                    self.model = at_savepoint;
                    self.stats.savepoint_rollbacks += 1;
                }
                txn.sql.push(format!(
                    "UPDATE line_items SET qty = qty + 1 WHERE order_id = {order_id} AND line_no % 4 = 1"
                ));
                self.random_op(&mut txn);
                let commit = self.rng.random_bool(0.75);
                self.finish(client, txn, commit).await;
                if !commit {
                    self.model = before;
                }
            }
        }
    }

    async fn finish(&mut self, client: &Client, txn: Txn, commit: bool) {
        let mut sql = String::from("BEGIN;\n");
        for s in &txn.sql {
            sql.push_str(s);
            sql.push_str(";\n");
        }
        sql.push_str(if commit { "COMMIT;" } else { "ROLLBACK;" });
        self.execute(client, &sql).await;
        if commit {
            self.stats.committed += 1;
        } else {
            self.stats.rolled_back += 1;
        }
    }

    /// Appends one random data-changing statement and updates the model.
    fn random_op(&mut self, txn: &mut Txn) {
        let table = self.rng.random_range(0..4);
        // Keep tables from growing without bound: delete more when large.
        let (len, cap) = match table {
            0 => (self.model.orders.len(), 150),
            1 => (self.model.docs.len(), 60),
            2 => (self.model.lines.len(), 4000),
            _ => (self.model.events.len(), 150),
        };
        let kind = if len == 0 {
            0
        } else if len > cap {
            self.rng.random_range(8..10)
        } else {
            self.rng.random_range(0..10)
        };
        // kind: 0-3 insert, 4-6 update, 7 key change / special, 8-9 delete
        let sql = match table {
            0 => match kind {
                0..4 => self.insert_orders(),
                4..7 => self.update_order(),
                7 => self.change_order_key(),
                _ => self.delete_orders(),
            },
            1 => match kind {
                0..4 => self.insert_doc(),
                4..8 => self.update_doc(),
                _ => self.delete_doc(),
            },
            2 => match kind {
                0..4 => self.insert_lines(),
                4..7 => self.update_lines(),
                7 => self.change_line_key(),
                _ => self.delete_lines(),
            },
            _ => match kind {
                0..4 => self.insert_event(),
                4..6 => self.update_event(),
                6..8 => self.change_event_key(),
                _ => self.delete_event(),
            },
        };
        txn.sql.push(sql);
    }

    // ----- orders -----

    const ORDER_COLUMNS: &'static [&'static str] = &[
        "c_int2",
        "c_int4",
        "c_int8",
        "c_num",
        "c_numeric",
        "c_float4",
        "c_float8",
        "c_bool",
        "c_text",
        "c_varchar",
        "c_char",
        "c_bytea",
        "c_uuid",
        "c_json",
        "c_jsonb",
        "c_date",
        "c_time",
        "c_timetz",
        "c_ts",
        "c_tstz",
        "c_interval",
        "c_int4arr",
        "c_textarr",
        "c_mood",
        "c_inet",
        "c_cidr",
        "c_macaddr",
        "c_money",
        "c_posint",
    ];

    fn order_value(&mut self, column: &str) -> String {
        if self.rng.random_bool(0.12) {
            return "NULL".into();
        }
        let r = &mut self.rng;
        match column {
            "c_int2" => pick_int(
                r,
                &[i16::MIN as i64, i16::MAX as i64, 0, -1],
                i16::MIN as i64..=i16::MAX as i64,
            ),
            "c_int4" => pick_int(
                r,
                &[i32::MIN as i64, i32::MAX as i64, 0],
                i32::MIN as i64..=i32::MAX as i64,
            ),
            "c_int8" => pick_int(r, &[i64::MIN, i64::MAX, 0, 1], i64::MIN..=i64::MAX),
            "c_num" => {
                let v: i64 = r.random_range(-999_999_999_999..=999_999_999_999);
                // Sometimes fewer digits than the scale: stored as x.y0.
                if r.random_bool(0.2) {
                    format!("'{}'", v / 100)
                } else {
                    format!("'{}'", super::truth::format_decimal(v as i128, 2))
                }
            }
            "c_numeric" => {
                let specials = [
                    "NaN",
                    "Infinity",
                    "-Infinity",
                    "0",
                    "1.500",
                    "-0.000001",
                    "123456789012345678901234567890123456789012345.678901234567890",
                    "1e20",
                    "0.1e-10",
                ];
                if r.random_bool(0.3) {
                    format!("'{}'", specials[r.random_range(0..specials.len())])
                } else {
                    let int: i64 = r.random_range(-1_000_000_000..1_000_000_000);
                    let frac_digits = r.random_range(0..12);
                    let frac: String = (0..frac_digits)
                        .map(|_| char::from(b'0' + r.random_range(0..10u8)))
                        .collect();
                    if frac.is_empty() {
                        format!("'{int}'")
                    } else {
                        format!("'{int}.{frac}'")
                    }
                }
            }
            "c_float4" => {
                let specials = [
                    0.0f32,
                    -0.0,
                    f32::NAN,
                    f32::INFINITY,
                    f32::NEG_INFINITY,
                    f32::MAX,
                    f32::MIN_POSITIVE,
                    0.1,
                    1.0 / 3.0,
                ];
                let v = if r.random_bool(0.3) {
                    specials[r.random_range(0..specials.len())]
                } else {
                    (r.random::<f32>() - 0.5) * 10f32.powi(r.random_range(-20..20))
                };
                format!("{}::float4", float_literal(v as f64, format!("{v:e}")))
            }
            "c_float8" => {
                let specials = [
                    0.0f64,
                    -0.0,
                    f64::NAN,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    f64::MAX,
                    f64::MIN_POSITIVE,
                    5e-324,
                    0.1,
                    1.0 / 3.0,
                ];
                let v = if r.random_bool(0.3) {
                    specials[r.random_range(0..specials.len())]
                } else {
                    (r.random::<f64>() - 0.5) * 10f64.powi(r.random_range(-200..200))
                };
                format!("{}::float8", float_literal(v, format!("{v:e}")))
            }
            "c_bool" => if r.random_bool(0.5) { "true" } else { "false" }.into(),
            "c_text" => quote_literal(&random_text(r, 0..60)),
            "c_varchar" => quote_literal(&random_text(r, 0..41)),
            "c_char" => {
                let len = r.random_range(0..=8);
                let s: String = (0..len)
                    .map(|_| char::from(r.random_range(b'a'..=b'z')))
                    .collect();
                quote_literal(&s)
            }
            "c_bytea" => {
                let len = r.random_range(0..48);
                let mut hex = String::new();
                for _ in 0..len {
                    let _ = write!(hex, "{:02x}", r.random::<u8>());
                }
                format!("'\\x{hex}'::bytea")
            }
            "c_uuid" => {
                let b: [u8; 16] = r.random();
                let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
                format!(
                    "'{}-{}-{}-{}-{}'",
                    &h[0..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..32]
                )
            }
            // json keeps its input text verbatim (spacing, key order, duplicates).
            "c_json" => {
                let s = serde_json::to_string(&random_text(r, 0..20)).expect("json");
                let forms = [
                    format!("{{\"a\": 1, \"b\" : [true,null, 2.50], \"s\":{s}}}"),
                    format!("[ {s} ,  {} ]", r.random_range(-100..100)),
                    "{\"dup\": 1, \"dup\": 2}".to_string(),
                    "3.0".to_string(),
                    "null".to_string(),
                ];
                quote_literal(&forms[r.random_range(0..forms.len())])
            }
            "c_jsonb" => {
                let s = serde_json::to_string(&random_text(r, 0..20)).expect("json");
                let n = r.random_range(-1_000_000..1_000_000);
                let forms = [
                    format!("{{\"z\": {n}, \"a\": {{\"nested\": [1, 2.50, {s}]}}, \"b\": null}}"),
                    format!("[{s}, {n}, false]"),
                    format!("{{\"k\": {s}}}"),
                    "{}".to_string(),
                    "\"just a string\"".to_string(),
                ];
                quote_literal(&forms[r.random_range(0..forms.len())])
            }
            "c_date" => {
                if r.random_bool(0.03) {
                    return "'0044-03-15 BC'".into();
                }
                let days = r.random_range(-719_162..2_932_896); // 0001-01-01 .. 9999-12-31
                let date = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")
                    + chrono::Duration::days(days);
                format!("'{}'", date.format("%Y-%m-%d"))
            }
            "c_time" => {
                if r.random_bool(0.03) {
                    return "'24:00:00'".into();
                }
                format!("'{}'", time_text(r.random_range(0..86_400_000_000)))
            }
            "c_timetz" => {
                let t = time_text(r.random_range(0..86_400_000_000));
                format!("'{t}{}'", random_offset(r))
            }
            "c_ts" => format!("'{}'", timestamp_text(r)),
            "c_tstz" => {
                let ts = timestamp_text(r);
                format!("'{ts}{}'", random_offset(r))
            }
            "c_interval" => {
                let forms = [
                    format!(
                        "{} years {} mons {} days {}",
                        r.random_range(-20..20),
                        r.random_range(-11..12),
                        r.random_range(-40..40),
                        time_text(r.random_range(0..86_400_000_000))
                    ),
                    format!("{} days", r.random_range(-1000..1000)),
                    format!(
                        "{} microseconds",
                        r.random_range(-10_000_000i64..10_000_000)
                    ),
                    "0".to_string(),
                ];
                format!("'{}'::interval", forms[r.random_range(0..forms.len())])
            }
            "c_int4arr" => {
                let len = r.random_range(0..6);
                if len == 0 {
                    return "'{}'::int4[]".into();
                }
                let items: Vec<String> = (0..len)
                    .map(|_| {
                        if r.random_bool(0.15) {
                            "NULL".to_string()
                        } else {
                            r.random_range(i32::MIN..=i32::MAX).to_string()
                        }
                    })
                    .collect();
                format!("ARRAY[{}]::int4[]", items.join(","))
            }
            "c_textarr" => random_text_array(r),
            "c_mood" => {
                let labels = ["sad", "ok", "happy", "ecstatic", "with space", "quo'te"];
                quote_literal(labels[r.random_range(0..labels.len())])
            }
            "c_inet" => {
                let forms = [
                    format!(
                        "{}.{}.{}.{}",
                        r.random::<u8>(),
                        r.random::<u8>(),
                        r.random::<u8>(),
                        r.random::<u8>()
                    ),
                    format!(
                        "10.{}.{}.{}/{}",
                        r.random::<u8>(),
                        r.random::<u8>(),
                        r.random::<u8>(),
                        r.random_range(8..=32)
                    ),
                    format!("2001:db8::{:x}", r.random::<u16>()),
                    "::1".to_string(),
                ];
                format!("'{}'::inet", forms[r.random_range(0..forms.len())])
            }
            "c_cidr" => {
                let forms = [
                    format!("10.{}.0.0/16", r.random::<u8>()),
                    format!("192.168.{}.0/24", r.random::<u8>()),
                    "2001:db8::/32".to_string(),
                    format!(
                        "{}.{}.{}.{}/32",
                        r.random::<u8>(),
                        r.random::<u8>(),
                        r.random::<u8>(),
                        r.random::<u8>()
                    ),
                ];
                format!("'{}'::cidr", forms[r.random_range(0..forms.len())])
            }
            "c_macaddr" => {
                let b: [u8; 6] = r.random();
                let parts: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
                format!("'{}'::macaddr", parts.join(":"))
            }
            "c_money" => {
                let cents: i64 = r.random_range(-100_000_000_000..100_000_000_000);
                format!(
                    "'{}'::money",
                    super::truth::format_decimal(cents as i128, 2)
                )
            }
            "c_posint" => r.random_range(0..=i32::MAX).to_string(),
            other => panic!("no generator for {other}"),
        }
    }

    fn insert_orders(&mut self) -> String {
        let n = self.rng.random_range(1..=3);
        let mut rows = Vec::new();
        for _ in 0..n {
            let id = self.fresh_id();
            self.model.orders.insert(id);
            let mut values = vec![id.to_string()];
            for col in Self::ORDER_COLUMNS {
                values.push(self.order_value(col));
            }
            rows.push(format!("({})", values.join(", ")));
        }
        format!(
            "INSERT INTO orders (id, {}) VALUES {}",
            Self::ORDER_COLUMNS.join(", "),
            rows.join(", ")
        )
    }

    fn update_order(&mut self) -> String {
        let id = pick(&mut self.rng, &self.model.orders).expect("non-empty");
        let n = self.rng.random_range(1..=6);
        let mut sets = Vec::new();
        for _ in 0..n {
            let col = Self::ORDER_COLUMNS[self.rng.random_range(0..Self::ORDER_COLUMNS.len())];
            if sets
                .iter()
                .any(|s: &String| s.starts_with(&format!("{col} =")))
            {
                continue;
            }
            let value = self.order_value(col);
            sets.push(format!("{col} = {value}"));
        }
        format!("UPDATE orders SET {} WHERE id = {id}", sets.join(", "))
    }

    fn change_order_key(&mut self) -> String {
        let old = pick(&mut self.rng, &self.model.orders).expect("non-empty");
        let new = self.fresh_id();
        self.model.orders.remove(&old);
        self.model.orders.insert(new);
        let value = self.order_value("c_text");
        format!("UPDATE orders SET id = {new}, c_text = {value} WHERE id = {old}")
    }

    fn delete_orders(&mut self) -> String {
        let n = self.rng.random_range(1..=3);
        let mut ids = BTreeSet::new();
        for _ in 0..n {
            if let Some(id) = pick(&mut self.rng, &self.model.orders) {
                self.model.orders.remove(&id);
                ids.insert(id);
            }
        }
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        format!("DELETE FROM orders WHERE id IN ({})", list.join(", "))
    }

    // ----- docs (TOAST) -----

    fn doc_body(&mut self) -> String {
        match self.rng.random_range(0..10) {
            0 => "NULL".into(),
            1 => quote_literal(&random_text(&mut self.rng, 0..200)),
            _ => {
                // Incompressible: pglz cannot shrink it, so it goes out of line.
                let len = self.rng.random_range(9_000..20_000);
                quote_literal(&random_alnum(&mut self.rng, len))
            }
        }
    }

    fn insert_doc(&mut self) -> String {
        let id = self.fresh_id();
        self.model.docs.insert(id);
        let body = self.doc_body();
        let title = quote_literal(&random_text(&mut self.rng, 1..30));
        let tags = random_text_array(&mut self.rng);
        format!(
            "INSERT INTO docs (id, title, body, version, tags) VALUES ({id}, {title}, {body}, 1, {tags})"
        )
    }

    fn update_doc(&mut self) -> String {
        let id = pick(&mut self.rng, &self.model.docs).expect("non-empty");
        match self.rng.random_range(0..10) {
            // Body unchanged: unchanged-TOAST in pgoutput.
            0..6 => {
                let title = quote_literal(&random_text(&mut self.rng, 1..30));
                format!("UPDATE docs SET title = {title}, version = version + 1 WHERE id = {id}")
            }
            6 => {
                let tags = random_text_array(&mut self.rng);
                format!("UPDATE docs SET tags = {tags} WHERE id = {id}")
            }
            _ => {
                let body = self.doc_body();
                format!("UPDATE docs SET body = {body}, version = version + 1 WHERE id = {id}")
            }
        }
    }

    fn delete_doc(&mut self) -> String {
        let id = pick(&mut self.rng, &self.model.docs).expect("non-empty");
        self.model.docs.remove(&id);
        format!("DELETE FROM docs WHERE id = {id}")
    }

    // ----- line_items (composite key) -----

    fn insert_lines(&mut self) -> String {
        // A few lines for an existing or new order id.
        let order_id = match pick(&mut self.rng, &self.model.lines) {
            Some((o, _)) if self.rng.random_bool(0.5) => o,
            _ => self.fresh_id(),
        };
        let start = self.last_line(order_id) + 1;
        let n = self.rng.random_range(1..=5);
        let mut rows = Vec::new();
        for line in start..start + n {
            self.model.lines.insert((order_id, line));
            let qty = self.rng.random_range(0..1000);
            let price = if self.rng.random_bool(0.1) {
                "NULL".to_string()
            } else {
                super::truth::format_decimal(
                    self.rng.random_range(-99_999_999..99_999_999i64) as i128,
                    2,
                )
            };
            let note = if self.rng.random_bool(0.2) {
                "NULL".to_string()
            } else {
                quote_literal(&random_text(&mut self.rng, 0..40))
            };
            rows.push(format!("({order_id}, {line}, {qty}, {price}, {note})"));
        }
        format!(
            "INSERT INTO line_items (order_id, line_no, qty, price, note) VALUES {}",
            rows.join(", ")
        )
    }

    /// The highest line number of an order (0 when it has none).
    fn last_line(&self, order_id: i64) -> i32 {
        self.model
            .lines
            .range((order_id, i32::MIN)..=(order_id, i32::MAX))
            .next_back()
            .map_or(0, |(_, l)| *l)
    }

    fn update_lines(&mut self) -> String {
        let (order_id, line) = pick(&mut self.rng, &self.model.lines).expect("non-empty");
        if self.rng.random_bool(0.3) {
            // Every line of the order.
            format!(
                "UPDATE line_items SET qty = qty + 1, price = round(price / 2, 2) WHERE order_id = {order_id}"
            )
        } else {
            let note = quote_literal(&random_text(&mut self.rng, 0..40));
            format!(
                "UPDATE line_items SET note = {note}, qty = {} WHERE order_id = {order_id} AND line_no = {line}",
                self.rng.random_range(0..1000)
            )
        }
    }

    fn change_line_key(&mut self) -> String {
        let (order_id, line) = pick(&mut self.rng, &self.model.lines).expect("non-empty");
        let new_line = self.last_line(order_id) + 1;
        self.model.lines.remove(&(order_id, line));
        self.model.lines.insert((order_id, new_line));
        format!(
            "UPDATE line_items SET line_no = {new_line} WHERE order_id = {order_id} AND line_no = {line}"
        )
    }

    fn delete_lines(&mut self) -> String {
        let (order_id, line) = pick(&mut self.rng, &self.model.lines).expect("non-empty");
        if self.rng.random_bool(0.3) {
            let gone: Vec<(i64, i32)> = self
                .model
                .lines
                .range((order_id, i32::MIN)..=(order_id, i32::MAX))
                .copied()
                .collect();
            for key in gone {
                self.model.lines.remove(&key);
            }
            format!("DELETE FROM line_items WHERE order_id = {order_id}")
        } else {
            self.model.lines.remove(&(order_id, line));
            format!("DELETE FROM line_items WHERE order_id = {order_id} AND line_no = {line}")
        }
    }

    // ----- events_full (REPLICA IDENTITY FULL) -----

    fn event_note(&mut self) -> String {
        match self.rng.random_range(0..6) {
            0 => "NULL".into(),
            1 => {
                let len = self.rng.random_range(9_000..14_000);
                quote_literal(&random_alnum(&mut self.rng, len))
            }
            _ => quote_literal(&random_text(&mut self.rng, 0..50)),
        }
    }

    fn insert_event(&mut self) -> String {
        let id = self.fresh_id();
        self.model.events.insert(id);
        let code = quote_literal(&random_text(&mut self.rng, 1..12));
        let amount = format!(
            "{}::float8",
            float_literal(self.rng.random::<f64>() * 1e6, String::new())
        );
        let payload = quote_literal(&format!(
            "{{\"n\": {}, \"s\": {}}}",
            self.rng.random_range(0..1000),
            serde_json::to_string(&random_text(&mut self.rng, 0..10)).expect("json")
        ));
        let tags = random_text_array(&mut self.rng);
        let note = self.event_note();
        format!(
            "INSERT INTO events_full (id, code, amount, payload, tags, note) VALUES ({id}, {code}, {amount}, {payload}, {tags}, {note})"
        )
    }

    fn update_event(&mut self) -> String {
        let id = pick(&mut self.rng, &self.model.events).expect("non-empty");
        if self.rng.random_bool(0.5) {
            let code = quote_literal(&random_text(&mut self.rng, 1..12));
            format!("UPDATE events_full SET code = {code}, amount = amount + 1 WHERE id = {id}")
        } else {
            let note = self.event_note();
            format!("UPDATE events_full SET note = {note}, payload = NULL WHERE id = {id}")
        }
    }

    /// Key change on the FULL table, leaving `note` (maybe TOASTed) unchanged.
    fn change_event_key(&mut self) -> String {
        let old = pick(&mut self.rng, &self.model.events).expect("non-empty");
        let new = self.fresh_id();
        self.model.events.remove(&old);
        self.model.events.insert(new);
        format!("UPDATE events_full SET id = {new} WHERE id = {old}")
    }

    fn delete_event(&mut self) -> String {
        let id = pick(&mut self.rng, &self.model.events).expect("non-empty");
        self.model.events.remove(&id);
        format!("DELETE FROM events_full WHERE id = {id}")
    }
}

/// How a [`big_transaction`] ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BigTxnEnd {
    Commit,
    Rollback,
    /// Insert, `SAVEPOINT`, insert as many again, `ROLLBACK TO`, commit.
    CommitAfterSavepointRollback,
}

/// One huge transaction: `rows` rows of batch `batch` into table `bulk`
/// (never truncated by [`Workload`], so they stay to be checked) via
/// `INSERT … SELECT generate_series`; with `logical_decoding_work_mem =
/// 64kB` it is streamed while in progress. Use a distinct `batch` per call.
pub async fn big_transaction(client: &Client, batch: i64, rows: u64, end: BigTxnEnd) {
    let insert = |from: u64, to: u64| {
        format!(
            "INSERT INTO bulk (batch, n, qty, price, note) \
             SELECT {batch}, g, g % 1000, (g % 1000000) / 100.0, \
                    CASE WHEN g % 10 = 0 THEN NULL ELSE 'bulk row ' || g END \
             FROM generate_series({from}, {to}) g"
        )
    };
    let sql = match end {
        BigTxnEnd::Commit => format!("BEGIN; {}; COMMIT;", insert(1, rows)),
        BigTxnEnd::Rollback => format!("BEGIN; {}; ROLLBACK;", insert(1, rows)),
        BigTxnEnd::CommitAfterSavepointRollback => format!(
            "BEGIN; {}; SAVEPOINT s; {}; ROLLBACK TO SAVEPOINT s; COMMIT;",
            insert(1, rows),
            insert(rows + 1, rows * 2)
        ),
    };
    client
        .batch_execute(&sql)
        .await
        .unwrap_or_else(|e| panic!("big transaction failed: {}", pg_error(&e)));
}

fn pick<T: Copy + Ord>(rng: &mut StdRng, set: &BTreeSet<T>) -> Option<T> {
    if set.is_empty() {
        return None;
    }
    let i = rng.random_range(0..set.len());
    set.iter().nth(i).copied()
}

fn pick_int(r: &mut StdRng, specials: &[i64], range: std::ops::RangeInclusive<i64>) -> String {
    if r.random_bool(0.15) {
        specials[r.random_range(0..specials.len())].to_string()
    } else {
        r.random_range(range).to_string()
    }
}

/// A float literal PostgreSQL accepts (specials quoted by name).
fn float_literal(v: f64, text: String) -> String {
    if v.is_nan() {
        "'NaN'".into()
    } else if v == f64::INFINITY {
        "'Infinity'".into()
    } else if v == f64::NEG_INFINITY {
        "'-Infinity'".into()
    } else if v == 0.0 && v.is_sign_negative() {
        "'-0'".into()
    } else if text.is_empty() {
        format!("'{v:e}'")
    } else {
        format!("'{text}'")
    }
}

/// Random text with the characters that break naive encoders: quotes,
/// backslashes, braces, commas, newlines, multi-byte UTF-8, and words like
/// `NULL`.
pub fn random_text(r: &mut StdRng, len: std::ops::Range<usize>) -> String {
    const WORDS: &[&str] = &[
        "NULL",
        "null",
        "",
        " ",
        "a,b",
        "{x}",
        "\"q\"",
        "back\\slash",
        "it's",
        "é",
        "日本語",
        "🦀",
        "\t",
        "\n",
    ];
    if r.random_bool(0.1) {
        let w = WORDS[r.random_range(0..WORDS.len())];
        if w.chars().count() < len.end {
            return w.to_string();
        }
    }
    const CHARS: &[char] = &[
        'a', 'b', 'c', 'x', 'y', 'z', 'A', 'Z', '0', '9', ' ', ',', '{', '}', '"', '\'', '\\',
        '\n', 'é', 'ß', '中', '🦀', '-', '.', ':', '[', ']',
    ];
    let n = if len.is_empty() {
        len.start
    } else {
        r.random_range(len)
    };
    (0..n)
        .map(|_| CHARS[r.random_range(0..CHARS.len())])
        .collect()
}

/// Random letters and digits (incompressible enough for pglz).
pub fn random_alnum(r: &mut StdRng, len: usize) -> String {
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..len)
        .map(|_| char::from(ALNUM[r.random_range(0..ALNUM.len())]))
        .collect()
}

fn random_text_array(r: &mut StdRng) -> String {
    match r.random_range(0..10) {
        0 => "NULL".into(),
        1 => "'{}'::text[]".into(),
        _ => {
            let n = r.random_range(1..5);
            let items: Vec<String> = (0..n)
                .map(|_| {
                    if r.random_bool(0.15) {
                        "NULL".to_string()
                    } else {
                        quote_literal(&random_text(r, 0..12))
                    }
                })
                .collect();
            format!("ARRAY[{}]::text[]", items.join(", "))
        }
    }
}

fn time_text(micros: i64) -> String {
    let secs = micros / 1_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        micros % 1_000_000
    )
}

fn timestamp_text(r: &mut StdRng) -> String {
    // 1800-01-01 .. 2200-01-01, microsecond precision.
    let micros: i64 = r.random_range(-5_364_662_400_000_000..7_258_118_400_000_000);
    let dt: NaiveDateTime = chrono::DateTime::from_timestamp_micros(micros)
        .expect("in range")
        .naive_utc();
    dt.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

fn random_offset(r: &mut StdRng) -> String {
    let offsets = ["+00", "+05:30", "-08", "+14", "-12:45", "+01"];
    offsets[r.random_range(0..offsets.len())].to_string()
}
