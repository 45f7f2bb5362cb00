//! The mutation engine: advances simulated days and applies realistic daily changes.
//!
//! Rates are integers per 100,000 open employments (or departments) per day, so the engine
//! needs no floats: the expected count `rate * population / 100_000` is split into its whole
//! part and a remainder that becomes one more event with the matching probability.
//!
//! Every change gets its own world version, stamps the entities it touched and is appended to
//! the ground-truth log.

use chrono::{Datelike, Days, NaiveDate};
use rand::Rng;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::generate::{self, FIRST_ORDINARY_FUNCTION, Placement};
use super::names;
use super::{
    ChangeKind, CivilStatus, Employer, Employment, OrganizationalPeriod, WagePeriod,
    WorkingHoursPeriod, World, WorldChange, random_uuid,
};

/// How many changes of each kind happen per simulated day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutationRates {
    /// New employees per 100,000 open employments per day.
    pub hires_per_100k_per_day: u32,
    /// Employments given an end date per 100,000 open employments per day.
    pub leavers_per_100k_per_day: u32,
    pub department_changes_per_100k_per_day: u32,
    pub job_changes_per_100k_per_day: u32,
    pub hours_changes_per_100k_per_day: u32,
    pub salary_raises_per_100k_per_day: u32,
    /// Marriages (partner name and name usage set) per 100,000 open employments per day.
    pub marriages_per_100k_per_day: u32,
    /// Department manager replacements per 100,000 departments per day.
    pub manager_changes_per_100k_departments_per_day: u32,
}

impl MutationRates {
    /// Rates of a typical Dutch employer: about 15% yearly turnover, one raise a year, a few
    /// percent internal moves and marriages.
    pub fn realistic() -> Self {
        Self {
            hires_per_100k_per_day: 45,
            leavers_per_100k_per_day: 41,
            department_changes_per_100k_per_day: 14,
            job_changes_per_100k_per_day: 22,
            hours_changes_per_100k_per_day: 14,
            salary_raises_per_100k_per_day: 274,
            marriages_per_100k_per_day: 5,
            manager_changes_per_100k_departments_per_day: 27,
        }
    }

    /// Roughly thirty times the realistic rates, so a small test world sees every kind of change
    /// within a simulated month.
    pub fn busy() -> Self {
        Self {
            hires_per_100k_per_day: 1_200,
            leavers_per_100k_per_day: 1_000,
            department_changes_per_100k_per_day: 800,
            job_changes_per_100k_per_day: 800,
            hours_changes_per_100k_per_day: 800,
            salary_raises_per_100k_per_day: 2_000,
            marriages_per_100k_per_day: 600,
            manager_changes_per_100k_departments_per_day: 2_000,
        }
    }

    /// No changes at all; `advance_days` only moves the calendar.
    pub fn none() -> Self {
        Self {
            hires_per_100k_per_day: 0,
            leavers_per_100k_per_day: 0,
            department_changes_per_100k_per_day: 0,
            job_changes_per_100k_per_day: 0,
            hours_changes_per_100k_per_day: 0,
            salary_raises_per_100k_per_day: 0,
            marriages_per_100k_per_day: 0,
            manager_changes_per_100k_departments_per_day: 0,
        }
    }
}

/// Tries per random pick before giving up on a day's change: a pick can land on an ended
/// employment or a department manager, and a bounded retry keeps a day's cost predictable.
const PICK_ATTEMPTS: usize = 32;

/// Hours a changed contract may move to, in tenths of an hour.
const NEW_HOURS_IN_TENTHS: &[i64] = &[160, 200, 240, 280, 320, 360, 380, 400];

impl World {
    /// Advances the calendar by `days`, applying each day's changes to every employer, and
    /// returns the log entries those days produced.
    pub fn advance_days(&mut self, days: u32) -> &[WorldChange] {
        let first_new_entry = self.change_log.len();
        for _ in 0..days {
            self.today = self
                .today
                .checked_add_days(Days::new(1))
                .unwrap_or(self.today);
            for employer_index in 0..self.employers.len() {
                self.apply_one_day(employer_index);
            }
        }
        &self.change_log[first_new_entry..]
    }

