//! End-to-end unit tests of the sink: envelopes → LakeSink → files and
//! manifests → BronzeMerge.

use std::sync::Arc;

use super::delta_writer::DeltaBuilder;
use super::*;
use crate::envelope::{Envelope, Op, Row, SourceInfo, Value};
use crate::merge::{BronzeMerge, read_parquet_rows};
use crate::position::{Position, ResumePoint};
use crate::schema::{ColumnSchema, ColumnType, TableSchema};

const SOURCE: &str = "pg";
/// 2023-11-14T22:13:20Z
const TS: i64 = 1_700_000_000_000_000;

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

fn table(name: &str, columns: Vec<ColumnSchema>, key: Vec<usize>) -> Arc<TableSchema> {
    Arc::new(TableSchema::new("public", name, columns, key))
}

fn pos(lsn: u64, ordinal: u64) -> Position {
    Position::Postgres {
        commit_lsn: lsn,
        ordinal,
    }
}

fn change(
    table: &Arc<TableSchema>,
    op: Op,
    at: (u64, u64),
    after: Option<Row>,
    before: Option<Row>,
) -> Envelope {
    Envelope {
        op,
        table: table.clone(),
        after,
        before,
        unchanged: Vec::new(),
        position: pos(at.0, at.1),
        source: SourceInfo {
            source: SOURCE.into(),
            database: "db".into(),
            xid: Some(at.0 + 1000),
            change_lsn: Some(at.0 * 10 + at.1),
            commit_ts_micros: TS + at.0 as i64,
        },
    }
}

fn upsert(table: &Arc<TableSchema>, op: Op, at: (u64, u64), row: Row) -> Envelope {
    change(table, op, at, Some(row), None)
}

fn checkpoint(at: (u64, u64)) -> ManifestCheckpoint {
    ManifestCheckpoint {
        last_position: pos(at.0, at.1),
        resume: ResumePoint::Postgres { lsn: at.0 + 1 },
        txn_complete: true,
        snapshot: None,
    }
}

fn int(v: i64) -> Value {
    Value::Int64(v)
}

fn text(v: &str) -> Value {
    Value::Text(v.into())
}

async fn open() -> (tempfile::TempDir, LakeStore, LakeSink) {
    let dir = tempfile::tempdir().unwrap();
    let store = LakeStore::local(dir.path()).unwrap();
    let sink = LakeSink::open(store.clone(), SOURCE).await.unwrap();
    (dir, store, sink)
}

async fn write_all(sink: &mut LakeSink, changes: &[Envelope]) {
    for c in changes {
        sink.write(c).unwrap();
    }
}

fn items() -> Arc<TableSchema> {
    table(
        "items",
        vec![
            col("id", ColumnType::Int64),
            col("name", ColumnType::Text),
            col("note", ColumnType::Text),
        ],
        vec![0],
    )
}

#[tokio::test]
async fn updates_deletes_reinserts_and_unchanged_columns_merge() {
    let (_dir, store, mut sink) = open().await;
    let t = items();
    write_all(
        &mut sink,
        &[
            upsert(
                &t,
                Op::Read,
                (0x100, 1),
                vec![int(1), text("one"), text("big note")],
            ),
            upsert(
                &t,
                Op::Read,
                (0x100, 2),
                vec![int(2), text("two"), text("n2")],
            ),
        ],
    )
    .await;
    let first = sink.flush(checkpoint((0x100, 2))).await.unwrap().unwrap();
    assert_eq!(first.seq, 1);
    assert!(first.tables[0].files[0].snapshot);

    let mut update = upsert(
        &t,
        Op::Update,
        (0x200, 2),
        vec![int(1), text("uno"), Value::Null],
    );
    update.unchanged = vec![2];
    let mut update_again = upsert(
        &t,
        Op::Update,
        (0x300, 2),
        vec![int(1), text("eins"), Value::Null],
    );
    update_again.unchanged = vec![2];
    write_all(
        &mut sink,
        &[
            upsert(
                &t,
                Op::Create,
                (0x200, 1),
                vec![int(3), text("three"), Value::Null],
            ),
            update,
            change(
                &t,
                Op::Delete,
                (0x200, 3),
                None,
                Some(vec![int(2), Value::Null, Value::Null]),
            ),
            upsert(
                &t,
                Op::Create,
                (0x300, 1),
                vec![int(2), text("two again"), text("fresh")],
            ),
            update_again,
        ],
    )
    .await;
    let second = sink.flush(checkpoint((0x300, 2))).await.unwrap().unwrap();
    assert_eq!(second.seq, 2);
    assert_eq!(second.tables[0].ops.total(), 5);
    assert!(!second.tables[0].files[0].snapshot);
    assert_eq!(sink.flush(checkpoint((0x300, 2))).await.unwrap(), None);

    let merged = BronzeMerge::load(&store, SOURCE).await.unwrap();
    let rows = &merged.table("public.items").unwrap().rows;
    assert_eq!(
        rows,
        &vec![
            vec![int(3), text("three"), Value::Null],
            vec![int(2), text("two again"), text("fresh")],
            vec![int(1), text("eins"), text("big note")],
        ]
    );
}

