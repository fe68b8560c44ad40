//! The connector against a scripted MongoDB wire-protocol server (see
//! `wire/script.rs`): the real driver, real sockets, recorded change
//! events. Proves ordering across batches, resume tokens, restarts with
//! `startAfter`, transparent resumption after a dropped connection, the
//! lost-history error, the preflight, and snapshot range scans.

#[path = "wire/framing.rs"]
mod framing;
#[path = "wire/script.rs"]
mod script;

use std::future::Future;
use std::time::Duration;

use mongodb::Client;
use mongodb::bson::{Document, doc, oid::ObjectId};
use tributary_mongodb::{
    ChangeOp, ChangeStreamConfig, FullDocumentMode, IdRange, MongoChangeStream, MongoError,
    RangeScan, ScanConsistency, StartAt, Topology, cluster_time, preflight, scan_range,
    split_id_ranges,
};

use script::{CLUSTER_TIME, Script, ScriptedServer, token};

/// Fails a test that hangs instead of letting it run forever.
async fn within_seconds<T>(seconds: u64, test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(seconds), test)
        .await
        .expect("the test timed out")
}

/// `n` insert events on engineering.users as the change-events reference
/// shows them; document `_id`s are 0..n.
fn inserts(n: usize) -> Vec<Document> {
    (0..n)
        .map(|i| {
            doc! {
                "_id": {},
                "operationType": "insert",
                "clusterTime": CLUSTER_TIME,
                "wallTime": mongodb::bson::DateTime::from_millis(1_700_000_000_000),
                "ns": { "db": "engineering", "coll": "users" },
                "documentKey": { "_id": i as i32 },
                "fullDocument": { "_id": i as i32, "userName": format!("user{i}") },
            }
        })
        .collect()
}

async fn client(server: &ScriptedServer) -> Client {
    Client::with_uri_str(server.uri()).await.unwrap()
}

fn users() -> ChangeStreamConfig {
    let mut config = ChangeStreamConfig::new("engineering");
    config.collections = vec!["users".into()];
    config
}

/// The document `_id` of each event.
fn keys(events: &[tributary_mongodb::ChangeEvent]) -> Vec<i32> {
    events
        .iter()
        .map(|e| e.key().and_then(|k| k.as_i32()).unwrap())
        .collect()
}

#[tokio::test]
async fn events_arrive_in_order_across_batches_with_their_tokens() {
    within_seconds(20, async {
        let mut events = inserts(5);
        events[2] = doc! {
            "_id": {},
            "operationType": "update",
            "ns": { "db": "engineering", "coll": "users" },
            "documentKey": { "_id": 2 },
            "updateDescription": { "updatedFields": { "userName": "two" }, "removedFields": [] },
            "fullDocument": { "_id": 2, "userName": "two" },
        };
        events[4] = doc! {
            "_id": {},
            "operationType": "delete",
            "ns": { "db": "engineering", "coll": "users" },
            "documentKey": { "_id": 4 },
        };
        let server = ScriptedServer::start(Script {
            events,
            batches: vec![2, 1, 2],
            ..Script::default()
        })
        .await;
        let client = client(&server).await;
        let mut stream = MongoChangeStream::open(&client, &users()).await.unwrap();
        let mut seen = Vec::new();
        for position in 1..=5 {
            let event = stream.next_event().await.unwrap();
            assert_eq!(event.resume_token, token(position, 1));
            assert_eq!(
                stream.resume_token(),
                Some(event.resume_token.clone()),
                "the token after an event is its _id"
            );
            seen.push(event);
        }
        assert_eq!(keys(&seen), vec![0, 1, 2, 3, 4]);
        let ops: Vec<ChangeOp> = seen.iter().map(|e| e.op.clone()).collect();
        assert_eq!(
            ops,
            vec![
                ChangeOp::Insert,
                ChangeOp::Insert,
                ChangeOp::Update,
                ChangeOp::Insert,
                ChangeOp::Delete
            ]
        );
        assert_eq!(
            seen[2].update.as_ref().unwrap().updated_fields,
            doc! { "userName": "two" }
        );
        assert_eq!(
            server.commands("getMore").len(),
            2,
            "two getMores after the first batch"
        );
        let stage = &server.change_stream_stages()[0];
        assert_eq!(stage.get_str("fullDocument"), Ok("updateLookup"));
        assert!(!stage.contains_key("startAfter") && !stage.contains_key("resumeAfter"));
        let aggregate = &server.commands("aggregate")[0];
        assert_eq!(
            aggregate.get_str("aggregate"),
            Ok("users"),
            "one collection is watched directly"
        );
    })
    .await;
}

