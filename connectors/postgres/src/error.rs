//! Errors of the PostgreSQL connector, split into transient and definite.
//!
//! Every failure on the data path (catalog queries, the replication stream,
//! decoding, spilling) ends up here. The daemon's supervisor needs exactly one
//! decision from an error: retry after a back-off ([`PgError::is_transient`])
//! or stop and tell the operator. Definite errors therefore carry the cause
//! *and* the remedy in their message, so the log line alone is actionable.
//!
//! Classification follows SQLSTATE codes, which are stable across PostgreSQL
//! versions, and only falls back to message text where PostgreSQL reuses a
//! code for different causes (55000 for both `wal_level` and an invalidated
//! slot; 42704 for a missing slot and a missing publication).

use std::fmt;

/// Errors returned by `tributary-postgres`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PgError {
    // ----- transient: retry with back-off -----
    /// The connection could not be established or broke (refused, reset, closed; SQLSTATE class 08).
    #[error("PostgreSQL connection failed: {message}")]
    Connection { message: String },
    /// The server is shutting down, restarting or not yet accepting connections (57P01/57P02/57P03).
    #[error("PostgreSQL server is shutting down or starting up: {message}")]
    ServerShutdown { message: String },
    /// An operation exceeded its time limit.
    #[error("PostgreSQL operation timed out: {message}")]
    Timeout { message: String },
    /// The walsender ended the replication stream (terminated backend, pooler bounce, stream closed).
    #[error("the walsender terminated the replication stream: {message}")]
    WalsenderTerminated { message: String },
    /// The server is temporarily out of resources (too many connections, serialization failure, deadlock).
    #[error("PostgreSQL is temporarily unable to serve the request: {message}")]
    Busy { message: String },

    // ----- definite: stop and report; the message names the fix -----
    /// Authentication failed (SQLSTATE class 28).
    #[error(
        "authentication to PostgreSQL failed: {message}; check user and password in the conninfo and the matching pg_hba.conf line (it must allow both the database and 'replication' connections)"
    )]
    Auth { message: String },
    /// `wal_level` is not `logical`.
    #[error(
        "wal_level is '{current}'; logical replication needs wal_level=logical: run ALTER SYSTEM SET wal_level = logical and restart PostgreSQL"
    )]
    WalLevel { current: String },
    /// The role may not start a walsender.
    #[error(
        "role {user} lacks the REPLICATION attribute needed for logical replication ({message}); run ALTER ROLE {user} REPLICATION (as a superuser)"
    )]
    ReplicationPrivilege { user: String, message: String },
    /// Some other permission is missing (SQLSTATE 42501).
    #[error(
        "permission denied: {message}; grant the missing privilege to the connector's role (e.g. GRANT SELECT ON the published tables, or make the role own them / the publication)"
    )]
    InsufficientPrivilege { message: String },
    /// The replication slot is in use by another walsender.
    #[error(
        "replication slot \"{slot}\" is active for PID {pid}; stop the other consumer (SELECT pg_terminate_backend({pid})) or choose another slot_name"
    )]
    SlotInUse { slot: String, pid: i32 },
    /// The replication slot does not exist.
    #[error(
        "replication slot \"{slot}\" does not exist; let tributary create it (slot management) or run SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"
    )]
    SlotMissing { slot: String },
    /// The slot can no longer be used (WAL removed, invalidated) or is not a pgoutput logical slot.
    #[error(
        "replication slot \"{slot}\" is unusable: {message}; drop it (SELECT pg_drop_replication_slot('{slot}')), let tributary recreate it and re-snapshot the tables, since changes were lost"
    )]
    SlotUnusable { slot: String, message: String },
    /// The publication does not exist or lacks tables; `sql` is what fixes it.
    #[error("publication \"{publication}\" {problem}; run: {sql}")]
    Publication {
        publication: String,
        problem: String,
        sql: String,
    },
    /// The server is too old for what we ask of it.
    #[error(
        "PostgreSQL {version} is not supported: pgoutput protocol version 2 with streaming of in-progress transactions needs PostgreSQL 14 or newer; upgrade the server"
    )]
    UnsupportedServerVersion { version: String },
    /// A pgoutput or replication-protocol violation (unexpected message, unknown relation).
    #[error(
        "replication protocol error: {message}; this is a bug or an incompatible server/plugin: report it with the server version; restarting from the last acknowledged LSN re-reads the same data"
    )]
    Protocol { message: String },
    /// A catalog value could not be interpreted.
    #[error(
        "cannot interpret PostgreSQL catalog data: {message}; report it with the server version"
    )]
    Decode { message: String },
    /// The configuration is invalid (bad conninfo, missing database, bad option).
    #[error("invalid PostgreSQL configuration: {message}")]
    Config { message: String },
    /// Reading or writing a spill file of the transaction buffer failed.
    #[error(
        "transaction spill file {path}: {message}; check that spill_dir exists, is writable by tributary and has free space (or raise memory_budget_bytes)"
    )]
    Spill { path: String, message: String },
    /// PostgreSQL reported an error this crate does not classify.
    #[error("PostgreSQL error {code}: {message}; fix the cause PostgreSQL names and restart")]
    Server { code: String, message: String },
    /// The replication reader was stopped (shutdown or an earlier error already reported).
    #[error("the replication reader has stopped: {message}; start a new PgReplication")]
    Stopped { message: String },
}

