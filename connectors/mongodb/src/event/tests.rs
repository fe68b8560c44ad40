//! One test per documented event type, each event built as
//! <https://www.mongodb.com/docs/manual/reference/change-events/> shows it
//! (the placeholders `<Resume Token>`, `<Timestamp>`, `<ISODate>` filled in
//! with values of their types), plus malformed input.

use mongodb::bson::{Binary, doc, oid::ObjectId, spec::BinarySubtype};

use super::*;

fn token(hex: &str) -> Document {
    doc! { "_data": hex }
}

fn cluster_time() -> Timestamp {
    Timestamp {
        time: 1_700_000_000,
        increment: 1,
    }
}

fn wall_time() -> DateTime {
    DateTime::from_millis(1_700_000_000_000)
}

fn oid(hex: &str) -> ObjectId {
    ObjectId::parse_str(hex).unwrap()
}

fn users() -> Option<Namespace> {
    Some(Namespace {
        db: "engineering".into(),
        coll: Some("users".into()),
    })
}

#[test]
fn insert() {
    let raw = doc! {
        "_id": token("8263F0A1B2000000012B022C0100296E5A1004"),
        "operationType": "insert",
        "clusterTime": cluster_time(),
        "wallTime": wall_time(),
        "collectionUUID": Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 16] },
        "ns": { "db": "engineering", "coll": "users" },
        "documentKey": {
            "userName": "alice123",
            "_id": oid("599af247bb69cd89961c986d"),
        },
        "fullDocument": {
            "_id": oid("599af247bb69cd89961c986d"),
            "userName": "alice123",
            "name": "Alice",
        },
    };
    let event = ChangeEvent::from_document(&raw).unwrap();
    assert_eq!(event.op, ChangeOp::Insert);
    assert_eq!(
        event.resume_token,
        token("8263F0A1B2000000012B022C0100296E5A1004")
    );
    assert_eq!(event.namespace, users());
    assert_eq!(
        event.key(),
        Some(&Bson::ObjectId(oid("599af247bb69cd89961c986d")))
    );
    assert_eq!(
        event.full_document.as_ref().unwrap().get_str("name"),
        Ok("Alice")
    );
    assert_eq!(event.cluster_time, Some(cluster_time()));
    assert_eq!(event.wall_time, Some(wall_time()));
    assert_eq!(event.update, None);
    assert_eq!(event.txn, None);
    assert_eq!(event.to, None);
}

#[test]
fn update_with_removed_fields_and_truncated_arrays() {
    let raw = doc! {
        "_id": token("8263F0A1B2000000022B022C0100296E5A1004"),
        "operationType": "update",
        "clusterTime": cluster_time(),
        "wallTime": wall_time(),
        "ns": { "db": "engineering", "coll": "users" },
        "documentKey": { "_id": oid("58a4eb4a30c75625e00d2820") },
        "updateDescription": {
            "updatedFields": { "email": "alice@10gen.com" },
            "removedFields": ["phoneNumber"],
            "truncatedArrays": [{ "field": "vacation_time", "newSize": 36 }],
            "disambiguatedPaths": {},
        },
    };
    let event = ChangeEvent::from_document(&raw).unwrap();
    assert_eq!(event.op, ChangeOp::Update);
    assert_eq!(event.full_document, None);
    let update = event.update.unwrap();
    assert_eq!(update.updated_fields, doc! { "email": "alice@10gen.com" });
    assert_eq!(update.removed_fields, vec!["phoneNumber".to_string()]);
    assert_eq!(
        update.truncated_arrays,
        vec![TruncatedArray {
            field: "vacation_time".into(),
            new_size: 36
        }]
    );
    assert!(update.disambiguated_paths.is_empty());
}

#[test]
fn update_with_disambiguated_paths_and_looked_up_document() {
    // A field named "0" inside a document, then an array index: the server
    // spells each component out (strings for names, integers for indexes).
    let raw = doc! {
        "_id": token("8263F0A1B2000000032B022C0100296E5A1004"),
        "operationType": "update",
        "clusterTime": cluster_time(),
        "wallTime": wall_time(),
        "ns": { "db": "engineering", "coll": "users" },
        "documentKey": { "_id": 1 },
        "updateDescription": {
            "updatedFields": { "a.0.b.1": 10 },
            "removedFields": [],
            "truncatedArrays": [],
            "disambiguatedPaths": { "a.0.b.1": ["a", "0", "b", 1] },
        },
        "fullDocument": { "_id": 1, "a": { "0": { "b": [5, 10] } } },
    };
    let event = ChangeEvent::from_document(&raw).unwrap();
    assert_eq!(event.key(), Some(&Bson::Int32(1)));
    let update = event.update.unwrap();
    assert_eq!(
        update.disambiguated_paths,
        doc! { "a.0.b.1": ["a", "0", "b", 1] }
    );
    assert!(event.full_document.is_some());
}

