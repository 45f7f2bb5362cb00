//! Properties of the snapshot diff, checked with proptest over small generated listings whose
//! ids and values collide often (so unchanged, changed, new and removed entities all occur):
//! the plan of diff(a, b) applied to a's snapshot gives b's snapshot; an unchanged listing
//! gives no events; a reordered listing gives no events. The snapshot moves through the same
//! `apply_planned` and `update_layouts` the engine uses after the acks.

use std::collections::{BTreeMap, HashSet};

use koppel_events::Employer;
use proptest::prelude::*;
use rust_decimal::Decimal;

use super::*;

const EMPLOYER_KEY: &str = "prop-employer";

/// What a source listed for one employer, in the order it listed it.
#[derive(Debug, Clone)]
struct Listing {
    employer: Employer,
    employees: Vec<Employee>,
    employments: Vec<Employment>,
}

fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap()
}

fn reference_date() -> NaiveDate {
    date(2026, 1, 1)
}

fn employer_strategy() -> impl Strategy<Value = Employer> {
    (
        prop::sample::select(vec!["Acme B.V.", "Acme Holding B.V."]),
        prop::option::of(prop::sample::select(vec!["123456789L01", "987654321L01"])),
    )
        .prop_map(|(name, payroll_tax_number)| Employer {
            employer_key: EMPLOYER_KEY.to_owned(),
            source: SourceSystem::Loket,
            source_employer_id: "werkgever-1".to_owned(),
            name: name.to_owned(),
            employer_number: Some("1001".to_owned()),
            payroll_tax_number: payroll_tax_number.map(str::to_owned),
            chamber_of_commerce_number: None,
        })
}

/// Employee content without its id; few distinct values, so two listings often agree.
fn employee_content() -> impl Strategy<Value = (String, Option<String>, Option<u8>, Gender)> {
    (
        prop::sample::select(vec!["Jansen", "de Vries", "Bakker"]).prop_map(str::to_owned),
        prop::option::of(prop::sample::select(vec!["a@example.nl", "b@example.nl"]))
            .prop_map(|email| email.map(str::to_owned)),
        prop::option::of(0u8..4),
        prop::sample::select(vec![Gender::Female, Gender::Male, Gender::Unknown]),
    )
}

fn employee(
    id: u8,
    (last_name, email, manager, gender): (String, Option<String>, Option<u8>, Gender),
) -> Employee {
    Employee {
        employee_id: format!("e{id}"),
        employee_number: Some(id.to_string()),
        name: PersonName {
            initials: Some("J.".to_owned()),
            first_name: Some("Jo".to_owned()),
            prefix: None,
            formatted: format!("J. {last_name}"),
            last_name,
            partner_prefix: None,
            partner_last_name: None,
            name_usage: NameUsage::Own,
        },
        date_of_birth: Some(date(1980, 5, 17)),
        gender,
        bsn: None,
        email,
        work_email: None,
        phone: None,
        address: None,
        manager_employee_id: manager.map(|manager| format!("e{manager}")),
    }
}

