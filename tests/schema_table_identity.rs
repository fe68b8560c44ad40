//! Changes of a table's identity, which logical replication does not carry
//! as such: a table dropped and recreated under the same name (seen in the
//! stream when the publication covers the schema, and found at start-up
//! when it happened while the daemon was down), and a table renamed.
//!
//! A recreated table's earlier lake rows belong to the dropped table: the
//! daemon empties it in the lake (a `t` change) and snapshots the new one; a
//! table renamed to a name the source does not capture stops the source
//! with the remedy, and after the operator follows it the new name is
//! snapshotted and streamed.

use std::time::Duration;

use crate::harness::daemon::{DaemonProcess, TestConfig, wait_streaming};
use crate::harness::postgres::PgCluster;
use crate::harness::schemas::{assert_files_match_versions, settle, subject, versions};
use crate::harness::truth::assert_lake_matches_source;

const CREATE: &str = "CREATE TABLE re (id int PRIMARY KEY, v text NOT NULL)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreated_table_is_reset_in_the_stream_and_at_start() {
    let _seed = crate::harness::seed(
        "schema_table_identity::recreated_table_is_reset_in_the_stream_and_at_start",
    );
    let db = PgCluster::shared().create_database("schema_recreate").await;
    db.execute(&format!(
        "{CREATE}; INSERT INTO re SELECT g, 'first ' || g FROM generate_series(1, 500) g;
         CREATE PUBLICATION tributary_app FOR TABLES IN SCHEMA public;"
    ))
    .await;
    // The publication covers the schema, so the recreated table streams.
    let mut config = TestConfig::new(&db, "app", &["re"]);
    config.manage_publication = false;
    let mut daemon = DaemonProcess::start(&config);
    wait_streaming(&db, &config, &mut daemon).await;
    settle(&db, &config, &["public.re"], &mut daemon).await;
    assert_lake_matches_source(&db, &config.lake, "app", &["re"]).await;

    // Mid-stream: dropped and recreated with other rows (ids overlapping
    // and not), then changed.
    db.execute(&format!(
        "DROP TABLE re; {CREATE}; INSERT INTO re SELECT g, 'second ' || g FROM generate_series(300, 700) g;
         UPDATE re SET v = v || '!' WHERE id % 10 = 0; DELETE FROM re WHERE id % 7 = 0;"
    ))
    .await;
    settle(&db, &config, &["public.re"], &mut daemon).await;
    assert_lake_matches_source(&db, &config.lake, "app", &["re"]).await;
    let subject = subject("app", "public.re");
    let registered = versions(&config.lake, &subject);
    assert_eq!(registered.len(), 2, "{registered:#?}");
    assert_ne!(
        registered[0]["table"]["source_id"], registered[1]["table"]["source_id"],
        "the recreated table's version should carry the new relation id"
    );
    assert!(
        registered[1]["changes"].to_string().contains("recreated"),
        "{:#}",
        registered[1]
    );

    // While the daemon is down.
    daemon.stop_gracefully(Duration::from_secs(30));
    db.execute(&format!(
        "DROP TABLE re; {CREATE}; INSERT INTO re SELECT g, 'third ' || g FROM generate_series(1, 50) g;"
    ))
    .await;
    daemon.restart();
    settle(&db, &config, &["public.re"], &mut daemon).await;
    assert_lake_matches_source(&db, &config.lake, "app", &["re"]).await;
    assert_eq!(versions(&config.lake, &subject).len(), 3);
    assert_files_match_versions(&config.lake, "app");
    daemon.stop_gracefully(Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renamed_table_stops_with_the_remedy_then_streams_under_its_new_name() {
    let _seed = crate::harness::seed(
        "schema_table_identity::renamed_table_stops_with_the_remedy_then_streams_under_its_new_name",
    );
    let db = PgCluster::shared().create_database("schema_rename").await;
    db.execute(
        "CREATE TABLE r1 (id int PRIMARY KEY, v text);
         INSERT INTO r1 SELECT g, 'v' || g FROM generate_series(1, 300) g;",
    )
    .await;
    let mut config = TestConfig::new(&db, "app", &["r1"]);
    let mut daemon = DaemonProcess::start(&config);
    wait_streaming(&db, &config, &mut daemon).await;
    settle(&db, &config, &["public.r1"], &mut daemon).await;

    db.execute(
        "ALTER TABLE r1 RENAME TO r2; INSERT INTO r2 VALUES (1000, 'after rename'); \
         UPDATE r2 SET v = 'changed' WHERE id <= 5;",
    )
    .await;
    let status = daemon.wait(Duration::from_secs(60));
    let log = daemon.log_text(30);
    assert!(
        !status.success(),
        "the daemon should stop on the rename:\n{log}"
    );
    for needle in ["public.r1", "renamed to public.r2", "tables", "restart"] {
        assert!(
            log.contains(needle),
            "the stop message lacks {needle:?}:\n{log}"
        );
    }

    // The operator follows the message.
    config.tables = config
        .tables
        .iter()
        .map(|t| {
            if t == "public.r1" {
                "public.r2".to_string()
            } else {
                t.clone()
            }
        })
        .collect();
    config.write();
    daemon.restart();
    settle(&db, &config, &["public.r2"], &mut daemon).await;
    assert_lake_matches_source(&db, &config.lake, "app", &["r2"]).await;
    daemon.stop_gracefully(Duration::from_secs(30));
}
