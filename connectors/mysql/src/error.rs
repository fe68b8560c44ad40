//! Errors of the MySQL/MariaDB connector, split the way the daemon needs
//! them: transient (the server restarted, the network dropped: reconnect
//! with backoff from the last checkpoint) and definite (stop; the message
//! names the cause and the fix).

/// MySQL error code: the requested binlog position is no longer on the
/// server (`ER_MASTER_FATAL_ERROR_READING_BINLOG`).
pub const ER_BINLOG_PURGED: u16 = 1236;
/// Access denied for a statement (missing privilege).
const ER_SPECIFIC_ACCESS_DENIED: u16 = 1227;
const ER_ACCESS_DENIED: u16 = 1045;
const ER_DBACCESS_DENIED: u16 = 1044;
const ER_TABLEACCESS_DENIED: u16 = 1142;
/// MariaDB: another replica is connected with the same server id.
const ER_SLAVE_SAME_ID: u16 = 4052;

#[derive(Debug, thiserror::Error)]
pub enum MysqlError {
    /// Worth retrying: connection refused or lost, server shutting down.
    #[error("{message}")]
    Transient { message: String },
    /// The binlog position to resume from was purged from the server.
    #[error(
        "binlog position {position} is no longer on the server ({server_message}): the changes after it are lost to this source; run `tributary snapshot --config F --source S --table …` to copy the tables again (or restore the binlog files), and raise binlog_expire_logs_seconds / expire_logs_days so this does not recur"
    )]
    Purged {
        position: String,
        server_message: String,
    },
    /// The server's setup prevents CDC (binlog off, wrong format, missing
    /// privilege); the message says what to run.
    #[error("{message}")]
    Setup { message: String },
    /// Anything else that will not go away by retrying.
    #[error("{message}")]
    Definite { message: String },
}

impl MysqlError {
    pub fn is_transient(&self) -> bool {
        matches!(self, MysqlError::Transient { .. })
    }

    /// Classifies a driver error; `context` says what was being done and
    /// `position` where the stream was (for the purged-binlog message).
    pub fn from_driver(error: mysql_async::Error, context: &str, position: &str) -> MysqlError {
        use mysql_async::Error;
        match &error {
            Error::Server(server) if server.code == ER_BINLOG_PURGED => MysqlError::Purged {
                position: position.to_string(),
                server_message: server.message.clone(),
            },
            Error::Server(server)
                if matches!(
                    server.code,
                    ER_SPECIFIC_ACCESS_DENIED
                        | ER_ACCESS_DENIED
                        | ER_DBACCESS_DENIED
                        | ER_TABLEACCESS_DENIED
                ) =>
            {
                MysqlError::Setup {
                    message: format!(
                        "{context}: {} (error {}); grant the CDC user what it needs: GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'user'@'host' (MariaDB 10.5+: also BINLOG MONITOR)",
                        server.message, server.code
                    ),
                }
            }
            Error::Server(server)
                if server.code == ER_SLAVE_SAME_ID
                    || server.message.contains("same server_uuid/server_id") =>
            {
                MysqlError::Setup {
                    message: format!(
                        "{context}: {} (error {}); give this source a `server_id` no other replica of the server uses",
                        server.message, server.code
                    ),
                }
            }
            Error::Server(server) => MysqlError::Definite {
                message: format!("{context}: {} (error {})", server.message, server.code),
            },
            Error::Io(_) | Error::Driver(_) => MysqlError::Transient {
                message: format!("{context}: {error}"),
            },
            _ => MysqlError::Definite {
                message: format!("{context}: {error}"),
            },
        }
    }
}
