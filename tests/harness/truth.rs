//! The truth checker: the lake, merged, equals the source database — and
//! DuckDB's merge of the same lake equals ours.
//!
//! Both sides are reduced to one canonical text form per cell, computed
//! independently:
//! - source: one SQL expression per column, chosen from the PostgreSQL
//!   catalog (not from the daemon), run in the simple protocol so values are
//!   the types' own text output (what pgoutput sends);
//! - lake: the merged [`Value`]s, formatted in Rust.
//!
//! | PostgreSQL | SQL expression | lake value → canonical |
//! |---|---|---|
//! | int2/4/8, numeric(p≤38,s) | `c` | integer / unscaled÷10^s as text |
//! | float4/float8 | `c` (extra_float_digits=3) | parsed to f32/f64, `{:?}` both sides |
//! | bool | `c` (`t`/`f`) | `t`/`f` |
//! | bytea | `encode(c,'hex')` | lowercase hex |
//! | date | `c - date '1970-01-01'` | days |
//! | time, timestamp, timestamptz | `(extract(epoch from c)*1e6)::bigint` | µs |
//! | arrays | `array_to_json(c)` | JSON array of canonical elements |
//! | everything else (text, uuid, json, numeric, …) | `c` | text as is |
//!
//! The expected lake column type is also derived from the catalog (the
//! brief's mapping table) and compared with the merged table's columns.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use tributary::envelope::Value;
use tributary::schema::ColumnType;

use super::abbreviate;
use super::postgres::{TestDb, query_text, quote_literal};

/// One cell in canonical form; `None` is SQL NULL.
pub type Cell = Option<String>;
/// One row in canonical form, in the source's column order.
pub type CanonRow = Vec<Cell>;

/// A source column and how to read it.
#[derive(Debug, Clone)]
pub struct SourceColumn {
    pub name: String,
    /// `format_type()` of the declared type (domains included).
    pub declared: String,
    pub expected: ColumnType,
    pub is_key: bool,
}

/// One table from the lake (after merging) in a form independent of the
/// merge's own types.
#[derive(Debug, Clone)]
pub struct LakeTable {
    pub columns: Vec<(String, ColumnType)>,
    pub rows: Vec<Vec<Value>>,
}

/// Reads a table's columns from the catalog, with the lake type each should
/// map to (domains resolved to their base type).
pub async fn source_columns(db: &TestDb, table: &str) -> Vec<SourceColumn> {
    let (schema, name) = split(table);
    let sql = format!(
        "WITH cols AS (
           SELECT a.attnum, a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS declared,
                  CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END AS base_oid,
                  CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END AS typmod,
                  EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary
                          AND a.attnum = ANY (i.indkey)) AS is_key
           FROM pg_attribute a
           JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_type t ON t.oid = a.atttypid
           WHERE n.nspname = {schema} AND c.relname = {name} AND a.attnum > 0 AND NOT a.attisdropped)
         SELECT cols.name, cols.declared, bt.typname::text, bt.typtype::text, cols.typmod::text,
                et.typname::text, et.typtype::text, cols.is_key::text
         FROM cols
         JOIN pg_type bt ON bt.oid = cols.base_oid
         LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
         ORDER BY cols.attnum",
        schema = quote_literal(schema),
        name = quote_literal(name),
    );
    let rows = db.query_text(&sql).await;
    assert!(
        !rows.is_empty(),
        "table {table} does not exist in database {}",
        db.name
    );
    rows.into_iter()
        .map(|r| {
            let get = |i: usize| r[i].clone().unwrap_or_default();
            let typmod: i32 = get(4).parse().unwrap_or(-1);
            let expected = match r[5].as_deref() {
                Some(elem) => ColumnType::List {
                    element: Box::new(expected_type(elem, &get(6), typmod)),
                },
                None => expected_type(&get(2), &get(3), typmod),
            };
            SourceColumn {
                name: get(0),
                declared: get(1),
                expected,
                is_key: get(7) == "true",
            }
        })
        .collect()
}

