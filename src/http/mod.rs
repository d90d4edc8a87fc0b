//! The HTTP server: health and readiness, the enqueue API (`/v1/jobs`) and its OpenAPI
//! document; the operators' dashboard (`/admin`).

pub mod admin;
pub mod api;
mod json_object;
mod metrics;
pub mod openapi;
mod tokens;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::App;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/v1/openapi.json", get(openapi::serve_document))
        .merge(api::routes(&app))
        .merge(admin::routes())
        .with_state(app)
}

/// Ready when the database answers.
async fn ready(State(app): State<Arc<App>>) -> (StatusCode, &'static str) {
    match app.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(error) => {
            tracing::warn!(%error, "not ready: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
        }
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let gauges = crate::metrics::Metrics::refresh_in_background(Arc::clone(&app));
    // The peer's address reaches the dashboard's limit of failed sign-ins per address.
    let served = axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    gauges.abort();
    served
}
