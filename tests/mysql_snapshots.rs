//! MySQL/MariaDB snapshots beyond the first copy, on a private MariaDB:
//! an initial copy killed mid-way continues from its cursors; rows changed
//! behind the binlog's back (`sql_log_bin = 0`) are repaired by
//! `tributary snapshot` (and deleted ones removed with `--reset`); a purged
//! binlog position stops the daemon with the fix, and `checkpoint reset
//! --to current` recovers; a table swapped in by RENAME (gh-ost style) or
//! dropped and created again replaces its lake rows; a statement the DDL
//! parser cannot read stops the source until `on_unparsed_ddl = "reload"`;
//! MINIMAL row images stop it with the fix.
//! After each: the merged lake (ours and DuckDB's) equals the source.

use std::path::Path;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use tributary::envelope::Value;
use tributary::merge::BronzeMerge;
use tributary::sink::LakeStore;
use tributary_mysql::mysql_async::Conn;
use tributary_mysql::mysql_async::prelude::Queryable;

use crate::bad_config::run_cli;
use crate::harness::daemon::DaemonProcess;
use crate::harness::lake::{read_checkpoint, snapshot_under_way, snapshots_done};
use crate::harness::mariadb::Mariadb;
use crate::mysql_binlog::{
    SCHEMA, assert_truth, item_values, random_transaction, setup, wait_marker,
};

/// Inserts `batches` × 100 item rows.
async fn fill(conn: &mut Conn, rng: &mut StdRng, next_id: &mut i64, batches: usize) {
    for _ in 0..batches {
        let rows: Vec<String> = (0..100)
            .map(|_| {
                *next_id += 1;
                item_values(rng, *next_id)
            })
            .collect();
        conn.query_drop(format!("INSERT INTO shop.items VALUES {}", rows.join(", ")))
            .await
            .unwrap();
    }
}

