//! A private PostgreSQL cluster for the tests.
//!
//! [`PgCluster::shared`] starts one cluster for the whole test binary (on
//! first use, thread-safe) in a temp dir, on a free loopback port, with
//! `wal_level=logical` and a small `logical_decoding_work_mem` so moderately
//! large transactions take the streaming (in-progress) path. Rust statics
//! never drop, so a detached watchdog shell waits for this process to exit and
//! then stops the server and removes the directory.
//!
//! [`PgCluster::start_custom`] starts a separate throwaway cluster with extra
//! settings (e.g. `wal_level=replica` for bad-input tests); it stops on drop.
//!
//! Each test gets its own database ([`PgCluster::create_database`]), which
//! already holds the `tributary_marker` table used by the catch-up wait.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// The superuser of every test cluster (trust authentication).
pub const SUPERUSER: &str = "postgres";

/// The marker table every test database gets (see `daemon::wait_caught_up`).
pub const MARKER_TABLE: &str = "tributary_marker";

/// Settings of every test cluster.
const BASE_CONF: &[&str] = &[
    "listen_addresses = '127.0.0.1'",
    "wal_level = logical",
    "max_replication_slots = 50",
    "max_wal_senders = 50",
    "max_connections = 200",
    "logical_decoding_work_mem = '64kB'",
    "fsync = off",
    "synchronous_commit = off",
    "full_page_writes = off",
    "shared_buffers = '128MB'",
    "max_wal_size = '2GB'",
    "wal_sender_timeout = '60s'",
    "log_min_messages = warning",
    "log_line_prefix = '%m [%p] %d '",
];

static SHARED: OnceLock<PgCluster> = OnceLock::new();
static DB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A running PostgreSQL cluster.
#[derive(Debug)]
pub struct PgCluster {
    /// Temp dir: `data/`, `server.log`, the unix socket.
    pub dir: PathBuf,
    pub port: u16,
    pub host: String,
    pub superuser: String,
    bindir: PathBuf,
    /// Stop and remove on drop (custom clusters; the shared one never drops).
    owned: bool,
}