/// The brief's PostgreSQL → lake type table.
fn expected_type(typname: &str, typtype: &str, typmod: i32) -> ColumnType {
    if typtype == "e" {
        return ColumnType::Text;
    }
    match typname {
        "int2" => ColumnType::Int16,
        "int4" => ColumnType::Int32,
        "int8" => ColumnType::Int64,
        "float4" => ColumnType::Float32,
        "float8" => ColumnType::Float64,
        "bool" => ColumnType::Bool,
        "bytea" => ColumnType::Binary,
        "date" => ColumnType::Date,
        "time" => ColumnType::Time,
        "timestamp" => ColumnType::Timestamp,
        "timestamptz" => ColumnType::TimestampTz,
        "numeric" if typmod >= 4 => {
            let precision = ((typmod - 4) >> 16) & 0xFFFF;
            let scale = (typmod - 4) & 0xFFFF;
            if (1..=38).contains(&precision) && scale <= precision {
                ColumnType::Decimal {
                    precision: precision as u8,
                    scale: scale as i8,
                }
            } else {
                ColumnType::Text
            }
        }
        _ => ColumnType::Text,
    }
}

/// The SQL expression that yields a column's canonical text.
fn source_expr(column: &SourceColumn) -> String {
    let c = format!("\"{}\"", column.name.replace('"', "\"\""));
    match &column.expected {
        ColumnType::Binary => format!("encode({c}, 'hex')"),
        ColumnType::Date => format!("({c} - date '1970-01-01')"),
        ColumnType::Time | ColumnType::Timestamp | ColumnType::TimestampTz => {
            format!("(extract(epoch from {c}) * 1000000)::bigint")
        }
        ColumnType::List { .. } => format!("array_to_json({c})"),
        _ => c,
    }
}

/// Every row of a source table in canonical form.
pub async fn source_rows(db: &TestDb, table: &str, columns: &[SourceColumn]) -> Vec<CanonRow> {
    let client = db.client().await;
    // The same session settings the replication connection uses, so text
    // outputs (floats, intervals, dates inside text types) match.
    client
        .batch_execute(
            "SET extra_float_digits = 3; SET DateStyle = 'ISO, MDY'; SET TimeZone = 'UTC'; \
             SET IntervalStyle = 'postgres'; SET bytea_output = 'hex'",
        )
        .await
        .expect("session settings");
    let (schema, name) = split(table);
    let exprs: Vec<String> = columns.iter().map(source_expr).collect();
    let sql = format!(
        "SELECT {} FROM \"{}\".\"{}\"",
        exprs.join(", "),
        schema.replace('"', "\"\""),
        name.replace('"', "\"\"")
    );
    let rows = query_text(&client, &sql).await;
    rows.into_iter()
        .map(|row| {
            row.into_iter()
                .zip(columns)
                .map(|(cell, col)| cell.map(|text| canon_source_text(&col.expected, &text)))
                .collect()
        })
        .collect()
}

/// Canonical form of a source cell's SQL text.
fn canon_source_text(ty: &ColumnType, text: &str) -> String {
    match ty {
        ColumnType::Float32 => format!("{:?}", parse_pg_float32(text)),
        ColumnType::Float64 => format!("{:?}", parse_pg_float(text)),
        ColumnType::List { element } => {
            let json: serde_json::Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("array_to_json gave bad JSON {text:?}: {e}"));
            let items = json
                .as_array()
                .unwrap_or_else(|| panic!("array_to_json gave {text}"));
            let canon: Vec<Cell> = items
                .iter()
                .map(|item| match item {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(canon_source_text(element, s)),
                    other => Some(canon_source_text(element, &other.to_string())),
                })
                .collect();
            serde_json::to_string(&canon).expect("json")
        }
        _ => text.to_string(),
    }
}

fn parse_pg_float32(text: &str) -> f32 {
    match text {
        "NaN" => f32::NAN,
        "Infinity" => f32::INFINITY,
        "-Infinity" => f32::NEG_INFINITY,
        _ => text
            .parse()
            .unwrap_or_else(|_| panic!("float4 text {text:?}")),
    }
}

fn parse_pg_float(text: &str) -> f64 {
    match text {
        "NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        "-Infinity" => f64::NEG_INFINITY,
        _ => text
            .parse()
            .unwrap_or_else(|_| panic!("float text {text:?}")),
    }
}

