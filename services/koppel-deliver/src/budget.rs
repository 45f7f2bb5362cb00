//! The retry budget that survives restarts. The retry loop counts attempts and time in process
//! memory; this module says how much of a message's budget earlier deliveries already spent,
//! from what JetStream keeps: the message's delivery count, its age in the stream, and marks the
//! supervisor stores in the consumer's metadata when it recreates the consumer from its ack
//! floor (recreating resets JetStream's delivery count, so without the marks a deliverer that
//! crashes on one message would start it with a fresh budget on every restart, for ever).
//!
//! All pure, with table tests.

use std::collections::HashMap;
use std::time::Duration;

/// What earlier deliveries of a message already spent of its retry budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpentBudget {
    /// Attempts assumed made before this delivery: one per earlier delivery.
    pub attempts: u32,
    /// Time already spent on it: for a message the deliverer keeps crashing on, its age in the
    /// stream (when its first attempt was is known to nobody; its publication bounds it); zero
    /// otherwise.
    pub elapsed: Duration,
}

/// What the supervisor remembers in the consumer's metadata each time it recreates the
/// consumer from its ack floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedeliveryMarks {
    /// Messages up to this stream sequence had been delivered before the restart: they come
    /// again as redeliveries, whatever JetStream's (reset) delivery count says.
    pub delivered_through: u64,
    /// The first message after the ack floor at the restart: the one that holds the floor back.
    pub stuck_sequence: u64,
    /// Consecutive restarts with the floor held back at `stuck_sequence`: each means at least
    /// one delivery of that message that was never settled (a crash loop, if it keeps growing).
    pub restarts: u32,
}

const DELIVERED_THROUGH: &str = "koppel_delivered_through";
const STUCK_SEQUENCE: &str = "koppel_stuck_sequence";
const RESTARTS: &str = "koppel_restarts";

impl RedeliveryMarks {
    /// The marks of a restart from `ack_floor` of a consumer that had delivered up to
    /// `delivered_through`, given the marks of the previous restart.
    pub fn after_restart(previous: Option<&Self>, ack_floor: u64, delivered_through: u64) -> Self {
        let stuck_sequence = ack_floor.saturating_add(1);
        let restarts = match previous {
            Some(previous) if previous.stuck_sequence == stuck_sequence => {
                previous.restarts.saturating_add(1)
            }
            _ => 1,
        };
        RedeliveryMarks {
            delivered_through: delivered_through.max(stuck_sequence),
            stuck_sequence,
            restarts,
        }
    }

    /// Reads the marks back; `None` when absent or unreadable (then nothing is assumed).
    pub fn from_metadata(metadata: &HashMap<String, String>) -> Option<Self> {
        let number = |key: &str| metadata.get(key)?.parse::<u64>().ok();
        Some(RedeliveryMarks {
            delivered_through: number(DELIVERED_THROUGH)?,
            stuck_sequence: number(STUCK_SEQUENCE)?,
            restarts: u32::try_from(number(RESTARTS)?).ok()?,
        })
    }

    /// Writes the marks into consumer metadata, keeping any other keys.
    pub fn write_metadata(&self, metadata: &mut HashMap<String, String>) {
        metadata.insert(
            DELIVERED_THROUGH.to_owned(),
            self.delivered_through.to_string(),
        );
        metadata.insert(STUCK_SEQUENCE.to_owned(), self.stuck_sequence.to_string());
        metadata.insert(RESTARTS.to_owned(), self.restarts.to_string());
    }
}

/// What earlier deliveries spent of the budget of the message at `stream_sequence`, delivered
/// `delivered` times (JetStream's count, this delivery included) and `age` old.
pub fn spent_budget(
    delivered: i64,
    stream_sequence: u64,
    age: Duration,
    marks: Option<&RedeliveryMarks>,
) -> SpentBudget {
    let by_jetstream = u32::try_from(delivered.saturating_sub(1).max(0)).unwrap_or(u32::MAX);
    let by_marks = match marks {
        Some(marks) if stream_sequence == marks.stuck_sequence => marks.restarts,
        Some(marks) if stream_sequence <= marks.delivered_through => 1,
        _ => 0,
    };
    let attempts = by_jetstream.max(by_marks);
    // The age counts only for a message that held the floor back over two restarts or more:
    // evidence of a crash loop. Any other redelivery may be an old backlog caught up after an
    // outage and interrupted by a deploy; measured from its publication it would be
    // dead-lettered unattempted.
    let crash_looping =
        marks.is_some_and(|marks| stream_sequence == marks.stuck_sequence && marks.restarts >= 2);
    SpentBudget {
        attempts,
        elapsed: if crash_looping { age } else { Duration::ZERO },
    }
}

