//! A private MariaDB for the live tests: the machine's `mariadbd`, started
//! in a temp dir on a free loopback port with the binlog in ROW format, FULL
//! row images and metadata, and strict GTIDs; stopped (`kill -TERM`) when
//! dropped. Plus small helpers to read the binlog in tests.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};
use tributary_mysql::{
    DecodedEvent, Flavor, MysqlEvent, MysqlReplication, MysqlReplicationConfig, MysqlResume,
    StartBy,
};

/// A private MariaDB server; stopped and removed on drop.
pub struct Mariadb {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl Mariadb {
    /// Starts a server with `extra` options after the standard ones; `None`
    /// when the machine has no MariaDB server binaries (the test then says
    /// so and passes: CI installs them, see `.ci/run`).
    pub fn start(extra: &[&str]) -> Option<Mariadb> {
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
        // A private tmpdir: concurrent bootstraps sharing /tmp collide on
        // their temporary tables ("Unknown table 'mysql.tmp_proxies_priv'").
        let tmp = path.join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let tmpdir = format!("--tmpdir={}", tmp.display());
        run(&[
            "mariadb-install-db",
            "--no-defaults",
            &format!("--datadir={}", data.display()),
            &tmpdir,
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
            tmpdir.clone(),
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

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    pub fn opts(&self, user: &str) -> Opts {
        OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .user(Some(user))
            .into()
    }

    pub async fn root(&self) -> Conn {
        Conn::new(self.opts("root")).await.unwrap()
    }

    /// A CDC user with exactly the documented grants.
    pub async fn cdc_user(&self) -> Opts {
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

/// Starts a reader as replica `server_id` (heartbeats every 500 ms).
pub async fn start_reader(
    server_id: u32,
    opts: Opts,
    start: Option<MysqlResume>,
    by: StartBy,
) -> MysqlReplication {
    MysqlReplication::start_with(
        MysqlReplicationConfig {
            opts,
            server_id,
            flavor: Flavor::MariaDb,
            start,
            heartbeat: Duration::from_millis(500),
        },
        by,
    )
    .await
    .unwrap()
}

/// Reads events until `commits` transactions have committed; returns them
/// (heartbeats left out).
pub async fn read_commits(reader: &mut MysqlReplication, commits: usize) -> Vec<MysqlEvent> {
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

/// Like [`read_commits`], decoded.
pub async fn read_decoded(reader: &mut MysqlReplication, commits: usize) -> Vec<DecodedEvent> {
    let mut events = Vec::new();
    let mut seen = 0;
    while seen < commits {
        let event = tokio::time::timeout(Duration::from_secs(30), reader.next_decoded())
            .await
            .expect("a binlog event within 30 s")
            .unwrap();
        match event {
            DecodedEvent::Heartbeat { .. } => continue,
            DecodedEvent::Commit { .. } => seen += 1,
            _ => {}
        }
        events.push(event);
    }
    events
}

/// A session that works in UTC.
pub async fn utc_session(opts: Opts) -> Conn {
    let mut conn = Conn::new(opts).await.unwrap();
    conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
    conn
}