    fn apply_one_day(&mut self, employer_index: usize) {
        let Some(employer) = self.employers.get(employer_index) else {
            return;
        };
        let open = employer
            .employments
            .iter()
            .filter(|employment| employment.is_open())
            .count();
        let departments = employer.departments.len();
        let rates = self.config.rates.clone();

        for _ in 0..self.draw_count(rates.hires_per_100k_per_day, open) {
            self.hire(employer_index);
        }
        for _ in 0..self.draw_count(rates.leavers_per_100k_per_day, open) {
            self.end_employment(employer_index);
        }
        for _ in 0..self.draw_count(rates.department_changes_per_100k_per_day, open) {
            self.change_department(employer_index);
        }
        for _ in 0..self.draw_count(rates.job_changes_per_100k_per_day, open) {
            self.change_job(employer_index);
        }
        for _ in 0..self.draw_count(rates.hours_changes_per_100k_per_day, open) {
            self.change_hours(employer_index);
        }
        for _ in 0..self.draw_count(rates.salary_raises_per_100k_per_day, open) {
            self.raise_salary(employer_index);
        }
        for _ in 0..self.draw_count(rates.marriages_per_100k_per_day, open) {
            self.marry(employer_index);
        }
        for _ in 0..self.draw_count(
            rates.manager_changes_per_100k_departments_per_day,
            departments,
        ) {
            self.change_department_manager(employer_index);
        }
    }

    /// How many events of one kind happen today for a population, given a rate per 100,000.
    fn draw_count(&mut self, rate_per_100k: u32, population: usize) -> u64 {
        let expected = u64::from(rate_per_100k) * u64::try_from(population).unwrap_or(u64::MAX);
        let whole = expected / 100_000;
        let remainder = expected % 100_000;
        whole + u64::from(self.random.random_range(0..100_000) < remainder)
    }

    fn hire(&mut self, employer_index: usize) {
        let Some(employer) = self.employers.get(employer_index) else {
            return;
        };
        let department_count = employer.departments.len().max(1);
        let department = self.random.random_range(0..department_count);
        let job_function = self
            .random
            .random_range(FIRST_ORDINARY_FUNCTION..names::JOB_FUNCTIONS.len());
        let age_in_days = self.random.random_range(18 * 365..60 * 365);
        let placement = Placement {
            department,
            job_function,
            start_date: self.today,
            age_in_days,
            may_have_earlier_employment: false,
        };
        let version = self.next_version();
        let (employee_id, employment_id) =
            generate::add_employee(self, employer_index, placement, version);
        let Some(employer) = self.employers.get_mut(employer_index) else {
            return;
        };
        let employer_id = employer.id;
        if let Some(employment) = employer.employments.last() {
            let manager = desired_manager(employer, employment);
            if let Some(employment) = employer.employments.last_mut() {
                employment.manager_employee_id = manager;
            }
        }
        self.log(
            ChangeKind::Hired,
            employer_id,
            Some(employee_id),
            Some(employment_id),
            None,
            Vec::new(),
        );
    }

    fn end_employment(&mut self, employer_index: usize) {
        let Some(employment_index) = self.pick_open_employment(employer_index, true) else {
            return;
        };
        // Notice periods mean the end date usually lies a few weeks ahead.
        let notice_days = self.random.random_range(0..=30);
        let end_date = self
            .today
            .checked_add_days(Days::new(notice_days))
            .unwrap_or(self.today);
        let reason = generate::pick(&mut self.random, names::END_OF_EMPLOYMENT_REASONS);
        let version = self.next_version();
        let Some(employer) = self.employers.get_mut(employer_index) else {
            return;
        };
        let Some(employment) = employer.employments.get_mut(employment_index) else {
            return;
        };
        employment.end_date = Some(end_date);
        employment.end_reason = Some(reason);
        let (employer_id, employee_id, employment_id) =
            (employer.id, employment.employee_id, employment.id);
        employer.touch_employment(employment_index, version);
        self.log_effective(
            ChangeKind::EmploymentEnded,
            end_date,
            employer_id,
            Some(employee_id),
            Some(employment_id),
            None,
            vec!["end_date", "end_reason"],
        );
    }

