//! Running the daemon under test, two ways:
//!
//! - [`DaemonProcess`]: the real binary (`tributary run --config F`) as a
//!   child process, stdout/stderr appended to files in the test's temp dir,
//!   with `kill -9`, SIGTERM and restart. Its logs are printed if the test
//!   panics while it is alive (or dropped).
//! - [`InProcessDaemon`]: `tributary::pipeline::run` on the test's tokio
//!   runtime with a cancellation token.
//!
//! Plus the config writer ([`TestConfig`]) and the catch-up wait
//! ([`wait_caught_up`]).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::lake;
use super::postgres::{MARKER_TABLE, TestDb, format_lsn, parse_lsn, query_text};

/// Everything one test's daemon needs: a temp dir holding the lake, the
/// daemon's data dir, the config file and the logs.
#[derive(Debug)]
pub struct TestConfig {
    /// Keeps the temp dir alive (removed when the test passes; kept and
    /// printed when it fails).
    tmp: Option<tempfile::TempDir>,
    pub root: PathBuf,
    pub lake: PathBuf,
    pub data_dir: PathBuf,
    pub source: String,
    pub slot: String,
    pub publication: String,
    pub tables: Vec<String>,
    pub flush_interval_ms: u64,
    pub flush_rows: usize,
    /// Extra TOML lines appended to the `[[source]]` table (e.g.
    /// `snapshot = "never"`, `snapshot_chunk_rows = 5000`); empty by default.
    pub source_extra: Vec<String>,
    /// Extra TOML lines for the `[daemon]` table (e.g. `http_listen`).
    pub daemon_extra: Vec<String>,
    /// `manage_publication` (default true).
    pub manage_publication: bool,
    pub db: TestDb,
}

impl TestConfig {
    /// A config for `db` capturing `tables` (`public.` is added when a name
    /// has no schema; the marker table is always added). Slot names are
    /// cluster-wide, so the slot is named after the database.
    pub fn new(db: &TestDb, source: &str, tables: &[&str]) -> TestConfig {
        let tmp = tempfile::Builder::new()
            .prefix("tributary-test-")
            .tempdir()
            .expect("temp dir for the lake");
        let root = tmp.path().to_path_buf();
        let mut list: Vec<String> = tables
            .iter()
            .map(|t| {
                if t.contains('.') {
                    t.to_string()
                } else {
                    format!("public.{t}")
                }
            })
            .collect();
        let marker = format!("public.{MARKER_TABLE}");
        if !list.contains(&marker) {
            list.push(marker);
        }
        let mut slot = format!("trib_{}", db.name);
        slot.truncate(63);
        TestConfig {
            tmp: Some(tmp),
            lake: root.join("lake"),
            data_dir: root.join("data"),
            root,
            source: source.to_string(),
            slot,
            publication: format!("tributary_{source}"),
            tables: list,
            flush_interval_ms: 200,
            flush_rows: 50_000,
            source_extra: Vec::new(),
            daemon_extra: Vec::new(),
            manage_publication: true,
            db: db.clone(),
        }
    }

