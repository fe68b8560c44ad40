//! Truth test of the merge rule: the DuckDB merge (`scripts/lake_merge.py`,
//! the SQL the README prints) and the Rust reference (`tributary::merge`)
//! must give the same rows, row for row, on a lake written by `LakeSink`.
//!
//! No database needed: the envelopes are built here. DuckDB is required —
//! without `python3` + the `duckdb` wheel this test fails (it never skips).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use tributary::envelope::{Envelope, Op, Row, SourceInfo, Value};
use tributary::merge::{BronzeMerge, MergedLake, read_parquet_rows};
use tributary::position::{Position, ResumePoint};
use tributary::schema::{ColumnSchema, ColumnType, StructField, TableSchema};
use tributary::sink::{LakeSink, LakeStore, ManifestCheckpoint};

const SOURCE: &str = "truth";

fn col(name: &str, data_type: ColumnType) -> ColumnSchema {
    ColumnSchema {
        name: name.into(),
        data_type,
        source_type: "test".into(),
        nullable: true,
        id: None,
        default: None,
    }
}

fn list(element: ColumnType) -> ColumnType {
    ColumnType::List {
        element: Box::new(element),
    }
}

fn record(fields: &[(&str, ColumnType)]) -> ColumnType {
    ColumnType::Struct {
        fields: fields
            .iter()
            .map(|(name, data_type)| StructField {
                name: (*name).into(),
                data_type: data_type.clone(),
            })
            .collect(),
    }
}

/// Two shapes of a table of nested documents: v2 drops `doc.tags`, adds
/// `doc.rank`, `doc.address.country` and `lines[].discount`, and reorders
/// fields, so both merges must line older rows up with v2 by field name.
fn docs_tables() -> (Arc<TableSchema>, Arc<TableSchema>) {
    let price = ColumnType::Decimal {
        precision: 10,
        scale: 2,
    };
    let v1 = TableSchema::new(
        "app",
        "docs",
        vec![
            col("id", ColumnType::Int64),
            col(
                "doc",
                record(&[
                    ("name", ColumnType::Text),
                    (
                        "address",
                        record(&[("city", ColumnType::Text), ("zip", ColumnType::Int32)]),
                    ),
                    ("tags", list(ColumnType::Text)),
                ]),
            ),
            col(
                "lines",
                list(record(&[
                    ("sku", ColumnType::Text),
                    ("qty", ColumnType::Int32),
                    ("price", price.clone()),
                ])),
            ),
            col("note", ColumnType::Text),
        ],
        vec![0],
    );
    let v2 = TableSchema::new(
        "app",
        "docs",
        vec![
            col("id", ColumnType::Int64),
            col(
                "doc",
                record(&[
                    (
                        "address",
                        record(&[
                            ("zip", ColumnType::Int32),
                            ("city", ColumnType::Text),
                            ("country", ColumnType::Text),
                        ]),
                    ),
                    ("name", ColumnType::Text),
                    ("rank", ColumnType::Int64),
                ]),
            ),
            col(
                "lines",
                list(record(&[
                    ("sku", ColumnType::Text),
                    ("qty", ColumnType::Int32),
                    ("price", price),
                    ("discount", ColumnType::Float64),
                ])),
            ),
            col("note", ColumnType::Text),
        ],
        vec![0],
    );
    (Arc::new(v1), Arc::new(v2))
}

