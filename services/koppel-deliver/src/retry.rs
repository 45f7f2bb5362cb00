//! The retry loop around one message: attempt, and on a retryable failure wait (exponential
//! backoff with jitter from backon, never shorter than the recipient's Retry-After) and attempt
//! again, until it is delivered, fails for good, runs out of budget, or shutdown comes.
//!
//! While it waits, and while an attempt is on the wire, it calls `progress` at a steady
//! interval; the engine sends JetStream an in-progress ack there, so a message that is still
//! being worked on is never redelivered to someone else (which would break per-employee order).
//!
//! Time is tokio's, so the tests run the whole schedule with paused time in microseconds.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::budget::{SpentBudget, exhausted_before_attempt};
use crate::config::RetrySettings;
use crate::outcome::{AttemptOutcome, DeadLetterClass, Settlement};

/// Builds the backoff schedule of one message: doubling from the initial backoff up to the cap,
/// with jitter, and no end (the budget decides when to stop, not the schedule).
pub fn backoff_schedule(settings: &RetrySettings) -> impl Iterator<Item = Duration> + use<> {
    let mut builder = ExponentialBuilder::default()
        .with_min_delay(settings.initial_backoff())
        .with_max_delay(settings.max_backoff())
        .without_max_times();
    if settings.jitter {
        builder = builder.with_jitter();
    }
    builder.build()
}

/// The delay before the next attempt: the schedule's, or the recipient's Retry-After when that
/// is longer. A Retry-After shorter than our own backoff is not a reason to hurry.
pub fn next_delay(scheduled: Duration, retry_after: Option<Duration>) -> Duration {
    match retry_after {
        Some(asked) => scheduled.max(asked),
        None => scheduled,
    }
}

/// Attempts until the message is settled. `attempt` gets the 1-based attempt number, counting
/// the attempts `spent` says earlier deliveries made; the age budget counts `spent`'s time too,
/// and a message whose budget is spent already is dead-lettered without an attempt.
pub async fn retry_until_settled<Attempt, AttemptFuture, Progress, ProgressFuture>(
    settings: &RetrySettings,
    spent: SpentBudget,
    progress_interval: Duration,
    shutdown: &CancellationToken,
    mut attempt: Attempt,
    mut progress: Progress,
) -> Settlement
where
    Attempt: FnMut(u32) -> AttemptFuture,
    AttemptFuture: Future<Output = AttemptOutcome>,
    Progress: FnMut() -> ProgressFuture,
    ProgressFuture: Future<Output = ()>,
{
    if let Some(reason) = exhausted_before_attempt(settings.max_attempts, settings.max_age(), spent)
    {
        return Settlement::DeadLetter {
            class: DeadLetterClass::BudgetExhausted,
            reason,
            attempts: spent.attempts,
        };
    }
    let started = Instant::now();
    let elapsed = || spent.elapsed.saturating_add(started.elapsed());
    let mut schedule = backoff_schedule(settings);
    let mut attempts: u32 = spent.attempts;
    loop {
        if shutdown.is_cancelled() {
            return Settlement::Released;
        }
        attempts = attempts.saturating_add(1);
        let outcome = with_progress(attempt(attempts), progress_interval, &mut progress).await;
        let (reason, retry_after) = match outcome {
            AttemptOutcome::Delivered { duplicate } => {
                return Settlement::Delivered {
                    duplicate,
                    attempts,
                };
            }
            AttemptOutcome::Filtered { reason } => return Settlement::Filtered { reason },
            AttemptOutcome::Permanent { class, reason } => {
                return Settlement::DeadLetter {
                    class: DeadLetterClass::Permanent(class),
                    reason,
                    attempts,
                };
            }
            AttemptOutcome::Retryable {
                reason,
                retry_after,
            } => (reason, retry_after),
        };
        if settings.max_attempts > 0 && attempts >= settings.max_attempts {
            return Settlement::DeadLetter {
                class: DeadLetterClass::BudgetExhausted,
                reason: format!("gave up after {attempts} attempts; last: {reason}"),
                attempts,
            };
        }
        let scheduled = schedule.next().unwrap_or_else(|| settings.max_backoff());
        let delay = next_delay(scheduled, retry_after);
        if let Some(max_age) = settings.max_age() {
            // Give up now rather than wait past the budget only to give up then.
            let age_at_next_attempt = elapsed().saturating_add(delay);
            if age_at_next_attempt > max_age {
                return Settlement::DeadLetter {
                    class: DeadLetterClass::BudgetExhausted,
                    reason: format!(
                        "gave up after {attempts} attempts over {} s (budget {} s); last: {reason}",
                        elapsed().as_secs(),
                        max_age.as_secs()
                    ),
                    attempts,
                };
            }
        }
        tracing::debug!(attempts, delay_ms = delay.as_millis() as u64, %reason, "Retryable failure; waiting before the next attempt.");
        let waited = tokio::select! {
            biased;
            _ = shutdown.cancelled() => false,
            _ = with_progress(tokio::time::sleep(delay), progress_interval, &mut progress) => true,
        };
        if !waited {
            return Settlement::Released;
        }
    }
}

