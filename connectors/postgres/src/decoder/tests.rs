//! Decoder tests over pgoutput bytes built with pg_walstream's encoder.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use pg_walstream::{
    ColumnData, ColumnInfo, LogicalReplicationMessage as Msg, StreamingReplicationMessage,
    TupleData, encode_message_to_bytes, encode_streaming_message_to_bytes,
};

use super::*;
use crate::catalog::{BuiltinTypeResolver, PgTypeInfo};

fn plain(msg: Msg) -> Bytes {
    encode_message_to_bytes(&msg, 2).freeze()
}

fn streamed(msg: Msg, xid: u32) -> Bytes {
    encode_streaming_message_to_bytes(&StreamingReplicationMessage::new_streaming(msg, xid), 2)
        .freeze()
}

fn relation(oid: u32, name: &str) -> Msg {
    Msg::Relation {
        relation_id: oid,
        namespace: Arc::from("public"),
        relation_name: Arc::from(name),
        replica_identity: b'd',
        columns: vec![
            ColumnInfo::new(1, "id".into(), 20, -1),
            ColumnInfo::new(0, "amount".into(), 1700, (12 << 16 | 2) + 4),
            ColumnInfo::new(0, "body".into(), 25, -1),
        ],
    }
}

fn row(id: &str) -> TupleData {
    TupleData::new(vec![
        ColumnData::text(id.as_bytes().to_vec()),
        ColumnData::null(),
        ColumnData::unchanged(),
    ])
}

fn insert(oid: u32, id: &str) -> Msg {
    Msg::Insert {
        relation_id: oid,
        tuple: row(id),
    }
}

fn begin(xid: u32, final_lsn: u64) -> Msg {
    Msg::Begin {
        final_lsn,
        timestamp: 1_000_000,
        xid,
    }
}

fn commit(commit_lsn: u64, end_lsn: u64) -> Msg {
    Msg::Commit {
        flags: 0,
        commit_lsn,
        end_lsn,
        timestamp: 1_000_000,
    }
}

fn stream_start(xid: u32) -> Msg {
    Msg::StreamStart {
        xid,
        first_segment: false,
    }
}

fn stream_commit(xid: u32, commit_lsn: u64, end_lsn: u64) -> Msg {
    Msg::StreamCommit {
        xid,
        flags: 0,
        commit_lsn,
        end_lsn,
        timestamp: 2_000_000,
    }
}

fn abort(xid: u32, sub: u32) -> Msg {
    Msg::StreamAbort {
        xid,
        subtransaction_xid: sub,
        abort_lsn: None,
        abort_timestamp: None,
    }
}

fn decoder(dir: &std::path::Path, budget: usize) -> PgoutputDecoder {
    PgoutputDecoder::new(
        Box::new(BuiltinTypeResolver::default()),
        TransactionBuffer::new(dir, budget).unwrap(),
    )
}

/// Feed messages (wal_start = 1-based index) and replay in small steps.
async fn feed(dec: &mut PgoutputDecoder, msgs: Vec<Bytes>) -> Vec<PgEvent> {
    let mut out = Vec::new();
    for (i, m) in msgs.into_iter().enumerate() {
        dec.decode(Lsn(i as u64 + 1), m, &mut out).await.unwrap();
        while dec.replay_step(&mut out, 2).await.unwrap() {}
    }
    out
}

/// A compact trace: R:name, B:xid, I:id, U:id, D:id, T:n, C:xid, M:prefix.
fn trace(events: &[PgEvent]) -> Vec<String> {
    let id = |t: &Option<Tuple>| match t.as_ref().map(|t| &t.0[0]) {
        Some(Cell::Text(b)) => String::from_utf8(b.to_vec()).unwrap(),
        other => format!("{other:?}"),
    };
    events
        .iter()
        .map(|e| match e {
            PgEvent::Relation(r) => format!("R:{}", r.name),
            PgEvent::Begin { xid, .. } => format!("B:{xid}"),
            PgEvent::Commit { xid, .. } => format!("C:{xid}"),
            PgEvent::Change(c) => match c.kind {
                ChangeKind::Insert => format!("I:{}", id(&c.new)),
                ChangeKind::Update => format!("U:{}", id(&c.new)),
                ChangeKind::Delete => format!("D:{}", id(&c.old)),
                ChangeKind::Truncate => format!("T:{}", c.truncated.len()),
            },
            PgEvent::Message { prefix, .. } => format!("M:{prefix}"),
            PgEvent::Keepalive { wal_end } => format!("K:{wal_end}"),
        })
        .collect()
}

