//! The MySQL/MariaDB source end to end on a private MariaDB: an initial copy
//! consistent with the binlog, then a seeded random workload over every
//! mapped type (unsigned integers, DECIMAL, DOUBLE, BIT, text, ENUM, SET,
//! DATE/DATETIME/TIMESTAMP with fractions, TIME, YEAR, VARBINARY, JSON,
//! every integer width signed and unsigned, FLOAT, latin1 CHAR, BLOB,
//! BINARY with trailing zero bytes, GEOMETRY as WKB) with
//! multi-row statements, key changes, rolled-back transactions, TRUNCATE,
//! an ALTER TABLE mid-stream and another while the daemon is down (rows of
//! the old shape replayed after the catalog moved on), a clean restart and a
//! `kill -9` three times at random moments, and the server restarting under
//! the running daemon: the merged
//! lake (ours and DuckDB's) equals the source tables; every version is in
//! the registry. Also: `check` and the daemon refuse a STATEMENT-format
//! binlog with the fix.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tributary::envelope::Value;
use tributary::merge::BronzeMerge;
use tributary::schema::ColumnType;
use tributary::sink::LakeStore;
use tributary_mysql::mysql_async::prelude::Queryable;
use tributary_mysql::mysql_async::{Conn, Row as MyRow};

use crate::harness::daemon::{Daemon, DaemonProcess};
use crate::harness::lake::{read_checkpoint, snapshots_done};
use crate::harness::mariadb::Mariadb;
use crate::harness::truth::{duckdb_merge, format_decimal};

const TABLES: &[&str] = &["shop.items", "shop.pairs"];

pub(crate) struct Setup {
    _tmp: tempfile::TempDir,
    pub(crate) root: PathBuf,
    pub(crate) lake: PathBuf,
    pub(crate) config: PathBuf,
}

pub(crate) fn setup(server: &Mariadb, extra: &str) -> Setup {
    let tmp = tempfile::Builder::new()
        .prefix("tributary-mysql-")
        .tempdir()
        .unwrap();
    let root = tmp.path().to_path_buf();
    let lake = root.join("lake");
    let config = root.join("tributary.toml");
    std::fs::write(
        &config,
        format!(
            r#"[daemon]
data_dir = "{data}"

[sink.lake]
kind = "lake"
url = "{lake}"
flush_interval_ms = 200

[[source]]
name = "shop"
kind = "mysql"
sink = "lake"
host = "127.0.0.1"
port = {port}
user = "cdc"
server_id = 777
tables = ["shop.items", "shop.pairs", "shop.marker"]
heartbeat_ms = 200
snapshot_chunk_rows = 300
{extra}
"#,
            data = root.join("data").display(),
            lake = lake.display(),
            port = server.port,
        ),
    )
    .unwrap();
    Setup {
        _tmp: tmp,
        root,
        lake,
        config,
    }
}

pub(crate) const SCHEMA: &str = "CREATE DATABASE shop;
CREATE TABLE shop.items (
  id INT PRIMARY KEY, u INT UNSIGNED, big BIGINT UNSIGNED, tiny TINYINT UNSIGNED,
  d DECIMAL(12,3), f DOUBLE, bits BIT(10), name VARCHAR(40), body TEXT,
  e ENUM('red','green','blue'), s SET('x','y','z'), dt DATETIME(6), ts TIMESTAMP(6) NULL,
  day DATE, t TIME, b VARBINARY(16), j JSON, y YEAR,
  m MEDIUMINT, sm SMALLINT, ti TINYINT, fl FLOAT, ch CHAR(6) CHARACTER SET latin1,
  bl BLOB, bn BINARY(4), g GEOMETRY, mu MEDIUMINT UNSIGNED, su SMALLINT UNSIGNED
);
CREATE TABLE shop.pairs (a INT, b VARCHAR(10), v INT, PRIMARY KEY (a, b));
CREATE TABLE shop.marker (id INT PRIMARY KEY);";

