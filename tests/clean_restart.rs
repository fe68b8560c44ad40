//! Clean restart: graceful shutdown must leave the checkpoint equal to the
//! last manifest's, changes made while the daemon is down (including a
//! streamed transaction) must arrive after the restart, the lake must equal
//! the source, and — no crash, no replay — no `_pos` may appear twice.

use std::time::Duration;

use crate::harness::daemon::{InProcessDaemon, TestConfig, wait_caught_up};
use crate::harness::lake;
use crate::harness::postgres::PgCluster;
use crate::harness::truth::assert_lake_matches_source;
use crate::harness::workload::{BigTxnEnd, Workload, big_transaction};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_and_restart_lose_and_duplicate_nothing() {
    let seed =
        crate::harness::seed("clean_restart::graceful_stop_and_restart_lose_and_duplicate_nothing");
    let db = PgCluster::shared().create_database("clean_restart").await;
    let client = db.client().await;
    let mut workload = Workload::new(seed.seed);
    workload.setup(&client).await;
    let config = TestConfig::new(&db, "app", &workload.tables());

    // Part 1, then stop right away: whatever is buffered must be flushed.
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
    workload.run(&client, 120).await;
    // Make sure the daemon saw at least part of it before we stop it.
    wait_caught_up(
        &db,
        &config.lake,
        &config.source,
        Duration::from_secs(300),
        &mut daemon,
    )
    .await;
    workload.run(&client, 40).await;
    daemon
        .stop(Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("pipeline::run must return Ok on cancellation, got: {e}"));

    let checkpoint = lake::read_checkpoint(&config.lake, &config.source)
        .expect("a checkpoint after a clean stop");
    let manifests = lake::assert_manifests_sound(&config.lake, &config.source);
    let last = manifests.last().expect("manifests");
    assert_eq!(
        checkpoint.get("manifest_seq").and_then(|v| v.as_u64()),
        Some(last.seq),
        "checkpoint does not point at the last manifest\ncheckpoint: {checkpoint:#}"
    );
    for field in ["last_position", "txn_complete"] {
        assert_eq!(
            checkpoint.get(field),
            last.checkpoint().get(field),
            "after a clean stop the checkpoint's {field} must equal the last manifest's ({})\ncheckpoint: {checkpoint:#}\nmanifest checkpoint: {:#}",
            last.path.display(),
            last.checkpoint()
        );
    }
    // Stopping mid-transaction is allowed (the part received is flushed);
    // then the resume point must be before that transaction, so the restart
    // re-reads it and skips what is durable.
    if checkpoint.get("txn_complete").and_then(|v| v.as_bool()) == Some(false) {
        let resume = lake::checkpoint_resume_lsn(&checkpoint).expect("resume.lsn");
        let commit = lake::checkpoint_commit_lsn(&checkpoint).expect("last_position.commit_lsn");
        assert!(
            resume < commit,
            "stopped inside the transaction committing at {commit} but resume {resume} is not before it"
        );
        eprintln!(
            "stopped mid-transaction (txn_complete = false): the restart exercises the partial replay"
        );
    }
    // The resume point equals the manifest's, or is ahead of it only by an
    // idle advance (transactions without captured rows), never behind.
    let resume = lake::checkpoint_resume_lsn(&checkpoint).expect("checkpoint resume.lsn");
    let manifest_resume =
        lake::checkpoint_resume_lsn(last.checkpoint()).expect("manifest resume.lsn");
    assert!(
        resume >= manifest_resume,
        "checkpoint resume {resume} is behind the last manifest's {manifest_resume}\ncheckpoint: {checkpoint:#}"
    );
    // Slot confirmed_flush ≤ checkpoint resume: never acknowledge beyond durable data.
    db.wait_slot_inactive(&config.slot, Duration::from_secs(30))
        .await;
    let (_, confirmed) = db.slot_state(&config.slot).await.expect("slot exists");
    if let Some(confirmed) = confirmed {
        assert!(
            confirmed <= resume,
            "slot confirmed_flush_lsn {confirmed} is beyond the checkpoint's resume LSN {resume}"
        );
    }

    // Part 2 while stopped, including a streamed transaction.
    workload.run(&client, 120).await;
    big_transaction(&client, 1, 60_000, BigTxnEnd::Commit).await;
    big_transaction(&client, 2, 5_000, BigTxnEnd::Rollback).await;
    workload.run(&client, 20).await;

    let mut daemon = InProcessDaemon::start(&config);
    wait_caught_up(
        &db,
        &config.lake,
        &config.source,
        Duration::from_secs(300),
        &mut daemon,
    )
    .await;
    let tables = workload.tables();
    assert_lake_matches_source(&db, &config.lake, &config.source, &tables).await;
    lake::assert_manifests_sound(&config.lake, &config.source);
    lake::assert_positions_consistent(&config.lake, &config.source, false);
    daemon
        .stop(Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("pipeline::run must return Ok on cancellation, got: {e}"));
    eprintln!("workload: {:?}", workload.stats);
}
