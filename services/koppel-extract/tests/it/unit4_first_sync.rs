//! Unit4: a first sync emits exactly one event per world entity with everything the canonical
//! model asks for; an idle rerun emits nothing; calls stay flat per employee; discovery lists
//! the employers of the web-API user's group.

use koppel_events::{Event, EventType, SyncKind, SyncResult};

use crate::first_sync::{assert_first_sync_emits_one_event_per_entity, first_employer_sizes};
use crate::support::counts;
use crate::unit4_support::{UNIT4_CONNECTION_ID, Unit4Harness};

#[tokio::test]
async fn unit4_first_sync_emits_one_event_per_entity_and_an_idle_rerun_emits_nothing() {
    let harness = Unit4Harness::start(111, 2, 60).await;
    let (employees, employments) = harness.simulator.with_world(first_employer_sizes);
    harness.simulator.reset_call_counts();

    let outcome = harness.sync(0, None).await;

    assert_first_sync_emits_one_event_per_entity(&outcome, employees, employments);
    assert_eq!(outcome.counts.employees_seen as usize, employees);
    assert_eq!(outcome.counts.employments_seen as usize, employments);

    // Calls: the employer plus one per page of 25 of each list; one token request.
    let pages = |items: usize| items.div_ceil(25).max(1) as u64;
    assert_eq!(
        harness.simulator.api_call_count(),
        1 + pages(employees) + pages(employments),
        "{:?}",
        harness.simulator.call_counts()
    );
    assert_eq!(harness.token_calls(), 1);

    // Nothing changed: the rerun reads everything again and emits nothing, not even a marker.
    harness.simulator.reset_call_counts();
    let idle = harness.sync(0, None).await;
    assert!(idle.published.is_empty(), "{:?}", idle.published);
    assert_eq!(idle.result, SyncResult::Completed);
    assert_eq!(
        harness.simulator.api_call_count(),
        1 + pages(employees) + pages(employments)
    );
    // The cached token was reused.
    assert_eq!(harness.token_calls(), 0);
    assert_eq!(
        harness.stored_message_count().await,
        outcome.published.len() as u64
    );

    // A full sync asked for explicitly confirms itself with its marker only.
    let forced = harness.sync(0, Some(SyncKind::Full)).await;
    assert_eq!(
        counts(&forced).into_iter().collect::<Vec<_>>(),
        vec![(EventType::SyncCompleted, 1)]
    );

    // What the events carry, against the world.
    let (pay_period, world_employments) = harness.simulator.with_world(|world| {
        let employer = &world.employers()[0];
        let employments = employer
            .employments
            .iter()
            .map(|employment| (employment.id.to_string(), employment.clone()))
            .collect::<std::collections::HashMap<_, _>>();
        (employer.pay_period, employments)
    });
    let mut checked = 0;
    for event in harness.stored_events().await {
        match &event {
            Event::EmploymentStarted(started) => {
                let employment = &started.employment;
                let truth = &world_employments[&employment.employment_id];
                assert_eq!(started.employee.employee_id, employment.employee_id);
                assert!(started.employee.bsn.is_some());
                assert!(!started.employee.name.formatted.is_empty());
                assert_eq!(
                    employment.hours_per_week,
                    Some(truth.working_hours.hours_per_week.normalize())
                );
                assert_eq!(
                    employment
                        .salary
                        .as_ref()
                        .map(|salary| salary.amount.amount),
                    // Per hour for hourly-paid contracts, else per the employer's pay period.
                    Some(truth.wage.hourly_rate.unwrap_or_else(|| {
                        pay_period.amount_per_period(truth.wage.monthly_salary)
                    }))
                );
                assert_eq!(employment.salary_valid_from, Some(truth.wage.start_date));
                assert_eq!(
                    employment.hours_valid_from,
                    Some(truth.working_hours.start_date)
                );
                assert!(employment.parttime_factor.is_some());
                assert!(employment.pensionable_salary.is_some());
                assert!(employment.pension_scheme.is_some());
                assert!(employment.department.is_some());
                assert_eq!(
                    employment.income_relationship_number,
                    Some(i64::from(truth.income_relationship_number))
                );
                // The manager travels on the employee, from their open employment.
                if truth.end_date.is_none() {
                    assert_eq!(
                        started.employee.manager_employee_id,
                        truth.manager_employee_id.map(|id| id.to_string())
                    );
                }
                checked += 1;
            }
            Event::EmployerUpserted(upserted) => {
                assert_eq!(upserted.employer.source, koppel_events::SourceSystem::Unit4);
                assert!(upserted.employer.payroll_tax_number.is_some());
            }
            _ => {}
        }
    }
    assert_eq!(checked, employments);
    harness.stop().await;
}

#[tokio::test]
async fn unit4_discovery_lists_the_employers_of_the_group() {
    let harness = Unit4Harness::start(112, 3, 2).await;
    let discovered = harness
        .extractor
        .discover_employers(UNIT4_CONNECTION_ID)
        .await
        .unwrap();
    let mut ids: Vec<String> = discovered
        .iter()
        .map(|e| e.source_employer_id.clone())
        .collect();
    ids.sort();
    let mut expected: Vec<String> = harness
        .employer_ids
        .iter()
        .map(|id| id.to_string())
        .collect();
    expected.sort();
    assert_eq!(ids, expected);
    assert!(discovered.iter().all(|employer| employer.name.is_some()
        && employer.payroll_tax_number.is_some()
        && employer.employer_number.is_some()));
    harness.stop().await;
}