    fn change_department(&mut self, employer_index: usize) {
        let Some(employment_index) = self.pick_open_employment(employer_index, true) else {
            return;
        };
        let Some(employer) = self.employers.get(employer_index) else {
            return;
        };
        let Some(current) = employer
            .employments
            .get(employment_index)
            .map(|e| e.organization.department)
        else {
            return;
        };
        let department_count = employer.departments.len();
        if department_count < 2 {
            return;
        }
        // Any department but the current one, and never into the board (Directie, position 0).
        let mut new_department = self.random.random_range(1..department_count);
        if new_department == current {
            new_department = if new_department + 1 < department_count {
                new_department + 1
            } else {
                1
            };
        }
        if new_department == current {
            return;
        }
        self.replace_organization(employer_index, employment_index, |period| {
            period.department = new_department;
            period.cost_center = new_department;
        });
        self.log_employment_change(
            employer_index,
            employment_index,
            ChangeKind::DepartmentChanged,
            vec!["department", "cost_center"],
        );
        self.reconcile_managers(employer_index);
    }

    fn change_job(&mut self, employer_index: usize) {
        let Some(employment_index) = self.pick_open_employment(employer_index, true) else {
            return;
        };
        let Some(current) = self
            .employers
            .get(employer_index)
            .and_then(|employer| employer.employments.get(employment_index))
            .map(|employment| employment.organization.job_function)
        else {
            return;
        };
        let function_count = names::JOB_FUNCTIONS.len();
        let mut new_function = self
            .random
            .random_range(FIRST_ORDINARY_FUNCTION..function_count);
        if new_function == current {
            new_function = if new_function + 1 < function_count {
                new_function + 1
            } else {
                FIRST_ORDINARY_FUNCTION
            };
        }
        self.replace_organization(employer_index, employment_index, |period| {
            period.job_function = new_function;
        });
        self.log_employment_change(
            employer_index,
            employment_index,
            ChangeKind::JobChanged,
            vec!["job_title"],
        );
    }

    fn change_hours(&mut self, employer_index: usize) {
        let Some(employment_index) = self.pick_open_employment(employer_index, false) else {
            return;
        };
        let new_hours_pick = Decimal::new(generate::pick(&mut self.random, NEW_HOURS_IN_TENTHS), 1);
        let today = self.today;
        let Some(employer) = self.employers.get_mut(employer_index) else {
            return;
        };
        let full_time = employer.full_time_hours_per_week;
        let new_hours = new_hours_pick.min(full_time);
        let Some(employment) = employer.employments.get_mut(employment_index) else {
            return;
        };
        let old_hours = employment.working_hours.hours_per_week;
        if new_hours == old_hours || old_hours.is_zero() {
            return;
        }
        // Dutch salaries are pro rata: the monthly amount follows the contracted hours.
        let new_salary = generate::money(employment.wage.monthly_salary * new_hours / old_hours);
        let hours_id = random_uuid(&mut self.random);
        let wage_id = random_uuid(&mut self.random);
        replace_period(
            &mut employment.working_hours,
            &mut employment.working_hours_history,
            today,
            hours_id,
            |period: &mut WorkingHoursPeriod| {
                period.hours_per_week = new_hours;
                period.full_time_hours_per_week = full_time;
            },
        );
        replace_period(
            &mut employment.wage,
            &mut employment.wage_history,
            today,
            wage_id,
            |period: &mut WagePeriod| {
                period.monthly_salary = new_salary;
            },
        );
        self.log_employment_change(
            employer_index,
            employment_index,
            ChangeKind::HoursChanged,
            vec!["hours_per_week", "parttime_factor", "salary"],
        );
    }

