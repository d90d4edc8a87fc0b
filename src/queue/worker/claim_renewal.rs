//! Keeps a running job's claim fresh while its handler still runs, so a job that outlives
//! the visibility timeout (a sweep over many users) is not taken for abandoned and run a
//! second time by another worker.
//!
//! Short jobs pay nothing but a timer: the handler races a sleep of a third of the timeout,
//! and only a job still running when it fires renews its claim (one UPDATE on the ledger's
//! `locked_at_ms`, which the stale requeue reads; on Redis also an `XCLAIM ... JUSTID` of its
//! entry to the same consumer, which resets the idle time `XAUTOCLAIM` reads). A process
//! that dies stops renewing: its jobs come back through the process heartbeats (within about
//! `heartbeat_timeout_secs`) or, at the latest, the visibility timeout.

use std::future::Future;
use std::time::Duration;

use crate::queue::transport::Transport;
use crate::queue::{Delivery, Queue, QueueError};
use crate::store::ledger;

/// How often a running job's claim is renewed: three renewals fit in one visibility
/// timeout, so one that fails (a passing outage) still leaves time for the next.
pub fn renewal_interval(visibility_timeout_secs: u64) -> Duration {
    Duration::from_millis(visibility_timeout_secs.max(1) * 1000 / 3)
}

/// Runs `handler` to its end, renewing `delivery`'s claim every [`renewal_interval`] while
/// it runs. A renewal that fails is logged and tried again next interval: the job goes on.
pub async fn run_holding_claim<F: Future>(
    queue: &Queue,
    delivery: &Delivery,
    handler: F,
) -> F::Output {
    let every = renewal_interval(queue.settings.visibility_timeout_secs);
    let mut handler = std::pin::pin!(handler);
    loop {
        tokio::select! {
            biased;
            output = &mut handler => return output,
            _ = tokio::time::sleep(every) => {
                match renew(queue, delivery).await {
                    Ok(true) => tracing::debug!("claim renewed: the job is still running"),
                    Ok(false) => tracing::warn!("the job's claim was no longer held when renewed"),
                    Err(error) => tracing::warn!(%error, "could not renew the job's claim"),
                }
            }
        }
    }
}

/// Renews the claim in the ledger, then the transport's entry under the holder's name.
/// Returns whether the claim was still this attempt's.
async fn renew(queue: &Queue, delivery: &Delivery) -> Result<bool, QueueError> {
    let job = &delivery.job;
    let now_ms = queue.clock.now_ms();
    let Some(holder) = ledger::renew_claim(&queue.store, job.id, job.attempts, now_ms).await?
    else {
        return Ok(false);
    };
    if let (Transport::Redis(redis), Some(entry_id)) = (&queue.transport, &delivery.entry_id) {
        redis.renew_pending(&holder, entry_id).await?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_renewals_fit_in_one_visibility_timeout() {
        assert_eq!(renewal_interval(300), Duration::from_secs(100));
        assert_eq!(renewal_interval(3), Duration::from_secs(1));
        assert_eq!(renewal_interval(0), Duration::from_millis(333));
    }
}
