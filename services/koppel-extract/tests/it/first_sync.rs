//! A first sync emits exactly one event per world entity; a rerun without changes emits
//! nothing (delta) or only the SyncCompleted marker (full); calls stay flat per employee.

use koppel_events::{EventType, SyncKind, SyncResult};
use koppel_extract::SyncOutcome;
use koppel_sim::world::{MutationRates, World};

use crate::support::{Harness, counts};

/// How many employees and employments the world's first employer has.
pub(crate) fn first_employer_sizes(world: &World) -> (usize, usize) {
    let employer = &world.employers()[0];
    (employer.employees.len(), employer.employments.len())
}

/// A first sync of a world employer: a completed full sync without record errors that emits
/// one employer, one event per employee and per employment, and its marker; nothing else.
pub(crate) fn assert_first_sync_emits_one_event_per_entity(
    outcome: &SyncOutcome,
    employees: usize,
    employments: usize,
) {
    assert_eq!(outcome.kind, SyncKind::Full);
    assert_eq!(outcome.result, SyncResult::Completed);
    assert!(
        outcome.record_errors.is_empty(),
        "{:?}",
        outcome.record_errors
    );
    let by_type = counts(outcome);
    assert_eq!(by_type.get(&EventType::EmployerUpserted), Some(&1));
    assert_eq!(by_type.get(&EventType::EmployeeCreated), Some(&employees));
    assert_eq!(
        by_type.get(&EventType::EmploymentStarted),
        Some(&employments)
    );
    assert_eq!(by_type.get(&EventType::SyncCompleted), Some(&1));
    assert_eq!(by_type.len(), 4, "{by_type:?}");
}

#[tokio::test]
async fn first_sync_emits_one_event_per_entity_and_a_rerun_emits_nothing() {
    let harness = Harness::start(11, 2, 40, MutationRates::none()).await;
    let (employees, employments) = harness.simulator.with_world(first_employer_sizes);
    harness.simulator.reset_call_counts();

    let outcome = harness.sync(0, None).await;

    assert_first_sync_emits_one_event_per_entity(&outcome, employees, employments);
    assert_eq!(
        outcome.publish_report.stored as usize,
        outcome.published.len()
    );
    assert_eq!(outcome.counts.employees_seen as usize, employees);

    // Calls: per employee a BSN and per running employment a wage, plus a constant.
    let calls = harness.simulator.api_call_count();
    assert!(
        calls <= (2 * employments + 30) as u64,
        "{calls} calls for {employees} employees: {:?}",
        harness.simulator.call_counts()
    );

    // Nothing changed: a delta stops at the change feed and emits nothing.
    harness.simulator.reset_call_counts();
    let delta = harness.sync(0, None).await;
    assert!(delta.unchanged);
    assert!(delta.published.is_empty());
    assert_eq!(harness.simulator.api_call_count(), 1);

    // A forced full sync re-reads everything and emits only its marker.
    let full = harness.sync(0, Some(SyncKind::Full)).await;
    assert_eq!(
        counts(&full).into_iter().collect::<Vec<_>>(),
        vec![(EventType::SyncCompleted, 1)]
    );

    // The stream holds the first sync's events plus the one marker; the other employer
    // is untouched.
    assert_eq!(
        harness.stored_message_count().await,
        outcome.published.len() as u64 + 1
    );

    // Every stored event decodes, and employment events carry their employee.
    for event in harness.stored_events().await {
        if let koppel_events::Event::EmploymentStarted(started) = &event {
            assert_eq!(started.employee.employee_id, started.employment.employee_id);
            assert!(started.employee.bsn.is_some());
            assert!(started.employment.parttime_factor.is_some());
            assert!(started.employment.pensionable_salary.is_some());
            assert!(started.employment.department.is_some());
        }
    }
    harness.stop().await;
}

#[tokio::test]
async fn discovery_lists_the_visible_employers() {
    let harness = Harness::start(12, 3, 2, MutationRates::none()).await;
    let discovered = harness
        .extractor
        .discover_employers(crate::support::CONNECTION_ID)
        .await
        .unwrap();
    let ids: Vec<String> = discovered
        .iter()
        .map(|e| e.source_employer_id.clone())
        .collect();
    let expected: Vec<String> = harness
        .employer_ids
        .iter()
        .map(|id| id.to_string())
        .collect();
    assert_eq!(ids, expected);
    assert!(discovered.iter().all(|employer| employer.name.is_some()));
    harness.stop().await;
}