#[tokio::test]
async fn truncate_removes_earlier_rows_only() {
    let (_dir, store, mut sink) = open().await;
    let t = items();
    write_all(
        &mut sink,
        &[
            upsert(
                &t,
                Op::Create,
                (0x10, 1),
                vec![int(1), text("a"), Value::Null],
            ),
            upsert(
                &t,
                Op::Create,
                (0x10, 2),
                vec![int(2), text("b"), Value::Null],
            ),
            change(&t, Op::Truncate, (0x20, 1), None, None),
            upsert(
                &t,
                Op::Create,
                (0x30, 1),
                vec![int(2), text("c"), Value::Null],
            ),
        ],
    )
    .await;
    sink.flush(checkpoint((0x30, 1))).await.unwrap();
    let merged = BronzeMerge::load(&store, SOURCE).await.unwrap();
    assert_eq!(
        merged.table("public.items").unwrap().rows,
        vec![vec![int(2), text("c"), Value::Null]]
    );
}

#[tokio::test]
async fn composite_keys_and_keyless_tables() {
    let (_dir, store, mut sink) = open().await;
    let t = table(
        "tenants",
        vec![
            col("tenant", ColumnType::Text),
            col("id", ColumnType::Int32),
            col("v", ColumnType::Int32),
        ],
        vec![0, 1],
    );
    let log = table("log", vec![col("msg", ColumnType::Text)], vec![]);
    let row = |a: &str, b: i32, v: i32| vec![text(a), Value::Int32(b), Value::Int32(v)];
    write_all(
        &mut sink,
        &[
            upsert(&t, Op::Create, (1, 1), row("a", 1, 10)),
            upsert(&t, Op::Create, (1, 2), row("b", 1, 20)),
            upsert(&t, Op::Create, (1, 3), row("a", 2, 30)),
            upsert(&t, Op::Update, (2, 1), row("a", 1, 11)),
            change(
                &t,
                Op::Delete,
                (2, 2),
                None,
                Some(vec![text("b"), Value::Int32(1), Value::Null]),
            ),
            upsert(&log, Op::Create, (2, 3), vec![text("x")]),
            upsert(&log, Op::Create, (2, 4), vec![text("x")]),
        ],
    )
    .await;
    let manifest = sink.flush(checkpoint((2, 4))).await.unwrap().unwrap();
    assert_eq!(manifest.tables.len(), 2);
    let merged = BronzeMerge::load(&store, SOURCE).await.unwrap();
    assert_eq!(
        merged.table("public.tenants").unwrap().rows,
        vec![row("a", 2, 30), row("a", 1, 11)]
    );
    assert_eq!(merged.table("public.log").unwrap().rows.len(), 2);
}

fn every_type() -> (Arc<TableSchema>, Row) {
    let list = |element: ColumnType| ColumnType::List {
        element: Box::new(element),
    };
    let t = table(
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
                    scale: 10,
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
            col("nothing", ColumnType::Text),
        ],
        vec![0],
    );
    let row = vec![
        int(1),
        Value::Bool(true),
        Value::Int16(-7),
        Value::Int32(123_456),
        Value::Float32(1.5),
        Value::Float64(-2.25e100),
        Value::Decimal(-123_456_789),
        Value::Decimal(12_345_678_901_234_567_890_123_456_789_012_345_678),
        text("héllo, \"world\""),
        Value::Bytes(vec![0, 1, 2, 255]),
        Value::Date(19_000),
        Value::Time(45_296_000_001),
        Value::Timestamp(-1),
        Value::Timestamp(TS),
        Value::List(vec![Value::Int32(1), Value::Null, Value::Int32(3)]),
        Value::List(vec![]),
        Value::List(vec![
            Value::List(vec![int(1), int(2)]),
            Value::Null,
            Value::List(vec![]),
        ]),
        Value::Null,
    ];
    (t, row)
}