impl PgError {
    /// Whether retrying the same operation later can succeed (reconnect with back-off).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PgError::Connection { .. }
                | PgError::ServerShutdown { .. }
                | PgError::Timeout { .. }
                | PgError::WalsenderTerminated { .. }
                | PgError::Busy { .. }
        )
    }

    /// The opposite of [`is_transient`](Self::is_transient): an operator must act.
    pub fn is_definite(&self) -> bool {
        !self.is_transient()
    }

    /// Shorthand for a protocol error.
    pub fn protocol(message: impl fmt::Display) -> Self {
        PgError::Protocol {
            message: message.to_string(),
        }
    }

    /// Shorthand for a spill-file error.
    pub fn spill(path: &std::path::Path, err: impl fmt::Display) -> Self {
        PgError::Spill {
            path: path.display().to_string(),
            message: err.to_string(),
        }
    }

    /// Classify a server error by SQLSTATE code and message.
    pub fn from_sqlstate(code: &str, message: &str) -> Self {
        let m = message.to_owned();
        let lower = message.to_ascii_lowercase();
        match code {
            "55006" if lower.contains("replication slot") => PgError::SlotInUse {
                slot: first_quoted(message).unwrap_or_default(),
                pid: pid_in(message).unwrap_or(0),
            },
            "55006" => PgError::Busy { message: m },
            "42501" if lower.contains("replication") || lower.contains("wal sender") => {
                PgError::ReplicationPrivilege {
                    user: "<connector role>".into(),
                    message: m,
                }
            }
            "42501" => PgError::InsufficientPrivilege { message: m },
            "55000" if lower.contains("wal_level") => PgError::WalLevel {
                current: if lower.contains("minimal") {
                    "minimal"
                } else {
                    "replica"
                }
                .into(),
            },
            "55000" if lower.contains("replication slot") || lower.contains("slot") => {
                PgError::SlotUnusable {
                    slot: first_quoted(message).unwrap_or_default(),
                    message: m,
                }
            }
            "42704" if lower.contains("replication slot") => PgError::SlotMissing {
                slot: first_quoted(message).unwrap_or_default(),
            },
            "42704" if lower.contains("publication") => {
                let publication = first_quoted(message).unwrap_or_default();
                PgError::Publication {
                    sql: format!(
                        "CREATE PUBLICATION {} FOR TABLE <schema.table>, ...;",
                        crate::sql::quote_ident(&publication)
                    ),
                    publication,
                    problem: "does not exist".into(),
                }
            }
            "0A000" if lower.contains("proto_version") || lower.contains("protocol") => {
                PgError::UnsupportedServerVersion {
                    version: format!("(server says: {message})"),
                }
            }
            "57P01" | "57P02" | "57P03" => PgError::ServerShutdown { message: m },
            "57014" => PgError::Timeout { message: m },
            "53300" | "53000" | "53100" | "53200" | "40001" | "40P01" => {
                PgError::Busy { message: m }
            }
            "3D000" | "22023" | "42601" | "F0000" => PgError::Config { message: m },
            c if c.starts_with("28") => PgError::Auth { message: m },
            c if c.starts_with("08") => PgError::Connection { message: m },
            c => PgError::Server {
                code: c.to_owned(),
                message: m,
            },
        }
    }
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            let mut message = db.message().to_owned();
            if let Some(detail) = db.detail() {
                message.push_str(" (");
                message.push_str(detail);
                message.push(')');
            }
            return PgError::from_sqlstate(db.code().code(), &message);
        }
        // tokio-postgres' Display hides the cause ("error connecting to
        // server"); the operator needs it ("Connection refused").
        let mut message = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            message.push_str(": ");
            message.push_str(&c.to_string());
            cause = c.source();
        }
        let lower = message.to_ascii_lowercase();
        let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        if e.is_closed() || io {
            PgError::Connection { message }
        } else if lower.contains("timed out") || lower.contains("timeout") {
            PgError::Timeout { message }
        } else if lower.contains("password") || lower.contains("authentication") {
            PgError::Auth { message }
        } else if lower.contains("invalid")
            || lower.contains("config")
            || lower.contains("unexpected") && lower.contains("conn")
        {
            PgError::Config { message }
        } else {
            PgError::Connection { message }
        }
    }
}