/// Canonical form of a lake value of lake type `ty` (the type gives the
/// decimal scale and the list element type).
pub fn canon_lake_value(ty: &ColumnType, value: &Value) -> Cell {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => if *b { "t" } else { "f" }.to_string(),
        Value::Int16(v) => v.to_string(),
        Value::Int32(v) => v.to_string(),
        Value::Int64(v) => v.to_string(),
        Value::Float32(v) => format!("{v:?}"),
        Value::Float64(v) => format!("{v:?}"),
        Value::Decimal(unscaled) => {
            let scale = match ty {
                ColumnType::Decimal { scale, .. } => (*scale).max(0) as usize,
                _ => 0,
            };
            format_decimal(*unscaled, scale)
        }
        Value::Text(s) => s.clone(),
        Value::Bytes(b) => b
            .iter()
            .fold(String::with_capacity(b.len() * 2), |mut s, byte| {
                let _ = write!(s, "{byte:02x}");
                s
            }),
        Value::Date(d) => d.to_string(),
        Value::Time(t) | Value::Timestamp(t) => t.to_string(),
        Value::List(items) => {
            let element = match ty {
                ColumnType::List { element } => element.as_ref().clone(),
                _ => ColumnType::Text,
            };
            let canon: Vec<Cell> = items
                .iter()
                .map(|v| canon_lake_value(&element, v))
                .collect();
            serde_json::to_string(&canon).expect("json")
        }
        Value::Struct(values) => {
            let fields = match ty {
                ColumnType::Struct { fields } => fields.as_slice(),
                _ => &[],
            };
            let canon: serde_json::Map<String, serde_json::Value> = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let (name, ty) = fields
                        .get(i)
                        .map_or((format!("f{i}"), ColumnType::Text), |f| {
                            (f.name.clone(), f.data_type.clone())
                        });
                    (name, serde_json::json!(canon_lake_value(&ty, v)))
                })
                .collect();
            serde_json::to_string(&canon).expect("json")
        }
    })
}

/// `unscaled / 10^scale` as exact text (`150`, 2 → `1.50`).
pub fn format_decimal(unscaled: i128, scale: usize) -> String {
    let negative = unscaled < 0;
    let digits = unscaled.unsigned_abs().to_string();
    let body = if scale == 0 {
        digits
    } else {
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        format!("{int}.{frac}")
    };
    if negative { format!("-{body}") } else { body }
}

/// The merged lake tables of `source`, keyed `namespace.name`, via
/// `tributary::merge::BronzeMerge`.
pub async fn load_lake_tables(lake_root: &Path, source: &str) -> BTreeMap<String, LakeTable> {
    let url = lake_root.to_str().expect("utf-8 lake path");
    let store = tributary::sink::LakeStore::from_url(url)
        .unwrap_or_else(|e| panic!("LakeStore::from_url({url}): {e}"));
    let merged = tributary::merge::BronzeMerge::load(&store, source)
        .await
        .unwrap_or_else(|e| panic!("BronzeMerge::load({url}, {source}) failed: {e}"));
    merged
        .tables
        .into_iter()
        .map(|(name, table)| {
            let columns = table
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.data_type.clone()))
                .collect();
            (
                name,
                LakeTable {
                    columns,
                    rows: table.rows,
                },
            )
        })
        .collect()
}

/// Canonical rows of a lake table, in the source's column order. Extra lake
/// columns starting with `_` (metadata) are ignored; any other mismatch in
/// the column set or types is reported in `problems`.
fn lake_canon_rows(
    what: &str,
    table: &LakeTable,
    columns: &[SourceColumn],
    types_from: Option<&LakeTable>,
    problems: &mut Vec<String>,
) -> Vec<CanonRow> {
    let mut indexes = Vec::new();
    for col in columns {
        match table.columns.iter().position(|(n, _)| n == &col.name) {
            Some(i) => {
                let lake_type = &table.columns[i].1;
                // DuckDB output carries no lake types: trust ours for it.
                if types_from.is_none() && lake_type != &col.expected {
                    problems.push(format!(
                        "{what}: column {} ({}) has lake type {lake_type}, expected {}",
                        col.name, col.declared, col.expected
                    ));
                }
                indexes.push(Some(i));
            }
            None => {
                problems.push(format!(
                    "{what}: column {} ({}) is missing",
                    col.name, col.declared
                ));
                indexes.push(None);
            }
        }
    }
    for (name, _) in &table.columns {
        if !name.starts_with('_') && !columns.iter().any(|c| &c.name == name) {
            problems.push(format!(
                "{what}: has column {name} that the source table does not have"
            ));
        }
    }
    table
        .rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .zip(&indexes)
                .map(|(col, index)| {
                    let value = index.map(|i| &row[i]).unwrap_or(&Value::Null);
                    canon_lake_value(&col.expected, value)
                })
                .collect()
        })
        .collect()
}