#[test]
fn update_whose_looked_up_document_is_gone() {
    let raw = doc! {
        "_id": token("8263F0A1B2000000042B022C0100296E5A1004"),
        "operationType": "update",
        "ns": { "db": "engineering", "coll": "users" },
        "documentKey": { "_id": 2 },
        "updateDescription": { "updatedFields": { "n": 1 }, "removedFields": [] },
        "fullDocument": null,
    };
    let event = ChangeEvent::from_document(&raw).unwrap();
    assert_eq!(event.full_document, None);
    assert!(event.update.unwrap().truncated_arrays.is_empty());
}

#[test]
fn replace() {
    let raw = doc! {
        "_id": token("8263F0A1B2000000052B022C0100296E5A1004"),
        "operationType": "replace",
        "clusterTime": cluster_time(),
        "wallTime": wall_time(),
        "ns": { "db": "engineering", "coll": "users" },
        "documentKey": { "_id": oid("599af247bb69cd89961c986d") },
        "fullDocument": {
            "_id": oid("599af247bb69cd89961c986d"),
            "userName": "alice123",
            "name": "Alice",
        },
    };
    let event = ChangeEvent::from_document(&raw).unwrap();
    assert_eq!(event.op, ChangeOp::Replace);
    assert_eq!(
        event.full_document.unwrap().get_str("userName"),
        Ok("alice123")
    );
}

#[test]
fn delete_with_pre_image() {
    let raw = doc! {
        "_id": token("8263F0A1B2000000062B022C0100296E5A1004"),
        "operationType": "delete",
        "clusterTime": cluster_time(),
        "wallTime": wall_time(),
        "ns": { "db": "engineering", "coll": "users" },
        "documentKey": { "_id": oid("599af247bb69cd89961c986d") },
        "fullDocumentBeforeChange": { "_id": oid("599af247bb69cd89961c986d"), "name": "Alice" },
    };
    let event = ChangeEvent::from_document(&raw).unwrap();
    assert_eq!(event.op, ChangeOp::Delete);
    assert_eq!(event.full_document, None);
    assert_eq!(
        event.full_document_before_change.unwrap().get_str("name"),
        Ok("Alice")
    );
}

#[test]
fn drop() {
    let raw = doc! {
        "_id": token("8263F0A1B2000000072B022C0100296E5A1004"),
        "operationType": "drop",
        "clusterTime": cluster_time(),
        "wallTime": wall_time(),
        "ns": { "db": "engineering", "coll": "users" },
    };
    let event = ChangeEvent::from_document(&raw).unwrap();
    assert_eq!(event.op, ChangeOp::Drop);
    assert_eq!(event.namespace, users());
    assert_eq!(event.document_key, None);
    assert_eq!(event.key(), None);
}

#[test]
fn rename() {
    let raw = doc! {
        "_id": token("8263F0A1B2000000082B022C0100296E5A1004"),
        "operationType": "rename",
        "clusterTime": cluster_time(),
        "wallTime": wall_time(),
        "ns": { "db": "engineering", "coll": "users" },
        "to": { "db": "engineering", "coll": "people" },
    };
    let event = ChangeEvent::from_document(&raw).unwrap();
    assert_eq!(event.op, ChangeOp::Rename);
    assert_eq!(event.namespace, users());
    assert_eq!(
        event.to,
        Some(Namespace {
            db: "engineering".into(),
            coll: Some("people".into())
        })
    );
}

#[test]
fn drop_database() {
    let raw = doc! {
        "_id": token("8263F0A1B2000000092B022C0100296E5A1004"),
        "operationType": "dropDatabase",
        "clusterTime": cluster_time(),
        "wallTime": wall_time(),
        "ns": { "db": "engineering" },
    };
    let event = ChangeEvent::from_document(&raw).unwrap();
    assert_eq!(event.op, ChangeOp::DropDatabase);
    assert_eq!(
        event.namespace,
        Some(Namespace {
            db: "engineering".into(),
            coll: None
        })
    );
}

