//! What a server must provide before a binlog source can run, checked in
//! one place for `tributary check` and for the source's start-up, each
//! problem with the statement or setting that fixes it.
//!
//! Sits before [`crate::reader`]: the daemon runs [`preflight`] on a plain
//! session, refuses to start on a problem, logs the warnings, and passes
//! the detected [`Flavor`] to the reader.
//!
//! Checked: the binlog is on (`log_bin`), rows are logged as rows
//! (`binlog_format = ROW`), full row images (`binlog_row_image = FULL`;
//! `MINIMAL`/`NOBLOB` are accepted with a warning: unlogged columns become
//! "unchanged"), the table-map metadata (`binlog_row_metadata = FULL` names
//! columns, charsets and ENUM/SET labels), the replica `server_id` we
//! present is unique, the CDC user holds `REPLICATION SLAVE`,
//! `REPLICATION CLIENT` (or MariaDB's `BINLOG MONITOR`) and `SELECT`, and
//! whether GTIDs are in use.

use mysql_async::prelude::Queryable;

use crate::error::MysqlError;
use crate::grants::{Grants, NeededPrivilege};

/// Which server family: they differ in GTIDs and some statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// MariaDB (domain-server-sequence GTIDs, `BINLOG MONITOR`).
    MariaDb,
    /// MySQL and compatible servers (UUID GTID sets).
    MySql,
}

impl Flavor {
    /// The flavor a `SELECT VERSION()` answer names (`10.11.6-MariaDB-0+deb12u1`,
    /// `8.0.36`, `5.5.5-10.11.6-MariaDB`).
    pub fn from_version(version: &str) -> Flavor {
        if version.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        }
    }
}

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Short name: `log_bin`, `binlog_format`, `binlog_row_image`,
    /// `binlog_row_metadata`, `server_id`, `privileges`, `gtid`.
    pub name: &'static str,
    /// `None` when fine; else what is wrong and how to fix it.
    pub problem: Option<String>,
    /// Fine, but worth knowing.
    pub warning: Option<String>,
}

impl Check {
    /// One line for a report: `ok    name`, `WARN  name: …`, `FAIL  name: …`.
    pub fn line(&self) -> String {
        match (&self.problem, &self.warning) {
            (Some(problem), _) => format!("FAIL  {}: {problem}", self.name),
            (None, Some(warning)) => format!("WARN  {}: {warning}", self.name),
            (None, None) => format!("ok    {}", self.name),
        }
    }
}

/// The whole preflight.
#[derive(Debug, Clone)]
pub struct Preflight {
    /// MariaDB or MySQL.
    pub flavor: Flavor,
    /// `SELECT VERSION()`.
    pub version: String,
    /// The source server's own `server_id`.
    pub server_id: u32,
    /// GTIDs in use (MariaDB always has them; MySQL when `gtid_mode = ON`).
    pub gtid: bool,
    /// The server's current GTID position (MariaDB `@@gtid_current_pos`,
    /// MySQL `@@gtid_executed`), when GTIDs are in use.
    pub gtid_position: Option<String>,
    /// Every check, in order.
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