#[tokio::test]
async fn plain_transaction_passes_through_with_types_and_toast_markers() {
    let dir = tempfile::tempdir().unwrap();
    let mut dec = decoder(dir.path(), 1 << 20);
    let events = feed(
        &mut dec,
        vec![
            plain(begin(700, 0x500)),
            plain(relation(16384, "orders")),
            plain(insert(16384, "1")),
            plain(Msg::Update {
                relation_id: 16384,
                old_tuple: Some(TupleData::new(vec![
                    ColumnData::text(b"1".to_vec()),
                    ColumnData::null(),
                    ColumnData::null(),
                ])),
                new_tuple: row("2"),
                key_type: Some('K'),
            }),
            plain(Msg::Delete {
                relation_id: 16384,
                old_tuple: row("2"),
                key_type: 'O',
            }),
            plain(commit(0x500, 0x528)),
        ],
    )
    .await;
    assert_eq!(
        trace(&events),
        ["B:700", "R:orders", "I:1", "U:2", "D:2", "C:700"]
    );

    let PgEvent::Begin {
        commit_lsn,
        commit_ts_micros,
        ..
    } = &events[0]
    else {
        panic!()
    };
    assert_eq!(*commit_lsn, Lsn(0x500));
    assert_eq!(
        *commit_ts_micros, 946_684_801_000_000,
        "PG epoch converted to Unix epoch"
    );
    let PgEvent::Relation(rel) = &events[1] else {
        panic!()
    };
    assert_eq!(rel.columns[1].type_info.name, "numeric(12,2)");
    assert!(rel.columns[0].is_key && !rel.columns[1].is_key);
    let PgEvent::Change(ins) = &events[2] else {
        panic!()
    };
    assert!(Arc::ptr_eq(&ins.relation, rel));
    assert_eq!(
        ins.new.as_ref().unwrap().0,
        vec![
            Cell::Text(Bytes::from_static(b"1")),
            Cell::Null,
            Cell::Unchanged
        ]
    );
    assert_eq!(ins.lsn, Lsn(3));
    let PgEvent::Change(upd) = &events[3] else {
        panic!()
    };
    assert!(upd.old_is_key_only && upd.old.is_some());
    let PgEvent::Change(del) = &events[4] else {
        panic!()
    };
    assert!(!del.old_is_key_only);
    let PgEvent::Commit { end_lsn, .. } = &events[5] else {
        panic!()
    };
    assert_eq!(*end_lsn, Lsn(0x528));
    assert!(!dec.in_transaction());
}

