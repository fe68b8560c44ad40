//! Every kind of change of shape, each in the middle of a running workload:
//! ADD COLUMN without and with a default, DROP COLUMN, a widening type
//! change, DROP NOT NULL, RENAME COLUMN, and a column dropped and added
//! again under the same name. After each: the registry holds exactly one new
//! version whose recorded changes name the DDL, the manifests mark the
//! boundary, no delta file mixes versions, and the merged lake (ours and
//! DuckDB's) equals the source table.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::harness::daemon::{DaemonProcess, TestConfig, wait_streaming};
use crate::harness::postgres::{PgCluster, TestDb};
use crate::harness::schemas::{assert_files_match_versions, settle, subject, versions};
use crate::harness::truth::assert_lake_matches_source;

/// Writes to the columns no DDL of this test touches (`id`, `v`, `t`):
/// inserts, updates and deletes in transactions of 1–20 statements, until
/// stopped.
pub struct BackgroundWriter {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<u64>,
}

impl BackgroundWriter {
    pub async fn start(db: &TestDb, table: &str, seed: u64, first_new_id: i64) -> BackgroundWriter {
        let client = db.client().await;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let table = table.to_string();
        let handle = tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut next_id = first_new_id;
            let mut txns = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let mut sql = String::from("BEGIN;");
                for _ in 0..rng.random_range(1..=20) {
                    let id = rng.random_range(1..next_id);
                    match rng.random_range(0..10) {
                        0..=3 => {
                            sql.push_str(&format!(
                                "INSERT INTO {table} (id, v, t) VALUES ({next_id}, {}, md5('{next_id}'));",
                                rng.random_range(0..1000)
                            ));
                            next_id += 1;
                        }
                        4..=8 => sql.push_str(&format!(
                            "UPDATE {table} SET v = v + 1, t = md5(t) WHERE id = {id};"
                        )),
                        _ => sql.push_str(&format!("DELETE FROM {table} WHERE id = {id};")),
                    }
                }
                sql.push_str("COMMIT;");
                client.batch_execute(&sql).await.unwrap_or_else(|e| {
                    panic!(
                        "background writer: {}",
                        crate::harness::postgres::pg_error(&e)
                    )
                });
                txns += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            txns
        });
        BackgroundWriter { stop, handle }
    }

    pub async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.expect("background writer task")
    }
}

/// One DDL step: the statement and a text each new version's recorded
/// changes must contain.
struct Step {
    ddl: &'static str,
    change: &'static str,
}

const STEPS: &[Step] = &[
    Step {
        ddl: "ALTER TABLE evo ADD COLUMN n1 int",
        change: "added column n1",
    },
    Step {
        ddl: "ALTER TABLE evo ADD COLUMN n2 int NOT NULL DEFAULT 7",
        change: "added column n2",
    },
    Step {
        ddl: "ALTER TABLE evo DROP COLUMN b",
        change: "dropped column b",
    },
    Step {
        ddl: "ALTER TABLE evo ALTER COLUMN c TYPE bigint",
        change: "column c",
    },
    Step {
        ddl: "ALTER TABLE evo ALTER COLUMN a DROP NOT NULL",
        change: "column a",
    },
    Step {
        ddl: "ALTER TABLE evo RENAME COLUMN a TO a2",
        change: "renamed column a to a2",
    },
    Step {
        ddl: "ALTER TABLE evo DROP COLUMN d; ALTER TABLE evo ADD COLUMN d text",
        change: "column d",
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_ddl_kind_mid_workload() {
    let seed = crate::harness::seed("schema_evolution::each_ddl_kind_mid_workload");
    let db = PgCluster::shared()
        .create_database("schema_evolution")
        .await;
    db.execute(
        "CREATE TABLE evo (id bigint PRIMARY KEY, v int NOT NULL, t text, \
           a int NOT NULL DEFAULT 0, b text, c int, d text);
         INSERT INTO evo SELECT g, g % 100, md5(g::text), g * 3, 'b' || g, g % 7, 'd' || g \
           FROM generate_series(1, 3000) g;",
    )
    .await;
    let config = TestConfig::new(&db, "app", &["evo"]);
    let mut daemon = DaemonProcess::start(&config);
    wait_streaming(&db, &config, &mut daemon).await;
    settle(&db, &config, &["public.evo"], &mut daemon).await;
    let subject = subject("app", "public.evo");
    assert_eq!(versions(&config.lake, &subject).len(), 1);
    assert_lake_matches_source(&db, &config.lake, "app", &["evo"]).await;

    for (i, step) in STEPS.iter().enumerate() {
        let writer =
            BackgroundWriter::start(&db, "evo", seed.seed + i as u64, 100_000 * (i as i64 + 1))
                .await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        db.execute(step.ddl).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let txns = writer.stop().await;
        settle(&db, &config, &["public.evo"], &mut daemon).await;
        daemon.assert_running(step.ddl);

        let registered = versions(&config.lake, &subject);
        assert_eq!(
            registered.len(),
            i + 2,
            "after `{}` ({txns} writer transactions around it) the registry should hold {} versions: {registered:#?}",
            step.ddl,
            i + 2
        );
        let latest = registered.last().unwrap();
        let changes = latest["changes"].to_string();
        assert!(
            changes.contains(step.change),
            "version {} after `{}` records changes {changes}, expected to mention {:?}",
            i + 2,
            step.ddl,
            step.change
        );
        assert_eq!(latest["compatible"], true, "{latest:#}");
        let seen = assert_files_match_versions(&config.lake, "app");
        let (order, markers) = &seen["public.evo"];
        assert_eq!(
            order.last(),
            Some(&(i as u64 + 2)),
            "the newest files of public.evo are not version {}: {order:?}",
            i + 2
        );
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "versions go back in the manifest log: {order:?}"
        );
        assert!(
            markers
                .iter()
                .any(|m| m["previous_version"] == (i as u64 + 1) && m["compatible"] == true),
            "no manifest marks the boundary {} → {}: {markers:#?}",
            i + 1,
            i + 2
        );
        assert_lake_matches_source(&db, &config.lake, "app", &["evo"]).await;
        eprintln!("step {} ok: {}", i + 1, step.ddl);
    }
    daemon.stop_gracefully(std::time::Duration::from_secs(30));
}
