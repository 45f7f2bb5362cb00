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

use crate::snapshot::Snapshot;
use chrono::NaiveDate;
use futures::StreamExt;
use koppel_events::{Employee, Employment, RecordError, SourceSystem, SyncKind};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::LoketSettings;
use super::client::LoketClient;
use super::mapping::{
    ManagerDirectory, MappingError, MappingSettings, in_force_or_upcoming, map_employee,
    map_employer, map_employment, parse_date,
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

/// What the change feed's first level says about one employer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EmployerVersion {
    /// Changed since the watermark (or a full sync): read it up to this version.
    Changed(u64),
    /// A delta whose employer is not in the answer: nothing changed.
    Unchanged,
    /// A full sync whose employer is not in the answer: the connection cannot see it.
    NotVisible,
}

/// Reads the employer's entry in the first level of the change feed.
fn employer_version(
    versions: &[VersionItem],
    employer_id: &str,
    watermark: Option<u64>,
) -> EmployerVersion {
    let version = versions
        .iter()
        .find(|item| item.id == employer_id)
        .map(|item| item.number().unwrap_or_default());
    match (version, watermark) {
        (Some(version), _) => EmployerVersion::Changed(version),
        (None, Some(_)) => EmployerVersion::Unchanged,
        (None, None) => EmployerVersion::NotVisible,
    }
}

/// The employer-wide lists of one run, indexed where the mapping looks things up.
#[derive(Debug, Default)]
struct EmployerLists {
    employees: Vec<LoketEmployee>,
    employments: Vec<LoketEmployment>,
    /// The running organisational entity per employment (`actualorganizationalentities`).
    organization_by_employment: HashMap<String, OrganizationalEntity>,
    /// The running working hours per employment (`actualworkinghours`).
    hours_by_employment: HashMap<String, WorkingHours>,
    departments: Vec<Department>,
    users: Vec<EmployerUser>,
    user_departments: Vec<UserDepartments>,
    /// Every listed id, including those whose record failed to parse: a bad record is never a
    /// removal.
    present_employee_ids: HashSet<String>,
    present_employment_ids: HashSet<String>,
}

impl EmployerLists {
    /// Indexes the lists as read; `failed_*` are the ids of records that did not parse.
    #[allow(clippy::too_many_arguments)]
    fn new(
        employees: Vec<LoketEmployee>,
        failed_employees: Vec<String>,
        employments: Vec<LoketEmployment>,
        failed_employments: Vec<String>,
        actual_organization: Vec<OrganizationalEntity>,
        actual_hours: Vec<WorkingHours>,
        departments: Vec<Department>,
        users: Vec<EmployerUser>,
        user_departments: Vec<UserDepartments>,
    ) -> Self {
        let organization_by_employment = actual_organization
            .into_iter()
            .filter_map(|entity| Some((entity.employment.as_ref()?.id.clone()?, entity)))
            .collect();
        let hours_by_employment = actual_hours
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
        EmployerLists {
            employees,
            employments,
            organization_by_employment,
            hours_by_employment,
            departments,
            users,
            user_departments,
            present_employee_ids,
            present_employment_ids,
        }
    }

    fn is_listed_as_running(&self, employment_id: &str) -> bool {
        self.organization_by_employment.contains_key(employment_id)
            || self.hours_by_employment.contains_key(employment_id)
    }

    /// Whether an actual slice ends before the employment does: a successor is entered ahead
    /// (a change per next month). Such an employment is read in full every run, histories
    /// included, so the upcoming slice (and the manager of an upcoming department) is published
    /// when entered.
    fn has_successor(&self, employment: &LoketEmployment) -> bool {
        let employment_end = end_date_of(employment);
        let ends_early = |end: Option<&str>| {
            parse_date("endDate", end)
                .ok()
                .flatten()
                .is_some_and(|end| employment_end.is_none_or(|last| end < last))
        };
        self.organization_by_employment
            .get(&employment.id)
            .is_some_and(|entity| ends_early(entity.end_date.as_deref()))
            || self
                .hours_by_employment
                .get(&employment.id)
                .is_some_and(|hours| ends_early(hours.end_date.as_deref()))
    }
}

/// The end date of an employment, if it has a readable one.
fn end_date_of(employment: &LoketEmployment) -> Option<NaiveDate> {
    parse_date("endDate", employment.end_date.as_deref())
        .ok()
        .flatten()
}

