//! The Unit4 [`Source`]: a full snapshot per run (Unit4 has no known change feed), mapped to
//! canonical entities; the engine diffs it against the snapshot.
//!
//! # Call budget (per employer and run)
//!
//! `GET {employers}/{employer}`, then every page of `{employees}` and of `{employments}` (the
//! two lists concurrently; hours and salary are embedded in the employments). That is
//! `1 + ceil(employees / aantal) + ceil(employments / aantal)` calls, 500 per page by default,
//! plus a token request when the cached token is due: about 0.005 calls per employee, flat in
//! the employer's size. Paging stops at an empty page or at `pagina >= totaalPaginas`, so a
//! list costs no extra call to find its end.
//!
//! # Errors
//!
//! A 403 anywhere (or a 404 on the employer) means the employer is not in the connection's
//! user group: [`SourceError::EmployerNotVisible`], permanent, for this employer only. A
//! record that does not parse or map is a record error; it stays present (no removal) and an
//! employee's employments wait for the employee. An item whose id cannot be read at all makes
//! removals of its list unjudgeable for the run (an unknown record might be anyone).

use std::collections::{HashMap, HashSet};

use koppel_events::{Employee, Employment, RecordError, SourceSystem, SyncKind};
use koppel_registry::EmployerRegistration;

use super::client::Unit4Client;
use super::mapping::{
    employer_fulltime_hours, manager_of, map_employee, map_employer, map_employment,
};
use super::wire::{Dienstverband, EMPLOYEE_ID_MEMBER, EMPLOYMENT_ID_MEMBER, Werkgever, Werknemer};
use crate::http_source::RejectedItem;
use crate::source::{FetchRequest, Source, SourceError, SourceFetch, record_error};

/// Unit4 as a [`Source`].
#[derive(Debug, Clone)]
pub struct Unit4Source {
    client: Unit4Client,
}

impl Unit4Source {
    pub fn new(client: Unit4Client) -> Self {
        Unit4Source { client }
    }

    pub fn client(&self) -> &Unit4Client {
        &self.client
    }
}

impl Source for Unit4Source {
    fn system(&self) -> SourceSystem {
        SourceSystem::Unit4
    }

    fn connection_id(&self) -> &str {
        self.client.connection_id()
    }

    fn supports_delta(&self) -> bool {
        false
    }

    async fn fetch(&self, request: FetchRequest<'_>) -> Result<SourceFetch, SourceError> {
        let registration = request.employer;
        let visibility = |error: SourceError, not_found_too: bool| {
            not_visible(error, not_found_too, &self.client, registration)
        };
        let employer_id = registration.source_employer_id.as_str();
        let werkgever = self
            .client
            .employer(employer_id)
            .await
            .map_err(|error| visibility(error, true))?;
        let paths = self.client.paths();
        let employees_path = self.client.employer_path(&paths.employees, employer_id)?;
        let employments_path = self.client.employer_path(&paths.employments, employer_id)?;
        let (werknemers, dienstverbanden) = futures::try_join!(
            self.client.get_all_parsed::<Werknemer>(
                &employees_path,
                &paths.employees,
                EMPLOYEE_ID_MEMBER
            ),
            self.client.get_all_parsed::<Dienstverband>(
                &employments_path,
                &paths.employments,
                EMPLOYMENT_ID_MEMBER
            ),
        )
        .map_err(|error| visibility(error, false))?;
        assemble(
            registration,
            &werkgever,
            werknemers,
            dienstverbanden,
            request.reference_date,
        )
    }
}

/// A refusal of the employer's resources as the per-employer error it is.
fn not_visible(
    error: SourceError,
    not_found_too: bool,
    client: &Unit4Client,
    registration: &EmployerRegistration,
) -> SourceError {
    match error.status() {
        Some(403) => {}
        Some(404) if not_found_too => {}
        _ => return error,
    }
    SourceError::EmployerNotVisible {
        connection_id: client.connection_id().to_owned(),
        source_employer_id: registration.source_employer_id.clone(),
    }
}

