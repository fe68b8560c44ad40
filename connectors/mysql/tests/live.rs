//! The connector against a real, private MariaDB (the machine's
//! `mariadbd`, started in a temp dir on a free loopback port with the
//! binlog in ROW format and GTIDs, stopped when the test ends).

use std::net::TcpListener;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Value};
use tributary_mysql::{
    Flavor, MysqlError, MysqlEvent, MysqlReplication, MysqlReplicationConfig, MysqlResume,
    RowsKind, preflight,
};

/// A private MariaDB server; stopped and removed on drop.
struct Mariadb {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl Mariadb {
    /// Starts a server with `extra` options after the standard ones; `None`
    /// when the machine has no MariaDB server binaries (the test then says
    /// so and passes: CI installs them, see `.ci/run`).
    fn start(extra: &[&str]) -> Option<Mariadb> {
        if Command::new("mariadbd").arg("--version").output().is_err()
            && !std::path::Path::new("/usr/sbin/mariadbd").exists()
        {
            eprintln!("SKIPPED: no mariadbd on this machine (apt-get install mariadb-server)");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("tributary-mariadb-")
            .tempdir()
            .unwrap();
        let path = dir.path().to_path_buf();
        let run = |args: &[&str]| {
            let status = Command::new("chown")
                .args(["-R", "mysql:mysql"])
                .arg(&path)
                .status()
                .unwrap();
            assert!(status.success());
            let out = Command::new("runuser")
                .args(["-u", "mysql", "--"])
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let data = path.join("data");
        run(&[
            "mariadb-install-db",
            "--no-defaults",
            &format!("--datadir={}", data.display()),
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]);
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut args: Vec<String> = vec![
            "--no-defaults".into(),
            format!("--datadir={}", data.display()),
            "--bind-address=127.0.0.1".into(),
            format!("--port={port}"),
            format!("--socket={}", path.join("mysqld.sock").display()),
            format!("--pid-file={}", path.join("mysqld.pid").display()),
            format!("--log-error={}", path.join("error.log").display()),
            "--skip-name-resolve".into(),
            "--server-id=1".into(),
            format!("--log-bin={}", data.join("binlog").display()),
            "--binlog-format=ROW".into(),
            "--binlog-row-image=FULL".into(),
            "--binlog-row-metadata=FULL".into(),
            "--gtid-domain-id=0".into(),
            "--gtid-strict-mode=1".into(),
            "--log-slave-updates".into(),
            "--innodb-buffer-pool-size=32M".into(),
            "--innodb-log-file-size=16M".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new("runuser")
            .args(["-u", "mysql", "--", "mariadbd"])
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Mariadb { dir, port, child };
        let started = Instant::now();
        loop {
            let ok = Command::new("mariadb-admin")
                .args(["-h127.0.0.1", &format!("-P{port}"), "-uroot", "ping"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "MariaDB did not start: {}",
                server.error_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(server)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    fn opts(&self, user: &str) -> Opts {
        OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .user(Some(user))
            .into()
    }

    async fn root(&self) -> Conn {
        Conn::new(self.opts("root")).await.unwrap()
    }

    /// A CDC user with exactly the documented grants.
    async fn cdc_user(&self) -> Opts {
        let mut root = self.root().await;
        root.query_drop(
            "CREATE USER IF NOT EXISTS 'cdc'@'127.0.0.1';
             GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR, REPLICATION MASTER ADMIN ON *.* TO 'cdc'@'127.0.0.1'",
        )
        .await
        .unwrap();
        self.opts("cdc")
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("mysqld.pid")) {
            let _ = Command::new("kill").args(["-TERM", pid.trim()]).status();
        }
        let _ = self.child.wait();
    }
}

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
    let problems = report.problems().join("\n");
    assert!(
        problems.contains("REPLICATION SLAVE") && problems.contains("GRANT"),
        "{problems}"
    );
}

#[tokio::test]
async fn statement_format_is_refused_with_the_fix() {
    let Some(server) = Mariadb::start(&["--binlog-format=STATEMENT"]) else {
        return;
    };
    let mut conn = Conn::new(server.cdc_user().await).await.unwrap();
    let report = preflight(&mut conn, 4242).await.unwrap();
    let problems = report.problems().join("\n");
    assert!(
        problems.contains("binlog_format is STATEMENT")
            && problems.contains("SET GLOBAL binlog_format = 'ROW'"),
        "{problems}"
    );
}

async fn start(server_id: u32, opts: Opts, start: Option<MysqlResume>) -> MysqlReplication {
    MysqlReplication::start(MysqlReplicationConfig {
        opts,
        server_id,
        flavor: Flavor::MariaDb,
        start,
        heartbeat: Duration::from_millis(500),
    })
    .await
    .unwrap()
}

/// Reads events until `commits` transactions have committed; returns them
/// (heartbeats left out).
async fn read_commits(reader: &mut MysqlReplication, commits: usize) -> Vec<MysqlEvent> {
    let mut events = Vec::new();
    let mut seen = 0;
    while seen < commits {
        let event = tokio::time::timeout(Duration::from_secs(30), reader.next())
            .await
            .expect("a binlog event within 30 s")
            .unwrap();
        match event {
            MysqlEvent::Heartbeat { .. } => continue,
            MysqlEvent::Commit { .. } => seen += 1,
            _ => {}
        }
        events.push(event);
    }
    events
}

fn value(v: &BinlogValue<'static>) -> Value {
    match v {
        BinlogValue::Value(v) => v.clone(),
        other => panic!("unexpected binlog value {other:?}"),
    }
}

#[tokio::test]
async fn committed_transactions_arrive_in_order_and_resume_exactly() {
    let Some(server) = Mariadb::start(&[]) else {
        return;
    };
    let opts = server.cdc_user().await;
    let mut root = server.root().await;
    root.query_drop(
        "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, name VARCHAR(20), amount DECIMAL(10,2), big BIGINT UNSIGNED)",
    )
    .await
    .unwrap();
    let mut reader = start(4242, opts.clone(), None).await;
    root.query_drop(
        "START TRANSACTION;
         INSERT INTO app.t VALUES (1, 'one', 1.50, 18446744073709551615), (2, 'two', NULL, 0);
         COMMIT;
         START TRANSACTION; UPDATE app.t SET name = 'uno' WHERE id = 1; DELETE FROM app.t WHERE id = 2; COMMIT;
         START TRANSACTION; INSERT INTO app.t VALUES (3, 'three', 3.00, 3); ROLLBACK;
         ALTER TABLE app.t ADD COLUMN note TEXT;
         INSERT INTO app.t VALUES (4, 'four', 4.00, 4, 'n');",
    )
    .await
    .unwrap();
    let events = read_commits(&mut reader, 4).await;
    let shape: Vec<String> = events
        .iter()
        .map(|e| match e {
            MysqlEvent::Begin { gtid, .. } => format!("begin({})", gtid.is_some()),
            MysqlEvent::Rows {
                kind, rows, table, ..
            } => {
                format!(
                    "{kind:?}({}.{} x{})",
                    table.database_name(),
                    table.table_name(),
                    rows.len()
                )
            }
            MysqlEvent::Query { sql, .. } => format!("query({})", &sql[..11]),
            MysqlEvent::Commit { .. } => "commit".into(),
            MysqlEvent::Heartbeat { .. } => unreachable!(),
        })
        .collect();
    assert_eq!(
        shape,
        [
            "begin(true)",
            "Insert(app.t x2)",
            "commit",
            "begin(true)",
            "Update(app.t x1)",
            "Delete(app.t x1)",
            "commit",
            "begin(true)",
            "query(ALTER TABLE)",
            "commit",
            "begin(true)",
            "Insert(app.t x1)",
            "commit",
        ],
        "the rolled-back transaction never reaches the binlog"
    );
    let MysqlEvent::Rows {
        rows,
        kind: RowsKind::Insert,
        ..
    } = &events[1]
    else {
        panic!()
    };
    let first = rows[0].1.as_ref().unwrap();
    assert_eq!(value(&first[0]), Value::Int(1));
    assert_eq!(value(&first[1]), Value::Bytes(b"one".to_vec()));
    assert_eq!(value(&first[2]), Value::Bytes(b"1.50".to_vec()));
    let second = rows[1].1.as_ref().unwrap();
    assert_eq!(value(&second[2]), Value::NULL);
    let MysqlEvent::Rows { rows, .. } = &events[4] else {
        panic!()
    };
    let (before, after) = &rows[0];
    assert_eq!(
        value(&before.as_ref().unwrap()[1]),
        Value::Bytes(b"one".to_vec())
    );
    assert_eq!(
        value(&after.as_ref().unwrap()[1]),
        Value::Bytes(b"uno".to_vec())
    );

    // Resume from the first commit: the next transaction is the second.
    let MysqlEvent::Commit { resume, .. } = &events[2] else {
        panic!()
    };
    assert!(resume.mariadb_gtid.is_some(), "{resume}");
    let mut again = start(4244, opts.clone(), Some(resume.clone())).await;
    let replay = read_commits(&mut again, 1).await;
    assert!(
        matches!(
            &replay[1],
            MysqlEvent::Rows {
                kind: RowsKind::Update,
                ..
            }
        ),
        "{replay:?}"
    );
    // Commit resume points strictly increase.
    let resumes: Vec<&MysqlResume> = events
        .iter()
        .filter_map(|e| match e {
            MysqlEvent::Commit { resume, .. } => Some(resume),
            _ => None,
        })
        .collect();
    assert!(
        resumes.windows(2).all(|w| w[0].file < w[1].file),
        "{resumes:?}"
    );

    // Idle: heartbeats carry the position after the last transaction.
    let idle = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let MysqlEvent::Heartbeat { resume } = reader.next().await.unwrap() {
                return resume;
            }
        }
    })
    .await
    .expect("a heartbeat from an idle server");
    assert_eq!(&idle.file, &resumes.last().unwrap().file);
}

#[tokio::test]
async fn a_purged_position_is_a_clear_error() {
    let Some(server) = Mariadb::start(&[]) else {
        return;
    };
    let opts = server.cdc_user().await;
    let mut root = server.root().await;
    let old = tributary_mysql::reader::current_position(&mut root, Flavor::MariaDb)
        .await
        .unwrap();
    root.query_drop("CREATE DATABASE x; FLUSH BINARY LOGS; FLUSH BINARY LOGS")
        .await
        .unwrap();
    // MariaDB keeps a file until its binlog checkpoint has passed: retry.
    let started = Instant::now();
    loop {
        let logs: Vec<mysql_async::Row> = root.query("SHOW BINARY LOGS").await.unwrap();
        let first: String = logs[0].get(0).unwrap();
        if first != old.file.file {
            break;
        }
        let last: String = logs.last().unwrap().get(0).unwrap();
        root.query_drop(format!("PURGE BINARY LOGS TO '{last}'"))
            .await
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "could not purge {}",
            old.file.file
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let result = MysqlReplication::start(MysqlReplicationConfig {
        opts,
        server_id: 4243,
        flavor: Flavor::MariaDb,
        start: Some(old.clone()),
        heartbeat: Duration::from_millis(500),
    })
    .await;
    // The server may accept the dump request and fail on the first read.
    let error = match result {
        Err(e) => e,
        Ok(mut reader) => reader.next().await.unwrap_err(),
    };
    assert!(matches!(error, MysqlError::Purged { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&old.file.file) && message.contains("tributary snapshot"),
        "{message}"
    );
}