/// A v1 row of `docs` for id `i`: NULLs at a different level per id.
fn docs_v1_row(i: i64) -> Row {
    let s = Value::Struct;
    let doc = match i % 4 {
        0 => Value::Null,
        1 => s(vec![
            text(&format!("doc {i}")),
            s(vec![text("Oslo"), Value::Int32(150 + i as i32)]),
            Value::List(vec![text("a"), Value::Null]),
        ]),
        2 => s(vec![Value::Null, Value::Null, Value::List(vec![])]),
        _ => s(vec![
            text("x"),
            s(vec![Value::Null, Value::Int32(1)]),
            Value::Null,
        ]),
    };
    let lines = match i % 3 {
        0 => Value::Null,
        1 => Value::List(vec![
            s(vec![
                text("sku-1"),
                Value::Int32(i as i32),
                Value::Decimal(1999),
            ]),
            Value::Null,
            s(vec![Value::Null, Value::Null, Value::Null]),
        ]),
        _ => Value::List(vec![]),
    };
    vec![i64v(i), doc, lines, text(&format!("note {i}"))]
}

/// A v2 row of `docs` for id `i`.
fn docs_v2_row(i: i64) -> Row {
    let s = Value::Struct;
    vec![
        i64v(i),
        s(vec![
            s(vec![Value::Int32(7), text("Bergen"), text("NO")]),
            text(&format!("v2 {i}")),
            i64v(i * 10),
        ]),
        Value::List(vec![s(vec![
            text("sku-9"),
            Value::Int32(1),
            Value::Decimal(-250),
            Value::Float64(0.5),
        ])]),
        Value::Null,
    ]
}

/// Builds envelopes with increasing positions.
struct Log {
    lsn: u64,
    ordinal: u64,
}

impl Log {
    fn next_txn(&mut self) {
        self.lsn += 0x100;
        self.ordinal = 0;
    }

    fn env(
        &mut self,
        table: &Arc<TableSchema>,
        op: Op,
        after: Option<Row>,
        before: Option<Row>,
    ) -> Envelope {
        self.ordinal += 1;
        Envelope {
            op,
            table: table.clone(),
            after,
            before,
            unchanged: Vec::new(),
            position: self.position(),
            source: SourceInfo {
                source: SOURCE.into(),
                database: "db".into(),
                xid: Some(self.lsn / 0x100),
                change_lsn: Some(self.lsn + self.ordinal),
                // One day per transaction, so files land in several date= dirs.
                commit_ts_micros: 1_700_000_000_000_000
                    + (self.lsn / 0x100) as i64 * 86_400_000_000,
            },
        }
    }

    fn position(&self) -> Position {
        Position::Postgres {
            commit_lsn: self.lsn,
            ordinal: self.ordinal,
        }
    }

    fn checkpoint(&self) -> ManifestCheckpoint {
        ManifestCheckpoint {
            last_position: self.position(),
            resume: ResumePoint::Postgres { lsn: self.lsn + 1 },
            txn_complete: true,
            snapshot: None,
        }
    }
}

fn i64v(v: i64) -> Value {
    Value::Int64(v)
}

fn text(v: &str) -> Value {
    Value::Text(v.into())
}

/// A full row of the `types` table for id `i`, varied by `salt`.
fn types_row(i: i64, salt: i64) -> Row {
    vec![
        i64v(i),
        Value::Bool(salt % 2 == 0),
        Value::Int16((salt % 100) as i16 - 50),
        Value::Int32(salt as i32 * 1000),
        Value::Float32(salt as f32 / 4.0),
        Value::Float64(salt as f64 * -1.5e10),
        Value::Decimal(i128::from(salt) * 12_345 - 99),
        Value::Decimal(i128::from(salt) * 10i128.pow(30) + 7),
        text(&format!("text {salt} ünïcødé 'quoted'")),
        Value::Bytes(vec![0, salt as u8, 255]),
        Value::Date(19_000 + salt as i32),
        Value::Time(salt * 1_000_001),
        Value::Timestamp(1_600_000_000_000_000 + salt),
        Value::Timestamp(-salt * 1_000_000),
        Value::List(vec![Value::Int32(salt as i32), Value::Null]),
        Value::List(vec![text("a"), text(&salt.to_string())]),
        Value::List(vec![Value::List(vec![i64v(salt)]), Value::List(vec![])]),
        if salt % 3 == 0 {
            Value::Null
        } else {
            text("sometimes")
        },
    ]
}

