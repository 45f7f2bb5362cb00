//! Entry points for the fuzz targets in `tests/fuzz`: a source response body, as bytes, through
//! the same parsing and mapping the extractor gives it, without HTTP. Not an API.
//!
//! A real sync reads several responses; a fuzz input is one body, so every entry point reads
//! the body as each response it could be (the single-resource envelope, the collection
//! envelope, and every item as each record type a list holds) and maps what parses, with the
//! production functions. Items of one page meet each other where production combines lists:
//! the manager heuristic, the history chosen per employment, employments joined to employees.
//! Whatever maps then goes through the engine's first-sync diff, which digests it and builds
//! the events that would be published.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use koppel_events::{Event, SourceSystem};
use koppel_registry::EmployerRegistration;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::engine::{SyncError, first_sync_events};
use crate::http_source::{Page, next_page_number, parse_item};
use crate::loket::mapping::{
    ManagerDirectory, MappingSettings, map_employee, map_employer, map_employment, valid_on,
};
use crate::loket::wire::{
    CitizenServiceNumber, Department, EmployerUser, LoketEmployee, LoketEmployer, LoketEmployment,
    OrganizationalEntity, UserDepartments, VersionItem, Wage, WorkingHours,
};
use crate::mapping::{parse_date, scalar_text};
use crate::source::SourceFetch;
use crate::unit4::wire::{
    Dienstverband, EMPLOYEE_ID_MEMBER, EMPLOYER_ID_MEMBER, EMPLOYMENT_ID_MEMBER, Werkgever,
    Werknemer,
};

/// The reference date the fuzz entry points map for.
fn reference_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default()
}

fn registration(source_employer_id: &str) -> EmployerRegistration {
    EmployerRegistration {
        employer_key: "fuzz-employer".to_owned(),
        connection_id: "fuzz-connection".to_owned(),
        source_employer_id: source_employer_id.to_owned(),
        name: "Fuzz B.V.".to_owned(),
        payroll_tax_number: None,
        recipients: Vec::new(),
        removal_threshold_percent: 20,
        enabled: true,
    }
}

/// What one body mapped to, and the events a first sync would publish for it.
#[derive(Debug, Default)]
pub struct Mapped {
    pub fetch: SourceFetch,
    /// `Err` when the engine refused the mapped entities (an error, not a panic).
    pub events: Option<Result<Vec<Event>, SyncError>>,
    /// Records of any list type that did not parse or map.
    pub rejected_records: usize,
}

impl Mapped {
    fn with_events(mut self, source: SourceSystem) -> Self {
        self.events = Some(first_sync_events(
            &self.fetch,
            source,
            "fuzz-employer",
            reference_date(),
        ));
        self
    }
}

/// Every item parsed as `T`, as `get_all_parsed` does; the count of those that did not parse.
fn parse_items<T: DeserializeOwned>(items: &[Value], rejected: &mut usize) -> Vec<T> {
    items
        .iter()
        .filter_map(|item| match serde_json::from_value::<T>(item.clone()) {
            Ok(parsed) => Some(parsed),
            Err(_) => {
                *rejected += 1;
                None
            }
        })
        .collect()
}

