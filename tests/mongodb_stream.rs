//! The MongoDB source end to end through the real `mongodb` driver, against
//! the scripted wire-protocol server of the connector's tests (no MongoDB
//! server can be installed on this machine): an initial copy of a
//! collection, then a recorded change stream (inserts, updates, a replace,
//! deletes, a multi-document transaction, a field whose type changes, an
//! embedded document and an array) served in small batches with one dropped
//! connection; the merged lake (ours and DuckDB's) equals the collection the
//! events describe, `_doc` holds each document exactly. A restart resumes
//! with `startAfter` the last durable token and changes nothing; a token
//! the oplog no longer has stops the daemon with the reset command, and the
//! reset copies again; `tributary snapshot --reset` re-reads the collection
//! while streaming.

#[path = "../connectors/mongodb/tests/wire/framing.rs"]
mod framing;
#[path = "../connectors/mongodb/tests/wire/script.rs"]
mod script;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mongodb::bson::{Binary, Bson, DateTime, Document, Timestamp, doc, spec::BinarySubtype};
use tributary::envelope::Value;
use tributary::merge::BronzeMerge;
use tributary::sink::LakeStore;

use crate::bad_config::run_cli;
use crate::harness::daemon::DaemonProcess;
use crate::harness::lake::{read_checkpoint, snapshot_under_way};
use crate::harness::truth::duckdb_merge;
use script::{Script, ScriptedServer, token};

const NS: &str = "shop.orders";

fn event(op: &str, second: u32, increment: u32, id: i32) -> Document {
    doc! {
        "operationType": op,
        "clusterTime": Timestamp { time: 1_700_000_100 + second, increment },
        "wallTime": DateTime::from_millis(1_700_000_100_000 + i64::from(second) * 1000),
        "ns": { "db": "shop", "coll": "orders" },
        "documentKey": { "_id": id },
    }
}

fn order(id: i32, qty: Bson) -> Document {
    doc! {
        "_id": id,
        "item": format!("item-{id}"),
        "qty": qty,
        "address": { "city": format!("c{id}"), "zip": id * 10 },
        "tags": ["a", format!("t{id}")],
    }
}

/// The recorded stream and the collection it leaves behind.
fn workload() -> (Vec<Document>, Vec<Document>, BTreeMap<i32, Document>) {
    let initial: Vec<Document> = (1..=30).map(|id| order(id, Bson::Int32(id))).collect();
    let mut state: BTreeMap<i32, Document> = initial
        .iter()
        .map(|d| (d.get_i32("_id").unwrap(), d.clone()))
        .collect();
    let mut events = Vec::new();
    let mut second = 0;
    let mut apply = |events: &mut Vec<Document>, e: Document| {
        let id = e
            .get_document("documentKey")
            .unwrap()
            .get_i32("_id")
            .unwrap();
        match e.get_str("operationType").unwrap() {
            "delete" => {
                state.remove(&id);
            }
            _ => {
                state.insert(id, e.get_document("fullDocument").unwrap().clone());
            }
        }
        events.push(e);
    };
    for id in 31..=40 {
        second += 1;
        let mut e = event("insert", second, 1, id);
        e.insert("fullDocument", order(id, Bson::Int32(id)));
        apply(&mut events, e);
    }
    for id in [2, 5, 33] {
        second += 1;
        let mut doc = order(id, Bson::Int32(id * 100));
        doc.insert("note", "updated");
        let mut e = event("update", second, 1, id);
        e.insert(
            "updateDescription",
            doc! { "updatedFields": { "qty": id * 100, "note": "updated" }, "removedFields": [], "truncatedArrays": [] },
        );
        e.insert("fullDocument", doc);
        apply(&mut events, e);
    }
    second += 1;
    let mut e = event("replace", second, 1, 7);
    e.insert("fullDocument", doc! { "_id": 7, "item": "replaced" });
    apply(&mut events, e);
    for id in [3, 31] {
        second += 1;
        apply(&mut events, event("delete", second, 1, id));
    }
    // One transaction: three operations at one cluster time.
    second += 1;
    let lsid = doc! {
        "id": Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 16] },
        "uid": Binary { subtype: BinarySubtype::Generic, bytes: vec![1; 32] },
    };
    for (i, id) in [41, 42, 4].into_iter().enumerate() {
        let op = if id == 4 { "delete" } else { "insert" };
        let mut e = event(op, second, i as u32 + 1, id);
        if op == "insert" {
            e.insert("fullDocument", order(id, Bson::Int64(1 << 40)));
        }
        e.insert("lsid", lsid.clone());
        e.insert("txnNumber", 5i64);
        apply(&mut events, e);
    }
    // A field changes type: the shape widens, a new version registers.
    second += 1;
    let mut e = event("insert", second, 1, 43);
    e.insert("fullDocument", order(43, Bson::String("many".into())));
    apply(&mut events, e);
    (initial, events, state)
}

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    lake: PathBuf,
    config: PathBuf,
}

