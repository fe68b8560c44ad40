//! The initial snapshot under load: tables created and filled before the
//! daemon's first start — 1,000,000 rows of mixed types under a `bigint`
//! key, a composite key, no key (`REPLICA IDENTITY FULL`), out-of-line
//! TOAST values, an empty table — while a churn of inserts, updates,
//! deletes, key changes and large streamed transactions runs on the same
//! rows from before the slot exists until after the copy. The copy must be
//! consistent with the stream at the hand-off: the merged lake equals the
//! source (and DuckDB's merge equals ours), no deleted row comes back, the
//! big table's base image is `r` rows written once each, and the manifests
//! flag pure-snapshot files (which hold only `r` rows).

use std::time::Duration;

use crate::harness::daemon::{DaemonProcess, TestConfig, wait_caught_up};
use crate::harness::lake;
use crate::harness::postgres::PgCluster;
use crate::harness::snapshot::{
    Churn, Shape, ShapedTable, assert_snapshot_flags_truthful, create_tables, op_counts,
    wait_snapshots_done,
};
use crate::harness::truth::assert_lake_matches_source;

const BIG_ROWS: i64 = 1_000_000;
const PAIRS_ROWS: i64 = 60_000;
const LOOSE_ROWS: i64 = 30_000;
const BLOB_ROWS: i64 = 1_500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_snapshot_of_a_million_rows_under_concurrent_writes() {
    let seed = crate::harness::seed(
        "snapshot_initial::initial_snapshot_of_a_million_rows_under_concurrent_writes",
    );
    let db = PgCluster::shared()
        .create_database("snapshot_initial")
        .await;
    let big = ShapedTable::new("big", Shape::Mixed);
    let pairs = ShapedTable::new("pairs", Shape::Composite);
    let loose = ShapedTable::new("loose", Shape::Keyless);
    let blobs = ShapedTable::new("blobs", Shape::Toast);
    let void = ShapedTable::new("void", Shape::Empty);
    let filled = std::time::Instant::now();
    create_tables(
        &db,
        &[
            (&big, BIG_ROWS),
            (&pairs, PAIRS_ROWS),
            (&loose, LOOSE_ROWS),
            (&blobs, BLOB_ROWS),
            (&void, 0),
        ],
    )
    .await;
    eprintln!("tables filled in {:.1}s", filled.elapsed().as_secs_f64());
    let all = [&big, &pairs, &loose, &blobs, &void];
    let names: Vec<String> = all.iter().map(|t| t.qualified()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();

    let mut config = TestConfig::new(&db, "app", &names);
    config
        .source_extra
        .push("snapshot_chunk_rows = 20000".to_string());

    // The churn starts before the daemon (so the slot is created while
    // transactions are in flight) and runs through the whole copy. The empty
    // table stays empty until the copy is done.
    let mut churn = Churn::new(
        seed.seed,
        &[big.clone(), pairs.clone(), loose.clone(), blobs.clone()],
        BIG_ROWS,
    );
    churn.max_pause_ms = 8;
    churn.large_rows = 1_500;
    let (stop, churn_task) = churn.spawn(&db, 50);
    tokio::time::sleep(Duration::from_millis(700)).await;

    let mut daemon = DaemonProcess::start(&config);
    let state =
        wait_snapshots_done(&db, &config, &names, Duration::from_secs(420), &mut daemon).await;
    eprintln!("snapshot state: {state}");
    // Streaming continues after the hand-off for a while, then the empty
    // table gets rows through the stream.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.cancel();
    let churn = churn_task.await.expect("churn task");
    eprintln!("churn: {:?}; inserted {:?}", churn.stats, churn.inserted);
    assert!(
        churn.stats.committed > 50,
        "the churn committed only {} transactions",
        churn.stats.committed
    );
    db.execute(&void.insert_sql(1, 25, 3)).await;
    db.execute("DELETE FROM void WHERE id % 5 = 0").await;

    wait_caught_up(
        &db,
        &config.lake,
        &config.source,
        Duration::from_secs(300),
        &mut daemon,
    )
    .await;

    // The lake is checked against the source as a whole below (merging a
    // million rows is costly); here only that every deleted id is gone from
    // the source, so "lake == source" also means no deleted row came back.
    for table in [&big, &pairs, &loose, &blobs] {
        let deleted = churn.deleted_from(&table.qualified());
        let ids: Vec<String> = deleted.iter().map(i64::to_string).collect();
        if ids.is_empty() {
            continue;
        }
        let alive = db
            .query_text(&format!(
                "SELECT count(*) FROM {} WHERE {} = ANY('{{{}}}'::bigint[])",
                table.name,
                table.id_column(),
                ids.join(",")
            ))
            .await;
        assert_eq!(
            alive[0][0].as_deref(),
            Some("0"),
            "harness bug: ids the churn deleted from {} exist in the source",
            table.name
        );
    }
    let checking = std::time::Instant::now();
    assert_lake_matches_source(&db, &config.lake, &config.source, &names).await;
    eprintln!("truth check took {:.1}s", checking.elapsed().as_secs_f64());
    lake::assert_manifests_sound(&config.lake, &config.source);

    // The big table's base image: `r` rows, each written once (no crash, so
    // no replayed flush), as many as the table had at the snapshot instant —
    // between its initial rows minus what the churn deleted and its initial
    // rows plus what the churn inserted.
    let counts = op_counts(&config.lake, &config.source, &big.qualified());
    eprintln!("public.big in the lake: {counts:?}");
    let r = counts.distinct("r") as i64;
    let deleted = churn.deleted_from(&big.qualified()).len() as i64;
    let inserted = churn.inserted_into(&big.qualified()) as i64;
    assert!(
        r >= BIG_ROWS - deleted && r <= BIG_ROWS + inserted,
        "public.big has {r} `r` rows in the lake; the table had between {} and {} rows when the snapshot was taken",
        BIG_ROWS - deleted,
        BIG_ROWS + inserted
    );
    assert_eq!(
        counts.total("r"),
        counts.distinct("r"),
        "a clean run wrote some `r` rows of public.big twice: {counts:?}"
    );
    let flagged = assert_snapshot_flags_truthful(&config.lake, &config.source, &big.qualified());
    assert!(
        !flagged.is_empty(),
        "no manifest flags a file of public.big as a snapshot file (\"snapshot\": true)"
    );
    eprintln!("{} snapshot files of public.big", flagged.len());
    // The empty table was copied as empty: no `r` row, only the stream.
    let void_counts = op_counts(&config.lake, &config.source, &void.qualified());
    assert_eq!(
        void_counts.distinct("r"),
        0,
        "the empty table got `r` rows: {void_counts:?}"
    );

    daemon.stop_gracefully(Duration::from_secs(60));
}
