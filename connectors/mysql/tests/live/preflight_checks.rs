//! Preflight against a good server and against each bad setting.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tributary_mysql::{Flavor, preflight};

use crate::harness::Mariadb;

#[tokio::test]
async fn preflight_passes_on_a_good_server_and_names_each_fix() {
    let Some(server) = Mariadb::start(&[]) else {
        return;
    };
    let opts = server.cdc_user().await;
    let mut conn = Conn::new(opts).await.unwrap();
    let report = preflight(&mut conn, 4242).await.unwrap();
    assert_eq!(report.flavor, Flavor::MariaDb);
    assert!(report.gtid);
    assert!(report.ok(), "{:?}", report.problems());
    let lines = report.lines();
    for name in [
        "log_bin",
        "binlog_format",
        "binlog_row_image",
        "binlog_row_metadata",
        "server_id",
        "privileges",
        "gtid",
    ] {
        assert!(
            lines.contains(&format!("ok    {name}")),
            "{name} not ok: {lines:#?}"
        );
    }

    // Our replica id equal to the server's.
    let report = preflight(&mut conn, report.server_id).await.unwrap();
    assert!(
        report.problems().iter().any(|p| p.contains("server_id")),
        "{:?}",
        report.problems()
    );

    // A user without replication privileges.
    let mut root = server.root().await;
    root.query_drop("CREATE USER 'plain'@'127.0.0.1'; GRANT SELECT ON *.* TO 'plain'@'127.0.0.1'")
        .await
        .unwrap();
    let mut plain = Conn::new(server.opts("plain")).await.unwrap();
    let report = preflight(&mut plain, 4242).await.unwrap();
    assert_eq!(
        report.problems(),
        [
            "the CDC user lacks REPLICATION SLAVE, BINLOG MONITOR: run GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'plain'@'127.0.0.1'"
        ]
    );
    assert!(
        report
            .lines()
            .iter()
            .any(|l| l.starts_with("FAIL  privileges: the CDC user lacks REPLICATION SLAVE")),
        "{:#?}",
        report.lines()
    );
}

#[tokio::test]
async fn statement_format_and_partial_images_are_reported() {
    let Some(server) = Mariadb::start(&[
        "--binlog-format=STATEMENT",
        "--binlog-row-image=MINIMAL",
        "--binlog-row-metadata=MINIMAL",
    ]) else {
        return;
    };
    let mut conn = Conn::new(server.cdc_user().await).await.unwrap();
    let report = preflight(&mut conn, 4242).await.unwrap();
    let problems = report.problems().join("\n");
    assert!(
        problems.contains("binlog_format is STATEMENT")
            && problems.contains("SET GLOBAL binlog_format = 'ROW'")
            && problems.contains("restart the writers"),
        "{problems}"
    );
    let lines = report.lines().join("\n");
    assert!(
        lines.contains("WARN  binlog_row_image: binlog_row_image is MINIMAL")
            && lines.contains("WARN  binlog_row_metadata: binlog_row_metadata is MINIMAL"),
        "{lines}"
    );
}
