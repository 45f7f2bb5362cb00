//! Table tests of [`plan_sync`](super::plan_sync): the safety threshold at its boundaries
//! (exactly the percentage, the minimum-employees edge, no known employees), the rule for when
//! `SyncCompleted` is emitted, and which watermark a run reports and stores.

use super::*;

const EMPLOYER_KEY: &str = "plan-employer";

fn run_header() -> RunHeader<'static> {
    RunHeader {
        source: SourceSystem::Loket,
        connection_id: "plan-connection",
        employer_key: EMPLOYER_KEY,
        run_id: "plan-run",
        observed_at: DateTime::<Utc>::UNIX_EPOCH,
    }
}

/// A destructive `EmployeeRemoved` of one employee.
fn removal(employee_id: &str) -> Planned {
    let employee = removed_employee(employee_id);
    Planned {
        event: Event::EmployeeRemoved(EmployeeEvent {
            header: run_header().header(
                EventType::EmployeeRemoved,
                employee_id,
                2,
                &[0; 32],
                Vec::new(),
                None,
            ),
            employee,
        }),
        destructive: true,
        apply: Apply::RemoveEmployee(employee_id.to_owned()),
    }
}

/// A destructive `EmploymentEnded` of one of `employee_id`'s employments.
fn ending(employee_id: &str, employment_id: &str) -> Planned {
    let state = EntityState {
        employee_id: Some(employee_id.to_owned()),
        ..state_of(&ContentDigest::of(&0).unwrap(), 1)
    };
    Planned {
        event: Event::EmploymentEnded(EmploymentEvent {
            header: run_header().header(
                EventType::EmploymentEnded,
                employment_id,
                2,
                &[0; 32],
                Vec::new(),
                None,
            ),
            employment: removed_employment(employment_id, &state),
            employee: removed_employee(employee_id),
        }),
        destructive: true,
        apply: Apply::RemoveEmployment(employment_id.to_owned()),
    }
}

/// A harmless `EmployeeCreated`.
fn creation(employee_id: &str) -> Planned {
    Planned {
        event: Event::EmployeeCreated(EmployeeEvent {
            header: run_header().header(
                EventType::EmployeeCreated,
                employee_id,
                1,
                &[0; 32],
                Vec::new(),
                None,
            ),
            employee: removed_employee(employee_id),
        }),
        destructive: false,
        apply: Apply::Employee(
            employee_id.to_owned(),
            state_of(&ContentDigest::of(&0).unwrap(), 1),
        ),
    }
}

fn removals(count: usize) -> Vec<Planned> {
    (0..count)
        .map(|index| removal(&format!("employee-{index}")))
        .collect()
}

fn delta_rules(known_employees: usize, minimum_employees: u32, threshold_percent: u8) -> SyncRules {
    SyncRules {
        known_employees,
        minimum_employees,
        threshold_percent,
        requested_kind: None,
        kind: SyncKind::Delta,
        supports_delta: true,
        record_errors: 0,
    }
}

#[test]
fn the_threshold_holds_back_only_above_both_the_percentage_and_the_minimum() {
    // (case, known employees, minimum, percent, employees removed, held back)
    let table: &[(&str, usize, u32, u8, usize, bool)] = &[
        ("no known employees", 0, 5, 20, 10, false),
        ("exactly the percentage", 30, 5, 20, 6, false),
        ("one above the percentage", 30, 5, 20, 7, true),
        ("exactly the minimum", 10, 5, 20, 5, false),
        ("one above the minimum", 10, 5, 20, 6, true),
        (
            "minimum zero, one removal above the percentage",
            3,
            0,
            20,
            1,
            true,
        ),
        ("below the percentage", 100, 5, 20, 19, false),
        ("everyone at 100 percent", 10, 5, 100, 10, false),
        ("everyone at 0 percent", 10, 5, 0, 6, true),
        ("huge minimum", 10, u32::MAX, 20, 10, false),
    ];
    for &(case, known, minimum, percent, removed, expected_held) in table {
        let plan = plan_sync(
            removals(removed),
            &delta_rules(known, minimum, percent),
            Some("10".to_owned()),
            Some("11".to_owned()),
        );
        assert_eq!(
            plan.result == SyncResult::HeldBack,
            expected_held,
            "{case}: result {:?}",
            plan.result
        );
        assert_eq!(plan.affected_employees, removed, "{case}");
        if expected_held {
            assert!(plan.publish.is_empty(), "{case}");
            assert_eq!(plan.held_back.len(), removed, "{case}");
            assert!(plan.emit_marker, "{case}: a held-back run is reported");
        } else {
            assert_eq!(plan.publish.len(), removed, "{case}");
            assert!(plan.held_back.is_empty(), "{case}");
        }
    }
}

