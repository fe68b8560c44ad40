//! `checkpoint show` and `checkpoint reset`: reset refuses what the slot can
//! no longer serve and accepts what it can, and the daemon resumes there.

use std::time::Duration;

use crate::bad_config::run_cli;
use crate::harness::daemon::{DaemonProcess, TestConfig, wait_caught_up, wait_streaming};
use crate::harness::postgres::{PgCluster, format_lsn, parse_lsn};
use crate::harness::truth::assert_lake_matches_source;

/// `tributary checkpoint reset --config path --source source --to to`.
fn reset(path: &str, source: &str, to: &str) -> (bool, String, String) {
    run_cli(
        &[
            "checkpoint",
            "reset",
            "--config",
            path,
            "--source",
            source,
            "--to",
            to,
        ],
        &[],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_refuses_released_wal_and_resumes_where_told() {
    let db = PgCluster::shared().create_database("checkpoint_cli").await;
    db.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
        .await;
    let config = TestConfig::new(&db, "app", &["items"]);
    let path = config.write();
    let path = path.to_str().unwrap();

    let (ok, stdout, _) = run_cli(&["checkpoint", "show", "--config", path], &[]);
    assert!(ok && stdout.contains("app: no checkpoint yet"), "{stdout}");

    let mut daemon = DaemonProcess::start(&config);
    wait_streaming(&db, &config, &mut daemon).await;
    db.execute("INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 500) g")
        .await;
    wait_caught_up(
        &db,
        &config.lake,
        &config.source,
        Duration::from_secs(60),
        &mut daemon,
    )
    .await;

    // Reset while running: refused, the slot is in use.
    let (ok, _, stderr) = reset(path, "app", "0/1");
    assert!(
        !ok && stderr.contains("in use by PID") && stderr.contains("stop the daemon"),
        "{stderr}"
    );
    daemon.stop_gracefully(Duration::from_secs(30));
    db.wait_slot_inactive(&config.slot, Duration::from_secs(30))
        .await;

    let (ok, stdout, _) = run_cli(
        &["checkpoint", "show", "--config", path, "--source", "app"],
        &[],
    );
    assert!(
        ok && stdout.contains("app: resume at lsn")
            && stdout.contains("transaction complete: true"),
        "{stdout}"
    );

    // Before the slot's confirmed position: refused with the reason.
    let (_, confirmed) = db.slot_state(&config.slot).await.unwrap();
    let confirmed = confirmed.unwrap();
    let (ok, _, stderr) = reset(path, "app", "0/1");
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("released the WAL")
            && stderr.contains(&format_lsn(confirmed))
            && stderr.contains("tributary snapshot --config"),
        "{stderr}"
    );
    // Not an LSN, unknown source, beyond the server's WAL: refused.
    let (ok, _, stderr) = reset(path, "app", "yesterday");
    assert!(!ok && stderr.contains("is not an LSN"), "{stderr}");
    let (ok, _, stderr) = reset(path, "nope", "0/1");
    assert!(
        !ok && stderr.contains("no source named \"nope\""),
        "{stderr}"
    );
    let (ok, _, stderr) = reset(path, "app", "FF/0");
    assert!(
        !ok && stderr.contains("beyond the server's current WAL position"),
        "{stderr}"
    );

    // Skip forward: changes committed before the new position are not captured.
    db.execute("INSERT INTO items SELECT g, 'skipped' FROM generate_series(1001, 1010) g")
        .await;
    let skip_to = db.query_text("SELECT pg_current_wal_insert_lsn()").await[0][0]
        .clone()
        .unwrap();
    let (ok, stdout, stderr) = reset(path, "app", &skip_to);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "resumes at {}",
            format_lsn(parse_lsn(&skip_to).unwrap())
        )),
        "{stdout}"
    );
    db.execute("INSERT INTO items SELECT g, 'kept' FROM generate_series(2001, 2010) g")
        .await;
    daemon.restart();
    wait_caught_up(
        &db,
        &config.lake,
        &config.source,
        Duration::from_secs(60),
        &mut daemon,
    )
    .await;
    daemon.stop_gracefully(Duration::from_secs(30));
    // The skipped rows are exactly what is missing; delete them at the source
    // and the lake must equal the source.
    db.execute("DELETE FROM items WHERE id BETWEEN 1001 AND 1010")
        .await;
    let mut daemon = DaemonProcess::start(&config);
    wait_caught_up(
        &db,
        &config.lake,
        &config.source,
        Duration::from_secs(60),
        &mut daemon,
    )
    .await;
    daemon.stop_gracefully(Duration::from_secs(30));
    assert_lake_matches_source(&db, &config.lake, &config.source, &["public.items"]).await;
}
