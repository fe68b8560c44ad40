//! Errors of the MongoDB connector, split the way the daemon needs them:
//! transient (the network dropped, the primary stepped down, the server is
//! restarting: reopen the change stream with backoff from the last
//! checkpointed resume token) and definite (stop; the message names the
//! cause and the fix).
//!
//! Every fallible step of the crate (preflight, the change stream, event
//! decoding, snapshot scans) returns [`MongoError`]; driver errors are
//! classified once, in [`MongoError::from_driver`].

use std::collections::HashSet;

/// Server error code: the resume point is no longer in the oplog.
pub const CHANGE_STREAM_HISTORY_LOST: i32 = 286;
/// Server error code: the change stream cannot continue (for instance its
/// resume token belongs to another collection or cluster).
pub const CHANGE_STREAM_FATAL_ERROR: i32 = 280;
/// Server error code: a capped collection (the oplog) rolled over the
/// position a cursor was reading at.
pub const CAPPED_POSITION_LOST: i32 = 136;
/// Server error code: `$changeStream` on a server that is not a replica set
/// member nor a `mongos`.
const CHANGE_STREAM_NEEDS_REPLICA_SET: i32 = 40573;
const NAMESPACE_NOT_FOUND: i32 = 26;
const UNAUTHORIZED: i32 = 13;
const AUTHENTICATION_FAILED: i32 = 18;
const USER_NOT_FOUND: i32 = 11;
const CURSOR_NOT_FOUND: i32 = 43;

/// Server error codes after which reopening the stream from the last resume
/// token can succeed: network trouble, elections, shutdowns, stale routing
/// (the change streams specification's resumable list, plus
/// `CursorNotFound`).
const TRANSIENT_CODES: [i32; 18] = [
    6,     // HostUnreachable
    7,     // HostNotFound
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
    63,    // StaleShardVersion
    150,   // StaleEpoch
    13388, // StaleConfig
    234,   // RetryChangeStream
    133,   // FailedToSatisfyReadPreference
    CURSOR_NOT_FOUND,
];

/// Error labels the server (4.4+) or the driver attach to errors worth
/// retrying.
const TRANSIENT_LABELS: [&str; 3] = [
    "ResumableChangeStreamError",
    "RetryableError",
    "SystemOverloadedError",
];

/// The command that turns on pre- and post-images for a collection, for
/// messages (`<coll>` is replaced by the collection's name).
pub fn pre_images_command(collection: &str) -> String {
    format!(
        "db.runCommand({{collMod: \"{collection}\", changeStreamPreAndPostImages: {{enabled: true}}}})"
    )
}

/// What went wrong, and whether retrying can help ([`MongoError::is_transient`]).
#[derive(Debug, thiserror::Error)]
pub enum MongoError {
    /// Worth retrying: connection refused or lost, primary stepped down,
    /// server shutting down, no server selectable yet.
    #[error("{message}")]
    Transient {
        /// What was being done and what failed.
        message: String,
    },
    /// The resume token is older than the oldest oplog entry.
    #[error(
        "{context}: the resume token the stream asked for is no longer in the oplog (oplog rolled over; server error {code}: {server_message}): the changes after it are lost to this source; stop the daemon and run `tributary checkpoint reset --config <file> --source <name> --to current` to copy the collections again, and grow the oplog (replSetResizeOplog) or checkpoint more often so this does not recur"
    )]
    HistoryLost {
        /// What was being done.
        context: String,
        /// 286, 280 or 136.
        code: i32,
        /// The server's own words.
        server_message: String,
    },
    /// Change streams need a replica set (or a sharded cluster's `mongos`).
    #[error(
        "{context}: the server is not a replica set member ({detail}); change streams need the oplog of a replica set: start mongod with --replSet <name> and run rs.initiate() once (a single-member replica set is enough), then connect to it"
    )]
    NotReplicaSet {
        /// What was being done.
        context: String,
        /// What the server said or reported.
        detail: String,
    },
    /// Wrong credentials, or the user lacks a privilege.
    #[error(
        "{context}: {detail}; check the user name, password and authSource in the connection string, and give the user the `read` role on the database (it grants the `find` and `changeStream` actions the connector needs)"
    )]
    Auth {
        /// What was being done.
        context: String,
        /// The server's message.
        detail: String,
    },
    /// A configured collection does not exist.
    #[error(
        "collection {database}.{collection} does not exist: check the collection names in the source's configuration (they are case-sensitive), or create the collection first"
    )]
    UnknownCollection {
        /// Database name.
        database: String,
        /// Collection name.
        collection: String,
    },
    /// The stream asks for pre- or post-images the server did not keep.
    #[error(
        "{context}: {detail}; turn on pre- and post-images for every captured collection with {} (MongoDB 6.0+), or use the `updateLookup` full-document mode",
        pre_images_command("<coll>")
    )]
    ImagesUnavailable {
        /// What was being done.
        context: String,
        /// The server's message.
        detail: String,
    },
    /// A collection does not record the pre- and post-images the
    /// `required` full-document mode needs.
    #[error(
        "collection {database}.{collection} does not record pre- and post-images, which the `required` full-document mode needs (MongoDB 6.0+): in database {database} run {}, or use the `updateLookup` mode",
        pre_images_command(.collection)
    )]
    PreImagesOff {
        /// Database name.
        database: String,
        /// Collection name.
        collection: String,
    },
    /// A change event that does not have the documented shape.
    #[error("malformed change event: {message}")]
    Decode {
        /// What is missing or mistyped, and where.
        message: String,
    },
    /// The server closed the change stream (after an `invalidate` event:
    /// the watched collection was dropped or renamed, or the database was
    /// dropped).
    #[error(
        "the change stream was closed by the server (invalidated); open a new one with startAfter the invalidate event's resume token ({token}) once the collections exist again"
    )]
    StreamClosed {
        /// The last resume token, as canonical extended JSON.
        token: String,
    },
    /// Anything else that will not go away by retrying.
    #[error("{message}")]
    Definite {
        /// Cause, and the fix when known.
        message: String,
    },
}