/// The day whose values an employment's content takes: its end date once it has ended,
/// otherwise the run's reference date.
fn reference_for(employment: &LoketEmployment, reference_date: NaiveDate) -> NaiveDate {
    match end_date_of(employment) {
        Some(end) if end < reference_date => end,
        _ => reference_date,
    }
}

/// Which entities need their full content this run (and so their per-entity calls).
#[derive(Debug, Default, PartialEq, Eq)]
struct ContentPlan {
    /// Employments to read details of and map: their positions in the employment list, in
    /// list order.
    employments: Vec<usize>,
    /// Employees to read the BSN of and map.
    employees: HashSet<String>,
}

/// Decides which entities need content. `changed_employments` is the delta's second level of
/// the change feed (`None` in a full sync: everything is changed). An employment already
/// published with its end and out of the running lists is final and skipped; a changed
/// employment also marks its employee (Loket counts employee changes at employment level);
/// an employee koppel does not know yet always needs content.
fn plan_content(
    lists: &EmployerLists,
    snapshot: &Snapshot,
    changed_employments: Option<&HashSet<String>>,
) -> ContentPlan {
    let mut plan = ContentPlan::default();
    for (index, employment) in lists.employments.iter().enumerate() {
        let employee_id = employment
            .employee
            .as_ref()
            .and_then(|employee| employee.id.clone());
        let known_state = snapshot.employments.get(&employment.id);
        let changed = changed_employments.is_none_or(|changed| changed.contains(&employment.id));
        if changed && let Some(employee_id) = employee_id {
            // Even when the employment itself is finished.
            plan.employees.insert(employee_id);
        }
        let running = lists.is_listed_as_running(&employment.id);
        let finished = known_state.is_some_and(|state| state.ended)
            && !running
            && end_date_of(employment).is_some();
        if finished {
            continue;
        }
        if changed || known_state.is_none() || lists.has_successor(employment) {
            plan.employments.push(index);
        }
    }
    for employee in &lists.employees {
        if changed_employments.is_none() || !snapshot.knows_employee(&employee.id) {
            plan.employees.insert(employee.id.clone());
        }
    }
    plan
}

/// Maps what was read into canonical entities: the organisational entity and hours valid on
/// each employment's reference date, the department-manager heuristic, and the rule that an
/// employment of a rejected employee waits for its employee.
struct EntityMapper<'a> {
    lists: &'a EmployerLists,
    details: &'a HashMap<String, EmploymentDetails>,
    snapshot: &'a Snapshot,
    reference_date: NaiveDate,
    directory: ManagerDirectory,
    employments_by_employee: HashMap<&'a str, Vec<&'a LoketEmployment>>,
}

impl<'a> EntityMapper<'a> {
    fn new(
        lists: &'a EmployerLists,
        details: &'a HashMap<String, EmploymentDetails>,
        snapshot: &'a Snapshot,
        reference_date: NaiveDate,
    ) -> Self {
        let directory = ManagerDirectory::build(
            &lists.departments,
            &lists.users,
            &lists.user_departments,
            &lists.employees,
        );
        let mut employments_by_employee: HashMap<&str, Vec<&LoketEmployment>> = HashMap::new();
        for employment in &lists.employments {
            if let Some(employee_id) = employment.employee.as_ref().and_then(|e| e.id.as_deref()) {
                employments_by_employee
                    .entry(employee_id)
                    .or_default()
                    .push(employment);
            }
        }
        EntityMapper {
            lists,
            details,
            snapshot,
            reference_date,
            directory,
            employments_by_employee,
        }
    }

