//! The mutation engine's ground truth in koppel's terms: for a window of [`WorldChange`]s, the
//! event koppel must emit per entity, with the fields the log says changed. Tests and the demo
//! compare what koppel published against it.
//!
//! Fine-grained log entries of one entity fold into one expected event: a create absorbs later
//! changes of the window, an end absorbs the employment's other changes. Compare with polls
//! that are one simulated day apart: over a longer window a change can undo itself (a manager
//! moved and moved back), which the log records and no source can show.

use std::collections::{BTreeMap, BTreeSet};

use koppel_events::EventType;

use crate::world::{ChangeKind, WorldChange};

mod discrepancy;

pub use discrepancy::Discrepancy;

/// The expected event per entity id.
pub type ExpectedEvents = BTreeMap<String, (EventType, BTreeSet<String>)>;

pub fn expected_events(changes: &[WorldChange]) -> ExpectedEvents {
    let mut expected: ExpectedEvents = BTreeMap::new();
    let mut fold = |entity: String, event_type: EventType, fields: &[&str]| {
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
    };
    for change in changes {
        let employee = change.employee_id.map(|id| id.to_string());
        let employment = change.employment_id.map(|id| id.to_string());
        match (change.kind, employee, employment) {
            (ChangeKind::Hired, Some(employee), Some(employment)) => {
                fold(employee, EventType::EmployeeCreated, &[]);
                fold(employment, EventType::EmploymentStarted, &[]);
            }
            (ChangeKind::EmploymentEnded, _, Some(employment)) => {
                fold(
                    employment,
                    EventType::EmploymentEnded,
                    &change.changed_fields,
                );
            }
            (
                ChangeKind::DepartmentChanged
                | ChangeKind::JobChanged
                | ChangeKind::HoursChanged
                | ChangeKind::SalaryChanged,
                _,
                Some(employment),
            ) => {
                fold(
                    employment,
                    EventType::EmploymentChanged,
                    &change.changed_fields,
                );
            }
            // koppel's manager lives on the employee.
            (ChangeKind::NameChanged | ChangeKind::ManagerChanged, Some(employee), _) => {
                fold(employee, EventType::EmployeeUpdated, &change.changed_fields);
            }
            // Departments are not entities of the canonical model (their effect on people is
            // logged as ManagerChanged), and malformations are not world changes.
            _ => {}
        }
    }
    expected
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
}