    fn raise_salary(&mut self, employer_index: usize) {
        let Some(employment_index) = self.pick_open_employment(employer_index, false) else {
            return;
        };
        // Raises between 1.5% and 6%, in basis points.
        let raise = Decimal::new(self.random.random_range(150..=600), 4);
        let wage_id = random_uuid(&mut self.random);
        let today = self.today;
        let Some(employment) = self
            .employers
            .get_mut(employer_index)
            .and_then(|employer| employer.employments.get_mut(employment_index))
        else {
            return;
        };
        let new_salary = generate::money(employment.wage.monthly_salary * (Decimal::ONE + raise));
        replace_period(
            &mut employment.wage,
            &mut employment.wage_history,
            today,
            wage_id,
            |period: &mut WagePeriod| {
                period.monthly_salary = new_salary;
            },
        );
        self.log_employment_change(
            employer_index,
            employment_index,
            ChangeKind::SalaryChanged,
            vec!["salary"],
        );
    }

    fn marry(&mut self, employer_index: usize) {
        let today = self.today;
        let mut chosen = None;
        for _ in 0..PICK_ATTEMPTS {
            let Some(employment_index) = self.pick_open_employment(employer_index, false) else {
                return;
            };
            let Some(employer) = self.employers.get(employer_index) else {
                return;
            };
            let Some(employee_index) = employer
                .employments
                .get(employment_index)
                .map(|e| e.employee_index)
            else {
                return;
            };
            let old_enough = employer
                .employees
                .get(employee_index)
                .is_some_and(|employee| {
                    employee.civil_status == CivilStatus::Unmarried
                        && today.year() - employee.date_of_birth.year() >= 20
                });
            if old_enough {
                chosen = Some(employee_index);
                break;
            }
        }
        let Some(employee_index) = chosen else {
            return;
        };
        let usage = generate::random_name_usage(&mut self.random);
        let version = self.next_version();
        let Some(employer) = self.employers.get_mut(employer_index) else {
            return;
        };
        let Some(employee) = employer.employees.get_mut(employee_index) else {
            return;
        };
        let partner = generate::random_partner_name(&mut self.random, employee.last_name);
        let formatted_before = employee.formatted_name();
        let usage_before = employee.name_usage;
        employee.partner = Some(partner);
        employee.name_usage = usage;
        employee.civil_status = CivilStatus::Married;
        let mut changed_fields = Vec::with_capacity(4);
        if !partner.prefix.is_empty() {
            changed_fields.push("name.partner_prefix");
        }
        changed_fields.push("name.partner_last_name");
        if usage != usage_before {
            changed_fields.push("name.name_usage");
        }
        if employee.formatted_name() != formatted_before {
            changed_fields.push("name.formatted");
        }
        let (employer_id, employee_id) = (employer.id, employee.id);
        employer.touch_employee(employee_index, version);
        self.log_with_version(
            version,
            ChangeKind::NameChanged,
            today,
            employer_id,
            Some(employee_id),
            None,
            None,
            changed_fields,
        );
    }