    /// The TOML the daemon reads.
    pub fn toml(&self) -> String {
        let tables: Vec<String> = self.tables.iter().map(|t| format!("{t:?}")).collect();
        let mut text = self.base_toml(&tables);
        for line in &self.source_extra {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// Adds a line to the `[[source]]` table (builder style).
    pub fn with_source_line(mut self, line: impl Into<String>) -> TestConfig {
        self.source_extra.push(line.into());
        self
    }

    fn base_toml(&self, tables: &[String]) -> String {
        format!(
            r#"[daemon]
data_dir = {data_dir:?}
{daemon_extra}

[sink.lake]
kind = "lake"
url = {lake:?}
flush_interval_ms = {interval}
flush_rows = {rows}

[[source]]
name = {source:?}
kind = "postgres"
sink = "lake"
host = {host:?}
port = {port}
database = {database:?}
user = {user:?}
sslmode = "disable"
slot = {slot:?}
publication = {publication:?}
manage_publication = {manage}
tables = [{tables}]
"#,
            data_dir = self.data_dir.display().to_string(),
            daemon_extra = self.daemon_extra.join("\n"),
            lake = self.lake.display().to_string(),
            interval = self.flush_interval_ms,
            rows = self.flush_rows,
            source = self.source,
            host = self.db.host,
            port = self.db.port,
            database = self.db.name,
            user = self.db.user,
            slot = self.slot,
            publication = self.publication,
            manage = self.manage_publication,
            tables = tables.join(", "),
        )
    }

    /// The parsed config (panics with the parser's message).
    pub fn config(&self) -> tributary::config::Config {
        tributary::config::Config::from_toml_str(&self.toml()).unwrap_or_else(|e| {
            panic!(
                "the harness wrote a config the daemon rejects: {e}\n{}",
                self.toml()
            )
        })
    }

    /// Writes the config file and returns its path.
    pub fn write(&self) -> PathBuf {
        let path = self.root.join("tributary.toml");
        std::fs::write(&path, self.toml()).expect("writing the config file");
        path
    }

    /// Table names as the lake names them (`namespace.name`), marker excluded.
    pub fn lake_tables(&self) -> Vec<String> {
        self.tables
            .iter()
            .filter(|t| !t.ends_with(MARKER_TABLE))
            .cloned()
            .collect()
    }
}

impl Drop for TestConfig {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(tmp) = self.tmp.take() {
                let kept = tmp.keep();
                eprintln!("test files kept for inspection: {}", kept.display());
            }
        }
    }
}

/// How the catch-up wait asks a daemon whether it is still alive and what
/// it logged.
pub trait Daemon {
    /// `Some(description)` when the daemon has already stopped.
    fn exited(&mut self) -> Option<String>;
    /// Its logs (or where to find them).
    fn logs(&self) -> String;
}

/// The daemon binary as a child process.
#[derive(Debug)]
pub struct DaemonProcess {
    config_path: PathBuf,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    child: Option<Child>,
    starts: u32,
    /// Print the logs when dropped during a panic.
    print_on_panic: bool,
}

impl DaemonProcess {
    /// Writes the config and starts `tributary run --config F`.
    pub fn start(config: &TestConfig) -> DaemonProcess {
        let config_path = config.write();
        DaemonProcess::start_with(config_path, &config.root)
    }

    /// Starts `tributary run --config config_path`, logs in `root`.
    pub fn start_with(config_path: PathBuf, root: &Path) -> DaemonProcess {
        let mut daemon = DaemonProcess {
            config_path,
            stdout_path: root.join("daemon.stdout.log"),
            stderr_path: root.join("daemon.stderr.log"),
            child: None,
            starts: 0,
            print_on_panic: true,
        };
        daemon.restart();
        daemon
    }

    /// Starts the binary again (the previous one must have exited).
    pub fn restart(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if child.try_wait().ok().flatten().is_none() {
                panic!(
                    "restart() while the daemon (pid {}) is still running",
                    child.id()
                );
            }
        }
        self.starts += 1;
        let header = format!(
            "\n===== harness: start #{} at {:?} =====\n",
            self.starts,
            chrono::Utc::now()
        );
        let stdout = append(&self.stdout_path, &header);
        let stderr = append(&self.stderr_path, &header);
        let child = Command::new(env!("CARGO_BIN_EXE_tributary"))
            .arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .env(
                "TRIBUTARY_LOG",
                std::env::var("TRIBUTARY_LOG")
                    .unwrap_or_else(|_| "info,tributary=debug,pg_walstream=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", env!("CARGO_BIN_EXE_tributary")));
        self.child = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        let child = self.child.as_mut().expect("daemon was never started");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGTERM (graceful: finish the batch, checkpoint, exit 0).
    pub fn terminate(&mut self) {
        let pid = self.pid().expect("daemon was never started");
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM {pid} failed");
    }

