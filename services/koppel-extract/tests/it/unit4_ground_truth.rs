//! Unit4: after each of 30 busy simulated days, one poll per employer (a full snapshot diff)
//! emits exactly the changes the mutation engine's ground-truth log records: none missing,
//! none extra.

use std::collections::BTreeMap;

use koppel_events::SyncKind;
use koppel_sim::world::MutationRates;

use crate::ground_truth::{
    Emitted, EmittedDates, assert_only_sync_completed, compare, compare_effective_dates,
    expected_for_day, record_effective_dates, record_emitted, world_state_of,
};
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
    let (mut retroactive, mut ahead) = (0, 0);
    for day in 1..=30 {
        let before = harness.simulator.with_world(world_state_of);
        let changes = harness.advance_days(1);
        let after = harness.simulator.with_world(world_state_of);
        let expected = expected_for_day(&changes, &before, &after);
        total_expected += expected.len();
        let mut emitted: Emitted = BTreeMap::new();
        let mut dates = EmittedDates::new();
        for index in 0..harness.employer_keys.len() {
            let outcome = harness.sync(index, None).await;
            assert_eq!(outcome.kind, SyncKind::Full);
            record_emitted(day, &outcome, &mut emitted);
            record_effective_dates(&outcome, &mut dates);
        }
        compare(day, &expected, &emitted, &mut problems);
        let (past, future) =
            compare_effective_dates(day, &changes, &expected, &dates, &mut problems);
        retroactive += past;
        ahead += future;
    }
    assert!(
        total_expected > 50,
        "the busy world should change a lot: {total_expected}"
    );
    assert!(
        retroactive > 0 && ahead > 0,
        "changes should hold from before and after their day: {retroactive} {ahead}"
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
        assert_only_sync_completed(index, &full);
    }
    harness.stop().await;
}