#[tokio::test]
async fn every_column_type_round_trips() {
    let (_dir, store, mut sink) = open().await;
    let (t, row) = every_type();
    let mut null_row = vec![Value::Null; row.len()];
    null_row[0] = int(2);
    write_all(
        &mut sink,
        &[
            upsert(&t, Op::Create, (5, 1), row.clone()),
            upsert(&t, Op::Create, (5, 2), null_row.clone()),
        ],
    )
    .await;
    sink.flush(checkpoint((5, 2))).await.unwrap();
    let merged = BronzeMerge::load(&store, SOURCE).await.unwrap();
    assert_eq!(
        merged.table("public.types").unwrap().rows,
        vec![row, null_row]
    );
}

#[tokio::test]
async fn files_metadata_and_manifest_are_as_documented() {
    let (_dir, store, mut sink) = open().await;
    let t = items();
    let before = vec![int(1), text("old"), Value::Null];
    write_all(
        &mut sink,
        &[change(
            &t,
            Op::Update,
            (0x1_0000_0000, 1),
            Some(vec![int(1), text("new"), Value::Null]),
            Some(before),
        )],
    )
    .await;
    let manifest = sink
        .flush(checkpoint((0x1_0000_0000, 1)))
        .await
        .unwrap()
        .unwrap();
    let file = &manifest.tables[0].files[0];
    let p = pos(0x1_0000_0000, 1).sort_key();
    assert_eq!(
        file.path,
        format!(
            "pg/public.items/date=2023-11-14/{p}_{p}_{}.parquet",
            &t.fingerprint[..8]
        )
    );
    assert_eq!(manifest.first_pos, p);
    assert_eq!(manifest.tables[0].key_columns, vec!["id"]);
    let bytes = store.get(&file.path).await.unwrap().unwrap();
    assert_eq!(bytes.len() as u64, file.bytes);
    let (names, rows) = read_parquet_rows(bytes.clone()).unwrap();
    assert_eq!(
        names,
        [
            "id",
            "name",
            "note",
            "_op",
            "_pos",
            "_commit_lsn",
            "_lsn",
            "_xid",
            "_commit_ts",
            "_unchanged",
            "_before"
        ]
    );
    assert_eq!(rows[0][3], text("u"));
    assert_eq!(rows[0][4], text(&p));
    assert_eq!(rows[0][5], int(0x1_0000_0000));
    assert_eq!(rows[0][9], Value::List(vec![]));
    assert_eq!(rows[0][10], text(r#"{"id":1,"name":"old","note":null}"#));
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(bytes).unwrap();
    let meta = parquet::file::reader::FileReader::metadata(&reader).file_metadata();
    assert_eq!(meta.created_by(), Some("tributary"));
    let kv: std::collections::BTreeMap<_, _> = meta
        .key_value_metadata()
        .unwrap()
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
        .collect();
    assert_eq!(kv["tributary.envelope_version"], "1");
    assert_eq!(kv["tributary.schema_fingerprint"], t.fingerprint);
    assert_eq!(kv["tributary.source"], "pg");
    let schema: TableSchema = serde_json::from_str(&kv["tributary.table_schema"]).unwrap();
    assert_eq!(&schema, t.as_ref());

    let writer = ManifestWriter::new(store.clone(), SOURCE);
    let latest = writer.latest().await.unwrap().unwrap();
    assert_eq!(latest, manifest);
    assert_eq!(writer.list().await.unwrap(), vec![1]);
    let json: serde_json::Value = serde_json::from_slice(
        &store
            .get("pg/_manifests/00000000000000000001.json")
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json["manifest_version"], 2);
    assert_eq!(json["checkpoint"]["resume"]["lsn"], 0x1_0000_0001u64);
    // A reopened sink continues the sequence.
    let reopened = LakeSink::open(store.clone(), SOURCE).await.unwrap();
    assert_eq!(reopened.latest_manifest().unwrap().seq, 1);
}

#[test]
fn same_envelopes_give_identical_bytes() {
    let (t, row) = every_type();
    let encode = || {
        let mut builder = DeltaBuilder::new(t.clone(), SOURCE);
        for i in 0..50 {
            let mut r = row.clone();
            r[0] = int(i);
            builder
                .append(&upsert(&t, Op::Create, (9, i as u64 + 1), r))
                .unwrap();
        }
        builder.encode().unwrap()
    };
    let a = encode();
    assert_eq!(a, encode());
    assert!(a.len() > 100);
}

#[test]
fn unencodable_values_name_table_column_position_and_kind() {
    let t = items();
    let mut builder = DeltaBuilder::new(t.clone(), SOURCE);
    let bad = upsert(
        &t,
        Op::Create,
        (0x16_B374_D848, 3),
        vec![text("x"), text("a"), Value::Null],
    );
    let err = builder.append(&bad).unwrap_err();
    assert!(!err.is_transient());
    let message = err.to_string();
    assert!(
        message.contains("public.items")
            && message.contains("column id")
            && message.contains("lsn 16/B374D848 change #3")
            && message.contains("a text value does not fit a int64 column"),
        "{message}"
    );
    assert_eq!(builder.rows(), 0);
    let dec = table(
        "d",
        vec![col(
            "x",
            ColumnType::Decimal {
                precision: 3,
                scale: 0,
            },
        )],
        vec![],
    );
    let err = DeltaBuilder::new(dec.clone(), SOURCE)
        .append(&upsert(
            &dec,
            Op::Create,
            (1, 1),
            vec![Value::Decimal(1000)],
        ))
        .unwrap_err();
    assert!(
        err.to_string().contains("exceeds the column's precision 3"),
        "{err}"
    );
}

#[tokio::test]
async fn failed_flush_keeps_buffers_and_retry_writes_the_same_files() {
    let (dir, store, mut sink) = open().await;
    let t = items();
    write_all(
        &mut sink,
        &[upsert(
            &t,
            Op::Create,
            (1, 1),
            vec![int(1), text("a"), Value::Null],
        )],
    )
    .await;
    // A file where the manifest directory must go makes the manifest put fail.
    std::fs::create_dir_all(dir.path().join("pg")).unwrap();
    std::fs::write(dir.path().join("pg/_manifests"), b"in the way").unwrap();
    let err = sink.flush(checkpoint((1, 1))).await.unwrap_err();
    assert!(!err.is_transient(), "{err}");
    assert_eq!(sink.buffered_rows(), 1);
    assert!(sink.latest_manifest().is_none());
    let delta_files = store.list("pg/public.items").await.unwrap();
    assert_eq!(delta_files.len(), 1);
    let orphan = store.get(&delta_files[0]).await.unwrap().unwrap();

    std::fs::remove_file(dir.path().join("pg/_manifests")).unwrap();
    let manifest = sink.flush(checkpoint((1, 1))).await.unwrap().unwrap();
    assert_eq!(manifest.seq, 1);
    assert_eq!(manifest.tables[0].files[0].path, delta_files[0]);
    assert_eq!(store.get(&delta_files[0]).await.unwrap().unwrap(), orphan);
    assert_eq!(sink.buffered_rows(), 0);
}

#[tokio::test]
async fn replayed_positions_are_harmless_but_conflicting_ones_are_corruption() {
    let (_dir, store, mut sink) = open().await;
    let t = items();
    let a = upsert(&t, Op::Create, (1, 1), vec![int(1), text("a"), Value::Null]);
    let b = upsert(&t, Op::Update, (2, 1), vec![int(1), text("b"), Value::Null]);
    write_all(&mut sink, &[a.clone(), b.clone()]).await;
    sink.flush(checkpoint((2, 1))).await.unwrap();
    // Redelivery after a crash: the same changes again in a later flush.
    write_all(&mut sink, std::slice::from_ref(&b)).await;
    sink.flush(checkpoint((2, 1))).await.unwrap();
    let merged = BronzeMerge::load(&store, SOURCE).await.unwrap();
    assert_eq!(
        merged.table("public.items").unwrap().rows,
        vec![vec![int(1), text("b"), Value::Null]]
    );

    let conflicting = upsert(
        &t,
        Op::Update,
        (2, 1),
        vec![int(1), text("other"), Value::Null],
    );
    write_all(&mut sink, &[conflicting]).await;
    sink.flush(checkpoint((2, 1))).await.unwrap();
    let err = BronzeMerge::load(&store, SOURCE)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("with different content"), "{err}");
}

#[test]
fn write_rejects_and_keeps_other_buffers() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (_dir, _store, mut sink) = runtime.block_on(open());
    let t = items();
    sink.write(&upsert(
        &t,
        Op::Create,
        (1, 1),
        vec![int(1), text("a"), Value::Null],
    ))
    .unwrap();
    let delete_without_key = change(&t, Op::Delete, (1, 2), None, None);
    assert!(sink.write(&delete_without_key).is_err());
    assert_eq!(sink.buffered_rows(), 1);
    assert!(sink.buffered_bytes() > 0);
}

