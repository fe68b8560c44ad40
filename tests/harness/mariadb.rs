//! A private MariaDB server for a test: the machine's `mariadbd` in a temp
//! dir on a free loopback port, binlog on in ROW format with full row
//! images and metadata and GTIDs, stopped (SIGTERM) when dropped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tributary_mysql::mysql_async::prelude::Queryable;
use tributary_mysql::mysql_async::{Conn, Opts, OptsBuilder};

/// A running private MariaDB.
#[derive(Debug)]
pub struct Mariadb {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl Mariadb {
    /// Starts a server; panics with the server's log when it cannot.
    pub fn start() -> Mariadb {
        assert!(
            std::path::Path::new("/usr/sbin/mariadbd").exists()
                || Command::new("mariadbd").arg("--version").output().is_ok(),
            "the MySQL tests need MariaDB's server: apt-get install mariadb-server (scripts/test does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("tributary-mariadb-")
            .tempdir()
            .expect("temp dir");
        let path = dir.path().to_path_buf();
        let chown = Command::new("chown")
            .args(["-R", "mysql:mysql"])
            .arg(&path)
            .status()
            .expect("chown");
        assert!(chown.success(), "chown of {}", path.display());
        let data = path.join("data");
        let out = Command::new("runuser")
            .args(["-u", "mysql", "--", "mariadb-install-db", "--no-defaults"])
            .arg(format!("--datadir={}", data.display()))
            // Parallel installs share /tmp otherwise and trip over each other.
            .arg(format!("--tmpdir={}", path.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .output()
            .expect("mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = spawn_server(&path, port);
        let server = Mariadb { dir, port, child };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let started = Instant::now();
        while !Command::new("mariadb-admin")
            .args(["-h127.0.0.1", &format!("-P{}", self.port), "-uroot", "ping"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "MariaDB did not start:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (SIGTERM, waits) and starts it again on the same
    /// port and data: clients see their connections drop and the port
    /// refuse connections meanwhile.
    pub fn restart(&mut self, down_for: Duration) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("mysqld.pid")) {
            let _ = Command::new("kill").args(["-TERM", pid.trim()]).status();
        }
        let _ = self.child.wait();
        std::thread::sleep(down_for);
        self.child = spawn_server(self.dir.path(), self.port);
        self.wait_ready();
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub fn opts(&self, user: &str) -> Opts {
        OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .user(Some(user))
            .init(vec!["SET time_zone = '+00:00'".to_string()])
            .into()
    }

    pub async fn root(&self) -> Conn {
        Conn::new(self.opts("root")).await.expect("root connection")
    }

    /// Creates the CDC user `cdc` with the documented grants.
    pub async fn create_cdc_user(&self) {
        self.root()
            .await
            .query_drop(
                "CREATE USER 'cdc'@'127.0.0.1';
                 GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR, REPLICATION MASTER ADMIN ON *.* TO 'cdc'@'127.0.0.1'",
            )
            .await
            .expect("creating the cdc user");
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

/// `mariadbd` on `port` with the data in `dir/data`.
fn spawn_server(dir: &std::path::Path, port: u16) -> Child {
    let data = dir.join("data");
    Command::new("runuser")
        .args(["-u", "mysql", "--", "mariadbd", "--no-defaults"])
        .arg(format!("--datadir={}", data.display()))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--tmpdir={}", dir.display()))
        .arg(format!("--port={port}"))
        .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
        .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
        .arg(format!("--log-error={}", dir.join("error.log").display()))
        .args([
            "--skip-name-resolve",
            "--server-id=1",
            "--binlog-format=ROW",
            "--binlog-row-image=FULL",
            "--binlog-row-metadata=FULL",
            "--gtid-domain-id=0",
            "--gtid-strict-mode=1",
            "--log-slave-updates",
            "--innodb-buffer-pool-size=64M",
            "--innodb-flush-log-at-trx-commit=2",
            "--sync-binlog=0",
        ])
        .arg(format!("--log-bin={}", data.join("binlog").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mariadbd")
}