/// Ids of `shop.items` rows in the merged lake.
async fn lake_item_ids(lake: &Path) -> Vec<i32> {
    let store = LakeStore::local(lake).unwrap();
    let Ok(merged) = BronzeMerge::load(&store, "shop").await else {
        return Vec::new();
    };
    merged
        .table("shop.items")
        .map(|t| {
            t.rows
                .iter()
                .filter_map(|r| match r[0] {
                    Value::Int32(id) => Some(id),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `done` holds for the merged lake's item ids.
async fn wait_lake(
    lake: &Path,
    daemon: &mut DaemonProcess,
    what: &str,
    done: impl Fn(&[i32]) -> bool,
) {
    let started = Instant::now();
    loop {
        if done(&lake_item_ids(lake).await) {
            return;
        }
        if let Some(how) = crate::harness::daemon::Daemon::exited(daemon) {
            panic!(
                "the daemon {how} while waiting for {what}:\n{}",
                daemon.log_text(60)
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{what}: not reached after 120 s:\n{}",
            daemon.log_text(60)
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_copy_continues_and_snapshots_repair_the_lake() {
    let seed = crate::harness::seed(
        "mysql_snapshots::interrupted_copy_continues_and_snapshots_repair_the_lake",
    );
    let mut rng = StdRng::seed_from_u64(seed.seed);
    let server = Mariadb::start();
    server.create_cdc_user().await;
    let mut conn = server.root().await;
    conn.query_drop(SCHEMA).await.unwrap();
    let mut next_id = 0i64;
    fill(&mut conn, &mut rng, &mut next_id, 60).await;
    let setup = setup(&server, "");
    // Small chunks: the copy takes hundreds of them, so a kill lands inside.
    let toml = std::fs::read_to_string(&setup.config)
        .unwrap()
        .replace("snapshot_chunk_rows = 300", "snapshot_chunk_rows = 20");
    std::fs::write(&setup.config, toml).unwrap();
    let mut daemon = DaemonProcess::start_with(setup.config.clone(), &setup.root);
    // Kill as soon as a chunk of the copy is durable with its cursor.
    let started = Instant::now();
    loop {
        if read_checkpoint(&setup.lake, "shop").is_some_and(|c| snapshot_under_way(&c)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no chunk of the initial copy became durable:\n{}",
            daemon.log_text(40)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    daemon.kill9();
    for _ in 0..30 {
        random_transaction(&mut conn, &mut rng, &mut next_id).await;
    }
    daemon.restart();
    let mut marker = 0;
    let mut step = || {
        marker += 1;
        marker
    };
    wait_marker(&mut conn, &setup.lake, step(), &mut daemon).await;
    assert!(
        daemon
            .log_text(400)
            .contains("continuing the interrupted initial copy"),
        "the restart must continue the copy, not start it again:\n{}",
        daemon.log_text(60)
    );
    // The marker can overtake the copy's last chunks: wait for them.
    let rows_now: i64 = conn
        .query_first("SELECT COUNT(*) FROM shop.items")
        .await
        .unwrap()
        .unwrap();
    wait_lake(&setup.lake, &mut daemon, "the continued copy", |ids| {
        ids.len() as i64 == rows_now
    })
    .await;
    assert_truth(&mut conn, &setup.lake).await;

    // Changes the binlog never sees: the lake cannot know.
    conn.query_drop(
        "SET SESSION sql_log_bin = 0;
         UPDATE shop.items SET name = 'offlog' WHERE id % 7 = 0;
         DELETE FROM shop.items WHERE id % 11 = 0;
         SET SESSION sql_log_bin = 1;",
    )
    .await
    .unwrap();
    let gone: Vec<i32> = (1..=next_id as i32).filter(|id| id % 11 == 0).collect();
    let config = setup.config.to_str().unwrap();
    let (ok, out, err) = run_cli(
        &[
            "snapshot",
            "--config",
            config,
            "--source",
            "shop",
            "--table",
            "shop.items",
        ],
        &[],
    );
    assert!(
        ok && out.contains("incremental snapshot of shop.items requested"),
        "{out}{err}"
    );
    for _ in 0..20 {
        random_transaction(&mut conn, &mut rng, &mut next_id).await;
    }
    // Without --reset the snapshot upserts: updated rows are repaired,
    // rows deleted behind the binlog's back stay.
    let store = LakeStore::local(&setup.lake).unwrap();
    let started = Instant::now();
    loop {
        let merged = BronzeMerge::load(&store, "shop").await.unwrap();
        let offlog = merged.table("shop.items").map_or(0, |t| {
            t.rows
                .iter()
                .filter(|r| r[7] == Value::Text("offlog".into()))
                .count()
        });
        let expected: i64 = conn
            .query_first("SELECT COUNT(*) FROM shop.items WHERE name = 'offlog'")
            .await
            .unwrap()
            .unwrap();
        if offlog as i64 == expected && expected > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the requested snapshot did not repair the lake ({offlog} of {expected} rows):\n{}",
            daemon.log_text(60)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // (The workload since may have inserted some of those ids again.)
    let source_ids: Vec<i32> = conn.query("SELECT id FROM shop.items").await.unwrap();
    let ids = lake_item_ids(&setup.lake).await;
    assert!(
        gone.iter()
            .any(|d| ids.contains(d) && !source_ids.contains(d)),
        "a snapshot without --reset does not remove rows"
    );

    let (ok, out, err) = run_cli(
        &[
            "snapshot",
            "--config",
            config,
            "--source",
            "shop",
            "--table",
            "shop.items",
            "--reset",
        ],
        &[],
    );
    assert!(ok, "{out}{err}");
    for _ in 0..20 {
        random_transaction(&mut conn, &mut rng, &mut next_id).await;
    }
    let mut source_ids: Vec<i32> = conn.query("SELECT id FROM shop.items").await.unwrap();
    source_ids.sort();
    wait_lake(&setup.lake, &mut daemon, "the reset snapshot", |ids| {
        let mut ids = ids.to_vec();
        ids.sort();
        ids == source_ids
    })
    .await;
    wait_until_snapshots_done(&setup.lake, &mut daemon).await;
    wait_marker(&mut conn, &setup.lake, step(), &mut daemon).await;
    assert_truth(&mut conn, &setup.lake).await;
    // Both requests were recorded by a durable checkpoint, then removed.
    let started = Instant::now();
    while std::fs::read_dir(setup.lake.join("shop/_requests")).is_ok_and(|d| d.count() > 0) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "request files stay in {}",
            setup.lake.join("shop/_requests").display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    daemon.stop_gracefully(Duration::from_secs(30));
}

/// Waits until the checkpoint shows no pending snapshot.
async fn wait_until_snapshots_done(lake: &Path, daemon: &mut DaemonProcess) {
    let started = Instant::now();
    loop {
        if read_checkpoint(lake, "shop").is_some_and(|c| snapshots_done(&c)) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "snapshots still pending after 120 s:\n{}",
            daemon.log_text(60)
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_binlog_is_explained_and_reset_to_current_recovers() {
    let seed = crate::harness::seed(
        "mysql_snapshots::purged_binlog_is_explained_and_reset_to_current_recovers",
    );
    let mut rng = StdRng::seed_from_u64(seed.seed);
    let server = Mariadb::start();
    server.create_cdc_user().await;
    let mut conn = server.root().await;
    conn.query_drop(SCHEMA).await.unwrap();
    let mut next_id = 0i64;
    fill(&mut conn, &mut rng, &mut next_id, 5).await;
    let setup = setup(&server, "");
    let mut daemon = DaemonProcess::start_with(setup.config.clone(), &setup.root);
    wait_marker(&mut conn, &setup.lake, 1, &mut daemon).await;
    daemon.stop_gracefully(Duration::from_secs(30));

    // While the daemon is down: changes (deletes too), then the binlog
    // files holding them are purged.
    for _ in 0..30 {
        random_transaction(&mut conn, &mut rng, &mut next_id).await;
    }
    conn.query_drop("DELETE FROM shop.items WHERE id % 5 = 0")
        .await
        .unwrap();
    conn.query_drop("FLUSH BINARY LOGS").await.unwrap();
    let current: String = conn
        .query_first::<tributary_mysql::mysql_async::Row, _>("SHOW MASTER STATUS")
        .await
        .unwrap()
        .unwrap()
        .get(0)
        .unwrap();
    // MariaDB keeps a file while InnoDB crash recovery may still need it
    // (until its binlog checkpoint): purge until the first file is gone.
    let started = Instant::now();
    loop {
        conn.query_drop(format!("PURGE BINARY LOGS TO '{current}'"))
            .await
            .unwrap();
        let logs: Vec<tributary_mysql::mysql_async::Row> =
            conn.query("SHOW BINARY LOGS").await.unwrap();
        let first: String = logs[0].get(0).unwrap();
        if first == current {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "binlog files before {current} could not be purged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    daemon.restart();
    let status = daemon.wait(Duration::from_secs(60));
    let log = daemon.log_text(30);
    assert!(
        !status.success() && log.contains("was purged") && log.contains("checkpoint reset"),
        "{log}"
    );
    let config = setup.config.to_str().unwrap();
    let (ok, out, err) = run_cli(
        &[
            "checkpoint",
            "reset",
            "--config",
            config,
            "--source",
            "shop",
            "--to",
            "binlog.000001:4",
        ],
        &[],
    );
    assert!(
        !ok && format!("{out}{err}").contains("no longer has binlog file binlog.000001"),
        "{out}{err}"
    );
    let (ok, out, err) = run_cli(
        &[
            "checkpoint",
            "reset",
            "--config",
            config,
            "--source",
            "shop",
            "--to",
            "current",
        ],
        &[],
    );
    assert!(ok && out.contains("copies"), "{out}{err}");
    daemon.restart();
    for _ in 0..20 {
        random_transaction(&mut conn, &mut rng, &mut next_id).await;
    }
    wait_until_snapshots_done(&setup.lake, &mut daemon).await;
    wait_marker(&mut conn, &setup.lake, 2, &mut daemon).await;
    assert_truth(&mut conn, &setup.lake).await;
    daemon.stop_gracefully(Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_swaps_recreations_and_unparsed_ddl() {
    let seed = crate::harness::seed("mysql_snapshots::table_swaps_recreations_and_unparsed_ddl");
    let mut rng = StdRng::seed_from_u64(seed.seed);
    let server = Mariadb::start();
    server.create_cdc_user().await;
    let mut conn = server.root().await;
    conn.query_drop(SCHEMA).await.unwrap();
    let mut next_id = 0i64;
    fill(&mut conn, &mut rng, &mut next_id, 5).await;
    conn.query_drop("INSERT INTO shop.pairs VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)")
        .await
        .unwrap();
    let setup = setup(&server, "");
    let mut daemon = DaemonProcess::start_with(setup.config.clone(), &setup.root);
    wait_marker(&mut conn, &setup.lake, 1, &mut daemon).await;

    // An online schema change tool's cut-over: a shadow table filled out of
    // sight, then swapped in by an atomic RENAME.
    conn.query_drop(
        "CREATE TABLE shop.items_gho LIKE shop.items;
         INSERT INTO shop.items_gho SELECT * FROM shop.items WHERE id % 2 = 0;
         UPDATE shop.items_gho SET name = 'shadow';
         RENAME TABLE shop.items TO shop.items_old, shop.items_gho TO shop.items;",
    )
    .await
    .unwrap();
    for _ in 0..20 {
        random_transaction(&mut conn, &mut rng, &mut next_id).await;
    }
    // Dropped and created again: the old rows are not the new table's.
    conn.query_drop(
        "DROP TABLE shop.pairs;
         CREATE TABLE shop.pairs (a INT, b VARCHAR(10), v INT, PRIMARY KEY (a, b));
         INSERT INTO shop.pairs VALUES (7, 'n', 70);",
    )
    .await
    .unwrap();
    wait_until_snapshots_done(&setup.lake, &mut daemon).await;
    wait_marker(&mut conn, &setup.lake, 2, &mut daemon).await;
    assert_truth(&mut conn, &setup.lake).await;

    // A statement the parser cannot read stops the source before any later
    // change; `reload` lets the operator go on.
    conn.query_drop("ALTER TABLE shop.pairs PARTITION BY HASH(a) PARTITIONS 2")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO shop.pairs VALUES (8, 'p', 80)")
        .await
        .unwrap();
    let status = daemon.wait(Duration::from_secs(60));
    let log = daemon.log_text(30);
    assert!(
        !status.success()
            && log.contains("cannot understand this statement on shop.pairs")
            && log.contains("on_unparsed_ddl"),
        "{log}"
    );
    let toml = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        format!("{toml}on_unparsed_ddl = \"reload\"\n"),
    )
    .unwrap();
    daemon.restart();
    wait_marker(&mut conn, &setup.lake, 3, &mut daemon).await;
    assert_truth(&mut conn, &setup.lake).await;

    // Partial row images: the unlogged values are unknowable, so the source
    // stops with the fix rather than write guesses.
    conn.query_drop("SET SESSION binlog_row_image = 'MINIMAL'; UPDATE shop.pairs SET v = v + 1")
        .await
        .unwrap();
    let status = daemon.wait(Duration::from_secs(60));
    let log = daemon.log_text(30);
    assert!(
        !status.success()
            && log.contains("binlog_row_image is MINIMAL")
            && log.contains("SET GLOBAL binlog_row_image = 'FULL'"),
        "{log}"
    );
}