impl From<pg_walstream::ReplicationError> for PgError {
    fn from(e: pg_walstream::ReplicationError) -> Self {
        use pg_walstream::ReplicationError as R;
        // pg_walstream prefixes server errors with "[SQLSTATE] ".
        let server =
            |msg: &str| split_sqlstate(msg).map(|(code, rest)| PgError::from_sqlstate(code, rest));
        match e {
            R::TransientConnection(m) | R::ReplicationConnection(m)
                if m.contains("must be superuser or replication role") =>
            {
                PgError::ReplicationPrivilege {
                    user: "<connector role>".into(),
                    message: m,
                }
            }
            R::TransientConnection(m) => {
                server(&m).unwrap_or(if m.contains("COPY") || m.contains("stream") {
                    PgError::WalsenderTerminated { message: m }
                } else {
                    PgError::Connection { message: m }
                })
            }
            R::ReplicationConnection(m) => server(&m).unwrap_or(PgError::Connection { message: m }),
            R::PermanentConnection(m) => server(&m).unwrap_or_else(|| {
                let lower = m.to_ascii_lowercase();
                if lower.contains("authentication") || lower.contains("password") {
                    PgError::Auth { message: m }
                } else {
                    PgError::Config { message: m }
                }
            }),
            R::Authentication(m) => server(&m).unwrap_or(PgError::Auth { message: m }),
            R::ReplicationSlot(m) => server(&m).unwrap_or(PgError::SlotUnusable {
                slot: first_quoted(&m).unwrap_or_default(),
                message: m,
            }),
            R::Timeout(m) => PgError::Timeout { message: m },
            R::Io(err) => PgError::Connection {
                message: err.to_string(),
            },
            R::Backend(m) => PgError::Connection { message: m },
            R::Cancelled(m) => PgError::Stopped { message: m },
            R::StreamStopped(lsn) => PgError::WalsenderTerminated {
                message: format!("stream stopped at {lsn}"),
            },
            R::Config(m) => PgError::Config { message: m },
            R::Protocol(m) => server(&m).unwrap_or(PgError::Protocol { message: m }),
            R::Buffer(m) | R::Deserialize(m) => PgError::Protocol { message: m },
            R::StringConversion(err) => PgError::Config {
                message: err.to_string(),
            },
        }
    }
}

impl From<crate::lsn::ParseLsnError> for PgError {
    fn from(e: crate::lsn::ParseLsnError) -> Self {
        PgError::Decode {
            message: e.to_string(),
        }
    }
}

/// `"[55006] rest"` → `("55006", "rest")`.
fn split_sqlstate(msg: &str) -> Option<(&str, &str)> {
    let start = msg.find('[')?;
    let code = msg.get(start + 1..start + 6)?;
    if msg.get(start + 6..start + 7)? != "]" || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some((code, msg[start + 7..].trim_start()))
}

