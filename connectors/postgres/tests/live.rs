//! Smoke test against a real PostgreSQL (14+, wal_level=logical). Skipped unless
//! `TRIBUTARY_PG_TEST_CONNINFO` is set, e.g. `host=127.0.0.1 port=5432 user=postgres dbname=postgres`.
//! Set `logical_decoding_work_mem=64kB` on the server to exercise streamed transactions.

use std::sync::Arc;
use std::time::Duration;

use tributary_postgres::catalog::{self, PgTypeKind};
use tributary_postgres::preflight::{PreflightConfig, preflight};
use tributary_postgres::replication::connect_catalog;
use tributary_postgres::slot::{self, PublicationTables};
use tributary_postgres::{
    Cell, ChangeKind, Lsn, PgError, PgEvent, PgReplication, PgReplicationConfig,
};

async fn next(repl: &mut PgReplication) -> PgEvent {
    tokio::time::timeout(Duration::from_secs(30), repl.next())
        .await
        .expect("event within 30 s")
        .expect("event")
}

/// Events of the next committed transaction (Relation events included), skipping keepalives/messages before it.
async fn next_txn(repl: &mut PgReplication) -> Vec<PgEvent> {
    let mut out = Vec::new();
    loop {
        let e = next(repl).await;
        let done = matches!(e, PgEvent::Commit { .. });
        if out.is_empty() && !matches!(e, PgEvent::Begin { .. } | PgEvent::Relation(_)) {
            continue;
        }
        out.push(e);
        if done {
            return out;
        }
    }
}