    /// Waits for the process to exit; panics with the logs after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("daemon was never started");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the daemon did not exit within {timeout:?}; killed it\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait; panics unless the exit is clean (status 0).
    pub fn stop_gracefully(&mut self, timeout: Duration) {
        self.terminate();
        let status = self.wait(timeout);
        assert!(
            status.success(),
            "the daemon exited with {status} after SIGTERM (expected 0)\n{}",
            self.logs()
        );
    }

    /// Panics with the logs if the daemon is not running.
    pub fn assert_running(&mut self, context: &str) {
        if let Some(how) = self.exited() {
            panic!("the daemon {how} ({context})\n{}", self.logs());
        }
    }

    /// Both log files, tails only.
    pub fn log_text(&self, lines: usize) -> String {
        format!(
            "----- daemon stderr ({}) -----\n{}----- daemon stdout ({}) -----\n{}-----",
            self.stderr_path.display(),
            super::tail_file(&self.stderr_path, lines),
            self.stdout_path.display(),
            super::tail_file(&self.stdout_path, lines / 4),
        )
    }
}

impl Daemon for DaemonProcess {
    fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(format!("exited with {status}")),
            Ok(None) => None,
            Err(e) => Some(format!("cannot be waited for: {e}")),
        }
    }

    fn logs(&self) -> String {
        self.log_text(200)
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() && self.print_on_panic {
            eprintln!("{}", self.log_text(300));
        }
    }
}

fn append(path: &Path, header: &str) -> File {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let _ = file.write_all(header.as_bytes());
    file
}

/// Installs a tracing subscriber (once per test binary) so the in-process
/// daemon's logs land in the test's captured output (`TRIBUTARY_LOG` filters).
pub fn init_test_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env("TRIBUTARY_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,pg_walstream=warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// `tributary::pipeline::run` spawned on the current tokio runtime.
#[derive(Debug)]
pub struct InProcessDaemon {
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<Result<(), tributary::error::RunError>>>,
}

impl InProcessDaemon {
    pub fn start(config: &TestConfig) -> InProcessDaemon {
        init_test_logging();
        let config = config.config();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let handle = tokio::spawn(async move { tributary::pipeline::run(config, token).await });
        InProcessDaemon {
            shutdown,
            handle: Some(handle),
        }
    }

    /// Cancels and waits for `run` to return (its result, or a panic after
    /// `timeout`).
    pub async fn stop(mut self, timeout: Duration) -> Result<(), tributary::error::RunError> {
        self.shutdown.cancel();
        let handle = self.handle.take().expect("stopped twice");
        match tokio::time::timeout(timeout, handle).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => panic!("pipeline::run panicked: {join}"),
            Err(_) => panic!("pipeline::run did not return within {timeout:?} after cancellation"),
        }
    }

    /// Waits for `run` to return on its own (without cancelling).
    pub async fn join(mut self) -> Result<(), tributary::error::RunError> {
        let handle = self.handle.take().expect("joined twice");
        handle
            .await
            .unwrap_or_else(|e| panic!("pipeline::run panicked: {e}"))
    }

    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }
}

impl Daemon for InProcessDaemon {
    fn exited(&mut self) -> Option<String> {
        use futures::FutureExt;
        if !self.is_finished() {
            return None;
        }
        let how = match self.handle.take().map(|h| h.now_or_never()) {
            Some(Some(Ok(Ok(())))) => "returned Ok before being stopped".to_string(),
            Some(Some(Ok(Err(e)))) => format!("returned an error: {e}"),
            Some(Some(Err(join))) => format!("panicked: {join}"),
            Some(None) | None => "has stopped".to_string(),
        };
        Some(format!("(in-process pipeline::run) {how}"))
    }

    fn logs(&self) -> String {
        "(in-process daemon: its logs are in this test's captured output above)".to_string()
    }
}

