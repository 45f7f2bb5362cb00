//! After the world advances 30 busy days, one delta poll emits exactly the changes the
//! mutation engine's ground-truth log records: none missing, none extra.

use std::collections::BTreeMap;

use koppel_events::{EventType, SyncKind};
use koppel_extract::SyncOutcome;
use koppel_sim::world::{MutationRates, World, WorldChange};

use crate::support::{Harness, counts};

/// The events koppel should emit for a window of ground truth: koppel-sim's definition, which
/// the demo uses too.
pub(crate) use koppel_sim::ground_truth::expected_events;

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
                        "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
                        employment.organization.department,
                        employment.organization.job_function,
                        employment.organization.cost_center,
                        employment.organization.location,
                        employment.working_hours.hours_per_week,
                        employment.wage.monthly_salary,
                        employment.wage.hourly_rate,
                        employment.start_date,
                        employment.end_date,
                        employment.end_reason
                    ),
                );
            }
            for (index, employee) in employer.employees.iter().enumerate() {
                let manager = employer.manager_of_employee(index);
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
pub(crate) type Emitted = koppel_sim::ground_truth::ExpectedEvents;

/// Compares one poll's events with the ground truth of the days since the previous poll.
pub(crate) fn compare(day: u32, expected: &Emitted, emitted: &Emitted, problems: &mut Vec<String>) {
    problems.extend(
        koppel_sim::ground_truth::compare(expected, emitted)
            .iter()
            .map(|discrepancy| format!("day {day}: {discrepancy}")),
    );
}

/// The ground truth of one day's changes, less the updates that undid themselves within the
/// day: `before` and `after` are [`world_state_of`] around the day.
pub(crate) fn expected_for_day(
    changes: &[WorldChange],
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Emitted {
    let mut expected = expected_events(changes);
    // A change and its reversal in one day (a manager A -> B -> A) is no change at all.
    expected.retain(|entity, (event_type, _)| match event_type {
        EventType::EmployeeUpdated | EventType::EmploymentChanged => {
            before.get(entity) != after.get(entity)
        }
        _ => true,
    });
    expected
}

/// Adds one poll's events (less the SyncCompleted marker) to the day's `emitted`; a record
/// error, or a second event for one entity in one day, fails the test.
pub(crate) fn record_emitted(day: u32, outcome: &SyncOutcome, emitted: &mut Emitted) {
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

/// From when each event of one poll says its change holds, per entity.
pub(crate) type EmittedDates = BTreeMap<String, Option<chrono::NaiveDate>>;

pub(crate) fn record_effective_dates(outcome: &SyncOutcome, dates: &mut EmittedDates) {
    for event in &outcome.published {
        if event.event_type != EventType::SyncCompleted {
            dates.insert(event.entity_id.clone(), event.effective_date);
        }
    }
}

/// Every expected event carries the date the world says its change holds from (a
/// retroactive raise its first of the month, a hire its first working day, a change per next
/// month that first, a name change the day it was entered). Returns how many held from before
/// and from after the poll's day, so a caller can insist that both kinds occurred.
pub(crate) fn compare_effective_dates(
    day: u32,
    changes: &[WorldChange],
    expected: &Emitted,
    emitted: &EmittedDates,
    problems: &mut Vec<String>,
) -> (usize, usize) {
    let truth = koppel_sim::ground_truth::expected_effective_dates(changes);
    let today = changes.first().map(|change| change.date);
    let (mut before, mut after) = (0, 0);
    for (entity, (event_type, fields)) in expected {
        let Some(Some(date)) = emitted.get(entity) else {
            continue;
        };
        match truth.get(entity) {
            Some(holds_from) if holds_from == date => {
                before += usize::from(today.is_some_and(|today| *date < today));
                after += usize::from(today.is_some_and(|today| *date > today));
            }
            holds_from => problems.push(format!(
                "day {day}: {event_type:?} {fields:?} {entity} holds from {holds_from:?}, event says {date}"
            )),
        }
    }
    (before, after)
}

/// A forced full sync after the busy days found no drift: it published only its marker.
pub(crate) fn assert_only_sync_completed(index: usize, full: &SyncOutcome) {
    assert_eq!(
        counts(full).into_iter().collect::<Vec<_>>(),
        vec![(EventType::SyncCompleted, 1)],
        "employer {index}: {:?}",
        full.published
    );
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
    let (mut retroactive, mut ahead) = (0, 0);
    for day in 1..=30 {
        let before = world_state(&harness);
        let changes = harness.simulator.advance_days(1);
        let after = world_state(&harness);
        let expected = expected_for_day(&changes, &before, &after);
        total_expected += expected.len();
        let mut emitted: Emitted = BTreeMap::new();
        let mut dates = EmittedDates::new();
        for index in 0..harness.employer_keys.len() {
            let outcome = harness.sync(index, None).await;
            assert!(outcome.unchanged || outcome.kind == SyncKind::Delta);
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

    // Deltas lost nothing: a full sync afterwards finds no drift.
    for index in 0..harness.employer_keys.len() {
        let full = harness.sync(index, Some(SyncKind::Full)).await;
        assert_only_sync_completed(index, &full);
    }
    harness.stop().await;
}