/// Compares two multisets of rows; returns a readable report when they
/// differ (counts, then the first 10 rows only on each side).
pub fn diff_rows(
    table: &str,
    left_name: &str,
    mut left: Vec<CanonRow>,
    right_name: &str,
    mut right: Vec<CanonRow>,
    columns: &[SourceColumn],
) -> Option<String> {
    left.sort();
    right.sort();
    if left == right {
        return None;
    }
    let mut counts: BTreeMap<&CanonRow, i64> = BTreeMap::new();
    for r in &left {
        *counts.entry(r).or_default() += 1;
    }
    for r in &right {
        *counts.entry(r).or_default() -= 1;
    }
    let only_left: Vec<&CanonRow> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .flat_map(|(r, n)| std::iter::repeat_n(*r, *n as usize))
        .collect();
    let only_right: Vec<&CanonRow> = counts
        .iter()
        .filter(|(_, n)| **n < 0)
        .flat_map(|(r, n)| std::iter::repeat_n(*r, (-*n) as usize))
        .collect();
    let key_cols: Vec<usize> = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_key)
        .map(|(i, _)| i)
        .collect();
    let key_of = |r: &CanonRow| -> String {
        key_cols
            .iter()
            .map(|&i| format!("{}={}", columns[i].name, r[i].as_deref().unwrap_or("NULL")))
            .collect::<Vec<_>>()
            .join(",")
    };
    let right_by_key: BTreeMap<String, &CanonRow> =
        only_right.iter().map(|r| (key_of(r), *r)).collect();
    let left_by_key: BTreeMap<String, &CanonRow> =
        only_left.iter().map(|r| (key_of(r), *r)).collect();
    let mut out = format!(
        "table {table}: {left_name} has {} rows, {right_name} has {} rows; {} rows only in {left_name}, {} only in {right_name}\n",
        left.len(),
        right.len(),
        only_left.len(),
        only_right.len()
    );
    let show =
        |out: &mut String, title: &str, rows: &[&CanonRow], other: &BTreeMap<String, &CanonRow>| {
            out.push_str(&format!("  {title} (first 10):\n"));
            for row in rows.iter().take(10) {
                let key = key_of(row);
                match other.get(&key) {
                    Some(counterpart) if !key_cols.is_empty() => {
                        // Same key on both sides: show only the differing columns.
                        let diffs: Vec<String> = columns
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| row[*i] != counterpart[*i])
                            .map(|(i, c)| {
                                format!(
                                    "{}: {} vs {}",
                                    c.name,
                                    show_cell(&row[i]),
                                    show_cell(&counterpart[i])
                                )
                            })
                            .collect();
                        out.push_str(&format!(
                            "    [{key}] same key, differs in: {}\n",
                            diffs.join("; ")
                        ));
                    }
                    _ => {
                        let cells: Vec<String> = columns
                            .iter()
                            .zip(row.iter())
                            .map(|(c, v)| format!("{}={}", c.name, show_cell(v)))
                            .collect();
                        out.push_str(&format!("    [{key}] {}\n", cells.join(", ")));
                    }
                }
            }
        };
    show(
        &mut out,
        &format!("only in {left_name}"),
        &only_left,
        &right_by_key,
    );
    show(
        &mut out,
        &format!("only in {right_name}"),
        &only_right,
        &left_by_key,
    );
    Some(out)
}

fn show_cell(cell: &Cell) -> String {
    match cell {
        None => "NULL".into(),
        Some(s) => format!("{:?}", abbreviate(s, 60)),
    }
}