pub(crate) fn item_values(rng: &mut StdRng, id: i64) -> String {
    let e = ["'red'", "'green'", "'blue'"][rng.random_range(0..3)];
    let s = ["''", "'x'", "'x,z'", "'y,z'", "'x,y,z'"][rng.random_range(0..5)];
    let vals = vec![
        id.to_string(),
        rng.random_range(0..u32::MAX as u64).to_string(),
        if rng.random_range(0..4) == 0 {
            u64::MAX.to_string()
        } else {
            rng.random_range(0..u64::MAX / 2).to_string()
        },
        rng.random_range(0..=255).to_string(),
        format!(
            "{}.{:03}",
            rng.random_range(-999_999_999i64..999_999_999),
            rng.random_range(0..1000)
        ),
        format!("{}", rng.random_range(-1e6..1e6)),
        format!("b'{:010b}'", rng.random_range(0..1024)),
        format!("'n{}-é'", rng.random_range(0..1_000_000)),
        format!("REPEAT('body{id} ', {})", rng.random_range(0..300)),
        e.to_string(),
        s.to_string(),
        format!(
            "'20{:02}-0{}-1{} 1{}:2{}:3{}.{:06}'",
            rng.random_range(0..30),
            rng.random_range(1..10),
            rng.random_range(0..10),
            rng.random_range(0..10),
            rng.random_range(0..10),
            rng.random_range(0..10),
            rng.random_range(0..1_000_000)
        ),
        format!(
            "'20{:02}-0{}-1{} 0{}:00:0{}.{:06}'",
            rng.random_range(10..30),
            rng.random_range(1..10),
            rng.random_range(0..10),
            rng.random_range(0..10),
            rng.random_range(0..10),
            rng.random_range(0..1_000_000)
        ),
        format!(
            "'19{:02}-1{}-0{}'",
            rng.random_range(0..100),
            rng.random_range(0..3),
            rng.random_range(1..10)
        ),
        format!(
            "'{}:{:02}:{:02}'",
            rng.random_range(-800..800),
            rng.random_range(0..60),
            rng.random_range(0..60)
        ),
        format!("UNHEX('{:08X}')", rng.random_range(0..u32::MAX as u64)),
        format!(
            "'{{\"k\": {}, \"s\": \"v{id}\"}}'",
            rng.random_range(0..100)
        ),
        rng.random_range(1901..2155).to_string(),
        rng.random_range(-8_388_608..8_388_608).to_string(),
        rng.random_range(-32_768..32_768).to_string(),
        rng.random_range(-128..128).to_string(),
        // Values a FLOAT holds exactly and MySQL prints in full.
        format!(
            "{}.{}",
            rng.random_range(-999..1000),
            [0, 25, 5, 75][rng.random_range(0..4)]
        ),
        format!(
            "'{}{}'",
            ["ñ", "é€", "ß", "Œ"][rng.random_range(0..4)],
            rng.random_range(0..999)
        ),
        format!(
            "UNHEX('{}')",
            (0..rng.random_range(0..40))
                .map(|_| format!("{:02X}", rng.random_range(0..=255u8)))
                .collect::<String>()
        ),
        // Trailing zero bytes: BINARY pads with them.
        format!("UNHEX('{:02X}00')", rng.random_range(0..=255u8)),
        format!(
            "ST_GeomFromText('POINT({} {})')",
            rng.random_range(-180..180),
            rng.random_range(-90..90)
        ),
        rng.random_range(0..16_777_216).to_string(),
        rng.random_range(0..65_536).to_string(),
    ];
    let vals: Vec<String> = vals
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            if i > 0 && rng.random_range(0..8) == 0 {
                "NULL".to_string()
            } else {
                v
            }
        })
        .collect();
    format!("({})", vals.join(", "))
}

