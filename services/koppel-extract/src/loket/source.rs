//! The Loket [`Source`]: which calls a sync makes, and how their answers become canonical
//! entities.
//!
//! # Call budget (per employer)
//!
//! Every run starts with `GET /providers/employers/lastmodifiedversionnumbers` (in a delta,
//! filtered `lastModifiedVersionNumber gt <watermark>`). A delta whose employer is not in
//! the answer is done: one call.
//!
//! Otherwise the run reads the employer-wide lists, each paged (`pageSize` 250 by default):
//! the employer, `employees`, `employees/employments`, `actualorganizationalentities`,
//! `actualworkinghours`, `departments`, `users` and `users/departments` (for the manager
//! heuristic), plus, in a delta, `employees/employments/lastmodifiedversionnumbers` with the
//! same filter. That is a handful of calls plus four per 250 employees.
//!
//! Loket has no employer-wide endpoint for wages or BSNs, so those are per entity, and only
//! for entities whose content is needed: in a full sync every running employment (`wages`)
//! and every employee (`citizenservicenumber`); in a delta only the employments the change
//! feed names and their employees. Employments that ended and dropped out of the `actual...`
//! lists are not re-read once koppel has published their final state (they cannot change);
//! one that koppel sees for the first time already ended costs two more calls
//! (`organizationalentities`, `workinghours`) on that first sight only.
//!
//! So a full sync costs about two calls per employee plus a constant, and a delta costs a
//! constant plus about two calls per changed employee: flat in the employer's size, never
//! HelloID's N x 2 per run. The BSN call is the cheapest correct option: the BSN is
//! authorised separately and appears in no list, and skipping it on full syncs would let a
//! corrected BSN go unnoticed until the employee changes otherwise.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::NaiveDate;
use futures::StreamExt;
use koppel_events::{Employee, Employment, RecordError, SourceSystem, SyncKind};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::LoketSettings;
use super::client::LoketClient;
use super::mapping::{
    ManagerDirectory, MappingError, in_force_or_upcoming, map_employee, map_employer,
    map_employment, parse_date,
};
use super::wire::{
    CitizenServiceNumber, Department, EmployerUser, LoketEmployee, LoketEmployer, LoketEmployment,
    OrganizationalEntity, UserDepartments, VersionItem, Wage, WorkingHours, scalar_text,
};
use crate::http_source::HttpSourceError;
use crate::source::{FetchMode, FetchRequest, Source, SourceError, SourceFetch, record_error};

const EMPLOYERS: &str = "/providers/employers";

/// Loket as a [`Source`].
#[derive(Debug, Clone)]
pub struct LoketSource {
    client: LoketClient,
    settings: LoketSettings,
}

impl LoketSource {
    pub fn new(client: LoketClient, settings: LoketSettings) -> Self {
        LoketSource { client, settings }
    }

    pub fn client(&self) -> &LoketClient {
        &self.client
    }
}

impl Source for LoketSource {
    fn system(&self) -> SourceSystem {
        SourceSystem::Loket
    }

    fn connection_id(&self) -> &str {
        self.client.connection_id()
    }

    fn supports_delta(&self) -> bool {
        true
    }

    async fn fetch(&self, request: FetchRequest<'_>) -> Result<SourceFetch, SourceError> {
        self.fetch_employer(request).await
    }
}

/// The filter of a delta: `lastModifiedVersionNumber gt <watermark>`.
fn version_filter(watermark: u64) -> Vec<(&'static str, String)> {
    vec![(
        "filter",
        format!("lastModifiedVersionNumber gt {watermark}"),
    )]
}

/// A 404 on a per-entity call means the entity went away between the list and the call.
fn not_found_is_none<T>(result: Result<T, SourceError>) -> Result<Option<T>, SourceError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(SourceError::Http(HttpSourceError::Status { status: 404, .. })) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Per-employment data fetched one by one.
#[derive(Debug, Default)]
struct EmploymentDetails {
    wages: Vec<Wage>,
    /// Only for employments absent from the `actual...` lists.
    organizational_entities: Option<Vec<OrganizationalEntity>>,
    working_hours: Option<Vec<WorkingHours>>,
}