/// THE truth check: for each table, the Rust bronze merge of the lake equals
/// the source table (as multisets of canonical rows, column types as the
/// mapping says), and DuckDB's merge (`scripts/lake_merge.py`) equals the
/// Rust merge. Panics with a readable report listing every difference found.
pub async fn assert_lake_matches_source(
    db: &TestDb,
    lake_root: &Path,
    source: &str,
    tables: &[&str],
) {
    let lake_tables = load_lake_tables(lake_root, source).await;
    let duck_dir = tempfile::tempdir().expect("temp dir for DuckDB output");
    let duck_tables = duckdb_merge(lake_root, source, duck_dir.path());
    let mut problems = Vec::new();
    let mut summary = Vec::new();
    for &table in tables {
        let qualified = if table.contains('.') {
            table.to_string()
        } else {
            format!("public.{table}")
        };
        let columns = source_columns(db, &qualified).await;
        let source_rows = source_rows(db, &qualified, &columns).await;
        let Some(lake) = lake_tables.get(&qualified) else {
            if source_rows.is_empty() {
                summary.push(format!("{qualified}: 0 rows (never in the lake)"));
                continue;
            }
            problems.push(format!(
                "table {qualified}: not in the merged lake (lake has: {:?}); source has {} rows",
                lake_tables.keys().collect::<Vec<_>>(),
                source_rows.len()
            ));
            continue;
        };
        let lake_rows = lake_canon_rows(
            &format!("lake {qualified}"),
            lake,
            &columns,
            None,
            &mut problems,
        );
        if let Some(report) = diff_rows(
            &qualified,
            "source",
            source_rows.clone(),
            "lake (Rust merge)",
            lake_rows.clone(),
            &columns,
        ) {
            problems.push(report);
        }
        match duck_tables.get(&qualified) {
            Some(duck) => {
                let duck_rows =
                    lake_canon_rows(&format!("DuckDB {qualified}"), duck, &columns, Some(lake), &mut problems);
                // DuckDB's arg_max_null folds -0.0 into 0.0 (they compare
                // equal in SQL); that is DuckDB's choice, not a merge error.
                let fold = |rows: Vec<CanonRow>| -> Vec<CanonRow> {
                    rows.into_iter()
                        .map(|row| {
                            row.into_iter()
                                .map(|cell| match cell.as_deref() {
                                    Some("-0.0") => Some("0.0".to_string()),
                                    _ => cell,
                                })
                                .collect()
                        })
                        .collect()
                };
                if let Some(report) = diff_rows(
                    &qualified,
                    "lake (Rust merge)",
                    fold(lake_rows),
                    "DuckDB merge",
                    fold(duck_rows),
                    &columns,
                )
                {
                    problems.push(report);
                }
            }
            None if lake.rows.is_empty() => {}
            None => problems.push(format!(
                "table {qualified}: scripts/lake_merge.py wrote no {qualified}.parquet (it wrote {:?})",
                duck_tables.keys().collect::<Vec<_>>()
            )),
        }
        summary.push(format!("{qualified}: {} rows", source_rows.len()));
    }
    if !problems.is_empty() {
        panic!(
            "THE LAKE DOES NOT MATCH THE SOURCE (database {}, lake {}, source {source})\n{}\n",
            db.name,
            lake_root.display(),
            problems.join("\n")
        );
    }
    eprintln!("truth check passed: {}", summary.join("; "));
}

/// Runs `python3 scripts/lake_merge.py` and reads its per-table Parquet
/// output with the daemon's reader.
pub fn duckdb_merge(lake_root: &Path, source: &str, out: &Path) -> BTreeMap<String, LakeTable> {
    let probe = Command::new("python3")
        .args(["-c", "import duckdb, pyarrow"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "the DuckDB cross-check needs Python's duckdb and pyarrow: pip install duckdb pyarrow\n{}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "the DuckDB cross-check needs python3 ({e}): install python3, then pip install duckdb pyarrow"
        ),
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lake_merge.py");
    assert!(
        script.is_file(),
        "{} does not exist (the DuckDB merge script)",
        script.display()
    );
    let output = Command::new("python3")
        .arg(&script)
        .arg("--lake")
        .arg(lake_root)
        .arg("--source")
        .arg(source)
        .arg("--out")
        .arg(out)
        .output()
        .expect("running python3");
    assert!(
        output.status.success(),
        "{} failed ({}):\n{}{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut tables = BTreeMap::new();
    for entry in std::fs::read_dir(out).expect("DuckDB output dir") {
        let path = entry.expect("dir entry").path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".parquet"))
        else {
            continue;
        };
        let (names, rows) = super::lake::read_parquet(&path);
        let columns = names.into_iter().map(|n| (n, ColumnType::Text)).collect();
        tables.insert(name.to_string(), LakeTable { columns, rows });
    }
    tables
}