pub(crate) async fn random_transaction(conn: &mut Conn, rng: &mut StdRng, next_id: &mut i64) {
    let mut sql = String::from("START TRANSACTION;");
    for _ in 0..rng.random_range(1..8) {
        match rng.random_range(0..10) {
            0..=3 => {
                let n = rng.random_range(1..5);
                let rows: Vec<String> = (0..n)
                    .map(|_| {
                        *next_id += 1;
                        item_values(rng, *next_id)
                    })
                    .collect();
                sql.push_str(&format!(
                    "INSERT INTO shop.items VALUES {};",
                    rows.join(", ")
                ));
            }
            4..=5 => {
                let id = rng.random_range(1..=*next_id);
                let row = item_values(rng, id);
                sql.push_str(&format!("REPLACE INTO shop.items VALUES {row};"));
            }
            6 => {
                let id = rng.random_range(1..=*next_id);
                sql.push_str(&format!("UPDATE shop.items SET name = CONCAT('u', id), u = NULL WHERE id BETWEEN {id} AND {};", id + 3));
            }
            7 => {
                let id = rng.random_range(1..=*next_id);
                sql.push_str(&format!("DELETE FROM shop.items WHERE id = {id};"));
            }
            8 => {
                // A key change.
                *next_id += 1;
                let id = rng.random_range(1..*next_id);
                sql.push_str(&format!(
                    "UPDATE IGNORE shop.items SET id = {} WHERE id = {id};",
                    *next_id
                ));
            }
            _ => {
                let a = rng.random_range(0..50);
                sql.push_str(&format!(
                    "INSERT INTO shop.pairs (a, b, v) VALUES ({a}, 'k{}', {}) ON DUPLICATE KEY UPDATE v = v + 1;",
                    a % 3,
                    rng.random_range(0..100)
                ));
                if rng.random_range(0..3) == 0 {
                    sql.push_str(&format!(
                        "DELETE FROM shop.pairs WHERE a = {};",
                        rng.random_range(0..50)
                    ));
                }
            }
        }
    }
    sql.push_str(if rng.random_range(0..10) == 0 {
        "ROLLBACK;"
    } else {
        "COMMIT;"
    });
    conn.query_drop(sql).await.unwrap();
}

