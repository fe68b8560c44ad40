//! Tributary's integration tests: one binary, one scenario per module.
//!
//! Every scenario runs against real components: a private PostgreSQL cluster
//! started by [`harness`] (wal_level=logical, loopback, temp dir) shared by the
//! whole binary, with a fresh database per test; DuckDB through its Python
//! wheel for the merge cross-check.

mod harness;
mod truth_randomized;
mod crash_kill9;
mod clean_restart;
mod lake_merge;
mod bad_config;
mod bad_server;
mod unreachable_host;
mod full_sink;
mod unencodable_value;
mod checkpoint_cli;