fn setup(server: &ScriptedServer) -> Setup {
    let tmp = tempfile::Builder::new()
        .prefix("tributary-mongo-")
        .tempdir()
        .unwrap();
    let root = tmp.path().to_path_buf();
    let lake = root.join("lake");
    let config = root.join("tributary.toml");
    std::fs::write(
        &config,
        format!(
            r#"[daemon]
data_dir = "{data}"

[sink.lake]
kind = "lake"
url = "{lake}"
flush_interval_ms = 200

[[source]]
name = "shop"
kind = "mongodb"
sink = "lake"
uri = "{uri}"
database = "shop"
collections = ["orders"]
snapshot_batch = 7
"#,
            data = root.join("data").display(),
            lake = lake.display(),
            uri = server.uri(),
        ),
    )
    .unwrap();
    Setup {
        _tmp: tmp,
        root,
        lake,
        config,
    }
}

/// `_id` → `_doc` of the merged lake (`None` before the table exists).
async fn lake_docs(lake: &Path) -> Option<BTreeMap<String, String>> {
    let store = LakeStore::local(lake).ok()?;
    let merged = BronzeMerge::load(&store, "shop").await.ok()?;
    let table = merged.table(NS)?;
    let at = |name: &str| table.columns.iter().position(|c| c.name == name);
    let (id, doc) = (at("_id")?, at("_doc")?);
    Some(
        table
            .rows
            .iter()
            .filter_map(|r| match (&r[id], &r[doc]) {
                (Value::Text(i), Value::Text(d)) => Some((i.clone(), d.clone())),
                _ => None,
            })
            .collect(),
    )
}

fn expected_docs(state: &BTreeMap<i32, Document>) -> BTreeMap<String, String> {
    state
        .iter()
        .map(|(id, d)| {
            (
                tributary_mongodb::extended_json_value(&Bson::Int32(*id)),
                tributary_mongodb::extended_json(d),
            )
        })
        .collect()
}

