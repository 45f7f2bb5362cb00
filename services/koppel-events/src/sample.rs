//! Realistic example events, for tests, benchmarks and documentation. Deterministic: the same
//! index always gives the same event, so payload sizes are comparable between runs.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use crate::event::{
    EmployeeEvent, EmployerUpserted, EmploymentEvent, Event, EventHeader, EventType, SyncCompleted,
    SyncCounts, SyncKind, SyncResult,
};
use crate::event_id::{EventIdInput, content_hash, derive_event_id};
use crate::model::{
    Address, Bsn, Employee, Employer, Employment, Gender, Money, NameUsage, OrganisationUnit,
    PersonName, Salary, SalaryPeriod, SourceSystem, parttime_factor,
};

/// BSNs that pass the 11-proef, cycled through by the samples.
const SAMPLE_BSNS: [&str; 4] = ["111222333", "123456782", "999999990", "100000009"];

fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap_or_default()
}

fn instant(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap_or_default()
}

/// An employee of the sample employer.
pub fn employee(index: u64) -> Employee {
    let bsn = SAMPLE_BSNS[(index % 4) as usize];
    let name_usage = if index.is_multiple_of(3) {
        NameUsage::OwnPartner
    } else {
        NameUsage::Own
    };
    let formatted = PersonName::format(
        Some("J.A."),
        Some("van der"),
        "Berg",
        Some("de"),
        Some("Vries"),
        name_usage,
    );
    Employee {
        employee_id: format!("emp-{index:06}"),
        employee_number: Some(format!("{}", 1000 + index)),
        name: PersonName {
            initials: Some("J.A.".to_owned()),
            first_name: Some("Johanna".to_owned()),
            prefix: Some("van der".to_owned()),
            last_name: "Berg".to_owned(),
            partner_prefix: Some("de".to_owned()),
            partner_last_name: Some("Vries".to_owned()),
            name_usage,
            formatted,
        },
        date_of_birth: Some(date(1984, 3, 14)),
        gender: Gender::Female,
        bsn: Bsn::parse(bsn).ok(),
        email: Some(format!("johanna.{index}@example.nl")),
        work_email: Some(format!("j.vanderberg{index}@bakkerij-de-molen.nl")),
        phone: Some("+31612345678".to_owned()),
        address: Some(Address {
            street: Some("Keizersgracht".to_owned()),
            house_number: Some("123".to_owned()),
            house_number_addition: Some("A".to_owned()),
            postal_code: Some("1015 CJ".to_owned()),
            city: Some("Amsterdam".to_owned()),
            country_code: Some("NL".to_owned()),
        }),
        manager_employee_id: Some("emp-000001".to_owned()),
    }
}

/// An employment of [`employee`]`(index)`: 32 of 36 hours, EUR 4,250.50 a month.
pub fn employment(index: u64) -> Employment {
    let hours = Decimal::new(32, 0);
    let fulltime = Decimal::new(36, 0);
    Employment {
        employment_id: format!("dv-{index:06}"),
        employee_id: format!("emp-{index:06}"),
        income_relationship_number: Some(1),
        start_date: date(2021, 9, 1),
        end_date: None,
        end_reason: None,
        job_title: Some("Medewerker salarisadministratie".to_owned()),
        department: Some(OrganisationUnit {
            id: "dep-10".to_owned(),
            code: Some("FIN".to_owned()),
            name: Some("Financiën".to_owned()),
        }),
        cost_center: Some(OrganisationUnit {
            id: "kp-200".to_owned(),
            code: Some("200".to_owned()),
            name: Some("Overhead".to_owned()),
        }),
        location: Some("Utrecht".to_owned()),
        employment_type: Some("employee".to_owned()),
        contract_type: Some("permanent".to_owned()),
        hours_per_week: Some(hours),
        fulltime_hours_per_week: Some(fulltime),
        parttime_factor: parttime_factor(hours, fulltime),
        salary: Some(Salary {
            amount: Money::euro(Decimal::new(425_050, 2)),
            period: SalaryPeriod::Month,
        }),
        pensionable_salary: Some(Money::euro(Decimal::new(62_151_200, 4))),
        pension_scheme: Some("PGB-2024".to_owned()),
        placement_valid_from: None,
        hours_valid_from: None,
        salary_valid_from: None,
    }
}

