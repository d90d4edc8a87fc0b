//! The enqueue client (feature `client`): hands jobs to a running lifecycle service over
//! its HTTP API, validated before they leave.
//!
//! ```no_run
//! # async fn example() -> Result<(), lifecycle_jobs::client::ClientError> {
//! use lifecycle_jobs::client::Client;
//! use lifecycle_jobs::{Actor, DeactivateUser};
//!
//! let client = Client::new("http://lifecycle.internal:8080", "the-service-token");
//! let job = DeactivateUser {
//!     account_id: 1,
//!     user_id: 42,
//!     actor: Actor::User(7),
//!     reassign_to: None,
//!     allow_reactivation_on_purchase: false,
//!     requested_at: None,
//! };
//! // The same key twice (a retried request) enqueues once.
//! let enqueued = client.enqueue(&job, Some("crm-request-8812")).await?;
//! let status = client.job(enqueued.job_id).await?;
//! println!("{} is {}", status.id, status.state);
//! # Ok(())
//! # }
//! ```

use std::fmt;

use serde::Deserialize;
use uuid::Uuid;

use crate::{
    BatchItem, BatchJob, BatchRequest, BatchResponse, Enqueued, InvalidPayload, Job, JobStatus,
    MAX_BATCH_JOBS,
};

/// A client of one lifecycle service.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    token: String,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The payload is invalid (found here or by the service): the field and the reason.
    #[error(transparent)]
    Invalid(#[from] InvalidPayload),
    /// The token was refused.
    #[error("the lifecycle service refused the token")]
    Unauthorized,
    /// No job with that id (or one outside the token's accounts or kinds: the same answer).
    #[error("no such job")]
    NotFound,
    /// The token's scope does not cover the request: `field` is what is out of it (`kind`,
    /// `actor` for `"system"`, `account_id`), none for a whole endpoint.
    #[error("the lifecycle service refused the request for this token: {message}")]
    Forbidden {
        /// The field out of the token's scope.
        field: Option<String>,
        /// The service's reason.
        message: String,
    },
    /// The idempotency key already holds another job of the account (another kind or
    /// payload): nothing was enqueued. A retry of the same job gets `created: false`
    /// instead; a new job needs a new key.
    #[error("idempotency key already used by job {job_id}: {message}")]
    Conflict {
        /// The job that holds the key.
        job_id: Uuid,
        /// The service's message.
        message: String,
    },
    /// Any other answer: the status and what the service said.
    #[error("the lifecycle service answered {status}: {message}")]
    Service {
        /// The HTTP status.
        status: u16,
        /// The service's error message.
        message: String,
    },
    /// The service could not be reached or answered something unreadable.
    #[error("cannot reach the lifecycle service: {0}")]
    Transport(#[from] reqwest::Error),
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    field: Option<String>,
    job_id: Option<Uuid>,
}

impl Client {
    /// A client of the service at `base_url` (`http://host:port`) with the caller's service
    /// token (its `[[http.tokens]]` scope applies).
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base_url: base_url.into().trim_end_matches('/').to_string(),
            token: token.into(),
        }
    }

    /// Validates `job` and enqueues it; `idempotency_key` makes a retried call harmless
    /// (the same job again answers `created: false`). The key is scoped to the job's
    /// account; used with another job it is [`ClientError::Conflict`].
    pub async fn enqueue<J: Job>(
        &self,
        job: &J,
        idempotency_key: Option<&str>,
    ) -> Result<Enqueued, ClientError> {
        job.validate()?;
        let mut request = self
            .http
            .post(format!("{}/v1/jobs/{}", self.base_url, J::SLUG))
            .bearer_auth(&self.token)
            .json(job);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await?;
        Self::read(response).await
    }

    /// Enqueues many jobs, of any kinds, in one request (`POST /v1/jobs`): build each with
    /// [`BatchJob::new`]. The answer has one [`BatchItem`] per job, in order: accepted
    /// (`created: false` for a retry with the same key) or refused with the field and the
    /// status the single route would answer (400, 403, 409); one refused job does not stop
    /// the others. More than [`MAX_BATCH_JOBS`] jobs are refused here, before sending.
    ///
    /// ```no_run
    /// # async fn example(client: lifecycle_jobs::client::Client) -> Result<(), lifecycle_jobs::client::ClientError> {
    /// use lifecycle_jobs::{ActivitySource, BatchItem, BatchJob, RecordActivity};
    ///
    /// let jobs = (1..=3)
    ///     .map(|user_id| {
    ///         let job = RecordActivity { account_id: 1, user_id, source: ActivitySource::Api, at: None };
    ///         BatchJob::new(&job, Some(&format!("activity-{user_id}")))
    ///     })
    ///     .collect::<Result<Vec<_>, _>>()?;
    /// for item in client.enqueue_many(&jobs).await? {
    ///     match item {
    ///         BatchItem::Enqueued(enqueued) => println!("{}", enqueued.job_id),
    ///         BatchItem::Refused(refusal) => println!("{:?}: {}", refusal.field, refusal.error),
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn enqueue_many(&self, jobs: &[BatchJob]) -> Result<Vec<BatchItem>, ClientError> {
        if jobs.len() > MAX_BATCH_JOBS {
            return Err(InvalidPayload::new(
                "jobs",
                format!(
                    "holds {} jobs, more than {MAX_BATCH_JOBS}: split the batch",
                    jobs.len()
                ),
            )
            .into());
        }
        let response = self
            .http
            .post(format!("{}/v1/jobs", self.base_url))
            .bearer_auth(&self.token)
            .json(&BatchRequest {
                jobs: jobs.to_vec(),
            })
            .send()
            .await?;
        let answer: BatchResponse = Self::read(response).await?;
        Ok(answer.results)
    }

    /// The job's state, attempts and last error.
    pub async fn job(&self, id: Uuid) -> Result<JobStatus, ClientError> {
        let response = self
            .http
            .get(format!("{}/v1/jobs/{id}", self.base_url))
            .bearer_auth(&self.token)
            .send()
            .await?;
        Self::read(response).await
    }

    async fn read<T: serde::de::DeserializeOwned>(
        response: reqwest::Response,
    ) -> Result<T, ClientError> {
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(response.json().await?);
        }
        let text = response.text().await.unwrap_or_default();
        let body: Option<ErrorBody> = serde_json::from_str(&text).ok();
        Err(match (status, body) {
            (401, _) => ClientError::Unauthorized,
            (404, _) => ClientError::NotFound,
            (400, Some(ErrorBody { error, field, .. })) => ClientError::Invalid(
                InvalidPayload::new(field.unwrap_or_else(|| "payload".into()), error),
            ),
            (403, Some(ErrorBody { error, field, .. })) => ClientError::Forbidden {
                field,
                message: error,
            },
            (
                409,
                Some(ErrorBody {
                    error,
                    job_id: Some(job_id),
                    ..
                }),
            ) => ClientError::Conflict {
                job_id,
                message: error,
            },
            (_, Some(body)) => ClientError::Service {
                status,
                message: body.error,
            },
            (_, None) => ClientError::Service {
                status,
                message: text,
            },
        })
    }
}
