//! Sink errors, split the way the pipeline needs them.
//!
//! Sits under every sink operation (store I/O, encoding, manifests, merge).
//! The pipeline retries a [`SinkError::is_transient`] error from the last
//! checkpoint with backoff; any other error stops the source, so its message
//! must name the cause and what the operator does about it. Nothing is ever
//! acknowledged to the source past the last durable manifest, so either kind
//! of failure loses nothing.

use std::io;

/// Why a sink operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Network trouble, throttling or a server-side (5xx) failure of the
    /// object store. Retried.
    #[error("sink {url}: {action} {path} failed temporarily ({message}); will retry")]
    Unavailable {
        url: String,
        action: &'static str,
        path: String,
        message: String,
    },

    /// The local disk (or volume) behind the sink is full.
    #[error(
        "sink {url} is full (no space left on device) while writing {path}; free space or point the sink elsewhere, then restart — nothing was acknowledged past the last manifest"
    )]
    Full { url: String, path: String },

    /// Missing permissions or invalid credentials.
    #[error(
        "sink {url}: permission denied while {action} {path} ({message}); grant tributary read/write access to that location (check file ownership, or the AWS_*/GOOGLE_*/AZURE_* credentials in the environment), then restart"
    )]
    PermissionDenied {
        url: String,
        action: &'static str,
        path: String,
        message: String,
    },

    /// Any other store failure that retrying will not fix (read-only file
    /// system, unsupported operation, invalid path).
    #[error(
        "sink {url}: {action} {path} failed ({message}); fix the storage location, then restart"
    )]
    Store {
        url: String,
        action: &'static str,
        path: String,
        message: String,
    },

    /// The sink URL cannot be used.
    #[error(
        "invalid sink url {url:?}: {reason}; use file:///abs/path, an absolute path, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix"
    )]
    InvalidUrl { url: String, reason: String },

    /// A value does not fit its column's lake type. Writing it would either
    /// fail later or silently change data, so the source stops instead.
    #[error(
        "cannot write {table} column {column} at {position}: {detail}; the source produced a value that does not match the column type — report this as a bug with the column's source type"
    )]
    Unencodable {
        table: String,
        column: String,
        position: String,
        detail: String,
    },

    /// Lake content that cannot be right (unreadable manifest, same position
    /// with different content, a gap in manifest numbers). The message says
    /// which object and what to do.
    #[error("{0}")]
    Corrupt(String),

    /// Arrow/Parquet refused to build or encode a batch (a bug, not data).
    #[error("encoding {table} to Parquet failed: {message}; this is a bug, please report it")]
    Encode { table: String, message: String },
}

impl SinkError {
    /// Whether retrying the same operation may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, SinkError::Unavailable { .. })
    }

    /// Lake content that is not what tributary wrote (definite).
    pub fn corrupt(message: impl Into<String>) -> SinkError {
        SinkError::Corrupt(message.into())
    }

    /// Classifies an object store failure of `action` on `path` in the sink
    /// at `url`. `local` tells whether the store is a local file system (then
    /// unknown I/O failures are definite; on remote stores they are network).
    pub(crate) fn from_store(
        error: &object_store::Error,
        url: &str,
        action: &'static str,
        path: &str,
        local: bool,
    ) -> SinkError {
        let message = error_chain_text(error);
        let url = url.to_string();
        let path = path.to_string();
        if is_no_space(error) {
            return SinkError::Full { url, path };
        }
        let denied = matches!(
            error,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        ) || io_errors(error).any(|e| e.kind() == io::ErrorKind::PermissionDenied)
            || (!local && remote_status_in(&message, &["401", "403"]));
        if denied {
            return SinkError::PermissionDenied {
                url,
                action,
                path,
                message,
            };
        }
        let definite = match error {
            object_store::Error::InvalidPath { .. }
            | object_store::Error::NotSupported { .. }
            | object_store::Error::NotImplemented { .. }
            | object_store::Error::UnknownConfigurationKey { .. } => true,
            _ if local => !io_errors(error).any(|e| is_transient_io(e.kind())),
            _ => remote_status_in(&message, &["400", "404", "405", "409", "411", "412", "413"]),
        };
        if definite {
            SinkError::Store {
                url,
                action,
                path,
                message,
            }
        } else {
            SinkError::Unavailable {
                url,
                action,
                path,
                message,
            }
        }
    }

    /// Classifies a local file system failure (fsync, directory creation).
    pub(crate) fn from_io(
        error: &io::Error,
        url: &str,
        action: &'static str,
        path: &str,
    ) -> SinkError {
        let (url, path, message) = (url.to_string(), path.to_string(), error.to_string());
        if is_no_space_io(error) {
            SinkError::Full { url, path }
        } else if error.kind() == io::ErrorKind::PermissionDenied {
            SinkError::PermissionDenied {
                url,
                action,
                path,
                message,
            }
        } else if is_transient_io(error.kind()) {
            SinkError::Unavailable {
                url,
                action,
                path,
                message,
            }
        } else {
            SinkError::Store {
                url,
                action,
                path,
                message,
            }
        }
    }
}