fn split(table: &str) -> (&str, &str) {
    table.split_once('.').unwrap_or(("public", table))
}

#[test]
fn canonical_forms() {
    assert_eq!(format_decimal(150, 2), "1.50");
    assert_eq!(format_decimal(-5, 2), "-0.05");
    assert_eq!(format_decimal(0, 2), "0.00");
    assert_eq!(format_decimal(42, 0), "42");
    let list = ColumnType::List {
        element: Box::new(ColumnType::Int32),
    };
    assert_eq!(
        canon_lake_value(&list, &Value::List(vec![Value::Int32(1), Value::Null])),
        Some(canon_source_text(&list, "[1,null]"))
    );
    assert_eq!(
        canon_source_text(&ColumnType::Float32, "0.1"),
        format!("{:?}", 0.1f32)
    );
    assert_eq!(
        canon_lake_value(&ColumnType::Binary, &Value::Bytes(vec![0, 0xab])),
        Some("00ab".into())
    );
}

/// The checker itself must be able to fail: after a clean catch-up, a change
/// the daemon never sees (made while it is stopped, then checked without
/// restarting it) must be reported, naming the table and the column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truth_checker_detects_a_divergence() {
    use std::time::Duration;

    use super::daemon::{InProcessDaemon, TestConfig, wait_caught_up, wait_streaming};
    use super::postgres::PgCluster;

    let db = PgCluster::shared().create_database("truth_self_test").await;
    db.execute(
        "CREATE TABLE t (id int PRIMARY KEY, n numeric(10,2), f float8, d date, a text[]);
         INSERT INTO t VALUES (0, 0, 0, '2000-01-01', '{}')",
    )
    .await;
    let config = TestConfig::new(&db, "app", &["public.t"]);
    let mut daemon = InProcessDaemon::start(&config);
    wait_streaming(&db, &config, &mut daemon).await;
    db.execute(
        "INSERT INTO t VALUES (1, 1.5, 'NaN', '1999-12-31', ARRAY['x', NULL, 'a,b']), (2, NULL, -0.0, NULL, NULL)",
    )
    .await;
    wait_caught_up(
        &db,
        &config.lake,
        &config.source,
        Duration::from_secs(120),
        &mut daemon,
    )
    .await;
    daemon
        .stop(Duration::from_secs(60))
        .await
        .expect("clean stop");

    // Row 0 predates the slot and came through the initial snapshot; row 9
    // is written while the daemon is stopped, so it is not in the lake.
    db.execute("INSERT INTO t VALUES (9, 9, 9, '2009-09-09', '{}')")
        .await;
    expect_mismatch(&db, &config, "only in source").await;
    db.execute("DELETE FROM t WHERE id = 9").await;
    assert_lake_matches_source(&db, &config.lake, &config.source, &["public.t"]).await;
    // A changed value, shown as a per-column difference of the same key.
    db.execute("UPDATE t SET n = 1.25 WHERE id = 1").await;
    expect_mismatch(&db, &config, "n: \"1.25\" vs \"1.50\"").await;
}

#[cfg(test)]
async fn expect_mismatch(db: &TestDb, config: &super::daemon::TestConfig, needle: &str) {
    let (check_db, lake, source) = (db.clone(), config.lake.clone(), config.source.clone());
    let outcome = tokio::spawn(async move {
        assert_lake_matches_source(&check_db, &lake, &source, &["public.t"]).await;
    })
    .await;
    let panic =
        outcome.expect_err("the truth checker accepted a lake that differs from the source");
    let message = panic
        .into_panic()
        .downcast::<String>()
        .map(|s| *s)
        .unwrap_or_default();
    assert!(
        message.contains("THE LAKE DOES NOT MATCH")
            && message.contains("public.t")
            && message.contains(needle),
        "expected a report containing {needle:?}, got:\n{message}"
    );
}
