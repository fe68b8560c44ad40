//! Errors of a running daemon, split the way an operator needs them:
//! transient ones are retried with backoff and logged with the reason;
//! definite ones stop the source with a message that names the cause and the
//! fix. `anyhow` is used only in `main`.

use crate::config::ConfigError;
use crate::registry::RegistryError;
use crate::sink::SinkError;
use crate::source::SourceError;

/// Why a pipeline (or the whole daemon) stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("source {source_name}: {error}")]
    Source {
        source_name: String,
        #[source]
        error: SourceError,
    },
    #[error("source {source_name}: sink: {error}")]
    Sink {
        source_name: String,
        #[source]
        error: SinkError,
    },
    #[error("source {source_name}: {error}")]
    Schema {
        source_name: String,
        #[source]
        error: Box<RegistryError>,
    },
    #[error("source {source_name}: checkpoint: {message}")]
    Checkpoint {
        source_name: String,
        message: String,
    },
    #[error("source {source_name}: {message}")]
    Pipeline {
        source_name: String,
        message: String,
    },
}

impl RunError {
    /// Whether retrying (reconnecting, rewriting) may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            RunError::Config(_) | RunError::Pipeline { .. } => false,
            RunError::Source { error, .. } => error.is_transient(),
            RunError::Sink { error, .. } => error.is_transient(),
            RunError::Schema { error, .. } => error.is_transient(),
            RunError::Checkpoint { .. } => true,
        }
    }
}
