//! The daemon's HTTP port: liveness and readiness for systemd/Kubernetes,
//! and the schema registry, read-only, in the Confluent REST shape.
//!
//! Sits beside the data path, never in it: the pipelines update [`Health`]
//! and the registries; the server only reads them. Enabled by
//! `[daemon] http_listen`; stopped by the daemon's shutdown token.
//!
//! - [`health_routes`]: `GET /healthz`, `GET /readyz`.
//! - [`registry_routes`]: `GET /subjects…`, `/schemas/ids/…`, `/config…`.

pub mod health_routes;
pub mod registry_routes;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use health_routes::{Health, SourceState};

use crate::registry::SchemaRegistry;

/// Why the HTTP port could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} (config key `daemon.http_listen`): {source}; {remedy}")]
pub struct BindError {
    addr: String,
    source: std::io::Error,
    remedy: &'static str,
}

/// Binds the HTTP port `addr` (`host:port`, the `daemon.http_listen`
/// setting).
pub async fn bind(addr: &str) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr).await.map_err(|source| BindError {
        addr: addr.to_string(),
        remedy: match source.kind() {
            std::io::ErrorKind::AddrInUse => {
                "another process uses this port: stop it or choose another port"
            }
            std::io::ErrorKind::PermissionDenied => {
                "ports below 1024 need privileges: choose a port above 1024"
            }
            _ => "check the address is one of this host's",
        },
        source,
    })
}

/// The whole router (also used by the tests in-process).
pub fn router(registries: Vec<SchemaRegistry>, health: Health) -> Router {
    health_routes::routes(health)
        .merge(registry_routes::routes(registries))
        .fallback(registry_routes::unknown_route)
}

/// Serves the router on `listener` until `shutdown` is cancelled, then
/// finishes the requests in flight and returns.
pub async fn serve(
    listener: TcpListener,
    registries: Vec<SchemaRegistry>,
    health: Health,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(registries, health))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[cfg(test)]
mod tests;
