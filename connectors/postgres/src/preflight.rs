//! The server-side checks behind `tributary check`.
//!
//! Runs over an ordinary connection before anything is created or streamed and
//! collects every problem at once (instead of failing on the first), each with
//! the SQL or action that fixes it, so an operator can prepare a server in one
//! pass. Nothing here changes the server.

use tokio_postgres::Client;

use crate::catalog::{table_identity, table_oid};
use crate::error::PgError;
use crate::event::ReplicaIdentity;
use crate::slot::{PublicationPlan, PublicationTables, plan_publication, slot_state};
use crate::sql::{qualified, quote_ident, quote_literal};

/// What to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightConfig {
    /// Replication slot name.
    pub slot: String,
    /// Publication name.
    pub publication: String,
    /// Tables the publication must cover.
    pub tables: PublicationTables,
    /// Whether tributary may create/alter the publication itself.
    pub manage_publication: bool,
    /// The role tributary replicates as.
    pub user: String,
}

/// One thing that prevents replication from working, and its fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub what: String,
    /// The SQL to run or the action to take.
    pub fix: String,
}

fn problem(what: impl Into<String>, fix: impl Into<String>) -> Problem {
    Problem {
        what: what.into(),
        fix: fix.into(),
    }
}

async fn setting(client: &Client, name: &str) -> Result<String, PgError> {
    Ok(client
        .query_one("SELECT current_setting($1)", &[&name])
        .await?
        .get(0))
}