#[tokio::test]
async fn streamed_transactions_are_buffered_interleaved_and_replayed_on_commit() {
    for budget in [1 << 20, 40] {
        let dir = tempfile::tempdir().unwrap();
        let mut dec = decoder(dir.path(), budget);
        let events = feed(
            &mut dec,
            vec![
                // chunk 1 of xid 100: relation + two inserts
                plain(stream_start(100)),
                streamed(relation(16384, "big"), 100),
                streamed(insert(16384, "a1"), 100),
                streamed(insert(16384, "a2"), 100),
                plain(Msg::StreamStop),
                // chunk of xid 300 (will abort entirely)
                plain(stream_start(300)),
                streamed(relation(16384, "big"), 300),
                streamed(insert(16384, "x1"), 300),
                plain(Msg::StreamStop),
                // an ordinary transaction commits in between
                plain(begin(200, 0x900)),
                plain(relation(16385, "small")),
                plain(insert(16385, "b1")),
                plain(commit(0x900, 0x928)),
                // chunk 2 of xid 100: a subtransaction 101 (aborted) and 102 (kept)
                plain(stream_start(100)),
                streamed(insert(16384, "s101"), 101),
                streamed(insert(16384, "s102"), 102),
                streamed(insert(16384, "a3"), 100),
                plain(Msg::StreamStop),
                plain(abort(100, 101)),
                plain(abort(300, 300)),
                plain(stream_commit(100, 0x1000, 0x1028)),
            ],
        )
        .await;
        assert_eq!(
            trace(&events),
            [
                "B:200", "R:small", "I:b1", "C:200", "B:100", "R:big", "I:a1", "I:a2", "I:s102",
                "I:a3", "C:100"
            ],
            "budget {budget}"
        );
        let PgEvent::Commit {
            commit_lsn,
            end_lsn,
            commit_ts_micros,
            ..
        } = events.last().unwrap()
        else {
            panic!()
        };
        assert_eq!((*commit_lsn, *end_lsn), (Lsn(0x1000), Lsn(0x1028)));
        assert_eq!(*commit_ts_micros, 946_684_802_000_000);
        // Buffered changes keep their own WAL position.
        let PgEvent::Change(a1) = &events[6] else {
            panic!()
        };
        assert_eq!(a1.lsn, Lsn(3));
        assert_eq!(dec.buffer().open_transactions(), 0);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no spill files left"
        );
        assert!(!dec.in_transaction());
    }
}

#[tokio::test]
async fn relation_of_an_aborted_subtransaction_still_describes_later_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut dec = decoder(dir.path(), 1 << 20);
    let events = feed(
        &mut dec,
        vec![
            plain(stream_start(10)),
            streamed(relation(1, "t"), 11),
            streamed(insert(1, "gone"), 11),
            streamed(insert(1, "kept"), 10),
            plain(Msg::StreamStop),
            plain(abort(10, 11)),
            plain(stream_commit(10, 0x50, 0x60)),
        ],
    )
    .await;
    assert_eq!(trace(&events), ["B:10", "R:t", "I:kept", "C:10"]);
}

#[tokio::test]
async fn truncate_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut dec = decoder(dir.path(), 1 << 20);
    let events = feed(
        &mut dec,
        vec![
            plain(Msg::Message {
                flags: 0,
                lsn: 0x10,
                prefix: "hb".into(),
                content: Bytes::from_static(b"x"),
            }),
            plain(begin(5, 0x40)),
            plain(relation(1, "a")),
            plain(relation(2, "b")),
            plain(Msg::Truncate {
                relation_ids: vec![1, 2],
                flags: 0,
            }),
            plain(Msg::Message {
                flags: 1,
                lsn: 0x30,
                prefix: "tx".into(),
                content: Bytes::from_static(b"y"),
            }),
            plain(commit(0x40, 0x48)),
            // a transactional message inside a streamed transaction is replayed in order
            plain(stream_start(6)),
            streamed(relation(1, "a"), 6),
            streamed(
                Msg::Message {
                    flags: 1,
                    lsn: 0x50,
                    prefix: "st".into(),
                    content: Bytes::from_static(b"z"),
                },
                6,
            ),
            streamed(insert(1, "r"), 6),
            plain(Msg::StreamStop),
            plain(stream_commit(6, 0x60, 0x68)),
        ],
    )
    .await;
    assert_eq!(
        trace(&events),
        [
            "M:hb", "B:5", "R:a", "R:b", "T:2", "M:tx", "C:5", "B:6", "R:a", "M:st", "I:r", "C:6"
        ]
    );
    let PgEvent::Message {
        transactional,
        content,
        ..
    } = &events[0]
    else {
        panic!()
    };
    assert!(!transactional);
    assert_eq!(content, &Bytes::from_static(b"x"));
    let PgEvent::Change(t) = &events[4] else {
        panic!()
    };
    assert_eq!(t.relation.name, "a");
}