/// Writes a lake exercising every rule and type; returns its root.
async fn write_lake(root: &Path) {
    let store = LakeStore::local(root).unwrap();
    let mut sink = LakeSink::open(store, SOURCE).await.unwrap();
    let items_v1 = Arc::new(TableSchema::new(
        "public",
        "items",
        vec![
            col("id", ColumnType::Int64),
            col("name", ColumnType::Text),
            col("doc", ColumnType::Text),
        ],
        vec![0],
    ));
    let items_v2 = Arc::new(TableSchema::new(
        "public",
        "items",
        vec![
            col("id", ColumnType::Int64),
            col("name", ColumnType::Text),
            col("doc", ColumnType::Text),
            col("added", ColumnType::Int32),
        ],
        vec![0],
    ));
    let pairs = Arc::new(TableSchema::new(
        "app",
        "pairs",
        vec![
            col("tenant", ColumnType::Text),
            col("id", ColumnType::Int32),
            col("v", ColumnType::Float64),
        ],
        vec![0, 1],
    ));
    let events = Arc::new(TableSchema::new(
        "app",
        "events",
        vec![col("msg", ColumnType::Text)],
        vec![],
    ));
    let types = Arc::new(TableSchema::new(
        "public",
        "types",
        vec![
            col("id", ColumnType::Int64),
            col("b", ColumnType::Bool),
            col("i16", ColumnType::Int16),
            col("i32", ColumnType::Int32),
            col("f32", ColumnType::Float32),
            col("f64", ColumnType::Float64),
            col(
                "dec",
                ColumnType::Decimal {
                    precision: 12,
                    scale: 2,
                },
            ),
            col(
                "wide",
                ColumnType::Decimal {
                    precision: 38,
                    scale: 6,
                },
            ),
            col("txt", ColumnType::Text),
            col("bin", ColumnType::Binary),
            col("d", ColumnType::Date),
            col("tm", ColumnType::Time),
            col("ts", ColumnType::Timestamp),
            col("tstz", ColumnType::TimestampTz),
            col("ints", list(ColumnType::Int32)),
            col("texts", list(ColumnType::Text)),
            col("nested", list(list(ColumnType::Int64))),
            col("maybe", ColumnType::Text),
        ],
        vec![0],
    ));
    let (docs_v1, docs_v2) = docs_tables();
    let mut log = Log { lsn: 0, ordinal: 0 };
    let mut batch: Vec<Envelope> = Vec::new();

    // Flush 1: snapshot.
    log.next_txn();
    for i in 1..=20 {
        batch.push(log.env(
            &items_v1,
            Op::Read,
            Some(vec![
                i64v(i),
                text(&format!("item {i}")),
                text(&format!("doc {i}")),
            ]),
            None,
        ));
        batch.push(log.env(&types, Op::Read, Some(types_row(i, i)), None));
        batch.push(log.env(&docs_v1, Op::Read, Some(docs_v1_row(i)), None));
    }
    for (t, id) in [("a", 1), ("a", 2), ("b", 1), ("b", 2)] {
        batch.push(log.env(
            &pairs,
            Op::Read,
            Some(vec![text(t), Value::Int32(id), Value::Float64(0.5)]),
            None,
        ));
    }
    flush(&mut sink, &mut batch, &log).await;

    // Flush 2: updates (some with unchanged TOAST columns), deletes, re-inserts.
    log.next_txn();
    for i in (1..=20).step_by(2) {
        let mut e = log.env(
            &items_v1,
            Op::Update,
            Some(vec![i64v(i), text(&format!("renamed {i}")), Value::Null]),
            None,
        );
        e.unchanged = vec![2];
        batch.push(e);
    }
    for i in [2, 4, 6] {
        batch.push(log.env(
            &items_v1,
            Op::Delete,
            None,
            Some(vec![i64v(i), Value::Null, Value::Null]),
        ));
    }
    batch.push(log.env(
        &items_v1,
        Op::Create,
        Some(vec![i64v(4), text("back"), Value::Null]),
        None,
    ));
    batch.push(log.env(&types, Op::Update, Some(types_row(3, 300)), None));
    batch.push(log.env(&types, Op::Delete, None, Some(types_row(5, 5))));
    let mut all_null = vec![Value::Null; 18];
    all_null[0] = i64v(7);
    batch.push(log.env(&types, Op::Update, Some(all_null), None));
    batch.push(log.env(
        &pairs,
        Op::Update,
        Some(vec![text("a"), Value::Int32(2), Value::Float64(2.5)]),
        None,
    ));
    batch.push(log.env(
        &pairs,
        Op::Delete,
        None,
        Some(vec![text("b"), Value::Int32(1), Value::Null]),
    ));
    batch.push(log.env(&events, Op::Create, Some(vec![text("hello")]), None));
    batch.push(log.env(&events, Op::Create, Some(vec![text("hello")]), None));
    // Structs: an update keeping its document (unchanged), a delete, and a
    // v1 update whose document becomes NULL.
    let mut e = log.env(&docs_v1, Op::Update, Some(docs_v1_row(2)), None);
    e.after.as_mut().unwrap()[1] = Value::Null;
    e.after.as_mut().unwrap()[3] = text("kept doc");
    e.unchanged = vec![1];
    batch.push(e);
    batch.push(log.env(&docs_v1, Op::Delete, None, Some(docs_v1_row(3))));
    let mut cleared = docs_v1_row(5);
    cleared[1] = Value::Null;
    batch.push(log.env(&docs_v1, Op::Update, Some(cleared), None));
    let replay = batch.clone();
    flush(&mut sink, &mut batch, &log).await;

    // Flush 3: a replay of flush 2 (redelivery after a crash), then schema v2.
    batch.extend(replay);
    flush(&mut sink, &mut batch, &log).await;
    log.next_txn();
    // One flush holding both shapes of items: the latest schema must win
    // whatever order the fingerprints are listed in.
    batch.push(log.env(
        &items_v1,
        Op::Update,
        Some(vec![i64v(9), text("still v1"), text("doc 9 v1")]),
        None,
    ));
    for i in [1, 3, 8] {
        let mut e = log.env(
            &items_v2,
            Op::Update,
            Some(vec![
                i64v(i),
                text(&format!("v2 {i}")),
                Value::Null,
                Value::Int32(i as i32),
            ]),
            None,
        );
        e.unchanged = vec![2];
        batch.push(e);
    }
    batch.push(log.env(
        &items_v2,
        Op::Create,
        Some(vec![i64v(100), text("new"), text("new doc"), Value::Null]),
        None,
    ));
    // Truncate pairs, then one new row; a row updated with an unchanged doc
    // after it was deleted and re-inserted keeps the re-inserted doc (NULL).
    batch.push(log.env(&pairs, Op::Truncate, None, None));
    batch.push(log.env(
        &pairs,
        Op::Create,
        Some(vec![text("c"), Value::Int32(9), Value::Float64(f64::MAX)]),
        None,
    ));
    let mut e = log.env(
        &items_v2,
        Op::Update,
        Some(vec![
            i64v(4),
            text("back again"),
            Value::Null,
            Value::Int32(4),
        ]),
        None,
    );
    e.unchanged = vec![2];
    batch.push(e);
    // docs v2: new documents, and an update that keeps its v1 document
    // (which both merges show in v2's shape).
    batch.push(log.env(&docs_v2, Op::Update, Some(docs_v2_row(1)), None));
    batch.push(log.env(&docs_v2, Op::Create, Some(docs_v2_row(100)), None));
    let mut e = log.env(&docs_v2, Op::Update, Some(docs_v2_row(9)), None);
    e.after.as_mut().unwrap()[1] = Value::Null;
    e.unchanged = vec![1];
    batch.push(e);
    flush(&mut sink, &mut batch, &log).await;
}

