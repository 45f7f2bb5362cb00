//! After the world advances 30 busy days, one delta poll emits exactly the changes the
//! mutation engine's ground-truth log records: none missing, none extra.

use std::collections::{BTreeMap, BTreeSet};

use koppel_events::{EventType, SyncKind};
use koppel_sim::world::{ChangeKind, MutationRates, World, WorldChange};

use crate::support::{Harness, counts};

/// The events koppel should emit for a window of ground truth, per entity, with the fields
/// the log says changed. Fine-grained entries for one entity fold into one event: a create
/// absorbs later changes, an end absorbs other changes of the employment.
pub(crate) fn expected_events(
    changes: &[WorldChange],
) -> BTreeMap<String, (EventType, BTreeSet<String>)> {
    let mut expected: BTreeMap<String, (EventType, BTreeSet<String>)> = BTreeMap::new();
    let mut fold = |entity: String, event_type: EventType, fields: &[&str]| {
        let entry = expected
            .entry(entity)
            .or_insert_with(|| (event_type, BTreeSet::new()));
        let rank = |t: EventType| match t {
            EventType::EmployeeCreated | EventType::EmploymentStarted => 3,
            EventType::EmploymentEnded => 2,
            _ => 1,
        };
        if rank(event_type) > rank(entry.0) {
            entry.0 = event_type;
        }
        entry
            .1
            .extend(fields.iter().map(|field| (*field).to_owned()));
    };
    for change in changes {
        let employee = change.employee_id.map(|id| id.to_string());
        let employment = change.employment_id.map(|id| id.to_string());
        match change.kind {
            ChangeKind::Hired => {
                fold(employee.unwrap(), EventType::EmployeeCreated, &[]);
                fold(employment.unwrap(), EventType::EmploymentStarted, &[]);
            }
            ChangeKind::EmploymentEnded => fold(
                employment.unwrap(),
                EventType::EmploymentEnded,
                &change.changed_fields,
            ),
            ChangeKind::DepartmentChanged
            | ChangeKind::JobChanged
            | ChangeKind::HoursChanged
            | ChangeKind::SalaryChanged => fold(
                employment.unwrap(),
                EventType::EmploymentChanged,
                &change.changed_fields,
            ),
            // koppel's manager lives on the employee.
            ChangeKind::NameChanged | ChangeKind::ManagerChanged => fold(
                employee.unwrap(),
                EventType::EmployeeUpdated,
                &change.changed_fields,
            ),
            // Departments are not entities of the canonical model; their effect on people
            // is logged as ManagerChanged. Malformations are not world changes.
            ChangeKind::DepartmentManagerChanged | ChangeKind::MalformationInjected => {}
        }
    }
    expected
}

/// Per employee (its name and the manager of its open employment) and per employment (what
/// koppel maps), a rendering of the world's state, to recognise changes that undid themselves.
fn world_state(harness: &Harness) -> BTreeMap<String, String> {
    harness.simulator.with_world(world_state_of)
}

/// [`world_state`] of any world (the Unit4 tests share it).
pub(crate) fn world_state_of(world: &World) -> BTreeMap<String, String> {
    {
        let mut state = BTreeMap::new();
        for employer in world.employers() {
            for employment in &employer.employments {
                state.insert(
                    employment.id.to_string(),
                    format!(
                        "{:?} {:?} {:?} {:?} {:?} {:?} {:?}",
                        employment.organization.department,
                        employment.organization.job_function,
                        employment.organization.cost_center,
                        employment.working_hours.hours_per_week,
                        employment.wage.monthly_salary,
                        employment.end_date,
                        employment.end_reason
                    ),
                );
            }
            for (index, employee) in employer.employees.iter().enumerate() {
                let manager = employer
                    .employments
                    .iter()
                    .filter(|employment| employment.employee_index == index)
                    .map(|employment| employment.manager_employee_id)
                    .collect::<Vec<_>>();
                state.insert(
                    employee.id.to_string(),
                    format!(
                        "{} {:?} {:?} {manager:?}",
                        employee.formatted_name(),
                        employee.name_usage,
                        employee.partner
                    ),
                );
            }
        }
        state
    }
}

/// What one poll emitted, per entity.
pub(crate) type Emitted = BTreeMap<String, (EventType, BTreeSet<String>)>;

/// Compares one poll's events with the ground truth of the days since the previous poll.
pub(crate) fn compare(day: u32, expected: &Emitted, emitted: &Emitted, problems: &mut Vec<String>) {
    for (entity, (event_type, fields)) in expected {
        match emitted.get(entity) {
            None => problems.push(format!("day {day}: missing {event_type:?} for {entity}")),
            Some((emitted_type, _)) if emitted_type != event_type => problems.push(format!(
                "day {day}: {entity}: expected {event_type:?}, got {emitted_type:?}"
            )),
            Some((_, emitted_fields)) => {
                let creates = matches!(
                    event_type,
                    EventType::EmployeeCreated | EventType::EmploymentStarted
                );
                if !creates && !fields.is_subset(emitted_fields) {
                    problems.push(format!(
                        "day {day}: {entity}: log names {fields:?}, event {emitted_fields:?}"
                    ));
                }
            }
        }
    }
    for (entity, (event_type, fields)) in emitted {
        if !expected.contains_key(entity) {
            problems.push(format!(
                "day {day}: extra {event_type:?} {fields:?} for {entity}"
            ));
        }
    }
}

/// Thirty busy days with a delta poll after each: every poll's events match the ground truth
/// of its day one to one, and a full sync at the end finds no drift.
#[tokio::test]
async fn thirty_busy_days_match_the_ground_truth_one_to_one() {
    // The threshold is not under test here; busy-rate leavers must not trip it.
    let harness = Harness::start_with(21, 3, 30, MutationRates::busy(), 100).await;
    for index in 0..harness.employer_keys.len() {
        harness.sync(index, None).await;
    }
    let mut problems = Vec::new();
    let mut total_expected = 0;
    for day in 1..=30 {
        let before = world_state(&harness);
        let changes = harness.simulator.advance_days(1);
        let after = world_state(&harness);
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
            assert!(outcome.unchanged || outcome.kind == SyncKind::Delta);
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

    // Deltas lost nothing: a full sync afterwards finds no drift.
    for index in 0..harness.employer_keys.len() {
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
