//! The mutation engine's ground truth in koppel's terms: for a window of [`WorldChange`]s, the
//! event koppel must emit per entity, with the fields the log says changed. Tests and the demo
//! compare what koppel published against it.
//!
//! Fine-grained log entries of one entity fold into one expected event: a create absorbs later
//! changes of the window, an end absorbs the employment's other changes. Compare with polls
//! that are one simulated day apart: over a longer window a change can undo itself (a manager
//! moved and moved back), which the log records and no source can show.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use koppel_events::EventType;

use crate::world::{ChangeKind, WorldChange};

mod discrepancy;

pub use discrepancy::Discrepancy;

/// The expected event per entity id.
pub type ExpectedEvents = BTreeMap<String, (EventType, BTreeSet<String>)>;

/// Folds one log entry into the expected event of its entity: a create absorbs later
/// changes, an end absorbs the employment's other changes.
fn fold(expected: &mut ExpectedEvents, entity: String, event_type: EventType, fields: &[&str]) {
    let entry = expected
        .entry(entity)
        .or_insert_with(|| (event_type, BTreeSet::new()));
    let rank = |event_type: EventType| match event_type {
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
}

pub fn expected_events(changes: &[WorldChange]) -> ExpectedEvents {
    let mut expected: ExpectedEvents = BTreeMap::new();
    for change in changes {
        let employee = change.employee_id.map(|id| id.to_string());
        let employment = change.employment_id.map(|id| id.to_string());
        match (change.kind, employee, employment) {
            (ChangeKind::Hired, Some(employee), Some(employment)) => {
                fold(&mut expected, employee, EventType::EmployeeCreated, &[]);
                fold(&mut expected, employment, EventType::EmploymentStarted, &[]);
            }
            // A further employment of a known employee: the employee itself is unchanged.
            (ChangeKind::Rehired | ChangeKind::SecondEmploymentStarted, _, Some(employment)) => {
                fold(&mut expected, employment, EventType::EmploymentStarted, &[]);
            }
            (ChangeKind::EmploymentEnded, _, Some(employment)) => {
                fold(
                    &mut expected,
                    employment,
                    EventType::EmploymentEnded,
                    &change.changed_fields,
                );
            }
            // Corrections and reinstatements change an employment koppel already knows; a
            // corrected end date of an ended employment is no second end.
            // A dismissal withdrawn in the window it was entered in is no end at all: what
            // else changed stays, and with nothing else the employment did not change.
            (ChangeKind::Reinstated, _, Some(employment))
                if expected
                    .get(&employment)
                    .is_some_and(|(event_type, _)| *event_type == EventType::EmploymentEnded) =>
            {
                if let Some(entry) = expected.get_mut(&employment) {
                    entry.0 = EventType::EmploymentChanged;
                    entry.1.remove("end_date");
                    entry.1.remove("end_reason");
                    if entry.1.is_empty() {
                        expected.remove(&employment);
                    }
                }
            }
            (
                ChangeKind::DepartmentChanged
                | ChangeKind::JobChanged
                | ChangeKind::HoursChanged
                | ChangeKind::SalaryChanged
                | ChangeKind::LocationChanged
                | ChangeKind::StartDateCorrected
                | ChangeKind::EndDateCorrected
                | ChangeKind::Reinstated,
                _,
                Some(employment),
            ) => {
                fold(
                    &mut expected,
                    employment,
                    EventType::EmploymentChanged,
                    &change.changed_fields,
                );
            }
            // koppel's manager lives on the employee.
            (
                ChangeKind::NameChanged | ChangeKind::Divorced | ChangeKind::ManagerChanged,
                Some(employee),
                _,
            ) => {
                fold(
                    &mut expected,
                    employee,
                    EventType::EmployeeUpdated,
                    &change.changed_fields,
                );
            }
            // Departments are not entities of the canonical model (their effect on people is
            // logged as ManagerChanged), and malformations are not world changes.
            _ => {}
        }
    }
    expected
}

/// From when each expected event's change holds, per entity id (the keys of
/// [`expected_events`] for the same window):
/// - a hire or further employment: its start date (the corrected one when corrected in the
///   window); the new employee record: the day it was entered;
/// - an end: the end date;
/// - a change to an employment: the earliest day any of its folded changes holds from (a
///   retroactive raise entered today holds from the first of the month; a change per next
///   month from that first);
/// - a change to an employee (names, manager): the day it was entered, because no source
///   dates them, so koppel can only give the day it observed them.
pub fn expected_effective_dates(changes: &[WorldChange]) -> BTreeMap<String, NaiveDate> {
    let expected = expected_events(changes);
    let mut dates: BTreeMap<String, NaiveDate> = BTreeMap::new();
    for change in changes {
        // Only the kinds `expected_events` turns into events count.
        if matches!(
            change.kind,
            ChangeKind::SecondaryEmploymentManagerChanged
                | ChangeKind::DepartmentManagerChanged
                | ChangeKind::MalformationInjected
        ) {
            continue;
        }
        let employee_level = matches!(
            change.kind,
            ChangeKind::NameChanged | ChangeKind::Divorced | ChangeKind::ManagerChanged
        );
        let entity = if employee_level {
            change.employee_id
        } else {
            change.employment_id
        };
        let Some(entity) = entity.map(|id| id.to_string()) else {
            continue;
        };
        let Some((event_type, _)) = expected.get(&entity) else {
            continue;
        };
        let sets_start = matches!(
            change.kind,
            ChangeKind::Hired
                | ChangeKind::Rehired
                | ChangeKind::SecondEmploymentStarted
                | ChangeKind::StartDateCorrected
        );
        let sets_end = matches!(
            change.kind,
            ChangeKind::EmploymentEnded | ChangeKind::EndDateCorrected
        );
        match event_type {
            EventType::EmploymentStarted if sets_start => {
                dates.insert(entity, change.effective_date);
            }
            EventType::EmploymentEnded if sets_end => {
                dates.insert(entity, change.effective_date);
            }
            EventType::EmploymentChanged | EventType::EmployeeUpdated => {
                let date = dates.entry(entity).or_insert(change.effective_date);
                *date = (*date).min(change.effective_date);
            }
            _ => {}
        }
        // A new person's record exists from the day it is entered; no source dates it.
        if change.kind == ChangeKind::Hired
            && let Some(employee) = change.employee_id.map(|id| id.to_string())
        {
            dates.insert(employee, change.date);
        }
    }
    dates
}

/// Differences between what one poll should have emitted and what it did, one
/// [`Discrepancy`] per entity; empty when they agree.
pub fn compare(expected: &ExpectedEvents, emitted: &ExpectedEvents) -> Vec<Discrepancy> {
    let mut discrepancies = Vec::new();
    for (entity, (event_type, fields)) in expected {
        match emitted.get(entity) {
            None => discrepancies.push(Discrepancy::Missing {
                entity: entity.clone(),
                expected: *event_type,
            }),
            Some((emitted_type, _)) if emitted_type != event_type => {
                discrepancies.push(Discrepancy::WrongEventType {
                    entity: entity.clone(),
                    expected: *event_type,
                    published: *emitted_type,
                });
            }
            Some((_, emitted_fields)) => {
                let creates = matches!(
                    event_type,
                    EventType::EmployeeCreated | EventType::EmploymentStarted
                );
                if !creates && !fields.is_subset(emitted_fields) {
                    discrepancies.push(Discrepancy::FieldsDiffer {
                        entity: entity.clone(),
                        expected: fields.clone(),
                        published: emitted_fields.clone(),
                    });
                }
            }
        }
    }
    for (entity, (event_type, fields)) in emitted {
        if !expected.contains_key(entity) {
            discrepancies.push(Discrepancy::Extra {
                entity: entity.clone(),
                published: *event_type,
                fields: fields.clone(),
            });
        }
    }
    discrepancies
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{MutationRates, World, WorldConfig};

    #[test]
    fn hires_fold_later_changes_into_the_create() {
        let mut world =
            World::generate(WorldConfig::new(9, 2, 30).with_rates(MutationRates::busy()));
        let changes = world.advance_days(20).to_vec();
        let expected = expected_events(&changes);
        for change in changes
            .iter()
            .filter(|change| change.kind == ChangeKind::Hired)
        {
            let employment = change.employment_id.unwrap().to_string();
            assert_eq!(expected[&employment].0, EventType::EmploymentStarted);
        }
        assert!(!expected.is_empty());
        assert!(compare(&expected, &expected).is_empty());
    }

    #[test]
    fn a_dismissal_withdrawn_the_same_day_is_no_change() {
        let mut world = World::generate(
            WorldConfig::new(11, 2, 20).with_rates(MutationRates::busy().scaled(3)),
        );
        let mut seen = 0;
        for _ in 0..20 {
            let changes = world.advance_days(1).to_vec();
            let expected = expected_events(&changes);
            for change in changes.iter().filter(|c| c.kind == ChangeKind::Reinstated) {
                let employment = change.employment_id.unwrap();
                let ended_same_window = changes.iter().any(|earlier| {
                    earlier.kind == ChangeKind::EmploymentEnded
                        && earlier.employment_id == Some(employment)
                        && earlier.version < change.version
                });
                if ended_same_window {
                    seen += 1;
                    let entry = expected.get(&employment.to_string());
                    assert!(entry.is_none_or(|(event_type, fields)| {
                        *event_type == EventType::EmploymentChanged && !fields.contains("end_date")
                    }));
                }
            }
        }
        assert!(seen > 0, "the chaos rates end and reinstate within one day");
    }

    #[test]
    fn effective_dates_come_from_the_change_not_the_poll() {
        let mut world =
            World::generate(WorldConfig::new(12, 3, 30).with_rates(MutationRates::busy()));
        let mut retroactive = 0;
        let mut ahead = 0;
        for _ in 0..40 {
            let changes = world.advance_days(1).to_vec();
            let today = world.today();
            let expected = expected_events(&changes);
            let dates = expected_effective_dates(&changes);
            for (entity, (event_type, _)) in &expected {
                let date = dates
                    .get(entity)
                    .unwrap_or_else(|| panic!("{event_type:?} {entity} has no date"));
                if *event_type == EventType::EmployeeUpdated {
                    assert_eq!(*date, today);
                }
                retroactive += usize::from(*date < today);
                ahead += usize::from(*date > today);
            }
        }
        assert!(retroactive > 0 && ahead > 0, "{retroactive} {ahead}");
    }
}
