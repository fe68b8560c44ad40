//! `GET /healthz` (liveness: the process serves requests) and `GET /readyz`
//! (readiness: every source is snapshotting or streaming), with each
//! source's state, as the pipelines report it through [`Health`].

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Serialize;

/// What a source is doing, as far as an operator's probe is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SourceState {
    /// Connecting, checking the source, loading the checkpoint.
    Starting,
    /// Copying existing rows (ready: data flows).
    Snapshotting,
    /// Following the source's log (ready).
    Streaming,
    /// A transient failure; the pipeline retries with backoff.
    Retrying { error: String },
    /// Stopped on shutdown.
    Stopped,
    /// Stopped by an error retrying cannot fix; the operator acts.
    Failed { error: String },
}

/// Each source's state, shared by the pipelines (writers) and the HTTP
/// server (reader). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Health {
    sources: Arc<RwLock<BTreeMap<String, SourceState>>>,
}

impl Health {
    /// Every configured source, starting.
    pub fn new(sources: impl IntoIterator<Item = String>) -> Health {
        let map = sources
            .into_iter()
            .map(|s| (s, SourceState::Starting))
            .collect();
        Health {
            sources: Arc::new(RwLock::new(map)),
        }
    }

    /// Records what `source` is doing now.
    pub fn set_source_state(&self, source: &str, state: SourceState) {
        let mut sources = self.sources.write().expect("health lock poisoned");
        if sources.get(source) != Some(&state) {
            sources.insert(source.to_string(), state);
        }
    }

    /// Every source's state.
    pub fn snapshot(&self) -> BTreeMap<String, SourceState> {
        self.sources.read().expect("health lock poisoned").clone()
    }

    /// Every source snapshotting or streaming.
    pub fn ready(&self) -> bool {
        self.snapshot()
            .values()
            .all(|s| matches!(s, SourceState::Snapshotting | SourceState::Streaming))
    }
}

/// The probe routes over `health`.
pub fn routes(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(health): State<Health>) -> (StatusCode, Json<serde_json::Value>) {
    let ready = health.ready();
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not ready" },
        "sources": health.snapshot(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
