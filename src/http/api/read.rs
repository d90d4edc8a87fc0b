//! `GET /v1/jobs/{id}`: a job's state as the ledger holds it, to a token that may see it.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, State};
use lifecycle_jobs::{InvalidPayload, JobStatus};
use uuid::Uuid;

use super::{ApiError, ErrorBody, TokenScope};
use crate::App;
use crate::store::ledger::{self, JobRecord};

/// The ledger row as the API shows it.
fn job_status(record: JobRecord) -> JobStatus {
    JobStatus {
        id: record.id,
        kind: record.kind,
        state: record.state,
        attempts: record.attempts,
        max_attempts: record.max_attempts,
        last_error: record.last_error,
        created_at_ms: record.created_at_ms,
        finished_at_ms: record.finished_at_ms,
    }
}

/// Shows a job: its state, attempts and last error.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    params(("id" = Uuid, Path, description = "The job id returned at enqueue")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job", body = JobStatus),
        (status = 400, description = "Not a job id", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such job, or one outside the token's accounts or kinds (the same answer)", body = ErrorBody),
        (status = 503, description = "The job store is unavailable; try again later", body = ErrorBody),
    )
)]
pub async fn show(
    State(app): State<Arc<App>>,
    Extension(scope): Extension<Arc<TokenScope>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<JobStatus>, ApiError> {
    let not_an_id = || InvalidPayload::new("id", "must be a job id (a UUID)");
    let Path(id) = id.map_err(|_| not_an_id())?;
    // A kind's path (`/v1/jobs/{kind}`) is posted to, not read.
    if lifecycle_jobs::kind_name(&id).is_some() {
        return Err(ApiError::MethodNotAllowed { allow: "POST" });
    }
    let id = Uuid::parse_str(&id).map_err(|_| not_an_id())?;
    let record = ledger::get(&app.store, id)
        .await?
        .filter(|record| scope.may_read(record))
        .ok_or(ApiError::NotFound)?;
    Ok(Json(job_status(record)))
}
