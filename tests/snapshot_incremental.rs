//! Incremental snapshots (DBLog watermarks) while the stream keeps running
//! and a churn updates, deletes and inserts the very keys being copied:
//!
//! - requested with `tributary snapshot` on a source configured with
//!   `snapshot = "never"` (so the rows that predate the slot are, at first,
//!   provably not in the lake);
//! - requested by an INSERT into the `signal_table` (whose rows never reach
//!   the lake);
//! - triggered by adding a table to `tables` and restarting the daemon.
//!
//! Each time: the snapshot finishes, no deleted row is resurrected, the lake
//! equals the source (and DuckDB's merge equals ours).

use std::time::Duration;

use crate::harness::daemon::{DaemonProcess, TestConfig, wait_caught_up, wait_streaming};
use crate::harness::lake;
use crate::harness::postgres::{PgCluster, TestDb};
use crate::harness::snapshot::{
    Churn, Shape, ShapedTable, assert_no_resurrection, create_tables, done_tables, lake_keys,
    op_counts, request_snapshot_cli, snapshot_state, wait_snapshots_done,
};
use crate::harness::truth::assert_lake_matches_source;

/// Asserts none of `tables` is done or pending in the checkpoint yet.
fn assert_not_snapshotted(config: &TestConfig, tables: &[&ShapedTable]) {
    let state = snapshot_state(&config.lake, &config.source);
    if let Some(state) = state {
        let done = done_tables(&state);
        for table in tables {
            assert!(
                !done.contains(&table.qualified()),
                "{} is already listed as snapshotted before any snapshot was requested: {state}",
                table.qualified()
            );
        }
    }
}

/// The pre-existing rows (ids 1..=rows) are not in the lake yet: the lake
/// has none of them (the daemon started with `snapshot = "never"`).
async fn assert_preexisting_rows_absent(config: &TestConfig, table: &ShapedTable, rows: i64) {
    let keys = lake_keys(
        &config.lake,
        &config.source,
        &table.qualified(),
        table.id_column(),
    )
    .await
    .unwrap_or_default();
    let old: Vec<&i64> = keys.iter().filter(|k| **k <= rows).take(5).collect();
    assert!(
        old.is_empty(),
        "with snapshot = \"never\", rows of {} that predate the slot are in the lake: {old:?}",
        table.qualified()
    );
}

