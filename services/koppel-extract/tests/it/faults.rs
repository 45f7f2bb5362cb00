//! Bad input and a source that loses its data: a malformed record is isolated, and a sudden
//! empty employee list is held back by the safety threshold.

use std::fmt::Display;

use koppel_events::{Event, EventType, SyncCompleted, SyncKind, SyncResult};
use koppel_extract::SyncOutcome;
use koppel_sim::world::{MutationRates, RecordMalformation};

use crate::support::{Harness, counts};

/// The employments of the world's first employer without an end date: those a source that
/// suddenly lists nobody would end.
pub(crate) fn running_employments_of_first_employer(world: &koppel_sim::world::World) -> usize {
    world.employers()[0]
        .employments
        .iter()
        .filter(|employment| employment.end_date.is_none())
        .count()
}

/// No record error's reason repeats the BSN: a bad BSN is reported, never echoed.
pub(crate) fn assert_no_reason_contains(outcome: &SyncOutcome, bsn_digits: impl Display) {
    for error in &outcome.record_errors {
        assert!(
            !error.reason.contains(&bsn_digits.to_string()),
            "{}",
            error.reason
        );
    }
}

/// The first SyncCompleted marker among the stored events.
pub(crate) fn first_marker(events: Vec<Event>) -> SyncCompleted {
    events
        .into_iter()
        .find_map(|event| match event {
            Event::SyncCompleted(marker) => Some(marker),
            _ => None,
        })
        .unwrap()
}

#[tokio::test]
async fn a_malformed_record_is_reported_and_the_rest_is_published() {
    let harness = Harness::start(41, 1, 20, MutationRates::none()).await;
    let (bad_bsn, no_last_name, bad_bsn_digits, employees, employments, bad_employments) =
        harness.simulator.with_world(|world| {
            let employer = &world.employers()[0];
            let bad_bsn = employer.employees[3].id;
            let no_last_name = employer.employees[7].id;
            let bad_employments = employer
                .employments
                .iter()
                .filter(|e| e.employee_id == bad_bsn || e.employee_id == no_last_name)
                .count();
            (
                bad_bsn,
                no_last_name,
                employer.employees[3].citizen_service_number,
                employer.employees.len(),
                employer.employments.len(),
                bad_employments,
            )
        });
    harness
        .simulator
        .inject_malformation(
            bad_bsn,
            RecordMalformation::CitizenServiceNumberFailsElevenProef,
        )
        .unwrap();
    harness
        .simulator
        .inject_malformation(no_last_name, RecordMalformation::MissingLastName)
        .unwrap();

    let outcome = harness.sync(0, None).await;

    let by_type = counts(&outcome);
    assert_eq!(
        by_type.get(&EventType::EmployeeCreated),
        Some(&(employees - 2))
    );
    assert_eq!(
        by_type.get(&EventType::EmploymentStarted),
        Some(&(employments - bad_employments))
    );
    let failed: Vec<&str> = outcome
        .record_errors
        .iter()
        .map(|error| error.entity_id.as_str())
        .collect();
    assert_eq!(failed.len(), 2, "{:?}", outcome.record_errors);
    assert!(failed.contains(&bad_bsn.to_string().as_str()));
    assert!(failed.contains(&no_last_name.to_string().as_str()));
    assert_eq!(outcome.counts.records_failed, 2);
    assert_no_reason_contains(&outcome, bad_bsn_digits);

    // The marker in the stream carries the errors.
    let marker = first_marker(harness.stored_events().await);
    assert_eq!(marker.record_errors.len(), 2);
    assert_eq!(marker.counts.records_failed, 2);

    // A bad record is not a removal: the next full sync removes nobody.
    let again = harness.sync(0, Some(SyncKind::Full)).await;
    assert_eq!(again.count_of(EventType::EmployeeRemoved), 0);
    assert_eq!(again.count_of(EventType::EmploymentEnded), 0);
    harness.stop().await;
}

#[tokio::test]
async fn a_source_that_suddenly_lists_nobody_is_held_back() {
    let harness = Harness::start(42, 1, 30, MutationRates::none()).await;
    let first = harness.sync(0, None).await;
    let employees = first.count_of(EventType::EmployeeCreated);
    // An employment already published as ended is no removal when it drops off the list:
    // only running ones are held back.
    let running_employments = harness
        .simulator
        .with_world(running_employments_of_first_employer);
    assert!(running_employments < first.count_of(EventType::EmploymentStarted));
    let before = harness.stored_message_count().await;

    harness
        .simulator
        .set_employee_list_empty(harness.employer_ids[0], true)
        .unwrap();
    let held = harness.sync(0, Some(SyncKind::Full)).await;

    assert_eq!(held.result, SyncResult::HeldBack);
    assert_eq!(held.held_back.len(), employees + running_employments);
    assert_eq!(
        held.counts.removals_held_back as usize,
        employees + running_employments
    );
    assert_eq!(
        counts(&held).into_iter().collect::<Vec<_>>(),
        vec![(EventType::SyncCompleted, 1)]
    );
    let stored = harness.stored_events().await;
    assert_eq!(stored.len() as u64, before + 1);
    match stored.last() {
        Some(Event::SyncCompleted(marker)) => {
            assert_eq!(marker.result, SyncResult::HeldBack);
            assert_eq!(
                marker.counts.removals_held_back as usize,
                employees + running_employments
            );
        }
        other => panic!("expected the marker, got {other:?}"),
    }

    // The snapshot kept everyone: when the source recovers, nothing is re-created.
    harness
        .simulator
        .set_employee_list_empty(harness.employer_ids[0], false)
        .unwrap();
    let recovered = harness.sync(0, Some(SyncKind::Full)).await;
    assert_eq!(recovered.result, SyncResult::Completed);
    assert_eq!(
        counts(&recovered).into_iter().collect::<Vec<_>>(),
        vec![(EventType::SyncCompleted, 1)]
    );
    harness.stop().await;
}

/// Before: an employment koppel had published as ended that then dropped off the list, as a
/// Loket user filter hiding former employees makes it, got a second, empty EmploymentEnded
/// (changed field `removed`), which an insurer would take as a second termination.
#[tokio::test]
async fn former_employees_hidden_by_a_user_filter_are_not_ended_twice() {
    let harness = Harness::start_with(77, 1, 30, MutationRates::busy(), 100).await;
    harness.sync(0, None).await;
    for _ in 0..30 {
        harness.simulator.advance_days(1);
        harness.sync(0, None).await;
    }
    let former = harness.simulator.with_world(|world| {
        let today = world.today();
        world.employers()[0]
            .employments
            .iter()
            .filter(|employment| employment.end_date.is_some_and(|end| end < today))
            .count()
    });
    assert!(
        former > 0,
        "thirty busy days should produce former employees"
    );

    harness.simulator.register_authorizing_user(
        koppel_sim::loket::AuthorizingUser::with_full_access(crate::support::USER)
            .hiding_former_employments(),
    );
    let hidden = harness.sync(0, Some(SyncKind::Full)).await;
    assert_eq!(hidden.result, SyncResult::Completed);
    // Nothing but the marker: no second end, and no manager lost with the hidden jobs.
    assert_eq!(
        counts(&hidden).into_iter().collect::<Vec<_>>(),
        vec![(EventType::SyncCompleted, 1)],
        "{:?}",
        hidden.published
    );
    // And they stay forgotten: the next sync has nothing to say about them either.
    let again = harness.sync(0, Some(SyncKind::Full)).await;
    assert_eq!(again.count_of(EventType::EmploymentEnded), 0);
    harness.stop().await;
}