fn shape(version: u32, compatible: bool, changes: &[&str]) -> RegisteredShape {
    RegisteredShape {
        schema: SchemaRef {
            subject: "pg.public.evo-value".into(),
            version,
            id: 100 + version,
        },
        compatibility: "BACKWARD".into(),
        compatible,
        changes: changes.iter().map(|c| c.to_string()).collect(),
        problems: if compatible {
            vec![]
        } else {
            vec!["narrowed".into()]
        },
    }
}

fn idcol(name: &str, data_type: ColumnType, id: u32) -> ColumnSchema {
    ColumnSchema {
        id: Some(id),
        ..col(name, data_type)
    }
}

/// Versions name files and manifest entries; a boundary is marked once per
/// new version, also when one flush holds two versions of a table; merging
/// matches columns by id across a rename, a drop, and a drop-and-re-add.
#[tokio::test]
async fn schema_versions_mark_boundaries_and_merge_by_column_id() {
    let (_dir, store, mut sink) = open().await;
    let v1 = Arc::new(TableSchema::new(
        "public",
        "evo",
        vec![
            idcol("id", ColumnType::Int64, 1),
            idcol("a", ColumnType::Text, 2),
            idcol("b", ColumnType::Text, 3),
            idcol("c", ColumnType::Text, 4),
        ],
        vec![0],
    ));
    // a renamed to a2, b dropped, c dropped and added again (new id).
    let v2 = Arc::new(TableSchema::new(
        "public",
        "evo",
        vec![
            idcol("id", ColumnType::Int64, 1),
            idcol("a2", ColumnType::Text, 2),
            idcol("c", ColumnType::Text, 5),
        ],
        vec![0],
    ));
    sink.add_shape(&v1.fingerprint, shape(1, true, &[]));
    sink.add_shape(
        &v2.fingerprint,
        shape(2, false, &["renamed column a to a2"]),
    );
    let row1 = |id: i64| vec![int(id), text("a"), text("b"), text("c")];
    write_all(
        &mut sink,
        &[
            upsert(&v1, Op::Create, (10, 1), row1(1)),
            upsert(&v1, Op::Create, (10, 2), row1(2)),
        ],
    )
    .await;
    let first = sink.flush(checkpoint((10, 2))).await.unwrap().unwrap();
    let entry = &first.tables[0];
    assert_eq!(entry.schema.as_ref().unwrap().version, 1);
    assert_eq!(
        entry.schema_change.as_ref().unwrap().previous_version,
        None,
        "a table's first files start version 1"
    );
    assert!(
        entry.files[0].path.contains("_v1_"),
        "{}",
        entry.files[0].path
    );
    assert_eq!(first.schema_versions["public.evo"], 1);

    // One flush with the rest of v1 and the start of v2.
    write_all(
        &mut sink,
        &[
            upsert(
                &v1,
                Op::Update,
                (20, 1),
                vec![int(2), text("a'"), text("b'"), text("c'")],
            ),
            upsert(
                &v2,
                Op::Update,
                (30, 1),
                vec![int(1), text("A"), Value::Null],
            ),
        ],
    )
    .await;
    let second = sink.flush(checkpoint((30, 1))).await.unwrap().unwrap();
    let by_version = |m: &Manifest, v: u32| {
        m.tables
            .iter()
            .find(|t| t.schema.as_ref().unwrap().version == v)
            .cloned()
            .unwrap()
    };
    assert!(
        by_version(&second, 1).schema_change.is_none(),
        "v1 continues"
    );
    let change = by_version(&second, 2).schema_change.unwrap();
    assert_eq!(change.previous_version, Some(1));
    assert!(!change.compatible);
    assert_eq!(change.changes, vec!["renamed column a to a2"]);
    assert_eq!(second.schema_versions["public.evo"], 2);
    // The file's metadata names the version.
    let path = &by_version(&second, 2).files[0].path;
    let bytes = store.get(path).await.unwrap().unwrap();
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(bytes).unwrap();
    use parquet::file::reader::FileReader;
    let kv = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .unwrap();
    let schema = kv.iter().find(|kv| kv.key == "tributary.schema").unwrap();
    assert_eq!(
        schema.value.as_deref(),
        Some(r#"{"subject":"pg.public.evo-value","version":2,"id":102}"#)
    );

    // A later flush of v2 marks nothing; a reopened sink remembers.
    let mut reopened = LakeSink::open(store.clone(), SOURCE).await.unwrap();
    reopened.add_shape(&v2.fingerprint, shape(2, false, &[]));
    write_all(
        &mut reopened,
        &[upsert(
            &v2,
            Op::Create,
            (40, 1),
            vec![int(3), text("x"), text("y")],
        )],
    )
    .await;
    let third = reopened.flush(checkpoint((40, 1))).await.unwrap().unwrap();
    assert!(third.tables[0].schema_change.is_none());

    let merged = BronzeMerge::load(&store, SOURCE).await.unwrap();
    let evo = merged.table("public.evo").unwrap();
    let names: Vec<&str> = evo.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "a2", "c"]);
    // Row 2 was last written under v1: `a` carries over as a2, the old `c`
    // (another column) does not.
    assert_eq!(
        evo.rows,
        vec![
            vec![int(2), text("a'"), Value::Null],
            vec![int(1), text("A"), Value::Null],
            vec![int(3), text("x"), text("y")],
        ]
    );
}

