//! `GET /metrics`: the Prometheus exposition of [`crate::metrics::METRICS`], behind the
//! bearer-token check like every route; only a token whose scope has `metrics` (or a
//! development token) may read it.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::api::{ApiError, TokenScope};
use crate::App;
use crate::metrics::METRICS;

pub async fn serve(
    State(app): State<Arc<App>>,
    Extension(scope): Extension<Arc<TokenScope>>,
) -> Result<Response, ApiError> {
    if !scope.metrics {
        return Err(ApiError::Forbidden {
            field: None,
            reason: "this token may not read the metrics (`metrics` is not in its scope)".into(),
        });
    }
    let text = METRICS.render(&app.store, app.clock.now_ms()).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