    /// Whether nothing prevents capture.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.problem.is_none())
    }

    /// One line per check (see [`Check::line`]).
    pub fn lines(&self) -> Vec<String> {
        self.checks.iter().map(Check::line).collect()
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
    let flavor = Flavor::from_version(&version);
    let mut checks = Vec::new();

    let log_bin = variable(conn, "log_bin").await?.unwrap_or_default();
    checks.push(log_bin_check(&log_bin));
    let format = variable(conn, "binlog_format").await?.unwrap_or_default();
    checks.push(binlog_format_check(&format));
    let image = variable(conn, "binlog_row_image").await?;
    checks.push(row_image_check(image.as_deref().unwrap_or("FULL")));
    let metadata = variable(conn, "binlog_row_metadata").await?;
    checks.push(row_metadata_check(metadata.as_deref()));

    let server_id: u32 = variable(conn, "server_id")
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let replica_ids = connected_replica_ids(conn, flavor).await;
    checks.push(server_id_check(server_id, replica_server_id, &replica_ids));

    let user: Option<String> = conn
        .query_first("SELECT CURRENT_USER()")
        .await
        .map_err(|e| MysqlError::from_driver(e, "reading the current user", "-"))?;
    let grants: Vec<String> = conn
        .query("SHOW GRANTS FOR CURRENT_USER()")
        .await
        .map_err(|e| MysqlError::from_driver(e, "reading the CDC user's grants", "-"))?;
    checks.push(privileges_check(
        &Grants::parse(&grants),
        flavor,
        &quote_user(user.as_deref().unwrap_or("user@host")),
    ));

    let (gtid, gtid_position) = match flavor {
        Flavor::MariaDb => {
            let pos: Option<String> = conn
                .query_first("SELECT @@global.gtid_current_pos")
                .await
                .map_err(|e| MysqlError::from_driver(e, "reading gtid_current_pos", "-"))?;
            (true, pos)
        }
        Flavor::MySql => {
            let mode = variable(conn, "gtid_mode").await?.unwrap_or_default();
            let on = mode.eq_ignore_ascii_case("ON");
            let executed = if on {
                variable(conn, "gtid_executed").await?
            } else {
                None
            };
            (on, executed)
        }
    };
    checks.push(Check {
        name: "gtid",
        problem: None,
        warning: (!gtid).then(|| {
            "gtid_mode is not ON: positions are binlog file coordinates only, which do not survive a failover to a replica; SET GLOBAL gtid_mode (via OFF_PERMISSIVE, ON_PERMISSIVE, ON with enforce_gtid_consistency = ON) enables GTIDs".to_string()
        }),
    });
    Ok(Preflight {
        flavor,
        version,
        server_id,
        gtid,
        gtid_position: gtid_position.filter(|p| !p.trim().is_empty()),
        checks,
    })
}

/// `server_id`s of the replicas connected now (empty when the server will
/// not say).
async fn connected_replica_ids(conn: &mut mysql_async::Conn, flavor: Flavor) -> Vec<u32> {
    let statements: &[&str] = match flavor {
        Flavor::MariaDb => &["SHOW SLAVE HOSTS"],
        // SHOW REPLICAS since 8.0.22; older servers only know the old name.
        Flavor::MySql => &["SHOW REPLICAS", "SHOW SLAVE HOSTS"],
    };
    for statement in statements {
        if let Ok(rows) = conn.query::<mysql_async::Row, _>(*statement).await {
            return rows
                .iter()
                .filter_map(|row| row.get::<u32, usize>(0))
                .collect();
        }
    }
    Vec::new()
}

/// `cdc@127.0.0.1` → `'cdc'@'127.0.0.1'`.
fn quote_user(user: &str) -> String {
    match user.rsplit_once('@') {
        Some((name, host)) => format!("'{name}'@'{host}'"),
        None => format!("'{user}'"),
    }
}

fn log_bin_check(log_bin: &str) -> Check {
    Check {
        name: "log_bin",
        problem: (!log_bin.eq_ignore_ascii_case("ON")).then(|| {
            "the binary log is off (log_bin = OFF): start the server with --log-bin (MySQL 8 has it on by default) and restart it".to_string()
        }),
        warning: None,
    }
}

fn binlog_format_check(format: &str) -> Check {
    Check {
        name: "binlog_format",
        problem: (!format.eq_ignore_ascii_case("ROW")).then(|| {
            MysqlError::BinlogFormat {
                format: format.to_string(),
            }
            .to_string()
        }),
        warning: None,
    }
}

fn row_image_check(image: &str) -> Check {
    Check {
        name: "binlog_row_image",
        problem: None,
        warning: (!image.eq_ignore_ascii_case("FULL")).then(|| {
            format!(
                "binlog_row_image is {image}: updates log only some columns; the others are written as unchanged and keep their earlier value in the lake. SET GLOBAL binlog_row_image = 'FULL' gives full before/after images"
            )
        }),
    }
}

fn row_metadata_check(metadata: Option<&str>) -> Check {
    let warning = match metadata {
        // Servers before MySQL 8.0.1 / MariaDB 10.5 have no such variable.
        None => Some("the server has no binlog_row_metadata: column names, charsets and ENUM/SET labels come from information_schema only, so rows written before a DDL may be decoded with the newer shape".to_string()),
        Some(m) if !m.eq_ignore_ascii_case("FULL") => Some(format!(
            "binlog_row_metadata is {m}: the binlog does not name columns nor ENUM/SET labels; SET GLOBAL binlog_row_metadata = 'FULL' lets rows be decoded with the shape they were written with"
        )),
        Some(_) => None,
    };
    Check {
        name: "binlog_row_metadata",
        problem: None,
        warning,
    }
}

