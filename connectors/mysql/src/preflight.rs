//! What a server must provide before a binlog source can run, checked in
//! one place for `tributary check` and for the source's start-up, each
//! problem with the statement or setting that fixes it.
//!
//! Checked: the binlog is on (`log_bin`), rows are logged as rows
//! (`binlog_format = ROW`), full row images (`binlog_row_image = FULL`;
//! `MINIMAL`/`NOBLOB` are accepted with a warning: unlogged columns become
//! "unchanged" and keep their earlier values), the replica `server_id` we
//! present is unique, and the CDC user holds `REPLICATION SLAVE`,
//! `REPLICATION CLIENT` (or MariaDB's `BINLOG MONITOR`) and `SELECT`.

use mysql_async::prelude::Queryable;

use crate::error::MysqlError;

/// Which server family: they differ in GTIDs and some statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MariaDb,
    MySql,
}

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    /// `None` when fine; else what is wrong and how to fix it.
    pub problem: Option<String>,
    /// Fine, but worth knowing.
    pub warning: Option<String>,
}

/// The whole preflight.
#[derive(Debug, Clone)]
pub struct Preflight {
    pub flavor: Flavor,
    pub version: String,
    /// The source server's own `server_id`.
    pub server_id: u32,
    /// GTIDs in use (MariaDB always has them; MySQL when `gtid_mode = ON`).
    pub gtid: bool,
    pub checks: Vec<Check>,
}

impl Preflight {
    /// Problems only, one per line, each with its fix.
    pub fn problems(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter_map(|c| c.problem.clone())
            .collect()
    }

    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.problem.is_none())
    }
}

async fn variable(conn: &mut mysql_async::Conn, name: &str) -> Result<Option<String>, MysqlError> {
    let row: Option<(String, String)> = conn
        .query_first(format!("SHOW GLOBAL VARIABLES LIKE '{name}'"))
        .await
        .map_err(|e| MysqlError::from_driver(e, "reading server variables", "-"))?;
    Ok(row.map(|(_, v)| v))
}

/// Runs every check on `conn` for a replica presenting `replica_server_id`.
pub async fn preflight(
    conn: &mut mysql_async::Conn,
    replica_server_id: u32,
) -> Result<Preflight, MysqlError> {
    let version: String = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| MysqlError::from_driver(e, "reading the server version", "-"))?
        .unwrap_or_default();
    let flavor = if version.to_ascii_lowercase().contains("mariadb") {
        Flavor::MariaDb
    } else {
        Flavor::MySql
    };
    let mut checks = Vec::new();

    let log_bin = variable(conn, "log_bin").await?.unwrap_or_default();
    checks.push(Check {
        name: "log_bin",
        problem: (!log_bin.eq_ignore_ascii_case("ON")).then(|| {
            "the binary log is off (log_bin = OFF): start the server with --log-bin (MySQL 8 has it on by default) and restart it".to_string()
        }),
        warning: None,
    });

    let format = variable(conn, "binlog_format").await?.unwrap_or_default();
    checks.push(Check {
        name: "binlog_format",
        problem: (!format.eq_ignore_ascii_case("ROW")).then(|| {
            format!(
                "binlog_format is {format}, not ROW: changes are logged as statements, which cannot be captured row by row; run SET GLOBAL binlog_format = 'ROW' (and set binlog_format=ROW in the server's config), then reconnect the applications (sessions keep their format)"
            )
        }),
        warning: None,
    });

    let image = variable(conn, "binlog_row_image")
        .await?
        .unwrap_or_else(|| "FULL".into());
    checks.push(Check {
        name: "binlog_row_image",
        problem: None,
        warning: (!image.eq_ignore_ascii_case("FULL")).then(|| {
            format!(
                "binlog_row_image is {image}: updates log only some columns; the others are written as unchanged and keep their earlier value in the lake. SET GLOBAL binlog_row_image = 'FULL' gives full before/after images"
            )
        }),
    });

    let server_id: u32 = variable(conn, "server_id")
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let replicas: Vec<mysql_async::Row> = conn
        .query(match flavor {
            Flavor::MariaDb => "SHOW SLAVE HOSTS",
            Flavor::MySql => "SHOW REPLICAS",
        })
        .await
        .unwrap_or_default();
    let taken = replicas
        .iter()
        .any(|row| row.get::<u32, usize>(0) == Some(replica_server_id));
    checks.push(Check {
        name: "server_id",
        problem: if replica_server_id == server_id {
            Some(format!(
                "the source's server_id is {server_id}, the same as the replica id tributary presents; set a different `server_id` in the source's config"
            ))
        } else if taken {
            Some(format!(
                "another replica is connected with server_id {replica_server_id}; give this source a unique `server_id` (two replicas with one id disconnect each other)"
            ))
        } else if server_id == 0 {
            Some("the server's server_id is 0, which disables replication: set server_id to a non-zero value and restart".to_string())
        } else {
            None
        },
        warning: None,
    });

    let grants: Vec<String> = conn
        .query("SHOW GRANTS FOR CURRENT_USER()")
        .await
        .map_err(|e| MysqlError::from_driver(e, "reading the CDC user's grants", "-"))?;
    let grants = grants.join("\n").to_ascii_uppercase();
    let all = grants.contains("ALL PRIVILEGES ON *.*");
    let has = |privilege: &str| all || grants.contains(privilege);
    let mut missing = Vec::new();
    if !has("REPLICATION SLAVE") {
        missing.push("REPLICATION SLAVE");
    }
    if !(has("REPLICATION CLIENT") || has("BINLOG MONITOR") || has("SUPER")) {
        missing.push(match flavor {
            Flavor::MariaDb => "BINLOG MONITOR",
            Flavor::MySql => "REPLICATION CLIENT",
        });
    }
    if !has("SELECT") {
        missing.push("SELECT");
    }
    checks.push(Check {
        name: "privileges",
        problem: (!missing.is_empty()).then(|| {
            format!(
                "the CDC user lacks {}: run GRANT {} ON *.* TO <the user>",
                missing.join(", "),
                missing.join(", ")
            )
        }),
        warning: None,
    });

    let gtid = match flavor {
        Flavor::MariaDb => true,
        Flavor::MySql => variable(conn, "gtid_mode")
            .await?
            .is_some_and(|v| v.eq_ignore_ascii_case("ON")),
    };
    Ok(Preflight {
        flavor,
        version,
        server_id,
        gtid,
        checks,
    })
}
