//! Unit4: after each of 30 busy simulated days, one poll per employer (a full snapshot diff)
//! emits exactly the changes the mutation engine's ground-truth log records: none missing,
//! none extra.

use std::collections::BTreeMap;

use koppel_events::{EventType, SyncKind};
use koppel_sim::world::MutationRates;

use crate::ground_truth::{Emitted, compare, expected_events, world_state_of};
use crate::support::counts;
use crate::unit4_support::{Unit4Harness, Unit4Setup};

#[tokio::test]
async fn unit4_thirty_busy_days_match_the_ground_truth_one_to_one() {
    // The threshold is not under test here; busy-rate leavers must not trip it.
    let harness = Unit4Harness::start_with(Unit4Setup {
        rates: MutationRates::busy(),
        removal_threshold_percent: 100,
        ..Unit4Setup::new(121, 3, 30)
    })
    .await;
    for index in 0..harness.employer_keys.len() {
        harness.sync(index, None).await;
    }
    let mut problems = Vec::new();
    let mut total_expected = 0;
    for day in 1..=30 {
        let before = harness.simulator.with_world(world_state_of);
        let changes = harness.advance_days(1);
        let after = harness.simulator.with_world(world_state_of);
        let mut expected = expected_events(&changes);
        // A change and its reversal in one day (a manager A -> B -> A) is no change at all.
        expected.retain(|entity, (event_type, _)| match event_type {
            EventType::EmployeeUpdated | EventType::EmploymentChanged => {
                before.get(entity) != after.get(entity)
            }
            _ => true,
        });
        total_expected += expected.len();
        let mut emitted: Emitted = BTreeMap::new();
        for index in 0..harness.employer_keys.len() {
            let outcome = harness.sync(index, None).await;
            assert_eq!(outcome.kind, SyncKind::Full);
            assert!(
                outcome.record_errors.is_empty(),
                "{:?}",
                outcome.record_errors
            );
            for event in &outcome.published {
                if event.event_type == EventType::SyncCompleted {
                    continue;
                }
                let previous = emitted.insert(
                    event.entity_id.clone(),
                    (
                        event.event_type,
                        event.changed_fields.iter().cloned().collect(),
                    ),
                );
                assert!(
                    previous.is_none(),
                    "day {day}: two events for {}",
                    event.entity_id
                );
            }
        }
        compare(day, &expected, &emitted, &mut problems);
    }
    assert!(
        total_expected > 50,
        "the busy world should change a lot: {total_expected}"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Nothing drifted: another poll finds nothing, a forced full sync only its marker.
    for index in 0..harness.employer_keys.len() {
        let idle = harness.sync(index, None).await;
        assert!(
            idle.published.is_empty(),
            "employer {index}: {:?}",
            idle.published
        );
        let full = harness.sync(index, Some(SyncKind::Full)).await;
        assert_eq!(
            counts(&full).into_iter().collect::<Vec<_>>(),
            vec![(EventType::SyncCompleted, 1)],
            "employer {index}: {:?}",
            full.published
        );
    }
    harness.stop().await;
}
