//! Waiting for a job to finish, by polling its ledger row: the demo waits for its job this
//! way, and so do the integration tests.

use std::time::Duration;

use uuid::Uuid;

use super::DemoError;
use crate::App;
use crate::store::ledger::{self, JobRecord};

/// Polls the ledger until the job is `done` or `dead`.
pub async fn wait_until_finished(
    app: &App,
    job_id: Uuid,
    timeout: Duration,
) -> Result<JobRecord, DemoError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(record) = ledger::get(&app.store, job_id).await?
            && (record.state == ledger::state::DONE || record.state == ledger::state::DEAD)
        {
            return Ok(record);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(DemoError::Timeout(timeout));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
