//! A value the lake cannot represent is never dropped: the source stops with
//! an error naming table, column and position, and the checkpoint stays
//! before it.

use std::time::Duration;

use crate::harness::daemon::{DaemonProcess, TestConfig, wait_caught_up};
use crate::harness::lake::{checkpoint_commit_lsn, read_checkpoint};
use crate::harness::postgres::{PgCluster, parse_lsn};
use crate::harness::truth::assert_lake_matches_source;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nan_in_a_bounded_numeric_stops_the_source_and_keeps_the_checkpoint() {
    let db = PgCluster::shared().create_database("unencodable").await;
    db.execute("CREATE TABLE prices (id int PRIMARY KEY, amount numeric(10,2))")
        .await;
    let config = TestConfig::new(&db, "app", &["prices"]);
    let mut daemon = DaemonProcess::start(&config);
    crate::harness::daemon::wait_streaming(&db, &config, &mut daemon).await;
    db.execute("INSERT INTO prices SELECT g, g * 1.25 FROM generate_series(1, 100) g")
        .await;
    wait_caught_up(
        &db,
        &config.lake,
        &config.source,
        Duration::from_secs(60),
        &mut daemon,
    )
    .await;
    assert_lake_matches_source(&db, &config.lake, &config.source, &["public.prices"]).await;
    let before =
        checkpoint_commit_lsn(&read_checkpoint(&config.lake, &config.source).unwrap()).unwrap();

    let rows = db
        .query_text("BEGIN; INSERT INTO prices VALUES (1000, 'NaN'); SELECT pg_current_wal_insert_lsn(); COMMIT;")
        .await;
    let bad_lsn = parse_lsn(rows.last().unwrap()[0].as_deref().unwrap()).unwrap();
    let status = daemon.wait(Duration::from_secs(30));
    assert!(
        !status.success(),
        "the daemon must stop on an unencodable value"
    );
    let log = daemon.log_text(40);
    for needle in [
        "cannot encode column amount",
        "public.prices",
        "NaN",
        "decimal(10,2)",
        "at commit",
    ] {
        assert!(log.contains(needle), "expected {needle:?} in:\n{log}");
    }
    let after = read_checkpoint(&config.lake, &config.source).unwrap();
    let after_lsn = checkpoint_commit_lsn(&after).unwrap();
    assert_eq!(after_lsn, before, "the checkpoint moved: {after}");
    assert!(after_lsn < bad_lsn);
    // Restarting hits the same change again: it is never skipped silently.
    daemon.restart();
    let status = daemon.wait(Duration::from_secs(30));
    assert!(!status.success());
    assert!(daemon.log_text(20).contains("cannot encode column amount"));
}