#[test]
fn an_employee_ended_and_removed_in_one_run_counts_once() {
    // Six employees each lose an employment and are removed: six affected, not twelve.
    let planned: Vec<Planned> = (0..6)
        .flat_map(|index| {
            let employee = format!("employee-{index}");
            [
                ending(&employee, &format!("employment-{index}")),
                removal(&employee),
            ]
        })
        .collect();
    let plan = plan_sync(planned, &delta_rules(30, 5, 20), None, None);
    assert_eq!(plan.affected_employees, 6);
    assert_eq!(plan.result, SyncResult::Completed, "6 of 30 is exactly 20%");
}

#[test]
fn a_held_back_run_still_publishes_what_is_not_destructive() {
    let mut planned = removals(6);
    planned.push(creation("newcomer"));
    let plan = plan_sync(planned, &delta_rules(10, 5, 20), None, None);
    assert_eq!(plan.result, SyncResult::HeldBack);
    assert_eq!(plan.publish.len(), 1);
    assert_eq!(
        plan.publish[0].event.event_type(),
        EventType::EmployeeCreated
    );
    assert_eq!(plan.held_back.len(), 6);
}

#[test]
fn the_marker_closes_runs_that_did_something_and_reconciliations() {
    // (case, requested kind, kind, source has a change feed, events, record errors, marker)
    type Row = (
        &'static str,
        Option<SyncKind>,
        SyncKind,
        bool,
        usize,
        usize,
        bool,
    );
    let table: &[Row] = &[
        ("idle delta", None, SyncKind::Delta, true, 0, 0, false),
        (
            "delta with an event",
            None,
            SyncKind::Delta,
            true,
            1,
            0,
            true,
        ),
        (
            "delta with a record error",
            None,
            SyncKind::Delta,
            true,
            0,
            1,
            true,
        ),
        (
            "explicit full, nothing found",
            Some(SyncKind::Full),
            SyncKind::Full,
            false,
            0,
            0,
            true,
        ),
        (
            "periodic full of a change feed",
            None,
            SyncKind::Full,
            true,
            0,
            0,
            true,
        ),
        (
            "idle poll without a change feed",
            None,
            SyncKind::Full,
            false,
            0,
            0,
            false,
        ),
        (
            "poll without a change feed, one event",
            None,
            SyncKind::Full,
            false,
            1,
            0,
            true,
        ),
    ];
    for &(case, requested_kind, kind, supports_delta, events, record_errors, expected) in table {
        let planned = (0..events)
            .map(|index| creation(&format!("employee-{index}")))
            .collect();
        let rules = SyncRules {
            requested_kind,
            kind,
            supports_delta,
            record_errors,
            ..delta_rules(10, 5, 20)
        };
        let plan = plan_sync(planned, &rules, None, None);
        assert_eq!(plan.emit_marker, expected, "{case}");
        assert_eq!(plan.result, SyncResult::Completed, "{case}");
    }
}

#[test]
fn a_held_back_run_reports_and_keeps_the_old_watermark() {
    let held = plan_sync(
        removals(6),
        &delta_rules(10, 5, 20),
        Some("10".to_owned()),
        Some("11".to_owned()),
    );
    assert_eq!(held.reported_watermark.as_deref(), Some("10"));
    assert_eq!(held.next_position, None);

    let completed = plan_sync(
        removals(1),
        &delta_rules(10, 5, 20),
        Some("10".to_owned()),
        Some("11".to_owned()),
    );
    assert_eq!(completed.reported_watermark.as_deref(), Some("11"));
    assert_eq!(completed.next_position.as_deref(), Some("11"));

    // A source that reports no position keeps reporting the previous one.
    let no_position = plan_sync(
        Vec::new(),
        &delta_rules(10, 5, 20),
        Some("10".to_owned()),
        None,
    );
    assert_eq!(no_position.reported_watermark.as_deref(), Some("10"));
    assert_eq!(no_position.next_position, None);
}