#[test]
fn invalidate() {
    let raw = doc! {
        "_id": token("8263F0A1B20000000A2B022C0100296E5A1004"),
        "operationType": "invalidate",
        "clusterTime": cluster_time(),
        "wallTime": wall_time(),
    };
    let event = ChangeEvent::from_document(&raw).unwrap();
    assert_eq!(event.op, ChangeOp::Invalidate);
    assert_eq!(event.namespace, None);
}

#[test]
fn events_of_a_transaction_share_their_id() {
    let lsid = doc! {
        "id": Binary { subtype: BinarySubtype::Uuid, bytes: vec![0xab; 16] },
        "uid": Binary { subtype: BinarySubtype::Generic, bytes: vec![0xcd; 32] },
    };
    let event = |hex: &str, id: i32| {
        doc! {
            "_id": token(hex),
            "operationType": "insert",
            "clusterTime": cluster_time(),
            "wallTime": wall_time(),
            "lsid": lsid.clone(),
            "txnNumber": 12_i64,
            "ns": { "db": "engineering", "coll": "users" },
            "documentKey": { "_id": id },
            "fullDocument": { "_id": id },
        }
    };
    let first = ChangeEvent::from_document(&event("82A1", 1)).unwrap();
    let second = ChangeEvent::from_document(&event("82A2", 2)).unwrap();
    let txn = first.txn.clone().unwrap();
    assert_eq!(txn.txn_number, 12);
    assert_eq!(txn.lsid, lsid);
    assert_eq!(first.txn, second.txn);
    assert_ne!(first.resume_token, second.resume_token);
}

#[test]
fn expanded_events_are_other() {
    let raw = doc! {
        "_id": token("82B1"),
        "operationType": "createIndexes",
        "ns": { "db": "engineering", "coll": "users" },
        "operationDescription": { "indexes": [{ "v": 2, "key": { "name": 1 }, "name": "name_1" }] },
    };
    let event = ChangeEvent::from_document(&raw).unwrap();
    assert_eq!(event.op, ChangeOp::Other("createIndexes".into()));
}

#[test]
fn missing_resume_token_is_an_error() {
    let raw = doc! { "operationType": "insert", "ns": { "db": "d", "coll": "c" } };
    let error = ChangeEvent::from_document(&raw).unwrap_err();
    assert!(matches!(error, MongoError::Decode { .. }));
    assert!(!error.is_transient());
    let text = error.to_string();
    assert!(text.contains("no _id (resume token)"), "{text}");
    let huge = doc! { "operationType": "insert", "fullDocument": { "blob": "x".repeat(100_000) } };
    let text = ChangeEvent::from_document(&huge).unwrap_err().to_string();
    assert!(
        text.len() < 1_000 && text.ends_with('…'),
        "{} chars",
        text.len()
    );
}

#[test]
fn unknown_operation_types_are_errors_naming_the_type_and_token() {
    let raw = doc! { "_id": token("82C1"), "operationType": "explode" };
    let text = ChangeEvent::from_document(&raw).unwrap_err().to_string();
    assert!(
        text.contains("unknown operationType \"explode\"") && text.contains(r#"{"_data":"82C1"}"#),
        "{text}"
    );
    let missing = ChangeEvent::from_document(&doc! { "_id": token("82C2") })
        .unwrap_err()
        .to_string();
    assert!(missing.contains("no operationType"), "{missing}");
}

#[test]
fn mistyped_fields_are_errors_naming_the_field() {
    let cases = [
        (
            doc! { "_id": "not-a-document", "operationType": "insert" },
            "_id (resume token) is string",
        ),
        (
            doc! { "_id": token("82D1"), "operationType": 5 },
            "operationType is int",
        ),
        (
            doc! { "_id": token("82D2"), "operationType": "insert", "ns": { "coll": "c" } },
            "ns has no db",
        ),
        (
            doc! { "_id": token("82D3"), "operationType": "insert", "fullDocument": "x" },
            "fullDocument is string, not a document",
        ),
        (
            doc! { "_id": token("82D4"), "operationType": "insert", "clusterTime": 1 },
            "clusterTime is int, not a timestamp",
        ),
        (
            doc! { "_id": token("82D5"), "operationType": "update", "updateDescription": { "removedFields": [1] } },
            "an item of removedFields is int",
        ),
        (
            doc! { "_id": token("82D6"), "operationType": "update", "updateDescription": { "truncatedArrays": [{ "field": "a", "newSize": -1 }] } },
            "non-negative integer newSize",
        ),
    ];
    for (raw, expected) in cases {
        let text = ChangeEvent::from_document(&raw).unwrap_err().to_string();
        assert!(text.contains(expected), "{expected:?} not in {text}");
    }
}