/// An `EmploymentChanged` event about employee `index`, of a realistic size (about 700 bytes).
pub fn employment_changed(index: u64) -> Event {
    let hash = content_hash(&index.to_be_bytes());
    let entity_id = format!("dv-{index:06}");
    let event_id = derive_event_id(EventIdInput {
        source: SourceSystem::Loket,
        connection_id: "loket-acme",
        employer_key: "loket-acme-1001",
        event_type: EventType::EmploymentChanged,
        entity_id: &entity_id,
        revision: 2,
        content_hash: &hash,
    });
    Event::EmploymentChanged(EmploymentEvent {
        header: EventHeader {
            event_id,
            event_type: EventType::EmploymentChanged,
            observed_at: instant(1_763_700_000_000 + index as i64),
            effective_date: Some(date(2026, 11, 1)),
            source: SourceSystem::Loket,
            connection_id: "loket-acme".to_owned(),
            employer_key: "loket-acme-1001".to_owned(),
            entity_id,
            revision: 2,
            run_id: "run-2026-11-21T10:00:00Z".to_owned(),
            changed_fields: vec!["hours_per_week".to_owned(), "parttime_factor".to_owned()],
            effective_date_is_observation: Some(false),
        },
        employment: employment(index),
        employee: employee(index),
    })
}

/// One event of every type in [`EventType::ALL`] order, about employee `index`, each with its
/// own id: for tests that must cover every writer schema (e.g. decoding by other Avro
/// implementations).
pub fn one_of_each_type(index: u64) -> Vec<Event> {
    let Event::EmploymentChanged(changed) = employment_changed(index) else {
        return Vec::new();
    };
    let header = |event_type: EventType| {
        let mut header = changed.header.clone();
        header.event_type = event_type;
        header.event_id = derive_event_id(EventIdInput {
            source: header.source,
            connection_id: &header.connection_id,
            employer_key: &header.employer_key,
            event_type,
            entity_id: &header.entity_id,
            revision: header.revision,
            content_hash: &content_hash(&index.to_be_bytes()),
        });
        header
    };
    let employee_event = |event_type| EmployeeEvent {
        header: header(event_type),
        employee: changed.employee.clone(),
    };
    let employment_event = |event_type| EmploymentEvent {
        header: header(event_type),
        ..changed.clone()
    };
    EventType::ALL
        .iter()
        .map(|event_type| match event_type {
            EventType::EmployerUpserted | EventType::Unknown => {
                Event::EmployerUpserted(EmployerUpserted {
                    header: header(EventType::EmployerUpserted),
                    employer: Employer {
                        employer_key: changed.header.employer_key.clone(),
                        source: SourceSystem::Loket,
                        source_employer_id: "1001".to_owned(),
                        name: "Bakkerij De Molen B.V.".to_owned(),
                        employer_number: Some("1001".to_owned()),
                        payroll_tax_number: Some("123456782L01".to_owned()),
                        chamber_of_commerce_number: Some("12345678".to_owned()),
                    },
                })
            }
            EventType::EmployeeCreated => {
                Event::EmployeeCreated(employee_event(EventType::EmployeeCreated))
            }
            EventType::EmployeeUpdated => {
                Event::EmployeeUpdated(employee_event(EventType::EmployeeUpdated))
            }
            EventType::EmployeeRemoved => {
                Event::EmployeeRemoved(employee_event(EventType::EmployeeRemoved))
            }
            EventType::EmploymentStarted => {
                Event::EmploymentStarted(employment_event(EventType::EmploymentStarted))
            }
            EventType::EmploymentChanged => Event::EmploymentChanged(changed.clone()),
            EventType::EmploymentEnded => {
                Event::EmploymentEnded(employment_event(EventType::EmploymentEnded))
            }
            EventType::SyncCompleted => Event::SyncCompleted(SyncCompleted {
                header: header(EventType::SyncCompleted),
                kind: SyncKind::Full,
                result: SyncResult::Completed,
                started_at: instant(1_763_700_000_000),
                counts: SyncCounts {
                    employees_seen: 1,
                    employments_seen: 1,
                    events_published: 7,
                    records_failed: 0,
                    removals_held_back: 0,
                },
                watermark: Some("4711".to_owned()),
                record_errors: Vec::new(),
            }),
        })
        .collect()
}
