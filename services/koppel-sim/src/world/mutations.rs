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

use super::generate::{self, FIRST_ORDINARY_FUNCTION, Placement, days_before};
use super::names;
use super::{
    ChangeKind, CivilStatus, Employer, Employment, NameUsage, OrganizationalPeriod, WagePeriod,
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
    /// Former employees hired again (a new employment, the next NumIV).
    pub rehires_per_100k_per_day: u32,
    /// Employees who take a second, on-call employment next to their job.
    pub second_employments_per_100k_per_day: u32,
    /// Start dates corrected, of employments that start soon or started recently.
    pub start_date_corrections_per_100k_per_day: u32,
    /// End dates moved, of dismissals that have not taken effect yet.
    pub end_date_corrections_per_100k_per_day: u32,
    /// Dismissals withdrawn before they took effect.
    pub reinstatements_per_100k_per_day: u32,
    pub divorces_per_100k_per_day: u32,
    /// Changes of place of work (standplaats).
    pub location_changes_per_100k_per_day: u32,
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
            rehires_per_100k_per_day: 3,
            second_employments_per_100k_per_day: 2,
            start_date_corrections_per_100k_per_day: 3,
            end_date_corrections_per_100k_per_day: 3,
            reinstatements_per_100k_per_day: 2,
            divorces_per_100k_per_day: 2,
            location_changes_per_100k_per_day: 4,
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
            rehires_per_100k_per_day: 300,
            second_employments_per_100k_per_day: 300,
            start_date_corrections_per_100k_per_day: 300,
            end_date_corrections_per_100k_per_day: 300,
            reinstatements_per_100k_per_day: 300,
            divorces_per_100k_per_day: 300,
            location_changes_per_100k_per_day: 400,
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
            rehires_per_100k_per_day: 0,
            second_employments_per_100k_per_day: 0,
            start_date_corrections_per_100k_per_day: 0,
            end_date_corrections_per_100k_per_day: 0,
            reinstatements_per_100k_per_day: 0,
            divorces_per_100k_per_day: 0,
            location_changes_per_100k_per_day: 0,
        }
    }

    /// Every rate multiplied by `factor` (a busier world for chaos runs).
    pub fn scaled(&self, factor: u32) -> Self {
        Self {
            hires_per_100k_per_day: self.hires_per_100k_per_day * factor,
            leavers_per_100k_per_day: self.leavers_per_100k_per_day * factor,
            department_changes_per_100k_per_day: self.department_changes_per_100k_per_day * factor,
            job_changes_per_100k_per_day: self.job_changes_per_100k_per_day * factor,
            hours_changes_per_100k_per_day: self.hours_changes_per_100k_per_day * factor,
            salary_raises_per_100k_per_day: self.salary_raises_per_100k_per_day * factor,
            marriages_per_100k_per_day: self.marriages_per_100k_per_day * factor,
            manager_changes_per_100k_departments_per_day: self
                .manager_changes_per_100k_departments_per_day
                * factor,
            rehires_per_100k_per_day: self.rehires_per_100k_per_day * factor,
            second_employments_per_100k_per_day: self.second_employments_per_100k_per_day * factor,
            start_date_corrections_per_100k_per_day: self.start_date_corrections_per_100k_per_day
                * factor,
            end_date_corrections_per_100k_per_day: self.end_date_corrections_per_100k_per_day
                * factor,
            reinstatements_per_100k_per_day: self.reinstatements_per_100k_per_day * factor,
            divorces_per_100k_per_day: self.divorces_per_100k_per_day * factor,
            location_changes_per_100k_per_day: self.location_changes_per_100k_per_day * factor,
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
            self.day_start_version = self.version;
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
        for _ in 0..self.draw_count(rates.rehires_per_100k_per_day, open) {
            self.rehire(employer_index);
        }
        for _ in 0..self.draw_count(rates.second_employments_per_100k_per_day, open) {
            self.start_second_employment(employer_index);
        }
        for _ in 0..self.draw_count(rates.start_date_corrections_per_100k_per_day, open) {
            self.correct_start_date(employer_index);
        }
        for _ in 0..self.draw_count(rates.end_date_corrections_per_100k_per_day, open) {
            self.correct_end_date(employer_index);
        }
        for _ in 0..self.draw_count(rates.reinstatements_per_100k_per_day, open) {
            self.reinstate(employer_index);
        }
        for _ in 0..self.draw_count(rates.divorces_per_100k_per_day, open) {
            self.divorce(employer_index);
        }
        for _ in 0..self.draw_count(rates.location_changes_per_100k_per_day, open) {
            self.change_location(employer_index);
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
        // Most hires are entered two to six weeks before the first working day; some on the
        // day itself.
        let lead_days = if self.random.random_range(0..100) < 75 {
            self.random.random_range(14..=42)
        } else {
            0
        };
        let start_date = days_after(self.today, lead_days);
        let placement = Placement {
            department,
            job_function,
            start_date,
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
        self.log_effective(
            ChangeKind::Hired,
            start_date,
            employer_id,
            Some(employee_id),
            Some(employment_id),
            None,
            Vec::new(),
        );
    }

    /// A former employee (every employment ended) comes back with a new employment and the
    /// next NumIV, starting one to four weeks from today.
    fn rehire(&mut self, employer_index: usize) {
        let today = self.today;
        let Some(employer) = self.employers.get(employer_index) else {
            return;
        };
        let former: Vec<usize> = (0..employer.employees.len())
            .filter(|employee_index| {
                let mut own = employer
                    .employments
                    .iter()
                    .filter(|employment| employment.employee_index == *employee_index)
                    .peekable();
                own.peek().is_some()
                    && own.all(|employment| employment.end_date.is_some_and(|end| end < today))
            })
            .collect();
        if former.is_empty() {
            return;
        }
        let employee_index = generate::pick(&mut self.random, &former);
        let next_number = next_income_relationship_number(employer, employee_index);
        let department = self
            .random
            .random_range(1..employer.departments.len().max(2));
        let job_function = self
            .random
            .random_range(FIRST_ORDINARY_FUNCTION..names::JOB_FUNCTIONS.len());
        let start_date = days_after(today, self.random.random_range(7..=28));
        let placement = Placement {
            department: department.min(employer.departments.len().saturating_sub(1)),
            job_function,
            start_date,
            age_in_days: 0,
            may_have_earlier_employment: false,
        };
        self.add_further_employment(
            employer_index,
            employee_index,
            next_number,
            placement,
            generate::Contract::Drawn,
            ChangeKind::Rehired,
        );
    }

    /// An employee with one running job takes an on-call contract next to it: a concurrent
    /// employment with its own NumIV.
    fn start_second_employment(&mut self, employer_index: usize) {
        let Some(employment_index) = self.pick_open_employment(employer_index, true) else {
            return;
        };
        let today = self.today;
        let Some(employer) = self.employers.get(employer_index) else {
            return;
        };
        let Some(employment) = employer.employments.get(employment_index) else {
            return;
        };
        let employee_index = employment.employee_index;
        let open_jobs = employer
            .employments
            .iter()
            .filter(|other| other.employee_index == employee_index && other.is_open())
            .count();
        if open_jobs > 1 || employment.on_call {
            return;
        }
        let next_number = next_income_relationship_number(employer, employee_index);
        let placement = Placement {
            department: employment.organization.department,
            job_function: employment.organization.job_function,
            start_date: days_after(today, self.random.random_range(0..=14)),
            age_in_days: 0,
            may_have_earlier_employment: false,
        };
        self.add_further_employment(
            employer_index,
            employee_index,
            next_number,
            placement,
            generate::Contract::OnCall,
            ChangeKind::SecondEmploymentStarted,
        );
    }

    fn add_further_employment(
        &mut self,
        employer_index: usize,
        employee_index: usize,
        income_relationship_number: u32,
        placement: Placement,
        contract: generate::Contract,
        kind: ChangeKind,
    ) {
        let manager_before = self.employee_manager_of(employer_index, employee_index);
        let version = self.next_version();
        let Some(employment_id) = generate::add_employment(
            self,
            employer_index,
            employee_index,
            income_relationship_number,
            placement,
            contract,
            version,
        ) else {
            return;
        };
        let Some(employer) = self.employers.get_mut(employer_index) else {
            return;
        };
        let employer_id = employer.id;
        let employee_id = employer.employees.get(employee_index).map(|e| e.id);
        if let Some(employment) = employer.employments.last() {
            let manager = desired_manager(employer, employment);
            if let Some(employment) = employer.employments.last_mut() {
                employment.manager_employee_id = manager;
            }
        }
        employer.touch_employment(employer.employments.len().saturating_sub(1), version);
        self.log_effective(
            kind,
            placement.start_date,
            employer_id,
            employee_id,
            Some(employment_id),
            None,
            Vec::new(),
        );
        self.log_main_employment_manager_change(employer_index, employee_index, manager_before);
    }

    /// Moves the start date of an employment that starts soon or started in the last weeks
    /// (and has had no other change since), as payroll's start-date correction does: the
    /// first slices move with it.
    fn correct_start_date(&mut self, employer_index: usize) {
        let today = self.today;
        let Some(employer) = self.employers.get(employer_index) else {
            return;
        };
        let candidates: Vec<usize> = employer
            .employments
            .iter()
            .enumerate()
            .filter(|(_, employment)| {
                employment.is_open()
                    && employment.start_date > days_before(today, 42)
                    && employment.organization_history.is_empty()
                    && employment.working_hours_history.is_empty()
                    && employment.wage_history.is_empty()
            })
            .map(|(index, _)| index)
            .collect();
        if candidates.is_empty() {
            return;
        }
        let employment_index = generate::pick(&mut self.random, &candidates);
        let shift = self.random.random_range(1..=14);
        let Some(employment) = self
            .employers
            .get(employer_index)
            .and_then(|employer| employer.employments.get(employment_index))
        else {
            return;
        };
        // A future start may move either way (but stays in the future); a past one was
        // entered too late and moves earlier.
        let new_start = if employment.start_date > today && self.random.random_range(0..2) == 0 {
            days_after(employment.start_date, shift)
        } else {
            days_before(employment.start_date, shift)
        };
        let new_start = if employment.start_date > today {
            new_start.max(days_after(today, 1))
        } else {
            new_start
        };
        if new_start == employment.start_date {
            return;
        }
        if let Some(employment) = self
            .employers
            .get_mut(employer_index)
            .and_then(|employer| employer.employments.get_mut(employment_index))
        {
            employment.start_date = new_start;
            employment.organization.start_date = new_start;
            employment.working_hours.start_date = new_start;
            employment.wage.start_date = new_start;
        }
        self.log_employment_change(
            employer_index,
            employment_index,
            ChangeKind::StartDateCorrected,
            new_start,
            vec!["start_date"],
        );
    }

    /// Moves the end date of a dismissal that has not taken effect yet.
    fn correct_end_date(&mut self, employer_index: usize) {
        let today = self.today;
        let Some(employment_index) = self.pick_pending_end(employer_index) else {
            return;
        };
        let shift = self.random.random_range(1..=21);
        let later = self.random.random_range(0..2) == 0;
        let Some(employment) = self
            .employers
            .get_mut(employer_index)
            .and_then(|employer| employer.employments.get_mut(employment_index))
        else {
            return;
        };
        let Some(end) = employment.end_date else {
            return;
        };
        // An earlier end never cuts off a slice already entered (payroll would refuse it).
        let latest_slice_start = employment
            .organization
            .start_date
            .max(employment.working_hours.start_date)
            .max(employment.wage.start_date);
        let new_end = if later {
            days_after(end, shift)
        } else {
            days_before(end, shift)
                .max(today)
                .max(employment.start_date)
                .max(latest_slice_start)
        };
        if new_end == end {
            return;
        }
        employment.end_date = Some(new_end);
        self.log_employment_change(
            employer_index,
            employment_index,
            ChangeKind::EndDateCorrected,
            new_end,
            vec!["end_date"],
        );
    }

    /// Withdraws a dismissal before it takes effect (payroll's reinstate): end date and
    /// reason are removed. No source dates a withdrawal, so it holds from the day entered.
    fn reinstate(&mut self, employer_index: usize) {
        let Some(employment_index) = self.pick_pending_end(employer_index) else {
            return;
        };
        let Some(employee_index) = self
            .employers
            .get(employer_index)
            .and_then(|employer| employer.employments.get(employment_index))
            .map(|employment| employment.employee_index)
        else {
            return;
        };
        let manager_before = self.employee_manager_of(employer_index, employee_index);
        let Some(employment) = self
            .employers
            .get_mut(employer_index)
            .and_then(|employer| employer.employments.get_mut(employment_index))
        else {
            return;
        };
        if employment.end_date.take().is_none() {
            return;
        }
        employment.end_reason = None;
        let today = self.today;
        self.log_employment_change(
            employer_index,
            employment_index,
            ChangeKind::Reinstated,
            today,
            vec!["end_date", "end_reason"],
        );
        // A reinstated job is a running one again; its manager follows its department now.
        self.reconcile_managers(employer_index);
        self.log_main_employment_manager_change(employer_index, employee_index, manager_before);
    }

    /// An employment whose end date lies after today (a dismissal still to take effect).
    fn pick_pending_end(&mut self, employer_index: usize) -> Option<usize> {
        let today = self.today;
        let employer = self.employers.get(employer_index)?;
        let candidates: Vec<usize> = employer
            .employments
            .iter()
            .enumerate()
            .filter(|(_, employment)| {
                employment.end_date.is_some_and(|end| end > today) && employment.start_date <= today
            })
            .map(|(index, _)| index)
            .collect();
        if candidates.is_empty() {
            return None;
        }
        Some(generate::pick(&mut self.random, &candidates))
    }

    /// A divorce: the partner name goes, the name usage returns to the own name.
    fn divorce(&mut self, employer_index: usize) {
        let day_start_version = self.day_start_version;
        let Some(employer) = self.employers.get(employer_index) else {
            return;
        };
        let married: Vec<usize> = employer
            .employees
            .iter()
            .enumerate()
            .filter(|(index, employee)| {
                // Nobody divorces on the day their name changed (a wedding the same day would
                // undo itself, which no source can show).
                employee.partner.is_some()
                    && employee.civil_status == CivilStatus::Married
                    && employee.last_modified_version <= day_start_version
                    && employer.employments.iter().any(|employment| {
                        employment.employee_index == *index && employment.is_open()
                    })
            })
            .map(|(index, _)| index)
            .collect();
        if married.is_empty() {
            return;
        }
        let employee_index = generate::pick(&mut self.random, &married);
        self.change_name(
            employer_index,
            employee_index,
            ChangeKind::Divorced,
            |employee| {
                employee.partner = None;
                employee.name_usage = NameUsage::Own;
                employee.civil_status = CivilStatus::Divorced;
            },
        );
    }

    /// Applies a change to an employee's name, stamps the employee and logs `kind` with the
    /// name parts that differ afterwards (`name.partner_prefix`, `name.partner_last_name`,
    /// `name.name_usage`, `name.formatted`).
    fn change_name(
        &mut self,
        employer_index: usize,
        employee_index: usize,
        kind: ChangeKind,
        change: impl FnOnce(&mut super::Employee),
    ) {
        let version = self.next_version();
        let today = self.today;
        let Some(employer) = self.employers.get_mut(employer_index) else {
            return;
        };
        let Some(employee) = employer.employees.get_mut(employee_index) else {
            return;
        };
        let before = employee.clone();
        change(employee);
        let prefix = |employee: &super::Employee| {
            employee
                .partner
                .map(|partner| partner.prefix)
                .filter(|prefix| !prefix.is_empty())
        };
        let partner_last_name =
            |employee: &super::Employee| employee.partner.map(|partner| partner.last_name);
        let mut changed_fields = Vec::with_capacity(4);
        if prefix(&before) != prefix(employee) {
            changed_fields.push("name.partner_prefix");
        }
        if partner_last_name(&before) != partner_last_name(employee) {
            changed_fields.push("name.partner_last_name");
        }
        if before.name_usage != employee.name_usage {
            changed_fields.push("name.name_usage");
        }
        if before.formatted_name() != employee.formatted_name() {
            changed_fields.push("name.formatted");
        }
        let (employer_id, employee_id) = (employer.id, employee.id);
        employer.touch_employee(employee_index, version);
        self.log_with_version(
            version,
            kind,
            today,
            employer_id,
            Some(employee_id),
            None,
            None,
            changed_fields,
        );
    }

    /// A move to another place of work, mostly per the first of next month.
    fn change_location(&mut self, employer_index: usize) {
        let Some(employment_index) = self.pick_open_employment(employer_index, false) else {
            return;
        };
        let current = self
            .employers
            .get(employer_index)
            .and_then(|employer| employer.employments.get(employment_index))
            .map(|employment| employment.organization.location);
        let location = generate::pick(&mut self.random, names::CITIES);
        if current.is_none() || current == Some(location) {
            return;
        }
        let wanted = self.per_today_or_next_month(70);
        let effective =
            self.replace_organization(employer_index, employment_index, wanted, |period| {
                period.location = location;
            });
        self.log_employment_change(
            employer_index,
            employment_index,
            ChangeKind::LocationChanged,
            effective,
            vec!["location"],
        );
    }

    /// Today, or with `next_month_percent` chance the first day of next month (a change
    /// entered ahead "per 1 <month>").
    fn per_today_or_next_month(&mut self, next_month_percent: u32) -> NaiveDate {
        if self.random.random_range(0..100) < next_month_percent {
            first_of_next_month(self.today)
        } else {
            self.today
        }
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
        let Some(employee_index) = self
            .employers
            .get(employer_index)
            .and_then(|employer| employer.employments.get(employment_index))
            .map(|employment| employment.employee_index)
        else {
            return;
        };
        let manager_before = self.employee_manager_of(employer_index, employee_index);
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
        self.log_main_employment_manager_change(employer_index, employee_index, manager_before);
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
        // Moves are entered on the day or per the first of next month; the manager follows
        // the latest department entered.
        let wanted = self.per_today_or_next_month(30);
        let effective =
            self.replace_organization(employer_index, employment_index, wanted, |period| {
                period.department = new_department;
                period.cost_center = new_department;
            });
        self.log_employment_change(
            employer_index,
            employment_index,
            ChangeKind::DepartmentChanged,
            effective,
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
        let wanted = self.per_today_or_next_month(40);
        let effective =
            self.replace_organization(employer_index, employment_index, wanted, |period| {
                period.job_function = new_function;
            });
        self.log_employment_change(
            employer_index,
            employment_index,
            ChangeKind::JobChanged,
            effective,
            vec!["job_title"],
        );
    }

    fn change_hours(&mut self, employer_index: usize) {
        let Some(employment_index) = self.pick_open_employment(employer_index, false) else {
            return;
        };
        let new_hours_pick = Decimal::new(generate::pick(&mut self.random, NEW_HOURS_IN_TENTHS), 1);
        // Half of all hours changes are agreed per the first of next month.
        let wanted = self.per_today_or_next_month(50);
        let hours_id = random_uuid(&mut self.random);
        let wage_id = random_uuid(&mut self.random);
        let Some(employer) = self.employers.get_mut(employer_index) else {
            return;
        };
        let full_time = employer.full_time_hours_per_week;
        let new_hours = new_hours_pick.min(full_time);
        let Some(employment) = employer.employments.get_mut(employment_index) else {
            return;
        };
        let old_hours = employment.working_hours.hours_per_week;
        if new_hours == old_hours || old_hours.is_zero() || employment.on_call {
            return;
        }
        // Salary and hours change together, from one date.
        let effective = slice_date(employment.working_hours.start_date, wanted)
            .max(slice_date(employment.wage.start_date, wanted));
        replace_period(
            &mut employment.working_hours,
            &mut employment.working_hours_history,
            effective,
            hours_id,
            |period: &mut WorkingHoursPeriod| {
                period.hours_per_week = new_hours;
                period.full_time_hours_per_week = full_time;
            },
        );
        let mut changed_fields = vec!["hours_per_week", "parttime_factor"];
        // Dutch salaries are pro rata: the amount per period follows the contracted hours.
        // An hourly wage stays what it is.
        let new_salary = match employment.wage.hourly_rate {
            Some(rate) => generate::monthly_from_hourly(rate, new_hours),
            None => {
                changed_fields.push("salary");
                generate::money(employment.wage.monthly_salary * new_hours / old_hours)
            }
        };
        replace_period(
            &mut employment.wage,
            &mut employment.wage_history,
            effective,
            wage_id,
            |period: &mut WagePeriod| {
                period.monthly_salary = new_salary;
            },
        );
        self.log_employment_change(
            employer_index,
            employment_index,
            ChangeKind::HoursChanged,
            effective,
            changed_fields,
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
        // Four in ten raises are entered after they took effect: per the first of this month,
        // or, early in a month, per the first of the previous one (across a month boundary).
        let wanted = if self.random.random_range(0..100) < 40 {
            let first_of_month = today.with_day(1).unwrap_or(today);
            if today.day() <= 10 {
                first_of_previous_month(today)
            } else {
                first_of_month
            }
        } else {
            today
        };
        let Some(employment) = self
            .employers
            .get_mut(employer_index)
            .and_then(|employer| employer.employments.get_mut(employment_index))
        else {
            return;
        };
        let effective = slice_date(employment.wage.start_date, wanted);
        let new_rate = employment
            .wage
            .hourly_rate
            .map(|rate| generate::money(rate * (Decimal::ONE + raise)));
        let hours = employment.working_hours_on(effective).hours_per_week;
        let new_salary = match new_rate {
            Some(rate) => generate::monthly_from_hourly(rate, hours),
            None => generate::money(employment.wage.monthly_salary * (Decimal::ONE + raise)),
        };
        replace_period(
            &mut employment.wage,
            &mut employment.wage_history,
            effective,
            wage_id,
            |period: &mut WagePeriod| {
                period.monthly_salary = new_salary;
                period.hourly_rate = new_rate;
            },
        );
        self.log_employment_change(
            employer_index,
            employment_index,
            ChangeKind::SalaryChanged,
            effective,
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
        let Some(own_last_name) = self
            .employers
            .get(employer_index)
            .and_then(|employer| employer.employees.get(employee_index))
            .map(|employee| employee.last_name)
        else {
            return;
        };
        let partner = generate::random_partner_name(&mut self.random, own_last_name);
        self.change_name(
            employer_index,
            employee_index,
            ChangeKind::NameChanged,
            |employee| {
                employee.partner = Some(partner);
                employee.name_usage = usage;
                employee.civil_status = CivilStatus::Married;
            },
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
            let is_main = self.employers.get(employer_index).is_some_and(|employer| {
                employer
                    .employments
                    .get(employment_index)
                    .is_some_and(|employment| {
                        main_employment(employer, employment.employee_index)
                            == Some(employment_index)
                    })
            });
            let kind = if is_main {
                ChangeKind::ManagerChanged
            } else {
                ChangeKind::SecondaryEmploymentManagerChanged
            };
            let today = self.today;
            self.log_employment_change(
                employer_index,
                employment_index,
                kind,
                today,
                vec!["manager_employee_id"],
            );
        }
    }

    /// The employee's manager as the canonical model keeps it, before a change that can move
    /// which employment is the main one.
    fn employee_manager_of(&self, employer_index: usize, employee_index: usize) -> Option<Uuid> {
        self.employers
            .get(employer_index)
            .and_then(|employer| employee_manager(employer, employee_index))
    }

    /// Logs a `ManagerChanged` when ending, reinstating or adding an employment changed which
    /// employment is the main one, and with it the employee's manager.
    fn log_main_employment_manager_change(
        &mut self,
        employer_index: usize,
        employee_index: usize,
        before: Option<Uuid>,
    ) {
        let Some(employer) = self.employers.get(employer_index) else {
            return;
        };
        if employee_manager(employer, employee_index) == before {
            return;
        }
        let Some(main) = main_employment(employer, employee_index) else {
            return;
        };
        let today = self.today;
        self.log_employment_change(
            employer_index,
            main,
            ChangeKind::ManagerChanged,
            today,
            vec!["manager_employee_id"],
        );
    }

    /// Closes the current organizational period and opens a changed one from `wanted` (or
    /// corrects the latest period in place when it starts on or after that day). Returns the
    /// day the change holds from.
    fn replace_organization(
        &mut self,
        employer_index: usize,
        employment_index: usize,
        wanted: NaiveDate,
        change: impl FnOnce(&mut OrganizationalPeriod),
    ) -> NaiveDate {
        let new_id = random_uuid(&mut self.random);
        let Some(employment) = self
            .employers
            .get_mut(employer_index)
            .and_then(|employer| employer.employments.get_mut(employment_index))
        else {
            return wanted;
        };
        let effective = slice_date(employment.organization.start_date, wanted);
        replace_period(
            &mut employment.organization,
            &mut employment.organization_history,
            effective,
            new_id,
            change,
        );
        effective
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

    /// Stamps an employment with a new version and logs a change to it that holds from
    /// `effective_date`.
    fn log_employment_change(
        &mut self,
        employer_index: usize,
        employment_index: usize,
        kind: ChangeKind,
        effective_date: NaiveDate,
        changed_fields: Vec<&'static str>,
    ) {
        let version = self.next_version();
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
            effective_date,
            employer_id,
            Some(employee_id),
            Some(employment_id),
            None,
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
pub(super) trait Period: Clone {
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

/// Applies `change` from `effective`: a latest period that starts on or after that day is
/// corrected in place (a second change to one slice), otherwise the latest period is closed
/// the day before and a new one opens, as payroll slices (Loket's `startDate`/`endDate`) do.
fn replace_period<P: Period>(
    current: &mut P,
    history: &mut Vec<P>,
    effective: NaiveDate,
    new_id: Uuid,
    change: impl FnOnce(&mut P),
) {
    if current.start_date() >= effective {
        change(current);
        return;
    }
    let mut closed = current.clone();
    closed.close(effective.pred_opt().unwrap_or(effective));
    history.push(closed);
    current.set_start(new_id, effective);
    change(current);
}

/// The day a change wanted from `wanted` can hold from on a slice list whose latest slice
/// starts on `latest_start`: never before that slice (a retroactive change cannot reach
/// behind a later slice without rewriting it), so at least the day it starts.
fn slice_date(latest_start: NaiveDate, wanted: NaiveDate) -> NaiveDate {
    wanted.max(latest_start)
}

fn days_after(date: NaiveDate, days: u64) -> NaiveDate {
    date.checked_add_days(Days::new(days)).unwrap_or(date)
}

fn first_of_next_month(date: NaiveDate) -> NaiveDate {
    let (year, month) = if date.month() == 12 {
        (date.year() + 1, 1)
    } else {
        (date.year(), date.month() + 1)
    };
    NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(date)
}

fn first_of_previous_month(date: NaiveDate) -> NaiveDate {
    let (year, month) = if date.month() == 1 {
        (date.year() - 1, 12)
    } else {
        (date.year(), date.month() - 1)
    };
    NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(date)
}

/// The NumIV a new employment of this employee gets: one above every number it had, so a
/// number is never reused.
fn next_income_relationship_number(employer: &Employer, employee_index: usize) -> u32 {
    employer
        .employments
        .iter()
        .filter(|employment| employment.employee_index == employee_index)
        .map(|employment| employment.income_relationship_number)
        .max()
        .unwrap_or(0)
        + 1
}

/// The employee's main employment: the running one (no end date) with the lowest NumIV.
fn main_employment(employer: &Employer, employee_index: usize) -> Option<usize> {
    employer
        .employments
        .iter()
        .enumerate()
        .filter(|(_, employment)| {
            employment.employee_index == employee_index && employment.end_date.is_none()
        })
        .min_by_key(|(_, employment)| employment.income_relationship_number)
        .map(|(index, _)| index)
}

/// The employee's manager in the canonical model: that of the main employment, or for a
/// leaver that of the latest employment (frozen when it ended).
pub(super) fn employee_manager(employer: &Employer, employee_index: usize) -> Option<Uuid> {
    let index = main_employment(employer, employee_index).or_else(|| {
        employer
            .employments
            .iter()
            .enumerate()
            .filter(|(_, employment)| employment.employee_index == employee_index)
            .max_by_key(|(_, employment)| employment.start_date)
            .map(|(index, _)| index)
    })?;
    employer.employments.get(index)?.manager_employee_id
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