/// Why a message's budget is spent before it is even attempted, if it is: `max_attempts` (0 =
/// none) earlier deliveries, or a redelivery older than `max_age` (`None` = none).
pub fn exhausted_before_attempt(
    max_attempts: u32,
    max_age: Option<Duration>,
    spent: SpentBudget,
) -> Option<String> {
    // (A redelivery older than the age budget: only crash loops carry an age, see above.)
    if max_attempts > 0 && spent.attempts >= max_attempts {
        return Some(format!(
            "delivered {} times before without being settled (budget {max_attempts} attempts); the deliverer may have crashed on it",
            spent.attempts
        ));
    }
    match max_age {
        Some(max_age) if spent.attempts > 0 && spent.elapsed >= max_age => Some(format!(
            "redelivered {} s after it was stored (budget {} s)",
            spent.elapsed.as_secs(),
            max_age.as_secs()
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn marks(delivered_through: u64, stuck_sequence: u64, restarts: u32) -> RedeliveryMarks {
        RedeliveryMarks {
            delivered_through,
            stuck_sequence,
            restarts,
        }
    }

    #[test]
    fn spent_budget_takes_the_larger_of_jetstreams_count_and_the_marks() {
        let stuck = marks(50, 10, 4);
        let once = marks(50, 10, 1);
        let cases = [
            // (delivered, sequence, marks, expected attempts, whether its age counts)
            (1, 10, None, 0, false),
            (3, 10, None, 2, false),
            (1, 10, Some(&stuck), 4, true),
            (7, 10, Some(&stuck), 6, true),
            (1, 10, Some(&once), 1, false),
            (1, 11, Some(&stuck), 1, false),
            (1, 50, Some(&stuck), 1, false),
            (1, 51, Some(&stuck), 0, false),
            (0, 51, None, 0, false),
            (-5, 51, None, 0, false),
        ];
        for (delivered, sequence, marks, expected, aged) in cases {
            let spent = spent_budget(delivered, sequence, HOUR, marks);
            assert_eq!(spent.attempts, expected, "{delivered} {sequence} {marks:?}");
            let elapsed = if aged { HOUR } else { Duration::ZERO };
            assert_eq!(spent.elapsed, elapsed, "{delivered} {sequence} {marks:?}");
        }
    }

    #[test]
    fn restarts_count_up_only_while_the_floor_stays() {
        let first = RedeliveryMarks::after_restart(None, 9, 40);
        assert_eq!(first, marks(40, 10, 1));
        let second = RedeliveryMarks::after_restart(Some(&first), 9, 12);
        assert_eq!(second, marks(12, 10, 2));
        let moved = RedeliveryMarks::after_restart(Some(&second), 10, 12);
        assert_eq!(moved, marks(12, 11, 1));
        // Nothing delivered past the floor: the stuck one is still covered.
        assert_eq!(RedeliveryMarks::after_restart(None, 9, 0), marks(10, 10, 1));
    }

    #[test]
    fn marks_round_trip_through_metadata_and_keep_other_keys() {
        let mut metadata = HashMap::from([("owner".to_owned(), "ops".to_owned())]);
        let written = marks(40, 10, 3);
        written.write_metadata(&mut metadata);
        assert_eq!(RedeliveryMarks::from_metadata(&metadata), Some(written));
        assert_eq!(metadata.get("owner").map(String::as_str), Some("ops"));
        assert_eq!(RedeliveryMarks::from_metadata(&HashMap::new()), None);
        metadata.insert(RESTARTS.to_owned(), "many".to_owned());
        assert_eq!(RedeliveryMarks::from_metadata(&metadata), None);
    }

    #[test]
    fn the_budget_is_spent_at_its_boundaries_not_before() {
        let spent = |attempts, elapsed| SpentBudget { attempts, elapsed };
        let day = Some(24 * HOUR);
        assert_eq!(
            exhausted_before_attempt(3, day, spent(0, Duration::ZERO)),
            None
        );
        assert_eq!(exhausted_before_attempt(3, day, spent(2, HOUR)), None);
        assert!(exhausted_before_attempt(3, day, spent(3, HOUR)).is_some());
        // No attempts budget: only age counts.
        assert_eq!(exhausted_before_attempt(0, day, spent(1_000, HOUR)), None);
        assert!(exhausted_before_attempt(0, day, spent(1, 24 * HOUR)).is_some());
        assert_eq!(
            exhausted_before_attempt(0, day, spent(1, 24 * HOUR - Duration::from_secs(1))),
            None
        );
        // A first delivery of an old message is not a redelivery: its clock starts now.
        assert_eq!(exhausted_before_attempt(3, day, spent(0, 48 * HOUR)), None);
        assert_eq!(exhausted_before_attempt(0, None, spent(9, 48 * HOUR)), None);
    }
}