fn field(name: &str, data_type: ColumnType) -> crate::schema::StructField {
    crate::schema::StructField {
        name: name.into(),
        data_type,
    }
}

fn list_of(element: ColumnType) -> ColumnType {
    ColumnType::List {
        element: Box::new(element),
    }
}

/// `docs (id, doc struct<name, address struct<city, zip>, tags list<text>,
/// scores list<struct<k, v>>>, items list<struct<sku, qty, price>>)`.
fn docs() -> Arc<TableSchema> {
    let address = ColumnType::Struct {
        fields: vec![
            field("city", ColumnType::Text),
            field("zip", ColumnType::Int32),
        ],
    };
    let score = ColumnType::Struct {
        fields: vec![
            field("k", ColumnType::Text),
            field("v", ColumnType::Float64),
        ],
    };
    let doc = ColumnType::Struct {
        fields: vec![
            field("name", ColumnType::Text),
            field("address", address),
            field("tags", list_of(ColumnType::Text)),
            field("scores", list_of(score)),
        ],
    };
    let item = ColumnType::Struct {
        fields: vec![
            field("sku", ColumnType::Text),
            field("qty", ColumnType::Int32),
            field(
                "price",
                ColumnType::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
        ],
    };
    table(
        "docs",
        vec![
            col("id", ColumnType::Int64),
            col("doc", doc),
            col("items", list_of(item)),
        ],
        vec![0],
    )
}

/// Rows of [`docs`] with values and NULLs at every level: the column, a
/// nested struct, a struct's field, a list inside a struct, a list's
/// element, a field of a struct inside a list.
fn docs_rows() -> Vec<Row> {
    let s = Value::Struct;
    let l = Value::List;
    vec![
        vec![
            int(1),
            s(vec![
                text("ada"),
                s(vec![text("London"), Value::Int32(12345)]),
                l(vec![text("a"), Value::Null, text("b")]),
                l(vec![
                    s(vec![text("x"), Value::Float64(1.5)]),
                    Value::Null,
                    s(vec![Value::Null, Value::Float64(-0.25)]),
                ]),
            ]),
            l(vec![
                s(vec![text("sku-1"), Value::Int32(2), Value::Decimal(1999)]),
                s(vec![text("sku-2"), Value::Null, Value::Decimal(-5)]),
            ]),
        ],
        vec![int(2), Value::Null, Value::Null],
        vec![
            int(3),
            s(vec![Value::Null, Value::Null, Value::Null, Value::Null]),
            l(vec![
                Value::Null,
                s(vec![Value::Null, Value::Null, Value::Null]),
            ]),
        ],
        vec![
            int(4),
            s(vec![
                text("bob"),
                s(vec![Value::Null, Value::Int32(0)]),
                l(vec![]),
                l(vec![]),
            ]),
            l(vec![]),
        ],
    ]
}

#[tokio::test]
async fn struct_columns_round_trip_with_nulls_at_every_level() {
    let (_dir, store, mut sink) = open().await;
    let t = docs();
    let rows = docs_rows();
    let changes: Vec<Envelope> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| upsert(&t, Op::Create, (7, i as u64 + 1), row.clone()))
        .collect();
    write_all(&mut sink, &changes).await;
    // A delete carries its struct before image into `_before` as JSON.
    write_all(
        &mut sink,
        &[change(&t, Op::Delete, (8, 1), None, Some(rows[0].clone()))],
    )
    .await;
    let flushed = sink.flush(checkpoint((8, 1))).await.unwrap().unwrap();

    let merged = BronzeMerge::load(&store, SOURCE).await.unwrap();
    assert_eq!(
        merged.table("public.docs").unwrap().rows,
        rows[1..].to_vec()
    );

    // The file's columns are Arrow structs with nullable children, and its
    // rows read back exactly as written.
    let path = &flushed.tables[0].files[0].path;
    let bytes = store.get(path).await.unwrap().unwrap();
    let (names, file_rows) = read_parquet_rows(bytes).unwrap();
    assert_eq!(names[..3], ["id", "doc", "items"]);
    for (written, read) in rows.iter().zip(&file_rows) {
        assert_eq!(written[..], read[..3]);
    }
    let before = names.iter().position(|n| n == "_before").unwrap();
    let Value::Text(json) = &file_rows[4][before] else {
        panic!("no _before: {:?}", file_rows[4]);
    };
    let json: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(
        json["doc"]["address"],
        serde_json::json!({"city": "London", "zip": 12345})
    );
    assert_eq!(json["items"][0]["price"], "19.99");
    let schema = delta_writer::arrow_schema(&t);
    let arrow_schema::DataType::Struct(fields) = schema.field(1).data_type() else {
        panic!("doc is {}", schema.field(1).data_type());
    };
    assert!(fields.iter().all(|f| f.is_nullable()));
}

