//! An incompatible change of shape under the default policy (BACKWARD,
//! `on_incompatible_schema = "fail"`): a column narrowed from bigint to int
//! while a workload runs. The daemon stops with the message an operator
//! sees (table, change, version, options), nothing of the new shape reaches
//! the lake and the checkpoint stays before it; a restart meets the same
//! stop; after the operator switches to `new_version` the daemon registers
//! the incompatible version, marks the boundary in the manifest and catches
//! up, and the lake equals the source.

use std::time::Duration;

use crate::harness::daemon::{DaemonProcess, TestConfig, wait_streaming};
use crate::harness::lake;
use crate::harness::postgres::{PgCluster, parse_lsn};
use crate::harness::schemas::{assert_files_match_versions, settle, subject, versions};
use crate::harness::truth::assert_lake_matches_source;
use crate::schema_evolution::BackgroundWriter;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrowed_column_fails_then_resumes_under_new_version() {
    let seed = crate::harness::seed(
        "schema_incompatible::narrowed_column_fails_then_resumes_under_new_version",
    );
    let db = PgCluster::shared()
        .create_database("schema_incompatible")
        .await;
    db.execute(
        "CREATE TABLE acct (id bigint PRIMARY KEY, v int NOT NULL, t text, big bigint NOT NULL DEFAULT 0);
         INSERT INTO acct SELECT g, g % 10, md5(g::text), g * 1000 FROM generate_series(1, 2000) g;",
    )
    .await;
    let mut config = TestConfig::new(&db, "app", &["acct"]);
    let mut daemon = DaemonProcess::start(&config);
    wait_streaming(&db, &config, &mut daemon).await;
    settle(&db, &config, &["public.acct"], &mut daemon).await;
    let subject = subject("app", "public.acct");
    assert_eq!(versions(&config.lake, &subject).len(), 1);

    let writer = BackgroundWriter::start(&db, "acct", seed.seed, 10_000).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    writer.stop().await;
    // Narrowing: consumers on the new schema (int) cannot read old data (long).
    db.execute("ALTER TABLE acct ALTER COLUMN big TYPE int")
        .await;
    db.execute(
        "BEGIN; INSERT INTO acct VALUES (999999, 1, 'after the change', 5); \
         UPDATE acct SET v = v + 1 WHERE id < 10; COMMIT;",
    )
    .await;
    let after_lsn = parse_lsn(
        db.query_text("SELECT pg_current_wal_insert_lsn()::text")
            .await[0][0]
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    let status = daemon.wait(Duration::from_secs(60));
    let log = daemon.log_text(40);
    assert!(
        !status.success(),
        "the daemon should stop on the incompatible change:\n{log}"
    );
    for needle in [
        "public.acct",
        "incompatibl",
        "BACKWARD",
        "version 1",
        "on_incompatible_schema",
        "new_version",
        "big",
    ] {
        assert!(
            log.contains(needle),
            "the stop message lacks {needle:?}:\n{log}"
        );
    }
    assert_eq!(
        versions(&config.lake, &subject).len(),
        1,
        "nothing may be registered under `fail`"
    );
    let checkpoint = lake::read_checkpoint(&config.lake, "app").expect("a checkpoint");
    let resume = lake::checkpoint_resume_lsn(&checkpoint).expect("a resume LSN");
    assert!(
        resume < after_lsn,
        "the checkpoint moved past the incompatible change: resume {resume:X} ≥ {after_lsn:X}"
    );
    let keys = crate::harness::snapshot::lake_keys(&config.lake, "app", "public.acct", "id")
        .await
        .unwrap_or_default();
    assert!(
        !keys.contains(&999_999),
        "a row of the incompatible shape reached the lake under `fail`"
    );
    let before = lake::manifests(&config.lake, "app").len();

    // The same stop again after a restart: the change is met again.
    daemon.restart();
    let status = daemon.wait(Duration::from_secs(60));
    assert!(
        !status.success(),
        "restart under `fail` should stop again:\n{}",
        daemon.log_text(20)
    );
    assert_eq!(
        lake::manifests(&config.lake, "app").len(),
        before,
        "no new manifest under `fail`"
    );

    // The operator accepts the break.
    config
        .source_extra
        .push("on_incompatible_schema = \"new_version\"".into());
    config.write();
    daemon.restart();
    settle(&db, &config, &["public.acct"], &mut daemon).await;
    daemon.assert_running("after switching to new_version");
    let registered = versions(&config.lake, &subject);
    assert_eq!(registered.len(), 2, "{registered:#?}");
    assert_eq!(registered[1]["compatible"], false);
    assert!(
        registered[1]["problems"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "{:#}",
        registered[1]
    );
    let seen = assert_files_match_versions(&config.lake, "app");
    let (_, markers) = &seen["public.acct"];
    assert!(
        markers
            .iter()
            .any(|m| m["previous_version"] == 1 && m["compatible"] == false),
        "no manifest marks the incompatible boundary: {markers:#?}"
    );
    assert_lake_matches_source(&db, &config.lake, "app", &["acct"]).await;
    daemon.stop_gracefully(Duration::from_secs(30));
}