/// Runs `work`, calling `progress` every `interval` until it finishes.
async fn with_progress<Work, Progress, ProgressFuture>(
    work: Work,
    interval: Duration,
    progress: &mut Progress,
) -> Work::Output
where
    Work: Future,
    Progress: FnMut() -> ProgressFuture,
    ProgressFuture: Future<Output = ()>,
{
    let mut work = std::pin::pin!(work);
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            output = &mut work => return output,
            _ = ticker.tick() => progress().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::collections::VecDeque;

    use super::*;
    use crate::outcome::PermanentClass;

    fn settings(max_attempts: u32, max_age_seconds: u64) -> RetrySettings {
        RetrySettings {
            initial_backoff_millis: 1_000,
            max_backoff_millis: 8_000,
            jitter: false,
            max_attempts,
            max_age_seconds,
        }
    }

    fn retryable(retry_after: Option<Duration>) -> AttemptOutcome {
        AttemptOutcome::Retryable {
            reason: "503".to_owned(),
            retry_after,
        }
    }

    /// Plays back scripted outcomes and records when (in paused tokio time) each attempt began.
    struct Script {
        outcomes: std::cell::RefCell<VecDeque<AttemptOutcome>>,
        attempt_times: std::cell::RefCell<Vec<Duration>>,
        started: Instant,
    }

    impl Script {
        fn new(outcomes: Vec<AttemptOutcome>) -> Self {
            Script {
                outcomes: std::cell::RefCell::new(outcomes.into()),
                attempt_times: std::cell::RefCell::new(Vec::new()),
                started: Instant::now(),
            }
        }

        fn next(&self) -> AttemptOutcome {
            self.attempt_times.borrow_mut().push(self.started.elapsed());
            self.outcomes
                .borrow_mut()
                .pop_front()
                .unwrap_or_else(|| retryable(None))
        }

        fn gaps(&self) -> Vec<Duration> {
            let times = self.attempt_times.borrow();
            times.windows(2).map(|pair| pair[1] - pair[0]).collect()
        }
    }

    async fn run(script: &Script, settings: &RetrySettings) -> Settlement {
        run_spent(script, settings, SpentBudget::default()).await
    }

    async fn run_spent(
        script: &Script,
        settings: &RetrySettings,
        spent: SpentBudget,
    ) -> Settlement {
        let shutdown = CancellationToken::new();
        retry_until_settled(
            settings,
            spent,
            Duration::from_secs(10),
            &shutdown,
            |_| async { script.next() },
            || async {},
        )
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_up_to_the_cap() {
        let script = Script::new(vec![
            retryable(None),
            retryable(None),
            retryable(None),
            retryable(None),
            retryable(None),
            AttemptOutcome::Delivered { duplicate: false },
        ]);
        let settlement = run(&script, &settings(0, 0)).await;
        assert_eq!(
            settlement,
            Settlement::Delivered {
                duplicate: false,
                attempts: 6
            }
        );
        let seconds: Vec<u64> = script.gaps().iter().map(Duration::as_secs).collect();
        assert_eq!(seconds, vec![1, 2, 4, 8, 8]);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_when_longer_than_the_backoff() {
        let script = Script::new(vec![
            retryable(Some(Duration::from_secs(30))),
            retryable(Some(Duration::from_millis(10))),
            AttemptOutcome::Delivered { duplicate: true },
        ]);
        let settlement = run(&script, &settings(0, 0)).await;
        assert_eq!(
            settlement,
            Settlement::Delivered {
                duplicate: true,
                attempts: 3
            }
        );
        assert_eq!(
            script.gaps(),
            vec![Duration::from_secs(30), Duration::from_secs(2)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_budget_dead_letters_after_the_last_attempt() {
        let script = Script::new(Vec::new());
        let settlement = run(&script, &settings(4, 0)).await;
        let Settlement::DeadLetter {
            class, attempts, ..
        } = settlement
        else {
            panic!("expected a dead letter, got {settlement:?}");
        };
        assert_eq!(class, DeadLetterClass::BudgetExhausted);
        assert_eq!(attempts, 4);
        assert_eq!(script.attempt_times.borrow().len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn age_budget_gives_up_before_waiting_past_it() {
        // 1 + 2 + 4 + 8 + 8 = 23 s of waits fit in 30 s; the next 8 s wait would not.
        let script = Script::new(Vec::new());
        let settlement = run(&script, &settings(0, 30)).await;
        assert!(matches!(
            settlement,
            Settlement::DeadLetter {
                class: DeadLetterClass::BudgetExhausted,
                attempts: 6,
                ..
            }
        ));
        let last = *script.attempt_times.borrow().last().unwrap();
        assert_eq!(last, Duration::from_secs(23));
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_beyond_the_age_budget_dead_letters_at_once() {
        let script = Script::new(vec![retryable(Some(Duration::from_secs(3600)))]);
        let settlement = run(&script, &settings(0, 60)).await;
        assert!(matches!(
            settlement,
            Settlement::DeadLetter {
                class: DeadLetterClass::BudgetExhausted,
                attempts: 1,
                ..
            }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_are_not_retried() {
        let script = Script::new(vec![AttemptOutcome::Permanent {
            class: PermanentClass::Refused,
            reason: "422 0014.2".to_owned(),
        }]);
        let settlement = run(&script, &settings(0, 0)).await;
        assert_eq!(
            settlement,
            Settlement::DeadLetter {
                class: DeadLetterClass::Permanent(PermanentClass::Refused),
                reason: "422 0014.2".to_owned(),
                attempts: 1
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_stays_between_the_delay_and_twice_the_delay() {
        let mut schedule = backoff_schedule(&RetrySettings {
            jitter: true,
            ..settings(0, 0)
        });
        for expected in [1, 2, 4, 8, 8] {
            let delay = schedule.next().unwrap();
            let base = Duration::from_secs(expected);
            assert!(delay >= base && delay <= base * 2, "{delay:?} vs {base:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn progress_is_reported_while_waiting_and_shutdown_releases() {
        let shutdown = CancellationToken::new();
        let beats = Cell::new(0u32);
        let script = Script::new(vec![retryable(Some(Duration::from_secs(100)))]);
        let cancel = shutdown.clone();
        let canceller = async {
            tokio::time::sleep(Duration::from_secs(45)).await;
            cancel.cancel();
        };
        let settings = settings(0, 0);
        let (settlement, ()) = tokio::join!(
            retry_until_settled(
                &settings,
                SpentBudget::default(),
                Duration::from_secs(10),
                &shutdown,
                |_| async { script.next() },
                || {
                    beats.set(beats.get() + 1);
                    async {}
                },
            ),
            canceller
        );
        assert_eq!(settlement, Settlement::Released);
        // Beats at 10, 20, 30 and 40 s of the 100 s wait; then shutdown.
        assert_eq!(beats.get(), 4);
        assert_eq!(script.attempt_times.borrow().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn earlier_deliveries_count_against_the_attempts_budget() {
        let script = Script::new(Vec::new());
        let spent = SpentBudget {
            attempts: 2,
            elapsed: Duration::from_secs(5),
        };
        let settlement = run_spent(&script, &settings(4, 0), spent).await;
        assert!(matches!(
            settlement,
            Settlement::DeadLetter {
                class: DeadLetterClass::BudgetExhausted,
                attempts: 4,
                ..
            }
        ));
        assert_eq!(script.attempt_times.borrow().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_budget_dead_letters_without_an_attempt() {
        let script = Script::new(vec![AttemptOutcome::Delivered { duplicate: false }]);
        for spent in [
            SpentBudget {
                attempts: 4,
                elapsed: Duration::ZERO,
            },
            SpentBudget {
                attempts: 1,
                elapsed: Duration::from_secs(30),
            },
        ] {
            let settlement = run_spent(&script, &settings(4, 30), spent).await;
            assert!(
                matches!(
                    settlement,
                    Settlement::DeadLetter {
                        class: DeadLetterClass::BudgetExhausted,
                        ..
                    }
                ),
                "{spent:?}: {settlement:?}"
            );
        }
        assert!(script.attempt_times.borrow().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_redelivery_counts_its_age_against_the_age_budget() {
        // 20 s spent already: the 1 + 2 + 4 s waits fit in the 10 s left, the next 8 s would not.
        let script = Script::new(Vec::new());
        let spent = SpentBudget {
            attempts: 1,
            elapsed: Duration::from_secs(20),
        };
        let settlement = run_spent(&script, &settings(0, 30), spent).await;
        assert!(matches!(
            settlement,
            Settlement::DeadLetter {
                class: DeadLetterClass::BudgetExhausted,
                attempts: 5,
                ..
            }
        ));
        assert_eq!(script.attempt_times.borrow().len(), 4);
    }
}