fn changes(events: &[PgEvent]) -> Vec<&tributary_postgres::PgChange> {
    events
        .iter()
        .filter_map(|e| {
            if let PgEvent::Change(c) = e {
                Some(c)
            } else {
                None
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_end_to_end() {
    let Ok(conninfo) = std::env::var("TRIBUTARY_PG_TEST_CONNINFO") else {
        eprintln!("TRIBUTARY_PG_TEST_CONNINFO not set; skipping");
        return;
    };
    let client = Arc::new(connect_catalog(&conninfo).await.unwrap());
    client
        .batch_execute(
            "DROP SCHEMA IF EXISTS tp CASCADE; CREATE SCHEMA tp;
             CREATE DOMAIN tp.money2 AS numeric(10,2);
             CREATE TYPE tp.mood AS ENUM ('ok', 'meh');
             CREATE TABLE tp.t1 (id bigint PRIMARY KEY, body text, amount numeric(12,2), m tp.money2,
                                 moods tp.mood[], ms tp.money2[], big text);
             ALTER TABLE tp.t1 ALTER COLUMN big SET STORAGE EXTERNAL;
             CREATE TABLE tp.t2 (a int, b text);
             DROP PUBLICATION IF EXISTS tp_pub;",
        )
        .await
        .unwrap();
    let _ = slot::drop_slot(&client, "tp_slot").await;
    let tables =
        PublicationTables::Tables(vec![("tp".into(), "t1".into()), ("tp".into(), "t2".into())]);

    // preflight finds the table without identity and the missing publication
    let cfg = PreflightConfig {
        slot: "tp_slot".into(),
        publication: "tp_pub".into(),
        tables: tables.clone(),
        manage_publication: false,
        user: "postgres".into(),
    };
    let problems = preflight(&client, &cfg).await.unwrap();
    eprintln!("{problems:#?}");
    assert!(
        problems
            .iter()
            .any(|p| p.what.contains("tp.t2") && p.fix.contains("REPLICA IDENTITY FULL"))
    );
    assert!(problems.iter().any(|p| {
        p.fix
            .starts_with("CREATE PUBLICATION tp_pub FOR TABLE tp.t1, tp.t2")
    }));
    client
        .batch_execute("ALTER TABLE tp.t2 REPLICA IDENTITY FULL")
        .await
        .unwrap();

    let err = slot::ensure_publication(&client, "tp_pub", &tables, false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("CREATE PUBLICATION"), "{err}");
    slot::ensure_publication(
        &client,
        "tp_pub",
        &PublicationTables::Tables(vec![("tp".into(), "t1".into())]),
        true,
    )
    .await
    .unwrap();
    let err = slot::ensure_publication(&client, "tp_pub", &tables, false)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("ALTER PUBLICATION tp_pub ADD TABLE tp.t2"),
        "{err}"
    );
    slot::ensure_publication(&client, "tp_pub", &tables, true)
        .await
        .unwrap();
    assert_eq!(
        catalog::publication_tables(&client, "tp_pub")
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        preflight(
            &client,
            &PreflightConfig {
                manage_publication: true,
                ..cfg.clone()
            }
        )
        .await
        .unwrap()
        .is_empty()
    );

    let ident = catalog::table_identity(&client, "tp", "t1").await.unwrap();
    assert_eq!(ident.primary_key, vec!["id"]);
    assert!(ident.toastable_columns.contains(&"big".to_string()));
    let oid = catalog::table_oid(&client, "tp", "t1")
        .await
        .unwrap()
        .unwrap();
    let columns = catalog::column_details(&client, oid).await.unwrap();
    assert_eq!((columns[0].name.as_str(), columns[0].attnum), ("id", 1));
    assert!(!columns[0].nullable);

    let state = slot::ensure_slot(&client, "tp_slot").await.unwrap();
    assert!(state.exists && state.active_pid.is_none() && state.confirmed_flush_lsn.is_some());

    let spill = tempfile::tempdir().unwrap();
    let mut rcfg = PgReplicationConfig::new(&conninfo, "tp_slot", "tp_pub", spill.path());
    rcfg.memory_budget_bytes = 64 * 1024;
    let mut repl = PgReplication::start(rcfg.clone(), Some(Arc::clone(&client)))
        .await
        .unwrap();

    // a second consumer on the same slot is refused with the definite error
    let err = PgReplication::start(rcfg.clone(), None).await.unwrap_err();
    assert!(matches!(err, PgError::SlotInUse { .. }), "{err:?}");
    assert!(err.is_definite());

    for sql in [
        "INSERT INTO tp.t1 VALUES (1, 'one', 12.5, 3.14, '{ok,meh}', '{1.5}', repeat('x', 10000))",
        "UPDATE tp.t1 SET body = 'uno' WHERE id = 1",
        "INSERT INTO tp.t2 VALUES (1, 'a')",
        "DELETE FROM tp.t2",
        "SELECT pg_logical_emit_message(false, 'tp', 'hello')",
        "BEGIN;
           INSERT INTO tp.t1 (id, body) SELECT g, 'bulk' FROM generate_series(100, 20099) g;
           SAVEPOINT s1;
           INSERT INTO tp.t1 (id, body) SELECT g, 'rolled back' FROM generate_series(30000, 34999) g;
           ROLLBACK TO SAVEPOINT s1;
           INSERT INTO tp.t1 (id, body) VALUES (50000, 'after savepoint');
           SELECT pg_logical_emit_message(true, 'tp', 'in txn');
         COMMIT;",
        "TRUNCATE tp.t2",
    ] {
        client.batch_execute(sql).await.unwrap();
    }

    let t = next_txn(&mut repl).await;
    let PgEvent::Relation(rel) = t
        .iter()
        .find(|e| matches!(e, PgEvent::Relation(_)))
        .unwrap()
    else {
        panic!()
    };
    let names: Vec<_> = rel
        .columns
        .iter()
        .map(|c| c.type_info.name.as_str())
        .collect();
    assert_eq!(names[..4], ["bigint", "text", "numeric(12,2)", "tp.money2"]);
    assert!(
        matches!(&rel.columns[3].type_info.kind, PgTypeKind::Domain { base } if base.name == "numeric(10,2)")
    );
    assert!(
        matches!(&rel.columns[4].type_info.kind, PgTypeKind::Array { element } if element.kind == PgTypeKind::Enum)
    );
    assert!(
        matches!(&rel.columns[5].type_info.kind, PgTypeKind::Array { element } if matches!(element.kind, PgTypeKind::Domain { .. }))
    );
    assert_eq!(changes(&t).len(), 1);

    let t = next_txn(&mut repl).await;
    let upd = changes(&t)[0];
    assert_eq!(upd.kind, ChangeKind::Update);
    assert_eq!(
        upd.new.as_ref().unwrap().0[6],
        Cell::Unchanged,
        "unchanged TOAST marker survives"
    );

    let t = next_txn(&mut repl).await;
    assert_eq!(changes(&t)[0].kind, ChangeKind::Insert);
    let t = next_txn(&mut repl).await;
    let del = changes(&t)[0];
    assert!(del.kind == ChangeKind::Delete && !del.old_is_key_only);

    // the non-transactional message, then the big streamed transaction
    loop {
        match next(&mut repl).await {
            PgEvent::Message {
                transactional: false,
                prefix,
                ..
            } => {
                assert_eq!(prefix, "tp");
                break;
            }
            PgEvent::Keepalive { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let t = next_txn(&mut repl).await;
    let ch = changes(&t);
    assert_eq!(ch.len(), 20001, "savepoint rows rolled back");
    assert!(ch.iter().all(|c| c.kind == ChangeKind::Insert));
    assert!(t.iter().any(|e| matches!(
        e,
        PgEvent::Message {
            transactional: true,
            ..
        }
    )));
    let Some(Cell::Text(last)) = ch.last().unwrap().new.as_ref().map(|n| n.0[1].clone()) else {
        panic!()
    };
    assert_eq!(&last[..], b"after savepoint");
    let PgEvent::Commit { end_lsn, .. } = t.last().unwrap() else {
        panic!()
    };
    let big_end = *end_lsn;
    assert!(std::fs::read_dir(spill.path()).unwrap().count() == 0);

    let t = next_txn(&mut repl).await;
    assert_eq!(changes(&t)[0].kind, ChangeKind::Truncate);

    // ack reaches the server promptly and never exceeds what we acked
    repl.ack(big_end);
    let mut confirmed = Lsn::ZERO;
    for _ in 0..50 {
        confirmed = slot::slot_state(&client, "tp_slot")
            .await
            .unwrap()
            .confirmed_flush_lsn
            .unwrap();
        if confirmed >= big_end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(confirmed, big_end);

    // idle: a keepalive arrives
    loop {
        if let PgEvent::Keepalive { wal_end } = next(&mut repl).await {
            assert!(wal_end >= big_end);
            break;
        }
    }
    repl.shutdown().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let row = client
        .query_one("SELECT stream_txns, stream_count FROM pg_stat_replication_slots WHERE slot_name = 'tp_slot'", &[])
        .await
        .unwrap();
    eprintln!(
        "streamed transactions: {}, chunks: {}",
        row.get::<_, i64>(0),
        row.get::<_, i64>(1)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let state = slot::slot_state(&client, "tp_slot").await.unwrap();
    assert_eq!(state.confirmed_flush_lsn, Some(big_end));
    for _ in 0..50 {
        if slot::drop_slot(&client, "tp_slot").await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Throughput check: `TRIBUTARY_PG_BENCH_ROWS=1000000 cargo test --release -p tributary-postgres --test live bench -- --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_drain() {
    let (Ok(conninfo), Ok(rows)) = (
        std::env::var("TRIBUTARY_PG_TEST_CONNINFO"),
        std::env::var("TRIBUTARY_PG_BENCH_ROWS"),
    ) else {
        eprintln!("TRIBUTARY_PG_TEST_CONNINFO / TRIBUTARY_PG_BENCH_ROWS not set; skipping");
        return;
    };
    let rows: i64 = rows.parse().unwrap();
    let client = Arc::new(connect_catalog(&conninfo).await.unwrap());
    client
        .batch_execute(
            "DROP TABLE IF EXISTS public.bench; CREATE TABLE public.bench (id bigint PRIMARY KEY, a text, b int, c timestamptz);
             DROP PUBLICATION IF EXISTS bench_pub;",
        )
        .await
        .unwrap();
    let _ = slot::drop_slot(&client, "bench_slot").await;
    slot::ensure_publication(
        &client,
        "bench_pub",
        &PublicationTables::Tables(vec![("public".into(), "bench".into())]),
        true,
    )
    .await
    .unwrap();
    slot::ensure_slot(&client, "bench_slot").await.unwrap();
    for start in (0..rows).step_by(1000) {
        client
            .batch_execute(&format!(
                "INSERT INTO public.bench SELECT g, md5(g::text), g::int, now() FROM generate_series({start}, {}) g",
                start + 999
            ))
            .await
            .unwrap();
    }
    let spill = tempfile::tempdir().unwrap();
    let cfg = PgReplicationConfig::new(&conninfo, "bench_slot", "bench_pub", spill.path());
    let t0 = std::time::Instant::now();
    let mut repl = PgReplication::start(cfg, Some(Arc::clone(&client)))
        .await
        .unwrap();
    let mut seen = 0i64;
    while seen < rows {
        for e in repl.next_batch().await.unwrap() {
            match e {
                PgEvent::Change(_) => seen += 1,
                PgEvent::Commit { end_lsn, xid, .. } if xid % 200 == 0 => repl.ack(end_lsn),
                _ => {}
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let pid: i32 = client
        .query_one(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'bench_slot'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let cpu = |path: String| -> f64 {
        let stat = std::fs::read_to_string(path).unwrap_or_default();
        let f: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        (f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0))
            / 100.0
    };
    eprintln!(
        "{seen} rows in {secs:.2} s = {:.0} rows/s; walsender cpu {:.2} s, client cpu {:.2} s",
        seen as f64 / secs,
        cpu(format!("/proc/{pid}/stat")),
        cpu("/proc/self/stat".into())
    );
    repl.shutdown().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = slot::drop_slot(&client, "bench_slot").await;
}
