//! Tributary's integration tests: one binary, one scenario per module.
//!
//! Every scenario runs against real components: a private PostgreSQL cluster
//! started by [`harness`] (wal_level=logical, loopback, temp dir) shared by the
//! whole binary, with a fresh database per test; DuckDB through its Python
//! wheel for the merge cross-check.

mod bad_config;
mod bad_server;
mod binary_values;
mod checkpoint_cli;
mod clean_restart;
mod crash_kill9;
mod full_sink;
mod harness;
mod lake_merge;
mod mongodb_replica_set;
mod mongodb_stream;
mod mysql_binlog;
mod mysql_snapshots;
mod schema_evolution;
mod schema_incompatible;
mod schema_registry_http;
mod schema_table_identity;
mod snapshot_edge_cases;
mod snapshot_incremental;
mod snapshot_initial;
mod snapshot_kill9;
mod truth_randomized;
mod unencodable_value;
mod unreachable_host;