impl MongoError {
    /// Whether reopening (with backoff, from the last checkpoint) may
    /// succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, MongoError::Transient { .. })
    }

    /// Classifies a driver error; `context` says what was being done.
    pub fn from_driver(error: mongodb::error::Error, context: &str) -> MongoError {
        use mongodb::error::ErrorKind;
        let labels = error.labels();
        if let Some(command) = command_error(&error) {
            return classify_server(
                command.code,
                &command.code_name,
                &command.message,
                labels,
                context,
            );
        }
        match error.kind.as_ref() {
            ErrorKind::Authentication { message, .. } => MongoError::Auth {
                context: context.to_string(),
                detail: message.clone(),
            },
            ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::ServerSelection { .. }
            | ErrorKind::DnsResolve { .. } => MongoError::Transient {
                message: format!("{context}: {}", error.kind),
            },
            _ if has_transient_label(labels) => MongoError::Transient {
                message: format!("{context}: {}", error.kind),
            },
            _ => MongoError::Definite {
                message: format!("{context}: {}", error.kind),
            },
        }
    }
}

/// The server's command error inside a driver error, if any (possibly
/// wrapped as the error's source).
fn command_error(error: &mongodb::error::Error) -> Option<&mongodb::error::CommandError> {
    let mut current: &(dyn std::error::Error + 'static) = error;
    loop {
        if let Some(driver) = current.downcast_ref::<mongodb::error::Error>()
            && let mongodb::error::ErrorKind::Command(command) = driver.kind.as_ref()
        {
            return Some(command);
        }
        current = current.source()?;
    }
}

fn has_transient_label(labels: &HashSet<String>) -> bool {
    TRANSIENT_LABELS.iter().any(|label| labels.contains(*label))
}

/// Classifies a server error by code, code name, message and labels.
fn classify_server(
    code: i32,
    code_name: &str,
    message: &str,
    labels: &HashSet<String>,
    context: &str,
) -> MongoError {
    let lower = message.to_ascii_lowercase();
    let detail = format!("{message} ({code_name}, error {code})");
    match code {
        CHANGE_STREAM_HISTORY_LOST | CHANGE_STREAM_FATAL_ERROR | CAPPED_POSITION_LOST => {
            MongoError::HistoryLost {
                context: context.to_string(),
                code,
                server_message: message.to_string(),
            }
        }
        CHANGE_STREAM_NEEDS_REPLICA_SET => MongoError::NotReplicaSet {
            context: context.to_string(),
            detail,
        },
        _ if lower.contains("only supported on replica sets") => MongoError::NotReplicaSet {
            context: context.to_string(),
            detail,
        },
        UNAUTHORIZED | AUTHENTICATION_FAILED | USER_NOT_FOUND => MongoError::Auth {
            context: context.to_string(),
            detail,
        },
        _ if lower.contains("pre-image") || lower.contains("post-image") => {
            MongoError::ImagesUnavailable {
                context: context.to_string(),
                detail,
            }
        }
        _ if TRANSIENT_CODES.contains(&code) || has_transient_label(labels) => {
            MongoError::Transient {
                message: format!("{context}: {detail}"),
            }
        }
        NAMESPACE_NOT_FOUND => MongoError::Definite {
            message: format!(
                "{context}: {detail}; check the database and collection names in the source's configuration"
            ),
        },
        _ => MongoError::Definite {
            message: format!("{context}: {detail}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;
    use mongodb::error::{CommandError, Error, ErrorKind};

    fn no_labels() -> HashSet<String> {
        HashSet::new()
    }

    fn server_error(code: i32, code_name: &str, message: &str) -> Error {
        let command: CommandError = mongodb::bson::from_document(
            doc! { "code": code, "codeName": code_name, "errmsg": message },
        )
        .unwrap();
        Error::from(ErrorKind::Command(command))
    }

    #[test]
    fn lost_history_names_snapshot() {
        for code in [286, 280, 136] {
            let error = MongoError::from_driver(
                server_error(
                    code,
                    "ChangeStreamHistoryLost",
                    "Resume of change stream was not possible, as the resume point may no longer be in the oplog.",
                ),
                "opening the change stream",
            );
            assert!(matches!(error, MongoError::HistoryLost { .. }), "{error:?}");
            assert!(!error.is_transient());
            let text = error.to_string();
            assert!(
                text.contains("no longer in the oplog")
                    && text.contains(
                        "`tributary checkpoint reset --config <file> --source <name> --to current`"
                    ),
                "{text}"
            );
        }
    }

    #[test]
    fn standalone_servers_name_replica_set_setup() {
        let error = MongoError::from_driver(
            server_error(
                40573,
                "Location40573",
                "The $changeStream stage is only supported on replica sets",
            ),
            "opening the change stream",
        );
        let text = error.to_string();
        assert!(matches!(error, MongoError::NotReplicaSet { .. }));
        assert!(
            text.contains("--replSet") && text.contains("rs.initiate()"),
            "{text}"
        );
    }

    #[test]
    fn auth_failures_name_the_role() {
        let error = MongoError::from_driver(
            server_error(
                13,
                "Unauthorized",
                "not authorized on shop to execute command",
            ),
            "opening the change stream",
        );
        assert!(matches!(error, MongoError::Auth { .. }));
        assert!(error.to_string().contains("`read` role"), "{error}");
        let bad_password = MongoError::from_driver(
            server_error(18, "AuthenticationFailed", "Authentication failed."),
            "connecting",
        );
        assert!(matches!(bad_password, MongoError::Auth { .. }));
    }

    #[test]
    fn network_and_election_errors_are_transient() {
        let io = Error::from(ErrorKind::Io(std::sync::Arc::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ))));
        assert!(MongoError::from_driver(io, "reading").is_transient());
        for (code, name) in [
            (10107, "NotWritablePrimary"),
            (189, "PrimarySteppedDown"),
            (91, "ShutdownInProgress"),
            (43, "CursorNotFound"),
        ] {
            let error = MongoError::from_driver(server_error(code, name, "x"), "reading");
            assert!(error.is_transient(), "{code}: {error:?}");
        }
        let labelled = classify_server(
            1,
            "InternalError",
            "x",
            &HashSet::from(["ResumableChangeStreamError".to_string()]),
            "c",
        );
        assert!(labelled.is_transient());
        assert!(!classify_server(2, "BadValue", "x", &no_labels(), "c").is_transient());
    }

    #[test]
    fn missing_images_name_coll_mod() {
        let error = classify_server(280, "ChangeStreamFatalError", "x", &no_labels(), "c");
        assert!(matches!(error, MongoError::HistoryLost { .. }));
        let images = classify_server(
            47,
            "NoMatchingDocument",
            "Change stream was configured to require a pre-image for all update, delete and replace events, but the pre-image was not found",
            &no_labels(),
            "reading the change stream",
        );
        let text = images.to_string();
        assert!(matches!(images, MongoError::ImagesUnavailable { .. }));
        assert!(
            text.contains("collMod: \"<coll>\", changeStreamPreAndPostImages: {enabled: true}"),
            "{text}"
        );
    }

    #[test]
    fn collections_without_images_name_their_coll_mod() {
        let text = MongoError::PreImagesOff {
            database: "shop".into(),
            collection: "orders".into(),
        }
        .to_string();
        assert!(
            text.contains(
                r#"in database shop run db.runCommand({collMod: "orders", changeStreamPreAndPostImages: {enabled: true}})"#
            ),
            "{text}"
        );
    }

    #[test]
    fn unknown_collections_name_the_namespace() {
        let text = MongoError::UnknownCollection {
            database: "shop".into(),
            collection: "Orders".into(),
        }
        .to_string();
        assert!(
            text.contains("shop.Orders does not exist") && text.contains("case-sensitive"),
            "{text}"
        );
    }
}
