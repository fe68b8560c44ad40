//! Errors of the MySQL/MariaDB connector, split the way the daemon needs
//! them: transient (the server restarted, the network dropped: reconnect
//! with backoff from the last checkpoint) and definite (stop; the message
//! names the cause and the fix).
//!
//! Every fallible step of the crate (preflight, the binlog dump, event
//! decoding) returns [`MysqlError`]; driver errors are classified once, in
//! [`MysqlError::from_driver`].

/// MySQL error code: fatal error reading the binlog on the server
/// (`ER_MASTER_FATAL_ERROR_READING_BINLOG`): most often the requested
/// position was purged.
pub const ER_BINLOG_PURGED: u16 = 1236;
const ER_SPECIFIC_ACCESS_DENIED: u16 = 1227;
const ER_ACCESS_DENIED: u16 = 1045;
const ER_DBACCESS_DENIED: u16 = 1044;
const ER_TABLEACCESS_DENIED: u16 = 1142;
const ER_CON_COUNT_ERROR: u16 = 1040;
const ER_SERVER_SHUTDOWN: u16 = 1053;
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
const ER_LOCK_DEADLOCK: u16 = 1213;
/// MariaDB: the connection was killed (`KILL`, or the server shutting down).
const ER_CONNECTION_KILLED: u16 = 1927;
/// MariaDB: another replica is connected with the same server id.
const ER_SLAVE_SAME_ID: u16 = 4052;

/// The GRANT a CDC user needs, for messages.
pub const GRANT_STATEMENT: &str = "GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'user'@'host' (MariaDB 10.5+: GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'user'@'host')";

/// What went wrong, and whether retrying can help ([`MysqlError::is_transient`]).
#[derive(Debug, thiserror::Error)]
pub enum MysqlError {
    /// Worth retrying: connection refused or lost, server shutting down or
    /// restarting, too many connections.
    #[error("{message}")]
    Transient {
        /// What was being done and what failed.
        message: String,
    },
    /// The binlog position to resume from was purged from the server.
    #[error(
        "binlog position {position} was purged from the server ({server_message}): the changes after it are lost to this source; run `tributary checkpoint reset --config <file> --source <name> --to current` with the daemon stopped (the next start streams from the server's current position and copies every table again, emptying it in the lake first), or restore the binlog files, and raise binlog_expire_logs_seconds / expire_logs_days so this does not recur"
    )]
    Purged {
        /// The position we asked for.
        position: String,
        /// The server's own words.
        server_message: String,
    },
    /// Rows are not logged as rows.
    #[error(
        "binlog_format is {format}, not ROW: changes are logged as statements, which cannot be captured row by row; run SET GLOBAL binlog_format = 'ROW' (and set binlog_format=ROW in the server's config), then restart the writers (open sessions keep their format)"
    )]
    BinlogFormat {
        /// The server's `binlog_format`.
        format: String,
    },
    /// The CDC user lacks a privilege.
    #[error("{context}: {detail}; grant the CDC user what it needs: {GRANT_STATEMENT}")]
    Privileges {
        /// What was being done.
        context: String,
        /// The server's message or the missing privileges.
        detail: String,
    },
    /// Another replica uses our `server_id` (the server disconnects one of
    /// the two).
    #[error(
        "{context}: {detail}; another replica uses this server_id: give this source a `server_id` no other replica of the server uses"
    )]
    DuplicateServerId {
        /// What was being done.
        context: String,
        /// The server's message.
        detail: String,
    },
    /// The server's setup prevents CDC otherwise (binlog off, …); the
    /// message says what to run.
    #[error("{message}")]
    Setup {
        /// Cause and fix.
        message: String,
    },
    /// Anything else that will not go away by retrying.
    #[error("{message}")]
    Definite {
        /// Cause, and the fix when known.
        message: String,
    },
}

impl MysqlError {
    /// Whether reconnecting (with backoff, from the last checkpoint) may
    /// succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, MysqlError::Transient { .. })
    }

    /// Classifies a driver error; `context` says what was being done and
    /// `position` where the stream was (for the purged-binlog message).
    pub fn from_driver(error: mysql_async::Error, context: &str, position: &str) -> MysqlError {
        use mysql_async::Error;
        match &error {
            Error::Server(server) => {
                classify_server(server.code, &server.message, context, position)
            }
            Error::Io(_) | Error::Driver(_) => MysqlError::Transient {
                message: format!("{context}: {error}"),
            },
            _ => MysqlError::Definite {
                message: format!("{context}: {error}"),
            },
        }
    }
}

