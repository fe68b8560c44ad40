//! Snapshot edge cases:
//!
//! - a table dropped while an incremental snapshot copies it (between its
//!   many small chunks) is skipped with a warning; the tables after it are
//!   still copied and the daemon keeps streaming;
//! - a table dropped (DDL waiting for the copy's locks) while the *initial*
//!   copy is running must not stall the copy;
//! - `snapshot = "initial_only"`: the daemon copies, exits 0 by itself, leaves
//!   no replication slot behind, and the lake equals the source;
//! - `table_snapshot = { "public.x" = "never" }`: x's rows that predate the
//!   slot are not copied, the other tables' are.

use std::time::{Duration, Instant};

use crate::harness::daemon::{DaemonProcess, TestConfig, wait_caught_up, wait_streaming};
use crate::harness::lake;
use crate::harness::postgres::PgCluster;
use crate::harness::snapshot::{
    Shape, ShapedTable, activity_report, create_tables, done_tables, lake_keys, log_lines_with,
    op_counts, pending_entry, pending_tables, request_snapshot_cli, snapshot_state,
    wait_first_manifest, wait_snapshots_done,
};
use crate::harness::truth::assert_lake_matches_source;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_dropped_during_incremental_snapshot_is_skipped() {
    let db = PgCluster::shared()
        .create_database("snapshot_edge_dropped")
        .await;
    let keep_a = ShapedTable::new("keep_a", Shape::Mixed);
    let doomed = ShapedTable::new("doomed", Shape::Mixed);
    let keep_z = ShapedTable::new("keep_z", Shape::Composite);
    create_tables(
        &db,
        &[(&keep_a, 6_000), (&doomed, 150_000), (&keep_z, 6_000)],
    )
    .await;
    let names = [keep_a.qualified(), doomed.qualified(), keep_z.qualified()];
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut config = TestConfig::new(&db, "app", &names);
    config.source_extra.push("snapshot = \"never\"".into());
    config
        .source_extra
        .push("snapshot_chunk_rows = 1000".into());
    config.flush_interval_ms = 100;
    let mut daemon = DaemonProcess::start(&config);
    wait_streaming(&db, &config, &mut daemon).await;
    wait_caught_up(
        &db,
        &config.lake,
        &config.source,
        Duration::from_secs(60),
        &mut daemon,
    )
    .await;

    // keep_a, then doomed (150 chunks), then keep_z.
    request_snapshot_cli(&config.root.join("tributary.toml"), "app", &names);
    // Drop it once some of its chunks are durable.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let state = snapshot_state(&config.lake, &config.source);
        let progressed = state
            .as_ref()
            .and_then(|s| pending_entry(s, &doomed.qualified()))
            .is_some_and(|p| !p.get("cursor").is_none_or(|c| c.is_null()));
        if progressed {
            eprintln!("dropping public.doomed at {}", state.unwrap());
            break;
        }
        if state
            .as_ref()
            .is_some_and(|s| done_tables(s).contains(&doomed.qualified()))
        {
            panic!("public.doomed was copied completely before the test could drop it");
        }
        daemon.assert_running("waiting for public.doomed's snapshot to progress");
        assert!(
            Instant::now() < deadline,
            "public.doomed's snapshot made no durable progress within 180 s: {state:?}\n{}",
            activity_report(&db).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    db.execute("DROP TABLE doomed").await;

    wait_snapshots_done(
        &db,
        &config,
        &[&keep_a.qualified(), &keep_z.qualified()],
        Duration::from_secs(120),
        &mut daemon,
    )
    .await;
    let state = snapshot_state(&config.lake, &config.source).expect("snapshot state");
    assert!(
        !done_tables(&state).contains(&doomed.qualified())
            && !pending_tables(&state).contains(&doomed.qualified()),
        "a dropped table must end up neither done nor pending: {state}"
    );
    let skipped = log_lines_with(&daemon.stderr_path, &["skipped", "doomed"]);
    assert!(
        !skipped.is_empty(),
        "no warning line mentioning `skipped` and the table\n{}",
        daemon.log_text(80)
    );
    eprintln!("warning: {}", skipped[0]);

    // Still streaming.
    daemon.assert_running("after the dropped table was skipped");
    db.execute(&keep_a.insert_sql(100_000, 100_020, 5)).await;
    db.execute(
        "UPDATE keep_z SET qty = qty + 1 WHERE n % 10 = 0; DELETE FROM keep_a WHERE id % 7 = 0",
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
    assert_lake_matches_source(
        &db,
        &config.lake,
        &config.source,
        &[&keep_a.qualified(), &keep_z.qualified()],
    )
    .await;
    daemon.stop_gracefully(Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_dropped_during_initial_copy_does_not_stall_it() {
    let db = PgCluster::shared()
        .create_database("snapshot_edge_drop_initial")
        .await;
    // Tables are copied in name order: `a_big` first, `z_doomed` last.
    let a_big = ShapedTable::new("a_big", Shape::Mixed);
    let z_doomed = ShapedTable::new("z_doomed", Shape::Mixed);
    create_tables(&db, &[(&a_big, 150_000), (&z_doomed, 40_000)]).await;
    let names = [a_big.qualified(), z_doomed.qualified()];
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut config = TestConfig::new(&db, "app", &names);
    config
        .source_extra
        .push("snapshot_chunk_rows = 5000".into());
    config.source_extra.push("snapshot_workers = 2".into());
    config.flush_interval_ms = 100;
    let mut daemon = DaemonProcess::start(&config);
    wait_first_manifest(&db, &config, Duration::from_secs(120), &mut daemon).await;
    let state = snapshot_state(&config.lake, &config.source);
    eprintln!("dropping public.z_doomed during the initial copy; progress: {state:?}");
    // The DROP waits for the copy's locks; it runs on its own connection.
    let drop_db = db.clone();
    let dropper = tokio::spawn(async move { drop_db.execute("DROP TABLE z_doomed").await });

    // The copy must finish (the DROP then goes through). A copy that makes
    // no durable progress for 20 s while the DROP waits is stalled: fail at
    // once, because the waiting DROP holds a transaction id, and every
    // logical slot creation in the cluster (other tests included) waits for
    // it.
    let started = Instant::now();
    let mut last_change = Instant::now();
    let mut last_state = snapshot_state(&config.lake, &config.source);
    loop {
        let state = snapshot_state(&config.lake, &config.source);
        if let Some(s) = &state {
            if pending_tables(s).is_empty() && done_tables(s).contains(&a_big.qualified()) {
                eprintln!(
                    "initial copy done {:.1}s after the DROP was issued",
                    started.elapsed().as_secs_f64()
                );
                break;
            }
        }
        if state != last_state {
            last_state = state.clone();
            last_change = Instant::now();
        }
        daemon.assert_running("during the initial copy");
        if last_change.elapsed() > Duration::from_secs(20)
            || started.elapsed() > Duration::from_secs(180)
        {
            panic!(
                "the initial copy stalled while DROP TABLE z_doomed waited for its locks: no durable progress for {:.0}s \
                 ({:.0}s since the DROP)\nsnapshot state: {}\n{}\n{}",
                last_change.elapsed().as_secs_f64(),
                started.elapsed().as_secs_f64(),
                state.map(|s| s.to_string()).unwrap_or_default(),
                activity_report(&db).await,
                daemon.log_text(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::timeout(Duration::from_secs(60), dropper)
        .await
        .unwrap_or_else(|_| panic!("DROP TABLE z_doomed still waits 60 s after the copy finished"))
        .expect("DROP TABLE task");
    daemon.assert_running("after the initial copy");
    db.execute(&a_big.insert_sql(1_000_000, 1_000_010, 2)).await;
    db.execute("DELETE FROM a_big WHERE id % 1000 = 0").await;
    wait_caught_up(
        &db,
        &config.lake,
        &config.source,
        Duration::from_secs(120),
        &mut daemon,
    )
    .await;
    assert_lake_matches_source(&db, &config.lake, &config.source, &[&a_big.qualified()]).await;
    daemon.stop_gracefully(Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_only_copies_and_exits() {
    let db = PgCluster::shared()
        .create_database("snapshot_edge_initial_only")
        .await;
    let mixed = ShapedTable::new("mixed", Shape::Mixed);
    let loose = ShapedTable::new("loose", Shape::Keyless);
    let pairs = ShapedTable::new("pairs", Shape::Composite);
    let void = ShapedTable::new("void", Shape::Empty);
    create_tables(
        &db,
        &[
            (&mixed, 30_000),
            (&loose, 5_000),
            (&pairs, 5_000),
            (&void, 0),
        ],
    )
    .await;
    let tables = [&mixed, &loose, &pairs, &void];
    let names: Vec<String> = tables.iter().map(|t| t.qualified()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut config = TestConfig::new(&db, "app", &names);
    config
        .source_extra
        .push("snapshot = \"initial_only\"".into());
    config
        .source_extra
        .push("snapshot_chunk_rows = 5000".into());

    let mut daemon = DaemonProcess::start(&config);
    let status = daemon.wait(Duration::from_secs(180));
    assert!(
        status.success(),
        "with snapshot = \"initial_only\" the daemon must exit 0 after the copy; it exited with {status}\n{}",
        daemon.log_text(80)
    );
    let slots = db
        .query_text(&format!(
            "SELECT slot_name FROM pg_replication_slots WHERE database = '{}'",
            db.name
        ))
        .await;
    assert!(
        slots.is_empty(),
        "initial_only left replication slot(s) behind: {slots:?}"
    );
    let state = snapshot_state(&config.lake, &config.source).unwrap_or_else(|| {
        panic!(
            "no snapshot state in the checkpoint\n{}",
            daemon.log_text(60)
        )
    });
    let done = done_tables(&state);
    assert!(
        pending_tables(&state).is_empty() && names.iter().all(|n| done.contains(&n.to_string())),
        "after initial_only every table must be done: {state}"
    );
    assert_lake_matches_source(&db, &config.lake, &config.source, &names).await;
    lake::assert_manifests_sound(&config.lake, &config.source);
    // Nothing but the copy: every row is `r`, each once.
    for table in tables {
        let counts = op_counts(&config.lake, &config.source, &table.qualified());
        let source_rows = table.count(&db).await as usize;
        assert!(
            counts.distinct("r") == source_rows
                && counts.total.keys().all(|op| op == "r")
                && counts.total("r") == source_rows,
            "{}: the source has {source_rows} rows; the lake has {counts:?}",
            table.qualified()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_table_never_override_skips_only_that_table() {
    let db = PgCluster::shared()
        .create_database("snapshot_edge_override")
        .await;
    const ROWS: i64 = 5_000;
    let x = ShapedTable::new("x", Shape::Mixed);
    let y = ShapedTable::new("y", Shape::Mixed);
    create_tables(&db, &[(&x, ROWS), (&y, ROWS)]).await;
    let names = [x.qualified(), y.qualified()];
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut config = TestConfig::new(&db, "app", &names);
    config
        .source_extra
        .push("table_snapshot = { \"public.x\" = \"never\" }".into());
    config
        .source_extra
        .push("snapshot_chunk_rows = 2000".into());

    let mut daemon = DaemonProcess::start(&config);
    wait_snapshots_done(
        &db,
        &config,
        &[&y.qualified()],
        Duration::from_secs(120),
        &mut daemon,
    )
    .await;
    wait_streaming(&db, &config, &mut daemon).await;
    // New rows in both, through the stream.
    db.execute(&x.insert_sql(ROWS + 1, ROWS + 40, 1)).await;
    db.execute(&y.insert_sql(ROWS + 1, ROWS + 40, 1)).await;
    wait_caught_up(
        &db,
        &config.lake,
        &config.source,
        Duration::from_secs(120),
        &mut daemon,
    )
    .await;
    let x_keys = lake_keys(&config.lake, &config.source, &x.qualified(), "id")
        .await
        .unwrap_or_default();
    let expected: std::collections::BTreeSet<i64> = (ROWS + 1..=ROWS + 40).collect();
    assert_eq!(
        x_keys, expected,
        "public.x (snapshot \"never\") must hold exactly the rows streamed after the slot"
    );
    assert_eq!(
        op_counts(&config.lake, &config.source, &x.qualified()).distinct("r"),
        0,
        "public.x got `r` rows"
    );
    assert_lake_matches_source(&db, &config.lake, &config.source, &[&y.qualified()]).await;
    // Once x's old rows are deleted at the source, both tables match.
    db.execute(&format!("DELETE FROM x WHERE id <= {ROWS}"))
        .await;
    wait_caught_up(
        &db,
        &config.lake,
        &config.source,
        Duration::from_secs(120),
        &mut daemon,
    )
    .await;
    assert_lake_matches_source(&db, &config.lake, &config.source, &names).await;
    daemon.stop_gracefully(Duration::from_secs(60));
}