#[tokio::test]
async fn empty_batches_move_the_token_to_the_post_batch_token() {
    within_seconds(20, async {
        let server = ScriptedServer::start(Script {
            events: inserts(1),
            batches: vec![1, 0],
            ..Script::default()
        })
        .await;
        let client = client(&server).await;
        let mut stream = MongoChangeStream::open(&client, &users()).await.unwrap();
        let event = stream.try_next_event().await.unwrap().unwrap();
        assert_eq!(stream.resume_token(), Some(event.resume_token));
        assert_eq!(stream.try_next_event().await.unwrap(), None);
        assert_eq!(
            stream.resume_token(),
            Some(token(1, 2)),
            "after an empty batch the token is its postBatchResumeToken"
        );
    })
    .await;
}

#[tokio::test]
async fn restarting_after_a_token_continues_after_it() {
    within_seconds(20, async {
        let server = ScriptedServer::start(Script {
            events: inserts(4),
            ..Script::default()
        })
        .await;
        let client = client(&server).await;
        let mut first = MongoChangeStream::open(&client, &users()).await.unwrap();
        first.next_event().await.unwrap();
        let checkpoint = first.next_event().await.unwrap().resume_token;
        drop(first);

        let mut config = users();
        config.start = StartAt::After(checkpoint.clone());
        config.full_document = FullDocumentMode::Required;
        config.batch_size = Some(10);
        let mut second = MongoChangeStream::open(&client, &config).await.unwrap();
        let next = second.next_event().await.unwrap();
        assert_eq!(
            next.key().and_then(|k| k.as_i32()),
            Some(2),
            "continues after the token"
        );
        let stage = server.change_stream_stages().pop().unwrap();
        assert_eq!(stage.get_document("startAfter"), Ok(&checkpoint));
        assert_eq!(stage.get_str("fullDocument"), Ok("required"));
        assert_eq!(stage.get_str("fullDocumentBeforeChange"), Ok("required"));
        let aggregate = server.commands("aggregate").pop().unwrap();
        assert_eq!(
            aggregate
                .get_document("cursor")
                .unwrap()
                .get_i32("batchSize"),
            Ok(10)
        );
    })
    .await;
}

#[tokio::test]
async fn a_dropped_connection_is_resumed_without_losing_events() {
    within_seconds(30, async {
        let server = ScriptedServer::start(Script {
            events: inserts(6),
            batches: vec![2, 2, 2, 2],
            // The second getMore (after events 0..4) finds the socket closed.
            close_on_get_more: vec![2],
            ..Script::default()
        })
        .await;
        let client = client(&server).await;
        let mut stream = MongoChangeStream::open(&client, &users()).await.unwrap();
        let mut seen = Vec::new();
        while seen.len() < 6 {
            seen.push(stream.next_event().await.unwrap());
        }
        assert_eq!(
            keys(&seen),
            vec![0, 1, 2, 3, 4, 5],
            "nothing lost, nothing repeated"
        );
        let stages = server.change_stream_stages();
        assert_eq!(
            stages.len(),
            2,
            "the driver reopened the stream once: {stages:?}"
        );
        assert_eq!(
            stages[1].get_document("resumeAfter"),
            Ok(&token(4, 1)),
            "resumed after the last event delivered"
        );
    })
    .await;
}