    fn change_department_manager(&mut self, employer_index: usize) {
        let Some(employer) = self.employers.get(employer_index) else {
            return;
        };
        let department_count = employer.departments.len();
        if department_count == 0 {
            return;
        }
        let department_index = self.random.random_range(0..department_count);
        let Some(employer) = self.employers.get(employer_index) else {
            return;
        };
        let current_manager = employer
            .departments
            .get(department_index)
            .and_then(|d| d.manager_employee_id);
        let candidates: Vec<Uuid> = employer
            .employments
            .iter()
            .filter(|employment| {
                employment.is_open()
                    && employment.organization.department == department_index
                    && Some(employment.employee_id) != current_manager
                    && !is_department_manager(employer, employment.employee_id)
            })
            .map(|employment| employment.employee_id)
            .collect();
        if candidates.is_empty() {
            return;
        }
        let new_manager = generate::pick(&mut self.random, &candidates);
        let version = self.next_version();
        let today = self.today;
        let Some(employer) = self.employers.get_mut(employer_index) else {
            return;
        };
        let Some(department) = employer.departments.get_mut(department_index) else {
            return;
        };
        department.manager_employee_id = Some(new_manager);
        department.last_modified_version = version;
        let (employer_id, department_id) = (employer.id, department.id);
        employer.last_modified_version = version;
        self.log_with_version(
            version,
            ChangeKind::DepartmentManagerChanged,
            today,
            employer_id,
            None,
            None,
            Some(department_id),
            vec!["manager_employee_id"],
        );
        self.reconcile_managers(employer_index);
    }

    /// Gives every open employment of the employer the manager its department says it should
    /// have, logging one `ManagerChanged` per employment that moved.
    fn reconcile_managers(&mut self, employer_index: usize) {
        let Some(employer) = self.employers.get(employer_index) else {
            return;
        };
        let moves: Vec<(usize, Option<Uuid>)> = employer
            .employments
            .iter()
            .enumerate()
            .filter(|(_, employment)| employment.is_open())
            .filter_map(|(index, employment)| {
                let desired = desired_manager(employer, employment);
                (desired != employment.manager_employee_id).then_some((index, desired))
            })
            .collect();
        for (employment_index, manager) in moves {
            if let Some(employment) = self
                .employers
                .get_mut(employer_index)
                .and_then(|employer| employer.employments.get_mut(employment_index))
            {
                employment.manager_employee_id = manager;
            }
            self.log_employment_change(
                employer_index,
                employment_index,
                ChangeKind::ManagerChanged,
                vec!["manager_employee_id"],
            );
        }
    }

    /// Closes the current organizational period and opens a changed one today (or corrects
    /// today's period in place when it started today).
    fn replace_organization(
        &mut self,
        employer_index: usize,
        employment_index: usize,
        change: impl FnOnce(&mut OrganizationalPeriod),
    ) {
        let new_id = random_uuid(&mut self.random);
        let today = self.today;
        if let Some(employment) = self
            .employers
            .get_mut(employer_index)
            .and_then(|employer| employer.employments.get_mut(employment_index))
        {
            replace_period(
                &mut employment.organization,
                &mut employment.organization_history,
                today,
                new_id,
                change,
            );
        }
    }

    /// Picks a random open employment, optionally skipping department managers (whose leaving
    /// or moving would leave a department without a manager).
    fn pick_open_employment(
        &mut self,
        employer_index: usize,
        skip_managers: bool,
    ) -> Option<usize> {
        let employment_count = self.employers.get(employer_index)?.employments.len();
        if employment_count == 0 {
            return None;
        }
        for _ in 0..PICK_ATTEMPTS {
            let index = self.random.random_range(0..employment_count);
            let employer = self.employers.get(employer_index)?;
            let employment = employer.employments.get(index)?;
            if employment.is_open()
                && employment.start_date <= self.today
                && !(skip_managers && is_department_manager(employer, employment.employee_id))
            {
                return Some(index);
            }
        }
        None
    }

    /// Stamps an employment with a new version and logs a change to it effective today.
    fn log_employment_change(
        &mut self,
        employer_index: usize,
        employment_index: usize,
        kind: ChangeKind,
        changed_fields: Vec<&'static str>,
    ) {
        let version = self.next_version();
        let today = self.today;
        let Some(employer) = self.employers.get_mut(employer_index) else {
            return;
        };
        let Some(employment) = employer.employments.get(employment_index) else {
            return;
        };
        let (employer_id, employee_id, employment_id) =
            (employer.id, employment.employee_id, employment.id);
        employer.touch_employment(employment_index, version);
        self.log_with_version(
            version,
            kind,
            today,
            employer_id,
            Some(employee_id),
            Some(employment_id),
            None,
            changed_fields,
        );
    }