impl LoketSource {
    async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        entity_type: &'static str,
        errors: &mut Vec<RecordError>,
    ) -> Result<(Vec<T>, Vec<String>), SourceError> {
        let (parsed, failed) = self.client.get_all_parsed::<T>(path, query).await?;
        let mut failed_ids = Vec::new();
        for (id, reason) in failed {
            let id = id.unwrap_or_default();
            errors.push(record_error(
                entity_type,
                &id,
                format!("record does not have the documented shape: {reason}"),
            ));
            if !id.is_empty() {
                failed_ids.push(id);
            }
        }
        Ok((parsed, failed_ids))
    }

    async fn fetch_employer(&self, request: FetchRequest<'_>) -> Result<SourceFetch, SourceError> {
        let employer_id = request.employer.source_employer_id.as_str();
        let connection_id = self.client.connection_id().to_owned();
        let mut record_errors = Vec::new();

        // The change feed's first level: has anything of this employer changed?
        let watermark = match &request.mode {
            FetchMode::Full => None,
            // An unreadable watermark (written by another source?) falls back to a full sync.
            FetchMode::Delta { watermark } => watermark.parse::<u64>().ok(),
        };
        let filter = watermark.map(version_filter).unwrap_or_default();
        let (versions, _) = self
            .client
            .get_all_parsed::<VersionItem>(
                &format!("{EMPLOYERS}/lastmodifiedversionnumbers"),
                &filter,
            )
            .await?;
        let employer_version = versions
            .iter()
            .find(|item| item.id == employer_id)
            .map(|item| item.number().unwrap_or_default());
        let kind = if watermark.is_some() {
            SyncKind::Delta
        } else {
            SyncKind::Full
        };
        let employer_version = match (employer_version, watermark) {
            (Some(version), _) => version,
            (None, Some(_)) => return Ok(SourceFetch::unchanged()),
            (None, None) => {
                return Err(SourceError::EmployerNotVisible {
                    connection_id,
                    source_employer_id: employer_id.to_owned(),
                });
            }
        };

        let employer_path = format!("{EMPLOYERS}/{employer_id}");
        let employer_content = match self.client.get_content(&employer_path).await {
            Err(SourceError::Http(HttpSourceError::Status {
                status: 403 | 404, ..
            })) => {
                return Err(SourceError::EmployerNotVisible {
                    connection_id,
                    source_employer_id: employer_id.to_owned(),
                });
            }
            other => other?,
        };
        let invalid_employer = |reason: String| SourceError::InvalidEmployer {
            source_employer_id: employer_id.to_owned(),
            reason,
        };
        let loket_employer: LoketEmployer = serde_json::from_value(employer_content)
            .map_err(|error| invalid_employer(error.to_string()))?;
        let employer = map_employer(request.employer, &loket_employer)
            .map_err(|error| invalid_employer(error.to_string()))?;

        let changed_employments: Option<HashSet<String>> = match watermark {
            Some(watermark) => {
                let (items, _) = self
                    .client
                    .get_all_parsed::<VersionItem>(
                        &format!(
                            "{employer_path}/employees/employments/lastmodifiedversionnumbers"
                        ),
                        &version_filter(watermark),
                    )
                    .await?;
                Some(items.into_iter().map(|item| item.id).collect())
            }
            None => None,
        };

        let (employees, failed_employees) = self
            .list::<LoketEmployee>(
                &format!("{employer_path}/employees"),
                &[],
                "employee",
                &mut record_errors,
            )
            .await?;
        let (employments, failed_employments) = self
            .list::<LoketEmployment>(
                &format!("{employer_path}/employees/employments"),
                &[],
                "employment",
                &mut record_errors,
            )
            .await?;
        let (actual_organization, _) = self
            .list::<OrganizationalEntity>(
                &format!("{employer_path}/actualorganizationalentities"),
                &[],
                "organizational_entity",
                &mut record_errors,
            )
            .await?;
        let (actual_hours, _) = self
            .list::<WorkingHours>(
                &format!("{employer_path}/actualworkinghours"),
                &[],
                "working_hours",
                &mut record_errors,
            )
            .await?;
        let (departments, _) = self
            .list::<Department>(
                &format!("{employer_path}/departments"),
                &[],
                "department",
                &mut record_errors,
            )
            .await?;
        let (users, _) = self
            .list::<EmployerUser>(
                &format!("{employer_path}/users"),
                &[],
                "user",
                &mut record_errors,
            )
            .await?;
        let (user_departments, _) = self
            .list::<UserDepartments>(
                &format!("{employer_path}/users/departments"),
                &[],
                "user_departments",
                &mut record_errors,
            )
            .await?;

        let organization_by_employment: HashMap<String, OrganizationalEntity> = actual_organization
            .into_iter()
            .filter_map(|entity| Some((entity.employment.as_ref()?.id.clone()?, entity)))
            .collect();
        let hours_by_employment: HashMap<String, WorkingHours> = actual_hours
            .into_iter()
            .filter_map(|hours| Some((hours.employment.as_ref()?.id.clone()?, hours)))
            .collect();

        let mut present_employee_ids: HashSet<String> = employees
            .iter()
            .map(|employee| employee.id.clone())
            .collect();
        present_employee_ids.extend(failed_employees);
        let mut present_employment_ids: HashSet<String> = employments
            .iter()
            .map(|employment| employment.id.clone())
            .collect();
        present_employment_ids.extend(failed_employments);

        // Which employments need their full content this run.
        let end_date_of = |employment: &LoketEmployment| {
            parse_date("endDate", employment.end_date.as_deref())
                .ok()
                .flatten()
        };
        let is_listed_as_running = |id: &str| {
            organization_by_employment.contains_key(id) || hours_by_employment.contains_key(id)
        };
        // An actual slice that ends before the employment does has a successor entered ahead
        // (a change per next month): such an employment is read in full every run, histories
        // included, so the upcoming slice (and the manager of an upcoming department) is
        // published when entered.
        let has_successor = |employment: &LoketEmployment| {
            let employment_end = end_date_of(employment);
            let ends_early = |end: Option<&str>| {
                parse_date("endDate", end)
                    .ok()
                    .flatten()
                    .is_some_and(|end| employment_end.is_none_or(|last| end < last))
            };
            organization_by_employment
                .get(&employment.id)
                .is_some_and(|entity| ends_early(entity.end_date.as_deref()))
                || hours_by_employment
                    .get(&employment.id)
                    .is_some_and(|hours| ends_early(hours.end_date.as_deref()))
        };
        let mut content_employments: Vec<&LoketEmployment> = Vec::new();
        let mut employees_needing_content: HashSet<String> = HashSet::new();
        for employment in &employments {
            let employee_id = employment
                .employee
                .as_ref()
                .and_then(|employee| employee.id.clone());
            let known_state = request.snapshot.employments.get(&employment.id);
            let known = known_state.is_some();
            let changed = changed_employments
                .as_ref()
                .is_none_or(|changed| changed.contains(&employment.id));
            if changed && let Some(employee_id) = &employee_id {
                // A changed employment may stand for a changed employee (Loket counts
                // employee changes at employment level), even when the employment itself
                // is finished.
                employees_needing_content.insert(employee_id.clone());
            }
            // Already published with its end, and out of the running lists: final.
            let finished = known_state.is_some_and(|state| state.ended)
                && !is_listed_as_running(&employment.id)
                && end_date_of(employment).is_some();
            if finished {
                continue;
            }
            if changed || !known || has_successor(employment) {
                content_employments.push(employment);
            }
        }
        for employee in &employees {
            if changed_employments.is_none() || !request.snapshot.knows_employee(&employee.id) {
                employees_needing_content.insert(employee.id.clone());
            }
        }

        // Per-employment details, concurrently.
        let reference_for = |employment: &LoketEmployment| -> NaiveDate {
            match end_date_of(employment) {
                Some(end) if end < request.reference_date => end,
                _ => request.reference_date,
            }
        };
        // Owned job lists: the stream's closures then take no borrowed arguments, which keeps
        // the future `Send` (a known limit of higher-ranked lifetimes in async closures).
        let detail_jobs: Vec<(String, bool)> = content_employments
            .iter()
            .map(|employment| {
                let actual_is_enough =
                    is_listed_as_running(&employment.id) && !has_successor(employment);
                (employment.id.clone(), actual_is_enough)
            })
            .collect();
        let details: Vec<(String, Result<EmploymentDetails, SourceError>)> =
            futures::stream::iter(detail_jobs)
                .map(|(id, running)| async move {
                    let result = self.employment_details(&id, running).await;
                    (id, result)
                })
                .buffer_unordered(self.settings.max_concurrent_requests.max(1))
                .collect()
                .await;
        let mut details_by_employment = HashMap::with_capacity(details.len());
        for (id, result) in details {
            details_by_employment.insert(id, result?);
        }

        // BSNs, concurrently, for the employees whose content is needed.
        let bsn_forbidden = AtomicBool::new(!self.settings.read_citizen_service_numbers);
        let mut bsn_ids: Vec<String> = employees
            .iter()
            .map(|employee| employee.id.clone())
            .filter(|id| employees_needing_content.contains(id))
            .collect();
        bsn_ids.sort_unstable();
        let forbidden = &bsn_forbidden;
        let bsns: Vec<(String, Result<Option<String>, SourceError>)> =
            futures::stream::iter(bsn_ids)
                .map(|id| async move {
                    let result = self.citizen_service_number(&id, forbidden).await;
                    (id, result)
                })
                .buffer_unordered(self.settings.max_concurrent_requests.max(1))
                .collect()
                .await;
        let mut bsn_by_employee = HashMap::with_capacity(bsns.len());
        for (id, result) in bsns {
            if let Some(bsn) = result? {
                bsn_by_employee.insert(id, bsn);
            }
        }

        // The organisational entity chosen per employment: the running one from the
        // employer-wide list, else the one valid on the reference date from its own history.
        let organization_of = |employment: &LoketEmployment| -> Option<&OrganizationalEntity> {
            details_by_employment
                .get(&employment.id)
                .and_then(|details| details.organizational_entities.as_deref())
                .and_then(|history| in_force_or_upcoming(history, reference_for(employment)))
                .or_else(|| organization_by_employment.get(&employment.id))
        };

        // Managers, through the department-manager heuristic.
        let directory =
            ManagerDirectory::build(&departments, &users, &user_departments, &employees);
        let mut employments_by_employee: HashMap<&str, Vec<&LoketEmployment>> = HashMap::new();
        for employment in &employments {
            if let Some(employee_id) = employment.employee.as_ref().and_then(|e| e.id.as_deref()) {
                employments_by_employee
                    .entry(employee_id)
                    .or_default()
                    .push(employment);
            }
        }
        let manager_of = |employee_id: &str| -> Option<String> {
            // No employment listed (a user filter hides former employees): the manager
            // published last stands.
            let Some(own) = employments_by_employee.get(employee_id) else {
                return request
                    .snapshot
                    .employees
                    .get(employee_id)
                    .and_then(|state| state.manager_employee_id.clone());
            };
            let department_manager = |entity: &OrganizationalEntity| {
                let department = scalar_text(entity.department.as_ref()?.key.as_ref())?;
                directory.manager_of(&department, employee_id)
            };
            if let Some(entity) = own
                .iter()
                .filter(|employment| end_date_of(employment).is_none())
                .find_map(|employment| organization_of(employment))
            {
                return department_manager(entity);
            }
            // A leaver keeps the manager koppel published last: a later change of their old
            // department's manager is not a change of theirs. Observed at poll granularity:
            // the manager is frozen as of the last poll before the end was seen.
            match request.snapshot.employees.get(employee_id) {
                Some(state) => state.manager_employee_id.clone(),
                // First sight of someone who already left: their last department's manager.
                None => own
                    .iter()
                    .rev()
                    .find_map(|employment| organization_of(employment))
                    .and_then(department_manager),
            }
        };

        // Map. A record that fails is reported and stays "present" (never a removal).
        let mut mapped_employees: Vec<Employee> =
            Vec::with_capacity(employees_needing_content.len());
        let mut failed_employee_ids: HashSet<&str> = HashSet::new();
        for employee in &employees {
            if !employees_needing_content.contains(&employee.id) {
                continue;
            }
            let bsn = bsn_by_employee.get(&employee.id).map(String::as_str);
            match map_employee(employee, bsn, manager_of(&employee.id)) {
                Ok(mapped) => mapped_employees.push(mapped),
                Err(error) => {
                    failed_employee_ids.insert(employee.id.as_str());
                    record_errors.push(record_error("employee", &employee.id, error));
                }
            }
        }
        let mut mapped_employments: Vec<Employment> = Vec::with_capacity(content_employments.len());
        for employment in content_employments {
            let employee_id = employment.employee.as_ref().and_then(|e| e.id.as_deref());
            if employee_id.is_some_and(|id| failed_employee_ids.contains(id)) {
                // Its employee is rejected; publishing the employment would carry a broken
                // employee along. It waits for the employee to be fixed.
                continue;
            }
            let details = details_by_employment.get(&employment.id);
            let date = reference_for(employment);
            let hours = details
                .and_then(|details| details.working_hours.as_deref())
                .and_then(|history| in_force_or_upcoming(history, date))
                .or_else(|| hours_by_employment.get(&employment.id));
            let wage = details.and_then(|details| in_force_or_upcoming(&details.wages, date));
            let result: Result<Employment, MappingError> = map_employment(
                employment,
                organization_of(employment),
                hours,
                wage,
                &self.settings.mapping,
            );
            match result {
                Ok(mapped) => mapped_employments.push(mapped),
                Err(error) => record_errors.push(record_error("employment", &employment.id, error)),
            }
        }

        Ok(SourceFetch {
            kind: Some(kind),
            employer: Some(employer),
            employees: mapped_employees,
            employments: mapped_employments,
            present_employee_ids: Some(present_employee_ids),
            present_employment_ids: Some(present_employment_ids),
            record_errors,
            next_watermark: Some(employer_version.to_string()),
        })
    }

    async fn employment_details(
        &self,
        employment_id: &str,
        running: bool,
    ) -> Result<EmploymentDetails, SourceError> {
        let base = format!("{EMPLOYERS}/employees/employments/{employment_id}");
        let wages: Vec<Wage> =
            not_found_is_none(self.client.get_all(&format!("{base}/wages"), &[]).await)?
                .map(parse_all)
                .unwrap_or_default();
        if running {
            return Ok(EmploymentDetails {
                wages,
                ..EmploymentDetails::default()
            });
        }
        let organizational_entities = not_found_is_none(
            self.client
                .get_all(&format!("{base}/organizationalentities"), &[])
                .await,
        )?
        .map(parse_all);
        let working_hours = not_found_is_none(
            self.client
                .get_all(&format!("{base}/workinghours"), &[])
                .await,
        )?
        .map(parse_all);
        Ok(EmploymentDetails {
            wages,
            organizational_entities,
            working_hours,
        })
    }

    /// The BSN text of one employee, `None` when the user may not read BSNs (a 403 turns the
    /// reads off for the rest of the run) or the employee has none.
    async fn citizen_service_number(
        &self,
        employee_id: &str,
        forbidden: &AtomicBool,
    ) -> Result<Option<String>, SourceError> {
        if forbidden.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let path = format!("{EMPLOYERS}/employees/{employee_id}/citizenservicenumber");
        match self.client.get_content(&path).await {
            Ok(content) => Ok(serde_json::from_value::<CitizenServiceNumber>(content)
                .ok()
                .and_then(|content| scalar_text(content.citizen_service_number.as_ref()))),
            Err(SourceError::Http(HttpSourceError::Status { status: 403, .. })) => {
                if !forbidden.swap(true, Ordering::Relaxed) {
                    tracing::warn!(connection = %self.client.connection_id(), "The authorising Loket user may not read BSNs; events carry no BSN.");
                }
                Ok(None)
            }
            Err(SourceError::Http(HttpSourceError::Status { status: 404, .. })) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// Parses what parses; a history item that does not is skipped (the valid-on-date choice then
/// works on the rest).
fn parse_all<T: DeserializeOwned>(items: Vec<Value>) -> Vec<T> {
    items
        .into_iter()
        .filter_map(|item| serde_json::from_value(item).ok())
        .collect()
}