fn server_id_check(server_id: u32, replica_server_id: u32, connected: &[u32]) -> Check {
    let problem = if replica_server_id == server_id {
        Some(format!(
            "the source's server_id is {server_id}, the same as the replica id tributary presents; set a different `server_id` in the source's config"
        ))
    } else if connected.contains(&replica_server_id) {
        Some(format!(
            "another replica is connected with server_id {replica_server_id}; give this source a unique `server_id` (two replicas with one id disconnect each other)"
        ))
    } else if server_id == 0 {
        Some("the server's server_id is 0, which disables replication: set server_id to a non-zero value and restart".to_string())
    } else {
        None
    };
    Check {
        name: "server_id",
        problem,
        warning: None,
    }
}

fn privileges_check(grants: &Grants, flavor: Flavor, user: &str) -> Check {
    let mut missing = Vec::new();
    if !grants.satisfies(NeededPrivilege::ReplicationSlave) {
        missing.push("REPLICATION SLAVE");
    }
    if !grants.satisfies(NeededPrivilege::ReplicationClient) {
        missing.push(match flavor {
            Flavor::MariaDb => "BINLOG MONITOR",
            Flavor::MySql => "REPLICATION CLIENT",
        });
    }
    let select_dbs = grants.select_databases();
    let global_select = grants.satisfies(NeededPrivilege::Select);
    if !global_select && select_dbs.is_empty() {
        missing.push("SELECT");
    }
    let problem = (!missing.is_empty()).then(|| {
        let list = missing.join(", ");
        let roles = if grants.roles.is_empty() {
            String::new()
        } else {
            format!(
                " (privileges held through roles {} are not checked)",
                grants.roles.join(", ")
            )
        };
        format!("the CDC user lacks {list}: run GRANT {list} ON *.* TO {user}{roles}")
    });
    let warning = (!global_select && !select_dbs.is_empty()).then(|| {
        format!(
            "SELECT is granted only on {}: tables elsewhere cannot be snapshotted",
            select_dbs.join(", ")
        )
    });
    Check {
        name: "privileges",
        problem,
        warning,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavors_from_versions() {
        assert_eq!(
            Flavor::from_version("10.11.6-MariaDB-0+deb12u1-log"),
            Flavor::MariaDb
        );
        assert_eq!(
            Flavor::from_version("5.5.5-10.4.3-MariaDB"),
            Flavor::MariaDb
        );
        assert_eq!(Flavor::from_version("8.0.36"), Flavor::MySql);
    }

    #[test]
    fn checks_name_their_fix() {
        assert!(log_bin_check("ON").problem.is_none());
        assert!(log_bin_check("OFF").problem.unwrap().contains("--log-bin"));
        let format = binlog_format_check("MIXED").problem.unwrap();
        assert!(
            format.contains("SET GLOBAL binlog_format = 'ROW'"),
            "{format}"
        );
        assert!(binlog_format_check("row").problem.is_none());
        let image = row_image_check("MINIMAL");
        assert!(image.problem.is_none() && image.warning.unwrap().contains("unchanged"));
        assert!(row_metadata_check(Some("FULL")).warning.is_none());
        assert!(row_metadata_check(Some("MINIMAL")).warning.is_some());
        assert_eq!(
            Check {
                name: "log_bin",
                problem: None,
                warning: None
            }
            .line(),
            "ok    log_bin"
        );
    }

    #[test]
    fn server_ids() {
        assert!(server_id_check(1, 4242, &[7]).problem.is_none());
        assert!(server_id_check(1, 1, &[]).problem.unwrap().contains("same"));
        assert!(
            server_id_check(1, 7, &[7])
                .problem
                .unwrap()
                .contains("another replica")
        );
        assert!(server_id_check(0, 7, &[]).problem.unwrap().contains("is 0"));
    }

    #[test]
    fn privileges_name_the_grant_for_the_user() {
        let grants = Grants::parse(&["GRANT SELECT ON *.* TO `plain`@`127.0.0.1`"]);
        let check = privileges_check(&grants, Flavor::MariaDb, &quote_user("plain@127.0.0.1"));
        assert_eq!(
            check.problem.unwrap(),
            "the CDC user lacks REPLICATION SLAVE, BINLOG MONITOR: run GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'plain'@'127.0.0.1'"
        );
        let grants = Grants::parse(&[
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `cdc`@`%`",
            "GRANT SELECT ON `shop`.* TO `cdc`@`%`",
        ]);
        let check = privileges_check(&grants, Flavor::MySql, "'cdc'@'%'");
        assert!(check.problem.is_none());
        assert!(check.warning.unwrap().contains("only on shop"));
    }
}
