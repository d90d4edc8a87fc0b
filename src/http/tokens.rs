//! The check other services call on each request that carries a user's session, access
//! token or API token: is it still good, and whose is it? A revoked token (deactivation
//! revokes them all at once) fails here on the very next request.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, State};
use serde::{Deserialize, Serialize};

use super::api::{ApiError, ErrorBody, TokenScope};
use super::json_object::JsonObject;
use crate::App;
use crate::store::access;

/// The token to check, in the body so it never lands in a URL or an access log.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenCheckRequest {
    pub token: String,
}

impl std::fmt::Debug for TokenCheckRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCheckRequest([redacted])")
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenCheckResponse {
    /// Whether the token is live and its user may log in.
    pub valid: bool,
    /// The user the token belongs to, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
}

/// Checks a user's token.
#[utoipa::path(
    post,
    path = "/v1/tokens/check",
    request_body = TokenCheckRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Whether the token is valid, and whose", body = TokenCheckResponse),
        (status = 400, description = "No token in the body", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "The service token may not check tokens (`check_tokens` is not in its scope)", body = ErrorBody),
        (status = 413, description = "Body larger than the payload limit", body = ErrorBody),
        (status = 415, description = "Body not JSON", body = ErrorBody),
        (status = 503, description = "The store is unavailable; try again later", body = ErrorBody),
    )
)]
pub async fn check(
    State(app): State<Arc<App>>,
    Extension(scope): Extension<Arc<TokenScope>>,
    body: Result<Json<JsonObject<TokenCheckRequest>>, JsonRejection>,
) -> Result<Json<TokenCheckResponse>, ApiError> {
    // Whose a session is, is for the services that authenticate users, not every caller.
    if !scope.check_tokens {
        return Err(ApiError::Forbidden {
            field: None,
            reason: "this token may not check tokens".into(),
        });
    }
    // The same statuses as the enqueue routes: 415 for a body that is not JSON, 413 past
    // the limit, 400 naming `token` for the rest.
    let Json(JsonObject(request)) = body.map_err(|rejection| match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        other if other.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge(lifecycle_jobs::MAX_PAYLOAD_BYTES)
        }
        other => lifecycle_jobs::InvalidPayload::new("token", other.body_text()).into(),
    })?;
    let mut tx = app.store.begin_read().await?;
    let user_id = access::user_of_token(&mut tx, &request.token).await?;
    tx.rollback().await?;
    Ok(Json(TokenCheckResponse {
        valid: user_id.is_some(),
        user_id,
    }))
}