type EmploymentContent = (u8, u32, Option<u32>, Option<Decimal>, Option<&'static str>);

fn employment_content() -> impl Strategy<Value = EmploymentContent> {
    (
        0u8..8,
        1u32..3,
        prop::option::of(6u32..8),
        prop::option::of(prop::sample::select(vec![
            Decimal::from(32),
            Decimal::from(40),
            Decimal::new(365, 1),
        ])),
        prop::option::of(prop::sample::select(vec!["Developer", "Payroll clerk"])),
    )
}

fn employment(
    id: u8,
    (employee, start_month, end_month, hours, job_title): EmploymentContent,
) -> Employment {
    Employment {
        employment_id: format!("dv{id}"),
        employee_id: format!("e{employee}"),
        income_relationship_number: Some(i64::from(id)),
        start_date: date(2024, start_month, 1),
        end_date: end_month.map(|month| date(2025, month, 30)),
        end_reason: None,
        job_title: job_title.map(str::to_owned),
        department: None,
        cost_center: None,
        location: None,
        employment_type: None,
        contract_type: None,
        hours_per_week: hours,
        fulltime_hours_per_week: Some(Decimal::from(40)),
        parttime_factor: None,
        salary: None,
        pensionable_salary: None,
        pension_scheme: None,
        placement_valid_from: None,
        hours_valid_from: None,
        salary_valid_from: None,
    }
}

fn listing_strategy() -> impl Strategy<Value = Listing> {
    (
        employer_strategy(),
        prop::collection::btree_map(0u8..8, employee_content(), 0..7),
        prop::collection::btree_map(0u8..10, employment_content(), 0..9),
    )
        .prop_map(
            |(employer, employees, employments): (
                Employer,
                BTreeMap<u8, _>,
                BTreeMap<u8, EmploymentContent>,
            )| Listing {
                employer,
                employees: employees
                    .into_iter()
                    .map(|(id, content)| employee(id, content))
                    .collect(),
                employments: employments
                    .into_iter()
                    .map(|(id, content)| employment(id, content))
                    .collect(),
            },
        )
}

/// A full fetch lists every entity present; a delta (`present` false) lists only changes.
fn fetch(listing: &Listing, full: bool) -> SourceFetch {
    SourceFetch {
        kind: Some(if full {
            SyncKind::Full
        } else {
            SyncKind::Delta
        }),
        employer: Some(listing.employer.clone()),
        employees: listing.employees.clone(),
        employments: listing.employments.clone(),
        present_employee_ids: full.then(|| {
            listing
                .employees
                .iter()
                .map(|employee| employee.employee_id.clone())
                .collect()
        }),
        present_employment_ids: full.then(|| {
            listing
                .employments
                .iter()
                .map(|employment| employment.employment_id.clone())
                .collect()
        }),
        record_errors: Vec::new(),
        next_watermark: None,
    }
}

fn plan(snapshot: &Snapshot, fetch: &SourceFetch) -> Vec<Planned> {
    let header = RunHeader {
        source: SourceSystem::Loket,
        connection_id: "prop-connection",
        employer_key: EMPLOYER_KEY,
        run_id: "prop-run",
        observed_at: DateTime::<Utc>::UNIX_EPOCH,
    };
    diff(&header, snapshot, fetch, reference_date()).unwrap()
}

/// What the engine does once every planned event is acknowledged.
fn applied(mut snapshot: Snapshot, fetch: &SourceFetch) -> Snapshot {
    let planned = plan(&snapshot, fetch);
    apply_planned(&mut snapshot, &planned);
    update_layouts(&mut snapshot, fetch).unwrap();
    forget_ended_employments_gone_from_the_source(&mut snapshot, fetch);
    snapshot
}

/// The snapshot after a first, fully acknowledged sync of `listing`.
fn synced(listing: &Listing) -> Snapshot {
    applied(Snapshot::empty(EMPLOYER_KEY), &fetch(listing, true))
}

/// An entity's remembered state apart from its revision, which counts history, not content.
fn without_revision(state: &EntityState) -> EntityState {
    EntityState {
        revision: 0,
        ..state.clone()
    }
}

type Contents = (
    Option<EntityState>,
    BTreeMap<String, EntityState>,
    BTreeMap<String, EntityState>,
);

fn contents(snapshot: &Snapshot) -> Contents {
    let strip = |map: &HashMap<String, EntityState>| {
        map.iter()
            .map(|(id, state)| (id.clone(), without_revision(state)))
            .collect()
    };
    (
        snapshot.employer.as_ref().map(without_revision),
        strip(&snapshot.employees),
        strip(&snapshot.employments),
    )
}

fn event_ids(planned: &[Planned]) -> Vec<String> {
    planned
        .iter()
        .map(|plan| plan.event.header().event_id.to_string())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (i) The plan of diff(a, b), applied to a's snapshot, gives the snapshot a first sync of
    /// b gives; every entity's revision moves by one exactly when its content changed; and
    /// diffing b again against the result plans nothing.
    #[test]
    fn applying_the_diff_of_a_to_b_yields_b(a in listing_strategy(), b in listing_strategy()) {
        let before = synced(&a);
        let after = applied(before.clone(), &fetch(&b, true));
        prop_assert_eq!(contents(&after), contents(&synced(&b)));
        for (id, state) in after.employees.iter().chain(&after.employments) {
            let previous = before.employees.get(id).or_else(|| before.employments.get(id));
            let expected = match previous {
                None => 1,
                Some(previous) if previous.digest == state.digest => previous.revision,
                Some(previous) => previous.revision + 1,
            };
            prop_assert_eq!(state.revision, expected, "revision of {}", id);
        }
        prop_assert!(plan(&after, &fetch(&b, true)).is_empty());
    }

    /// (i, delta) A delta lists only what changed and removes nothing: applied to a's snapshot
    /// it gives a's entities overlaid with b's.
    #[test]
    fn applying_a_delta_overlays_its_entities(a in listing_strategy(), b in listing_strategy()) {
        let after = applied(synced(&a), &fetch(&b, false));
        let (_, mut employees, mut employments) = contents(&synced(&a));
        let (employer, b_employees, b_employments) = contents(&synced(&b));
        employees.extend(b_employees);
        employments.extend(b_employments);
        prop_assert_eq!(contents(&after), (employer, employees, employments));
    }

    /// (ii) diff(a, a) plans no events, in a full and in a delta fetch.
    #[test]
    fn an_unchanged_listing_gives_no_events(a in listing_strategy()) {
        let snapshot = synced(&a);
        prop_assert!(plan(&snapshot, &fetch(&a, true)).is_empty());
        prop_assert!(plan(&snapshot, &fetch(&a, false)).is_empty());
    }

    /// (iii) The order a source lists its records in is no change: a reordered listing plans
    /// no events against the snapshot, and a first sync of it plans the same events in the
    /// same order.
    #[test]
    fn a_reordered_listing_gives_no_events(
        (a, employees, employments) in listing_strategy().prop_flat_map(|listing| {
            let employees = Just(listing.employees.clone()).prop_shuffle();
            let employments = Just(listing.employments.clone()).prop_shuffle();
            (Just(listing), employees, employments)
        })
    ) {
        let reordered = Listing { employees, employments, ..a.clone() };
        let snapshot = synced(&a);
        prop_assert!(plan(&snapshot, &fetch(&reordered, true)).is_empty());
        let empty = Snapshot::empty(EMPLOYER_KEY);
        prop_assert_eq!(
            event_ids(&plan(&empty, &fetch(&reordered, true))),
            event_ids(&plan(&empty, &fetch(&a, true)))
        );
        let ids: HashSet<String> = event_ids(&plan(&empty, &fetch(&a, true))).into_iter().collect();
        prop_assert_eq!(ids.len(), 1 + a.employees.len() + a.employments.len());
    }
}