#[tokio::test]
async fn lost_history_is_definite_and_names_snapshot() {
    within_seconds(20, async {
        let server = ScriptedServer::start(Script {
            events: inserts(10),
            oldest_position: 5,
            ..Script::default()
        })
        .await;
        let client = client(&server).await;
        let mut config = users();
        config.start = StartAt::After(token(3, 1));
        let error = MongoChangeStream::open(&client, &config).await.unwrap_err();
        assert!(
            matches!(error, MongoError::HistoryLost { code: 286, .. }),
            "{error:?}"
        );
        assert!(!error.is_transient());
        let text = error.to_string();
        assert!(
            text.contains("no longer in the oplog")
                && text.contains("tributary checkpoint reset")
                && text.contains(r#"after resume token {"_data":"000000000000000301"}"#),
            "{text}"
        );
        // A token still in the (scripted) oplog works.
        config.start = StartAt::After(token(6, 1));
        let mut stream = MongoChangeStream::open(&client, &config).await.unwrap();
        assert_eq!(
            stream
                .next_event()
                .await
                .unwrap()
                .key()
                .and_then(|k| k.as_i32()),
            Some(6)
        );
    })
    .await;
}

#[tokio::test]
async fn standalone_preflight_reports_the_missing_replica_set() {
    within_seconds(20, async {
        let server = ScriptedServer::start(Script {
            replica_set: false,
            ..Script::default()
        })
        .await;
        let client = client(&server).await;
        let check = preflight(&client, "engineering", &[]).await.unwrap();
        assert_eq!(check.topology, Topology::Standalone);
        let problems: Vec<String> = check
            .problems(FullDocumentMode::UpdateLookup)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("not a replica set member")
                && problems[0].contains("--replSet")
                && problems[0].contains("rs.initiate()"),
            "{problems:?}"
        );
        let time = cluster_time(&client).await.unwrap_err();
        assert!(matches!(time, MongoError::NotReplicaSet { .. }), "{time:?}");
    })
    .await;
}

#[tokio::test]
async fn replica_set_preflight_lists_collections_without_images() {
    within_seconds(20, async {
        let spec = |name: &str, images: bool| {
            doc! {
                "name": name,
                "type": "collection",
                "options": { "changeStreamPreAndPostImages": { "enabled": images } },
                "info": { "readOnly": false, "uuid": mongodb::bson::Binary { subtype: mongodb::bson::spec::BinarySubtype::Uuid, bytes: ObjectId::new().bytes().repeat(2)[..16].to_vec() } },
                "idIndex": { "v": 2, "key": { "_id": 1 }, "name": "_id_" },
            }
        };
        let server = ScriptedServer::start(Script {
            collections: vec![spec("users", true), spec("orders", false)],
            version: "7.0.14".into(),
            ..Script::default()
        })
        .await;
        let client = client(&server).await;
        let wanted = ["users".to_string(), "orders".to_string(), "Items".to_string()];
        let check = preflight(&client, "engineering", &wanted).await.unwrap();
        assert_eq!(check.topology, Topology::ReplicaSet { name: "rs0".into() });
        assert_eq!(check.version, "7.0.14");
        assert_eq!(check.missing_collections, vec!["Items".to_string()]);
        assert_eq!(check.without_pre_images, vec!["orders".to_string()]);
        let filter = server.commands("listCollections")[0]
            .get_document("filter")
            .unwrap()
            .clone();
        assert_eq!(
            filter,
            doc! { "type": "collection", "name": { "$in": ["users", "orders", "Items"] } }
        );
        assert_eq!(cluster_time(&client).await.unwrap(), CLUSTER_TIME);
    })
    .await;
}

/// Every `_id` a scan returns.
async fn read_ids(scan: &mut RangeScan) -> Vec<i32> {
    let mut ids = Vec::new();
    while let Some(document) = scan.next_document().await.unwrap() {
        ids.push(document.get_i32("_id").unwrap());
    }
    ids
}