/// A Loket response body, read as the employer resource, a BSN resource and a page of every
/// list the Loket source reads, mapped as `LoketSource` maps them.
pub fn loket_response(body: &[u8]) -> Result<Mapped, serde_json::Error> {
    let value: Value = serde_json::from_slice(body)?;
    let mut mapped = Mapped::default();

    // The single-resource envelope: the employer, or an employee's BSN.
    let content = serde_json::from_value::<crate::loket::wire::Single>(value.clone())
        .map(|single| single.content)
        .unwrap_or(Value::Null);
    let loket_employer = serde_json::from_value::<LoketEmployer>(content.clone()).ok();
    if let Some(loket_employer) = &loket_employer {
        let registration = registration(&loket_employer.id);
        match map_employer(&registration, loket_employer) {
            Ok(employer) => mapped.fetch.employer = Some(employer),
            Err(_) => mapped.rejected_records += 1,
        }
    }
    let bsn = serde_json::from_value::<CitizenServiceNumber>(content)
        .ok()
        .and_then(|content| scalar_text(content.citizen_service_number.as_ref()));

    // The collection envelope, and its items as every list type.
    let Ok(envelope) = serde_json::from_value::<crate::loket::wire::Envelope>(value) else {
        return Ok(mapped.with_events(SourceSystem::Loket));
    };
    let page = Page::from(envelope);
    let _ = next_page_number(1, &page);
    let items = page.items;
    let rejected = &mut mapped.rejected_records;
    let versions: Vec<VersionItem> = parse_items(&items, rejected);
    let _: Vec<Option<u64>> = versions.iter().map(VersionItem::number).collect();
    let _: Vec<LoketEmployer> = parse_items(&items, rejected);
    let employees: Vec<LoketEmployee> = parse_items(&items, rejected);
    let employments: Vec<LoketEmployment> = parse_items(&items, rejected);
    let organization: Vec<OrganizationalEntity> = parse_items(&items, rejected);
    let hours: Vec<WorkingHours> = parse_items(&items, rejected);
    let wages: Vec<Wage> = parse_items(&items, rejected);
    let departments: Vec<Department> = parse_items(&items, rejected);
    let users: Vec<EmployerUser> = parse_items(&items, rejected);
    let user_departments: Vec<UserDepartments> = parse_items(&items, rejected);

    // As the source joins them: the running entity per employment from the employer-wide
    // list, else the one valid on the employment's reference date from a history.
    let organization_by_employment: HashMap<String, &OrganizationalEntity> = organization
        .iter()
        .filter_map(|entity| Some((entity.employment.as_ref()?.id.clone()?, entity)))
        .collect();
    let hours_by_employment: HashMap<String, &WorkingHours> = hours
        .iter()
        .filter_map(|hours| Some((hours.employment.as_ref()?.id.clone()?, hours)))
        .collect();
    let reference_for =
        |employment: &LoketEmployment| match parse_date("endDate", employment.end_date.as_deref())
            .ok()
            .flatten()
        {
            Some(end) if end < reference_date() => end,
            _ => reference_date(),
        };
    let organization_of = |employment: &LoketEmployment| {
        organization_by_employment
            .get(&employment.id)
            .copied()
            .or_else(|| valid_on(&organization, reference_for(employment)))
    };

    let directory = ManagerDirectory::build(&departments, &users, &user_departments, &employees);
    let mut failed_employees: HashSet<&str> = HashSet::new();
    for employee in &employees {
        let manager = employments
            .iter()
            .filter(|employment| {
                employment.employee.as_ref().and_then(|e| e.id.as_deref())
                    == Some(employee.id.as_str())
            })
            .find_map(&organization_of)
            .and_then(|entity| scalar_text(entity.department.as_ref()?.key.as_ref()))
            .and_then(|department| directory.manager_of(&department, &employee.id));
        match map_employee(employee, bsn.as_deref(), manager) {
            Ok(employee) => mapped.fetch.employees.push(employee),
            Err(_) => {
                failed_employees.insert(employee.id.as_str());
                mapped.rejected_records += 1;
            }
        }
    }
    for employment in &employments {
        let date = reference_for(employment);
        let result = map_employment(
            employment,
            organization_of(employment),
            hours_by_employment
                .get(&employment.id)
                .copied()
                .or_else(|| valid_on(&hours, date)),
            valid_on(&wages, date),
            &MappingSettings::default(),
        );
        match result {
            Ok(employment) if failed_employees.contains(employment.employee_id.as_str()) => {}
            Ok(employment) => mapped.fetch.employments.push(employment),
            Err(_) => mapped.rejected_records += 1,
        }
    }
    mapped.fetch.present_employee_ids = Some(present(&mapped.fetch.employees, |e| &e.employee_id));
    mapped.fetch.present_employment_ids =
        Some(present(&mapped.fetch.employments, |e| &e.employment_id));
    Ok(mapped.with_events(SourceSystem::Loket))
}

fn present<T>(entities: &[T], id: impl Fn(&T) -> &String) -> HashSet<String> {
    entities.iter().map(|entity| id(entity).clone()).collect()
}