async fn wait_lake(lake: &Path, daemon: &mut DaemonProcess, expected: &BTreeMap<String, String>) {
    let started = Instant::now();
    loop {
        if lake_docs(lake).await.as_ref() == Some(expected) {
            return;
        }
        if let Some(how) = crate::harness::daemon::Daemon::exited(daemon) {
            panic!("the daemon {how}:\n{}", daemon.log_text(60));
        }
        if started.elapsed() > Duration::from_secs(60) {
            let got = lake_docs(lake).await.unwrap_or_default();
            let missing: Vec<_> = expected.keys().filter(|k| !got.contains_key(*k)).collect();
            let extra: Vec<_> = got.keys().filter(|k| !expected.contains_key(*k)).collect();
            let differ: Vec<_> = expected
                .iter()
                .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
                .map(|(k, _)| k)
                .collect();
            panic!(
                "the lake does not match the collection after 60 s: missing {missing:?}, extra {extra:?}, differing {differ:?}\n{}",
                daemon.log_text(60)
            );
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_then_stream_resume_and_history_lost() {
    let (initial, events, state) = workload();
    let expected = expected_docs(&state);
    let event_count = events.len();
    let server = ScriptedServer::start(Script {
        events,
        batches: vec![3],
        default_batch: 4,
        // The driver must resume after a dropped connection by itself.
        close_on_get_more: vec![3],
        collections: vec![doc! { "name": "orders", "type": "collection", "options": {} }],
        documents: initial,
        ..Script::default()
    })
    .await;
    let setup = setup(&server);
    let (ok, out, err) = run_cli(&["check", "--config", setup.config.to_str().unwrap()], &[]);
    assert!(ok && out.contains("ready for change streams"), "{out}{err}");
    assert!(
        out.contains("WARN") && out.contains("shop.orders has no pre- and post-images"),
        "check names the collections without pre-images: {out}"
    );

    let mut daemon = DaemonProcess::start_with(setup.config.clone(), &setup.root);
    wait_lake(&setup.lake, &mut daemon, &expected).await;
    // The copy read the collection as several `_id` ranges at once.
    let range_scans = server
        .commands("find")
        .iter()
        .filter(|f| {
            f.get("projection").is_none() && (f.get("min").is_some() || f.get("max").is_some())
        })
        .count();
    assert!(
        range_scans >= 3,
        "the copy scans _id ranges in parallel ({range_scans} range scans)"
    );

    // Typed columns next to `_doc`: the DuckDB merge agrees with ours.
    let store = LakeStore::local(&setup.lake).unwrap();
    let merged = BronzeMerge::load(&store, "shop").await.unwrap();
    let table = merged.table(NS).unwrap();
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["_id", "item", "qty", "address", "tags", "note", "_doc"],
        "columns in first-seen order"
    );
    let duck_dir = tempfile::tempdir().unwrap();
    let duck = duckdb_merge(&setup.lake, "shop", duck_dir.path());
    let theirs = duck.get(NS).expect("DuckDB merged shop.orders");
    let mut ours_rows = table.rows.clone();
    let mut their_rows = theirs.rows.clone();
    let key = |r: &Vec<Value>| format!("{:?}", r[0]);
    ours_rows.sort_by_key(key);
    their_rows.sort_by_key(key);
    assert_eq!(ours_rows.len(), their_rows.len());
    for (a, b) in ours_rows.iter().zip(&their_rows) {
        assert_eq!(a[0], b[0]);
        assert_eq!(a[6], b[6], "DuckDB's _doc of {:?}", a[0]);
    }
    let row = |id: i32| {
        let key = Value::Text(tributary_mongodb::extended_json_value(&Bson::Int32(id)));
        table.rows.iter().find(|r| r[0] == key).unwrap().clone()
    };
    // qty widened (int32 → int64 → JSON text for the string): a new column
    // each time, so rows written before hold null there (never a value of
    // the old type); `_doc` has every value.
    assert_eq!(row(2)[2], Value::Null);
    assert_eq!(row(43)[2], Value::Text("\"many\"".into()));
    assert_eq!(
        row(5)[3],
        Value::Struct(vec![Value::Text("c5".into()), Value::Int32(50)])
    );
    assert_eq!(
        row(5)[4],
        Value::List(vec![Value::Text("a".into()), Value::Text("t5".into())])
    );
    let versions = std::fs::read_dir(
        setup
            .lake
            .join("_schemas/subjects/shop.shop.orders-value/versions"),
    )
    .map(|d| d.count())
    .unwrap_or(0);
    assert!(
        versions >= 2,
        "the widened shape is a new registered version"
    );

    // A clean restart resumes after the last durable token.
    daemon.stop_gracefully(Duration::from_secs(30));
    let before = server.change_stream_stages().len();
    daemon.restart();
    let started = Instant::now();
    while server.change_stream_stages().len() == before {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no change stream reopened:\n{}",
            daemon.log_text(40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stage = server.change_stream_stages().last().unwrap().clone();
    // After the last event: its own token, or the idle stream's
    // post-batch token at the same position.
    let after = stage
        .get_document("startAfter")
        .ok()
        .and_then(|t| t.get_str("_data").ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        [token(event_count, 1), token(event_count, 2)]
            .iter()
            .any(|t| t.get_str("_data").ok() == Some(after.as_str())),
        "resumed after the last event: {stage}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_lake(&setup.lake, &mut daemon, &expected).await;
    daemon.stop_gracefully(Duration::from_secs(30));

    // The oplog no longer has the token: the daemon stops with the fix.
    let lost = ScriptedServer::start(Script {
        oldest_position: event_count + 5,
        collections: vec![doc! { "name": "orders", "type": "collection", "options": {} }],
        documents: state.values().cloned().collect(),
        ..Script::default()
    })
    .await;
    let toml = std::fs::read_to_string(&setup.config)
        .unwrap()
        .replace(&server.uri(), &lost.uri());
    std::fs::write(&setup.config, toml).unwrap();
    daemon.restart();
    let status = daemon.wait(Duration::from_secs(60));
    let log = daemon.log_text(30);
    assert!(
        !status.success()
            && log.contains("no longer in the oplog")
            && log.contains("checkpoint reset"),
        "{log}"
    );
    let config = setup.config.to_str().unwrap();
    let (ok, out, err) = run_cli(
        &[
            "checkpoint",
            "reset",
            "--config",
            config,
            "--source",
            "shop",
            "--to",
            "current",
        ],
        &[],
    );
    assert!(ok, "{out}{err}");
    daemon.restart();
    wait_lake(&setup.lake, &mut daemon, &expected).await;

    // An on-demand snapshot (emptying the lake table first) while streaming:
    // chunks read at a cluster time, placed once the stream passed it.
    let (ok, out, err) = run_cli(
        &[
            "snapshot", "--config", config, "--source", "shop", "--table", NS, "--reset",
        ],
        &[],
    );
    assert!(ok && out.contains("requested"), "{out}{err}");
    let started = Instant::now();
    while !daemon
        .log_text(400)
        .contains("incremental snapshot of collection finished")
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the requested snapshot did not finish:\n{}",
            daemon.log_text(40)
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(
        daemon
            .log_text(400)
            .contains(&format!("rows={}", state.len())),
        "every document copied: {}",
        daemon.log_text(20)
    );
    wait_lake(&setup.lake, &mut daemon, &expected).await;
    let started = Instant::now();
    while std::fs::read_dir(setup.lake.join("shop/_requests")).is_ok_and(|d| d.count() > 0) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the request file stays"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    daemon.stop_gracefully(Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_copy_continues_each_range() {
    let documents: Vec<Document> = (1..=3000).map(|id| order(id, Bson::Int32(id))).collect();
    let expected = expected_docs(
        &documents
            .iter()
            .map(|d| (d.get_i32("_id").unwrap(), d.clone()))
            .collect(),
    );
    let server = ScriptedServer::start(Script {
        collections: vec![doc! { "name": "orders", "type": "collection", "options": {} }],
        documents,
        ..Script::default()
    })
    .await;
    let setup = setup(&server);
    let toml = std::fs::read_to_string(&setup.config)
        .unwrap()
        .replace("snapshot_batch = 7", "snapshot_batch = 3");
    std::fs::write(&setup.config, toml).unwrap();
    let mut daemon = DaemonProcess::start_with(setup.config.clone(), &setup.root);
    // Kill as soon as a batch is durable with the ranges' bounds.
    let started = Instant::now();
    loop {
        if read_checkpoint(&setup.lake, "shop").is_some_and(|c| snapshot_under_way(&c)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no batch of the copy became durable:\n{}",
            daemon.log_text(40)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    daemon.kill9();
    let scans_before = server.commands("find").len();
    daemon.restart();
    wait_lake(&setup.lake, &mut daemon, &expected).await;
    assert!(
        server.commands("find").len() > scans_before,
        "the copy was interrupted and continued after the restart"
    );
    // Only the very first scan started at the collection's beginning: after
    // the restart every range continued after its last durable `_id`.
    let from_start = server
        .commands("find")
        .iter()
        .filter(|f| f.get("projection").is_none() && f.get("min").is_none())
        .count();
    assert_eq!(from_start, 1, "the restarted copy continued each range");
    daemon.stop_gracefully(Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_renamed_onto_a_captured_name_is_copied_again() {
    // The server's `find` serves what `orders` holds after the rename (the
    // former `staging`); before it, an insert the rename makes obsolete.
    let staging: Vec<Document> = (1..=20).map(|id| order(id, Bson::Int32(-id))).collect();
    let mut insert = event("insert", 1, 1, 100);
    insert.insert("fullDocument", order(100, Bson::Int32(100)));
    let rename = doc! {
        "operationType": "rename",
        "clusterTime": Timestamp { time: 1_700_000_102, increment: 1 },
        "ns": { "db": "shop", "coll": "staging" },
        "to": { "db": "shop", "coll": "orders" },
    };
    let server = ScriptedServer::start(Script {
        events: vec![insert, rename],
        collections: vec![doc! { "name": "orders", "type": "collection", "options": {} }],
        documents: staging.clone(),
        ..Script::default()
    })
    .await;
    let setup = setup(&server);
    let mut daemon = DaemonProcess::start_with(setup.config.clone(), &setup.root);
    let expected = expected_docs(
        &staging
            .iter()
            .map(|d| (d.get_i32("_id").unwrap(), d.clone()))
            .collect(),
    );
    wait_lake(&setup.lake, &mut daemon, &expected).await;
    assert!(
        daemon
            .log_text(200)
            .contains("renamed onto a captured name"),
        "{}",
        daemon.log_text(30)
    );
    daemon.stop_gracefully(Duration::from_secs(30));
}