async fn start_never_daemon(db: &TestDb, config: &TestConfig) -> DaemonProcess {
    let mut daemon = DaemonProcess::start(config);
    wait_streaming(db, config, &mut daemon).await;
    wait_caught_up(
        db,
        &config.lake,
        &config.source,
        Duration::from_secs(120),
        &mut daemon,
    )
    .await;
    daemon
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_requested_snapshot_under_churn_of_the_same_keys() {
    let seed = crate::harness::seed(
        "snapshot_incremental::cli_requested_snapshot_under_churn_of_the_same_keys",
    );
    let db = PgCluster::shared()
        .create_database("snapshot_incremental_cli")
        .await;
    const ROWS: i64 = 40_000;
    let big = ShapedTable::new("big", Shape::Mixed);
    let pairs = ShapedTable::new("pairs", Shape::Composite);
    let loose = ShapedTable::new("loose", Shape::Keyless);
    let blobs = ShapedTable::new("blobs", Shape::Toast);
    create_tables(
        &db,
        &[
            (&big, ROWS),
            (&pairs, 15_000),
            (&loose, 8_000),
            (&blobs, 1_200),
        ],
    )
    .await;
    let tables = [&big, &pairs, &loose, &blobs];
    let names: Vec<String> = tables.iter().map(|t| t.qualified()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();

    let mut config = TestConfig::new(&db, "app", &names);
    config.source_extra.push("snapshot = \"never\"".into());
    config
        .source_extra
        .push("snapshot_chunk_rows = 2000".into());
    let mut daemon = start_never_daemon(&db, &config).await;

    // First, the lake provably lacks the rows that predate the slot.
    db.execute(&big.insert_sql(ROWS + 1, ROWS + 3, 1)).await;
    wait_caught_up(
        &db,
        &config.lake,
        &config.source,
        Duration::from_secs(60),
        &mut daemon,
    )
    .await;
    for table in tables {
        assert_preexisting_rows_absent(&config, table, ROWS).await;
    }
    assert_not_snapshotted(&config, &tables);

    let mut churn = Churn::new(
        seed.seed,
        &[big.clone(), pairs.clone(), loose.clone(), blobs.clone()],
        ROWS + 3,
    );
    churn.max_pause_ms = 4;
    churn.large_rows = 2_500;
    let (stop, churn_task) = churn.spawn(&db, 30);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let stdout = request_snapshot_cli(&config.root.join("tributary.toml"), "app", &names);
    for name in &names {
        assert!(
            stdout.contains(name),
            "`tributary snapshot` should say what it requested ({name}); it printed: {stdout}"
        );
    }
    wait_snapshots_done(&db, &config, &names, Duration::from_secs(300), &mut daemon).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.cancel();
    let churn = churn_task.await.expect("churn task");
    eprintln!("churn: {:?}", churn.stats);

    wait_caught_up(
        &db,
        &config.lake,
        &config.source,
        Duration::from_secs(300),
        &mut daemon,
    )
    .await;
    let deleted: Vec<_> = tables
        .iter()
        .map(|t| (*t, churn.deleted_from(&t.qualified())))
        .collect();
    assert_no_resurrection(&db, &config, &deleted).await;
    assert_lake_matches_source(&db, &config.lake, &config.source, &names).await;
    lake::assert_manifests_sound(&config.lake, &config.source);
    for table in tables {
        let counts = op_counts(&config.lake, &config.source, &table.qualified());
        eprintln!("{}: {counts:?}", table.qualified());
        assert!(
            counts.distinct("r") > 0,
            "{} has no `r` rows after its incremental snapshot: {counts:?}",
            table.qualified()
        );
    }
    daemon.stop_gracefully(Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_table_insert_requests_a_snapshot() {
    let seed =
        crate::harness::seed("snapshot_incremental::signal_table_insert_requests_a_snapshot");
    let db = PgCluster::shared()
        .create_database("snapshot_incremental_signal")
        .await;
    const ROWS: i64 = 25_000;
    let big = ShapedTable::new("big", Shape::Mixed);
    let loose = ShapedTable::new("loose", Shape::Keyless);
    create_tables(&db, &[(&big, ROWS), (&loose, 6_000)]).await;
    db.execute(
        "CREATE TABLE public.tributary_signal (id text PRIMARY KEY, type text NOT NULL, data text)",
    )
    .await;
    let tables = [&big, &loose];
    let names: Vec<String> = tables.iter().map(|t| t.qualified()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();

    let mut config = TestConfig::new(&db, "app", &names);
    config.source_extra.push("snapshot = \"never\"".into());
    config
        .source_extra
        .push("snapshot_chunk_rows = 2000".into());
    config
        .source_extra
        .push("signal_table = \"public.tributary_signal\"".into());
    let mut daemon = start_never_daemon(&db, &config).await;
    for table in tables {
        assert_preexisting_rows_absent(&config, table, ROWS).await;
    }
    assert_not_snapshotted(&config, &tables);

    let mut churn = Churn::new(seed.seed, &[big.clone(), loose.clone()], ROWS);
    churn.max_pause_ms = 4;
    churn.large_rows = 2_000;
    let (stop, churn_task) = churn.spawn(&db, 30);
    tokio::time::sleep(Duration::from_millis(400)).await;

    db.execute(
        "INSERT INTO public.tributary_signal (id, type, data) \
         VALUES ('req-1', 'snapshot', '{\"tables\": [\"public.big\", \"public.loose\"]}')",
    )
    .await;
    wait_snapshots_done(&db, &config, &names, Duration::from_secs(300), &mut daemon).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.cancel();
    let churn = churn_task.await.expect("churn task");
    eprintln!("churn: {:?}", churn.stats);
    // More signal rows, changed and deleted: still never in the lake.
    db.execute(
        "UPDATE public.tributary_signal SET data = '{}' WHERE id = 'req-1'; \
         DELETE FROM public.tributary_signal",
    )
    .await;

    wait_caught_up(
        &db,
        &config.lake,
        &config.source,
        Duration::from_secs(300),
        &mut daemon,
    )
    .await;
    let deleted: Vec<_> = tables
        .iter()
        .map(|t| (*t, churn.deleted_from(&t.qualified())))
        .collect();
    assert_no_resurrection(&db, &config, &deleted).await;
    assert_lake_matches_source(&db, &config.lake, &config.source, &names).await;
    let manifests = lake::assert_manifests_sound(&config.lake, &config.source);
    let signal_in_lake: Vec<u64> = manifests
        .iter()
        .filter(|m| {
            m.files(&config.lake, &config.source)
                .iter()
                .any(|(t, _)| t.contains("tributary_signal"))
        })
        .map(|m| m.seq)
        .collect();
    assert!(
        signal_in_lake.is_empty(),
        "the signal table's rows reached the lake (manifests {signal_in_lake:?})"
    );
    let merged = crate::harness::truth::load_lake_tables(&config.lake, &config.source).await;
    assert!(
        !merged.contains_key("public.tributary_signal"),
        "the merged lake has the signal table"
    );
    for table in tables {
        let counts = op_counts(&config.lake, &config.source, &table.qualified());
        assert!(
            counts.distinct("r") > 0,
            "{} has no `r` rows after the signalled snapshot: {counts:?}",
            table.qualified()
        );
    }
    daemon.stop_gracefully(Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_added_to_config_is_snapshotted_then_streamed() {
    let seed = crate::harness::seed(
        "snapshot_incremental::table_added_to_config_is_snapshotted_then_streamed",
    );
    let db = PgCluster::shared()
        .create_database("snapshot_incremental_added")
        .await;
    const ROWS: i64 = 20_000;
    let first = ShapedTable::new("first", Shape::Mixed);
    let added = ShapedTable::new("added", Shape::Composite);
    create_tables(&db, &[(&first, ROWS), (&added, ROWS)]).await;

    let mut config = TestConfig::new(&db, "app", &[&first.qualified()]);
    config
        .source_extra
        .push("snapshot_chunk_rows = 2000".into());
    // Both tables change all along: `added` while it is not captured, while
    // the daemon is down, and while it is being snapshotted.
    let mut churn = Churn::new(seed.seed, &[first.clone(), added.clone()], ROWS);
    churn.max_pause_ms = 5;
    churn.large_rows = 2_000;
    let (stop, churn_task) = churn.spawn(&db, 30);

    let mut daemon = DaemonProcess::start(&config);
    wait_snapshots_done(
        &db,
        &config,
        &[&first.qualified()],
        Duration::from_secs(180),
        &mut daemon,
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
    daemon.stop_gracefully(Duration::from_secs(60));
    assert!(
        lake_keys(
            &config.lake,
            &config.source,
            &added.qualified(),
            added.id_column()
        )
        .await
        .is_none(),
        "public.added is not captured yet but is in the lake"
    );
    assert_not_snapshotted(&config, &[&added]);

    tokio::time::sleep(Duration::from_millis(500)).await;
    let marker = config.tables.pop().expect("marker table");
    config.tables.push(added.qualified());
    config.tables.push(marker);
    config.write();
    daemon.restart();
    let all = [first.qualified(), added.qualified()];
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    wait_snapshots_done(&db, &config, &all, Duration::from_secs(180), &mut daemon).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.cancel();
    let churn = churn_task.await.expect("churn task");
    eprintln!("churn: {:?}", churn.stats);
    // Streamed after its snapshot.
    db.execute(&added.insert_sql(10_000_000, 10_000_050, 9))
        .await;

    wait_caught_up(
        &db,
        &config.lake,
        &config.source,
        Duration::from_secs(300),
        &mut daemon,
    )
    .await;
    let deleted: Vec<_> = [&first, &added]
        .iter()
        .map(|t| (*t, churn.deleted_from(&t.qualified())))
        .collect();
    assert_no_resurrection(&db, &config, &deleted).await;
    assert_lake_matches_source(&db, &config.lake, &config.source, &all).await;
    lake::assert_manifests_sound(&config.lake, &config.source);
    let counts = op_counts(&config.lake, &config.source, &added.qualified());
    assert!(
        counts.distinct("r") > 0 && counts.distinct("c") > 0,
        "public.added should have snapshot rows and streamed inserts: {counts:?}"
    );
    daemon.stop_gracefully(Duration::from_secs(60));
}

/// The DBLog window meets TOAST: rows whose out-of-line `body` predates
/// the slot are updated *without touching the body* (pgoutput then sends
/// the body as "unchanged TOAST", i.e. not at all) while their chunk is
/// between its watermarks. A chunk row whose key changed in the window is
/// dropped in favour of the streamed change, but that change lacks the
/// body, and the lake has no earlier image of the row to take it from: the
/// snapshot must still leave every body in the lake equal to the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toast_rows_updated_inside_their_chunk_window_keep_their_values() {
    let seed = crate::harness::seed(
        "snapshot_incremental::toast_rows_updated_inside_their_chunk_window_keep_their_values",
    );
    let db = PgCluster::shared()
        .create_database("snapshot_incremental_toast")
        .await;
    const ROWS: i64 = 3_000;
    let blobs = ShapedTable::new("blobs", Shape::Toast);
    create_tables(&db, &[(&blobs, ROWS)]).await;
    let name = blobs.qualified();
    let mut config = TestConfig::new(&db, "app", &[&name]);
    config.source_extra.push("snapshot = \"never\"".into());
    config.source_extra.push("snapshot_chunk_rows = 300".into());
    let mut daemon = start_never_daemon(&db, &config).await;
    assert_preexisting_rows_absent(&config, &blobs, ROWS).await;
    assert_not_snapshotted(&config, &[&blobs]);

    let mut churn = Churn::new(seed.seed, std::slice::from_ref(&blobs), ROWS);
    churn.updates_only = true;
    let (stop, churn_task) = churn.spawn(&db, 50);
    tokio::time::sleep(Duration::from_millis(300)).await;
    request_snapshot_cli(&config.root.join("tributary.toml"), "app", &[&name]);
    wait_snapshots_done(
        &db,
        &config,
        &[&name],
        Duration::from_secs(180),
        &mut daemon,
    )
    .await;
    stop.cancel();
    let churn = churn_task.await.expect("churn task");
    eprintln!("churn: {:?}", churn.stats);
    wait_caught_up(
        &db,
        &config.lake,
        &config.source,
        Duration::from_secs(120),
        &mut daemon,
    )
    .await;
    assert_lake_matches_source(&db, &config.lake, &config.source, &[&name]).await;
    daemon.stop_gracefully(Duration::from_secs(60));
}