/// A Unit4 response body, read as the employer resource and as a page of employers, employees
/// and employments, assembled by the Unit4 source's own `assemble`.
pub fn unit4_response(body: &[u8]) -> Result<Mapped, serde_json::Error> {
    let value: Value = serde_json::from_slice(body)?;
    let werkgever = serde_json::from_value::<Werkgever>(value.clone()).unwrap_or_else(|_| {
        // Not an employer resource: a page then, of an employer that maps.
        Werkgever {
            werkgever_id: "fuzz-werkgever".to_owned(),
            naam: Some(Value::String("Fuzz B.V.".to_owned())),
            ..Werkgever::default()
        }
    });
    let (werknemers, dienstverbanden, rejected) =
        match serde_json::from_value::<crate::unit4::wire::Envelope>(value) {
            Ok(envelope) => {
                let page = Page::from(envelope);
                let _ = next_page_number(1, &page);
                // The lists come from different endpoints. An employment carries a
                // `werknemerId` too and would parse as an employee, so items are routed by
                // the id member their endpoint's records have.
                let (employment_items, other_items): (Vec<Value>, Vec<Value>) = page
                    .items
                    .into_iter()
                    .partition(|item| item.get(EMPLOYMENT_ID_MEMBER).is_some());
                let employers: Vec<_> = other_items
                    .iter()
                    .map(|item| parse_item::<Werkgever>(item.clone(), EMPLOYER_ID_MEMBER))
                    .collect();
                let werknemers: Vec<_> = other_items
                    .into_iter()
                    .map(|item| parse_item::<Werknemer>(item, EMPLOYEE_ID_MEMBER))
                    .collect();
                let dienstverbanden: Vec<_> = employment_items
                    .into_iter()
                    .map(|item| parse_item::<Dienstverband>(item, EMPLOYMENT_ID_MEMBER))
                    .collect();
                let rejected = employers.iter().filter(|item| item.is_err()).count();
                (werknemers, dienstverbanden, rejected)
            }
            Err(_) => (Vec::new(), Vec::new(), 0),
        };
    let registration = registration(&werkgever.werkgever_id);
    let fetch = crate::unit4::source::assemble(
        &registration,
        &werkgever,
        werknemers,
        dienstverbanden,
        reference_date(),
    );
    let mapped = match fetch {
        Ok(fetch) => Mapped {
            rejected_records: rejected + fetch.record_errors.len(),
            fetch,
            events: None,
        },
        // The employer itself does not map: the whole fetch is an error, as in production.
        Err(_) => Mapped {
            rejected_records: rejected + 1,
            ..Mapped::default()
        },
    };
    Ok(mapped.with_events(SourceSystem::Unit4))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::MappingError;

    /// Every event planned from `mapped` encodes.
    fn assert_every_event_encodes(mapped: Mapped) {
        for event in mapped.events.unwrap().unwrap() {
            koppel_events::encode(&event).unwrap();
        }
    }

    /// 100,000 hours a week maps, but the contract's hours (precision 9, scale 4) cannot carry
    /// it: before `within_contract` the employment's event failed to encode and took the
    /// whole run down with it. Now the employment alone is a bad record.
    #[test]
    fn a_loket_value_beyond_the_contract_rejects_only_its_record() {
        let body = br#"{"_embedded":[
            {"id":"e1","personalDetails":{"lastName":"Jansen"}},
            {"id":"dv1","startDate":"2024-01-01","employee":{"id":"e1"}},
            {"id":"dv2","startDate":"2024-01-01","employee":{"id":"e1"}},
            {"id":"wh1","startDate":"2024-01-01","deviatingHoursPerWeek":100000,
             "shift":{"fullTimeHoursPerWeek":40},"employment":{"id":"dv1"}}
        ]}"#;
        let mapped = loket_response(body).unwrap();
        let employments: Vec<&str> = mapped
            .fetch
            .employments
            .iter()
            .map(|employment| employment.employment_id.as_str())
            .collect();
        assert_eq!(employments, ["dv2"]);
        assert_eq!(mapped.fetch.employees.len(), 1);
        assert_every_event_encodes(mapped);
    }

    #[test]
    fn a_unit4_value_beyond_the_contract_rejects_only_its_record() {
        let body = br#"{"data":[
            {"werknemerId":"w1","achternaam":"Jansen"},
            {"dienstverbandId":"dv1","werknemerId":"w1","datumInDienst":"2024-01-01",
             "salarisgegevens":{"brutoSalaris":"3000","periode":"maand",
                                "pensioengevendJaarsalaris":"1e20"}},
            {"dienstverbandId":"dv2","werknemerId":"w1","datumInDienst":"2024-01-01"}
        ]}"#;
        let mapped = unit4_response(body).unwrap();
        let employments: Vec<&str> = mapped
            .fetch
            .employments
            .iter()
            .map(|employment| employment.employment_id.as_str())
            .collect();
        assert_eq!(employments, ["dv2"]);
        let error = &mapped.fetch.record_errors[0];
        assert_eq!(error.entity_id, "dv1");
        assert_eq!(
            error.reason,
            MappingError::BeyondContract("amount").to_string()
        );
        assert_every_event_encodes(mapped);
    }
}
