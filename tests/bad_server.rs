//! Bad database setups: each is reported by `check` with the SQL that fixes
//! it, and `run` stops with a message naming the cause and the fix.

use std::time::Duration;

use crate::bad_config::run_cli;
use crate::harness::daemon::{DaemonProcess, TestConfig};
use crate::harness::postgres::PgCluster;

fn check(config: &TestConfig) -> (bool, String) {
    let path = config.write();
    let (ok, stdout, stderr) = run_cli(&["check", "--config", path.to_str().unwrap()], &[]);
    (ok, format!("{stdout}{stderr}"))
}

/// Runs the daemon and expects it to stop by itself with an error.
fn run_expect_failure(config: &TestConfig) -> String {
    let mut daemon = DaemonProcess::start(config);
    let status = daemon.wait(Duration::from_secs(30));
    assert!(
        !status.success(),
        "the daemon should have refused to run:\n{}",
        daemon.log_text(50)
    );
    daemon.log_text(50)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_level_replica_is_explained() {
    let cluster = PgCluster::start_custom(&["wal_level = replica"]);
    let db = cluster.create_database("wal_level").await;
    db.execute("CREATE TABLE orders (id int PRIMARY KEY, v text)")
        .await;
    let config = TestConfig::new(&db, "app", &["orders"]);
    let (ok, report) = check(&config);
    assert!(!ok, "{report}");
    assert!(
        report.contains("wal_level") && report.contains("ALTER SYSTEM SET wal_level = logical"),
        "{report}"
    );
    let log = run_expect_failure(&config);
    assert!(
        log.contains("wal_level") && log.contains("logical"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_replication_privilege_is_explained() {
    let db = PgCluster::shared().create_database("no_priv").await;
    let role = format!("plain_{}", db.name);
    db.execute(&format!(
        "CREATE TABLE orders (id int PRIMARY KEY, v text);
         CREATE ROLE {role} LOGIN;
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};
         CREATE PUBLICATION tributary_app FOR TABLE orders, tributary_marker;"
    ))
    .await;
    let mut config = TestConfig::new(&db, "app", &["orders"]);
    config.db.user = role.clone();
    let (ok, report) = check(&config);
    assert!(!ok, "{report}");
    assert!(
        report.contains("REPLICATION")
            && report.contains(&format!("ALTER ROLE {role} REPLICATION")),
        "{report}"
    );
    let log = run_expect_failure(&config);
    assert!(log.contains("REPLICATION"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_without_primary_key_is_refused_with_the_fix() {
    let db = PgCluster::shared().create_database("no_pk").await;
    db.execute("CREATE TABLE events (id int, v text)").await;
    let config = TestConfig::new(&db, "app", &["events"]);
    let (ok, report) = check(&config);
    assert!(!ok, "{report}");
    assert!(
        report.contains("public.events") && report.contains("REPLICA IDENTITY FULL"),
        "{report}"
    );
    let log = run_expect_failure(&config);
    assert!(
        log.contains("table public.events has no primary key")
            && log.contains("ALTER TABLE public.events REPLICA IDENTITY FULL"),
        "{log}"
    );
    // After the fix the same config runs.
    db.execute("ALTER TABLE events REPLICA IDENTITY FULL").await;
    let (ok, report) = check(&config);
    assert!(ok, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_held_by_another_connection_is_explained() {
    let db = PgCluster::shared().create_database("slot_busy").await;
    db.execute("CREATE TABLE orders (id int PRIMARY KEY, v text)")
        .await;
    let config = TestConfig::new(&db, "app", &["orders"]);
    let mut first = DaemonProcess::start(&config);
    // Wait until the first daemon holds the slot.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !matches!(db.slot_state(&config.slot).await, Some((true, _))) {
        assert!(
            std::time::Instant::now() < deadline,
            "first daemon never took the slot:\n{}",
            first.log_text(40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ok, report) = check(&config);
    assert!(!ok, "{report}");
    assert!(
        report.contains(&config.slot) && report.contains("active"),
        "{report}"
    );

    // A second daemon on the same slot waits (logging who holds it and the
    // fix) and takes over when the first stops: a warm standby.
    let mut second_config = TestConfig::new(&db, "app", &["orders"]);
    second_config.slot = config.slot.clone();
    let mut second = DaemonProcess::start(&second_config);
    tokio::time::sleep(Duration::from_secs(3)).await;
    second.assert_running("a busy slot is retried, not fatal");
    let log = second.log_text(60);
    assert!(
        log.contains(&config.slot) && log.contains("PID") && log.contains("retry_in_ms"),
        "{log}"
    );
    first.stop_gracefully(Duration::from_secs(30));
    db.execute("INSERT INTO orders VALUES (1, 'after takeover')")
        .await;
    crate::harness::daemon::wait_caught_up(
        &db,
        &second_config.lake,
        &second_config.source,
        Duration::from_secs(60),
        &mut second,
    )
    .await;
    second.stop_gracefully(Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmanaged_publication_missing_a_table_prints_the_sql() {
    let db = PgCluster::shared().create_database("pub_missing").await;
    db.execute(
        "CREATE TABLE orders (id int PRIMARY KEY, v text);
         CREATE TABLE items (id int PRIMARY KEY, v text);
         CREATE PUBLICATION tributary_app FOR TABLE orders, tributary_marker;",
    )
    .await;
    let config = TestConfig::new(&db, "app", &["orders", "items"]);
    let text = config
        .toml()
        .replace("manage_publication = true", "manage_publication = false");
    let path = config.root.join("unmanaged.toml");
    std::fs::write(&path, text).unwrap();
    let (ok, stdout, stderr) = run_cli(&["check", "--config", path.to_str().unwrap()], &[]);
    let report = format!("{stdout}{stderr}");
    assert!(!ok, "{report}");
    assert!(
        report.contains("ALTER PUBLICATION") && report.contains("public.items"),
        "{report}"
    );
    let (ok, stdout, stderr) = run_cli(&["run", "--config", path.to_str().unwrap()], &[]);
    let log = format!("{stdout}{stderr}");
    assert!(!ok, "{log}");
    assert!(
        log.contains("ALTER PUBLICATION") && log.contains("public.items"),
        "{log}"
    );
}
