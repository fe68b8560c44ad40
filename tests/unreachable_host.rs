//! An unreachable database is transient: the daemon keeps retrying with
//! backoff and logs why each time, instead of exiting.

use std::time::Duration;

use crate::harness::daemon::{DaemonProcess, TestConfig};
use crate::harness::postgres::PgCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_host_is_retried_with_backoff_and_logged() {
    let db = PgCluster::shared().create_database("unreachable").await;
    let mut config = TestConfig::new(&db, "app", &["tributary_marker"]);
    // A loopback port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    config.db.port = port;
    let mut daemon = DaemonProcess::start(&config);
    tokio::time::sleep(Duration::from_secs(4)).await;
    daemon.assert_running("an unreachable database must be retried, not fatal");
    let log = daemon.log_text(200);
    let retries = log
        .matches("transient failure; restarting from the last checkpoint")
        .count();
    assert!(
        retries >= 3,
        "expected several retries in 4 s, saw {retries}:\n{log}"
    );
    assert!(
        log.to_lowercase().contains("connection refused"),
        "the log must say why:\n{log}"
    );
    assert!(
        log.contains("retry_in_ms"),
        "the log must say when it retries:\n{log}"
    );
    daemon.stop_gracefully(Duration::from_secs(10));
}
