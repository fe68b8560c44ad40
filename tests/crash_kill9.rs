//! Crash safety: the daemon binary is `kill -9`ed at ten or more random
//! moments while a random workload (with streamed transactions) runs, and
//! restarted each time. Afterwards the lake must equal the source, and a
//! `_pos` written more than once (replay after a crash) must have identical
//! content every time. Finally SIGTERM must stop it with exit status 0.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::harness::daemon::{DaemonProcess, TestConfig, wait_caught_up};
use crate::harness::lake;
use crate::harness::postgres::PgCluster;
use crate::harness::truth::assert_lake_matches_source;
use crate::harness::workload::{BigTxnEnd, Workload, big_transaction};

const KILLS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_at_random_moments_loses_nothing() {
    let seed = crate::harness::seed("crash_kill9::kill9_at_random_moments_loses_nothing");
    let mut rng = StdRng::seed_from_u64(seed.seed ^ 0x9e37_79b9_7f4a_7c15);
    let db = PgCluster::shared().create_database("crash_kill9").await;
    let client = db.client().await;
    let mut workload = Workload::new(seed.seed);
    workload.setup(&client).await;
    workload.max_pause_ms = 15;

    let mut config = TestConfig::new(&db, "app", &workload.tables());
    // Small flushes: more manifests, more moments to die between steps.
    config.flush_rows = 5_000;
    config.flush_interval_ms = 100;
    let mut daemon = DaemonProcess::start(&config);
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

    // The workload runs in the background until told to stop.
    let stop = tokio_util::sync::CancellationToken::new();
    let background = {
        let stop = stop.clone();
        let db = db.clone();
        tokio::spawn(async move {
            let client = db.client().await;
            let mut rounds = 0u32;
            while !stop.is_cancelled() {
                workload.run(&client, 10).await;
                rounds += 1;
                if rounds % 7 == 3 {
                    // Streamed (in progress) transactions, killed mid-way at times.
                    big_transaction(&client, i64::from(rounds) * 2, 30_000, BigTxnEnd::Commit)
                        .await;
                }
                if rounds % 11 == 5 {
                    big_transaction(
                        &client,
                        i64::from(rounds) * 2 + 1,
                        10_000,
                        BigTxnEnd::CommitAfterSavepointRollback,
                    )
                    .await;
                }
            }
            // A last stretch after the final restart.
            workload.run(&client, 20).await;
            workload
        })
    };

    for kill in 1..=KILLS {
        let pause = rng.random_range(50..=700);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        daemon.assert_running(&format!("before kill #{kill}"));
        daemon.kill9();
        // After SIGKILL the server needs a moment to notice the dead
        // connection and release the slot.
        db.wait_slot_inactive(&config.slot, Duration::from_secs(30))
            .await;
        if rng.random_bool(0.3) {
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        }
        daemon.restart();
        eprintln!("kill #{kill} after {pause} ms; restarted");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    let workload = background.await.expect("workload task");
    eprintln!("workload: {:?}", workload.stats);

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
    lake::assert_manifests_sound(&config.lake, &config.source);
    lake::assert_positions_consistent(&config.lake, &config.source, true);

    daemon.stop_gracefully(Duration::from_secs(60));
}