#[tokio::test]
async fn big_streamed_transaction_spills_and_replays_in_bounded_steps() {
    let dir = tempfile::tempdir().unwrap();
    let budget = 4096;
    let mut dec = decoder(dir.path(), budget);
    let mut out = Vec::new();
    let mut lsn = 0u64;
    let mut next = |dec_msgs: Bytes| {
        lsn += 1;
        (Lsn(lsn), dec_msgs)
    };
    let mut msgs = vec![
        next(plain(stream_start(9))),
        next(streamed(relation(1, "t"), 9)),
    ];
    for i in 0..5000 {
        msgs.push(next(streamed(insert(1, &i.to_string()), 9)));
    }
    msgs.push(next(plain(Msg::StreamStop)));
    msgs.push(next(plain(stream_commit(9, 0x9000, 0x9028))));
    for (at, m) in msgs {
        dec.decode(at, m, &mut out).await.unwrap();
        assert!(dec.buffer().memory_used() <= budget);
    }
    assert!(dec.buffer().spilled_bytes() > 0);
    assert_eq!(trace(&out), ["B:9"]);
    let mut steps = 0;
    loop {
        let before = out.len();
        let more = dec.replay_step(&mut out, 1000).await.unwrap();
        assert!(out.len() - before <= 1001);
        steps += 1;
        if !more {
            break;
        }
    }
    assert!(steps >= 5);
    let t = trace(&out);
    assert_eq!(t.len(), 5003);
    assert_eq!(t[1], "R:t");
    for i in 0..5000 {
        assert_eq!(t[i + 2], format!("I:{i}"));
    }
    assert_eq!(t[5002], "C:9");
}

#[derive(Default)]
struct CountingResolver {
    inner: BuiltinTypeResolver,
    invalidated: Arc<Mutex<Vec<u32>>>,
    resolved: Arc<Mutex<Vec<u32>>>,
}

impl TypeResolver for CountingResolver {
    fn resolve(
        &mut self,
        oid: u32,
        typmod: i32,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<PgTypeInfo, PgError>> + Send + '_>>
    {
        self.resolved.lock().unwrap().push(oid);
        self.inner.resolve(oid, typmod)
    }
    fn invalidate(&mut self, oid: u32) {
        self.invalidated.lock().unwrap().push(oid);
    }
}

#[tokio::test]
async fn type_messages_invalidate_and_relations_resolve_every_column() {
    let dir = tempfile::tempdir().unwrap();
    let resolver = CountingResolver::default();
    let (inv, res) = (
        Arc::clone(&resolver.invalidated),
        Arc::clone(&resolver.resolved),
    );
    let mut dec = PgoutputDecoder::new(
        Box::new(resolver),
        TransactionBuffer::new(dir.path(), 1 << 20).unwrap(),
    );
    let events = feed(
        &mut dec,
        vec![
            plain(begin(1, 0x10)),
            plain(Msg::Type {
                type_id: 99_000,
                namespace: "public".into(),
                type_name: "mood".into(),
            }),
            plain(Msg::Origin {
                origin_lsn: 5,
                origin_name: "elsewhere".into(),
            }),
            plain(relation(1, "t")),
            plain(commit(0x10, 0x18)),
        ],
    )
    .await;
    assert_eq!(trace(&events), ["B:1", "R:t", "C:1"]);
    assert_eq!(*inv.lock().unwrap(), vec![99_000]);
    assert_eq!(*res.lock().unwrap(), vec![20, 1700, 25]);
}

#[tokio::test]
async fn protocol_violations_are_definite_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut dec = decoder(dir.path(), 1 << 20);
    let mut out = Vec::new();
    let err = dec
        .decode(Lsn(1), plain(insert(77, "1")), &mut out)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PgError::Protocol { .. }) && err.is_definite(),
        "{err}"
    );
    assert!(dec.decode(Lsn(1), Bytes::new(), &mut out).await.is_err());
    assert!(
        dec.decode(Lsn(1), plain(commit(1, 2)), &mut out)
            .await
            .is_err()
    );
    dec.decode(Lsn(1), plain(begin(1, 2)), &mut out)
        .await
        .unwrap();
    assert!(dec.in_transaction());
    assert!(
        dec.decode(Lsn(2), plain(begin(2, 3)), &mut out)
            .await
            .is_err()
    );
}