/// Check the server and configuration; an empty result means ready to replicate.
/// Errors only when the checks themselves cannot run (connection lost).
pub async fn preflight(client: &Client, cfg: &PreflightConfig) -> Result<Vec<Problem>, PgError> {
    let mut problems = Vec::new();

    let version: i32 = setting(client, "server_version_num")
        .await?
        .parse()
        .unwrap_or(0);
    if version < 140_000 {
        let shown = setting(client, "server_version").await?;
        problems.push(problem(
            format!("PostgreSQL {shown} is too old: pgoutput protocol version 2 with streaming of large in-progress transactions needs PostgreSQL 14 or newer"),
            "upgrade the server to PostgreSQL 14 or newer",
        ));
    }

    let wal_level = setting(client, "wal_level").await?;
    if wal_level != "logical" {
        problems.push(problem(
            format!("wal_level is '{wal_level}'; logical replication needs wal_level=logical"),
            "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL",
        ));
    }

    let max_slots: i32 = setting(client, "max_replication_slots")
        .await?
        .parse()
        .unwrap_or(0);
    let slot = slot_state(client, &cfg.slot).await?;
    if max_slots == 0 {
        problems.push(problem(
            "max_replication_slots is 0, so no replication slot can exist",
            "ALTER SYSTEM SET max_replication_slots = 10; then restart PostgreSQL",
        ));
    } else if !slot.exists {
        let used: i64 = client
            .query_one("SELECT count(*) FROM pg_catalog.pg_replication_slots", &[])
            .await?
            .get(0);
        if used >= i64::from(max_slots) {
            problems.push(problem(
                format!("all {max_slots} replication slots (max_replication_slots) are in use, so slot \"{}\" cannot be created", cfg.slot),
                format!(
                    "drop unused slots (SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active AND ...) or ALTER SYSTEM SET max_replication_slots = {}; then restart PostgreSQL",
                    max_slots + 10
                ),
            ));
        }
    }

    let max_senders: i32 = setting(client, "max_wal_senders")
        .await?
        .parse()
        .unwrap_or(0);
    if max_senders == 0 {
        problems.push(problem(
            "max_wal_senders is 0, so no replication connection is possible",
            "ALTER SYSTEM SET max_wal_senders = 10; then restart PostgreSQL",
        ));
    }

    check_role(client, &cfg.user, &mut problems).await?;

    if slot.exists {
        if let Some(pid) = slot.active_pid {
            problems.push(problem(
                format!("replication slot \"{}\" is active for PID {pid}", cfg.slot),
                format!("stop the other consumer (SELECT pg_terminate_backend({pid})) or choose another slot_name"),
            ));
        }
        match slot.plugin.as_deref() {
            Some("pgoutput") => {}
            other => problems.push(problem(
                format!(
                    "replication slot \"{}\" uses {} instead of pgoutput",
                    cfg.slot,
                    other.unwrap_or("no plugin (physical slot)")
                ),
                format!(
                    "SELECT pg_drop_replication_slot({}); or choose another slot_name",
                    quote_literal(&cfg.slot)
                ),
            )),
        }
        if slot.wal_status.as_deref() == Some("lost") {
            problems.push(problem(
                format!("replication slot \"{}\" has lost required WAL (wal_status = lost)", cfg.slot),
                format!("SELECT pg_drop_replication_slot({}); then let tributary recreate it and re-snapshot", quote_literal(&cfg.slot)),
            ));
        }
    }

    let tables_ok = check_tables(client, &cfg.tables, &mut problems).await?;

    if tables_ok && !cfg.manage_publication {
        match plan_publication(client, &cfg.publication, &cfg.tables).await {
            Ok(PublicationPlan::UpToDate) => {}
            Ok(PublicationPlan::Create { sql }) => problems.push(problem(
                format!(
                    "publication \"{}\" does not exist (publication management is off)",
                    cfg.publication
                ),
                sql,
            )),
            Ok(PublicationPlan::Alter { sql, missing }) => problems.push(problem(
                format!(
                    "publication \"{}\" lacks {} (publication management is off)",
                    cfg.publication,
                    crate::slot::describe(&missing)
                ),
                sql,
            )),
            Err(PgError::Config { message }) => {
                problems.push(problem(message, "configure at least one existing table"))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(problems)
}

async fn check_role(
    client: &Client,
    user: &str,
    problems: &mut Vec<Problem>,
) -> Result<(), PgError> {
    let row = client
        .query_opt("SELECT rolreplication, rolsuper, rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = $1", &[&user])
        .await?;
    let Some(row) = row else {
        problems.push(problem(
            format!("role \"{user}\" does not exist"),
            format!(
                "CREATE ROLE {} LOGIN REPLICATION PASSWORD '...';",
                quote_ident(user)
            ),
        ));
        return Ok(());
    };
    let (replication, superuser, login): (bool, bool, bool) = (row.get(0), row.get(1), row.get(2));
    if !replication && !superuser {
        problems.push(problem(
            format!("role \"{user}\" has neither the REPLICATION attribute nor superuser, so it cannot start a walsender"),
            format!("ALTER ROLE {} REPLICATION;", quote_ident(user)),
        ));
    }
    if !login {
        problems.push(problem(
            format!("role \"{user}\" cannot log in"),
            format!("ALTER ROLE {} LOGIN;", quote_ident(user)),
        ));
    }
    Ok(())
}

/// Returns whether every configured table (or the schema) exists.
async fn check_tables(
    client: &Client,
    tables: &PublicationTables,
    problems: &mut Vec<Problem>,
) -> Result<bool, PgError> {
    let list = match tables {
        PublicationTables::Tables(list) => list.clone(),
        PublicationTables::Schema(schema) => {
            let exists = client
                .query_opt(
                    "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1",
                    &[&schema],
                )
                .await?
                .is_some();
            if !exists {
                problems.push(problem(
                    format!("schema \"{schema}\" does not exist"),
                    format!("CREATE SCHEMA {}; or fix the configured schema name (names are case-sensitive)", quote_ident(schema)),
                ));
                return Ok(false);
            }
            crate::catalog::schema_tables(client, schema).await?
        }
    };
    let mut all_exist = true;
    for (schema, table) in &list {
        if table_oid(client, schema, table).await?.is_none() {
            all_exist = false;
            problems.push(problem(
                format!("table {schema}.{table} does not exist"),
                "create it, or remove it from the configured tables (names are case-sensitive)",
            ));
            continue;
        }
        let ident = table_identity(client, schema, table).await?;
        let name = qualified(schema, table);
        match ident.replica_identity {
            ReplicaIdentity::Default if ident.primary_key.is_empty() => problems.push(problem(
                format!("table {schema}.{table} has no primary key and REPLICA IDENTITY DEFAULT, so updates and deletes carry no row identity (PostgreSQL rejects them once the table is published)"),
                format!("ALTER TABLE {name} ADD PRIMARY KEY (...); or ALTER TABLE {name} REPLICA IDENTITY FULL;"),
            )),
            ReplicaIdentity::Nothing => problems.push(problem(
                format!("table {schema}.{table} has REPLICA IDENTITY NOTHING, so updates and deletes cannot be identified"),
                format!("ALTER TABLE {name} REPLICA IDENTITY DEFAULT; (with a primary key) or ALTER TABLE {name} REPLICA IDENTITY FULL;"),
            )),
            _ => {}
        }
    }
    Ok(all_exist)
}