/// Good items, and the ids of the rejected ones (with their record errors). `None` for the
/// ids when an item had no readable id.
fn split<T>(
    items: Vec<Result<T, RejectedItem>>,
    entity_type: &str,
    errors: &mut Vec<RecordError>,
) -> (Vec<T>, Option<Vec<String>>) {
    let mut good = Vec::with_capacity(items.len());
    let mut rejected_ids = Some(Vec::new());
    for item in items {
        match item {
            Ok(value) => good.push(value),
            Err(rejected) => {
                errors.push(record_error(
                    entity_type,
                    rejected.id.as_deref().unwrap_or_default(),
                    &rejected.reason,
                ));
                match (rejected.id, rejected_ids.as_mut()) {
                    (Some(id), Some(ids)) => ids.push(id),
                    _ => rejected_ids = None,
                }
            }
        }
    }
    (good, rejected_ids)
}

/// Maps what the three calls returned into one fetch.
pub(crate) fn assemble(
    registration: &EmployerRegistration,
    werkgever: &Werkgever,
    werknemers: Vec<Result<Werknemer, RejectedItem>>,
    dienstverbanden: Vec<Result<Dienstverband, RejectedItem>>,
    reference_date: chrono::NaiveDate,
) -> Result<SourceFetch, SourceError> {
    let invalid_employer = |reason: String| SourceError::InvalidEmployer {
        source_employer_id: registration.source_employer_id.clone(),
        reason,
    };
    let employer = map_employer(registration, werkgever)
        .map_err(|error| invalid_employer(error.to_string()))?;
    let fallback_fulltime =
        employer_fulltime_hours(werkgever).map_err(|error| invalid_employer(error.to_string()))?;

    let mut record_errors = Vec::new();
    let (werknemers, rejected_employees) = split(werknemers, "employee", &mut record_errors);
    let (dienstverbanden, rejected_employments) =
        split(dienstverbanden, "employment", &mut record_errors);

    let present_employee_ids = rejected_employees.map(|rejected| {
        werknemers
            .iter()
            .map(|employee| employee.werknemer_id.clone())
            .chain(rejected)
            .collect::<HashSet<String>>()
    });
    let present_employment_ids = rejected_employments.map(|rejected| {
        dienstverbanden
            .iter()
            .map(|employment| employment.dienstverband_id.clone())
            .chain(rejected)
            .collect::<HashSet<String>>()
    });

    let mut employments_by_employee: HashMap<String, Vec<&Dienstverband>> = HashMap::new();
    for employment in &dienstverbanden {
        if let Some(employee_id) = crate::mapping::scalar_text(employment.werknemer_id.as_ref()) {
            employments_by_employee
                .entry(employee_id)
                .or_default()
                .push(employment);
        }
    }

    let mut employees: Vec<Employee> = Vec::with_capacity(werknemers.len());
    let mut failed_employee_ids: HashSet<String> = HashSet::new();
    for werknemer in &werknemers {
        let manager = employments_by_employee
            .get(&werknemer.werknemer_id)
            .and_then(|own| manager_of(own, reference_date));
        match map_employee(werknemer, manager) {
            Ok(employee) => employees.push(employee),
            Err(error) => {
                failed_employee_ids.insert(werknemer.werknemer_id.clone());
                record_errors.push(record_error("employee", &werknemer.werknemer_id, error));
            }
        }
    }
    let mut employments: Vec<Employment> = Vec::with_capacity(dienstverbanden.len());
    for dienstverband in &dienstverbanden {
        match map_employment(dienstverband, fallback_fulltime) {
            // Its employee is rejected: publishing the employment would carry a broken
            // employee along. It waits for the employee to be fixed.
            Ok(employment) if failed_employee_ids.contains(&employment.employee_id) => {}
            Ok(employment) => employments.push(employment),
            Err(error) => record_errors.push(record_error(
                "employment",
                &dienstverband.dienstverband_id,
                error,
            )),
        }
    }

    Ok(SourceFetch {
        kind: Some(SyncKind::Full),
        employer: Some(employer),
        employees,
        employments,
        present_employee_ids,
        present_employment_ids,
        record_errors,
        next_watermark: None,
    })
}
