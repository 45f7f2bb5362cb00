//! The extraction half of "nothing lost": what each simulated day's sources changed (the
//! mutation engine's ground truth) against the events koppel published for that day, per
//! connection. A [`Discrepancy::Missing`] is a loss; every other discrepancy is a mismatch
//! that loses nothing.

use std::collections::BTreeMap;
use std::fmt;

use koppel_events::EventType;
use koppel_sim::ground_truth::{Discrepancy, ExpectedEvents, compare, expected_events};
use koppel_sim::world::WorldChange;

use crate::onboarding::{LOKET_CONNECTION, UNIT4_CONNECTION};

/// What was published per connection id, in the ground truth's shape.
pub type EmittedByConnection = BTreeMap<String, ExpectedEvents>;

/// Adds one published event to `emitted`: per entity, its type and the union of the changed
/// fields. Employer records and sync markers are not in the ground truth and are skipped.
pub fn record_published(
    emitted: &mut EmittedByConnection,
    connection_id: &str,
    event_type: EventType,
    entity_id: &str,
    changed_fields: &[String],
) {
    if matches!(
        event_type,
        EventType::SyncCompleted | EventType::EmployerUpserted
    ) {
        return;
    }
    let entry = emitted
        .entry(connection_id.to_owned())
        .or_default()
        .entry(entity_id.to_owned())
        .or_insert_with(|| (event_type, Default::default()));
    entry.1.extend(changed_fields.iter().cloned());
}

/// One discrepancy of one simulated day at one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayDiscrepancy {
    /// 1-based simulated day.
    pub day: u32,
    pub connection: &'static str,
    pub discrepancy: Discrepancy,
}

impl fmt::Display for DayDiscrepancy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "day {} {}: {}",
            self.day, self.connection, self.discrepancy
        )
    }
}

/// Compares day `day`'s ground truth of both sources (`loket`, `unit4`: the world changes of
/// [`LOKET_CONNECTION`] and [`UNIT4_CONNECTION`]) with what was published for that day.
pub fn compare_day(
    day: u32,
    loket: &[WorldChange],
    unit4: &[WorldChange],
    emitted: &EmittedByConnection,
) -> Vec<DayDiscrepancy> {
    let nothing = ExpectedEvents::new();
    let mut discrepancies = Vec::new();
    for (connection, changes) in [(LOKET_CONNECTION, loket), (UNIT4_CONNECTION, unit4)] {
        discrepancies.extend(
            compare(
                &expected_events(changes),
                emitted.get(connection).unwrap_or(&nothing),
            )
            .into_iter()
            .map(|discrepancy| DayDiscrepancy {
                day,
                connection,
                discrepancy,
            }),
        );
    }
    discrepancies
}

/// Ground-truth changes never published (`lost`) and published events that differ from the
/// ground truth without losing anything (`mismatches`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroundTruthScore {
    pub lost: u64,
    pub mismatches: u64,
}

impl GroundTruthScore {
    /// Counts `discrepancies` in: a loss or a mismatch each.
    pub fn add<'a>(&mut self, discrepancies: impl IntoIterator<Item = &'a DayDiscrepancy>) {
        for day_discrepancy in discrepancies {
            if day_discrepancy.discrepancy.is_loss() {
                self.lost += 1;
            } else {
                self.mismatches += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use koppel_sim::world::{MutationRates, World, WorldConfig};

    #[test]
    fn an_unpublished_change_is_lost_and_an_extra_event_is_a_mismatch() {
        let mut world =
            World::generate(WorldConfig::new(3, 1, 30).with_rates(MutationRates::busy()));
        let changes = world.advance_days(5).to_vec();
        let expected = expected_events(&changes);
        assert!(!expected.is_empty());
        let mut emitted = EmittedByConnection::new();
        for (entity, (event_type, fields)) in &expected {
            let fields: Vec<String> = fields.iter().cloned().collect();
            record_published(&mut emitted, LOKET_CONNECTION, *event_type, entity, &fields);
        }
        record_published(
            &mut emitted,
            LOKET_CONNECTION,
            EventType::SyncCompleted,
            "x",
            &[],
        );
        let mut score = GroundTruthScore::default();
        score.add(&compare_day(1, &changes, &[], &emitted));
        assert_eq!(score, GroundTruthScore::default(), "all published");

        let first = expected.keys().next().cloned().unwrap_or_default();
        if let Some(loket) = emitted.get_mut(LOKET_CONNECTION) {
            loket.remove(&first);
        }
        record_published(
            &mut emitted,
            UNIT4_CONNECTION,
            EventType::EmployeeUpdated,
            "someone",
            &["name".to_owned()],
        );
        let discrepancies = compare_day(2, &changes, &[], &emitted);
        let mut score = GroundTruthScore::default();
        score.add(&discrepancies);
        assert_eq!(
            score,
            GroundTruthScore {
                lost: 1,
                mismatches: 1
            }
        );
        let lines: Vec<String> = discrepancies.iter().map(ToString::to_string).collect();
        assert!(
            lines.contains(&format!(
                "day 2 loket-demo: missing {:?} for {first}",
                expected[&first].0
            )),
            "{lines:?}"
        );
    }
}