async fn flush(sink: &mut LakeSink, batch: &mut Vec<Envelope>, log: &Log) {
    for e in batch.drain(..) {
        sink.write(&e).unwrap();
    }
    sink.flush(log.checkpoint()).await.unwrap().unwrap();
}

fn canonical(mut rows: Vec<Row>) -> Vec<String> {
    let mut text: Vec<String> = rows.drain(..).map(|r| format!("{r:?}")).collect();
    text.sort();
    text
}

fn run_duckdb_merge(lake: &Path, out: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lake_merge.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let output = Command::new(&python)
        .arg(&script)
        .args(["--lake", lake.to_str().unwrap(), "--source", SOURCE, "--out", out.to_str().unwrap()])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python} ({e}): this test needs Python 3 with DuckDB — install python3, then run `pip install duckdb`")
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} failed ({}); if DuckDB is missing run `pip install duckdb`:\n{stderr}",
        script.display(),
        output.status
    );
}

#[tokio::test]
async fn duckdb_merge_matches_the_rust_reference() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let out = dir.path().join("merged");
    write_lake(&lake).await;
    run_duckdb_merge(&lake, &out);

    let store = LakeStore::local(&lake).unwrap();
    let reference: MergedLake = BronzeMerge::load(&store, SOURCE).await.unwrap();
    assert_eq!(
        reference.tables.keys().collect::<Vec<_>>(),
        [
            "app.docs",
            "app.events",
            "app.pairs",
            "public.items",
            "public.types"
        ]
    );
    for (name, table) in &reference.tables {
        let path = out.join(format!("{name}.parquet"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (columns, rows) = read_parquet_rows(bytes.into()).unwrap();
        let expected: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(columns, expected, "{name}: columns");
        assert_eq!(
            canonical(rows),
            canonical(table.rows.clone()),
            "{name}: rows"
        );
    }
    // Spot checks of the rules themselves (both sides agree, so check one).
    let items = reference.table("public.items").unwrap();
    let row = |id: i64| items.rows.iter().find(|r| r[0] == i64v(id)).cloned();
    assert_eq!(
        row(1).unwrap(),
        vec![i64v(1), text("v2 1"), text("doc 1"), Value::Int32(1)]
    );
    assert_eq!(
        row(4).unwrap(),
        vec![i64v(4), text("back again"), Value::Null, Value::Int32(4)]
    );
    assert_eq!(row(2), None);
    assert_eq!(row(5).unwrap()[1..3], [text("renamed 5"), text("doc 5")]);
    assert_eq!(items.rows.len(), 20 - 3 + 1 + 1);
    assert_eq!(reference.table("app.pairs").unwrap().rows.len(), 1);
    assert_eq!(reference.table("app.events").unwrap().rows.len(), 2);
    assert_eq!(reference.table("public.types").unwrap().rows.len(), 19);
    let docs = reference.table("app.docs").unwrap();
    let doc = |id: i64| {
        docs.rows
            .iter()
            .find(|r| r[0] == i64v(id))
            .map(|r| r[1].clone())
    };
    let s = Value::Struct;
    assert_eq!(doc(100), Some(docs_v2_row(100)[1].clone()));
    // v1 document 9 (`i % 4 == 1`) kept through an unchanged update, in
    // v2's field order: address (zip, city, country), name, rank.
    assert_eq!(
        doc(9),
        Some(s(vec![
            s(vec![Value::Int32(159), text("Oslo"), Value::Null]),
            text("doc 9"),
            Value::Null,
        ]))
    );
    // v1 document 2 had no address, name or rank; its tags are gone.
    assert_eq!(doc(2), Some(s(vec![Value::Null; 3])));
    assert_eq!(doc(3), None);
    assert_eq!(doc(5), Some(Value::Null));
    assert_eq!(docs.rows.len(), 20 - 1 + 1);
}
