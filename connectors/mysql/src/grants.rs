//! `SHOW GRANTS` output, parsed: which privileges the CDC user holds
//! globally and per database, so [`mod@crate::preflight`] can name exactly the
//! missing ones and the GRANT that adds them.
//!
//! Understands the lines MySQL 5.7/8 and MariaDB 10.x print:
//! `GRANT SELECT, REPLICATION SLAVE ON *.* TO ...`, `GRANT ALL PRIVILEGES
//! ON *.* ...`, `GRANT SELECT ON `app`.* ...`, column lists
//! (`SELECT (a, b)`), MySQL 8's comma-only dynamic privilege lines and role
//! grants (`GRANT `r`@`%` TO ...`, whose privileges are not listed).

use std::collections::{BTreeMap, BTreeSet};

/// The privileges of one user, as `SHOW GRANTS` lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Privileges `ON *.*` (upper case, single spaces).
    pub global: BTreeSet<String>,
    /// Privileges per database (`ON `app`.*`, and table-level grants under
    /// their database).
    pub databases: BTreeMap<String, BTreeSet<String>>,
    /// Roles granted to the user: their privileges are not in this listing.
    pub roles: Vec<String>,
}

/// One privilege the CDC user needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeededPrivilege {
    /// Read the captured tables (snapshots, catalog).
    Select,
    /// Stream the binlog.
    ReplicationSlave,
    /// `SHOW MASTER STATUS` / `SHOW BINARY LOGS` (MariaDB 10.5+ calls it
    /// `BINLOG MONITOR`).
    ReplicationClient,
}

impl Grants {
    /// Parses the rows of `SHOW GRANTS` (one statement per row).
    pub fn parse<S: AsRef<str>>(rows: &[S]) -> Grants {
        let mut grants = Grants::default();
        for row in rows {
            grants.add_line(row.as_ref());
        }
        grants
    }

    fn add_line(&mut self, line: &str) {
        let line = line.trim();
        let Some(rest) = strip_keyword(line, "GRANT") else {
            return;
        };
        let Some((privileges, after_on)) = split_top_level(rest, " ON ") else {
            // `GRANT role TO user`: a role grant.
            if let Some((role, _)) = split_top_level(rest, " TO ") {
                self.roles.push(role.trim().to_string());
            }
            return;
        };
        let target = split_top_level(after_on, " TO ")
            .map(|(target, _)| target)
            .unwrap_or(after_on)
            .trim();
        let privileges = split_privileges(privileges);
        if target == "*.*" {
            self.global.extend(privileges);
        } else if let Some(database) = database_of(target) {
            self.databases
                .entry(database)
                .or_default()
                .extend(privileges);
        }
    }

    /// Whether `privilege` is held globally (`ALL PRIVILEGES` counts).
    pub fn has_global(&self, privilege: &str) -> bool {
        self.global.contains(privilege) || self.global.contains("ALL PRIVILEGES")
    }

    /// Whether the need is met globally.
    pub fn satisfies(&self, need: NeededPrivilege) -> bool {
        match need {
            NeededPrivilege::Select => self.has_global("SELECT"),
            NeededPrivilege::ReplicationSlave => self.has_global("REPLICATION SLAVE"),
            NeededPrivilege::ReplicationClient => {
                self.has_global("REPLICATION CLIENT")
                    || self.has_global("BINLOG MONITOR")
                    || self.has_global("SUPER")
            }
        }
    }

    /// Databases where SELECT is granted (not globally).
    pub fn select_databases(&self) -> Vec<String> {
        self.databases
            .iter()
            .filter(|(_, p)| p.contains("SELECT") || p.contains("ALL PRIVILEGES"))
            .map(|(d, _)| d.clone())
            .collect()
    }
}

/// `text` without a leading case-insensitive `keyword` and the blank after it.
fn strip_keyword<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let head = text.get(..keyword.len())?;
    let rest = &text[keyword.len()..];
    (head.eq_ignore_ascii_case(keyword) && rest.starts_with(char::is_whitespace))
        .then(|| rest.trim_start())
}

