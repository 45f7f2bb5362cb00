//! Waiting on a condition instead of sleeping: the one polling helper of every end-to-end test,
//! benchmark and chaos scenario.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`eventually`] asks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A condition that did not hold in time.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {} s waiting until {what}", timeout.as_secs_f32())]
pub struct TimedOut {
    pub what: String,
    pub timeout: Duration,
}

/// Polls `condition` every [`POLL_INTERVAL`] until it returns `Ok(true)`, and returns how long
/// that took. An `Err` from the condition ends the wait with that error; `timeout` passing
/// ends it with [`TimedOut`] naming `what`.
///
/// A synchronous check is an async block around it: `eventually("…", limit, || async {
/// Ok(receiver.summary().accepted >= 3) })`.
pub async fn eventually<F, Fut>(
    what: &str,
    timeout: Duration,
    condition: F,
) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    eventually_every(what, timeout, POLL_INTERVAL, condition).await
}

/// [`eventually`], asking every `interval`: for a condition that is expensive to check, such
/// as one that reads a whole stream.
pub async fn eventually_every<F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut condition: F,
) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let started = Instant::now();
    loop {
        if condition().await? {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= timeout {
            return Err(TimedOut {
                what: what.to_owned(),
                timeout,
            }
            .into());
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_condition_that_comes_true_ends_the_wait_and_one_that_never_does_times_out() {
        let mut asked = 0;
        let took = eventually("asked three times", Duration::from_secs(5), || {
            asked += 1;
            let done = asked >= 3;
            async move { Ok(done) }
        })
        .await;
        assert!(took.is_ok(), "{took:?}");
        assert_eq!(asked, 3);

        let never = eventually("never", Duration::from_millis(120), || async { Ok(false) }).await;
        let error = never.expect_err("a false condition times out");
        assert!(error.downcast_ref::<TimedOut>().is_some(), "{error:#}");
        assert!(
            error.to_string().contains("waiting until never"),
            "{error:#}"
        );

        let failed = eventually("fails", Duration::from_secs(5), || async {
            anyhow::bail!("broken")
        })
        .await;
        assert_eq!(
            failed.expect_err("the error ends the wait").to_string(),
            "broken"
        );
    }
}
