//! The command line: `run`, `check`, `checkpoint show|reset`, `snapshot`.
//!
//! Lives in the library (not `main.rs`) so integration tests drive the same
//! code paths operators do. `main.rs` only parses arguments, sets up logging
//! and signals, and maps errors to exit codes.

pub mod check;
pub mod checkpoint;
pub mod snapshot;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Tributary: change data capture into Parquet deltas and bronze merge manifests.
#[derive(Debug, Parser)]
#[command(name = "tributary", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every configured source until SIGINT/SIGTERM.
    Run {
        /// Path to the TOML configuration.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Connect to every source and sink and report every problem with its fix.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Ask a running source (or its next start) for an incremental snapshot
    /// of some tables, copied while the stream keeps running.
    Snapshot {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        source: String,
        /// A captured table (schema.table); repeat for several.
        #[arg(long = "table", required = true)]
        tables: Vec<String>,
        /// Empty each table in the lake before copying it (rows deleted at
        /// the source without a logged delete then disappear too).
        #[arg(long)]
        reset: bool,
    },
    /// Inspect or move a source's checkpoint.
    Checkpoint {
        #[command(subcommand)]
        action: CheckpointAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum CheckpointAction {
    /// Print the checkpoint of each source (or one).
    Show {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        source: Option<String>,
    },
    /// Move a source's checkpoint (the daemon must be stopped): PostgreSQL
    /// to an LSN the slot can still serve; MySQL/MariaDB to a binlog
    /// position the server still has, or `current`.
    Reset {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        source: String,
        /// PostgreSQL: an LSN, e.g. 0/16B3748. MySQL/MariaDB: FILE:POS
        /// (e.g. binlog.000042:1234) or `current` (stream from the
        /// server's current position and copy every table again).
        #[arg(long)]
        to: String,
    },
}