/// Every `io::Error` in the source chain of `error`.
fn io_errors<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a io::Error> + 'a {
    std::iter::successors(Some(error), |e| e.source()).filter_map(|e| e.downcast_ref::<io::Error>())
}

/// The whole chain as one line (object_store nests the useful part).
fn error_chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = e.source();
    }
    text
}

/// ENOSPC anywhere in the chain, or in the message when a layer flattened it.
fn is_no_space(error: &(dyn std::error::Error + 'static)) -> bool {
    io_errors(error).any(is_no_space_io)
        || error_chain_text(error).contains("No space left on device")
}

fn is_no_space_io(error: &io::Error) -> bool {
    const ENOSPC: i32 = 28;
    error.kind() == io::ErrorKind::StorageFull
        || error.raw_os_error() == Some(ENOSPC)
        || error.to_string().contains("No space left on device")
}

fn is_transient_io(kind: io::ErrorKind) -> bool {
    use io::ErrorKind::*;
    matches!(
        kind,
        Interrupted
            | TimedOut
            | WouldBlock
            | ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | NotConnected
            | BrokenPipe
            | UnexpectedEof
            | ResourceBusy
    )
}

/// Whether an object store message reports one of these HTTP statuses.
fn remote_status_in(message: &str, statuses: &[&str]) -> bool {
    statuses
        .iter()
        .any(|s| message.contains(&format!("status {s}")) || message.contains(&format!("{s} ")))
        && !message.contains("status 5")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(source: io::Error) -> object_store::Error {
        object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(source),
        }
    }

    #[test]
    fn enospc_is_definite_and_names_the_remedy() {
        let error = generic(io::Error::from_raw_os_error(28));
        let mapped = SinkError::from_store(
            &error,
            "file:///lake",
            "writing",
            "s/_manifests/1.json",
            true,
        );
        assert!(matches!(mapped, SinkError::Full { .. }), "{mapped:?}");
        assert!(!mapped.is_transient());
        assert_eq!(
            mapped.to_string(),
            "sink file:///lake is full (no space left on device) while writing s/_manifests/1.json; free space or point the sink elsewhere, then restart — nothing was acknowledged past the last manifest"
        );
        // Flattened into a message by some layer.
        let flat = generic(io::Error::other(
            "write failed: No space left on device (os error 28)",
        ));
        assert!(matches!(
            SinkError::from_store(&flat, "u", "writing", "p", false),
            SinkError::Full { .. }
        ));
        let io = SinkError::from_io(&io::Error::from_raw_os_error(28), "u", "syncing", "p");
        assert!(matches!(io, SinkError::Full { .. }));
    }

    #[test]
    fn permission_is_definite_network_is_transient() {
        let denied = generic(io::Error::from(io::ErrorKind::PermissionDenied));
        let mapped = SinkError::from_store(&denied, "u", "writing", "p", true);
        assert!(matches!(mapped, SinkError::PermissionDenied { .. }) && !mapped.is_transient());
        let reset = generic(io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(SinkError::from_store(&reset, "s3://b", "writing", "p", false).is_transient());
        let server = object_store::Error::Generic {
            store: "S3",
            source: "Server error, body contains Error, with status 503 Service Unavailable".into(),
        };
        assert!(SinkError::from_store(&server, "s3://b", "writing", "p", false).is_transient());
        let forbidden = object_store::Error::Generic {
            store: "S3",
            source: "Client error with status 403 Forbidden".into(),
        };
        assert!(matches!(
            SinkError::from_store(&forbidden, "s3://b", "writing", "p", false),
            SinkError::PermissionDenied { .. }
        ));
        let readonly = generic(io::Error::from_raw_os_error(30));
        assert!(!SinkError::from_store(&readonly, "u", "writing", "p", true).is_transient());
    }
}