/// The first `"quoted"` token of a server message (slot or publication name).
fn first_quoted(msg: &str) -> Option<String> {
    let start = msg.find('"')? + 1;
    let len = msg[start..].find('"')?;
    Some(msg[start..start + len].to_owned())
}

/// The PID in "... is active for PID 123".
fn pid_in(msg: &str) -> Option<i32> {
    let at = msg.find("PID ")? + 4;
    let digits: String = msg[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg_walstream::ReplicationError as R;

    #[test]
    fn sqlstates_split_transient_from_definite() {
        let e = PgError::from_sqlstate("55006", "replication slot \"s\" is active for PID 123");
        assert_eq!(
            e,
            PgError::SlotInUse {
                slot: "s".into(),
                pid: 123
            }
        );
        assert!(!e.is_transient());
        let text = e.to_string();
        assert!(
            text.contains("PID 123") && text.contains("choose another slot_name"),
            "{text}"
        );

        for code in [
            "08006", "08001", "57P01", "57P02", "57P03", "53300", "40001",
        ] {
            assert!(PgError::from_sqlstate(code, "x").is_transient(), "{code}");
        }
        for code in ["28P01", "28000", "42501", "3D000", "XX000"] {
            assert!(PgError::from_sqlstate(code, "x").is_definite(), "{code}");
        }
    }

    #[test]
    fn definite_messages_name_the_fix() {
        let e = PgError::from_sqlstate(
            "55000",
            "logical decoding requires \"wal_level\" >= \"logical\"",
        );
        assert!(
            e.to_string()
                .contains("ALTER SYSTEM SET wal_level = logical"),
            "{e}"
        );
        let e = PgError::from_sqlstate(
            "42501",
            "must be superuser or replication role to start walsender",
        );
        assert!(matches!(e, PgError::ReplicationPrivilege { .. }));
        assert!(e.to_string().contains("REPLICATION"), "{e}");
        let e = PgError::from_sqlstate("42704", "replication slot \"tb\" does not exist");
        assert_eq!(e, PgError::SlotMissing { slot: "tb".into() });
        let e = PgError::from_sqlstate("42704", "publication \"Pub\" does not exist");
        assert!(e.to_string().contains("CREATE PUBLICATION \"Pub\""), "{e}");
        let e = PgError::from_sqlstate(
            "55000",
            "can no longer get changes from replication slot \"tb\"",
        );
        assert!(matches!(e, PgError::SlotUnusable { ref slot, .. } if slot == "tb"));
        let e = PgError::from_sqlstate(
            "0A000",
            "client sent proto_version=2 but server only supports protocol 1 or lower",
        );
        assert!(e.to_string().contains("PostgreSQL 14"), "{e}");
    }

    #[test]
    fn walstream_errors_are_reclassified() {
        let e: PgError =
            R::TransientConnection("[55006] replication slot \"s\" is active for PID 9".into())
                .into();
        assert_eq!(
            e,
            PgError::SlotInUse {
                slot: "s".into(),
                pid: 9
            }
        );
        let e: PgError = R::TransientConnection(
            "[57P01] terminating connection due to administrator command".into(),
        )
        .into();
        assert!(matches!(e, PgError::ServerShutdown { .. }) && e.is_transient());
        let e: PgError =
            R::TransientConnection("PQconsumeInput failed: server closed the connection".into())
                .into();
        assert!(e.is_transient());
        let e: PgError = R::Authentication(
            "PostgreSQL authentication failed: password authentication failed".into(),
        )
        .into();
        assert!(matches!(e, PgError::Auth { .. }));
        let e: PgError =
            R::PermanentConnection("[42501] permission denied to start WAL sender".into()).into();
        assert!(matches!(e, PgError::ReplicationPrivilege { .. }));
        let e: PgError = R::Protocol("Unknown message type: 90 ('Z')".into()).into();
        assert!(matches!(e, PgError::Protocol { .. }) && e.is_definite());
        let e: PgError = R::Timeout("connect".into()).into();
        assert!(e.is_transient());
    }

    #[test]
    fn helpers() {
        assert_eq!(split_sqlstate("[08006] x"), Some(("08006", "x")));
        assert_eq!(split_sqlstate("no code"), None);
    }
}
