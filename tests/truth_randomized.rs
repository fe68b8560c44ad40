//! The randomized truth test: a few hundred random transactions over every
//! mapped type (TOAST, composite keys, REPLICA IDENTITY FULL key changes,
//! savepoints, rollbacks, truncates, streamed medium transactions) plus one
//! 500K-row transaction streamed concurrently, through the in-process
//! daemon; then the merged lake must equal the source, DuckDB's merge must
//! equal ours, and every manifest's files must exist.

use std::time::Duration;

use crate::harness::daemon::{InProcessDaemon, TestConfig, wait_caught_up};
use crate::harness::lake;
use crate::harness::postgres::PgCluster;
use crate::harness::truth::assert_lake_matches_source;
use crate::harness::workload::{BigTxnEnd, Workload, big_transaction};

/// Rows of the huge transaction (streamed while in progress).
const BIG_ROWS: u64 = 500_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_workload_lands_exactly() {
    let seed = crate::harness::seed("truth_randomized::randomized_workload_lands_exactly");
    let db = PgCluster::shared()
        .create_database("truth_randomized")
        .await;
    let client = db.client().await;
    let mut workload = Workload::new(seed.seed);
    workload.setup(&client).await;

    let config = TestConfig::new(&db, "app", &workload.tables());
    let mut daemon = InProcessDaemon::start(&config);
    crate::harness::daemon::wait_streaming(&db, &config, &mut daemon).await;
    // The slot exists and streams before the first change we expect back.
    wait_caught_up(
        &db,
        &config.lake,
        &config.source,
        Duration::from_secs(120),
        &mut daemon,
    )
    .await;

    // The huge transaction runs on its own connection while the random
    // workload commits around it, so streamed chunks interleave with
    // ordinary transactions in the WAL.
    let big_db = db.clone();
    let big = tokio::spawn(async move {
        let client = big_db.client().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        big_transaction(&client, 1, BIG_ROWS, BigTxnEnd::Commit).await;
        // A streamed transaction that aborts, and one whose subtransaction
        // aborts: neither the aborted part may reach the lake.
        big_transaction(&client, 2, 20_000, BigTxnEnd::Rollback).await;
        big_transaction(&client, 3, 20_000, BigTxnEnd::CommitAfterSavepointRollback).await;
    });
    let stats = workload.run(&client, 300).await;
    big.await.expect("big transaction task");
    eprintln!("workload: {stats:?}");

    wait_caught_up(
        &db,
        &config.lake,
        &config.source,
        Duration::from_secs(600),
        &mut daemon,
    )
    .await;
    let tables = workload.tables();
    assert_lake_matches_source(&db, &config.lake, &config.source, &tables).await;

    let manifests = lake::assert_manifests_sound(&config.lake, &config.source);
    eprintln!("{} manifests", manifests.len());

    daemon
        .stop(Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("pipeline::run returned an error on shutdown: {e}"));
}
