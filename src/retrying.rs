//! Retrying a short operation through a passing failure (a dropped connection, a
//! serialization conflict): for the writes that must not be lost once the world has seen
//! their effect (an attempt's outcome, a message marked sent).

use std::fmt::Display;
use std::time::Duration;

/// Runs `operation` up to 5 times, 100 ms apart and doubling, while it fails, logging each
/// failure but the last, which is returned: a database connection cut (a restart, a
/// failover) costs one failed attempt before the pool opens a new one.
pub async fn with_retries<T, E, F, Fut>(what: &str, mut operation: F) -> Result<T, E>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delay = Duration::from_millis(100);
    let mut tries = 1;
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(error) if tries < 5 => {
                tracing::warn!(%error, tries, "{what} failed; trying again");
                tokio::time::sleep(delay).await;
                delay *= 2;
                tries += 1;
            }
            Err(error) => return Err(error),
        }
    }
}