impl Drop for InProcessDaemon {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

/// Commits a marker row and waits until the daemon's checkpoint covers it:
/// reads `pg_current_wal_insert_lsn()` as L inside the marker transaction,
/// then polls `<lake>/<source>/_checkpoint.json` until
/// `last_position.commit_lsn > L` (committing another marker every 2 s, in
/// case the first one predates the slot). Panics with the checkpoint, the daemon's
/// logs and the server log tail on timeout or if the daemon dies.
pub async fn wait_caught_up(
    db: &TestDb,
    lake_root: &Path,
    source: &str,
    timeout: Duration,
    daemon: &mut dyn Daemon,
) {
    let client = db.client().await;
    let marker_sql = format!(
        "BEGIN; SELECT pg_current_wal_insert_lsn()::text; INSERT INTO {MARKER_TABLE} DEFAULT VALUES; COMMIT;"
    );
    let rows = query_text(&client, &marker_sql).await;
    let marker_lsn = rows
        .first()
        .and_then(|r| r[0].as_deref())
        .and_then(parse_lsn)
        .expect("pg_current_wal_insert_lsn()");
    let started = Instant::now();
    let deadline = started + timeout;
    let mut last_marker = started;
    loop {
        let checkpoint = lake::read_checkpoint(lake_root, source);
        let reached = checkpoint.as_ref().and_then(lake::checkpoint_commit_lsn);
        if reached.is_some_and(|lsn| lsn > marker_lsn) {
            eprintln!(
                "caught up past marker {} in {:.1}s",
                format_lsn(marker_lsn),
                started.elapsed().as_secs_f64()
            );
            return;
        }
        let dead = daemon.exited();
        if dead.is_some() || Instant::now() > deadline {
            let why = match dead {
                Some(how) => format!("the daemon {how}"),
                None => format!("timed out after {timeout:?}"),
            };
            let slot = query_text(
                &client,
                "SELECT slot_name, active, confirmed_flush_lsn::text, pg_current_wal_lsn()::text FROM pg_replication_slots",
            )
            .await;
            panic!(
                "waiting for the daemon to catch up with marker LSN {}: {why}\n\
                 checkpoint ({}):\n{}\nreplication slots: {slot:?}\n{}\n----- PostgreSQL log -----\n{}",
                format_lsn(marker_lsn),
                lake::checkpoint_path(lake_root, source).display(),
                checkpoint
                    .map(|c| serde_json::to_string_pretty(&c).unwrap_or_default())
                    .unwrap_or_else(|| "(none yet)".into()),
                daemon.logs(),
                db.server_log_tail(40),
            );
        }
        // A marker committed before the slot existed is never streamed (a
        // daemon that just started may not have created it yet): commit a
        // fresh one now and then. Any later commit past L proves the same.
        if last_marker.elapsed() > Duration::from_secs(2) {
            query_text(&client, &marker_sql).await;
            last_marker = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the daemon's walsender holds the slot. Changes committed
/// before the slot exists are not captured (that is what snapshots are
/// for), so every scenario waits for this before running its workload.
pub async fn wait_streaming(db: &TestDb, config: &TestConfig, daemon: &mut dyn Daemon) {
    let deadline = Instant::now() + Duration::from_secs(60);
    // "Active" alone is not enough: while pg_create_logical_replication_slot
    // waits for a consistent point the creating backend holds the slot too.
    // Streaming means a walsender (pg_stat_replication) holds it, past
    // `startup`: the walsender that created the slot and exports its
    // snapshot during an initial copy holds it too, in state `startup`.
    let sql = format!(
        "SELECT count(*) FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid \
         WHERE s.slot_name = '{}' AND r.state IN ('catchup', 'streaming')",
        config.slot
    );
    loop {
        let rows = db.query_text(&sql).await;
        if rows.first().and_then(|r| r[0].as_deref()) == Some("1") {
            return;
        }
        if let Some(how) = daemon.exited() {
            panic!(
                "the daemon stopped before streaming ({how}):\n{}",
                daemon.logs()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the daemon never started streaming:\n{}",
            daemon.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