/// Splits at the first case-insensitive `separator` outside quotes and
/// parentheses.
fn split_top_level<'a>(text: &'a str, separator: &str) -> Option<(&'a str, &'a str)> {
    let upper = text.to_ascii_uppercase();
    let (bytes, upper, separator_bytes) = (text.as_bytes(), upper.as_bytes(), separator.as_bytes());
    let (mut depth, mut quote) = (0usize, None::<u8>);
    for i in 0..bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'`' | b'\'' | b'"' => quote = Some(b),
                b'(' => depth += 1,
                b')' => depth = depth.saturating_sub(1),
                _ if depth == 0 && upper[i..].starts_with(separator_bytes) => {
                    return Some((&text[..i], &text[i + separator.len()..]));
                }
                _ => {}
            },
        }
    }
    None
}

/// `SELECT, INSERT (a, b),REPLICATION  SLAVE` → `SELECT`, `INSERT`,
/// `REPLICATION SLAVE` (column lists dropped: they still grant the
/// privilege, on some columns).
fn split_privileges(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut current) = (0usize, String::new());
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => out.push(std::mem::take(&mut current)),
            _ if depth == 0 => current.push(c),
            _ => {}
        }
    }
    out.push(current);
    out.into_iter()
        .map(|p| {
            p.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_ascii_uppercase()
        })
        .filter(|p| !p.is_empty())
        .collect()
}

/// The database of a grant target (`` `app`.* ``, `` `app`.`t` ``).
fn database_of(target: &str) -> Option<String> {
    let target = strip_keyword(target, "TABLE").unwrap_or(target);
    let (database, _) = split_top_level(target, ".")?;
    let database = database.trim().trim_matches('`').trim_matches('\'');
    (!database.is_empty()).then(|| database.replace("``", "`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_grants() {
        let grants = Grants::parse(&[
            "GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR, REPLICATION MASTER ADMIN ON *.* TO `cdc`@`127.0.0.1`",
            "GRANT INSERT ON `app`.* TO `cdc`@`127.0.0.1`",
        ]);
        assert!(grants.satisfies(NeededPrivilege::ReplicationSlave));
        assert!(grants.satisfies(NeededPrivilege::ReplicationClient));
        assert!(grants.satisfies(NeededPrivilege::Select));
        assert!(grants.databases["app"].contains("INSERT"));
    }

    #[test]
    fn replication_slave_admin_is_not_replication_slave() {
        let grants = Grants::parse(&["GRANT SELECT, REPLICATION SLAVE ADMIN ON *.* TO `u`@`%`"]);
        assert!(!grants.satisfies(NeededPrivilege::ReplicationSlave));
        assert!(!grants.satisfies(NeededPrivilege::ReplicationClient));
    }

    #[test]
    fn all_privileges_and_mysql8_dynamic_lines() {
        let root = Grants::parse(&[
            "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION",
            "GRANT PROXY ON ''@'%' TO 'root'@'localhost' WITH GRANT OPTION",
        ]);
        assert!(root.satisfies(NeededPrivilege::ReplicationSlave));
        let mysql8 = Grants::parse(&[
            "GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `cdc`@`%`",
            "GRANT BACKUP_ADMIN,BINLOG_ADMIN,CONNECTION_ADMIN ON *.* TO `cdc`@`%`",
        ]);
        assert!(mysql8.satisfies(NeededPrivilege::ReplicationClient));
        assert!(mysql8.global.contains("BINLOG_ADMIN"));
    }

    #[test]
    fn database_and_column_level_select() {
        let grants = Grants::parse(&[
            "GRANT USAGE ON *.* TO `plain`@`127.0.0.1` IDENTIFIED BY PASSWORD '*ABC'",
            "GRANT SELECT ON `shop`.* TO `plain`@`127.0.0.1`",
            "GRANT SELECT (`a`, `b`), UPDATE (`a`) ON `crm`.`people` TO `plain`@`127.0.0.1`",
        ]);
        assert!(!grants.satisfies(NeededPrivilege::Select));
        assert_eq!(grants.select_databases(), ["crm", "shop"]);
        assert_eq!(
            grants.databases["crm"].iter().collect::<Vec<_>>(),
            ["SELECT", "UPDATE"]
        );
        assert!(grants.global.contains("USAGE"));
    }

    #[test]
    fn role_grants_are_noted() {
        let grants = Grants::parse(&["GRANT `cdc_role` TO `cdc`@`%`", "not a grant"]);
        assert_eq!(grants.roles, ["`cdc_role`"]);
        assert!(grants.global.is_empty());
    }
}