    fn log(
        &mut self,
        kind: ChangeKind,
        employer_id: Uuid,
        employee_id: Option<Uuid>,
        employment_id: Option<Uuid>,
        department_id: Option<Uuid>,
        changed_fields: Vec<&'static str>,
    ) {
        let version = self.version;
        let today = self.today;
        self.log_with_version(
            version,
            kind,
            today,
            employer_id,
            employee_id,
            employment_id,
            department_id,
            changed_fields,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn log_effective(
        &mut self,
        kind: ChangeKind,
        effective_date: NaiveDate,
        employer_id: Uuid,
        employee_id: Option<Uuid>,
        employment_id: Option<Uuid>,
        department_id: Option<Uuid>,
        changed_fields: Vec<&'static str>,
    ) {
        self.change_log.push(WorldChange {
            version: self.version,
            date: self.today,
            effective_date,
            kind,
            employer_id,
            employee_id,
            employment_id,
            department_id,
            changed_fields,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn log_with_version(
        &mut self,
        version: u64,
        kind: ChangeKind,
        effective_date: NaiveDate,
        employer_id: Uuid,
        employee_id: Option<Uuid>,
        employment_id: Option<Uuid>,
        department_id: Option<Uuid>,
        changed_fields: Vec<&'static str>,
    ) {
        self.change_log.push(WorldChange {
            version,
            date: self.today,
            effective_date,
            kind,
            employer_id,
            employee_id,
            employment_id,
            department_id,
            changed_fields,
        });
    }
}

/// A period-carrying record (organization, hours, wage) that can be closed and replaced.
trait Period: Clone {
    fn start_date(&self) -> NaiveDate;
    fn set_start(&mut self, id: Uuid, start_date: NaiveDate);
    fn close(&mut self, end_date: NaiveDate);
}

macro_rules! impl_period {
    ($type:ty) => {
        impl Period for $type {
            fn start_date(&self) -> NaiveDate {
                self.start_date
            }
            fn set_start(&mut self, id: Uuid, start_date: NaiveDate) {
                self.id = id;
                self.start_date = start_date;
                self.end_date = None;
            }
            fn close(&mut self, end_date: NaiveDate) {
                self.end_date = Some(end_date);
            }
        }
    };
}
impl_period!(OrganizationalPeriod);
impl_period!(WorkingHoursPeriod);
impl_period!(WagePeriod);

/// Applies `change` as of `today`: a period that started today is corrected in place (a second
/// change on one day), otherwise the current period is closed yesterday and a new one opens.
fn replace_period<P: Period>(
    current: &mut P,
    history: &mut Vec<P>,
    today: NaiveDate,
    new_id: Uuid,
    change: impl FnOnce(&mut P),
) {
    if current.start_date() >= today {
        change(current);
        return;
    }
    let mut closed = current.clone();
    closed.close(today.pred_opt().unwrap_or(today));
    history.push(closed);
    current.set_start(new_id, today);
    change(current);
}

/// Whether the employee manages any department of the employer.
fn is_department_manager(employer: &Employer, employee_id: Uuid) -> bool {
    employer
        .departments
        .iter()
        .any(|department| department.manager_employee_id == Some(employee_id))
}

/// The manager an employment should have: its department's manager, or, for the manager
/// itself, the first manager up the department tree who is someone else.
pub(super) fn desired_manager(employer: &Employer, employment: &Employment) -> Option<Uuid> {
    let mut department_index = Some(employment.organization.department);
    // The tree is shallow; the bound only guards against a cycle a future edit might add.
    for _ in 0..=employer.departments.len() {
        let department = employer.departments.get(department_index?)?;
        match department.manager_employee_id {
            Some(manager) if manager != employment.employee_id => return Some(manager),
            _ => department_index = department.parent_department,
        }
    }
    None
}
