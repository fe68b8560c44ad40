//! Test harness shared by every scenario of the integration-test binary.
//!
//! - [`postgres`]: one private PostgreSQL cluster for the whole binary (plus
//!   throwaway clusters with custom settings), a fresh database per test.
//! - [`daemon`]: the daemon as a child process (`kill -9`, SIGTERM) or
//!   in-process (`pipeline::run` with a cancellation token), its config, and
//!   the catch-up wait.
//! - [`lake`]: reading checkpoints, manifests and delta files from a lake dir.
//! - [`truth`]: the truth checker: the merged lake equals the source, and
//!   DuckDB's merge equals ours.
//! - [`workload`]: the seeded randomized workload generator.
//! - [`snapshot`]: snapshot scenarios' tables, churn workload, checkpoint
//!   `snapshot` object, `_op` counts and the `tributary snapshot` CLI.
//!
//! Every helper panics with a message that says what was expected, what was
//! found and where to look (daemon logs, server log, seed).

// Each scenario uses a different subset of the harness.
#![allow(dead_code)]

pub mod daemon;
pub mod lake;
pub mod mariadb;
pub mod postgres;
pub mod schemas;
pub mod snapshot;
pub mod truth;
pub mod workload;

use std::time::{SystemTime, UNIX_EPOCH};

/// Environment variable that fixes the seed of every randomized test.
pub const SEED_ENV: &str = "TRIBUTARY_TEST_SEED";

/// The seed for one test: `TRIBUTARY_TEST_SEED` when set, otherwise fresh.
/// Printed at once, and again by the returned guard if the test fails, with
/// the command line that reproduces it.
pub fn seed(test: &str) -> SeedGuard {
    let seed = match std::env::var(SEED_ENV) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_ENV}={text:?} is not an unsigned integer")),
        Err(_) => {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            // Mix in the test name and the pid so parallel tests differ.
            let mut h = nanos ^ u64::from(std::process::id()).rotate_left(32);
            for b in test.bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
            h
        }
    };
    eprintln!("[{test}] seed = {seed} (reproduce with {SEED_ENV}={seed})");
    SeedGuard {
        test: test.to_string(),
        seed,
    }
}

/// Prints the seed again when the test panics.
#[derive(Debug)]
pub struct SeedGuard {
    pub test: String,
    pub seed: u64,
}

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "\n[{}] FAILED with seed {} — reproduce with: {}={} cargo test --test main {}\n",
                self.test, self.seed, SEED_ENV, self.seed, self.test
            );
        }
    }
}

/// Shortens a value for failure messages: long strings keep their head and
/// tail and say how long they were.
pub fn abbreviate(text: &str, max: usize) -> String {
    let chars = text.chars().count();
    if chars <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max / 2).collect();
    let tail: String = text.chars().skip(chars - max / 4).collect();
    format!("{head}…[{chars} chars]…{tail}")
}

/// The last `lines` lines of a file (for logs), or a note why not.
pub fn tail_file(path: &std::path::Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            let mut out = String::new();
            if start > 0 {
                out.push_str(&format!(
                    "… ({start} earlier lines in {})\n",
                    path.display()
                ));
            }
            for line in &all[start..] {
                out.push_str(line);
                out.push('\n');
            }
            out
        }
        Err(e) => format!("(cannot read {}: {e})\n", path.display()),
    }
}