/// Classifies a server error by code and message.
fn classify_server(code: u16, message: &str, context: &str, position: &str) -> MysqlError {
    let lower = message.to_ascii_lowercase();
    // MySQL reports a duplicate replica as error 1236 too: check it first.
    if code == ER_SLAVE_SAME_ID || lower.contains("same server_uuid/server_id") {
        return MysqlError::DuplicateServerId {
            context: context.to_string(),
            detail: format!("{message} (error {code})"),
        };
    }
    match code {
        ER_BINLOG_PURGED if is_purged_message(&lower) => MysqlError::Purged {
            position: position.to_string(),
            server_message: message.to_string(),
        },
        ER_SPECIFIC_ACCESS_DENIED
        | ER_ACCESS_DENIED
        | ER_DBACCESS_DENIED
        | ER_TABLEACCESS_DENIED => MysqlError::Privileges {
            context: context.to_string(),
            detail: format!("{message} (error {code})"),
        },
        ER_SERVER_SHUTDOWN | ER_CONNECTION_KILLED | ER_CON_COUNT_ERROR | ER_LOCK_WAIT_TIMEOUT
        | ER_LOCK_DEADLOCK => MysqlError::Transient {
            message: format!("{context}: {message} (error {code})"),
        },
        _ => MysqlError::Definite {
            message: format!("{context}: {message} (error {code})"),
        },
    }
}

/// Whether an error-1236 message means the start position is gone (rather
/// than, say, a corrupt event or a position past the end of a file).
fn is_purged_message(lower: &str) -> bool {
    [
        "purged",
        "could not find first log file name",
        "could not find gtid state",
        "probably the slave state is too old",
        "no longer",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purged_positions_name_the_position_and_snapshot() {
        let error = classify_server(
            1236,
            "Could not find first log file name in binary log index file",
            "starting the binlog dump",
            "binlog.000001:4",
        );
        assert!(matches!(error, MysqlError::Purged { .. }));
        assert!(!error.is_transient());
        let text = error.to_string();
        assert!(
            text.contains("binlog.000001:4 was purged")
                && text.contains("tributary checkpoint reset"),
            "{text}"
        );
        let gtid = classify_server(
            1236,
            "Could not find GTID state requested by slave in any binlog files. Probably the slave state is too old and required binlog files have been purged.",
            "c",
            "GTID 0-1-5",
        );
        assert!(matches!(gtid, MysqlError::Purged { .. }));
        let mysql = classify_server(
            1236,
            "Cannot replicate because the master purged required binary logs.",
            "c",
            "p",
        );
        assert!(matches!(mysql, MysqlError::Purged { .. }));
    }

    #[test]
    fn other_fatal_binlog_errors_are_definite() {
        let error = classify_server(
            1236,
            "Client requested master to start replication from position > file size",
            "c",
            "binlog.000001:999999",
        );
        assert!(matches!(error, MysqlError::Definite { .. }), "{error:?}");
    }

    #[test]
    fn duplicate_server_ids_are_named_even_under_1236() {
        let mysql = classify_server(
            1236,
            "A slave with the same server_uuid/server_id as this slave has connected to the master",
            "reading the binlog",
            "p",
        );
        assert!(matches!(mysql, MysqlError::DuplicateServerId { .. }));
        assert!(mysql.to_string().contains("`server_id`"));
        let mariadb = classify_server(4052, "A slave with the same server_id", "c", "p");
        assert!(matches!(mariadb, MysqlError::DuplicateServerId { .. }));
    }

    #[test]
    fn privilege_errors_name_the_grant() {
        let error = classify_server(
            1227,
            "Access denied; you need (at least one of) the REPLICATION SLAVE privilege(s) for this operation",
            "starting the binlog dump",
            "p",
        );
        let text = error.to_string();
        assert!(
            text.contains("GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.*")
                && text.contains("BINLOG MONITOR"),
            "{text}"
        );
    }

    #[test]
    fn shutdowns_are_transient() {
        for code in [1053, 1927, 1040] {
            assert!(
                classify_server(code, "bye", "c", "p").is_transient(),
                "{code}"
            );
        }
        assert!(!classify_server(1064, "syntax", "c", "p").is_transient());
    }

    #[test]
    fn format_errors_name_the_fix() {
        let text = MysqlError::BinlogFormat {
            format: "STATEMENT".into(),
        }
        .to_string();
        assert!(
            text.contains("binlog_format is STATEMENT")
                && text.contains("SET GLOBAL binlog_format = 'ROW'")
                && text.contains("restart the writers"),
            "{text}"
        );
    }
}