impl PgCluster {
    /// The cluster shared by the whole test binary, started on first use.
    pub fn shared() -> &'static PgCluster {
        SHARED.get_or_init(|| {
            let cluster = PgCluster::start(&[], false).unwrap_or_else(|e| panic!("{e}"));
            cluster.spawn_watchdog();
            cluster
        })
    }

    /// A separate throwaway cluster with `extra_conf` lines appended after the
    /// standard settings (later lines win, e.g. `"wal_level = replica"`).
    /// Stopped (immediate) and removed when dropped.
    pub fn start_custom(extra_conf: &[&str]) -> PgCluster {
        PgCluster::start(extra_conf, true).unwrap_or_else(|e| panic!("{e}"))
    }

    fn start(extra_conf: &[&str], owned: bool) -> Result<PgCluster, String> {
        let bindir = pg_bindir()?;
        let dir = tempfile::Builder::new()
            .prefix("tributary-pg-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir for PostgreSQL: {e}"))?
            .keep();
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir))?;
        run(Command::new("chmod").arg("700").arg(&dir))?;
        let data = dir.join("data");
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bindir.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ]))
        .map_err(|e| {
            format!("initdb failed (PostgreSQL server binaries missing? run scripts/test): {e}")
        })?;

        // A free port can be taken between probing and binding: retry.
        let mut last_error = String::new();
        for _attempt in 0..5 {
            let port = free_port()?;
            let mut conf = format!(
                "\n# tributary test harness\nport = {port}\nunix_socket_directories = '{}'\n",
                dir.display()
            );
            for line in BASE_CONF.iter().chain(extra_conf) {
                conf.push_str(line);
                conf.push('\n');
            }
            let conf_path = data.join("postgresql.auto.conf");
            std::fs::write(&conf_path, conf)
                .map_err(|e| format!("writing {}: {e}", conf_path.display()))?;
            let cluster = PgCluster {
                dir: dir.clone(),
                port,
                host: "127.0.0.1".to_string(),
                superuser: SUPERUSER.to_string(),
                bindir: bindir.clone(),
                owned,
            };
            match cluster.pg_ctl(
                &["-w", "-t", "60", "-l"],
                Some(&dir.join("server.log")),
                "start",
            ) {
                Ok(()) => return Ok(cluster),
                Err(e) => {
                    last_error = format!("{e}\nserver log:\n{}", cluster.server_log_tail(30));
                    // Do not let Drop stop/remove; we retry in the same dir.
                    std::mem::forget(cluster);
                }
            }
        }
        Err(format!("PostgreSQL did not start: {last_error}"))
    }

    fn pg_ctl(&self, opts: &[&str], log: Option<&Path>, action: &str) -> Result<(), String> {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"])
            .arg(self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(opts);
        if let Some(log) = log {
            cmd.arg(log);
        }
        cmd.arg(action);
        run(&mut cmd)
    }

    /// Stops the server and removes its directory when this process exits,
    /// however it exits (statics never drop).
    fn spawn_watchdog(&self) {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             runuser -u postgres -- '{pg_ctl}' -D '{data}' -m immediate -w stop >/dev/null 2>&1; \
             rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = self.bindir.join("pg_ctl").display(),
            data = self.dir.join("data").display(),
            dir = self.dir.display(),
        );
        // setsid: a Ctrl-C to the test's process group must not kill the watchdog.
        let spawned = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .or_else(|_| {
                Command::new("sh")
                    .args(["-c", &script])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
            });
        if let Err(e) = spawned {
            eprintln!(
                "warning: cannot start the PostgreSQL watchdog ({e}); stop it by hand: pg_ctl -D {} stop",
                self.dir.join("data").display()
            );
        }
    }

    /// Stops the server now (immediate mode).
    pub fn stop(&self) {
        let _ = self.pg_ctl(&["-m", "immediate", "-w"], None, "stop");
    }

    /// The server log.
    pub fn server_log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The last `lines` lines of the server log.
    pub fn server_log_tail(&self, lines: usize) -> String {
        super::tail_file(&self.server_log_path(), lines)
    }

    /// key=value connection string for `dbname` as the superuser.
    pub fn conninfo(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user={} dbname={} application_name=tributary_tests",
            self.host, self.port, self.superuser, dbname
        )
    }

    /// Connects to `dbname`; the connection runs on the current tokio runtime.
    pub async fn connect(&self, dbname: &str) -> Client {
        connect(&self.conninfo(dbname)).await
    }

    /// Creates a fresh database (a unique suffix is added to `name`) holding
    /// the marker table.
    pub async fn create_database(&self, name: &str) -> TestDb {
        let n = DB_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut base: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        base.truncate(40);
        let db_name = format!("{base}_{n}_{}", std::process::id() % 100_000);
        let admin = self.connect("postgres").await;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{db_name}\""))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {db_name}: {}", pg_error(&e)));
        let db = TestDb {
            name: db_name.clone(),
            host: self.host.clone(),
            port: self.port,
            user: self.superuser.clone(),
            conninfo: self.conninfo(&db_name),
            server_log: self.server_log_path(),
        };
        db.execute(&format!(
            "CREATE TABLE {MARKER_TABLE} (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())"
        ))
        .await;
        db
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.owned {
            self.stop();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// One test's database.
#[derive(Debug, Clone)]
pub struct TestDb {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    /// key=value connection string.
    pub conninfo: String,
    pub server_log: PathBuf,
}

impl TestDb {
    /// A new connection (runs on the current tokio runtime).
    pub async fn client(&self) -> Client {
        connect(&self.conninfo).await
    }

    /// Runs one or more statements; panics with the server's message on error.
    pub async fn execute(&self, sql: &str) {
        let client = self.client().await;
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("SQL failed in {}: {}\n{sql}", self.name, pg_error(&e)));
    }

    /// Runs a query in the simple protocol; every value as PostgreSQL's text
    /// output (`None` for NULL).
    pub async fn query_text(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let client = self.client().await;
        query_text(&client, sql).await
    }

    /// A replication slot's `(active, confirmed_flush_lsn)`, if it exists.
    pub async fn slot_state(&self, slot: &str) -> Option<(bool, Option<u64>)> {
        let rows = self
            .query_text(&format!(
                "SELECT active, confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = {}",
                quote_literal(slot)
            ))
            .await;
        rows.first().map(|r| {
            (
                r[0].as_deref() == Some("t"),
                r[1].as_deref()
                    .map(|l| parse_lsn(l).unwrap_or_else(|| panic!("bad LSN {l:?}"))),
            )
        })
    }

    /// Waits until the slot exists and no walsender holds it (after a
    /// `kill -9` the server notices the dead connection a moment later).
    pub async fn wait_slot_inactive(&self, slot: &str, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.slot_state(slot).await {
                None | Some((false, _)) => return,
                Some((true, _)) if std::time::Instant::now() > deadline => {
                    panic!("replication slot {slot} still active {timeout:?} after the daemon died")
                }
                Some((true, _)) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    /// The last lines of the server log (for failure messages).
    pub fn server_log_tail(&self, lines: usize) -> String {
        super::tail_file(&self.server_log, lines)
    }
}

/// Runs a query in the simple protocol: text values, `None` for NULL.
pub async fn query_text(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("query failed: {}\n{sql}", pg_error(&e)));
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// Connects and drives the connection on the current runtime.
pub async fn connect(conninfo: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect with {conninfo:?}: {}", pg_error(&e)));
    tokio::spawn(async move {
        // Errors surface on the client side; a closed connection is normal.
        let _ = connection.await;
    });
    client
}

/// The server's message, detail and hint when there are any.
pub fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" (detail: {d})"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!(" (hint: {h})"));
            }
            s
        }
        None => format!("{e:?}"),
    }
}

/// `'text'` with quotes doubled (standard_conforming_strings is on).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// PostgreSQL's `X/Y` LSN text → u64.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// u64 → PostgreSQL's `X/Y` LSN text.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

fn pg_bindir() -> Result<PathBuf, String> {
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .map_err(|e| {
            format!("pg_config not found ({e}); install postgresql (scripts/test does)")
        })?;
    if !out.status.success() {
        return Err(format!(
            "pg_config --bindir failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !dir.join("initdb").exists() {
        return Err(format!(
            "{} has no initdb; install the PostgreSQL server package (scripts/test does)",
            dir.display()
        ));
    }
    Ok(dir)
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_clusters_have_the_promised_settings() {
    let db = PgCluster::shared()
        .create_database("harness_self_test")
        .await;
    let rows = db
        .query_text(
            "SELECT current_setting('wal_level'), current_setting('logical_decoding_work_mem'), \
                    current_setting('max_replication_slots'), \
                    (SELECT count(*) FROM tributary_marker)::text",
        )
        .await;
    assert_eq!(
        rows[0],
        vec![
            Some("logical".into()),
            Some("64kB".into()),
            Some("50".into()),
            Some("0".into())
        ]
    );
    let custom = PgCluster::start_custom(&["wal_level = replica"]);
    assert_ne!(custom.port, PgCluster::shared().port);
    let client = custom.connect("postgres").await;
    let rows = query_text(&client, "SHOW wal_level").await;
    assert_eq!(rows[0][0].as_deref(), Some("replica"));
    let dir = custom.dir.clone();
    drop(client);
    drop(custom);
    assert!(
        !dir.exists(),
        "a custom cluster's dir must be removed on drop"
    );
}