    /// The organisational entity chosen for an employment: from its own history when read,
    /// the slice in force on the reference date or else the upcoming one; otherwise the running
    /// one from the employer-wide list.
    fn organization_of(&self, employment: &LoketEmployment) -> Option<&'a OrganizationalEntity> {
        let lists = self.lists;
        let details = self.details;
        let date = reference_for(employment, self.reference_date);
        details
            .get(&employment.id)
            .and_then(|details| details.organizational_entities.as_deref())
            .and_then(|history| in_force_or_upcoming(history, date))
            .or_else(|| lists.organization_by_employment.get(&employment.id))
    }

    /// The manager of an employee, through the department-manager heuristic.
    fn manager_of(&self, employee_id: &str) -> Option<String> {
        // No employment listed (a user filter hides former employees): the manager published
        // last stands.
        let Some(own) = self.employments_by_employee.get(employee_id) else {
            return self
                .snapshot
                .employees
                .get(employee_id)
                .and_then(|state| state.manager_employee_id.clone());
        };
        let department_manager = |entity: &OrganizationalEntity| {
            let department = scalar_text(entity.department.as_ref()?.key.as_ref())?;
            self.directory.manager_of(&department, employee_id)
        };
        if let Some(entity) = own
            .iter()
            .filter(|employment| end_date_of(employment).is_none())
            .find_map(|employment| self.organization_of(employment))
        {
            return department_manager(entity);
        }
        // A leaver keeps the manager koppel published last: a later change of their old
        // department's manager is not a change of theirs. Observed at poll granularity: the
        // manager is frozen as of the last poll before the end was seen.
        match self.snapshot.employees.get(employee_id) {
            Some(state) => state.manager_employee_id.clone(),
            // First sight of someone who already left: their last department's manager.
            None => own
                .iter()
                .rev()
                .find_map(|employment| self.organization_of(employment))
                .and_then(department_manager),
        }
    }

    /// Maps the planned entities. A record that fails is reported and stays "present" (never
    /// a removal).
    fn map(
        &self,
        plan: &ContentPlan,
        bsn_by_employee: &HashMap<String, String>,
        mapping: &MappingSettings,
        record_errors: &mut Vec<RecordError>,
    ) -> (Vec<Employee>, Vec<Employment>) {
        let mut employees: Vec<Employee> = Vec::with_capacity(plan.employees.len());
        let mut failed_employee_ids: HashSet<&str> = HashSet::new();
        for employee in &self.lists.employees {
            if !plan.employees.contains(&employee.id) {
                continue;
            }
            let bsn = bsn_by_employee.get(&employee.id).map(String::as_str);
            match map_employee(employee, bsn, self.manager_of(&employee.id)) {
                Ok(mapped) => employees.push(mapped),
                Err(error) => {
                    failed_employee_ids.insert(employee.id.as_str());
                    record_errors.push(record_error("employee", &employee.id, error));
                }
            }
        }
        let mut employments: Vec<Employment> = Vec::with_capacity(plan.employments.len());
        for employment in plan
            .employments
            .iter()
            .filter_map(|&index| self.lists.employments.get(index))
        {
            let employee_id = employment.employee.as_ref().and_then(|e| e.id.as_deref());
            if employee_id.is_some_and(|id| failed_employee_ids.contains(id)) {
                // Its employee is rejected; publishing the employment would carry a broken
                // employee along. It waits for the employee to be fixed.
                continue;
            }
            let details = self.details.get(&employment.id);
            let date = reference_for(employment, self.reference_date);
            let hours = details
                .and_then(|details| details.working_hours.as_deref())
                .and_then(|history| in_force_or_upcoming(history, date))
                .or_else(|| self.lists.hours_by_employment.get(&employment.id));
            let wage = details.and_then(|details| in_force_or_upcoming(&details.wages, date));
            let result: Result<Employment, MappingError> = map_employment(
                employment,
                self.organization_of(employment),
                hours,
                wage,
                mapping,
            );
            match result {
                Ok(mapped) => employments.push(mapped),
                Err(error) => record_errors.push(record_error("employment", &employment.id, error)),
            }
        }
        (employees, employments)
    }
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
            errors.push(record_error(entity_type, &id, reason));
            if !id.is_empty() {
                failed_ids.push(id);
            }
        }
        Ok((parsed, failed_ids))
    }

    /// One sync's reads, in order: the change feed, the employer, the employer-wide lists,
    /// the per-entity details the [`ContentPlan`] asks for; then the mapping.
    async fn fetch_employer(&self, request: FetchRequest<'_>) -> Result<SourceFetch, SourceError> {
        let employer_id = request.employer.source_employer_id.as_str();
        let not_visible = || SourceError::EmployerNotVisible {
            connection_id: self.client.connection_id().to_owned(),
            source_employer_id: employer_id.to_owned(),
        };
        let watermark = match &request.mode {
            FetchMode::Full => None,
            // An unreadable watermark (written by another source?) falls back to a full sync.
            FetchMode::Delta { watermark } => watermark.parse::<u64>().ok(),
        };
        let kind = if watermark.is_some() {
            SyncKind::Delta
        } else {
            SyncKind::Full
        };
        let filter = watermark.map(version_filter).unwrap_or_default();
        let (versions, _) = self
            .client
            .get_all_parsed::<VersionItem>(
                &format!("{EMPLOYERS}/lastmodifiedversionnumbers"),
                &filter,
            )
            .await?;
        let employer_version = match employer_version(&versions, employer_id, watermark) {
            EmployerVersion::Changed(version) => version,
            EmployerVersion::Unchanged => return Ok(SourceFetch::unchanged()),
            EmployerVersion::NotVisible => return Err(not_visible()),
        };

        let employer_path = format!("{EMPLOYERS}/{employer_id}");
        let employer_content = match self.client.get_content(&employer_path).await {
            Err(SourceError::Http(HttpSourceError::Status {
                status: 403 | 404, ..
            })) => return Err(not_visible()),
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

        let mut record_errors = Vec::new();
        let lists = self.read_lists(&employer_path, &mut record_errors).await?;
        let plan = plan_content(&lists, request.snapshot, changed_employments.as_ref());
        let details = self.read_employment_details(&lists, &plan).await?;
        let bsn_by_employee = self.read_citizen_service_numbers(&lists, &plan).await?;

        let mapper = EntityMapper::new(&lists, &details, request.snapshot, request.reference_date);
        let (employees, employments) = mapper.map(
            &plan,
            &bsn_by_employee,
            &self.settings.mapping,
            &mut record_errors,
        );
        Ok(SourceFetch {
            kind: Some(kind),
            employer: Some(employer),
            employees,
            employments,
            present_employee_ids: Some(lists.present_employee_ids),
            present_employment_ids: Some(lists.present_employment_ids),
            record_errors,
            next_watermark: Some(employer_version.to_string()),
        })
    }

    /// Reads the employer-wide lists; records that do not parse become record errors.
    async fn read_lists(
        &self,
        employer_path: &str,
        record_errors: &mut Vec<RecordError>,
    ) -> Result<EmployerLists, SourceError> {
        let (employees, failed_employees) = self
            .list::<LoketEmployee>(
                &format!("{employer_path}/employees"),
                &[],
                "employee",
                record_errors,
            )
            .await?;
        let (employments, failed_employments) = self
            .list::<LoketEmployment>(
                &format!("{employer_path}/employees/employments"),
                &[],
                "employment",
                record_errors,
            )
            .await?;
        let (actual_organization, _) = self
            .list::<OrganizationalEntity>(
                &format!("{employer_path}/actualorganizationalentities"),
                &[],
                "organizational_entity",
                record_errors,
            )
            .await?;
        let (actual_hours, _) = self
            .list::<WorkingHours>(
                &format!("{employer_path}/actualworkinghours"),
                &[],
                "working_hours",
                record_errors,
            )
            .await?;
        let (departments, _) = self
            .list::<Department>(
                &format!("{employer_path}/departments"),
                &[],
                "department",
                record_errors,
            )
            .await?;
        let (users, _) = self
            .list::<EmployerUser>(
                &format!("{employer_path}/users"),
                &[],
                "user",
                record_errors,
            )
            .await?;
        let (user_departments, _) = self
            .list::<UserDepartments>(
                &format!("{employer_path}/users/departments"),
                &[],
                "user_departments",
                record_errors,
            )
            .await?;
        Ok(EmployerLists::new(
            employees,
            failed_employees,
            employments,
            failed_employments,
            actual_organization,
            actual_hours,
            departments,
            users,
            user_departments,
        ))
    }

    /// Per-employment details of the planned employments, concurrently.
    async fn read_employment_details(
        &self,
        lists: &EmployerLists,
        plan: &ContentPlan,
    ) -> Result<HashMap<String, EmploymentDetails>, SourceError> {
        // Owned job lists: the stream's closures then take no borrowed arguments, which keeps
        // the future `Send` (a known limit of higher-ranked lifetimes in async closures).
        // Each with whether it is listed as running (then only its wages are read).
        let jobs: Vec<(String, bool)> = plan
            .employments
            .iter()
            .filter_map(|&index| lists.employments.get(index))
            .map(|employment| {
                // Only wages are read when the actual lists hold the current slices and no
                // successor is entered ahead.
                let actual_is_enough =
                    lists.is_listed_as_running(&employment.id) && !lists.has_successor(employment);
                (employment.id.clone(), actual_is_enough)
            })
            .collect();
        let details: Vec<(String, Result<EmploymentDetails, SourceError>)> =
            futures::stream::iter(jobs)
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
        Ok(details_by_employment)
    }

    /// BSNs of the planned employees, concurrently.
    async fn read_citizen_service_numbers(
        &self,
        lists: &EmployerLists,
        plan: &ContentPlan,
    ) -> Result<HashMap<String, String>, SourceError> {
        let bsn_forbidden = AtomicBool::new(!self.settings.read_citizen_service_numbers);
        let mut bsn_ids: Vec<String> = lists
            .employees
            .iter()
            .map(|employee| employee.id.clone())
            .filter(|id| plan.employees.contains(id))
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
        Ok(bsn_by_employee)
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

#[cfg(test)]
mod tests {
    //! The pure steps of a Loket fetch: the change feed's verdict, the content plan and the
    //! mapping rules, without HTTP.

    use serde_json::json;

    use super::*;
    use crate::snapshot::EntityState;

    fn from_json<T: DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).unwrap()
    }

    fn version(id: &str, number: Option<u64>) -> VersionItem {
        from_json(json!({ "id": id, "lastModifiedVersionNumber": number }))
    }

    fn employee(id: &str) -> LoketEmployee {
        from_json(json!({ "id": id, "personalDetails": { "lastName": "Jansen" } }))
    }

    fn employment(id: &str, employee_id: &str, end_date: Option<&str>) -> LoketEmployment {
        from_json(json!({
            "id": id,
            "startDate": "2020-01-01",
            "endDate": end_date,
            "employee": { "id": employee_id },
        }))
    }

    fn running_hours(employment_id: &str) -> WorkingHours {
        from_json(json!({ "startDate": "2020-01-01", "employment": { "id": employment_id } }))
    }

    fn state(ended: bool) -> EntityState {
        EntityState {
            digest: "d".to_owned(),
            revision: 1,
            field_digests: Vec::new(),
            employee_id: None,
            start_date: None,
            ended,
            manager_employee_id: None,
        }
    }

    fn lists(
        employees: Vec<LoketEmployee>,
        employments: Vec<LoketEmployment>,
        hours: Vec<WorkingHours>,
    ) -> EmployerLists {
        EmployerLists::new(
            employees,
            Vec::new(),
            employments,
            Vec::new(),
            Vec::new(),
            hours,
            Vec::new(),
            Vec::new(),
            Vec::new(),
        )
    }

    fn ids(items: &[&str]) -> HashSet<String> {
        items.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn the_change_feed_verdict() {
        let versions = [version("other", Some(3)), version("acme", Some(7))];
        assert_eq!(
            employer_version(&versions, "acme", None),
            EmployerVersion::Changed(7)
        );
        assert_eq!(
            employer_version(&versions, "acme", Some(6)),
            EmployerVersion::Changed(7)
        );
        assert_eq!(
            employer_version(&versions, "gone", Some(6)),
            EmployerVersion::Unchanged
        );
        assert_eq!(
            employer_version(&versions, "gone", None),
            EmployerVersion::NotVisible
        );
        assert_eq!(
            employer_version(&[version("acme", None)], "acme", None),
            EmployerVersion::Changed(0),
            "an entry without a number still means the employer is there"
        );
    }

    #[test]
    fn records_that_failed_to_parse_stay_present() {
        let lists = EmployerLists::new(
            vec![employee("a")],
            vec!["broken-employee".to_owned()],
            vec![employment("e1", "a", None)],
            vec!["broken-employment".to_owned()],
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        assert_eq!(lists.present_employee_ids, ids(&["a", "broken-employee"]));
        assert_eq!(
            lists.present_employment_ids,
            ids(&["e1", "broken-employment"])
        );
    }

    #[test]
    fn a_full_sync_reads_everything_except_finished_employments() {
        let lists = lists(
            vec![employee("a"), employee("b")],
            vec![
                employment("running", "a", None),
                employment("finished", "b", Some("2021-01-01")),
                employment("new", "b", None),
            ],
            vec![running_hours("running")],
        );
        let mut snapshot = Snapshot::empty("acme");
        snapshot
            .employments
            .insert("finished".to_owned(), state(true));
        snapshot
            .employments
            .insert("running".to_owned(), state(false));
        let plan = plan_content(&lists, &snapshot, None);
        assert_eq!(plan.employments, vec![0, 2]);
        assert_eq!(plan.employees, ids(&["a", "b"]));
    }

    #[test]
    fn an_ended_employment_still_listed_as_running_is_not_final() {
        let lists = lists(
            vec![employee("a")],
            vec![employment("ending", "a", Some("2021-01-01"))],
            vec![running_hours("ending")],
        );
        let mut snapshot = Snapshot::empty("acme");
        snapshot
            .employments
            .insert("ending".to_owned(), state(true));
        assert_eq!(plan_content(&lists, &snapshot, None).employments, vec![0]);
    }

    #[test]
    fn a_delta_reads_changed_and_unknown_entities_only() {
        let lists = lists(
            vec![employee("a"), employee("b"), employee("c")],
            vec![
                employment("changed", "a", None),
                employment("unchanged", "c", None),
                employment("new-unlisted", "b", None),
                employment("finished-changed", "c", Some("2021-01-01")),
            ],
            Vec::new(),
        );
        let mut snapshot = Snapshot::empty("acme");
        for id in ["a", "c"] {
            snapshot.employees.insert(id.to_owned(), state(false));
        }
        snapshot
            .employments
            .insert("changed".to_owned(), state(false));
        snapshot
            .employments
            .insert("unchanged".to_owned(), state(false));
        snapshot
            .employments
            .insert("finished-changed".to_owned(), state(true));
        let changed = ids(&["changed", "finished-changed"]);
        let plan = plan_content(&lists, &snapshot, Some(&changed));
        // The unchanged known employment is skipped; a new one is read even though the
        // change feed does not name it; a finished one is not re-read.
        assert_eq!(plan.employments, vec![0, 2]);
        // a: its employment changed; b: unknown; c: its finished employment changed.
        assert_eq!(plan.employees, ids(&["a", "b", "c"]));
    }

    #[test]
    fn an_employment_of_a_rejected_employee_waits_for_its_employee() {
        let rejected: LoketEmployee = from_json(json!({ "id": "bad" }));
        let lists = lists(
            vec![employee("a"), rejected],
            vec![
                employment("e-a", "a", None),
                employment("e-bad", "bad", None),
            ],
            Vec::new(),
        );
        let snapshot = Snapshot::empty("acme");
        let plan = plan_content(&lists, &snapshot, None);
        let details = HashMap::new();
        let reference_date = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let mapper = EntityMapper::new(&lists, &details, &snapshot, reference_date);
        let mut record_errors = Vec::new();
        let (employees, employments) = mapper.map(
            &plan,
            &HashMap::new(),
            &MappingSettings::default(),
            &mut record_errors,
        );
        assert_eq!(
            employees
                .iter()
                .map(|e| e.employee_id.as_str())
                .collect::<Vec<_>>(),
            vec!["a"]
        );
        let employment_ids: Vec<&str> = employments
            .iter()
            .map(|e| e.employment_id.as_str())
            .collect();
        assert!(!employment_ids.contains(&"e-bad"), "{employment_ids:?}");
        assert_eq!(record_errors.len(), 1, "{record_errors:?}");
        assert_eq!(record_errors[0].entity_id, "bad");
    }

    #[test]
    fn a_leaver_keeps_the_manager_published_last() {
        let lists = lists(
            vec![employee("leaver")],
            vec![employment("e", "leaver", Some("2021-01-01"))],
            Vec::new(),
        );
        let mut snapshot = Snapshot::empty("acme");
        let mut known = state(false);
        known.manager_employee_id = Some("boss".to_owned());
        snapshot.employees.insert("leaver".to_owned(), known);
        let details = HashMap::new();
        let reference_date = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let mapper = EntityMapper::new(&lists, &details, &snapshot, reference_date);
        assert_eq!(mapper.manager_of("leaver").as_deref(), Some("boss"));
        assert_eq!(mapper.manager_of("stranger"), None);
    }
}