#[tokio::test]
async fn snapshot_ranges_cover_every_document_once_and_resume() {
    within_seconds(20, async {
        let server = ScriptedServer::start(Script {
            documents: (0..10).map(|i| doc! { "_id": i, "n": i * 10 }).collect(),
            ..Script::default()
        })
        .await;
        let client = client(&server).await;
        let users = client
            .database("engineering")
            .collection::<Document>("users");
        let ranges = split_id_ranges(&users, 3).await.unwrap();
        let described: Vec<String> = ranges.iter().map(IdRange::describe).collect();
        assert_eq!(
            described,
            vec![
                r#"(-∞, {"$numberInt":"3"})"#,
                r#"[{"$numberInt":"3"}, {"$numberInt":"6"})"#,
                r#"[{"$numberInt":"6"}, ∞)"#,
            ]
        );
        let mut all = Vec::new();
        for range in &ranges {
            let mut scan = scan_range(&users, range, 2, ScanConsistency::Majority)
                .await
                .unwrap();
            all.extend(read_ids(&mut scan).await);
        }
        assert_eq!(
            all,
            (0..10).collect::<Vec<_>>(),
            "every document once, in _id order"
        );
        let find = server.commands("find").pop().unwrap();
        assert_eq!(
            find.get_document("readConcern"),
            Ok(&doc! { "level": "majority" })
        );
        assert_eq!(find.get_document("hint"), Ok(&doc! { "_id": 1 }));
        assert_eq!(find.get_document("min"), Ok(&doc! { "_id": 6 }));

        // Interrupted after one document, the range resumes after it.
        let mut scan = scan_range(&users, &ranges[1], 2, ScanConsistency::Majority)
            .await
            .unwrap();
        let first = scan.next_document().await.unwrap().unwrap();
        assert_eq!(first.get_i32("_id"), Ok(3));
        let rest = scan.remaining();
        drop(scan);
        let mut resumed = scan_range(&users, &rest, 2, ScanConsistency::Majority)
            .await
            .unwrap();
        assert_eq!(read_ids(&mut resumed).await, vec![4, 5]);
        assert_eq!(resumed.last_id(), Some(&mongodb::bson::Bson::Int32(5)));

        // A snapshot scan reads at the given cluster time.
        let mut snapshot = scan_range(
            &users,
            &IdRange::all(),
            4,
            ScanConsistency::SnapshotAt(CLUSTER_TIME),
        )
        .await
        .unwrap();
        assert_eq!(read_ids(&mut snapshot).await.len(), 10);
        let find = server.commands("find").pop().unwrap();
        assert_eq!(
            find.get_document("readConcern"),
            Ok(&doc! { "level": "snapshot", "atClusterTime": CLUSTER_TIME })
        );
    })
    .await;
}

#[tokio::test]
async fn database_streams_filter_on_the_configured_collections() {
    within_seconds(20, async {
        let server = ScriptedServer::start(Script {
            events: inserts(1),
            ..Script::default()
        })
        .await;
        let client = client(&server).await;
        let mut config = ChangeStreamConfig::new("engineering");
        config.collections = vec!["users".into(), "orders".into()];
        config.start = StartAt::OperationTime(CLUSTER_TIME);
        config.max_await_time = Some(Duration::from_millis(250));
        let mut stream = MongoChangeStream::open(&client, &config).await.unwrap();
        stream.next_event().await.unwrap();
        let aggregate = server.commands("aggregate").pop().unwrap();
        assert_eq!(aggregate.get_i32("aggregate"), Ok(1), "a database stream");
        let pipeline = aggregate.get_array("pipeline").unwrap();
        assert_eq!(
            pipeline[1].as_document(),
            Some(&tributary_mongodb::collection_filter(&config.collections))
        );
        let stage = server.change_stream_stages().pop().unwrap();
        assert_eq!(
            stage.get_timestamp("startAtOperationTime"),
            Ok(CLUSTER_TIME)
        );
    })
    .await;
}