/// Waits until the lake holds marker row `id` and no snapshot is pending
/// (everything written before it is then durable too; a marker inserted
/// before the initial copy's snapshot is one of the copy's rows, and the
/// copy commits table by table).
pub(crate) async fn wait_marker(conn: &mut Conn, lake: &Path, id: i64, daemon: &mut DaemonProcess) {
    conn.query_drop(format!("INSERT INTO shop.marker VALUES ({id})"))
        .await
        .unwrap();
    let store = LakeStore::local(lake).unwrap();
    let started = Instant::now();
    loop {
        if let Ok(merged) = BronzeMerge::load(&store, "shop").await {
            let seen = merged
                .table("shop.marker")
                .is_some_and(|t| t.rows.iter().any(|r| r[0] == Value::Int32(id as i32)));
            let copied = read_checkpoint(lake, "shop").is_none_or(|c| snapshots_done(&c));
            if seen && copied {
                return;
            }
        }
        if let Some(how) = daemon.exited() {
            panic!(
                "the daemon {how} before marker {id}:\n{}",
                daemon.log_text(60)
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "marker {id} not in the lake after 120 s:\n{}",
            daemon.log_text(60)
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// The source table in canonical text, one SQL expression per column.
async fn source_rows(conn: &mut Conn, table: &str) -> (Vec<String>, Vec<Vec<Option<String>>>) {
    let (db, name) = table.split_once('.').unwrap();
    let columns: Vec<(String, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, name),
        )
        .await
        .unwrap();
    let exprs: Vec<String> = columns
        .iter()
        .map(|(c, ty)| {
            let c = format!("`{c}`");
            match ty.as_str() {
                "date" => format!("CAST(DATEDIFF({c}, '1970-01-01') AS CHAR)"),
                "datetime" | "timestamp" => {
                    format!("CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {c}) AS CHAR)")
                }
                "bit" => format!("CAST({c} + 0 AS CHAR)"),
                "geometry" | "point" => format!("HEX(ST_AsWKB({c}))"),
                "binary" | "varbinary" | "blob" | "tinyblob" | "mediumblob" | "longblob" => {
                    format!("HEX({c})")
                }
                _ => format!("CAST({c} AS CHAR)"),
            }
        })
        .collect();
    let rows: Vec<MyRow> = conn
        .query(format!("SELECT {} FROM {table}", exprs.join(", ")))
        .await
        .unwrap();
    let rows = rows
        .into_iter()
        .map(|row| {
            let values: Vec<Option<String>> = (0..row.len())
                .map(|i| row.get::<Option<String>, usize>(i).flatten())
                .collect();
            values
        })
        .collect();
    (columns.into_iter().map(|(c, _)| c).collect(), rows)
}

fn canon(ty: &ColumnType, value: &Value) -> Option<String> {
    Some(match (ty, value) {
        (_, Value::Null) => return None,
        (_, Value::Int16(v)) => v.to_string(),
        (_, Value::Int32(v)) => v.to_string(),
        (_, Value::Int64(v)) => v.to_string(),
        (ColumnType::Decimal { scale, .. }, Value::Decimal(v)) => {
            format_decimal(*v, *scale as usize)
        }
        (_, Value::Float64(v)) => format!("{v:?}"),
        (_, Value::Float32(v)) => format!("{v:?}"),
        (_, Value::Text(v)) => v.clone(),
        (_, Value::Date(v)) => v.to_string(),
        (_, Value::Timestamp(v)) => v.to_string(),
        (_, Value::Bytes(v)) => v.iter().map(|b| format!("{b:02X}")).collect(),
        (_, other) => format!("{other:?}"),
    })
}

/// Source text for a float column is re-read as f64 so both sides print alike.
fn canon_source(ty: &ColumnType, text: Option<String>) -> Option<String> {
    let text = text?;
    Some(match ty {
        ColumnType::Float64 => format!("{:?}", text.parse::<f64>().unwrap()),
        ColumnType::Float32 => format!("{:?}", text.parse::<f32>().unwrap()),
        _ => text,
    })
}

pub(crate) async fn assert_truth(conn: &mut Conn, lake: &Path) {
    let store = LakeStore::local(lake).unwrap();
    let merged = BronzeMerge::load(&store, "shop").await.unwrap();
    let duck_dir = tempfile::tempdir().unwrap();
    let duck = duckdb_merge(lake, "shop", duck_dir.path());
    for table in TABLES {
        let (names, mut expected) = source_rows(conn, table).await;
        let lake_table = merged
            .table(table)
            .unwrap_or_else(|| panic!("{table} not in the lake"));
        let lake_names: Vec<&str> = lake_table.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(lake_names, names, "columns of {table}");
        for row in &mut expected {
            for (cell, column) in row.iter_mut().zip(&lake_table.columns) {
                *cell = canon_source(&column.data_type, cell.take());
            }
        }
        let to_canon =
            |rows: &[Vec<Value>], columns: &[(String, ColumnType)]| -> Vec<Vec<Option<String>>> {
                rows.iter()
                    .map(|r| {
                        r.iter()
                            .zip(columns)
                            .map(|(v, (_, ty))| canon(ty, v))
                            .collect()
                    })
                    .collect()
            };
        let columns: Vec<(String, ColumnType)> = lake_table
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.data_type.clone()))
            .collect();
        let mut ours = to_canon(&lake_table.rows, &columns);
        let duck_table = duck
            .get(*table)
            .unwrap_or_else(|| panic!("DuckDB wrote no {table}"));
        // DuckDB's column types differ in width; read its values as ours.
        let mut theirs = to_canon(&duck_table.rows, &columns);
        expected.sort();
        ours.sort();
        theirs.sort();
        if expected != ours {
            let missing: Vec<_> = expected
                .iter()
                .filter(|r| !ours.contains(r))
                .take(3)
                .collect();
            let extra: Vec<_> = ours
                .iter()
                .filter(|r| !expected.contains(r))
                .take(3)
                .collect();
            // Column by column for rows whose first cell (the id) matches.
            let mut cells = Vec::new();
            for m in &missing {
                if let Some(e) = extra.iter().find(|e| e[0] == m[0]) {
                    for (i, (a, b)) in m.iter().zip(e.iter()).enumerate() {
                        if a != b {
                            cells.push(format!(
                                "{}: source {:?} lake {:?}",
                                names[i],
                                a.as_deref().map(|t| &t[..t.len().min(60)]),
                                b.as_deref().map(|t| &t[..t.len().min(60)])
                            ));
                        }
                    }
                }
            }
            let (missing, extra): (Vec<_>, Vec<_>) = (
                missing
                    .iter()
                    .map(|r| format!("{:?}", r.iter().take(4).collect::<Vec<_>>()))
                    .collect(),
                extra
                    .iter()
                    .map(|r| format!("{:?}", r.iter().take(4).collect::<Vec<_>>()))
                    .collect(),
            );
            eprintln!("differing cells: {cells:#?}");
            panic!(
                "THE LAKE DOES NOT MATCH THE SOURCE for {table}: source {} rows, lake {} rows\nin the source only: {missing:#?}\nin the lake only: {extra:#?}",
                expected.len(),
                ours.len()
            );
        }
        // DuckDB folds -0.0 into 0.0.
        let fold = |rows: Vec<Vec<Option<String>>>| -> Vec<Vec<Option<String>>> {
            rows.into_iter()
                .map(|r| {
                    r.into_iter()
                        .map(|c| {
                            if c.as_deref() == Some("-0.0") {
                                Some("0.0".into())
                            } else {
                                c
                            }
                        })
                        .collect()
                })
                .collect()
        };
        let (ours, theirs) = (fold(ours), fold(theirs));
        if ours != theirs {
            let first = ours.iter().zip(&theirs).find(|(a, b)| a != b);
            panic!(
                "DuckDB's merge of {table} differs from ours ({} vs {} rows); first difference: {first:?}",
                ours.len(),
                theirs.len()
            );
        }
        eprintln!("truth check passed: {table}: {} rows", expected.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binlog_truth_with_ddl_restart_and_kill9() {
    let seed = crate::harness::seed("mysql_binlog::binlog_truth_with_ddl_restart_and_kill9");
    let mut rng = StdRng::seed_from_u64(seed.seed);
    let mut server = Mariadb::start();
    server.create_cdc_user().await;
    let mut conn = server.root().await;
    conn.query_drop(SCHEMA).await.unwrap();
    let mut next_id = 0i64;
    // Rows that exist before the daemon: the initial copy's job.
    for _ in 0..20 {
        let rows: Vec<String> = (0..40)
            .map(|_| {
                next_id += 1;
                item_values(&mut rng, next_id)
            })
            .collect();
        conn.query_drop(format!("INSERT INTO shop.items VALUES {}", rows.join(", ")))
            .await
            .unwrap();
    }
    conn.query_drop("INSERT INTO shop.pairs VALUES (1, 'k0', 1), (2, 'k1', 2)")
        .await
        .unwrap();
    let setup = setup(&server, "");
    let mut daemon = DaemonProcess::start_with(setup.config.clone(), &setup.root);
    let mut marker = 0;
    let step = |m: &mut i64| {
        *m += 1;
        *m
    };
    wait_marker(&mut conn, &setup.lake, step(&mut marker), &mut daemon).await;
    assert_truth(&mut conn, &setup.lake).await;

    for _ in 0..60 {
        random_transaction(&mut conn, &mut rng, &mut next_id).await;
    }
    conn.query_drop("TRUNCATE TABLE shop.pairs").await.unwrap();
    for _ in 0..20 {
        random_transaction(&mut conn, &mut rng, &mut next_id).await;
    }
    wait_marker(&mut conn, &setup.lake, step(&mut marker), &mut daemon).await;
    assert_truth(&mut conn, &setup.lake).await;

    // A change of shape mid-stream.
    // With a default: every existing row now holds it, without row events.
    conn.query_drop("ALTER TABLE shop.pairs ADD COLUMN note VARCHAR(20) NOT NULL DEFAULT 'dflt'")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO shop.pairs VALUES (100, 'n', 1, 'noted'); UPDATE shop.pairs SET note = 'later' WHERE a < 10")
        .await
        .unwrap();
    wait_marker(&mut conn, &setup.lake, step(&mut marker), &mut daemon).await;
    assert_truth(&mut conn, &setup.lake).await;
    let versions = std::fs::read_dir(
        setup
            .lake
            .join("_schemas/subjects/shop.shop.pairs-value/versions"),
    )
    .map(|d| d.count())
    .unwrap_or(0);
    assert_eq!(
        versions, 2,
        "the ALTER TABLE registers a second version of shop.pairs"
    );

    // A clean restart, then a kill -9 in the middle of a burst.
    daemon.stop_gracefully(Duration::from_secs(30));
    for _ in 0..30 {
        random_transaction(&mut conn, &mut rng, &mut next_id).await;
    }
    // A change of shape while the daemon is down: after the restart the
    // catalog already has the new shape while the binlog replays rows of the
    // old one first (decoded with their registered version).
    conn.query_drop("ALTER TABLE shop.pairs DROP COLUMN note")
        .await
        .unwrap();
    for _ in 0..10 {
        random_transaction(&mut conn, &mut rng, &mut next_id).await;
    }
    daemon.restart();
    wait_marker(&mut conn, &setup.lake, step(&mut marker), &mut daemon).await;
    for _ in 0..40 {
        random_transaction(&mut conn, &mut rng, &mut next_id).await;
    }
    // kill -9 at random moments of bursts, three times.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..400))).await;
        daemon.kill9();
        for _ in 0..rng.random_range(5..30) {
            random_transaction(&mut conn, &mut rng, &mut next_id).await;
        }
        daemon.restart();
        for _ in 0..rng.random_range(5..30) {
            random_transaction(&mut conn, &mut rng, &mut next_id).await;
        }
    }
    wait_marker(&mut conn, &setup.lake, step(&mut marker), &mut daemon).await;
    assert_truth(&mut conn, &setup.lake).await;

    // The server restarts under the running daemon: it reconnects (with
    // backoff) and continues where it was.
    server.restart(Duration::from_secs(2));
    let mut conn = server.root().await;
    for _ in 0..20 {
        random_transaction(&mut conn, &mut rng, &mut next_id).await;
    }
    wait_marker(&mut conn, &setup.lake, step(&mut marker), &mut daemon).await;
    assert_truth(&mut conn, &setup.lake).await;
    assert!(
        daemon.log_text(400).contains("retry"),
        "the lost connection is retried, visibly:\n{}",
        daemon.log_text(40)
    );
    let versions = std::fs::read_dir(
        setup
            .lake
            .join("_schemas/subjects/shop.shop.pairs-value/versions"),
    )
    .map(|d| d.count())
    .unwrap_or(0);
    // Dropping the added column restores version 1's exact shape, which the
    // registry hands back rather than registering it again.
    assert_eq!(
        versions, 2,
        "ADD COLUMN then DROP COLUMN: still two versions of shop.pairs"
    );
    daemon.stop_gracefully(Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_format_and_missing_privileges_are_explained() {
    let server = Mariadb::start();
    let mut conn = server.root().await;
    conn.query_drop(SCHEMA).await.unwrap();
    // A user without replication privileges first.
    conn.query_drop("CREATE USER 'cdc'@'127.0.0.1'; GRANT SELECT ON *.* TO 'cdc'@'127.0.0.1'")
        .await
        .unwrap();
    let setup = setup(&server, "");
    let path = setup.config.to_str().unwrap();
    let (ok, out, err) = crate::bad_config::run_cli(&["check", "--config", path], &[]);
    let report = format!("{out}{err}");
    assert!(
        !ok && report.contains("REPLICATION SLAVE") && report.contains("GRANT"),
        "{report}"
    );
    let mut daemon = DaemonProcess::start_with(setup.config.clone(), &setup.root);
    let status = daemon.wait(Duration::from_secs(60));
    let log = daemon.log_text(20);
    assert!(
        !status.success() && log.contains("REPLICATION SLAVE"),
        "{log}"
    );

    // Privileges fixed, binlog format wrong.
    conn.query_drop(
        "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'cdc'@'127.0.0.1';
         SET GLOBAL binlog_format = 'STATEMENT'",
    )
    .await
    .unwrap();
    let (ok, out, err) = crate::bad_config::run_cli(&["check", "--config", path], &[]);
    let report = format!("{out}{err}");
    assert!(
        !ok && report.contains("binlog_format is STATEMENT")
            && report.contains("SET GLOBAL binlog_format = 'ROW'"),
        "{report}"
    );
    daemon.restart();
    let status = daemon.wait(Duration::from_secs(60));
    let log = daemon.log_text(20);
    assert!(
        !status.success() && log.contains("binlog_format is STATEMENT"),
        "{log}"
    );
    assert!(
        !setup.lake.join("shop/_checkpoint.json").exists(),
        "no checkpoint may be written by a source that refused to start"
    );

    // Fixed: check passes.
    conn.query_drop("SET GLOBAL binlog_format = 'ROW'")
        .await
        .unwrap();
    let (ok, out, err) = crate::bad_config::run_cli(&["check", "--config", path], &[]);
    assert!(ok, "{out}{err}");
}
