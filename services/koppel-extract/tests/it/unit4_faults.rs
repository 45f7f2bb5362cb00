//! Unit4: malformed records are isolated and reported, a sudden empty list is held back by
//! the safety threshold, and a crash between publishing and saving the snapshot re-emits the
//! same event ids, which JetStream drops.

use std::collections::BTreeSet;

use koppel_events::{EventType, SyncResult};
use koppel_sim::world::{MutationRates, RecordMalformation};
use uuid::Uuid;

use crate::crash::{event_ids, sync_crashing_after_publish};
use crate::faults::{assert_no_reason_contains, first_marker};
use crate::support::counts;
use crate::unit4_support::{Unit4Harness, Unit4Setup};

#[tokio::test]
async fn unit4_malformed_records_are_reported_and_the_rest_is_published() {
    let harness = Unit4Harness::start(151, 1, 24).await;
    let (bad, bad_bsn_digits, employees, employments, bad_employments) =
        harness.simulator.with_world(|world| {
            let employer = &world.employers()[0];
            let bad = [
                employer.employees[3].id,
                employer.employees[7].id,
                employer.employees[11].id,
            ];
            let bad_employments = employer
                .employments
                .iter()
                .filter(|e| bad.contains(&e.employee_id))
                .count();
            (
                bad,
                employer.employees[3].citizen_service_number,
                employer.employees.len(),
                employer.employments.len(),
                bad_employments,
            )
        });
    harness.inject_malformation(
        bad[0],
        RecordMalformation::CitizenServiceNumberFailsElevenProef,
    );
    harness.inject_malformation(bad[1], RecordMalformation::MissingLastName);
    harness.inject_malformation(bad[2], RecordMalformation::InvalidDateOfBirth);

    let outcome = harness.sync(0, None).await;

    let by_type = counts(&outcome);
    assert_eq!(
        by_type.get(&EventType::EmployeeCreated),
        Some(&(employees - 3))
    );
    assert_eq!(
        by_type.get(&EventType::EmploymentStarted),
        Some(&(employments - bad_employments))
    );
    let failed: BTreeSet<String> = outcome
        .record_errors
        .iter()
        .map(|error| error.entity_id.clone())
        .collect();
    let expected: BTreeSet<String> = bad.iter().map(Uuid::to_string).collect();
    assert_eq!(failed, expected, "{:?}", outcome.record_errors);
    assert_eq!(outcome.counts.records_failed, 3);
    assert_no_reason_contains(&outcome, bad_bsn_digits);
    let marker = first_marker(harness.stored_events().await);
    assert_eq!(marker.record_errors.len(), 3);

    // A bad record is not a removal: the next sync removes nobody.
    let again = harness.sync(0, None).await;
    assert_eq!(again.count_of(EventType::EmployeeRemoved), 0);
    assert_eq!(again.count_of(EventType::EmploymentEnded), 0);
    assert_eq!(again.record_errors.len(), 3);
    harness.stop().await;
}

#[tokio::test]
async fn unit4_a_source_that_suddenly_lists_nobody_is_held_back() {
    let harness = Unit4Harness::start(152, 1, 30).await;
    let first = harness.sync(0, None).await;
    let employees = first.count_of(EventType::EmployeeCreated);
    // An employment already published as ended is no removal when it drops off the list.
    let running_employments = harness
        .simulator
        .with_world(crate::faults::running_employments_of_first_employer);
    assert!(running_employments < first.count_of(EventType::EmploymentStarted));
    let set_empty = |empty: bool| {
        let world = harness.simulator.shared_world();
        let mut world = world.write().unwrap();
        world
            .set_serves_empty_employee_list(harness.employer_ids[0], empty)
            .unwrap();
    };

    set_empty(true);
    let held = harness.sync(0, None).await;
    assert_eq!(held.result, SyncResult::HeldBack);
    assert_eq!(held.held_back.len(), employees + running_employments);
    assert_eq!(
        counts(&held).into_iter().collect::<Vec<_>>(),
        vec![(EventType::SyncCompleted, 1)]
    );

    // The snapshot kept everyone: when the source recovers, nothing is re-created.
    set_empty(false);
    let recovered = harness.sync(0, None).await;
    assert_eq!(recovered.result, SyncResult::Completed);
    assert!(recovered.published.is_empty(), "{:?}", recovered.published);
    harness.stop().await;
}

#[tokio::test]
async fn unit4_a_crash_after_publish_reemits_the_same_ids() {
    let harness = Unit4Harness::start_with(Unit4Setup {
        rates: MutationRates::busy(),
        removal_threshold_percent: 100,
        ..Unit4Setup::new(153, 1, 25)
    })
    .await;
    let key = harness.employer_keys[0].clone();
    sync_crashing_after_publish(&harness.extractor, &key, harness.options(None)).await;
    let after_crash = event_ids(&harness.stored_events().await);

    let rerun = harness.sync(0, None).await;
    assert_eq!(rerun.publish_report.stored, 0, "{:?}", rerun.publish_report);
    assert_eq!(
        rerun.publish_report.duplicates as usize,
        rerun.published.len()
    );
    assert_eq!(event_ids(&harness.stored_events().await), after_crash);

    // Changes after the recovery flow as usual.
    harness.advance_days(3);
    let next = harness.sync(0, None).await;
    assert!(next.publish_report.stored > 0);
    harness.stop().await;
}