#[test]
fn struct_values_that_do_not_fit_name_the_field_path() {
    let t = docs();
    let mut builder = DeltaBuilder::new(t.clone(), SOURCE);
    let mut row = docs_rows().remove(0);
    let Value::Struct(doc) = &mut row[1] else {
        unreachable!()
    };
    doc[1] = Value::Struct(vec![text("Paris"), text("75001")]);
    let err = builder
        .append(&upsert(&t, Op::Create, (1, 1), row))
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("column doc")
            && message.contains("field address.zip: a text value does not fit a int32 column"),
        "{message}"
    );
    assert_eq!(builder.rows(), 0);
}

#[tokio::test]
async fn struct_fields_added_dropped_and_reordered_merge_by_name() {
    let (_dir, store, mut sink) = open().await;
    let v1 = table(
        "docs",
        vec![
            col("id", ColumnType::Int64),
            col(
                "doc",
                ColumnType::Struct {
                    fields: vec![field("a", ColumnType::Int32), field("b", ColumnType::Text)],
                },
            ),
        ],
        vec![0],
    );
    let v2 = table(
        "docs",
        vec![
            col("id", ColumnType::Int64),
            col(
                "doc",
                ColumnType::Struct {
                    fields: vec![field("b", ColumnType::Text), field("c", ColumnType::Int64)],
                },
            ),
        ],
        vec![0],
    );
    assert_ne!(v1.fingerprint, v2.fingerprint);
    let doc = |values: Vec<Value>| Value::Struct(values);
    write_all(
        &mut sink,
        &[
            upsert(
                &v1,
                Op::Create,
                (1, 1),
                vec![int(1), doc(vec![Value::Int32(7), text("old")])],
            ),
            upsert(&v1, Op::Create, (1, 2), vec![int(2), Value::Null]),
            upsert(
                &v2,
                Op::Create,
                (2, 1),
                vec![int(3), doc(vec![text("new"), int(9)])],
            ),
        ],
    )
    .await;
    sink.flush(checkpoint((2, 1))).await.unwrap();
    let merged = BronzeMerge::load(&store, SOURCE).await.unwrap();
    assert_eq!(
        merged.table("public.docs").unwrap().rows,
        vec![
            vec![int(1), doc(vec![text("old"), Value::Null])],
            vec![int(2), Value::Null],
            vec![int(3), doc(vec![text("new"), int(9)])],
        ]
    );
}
