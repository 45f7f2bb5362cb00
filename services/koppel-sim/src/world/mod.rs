//! The simulated payroll world and the mutation engine that records ground truth.
//!
//! The world is source-neutral: it knows employers, employees, employments, departments, job
//! functions and cost centers, never a source's JSON. Each source simulator (Loket today, Unit4
//! later) renders the same world in its own shapes, so one world can back several simulators and
//! a test can compare what koppel emitted with [`World::change_log`] one to one.
//!
//! Everything is deterministic from [`WorldConfig::seed`]: the same seed and the same calls give
//! the same ids, names, numbers and mutations. Entity ids are UUIDs drawn from the seeded
//! generator, so they look like Loket's ids but repeat across runs.
//!
//! Every mutation bumps [`World::version`] by one and stamps the touched entities with it; a
//! source's change feed (Loket's `lastModifiedVersionNumber`) is derived from those stamps.
//!
//! # Layout
//! - `names`: static name, company and place lists.
//! - `identifiers`: BSN and loonheffingennummer generation with the 11-proef.
//! - `generate`: builds the initial population.
//! - `mutations`: `advance_days` and the daily hires, leavers and changes.

mod generate;
pub mod identifiers;
mod mutations;
pub(crate) mod names;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::NaiveDate;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rust_decimal::Decimal;
use uuid::Uuid;

pub use mutations::MutationRates;

/// A world shared between simulators and the test or demo that drives it.
///
/// Simulators take a read lock per request and never hold it across an `.await`; the driver takes
/// the write lock to advance days or inject faults.
pub type SharedWorld = Arc<RwLock<World>>;

/// How big the world is and how fast it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldConfig {
    /// Seed of every random draw; the same seed gives the same world.
    pub seed: u64,
    /// Number of employers to generate.
    pub employer_count: usize,
    /// Number of employees (each with one current employment) per employer at the start.
    pub employees_per_employer: usize,
    /// The simulated "today" when the world is created.
    pub start_date: NaiveDate,
    /// Daily mutation rates used by [`World::advance_days`].
    pub rates: MutationRates,
}

impl WorldConfig {
    /// A small world with realistic rates, starting on 2025-01-06 (a Monday).
    pub fn new(seed: u64, employer_count: usize, employees_per_employer: usize) -> Self {
        Self {
            seed,
            employer_count,
            employees_per_employer,
            start_date: NaiveDate::from_ymd_opt(2025, 1, 6).unwrap_or_default(),
            rates: MutationRates::realistic(),
        }
    }

    /// The same configuration with different mutation rates.
    pub fn with_rates(mut self, rates: MutationRates) -> Self {
        self.rates = rates;
        self
    }
}

/// The whole simulated payroll world.
#[derive(Debug)]
pub struct World {
    config: WorldConfig,
    random: SmallRng,
    today: NaiveDate,
    version: u64,
    employers: Vec<Employer>,
    /// Where each entity id lives, so simulators answer by-id requests without scanning.
    locations: HashMap<Uuid, EntityLocation>,
    /// Every BSN handed out, so no two employees share one.
    issued_citizen_service_numbers: std::collections::HashSet<u32>,
    change_log: Vec<WorldChange>,
    /// The version when the current simulated day began, to tell today's changes apart.
    day_start_version: u64,
}

/// Where an id points to inside [`World`]; indices are positions in the owning vectors, which
/// only ever grow, so a location stays valid for the life of the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityLocation {
    Employer { employer: usize },
    Employee { employer: usize, employee: usize },
    Employment { employer: usize, employment: usize },
    Department { employer: usize, department: usize },
}

/// An employer (werkgever) with everything that belongs to it.
#[derive(Debug, Clone)]
pub struct Employer {
    pub id: Uuid,
    /// The employer number a payroll provider shows (Loket's `employerNumber`).
    pub employer_number: u32,
    pub company_name: String,
    /// Loonheffingennummer, `123456789L01`; the nine digits pass the 11-proef.
    pub payroll_tax_number: String,
    /// KvK number, eight digits.
    pub chamber_of_commerce_number: String,
    /// Domain of work e-mail addresses, for example `vandijkbouw.nl`.
    pub email_domain: String,
    pub address: Address,
    /// Full-time hours per week of this employer's collective agreement (36, 38 or 40).
    pub full_time_hours_per_week: Decimal,
    /// The pay period of the employer's payroll administration (loontijdvak): salaries are
    /// stated and paid per month, per four weeks or per week.
    pub pay_period: PayPeriod,
    pub departments: Vec<Department>,
    pub job_functions: Vec<JobFunction>,
    pub cost_centers: Vec<CostCenter>,
    pub employees: Vec<Employee>,
    pub employments: Vec<Employment>,
    /// World version of the last change to this employer or anything under it.
    pub last_modified_version: u64,
    /// Fault knob: simulators serve this employer's employee and employment lists as empty
    /// while it is set, as a source that loses its data by mistake would.
    pub serves_empty_employee_list: bool,
    next_employee_number: u32,
}

/// The pay period (loontijdvak) of a payroll administration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayPeriod {
    Month,
    FourWeeks,
    Week,
}

impl PayPeriod {
    /// Periods per year: 12, 13 or 52.
    pub fn periods_per_year(self) -> Decimal {
        match self {
            PayPeriod::Month => Decimal::from(12),
            PayPeriod::FourWeeks => Decimal::from(13),
            PayPeriod::Week => Decimal::from(52),
        }
    }

    /// The gross amount per period for a month-equivalent salary (a yearly salary / 12),
    /// rounded to cents the way a payslip shows it.
    pub fn amount_per_period(self, monthly_salary: Decimal) -> Decimal {
        generate::money(monthly_salary * Decimal::from(12) / self.periods_per_year())
    }
}

/// A department with its manager.
#[derive(Debug, Clone)]
pub struct Department {
    pub id: Uuid,
    /// Small integer code, unique within the employer.
    pub code: u32,
    pub name: &'static str,
    /// The department above this one; `None` for the top (Directie).
    pub parent_department: Option<usize>,
    /// The employee who manages this department.
    pub manager_employee_id: Option<Uuid>,
    pub last_modified_version: u64,
}

/// A job function (functie).
#[derive(Debug, Clone)]
pub struct JobFunction {
    pub id: Uuid,
    pub title: &'static str,
    /// Function group (functiegroep), for example `7B`.
    pub group: &'static str,
    /// Full-time monthly base salary of the function, in euros.
    pub full_time_monthly_base_salary: Decimal,
}

/// A cost center (kostenplaats); the world keeps one per department.
#[derive(Debug, Clone)]
pub struct CostCenter {
    pub id: Uuid,
    pub code: u32,
    pub name: String,
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub street: &'static str,
    pub house_number: u32,
    /// Dutch postal code, `1234AB`.
    pub postal_code: String,
    pub city: &'static str,
}

/// Gender as payroll systems record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Male,
    Female,
    Unknown,
}

/// Civil status; only what the mutation engine changes is modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CivilStatus {
    Unmarried,
    Married,
    Divorced,
}

/// How an employee's last name is formed from their own and their partner's (naamgebruik).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameUsage {
    /// Own last name only.
    Own,
    /// Partner's last name only.
    Partner,
    /// Partner's last name, a hyphen, own last name.
    PartnerOwn,
    /// Own last name, a hyphen, partner's last name.
    OwnPartner,
}

impl NameUsage {
    /// The canonical model's spelling (`own`, `partner`, `partner-own`, `own-partner`).
    pub fn canonical_name(self) -> &'static str {
        match self {
            NameUsage::Own => "own",
            NameUsage::Partner => "partner",
            NameUsage::PartnerOwn => "partner-own",
            NameUsage::OwnPartner => "own-partner",
        }
    }
}

/// A partner's last name with its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartnerName {
    /// Tussenvoegsel; empty when the name has none.
    pub prefix: &'static str,
    pub last_name: &'static str,
}

/// A defect injected into a record on purpose, so tests can check that koppel quarantines bad
/// source data instead of publishing it. Simulators render the defect in their own format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordMalformation {
    /// The BSN is served with a check digit that fails the 11-proef.
    CitizenServiceNumberFailsElevenProef,
    /// The mandatory last name is left out of the record.
    MissingLastName,
    /// The date of birth is served as a value that is not a date.
    InvalidDateOfBirth,
}

/// A person employed (now or before) by one employer.
#[derive(Debug, Clone)]
pub struct Employee {
    pub id: Uuid,
    /// Personnel number (personeelsnummer), unique within the employer.
    pub employee_number: u32,
    pub first_name: &'static str,
    /// Initials with dots, for example `S.L.`.
    pub initials: String,
    /// Tussenvoegsel of the own last name; empty when the name has none.
    pub prefix: &'static str,
    pub last_name: &'static str,
    pub partner: Option<PartnerName>,
    pub name_usage: NameUsage,
    pub date_of_birth: NaiveDate,
    pub place_of_birth: &'static str,
    pub gender: Gender,
    pub civil_status: CivilStatus,
    /// BSN as nine digits in a number; it passes the 11-proef. See
    /// [`Employee::served_citizen_service_number`] for what a simulator should serve.
    pub citizen_service_number: u32,
    pub private_email: String,
    pub work_email: String,
    pub mobile_phone_number: String,
    pub address: Address,
    /// A defect a simulator must serve for this record, if a test injected one.
    pub malformation: Option<RecordMalformation>,
    pub last_modified_version: u64,
}

impl Employee {
    /// The BSN as nine digits, broken on purpose when a test injected that malformation.
    pub fn served_citizen_service_number(&self) -> String {
        match self.malformation {
            Some(RecordMalformation::CitizenServiceNumberFailsElevenProef) => {
                identifiers::format_nine_digits(identifiers::break_eleven_proef(
                    self.citizen_service_number,
                ))
            }
            _ => identifiers::format_nine_digits(self.citizen_service_number),
        }
    }

    /// The last name as used, with prefixes, per [`NameUsage`]: "van Bergen",
    /// "van de Wiel-van Bergen", and so on.
    pub fn last_name_in_use(&self) -> String {
        let own = join_prefix(self.prefix, self.last_name);
        let Some(partner) = self.partner else {
            return own;
        };
        let partner_full = join_prefix(partner.prefix, partner.last_name);
        match self.name_usage {
            NameUsage::Own => own,
            NameUsage::Partner => partner_full,
            NameUsage::PartnerOwn => format!("{partner_full}-{own}"),
            NameUsage::OwnPartner => format!("{own}-{partner_full}"),
        }
    }

    /// The name as a letter would address the person: initials and last name in use.
    pub fn formatted_name(&self) -> String {
        format!("{} {}", self.initials, self.last_name_in_use())
    }
}

/// Joins a tussenvoegsel and a last name with a space, or returns the last name alone.
pub fn join_prefix(prefix: &str, last_name: &str) -> String {
    if prefix.is_empty() {
        last_name.to_owned()
    } else {
        format!("{prefix} {last_name}")
    }
}

/// Whether an employment is for an indefinite or a fixed term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractDuration {
    Indefinite,
    Definite,
}

/// One employment (dienstverband) of an employee with the employer.
#[derive(Debug, Clone)]
pub struct Employment {
    pub id: Uuid,
    pub employee_id: Uuid,
    /// Position of the employee in [`Employer::employees`].
    pub employee_index: usize,
    /// Inkomstenverhouding number (NumIV): 1 for a first employment, 2 for a second one.
    pub income_relationship_number: u32,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub end_reason: Option<&'static str>,
    pub contract_duration: ContractDuration,
    /// An on-call (oproep, zero-hours) contract: no contracted hours, paid per hour worked.
    pub on_call: bool,
    /// The manager of this employment: its department's manager, or for a department manager
    /// the manager of the parent department.
    pub manager_employee_id: Option<Uuid>,
    /// The latest organizational placement entered; it may start after today (a change per
    /// next month), so use [`Employment::organization_on`] for the one in force on a day.
    pub organization: OrganizationalPeriod,
    /// Earlier, closed placements, oldest first.
    pub organization_history: Vec<OrganizationalPeriod>,
    pub working_hours: WorkingHoursPeriod,
    pub working_hours_history: Vec<WorkingHoursPeriod>,
    pub wage: WagePeriod,
    pub wage_history: Vec<WagePeriod>,
    /// World version of the last change to this employment or its employee.
    pub last_modified_version: u64,
}

impl Employment {
    /// Whether the employment runs on `date` (started, and not ended before it).
    pub fn is_active_on(&self, date: NaiveDate) -> bool {
        self.start_date <= date && self.end_date.is_none_or(|end| end >= date)
    }

    /// Whether the mutation engine may still change it: leavers keep their last state.
    fn is_open(&self) -> bool {
        self.end_date.is_none()
    }

    /// The organizational period in force on `date` (the earliest when `date` lies before
    /// every period, the latest when after).
    pub fn organization_on(&self, date: NaiveDate) -> &OrganizationalPeriod {
        period_on(&self.organization, &self.organization_history, date)
    }

    pub fn working_hours_on(&self, date: NaiveDate) -> &WorkingHoursPeriod {
        period_on(&self.working_hours, &self.working_hours_history, date)
    }

    pub fn wage_on(&self, date: NaiveDate) -> &WagePeriod {
        period_on(&self.wage, &self.wage_history, date)
    }
}

/// The period of a history (oldest first, then `current`) that holds on `date`.
fn period_on<'a, P: mutations::Period>(current: &'a P, history: &'a [P], date: NaiveDate) -> &'a P {
    if current.start_date() <= date {
        return current;
    }
    history
        .iter()
        .rev()
        .find(|period| period.start_date() <= date)
        .or_else(|| history.first())
        .unwrap_or(current)
}

/// A period of department, job function and cost center.
#[derive(Debug, Clone)]
pub struct OrganizationalPeriod {
    pub id: Uuid,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    /// Position in [`Employer::departments`].
    pub department: usize,
    /// Position in [`Employer::job_functions`].
    pub job_function: usize,
    /// Position in [`Employer::cost_centers`].
    pub cost_center: usize,
    /// Place of work (standplaats), a city.
    pub location: &'static str,
}

/// A period of contracted hours.
#[derive(Debug, Clone)]
pub struct WorkingHoursPeriod {
    pub id: Uuid,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    /// The employer's full-time week when the period started.
    pub full_time_hours_per_week: Decimal,
    /// The hours this employee works per week (equal to full time for a full-timer).
    pub hours_per_week: Decimal,
}

impl WorkingHoursPeriod {
    /// Part-time factor as a fraction of full time (1 for a full-timer), four decimals.
    pub fn part_time_factor(&self) -> Decimal {
        if self.full_time_hours_per_week.is_zero() {
            return Decimal::ZERO;
        }
        (self.hours_per_week / self.full_time_hours_per_week).round_dp(4)
    }
}

/// A period of monthly gross salary.
#[derive(Debug, Clone)]
pub struct WagePeriod {
    pub id: Uuid,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    /// Gross salary as a month equivalent (a twelfth of the yearly salary) in euros, scale 2.
    /// Simulators serve it per the employer's [`PayPeriod`]; an hourly-paid employment serves
    /// [`WagePeriod::hourly_rate`] instead.
    pub monthly_salary: Decimal,
    /// Gross hourly wage (uurloon) for an employment paid per hour, on-call contracts among
    /// them; `None` for a salary per pay period.
    pub hourly_rate: Option<Decimal>,
}

/// What kind of change a [`WorldChange`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// A new employee with a new employment (both ids set).
    Hired,
    /// An employment got an end date (and end reason).
    EmploymentEnded,
    /// An employment moved to another department (and its cost center).
    DepartmentChanged,
    /// An employment got another job function.
    JobChanged,
    /// An employment's contracted hours changed; the salary follows pro rata.
    HoursChanged,
    /// A salary raise.
    SalaryChanged,
    /// An employee married: partner name and name usage set.
    NameChanged,
    /// An employee's manager changed: the manager of their main employment (the running one
    /// with the lowest NumIV; for a leaver, the latest one, whose manager stays frozen).
    ManagerChanged,
    /// The manager of an employment other than the employee's main one changed (a second job
    /// in another department). The canonical model keeps one manager per employee, from the
    /// main employment, so no event follows from it.
    SecondaryEmploymentManagerChanged,
    /// A department got another manager (department id set, no employee or employment id).
    DepartmentManagerChanged,
    /// A test injected a defect into a record (not a real-world change; koppel should
    /// quarantine the record rather than emit an event for it).
    MalformationInjected,
    /// A former employee came back: a new employment with the next NumIV (never a reused
    /// one) for an existing employee.
    Rehired,
    /// An employee took a second, concurrent employment with the same employer (its own
    /// NumIV), for example an on-call contract next to a part-time job.
    SecondEmploymentStarted,
    /// The start date of an employment was corrected (payroll's PatchCorrectStartDate).
    StartDateCorrected,
    /// The end date of an ended employment was corrected.
    EndDateCorrected,
    /// A dismissal was withdrawn: the end date and reason were removed (PatchReinstate).
    Reinstated,
    /// A divorce: the partner name is removed and the name usage returns to the own name.
    Divorced,
    /// An employment's place of work (standplaats) changed.
    LocationChanged,
}

/// One entry of the ground-truth log: one change to one entity on one simulated day.
///
/// Entries are fine grained: a department move is logged as `DepartmentChanged` and, when the
/// new department has another manager, a separate `ManagerChanged`, each with its own version.
/// Several entries for one entity between two polls fold into the one change koppel observes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldChange {
    /// The world version this change created; strictly increasing through the log.
    pub version: u64,
    /// The simulated day the change was entered in payroll (when a source can first show it).
    pub date: NaiveDate,
    /// The day from which the change holds: the start date of a hire (often weeks after
    /// `date`), the end date of a leaver, the first day of a new slice for a salary, hours or
    /// organisational change (before `date` for a retroactive change, after it for one per
    /// next month), the corrected date for a correction, and `date` itself for changes a
    /// source keeps without a date (names, managers).
    pub effective_date: NaiveDate,
    pub kind: ChangeKind,
    pub employer_id: Uuid,
    pub employee_id: Option<Uuid>,
    pub employment_id: Option<Uuid>,
    pub department_id: Option<Uuid>,
    /// Canonical-model names of the fields that changed (`department`, `cost_center`,
    /// `job_title`, `hours_per_week`, `parttime_factor`, `salary`, `end_date`, `end_reason`,
    /// `manager_employee_id`, `name.partner_prefix`, `name.partner_last_name`,
    /// `name.name_usage`, `name.formatted`). Empty for `Hired`, which creates whole entities.
    pub changed_fields: Vec<&'static str>,
}

/// Why a control call on the world was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorldError {
    #[error("no employer with id {0}")]
    UnknownEmployer(Uuid),
    #[error("no employee with id {0}")]
    UnknownEmployee(Uuid),
}

impl World {
    /// Generates the initial world. Fast and lean enough for 20 employers of 5,000 employees.
    pub fn generate(config: WorldConfig) -> Self {
        let mut world = World {
            random: SmallRng::seed_from_u64(config.seed),
            today: config.start_date,
            version: 0,
            employers: Vec::with_capacity(config.employer_count),
            locations: HashMap::new(),
            issued_citizen_service_numbers: std::collections::HashSet::new(),
            change_log: Vec::new(),
            day_start_version: 0,
            config,
        };
        generate::populate(&mut world);
        world
    }

    /// Wraps the world for sharing with simulators.
    pub fn into_shared(self) -> SharedWorld {
        Arc::new(RwLock::new(self))
    }

    pub fn config(&self) -> &WorldConfig {
        &self.config
    }

    /// Changes the daily mutation rates from now on (a scenario that needs a busier world
    /// than the suite generates, such as the chaos suite).
    pub fn set_rates(&mut self, rates: MutationRates) {
        self.config.rates = rates;
    }

    /// The simulated current day.
    pub fn today(&self) -> NaiveDate {
        self.today
    }

    /// The world version counter: increases by one on every mutation, never decreases.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn employers(&self) -> &[Employer] {
        &self.employers
    }

    /// The ground-truth log of every mutation since the world was generated, oldest first.
    pub fn change_log(&self) -> &[WorldChange] {
        &self.change_log
    }

    /// The log entries with a version above `version`, for "what changed since I last looked".
    pub fn changes_since(&self, version: u64) -> &[WorldChange] {
        let first_newer = self
            .change_log
            .partition_point(|change| change.version <= version);
        &self.change_log[first_newer..]
    }

    /// Where an id lives, if it is known.
    pub fn locate(&self, id: Uuid) -> Option<EntityLocation> {
        self.locations.get(&id).copied()
    }

    pub fn employer(&self, id: Uuid) -> Option<&Employer> {
        match self.locate(id)? {
            EntityLocation::Employer { employer } => self.employers.get(employer),
            _ => None,
        }
    }

    /// The employee with this id and its employer.
    pub fn employee(&self, id: Uuid) -> Option<(&Employer, &Employee)> {
        match self.locate(id)? {
            EntityLocation::Employee { employer, employee } => {
                let employer = self.employers.get(employer)?;
                Some((employer, employer.employees.get(employee)?))
            }
            _ => None,
        }
    }

    /// The employment with this id and its employer.
    pub fn employment(&self, id: Uuid) -> Option<(&Employer, &Employment)> {
        match self.locate(id)? {
            EntityLocation::Employment {
                employer,
                employment,
            } => {
                let employer = self.employers.get(employer)?;
                Some((employer, employer.employments.get(employment)?))
            }
            _ => None,
        }
    }

    /// The department with this id and its employer.
    pub fn department(&self, id: Uuid) -> Option<(&Employer, &Department)> {
        match self.locate(id)? {
            EntityLocation::Department {
                employer,
                department,
            } => {
                let employer = self.employers.get(employer)?;
                Some((employer, employer.departments.get(department)?))
            }
            _ => None,
        }
    }

    /// Fault knob: make an employer's employee (and employment) lists come back empty from every
    /// simulator, or restore them. Not a world change, so the version does not move.
    pub fn set_serves_empty_employee_list(
        &mut self,
        employer_id: Uuid,
        empty: bool,
    ) -> Result<(), WorldError> {
        let employer_index = self.employer_index(employer_id)?;
        if let Some(employer) = self.employers.get_mut(employer_index) {
            employer.serves_empty_employee_list = empty;
        }
        Ok(())
    }

    /// Fault knob: serve an employee record with a defect. The change is logged as
    /// [`ChangeKind::MalformationInjected`] and bumps the version of the employee and its
    /// employments, so a delta poll sees the record again.
    pub fn inject_malformation(
        &mut self,
        employee_id: Uuid,
        malformation: RecordMalformation,
    ) -> Result<(), WorldError> {
        let Some(EntityLocation::Employee { employer, employee }) = self.locate(employee_id) else {
            return Err(WorldError::UnknownEmployee(employee_id));
        };
        let version = self.next_version();
        let today = self.today;
        let Some(employer_state) = self.employers.get_mut(employer) else {
            return Err(WorldError::UnknownEmployee(employee_id));
        };
        let employer_id = employer_state.id;
        if let Some(record) = employer_state.employees.get_mut(employee) {
            record.malformation = Some(malformation);
        }
        employer_state.touch_employee(employee, version);
        self.change_log.push(WorldChange {
            version,
            date: today,
            effective_date: today,
            kind: ChangeKind::MalformationInjected,
            employer_id,
            employee_id: Some(employee_id),
            employment_id: None,
            department_id: None,
            changed_fields: Vec::new(),
        });
        Ok(())
    }

    fn employer_index(&self, employer_id: Uuid) -> Result<usize, WorldError> {
        match self.locate(employer_id) {
            Some(EntityLocation::Employer { employer }) => Ok(employer),
            _ => Err(WorldError::UnknownEmployer(employer_id)),
        }
    }

    /// Hands out the next world version.
    fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }
}

impl Employer {
    /// Stamps an employee, every employment of it and the employer with `version`; Loket counts
    /// employee changes in the employment-level version number.
    fn touch_employee(&mut self, employee_index: usize, version: u64) {
        if let Some(employee) = self.employees.get_mut(employee_index) {
            employee.last_modified_version = version;
        }
        for employment in &mut self.employments {
            if employment.employee_index == employee_index {
                employment.last_modified_version = version;
            }
        }
        self.last_modified_version = version;
    }

    /// Stamps an employment and the employer with `version`.
    fn touch_employment(&mut self, employment_index: usize, version: u64) {
        if let Some(employment) = self.employments.get_mut(employment_index) {
            employment.last_modified_version = version;
        }
        self.last_modified_version = version;
    }

    /// The department at a position, if it exists.
    pub fn department_at(&self, index: usize) -> Option<&Department> {
        self.departments.get(index)
    }

    pub fn job_function_at(&self, index: usize) -> Option<&JobFunction> {
        self.job_functions.get(index)
    }

    pub fn cost_center_at(&self, index: usize) -> Option<&CostCenter> {
        self.cost_centers.get(index)
    }

    pub fn employee_at(&self, index: usize) -> Option<&Employee> {
        self.employees.get(index)
    }

    /// The manager the canonical model gives the employee at `employee_index`: that of their
    /// main employment (running, lowest NumIV), or for a leaver that of their latest one.
    pub fn manager_of_employee(&self, employee_index: usize) -> Option<Uuid> {
        mutations::employee_manager(self, employee_index)
    }
}

/// A version-4-shaped UUID from the seeded generator.
fn random_uuid(random: &mut SmallRng) -> Uuid {
    let bytes: [u8; 16] = rand::Rng::random(random);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use chrono::Datelike;

    use super::*;

    fn small_world(seed: u64) -> World {
        World::generate(WorldConfig::new(seed, 3, 20).with_rates(MutationRates::busy()))
    }

    /// A compact fingerprint of everything observable, to compare two worlds.
    fn fingerprint(world: &World) -> Vec<String> {
        let mut lines = Vec::new();
        for employer in world.employers() {
            lines.push(format!(
                "{} {} {} {} {}",
                employer.id,
                employer.company_name,
                employer.payroll_tax_number,
                employer.chamber_of_commerce_number,
                employer.last_modified_version
            ));
            for employee in &employer.employees {
                lines.push(format!(
                    "{} {} {} {} {:?} {}",
                    employee.id,
                    employee.formatted_name(),
                    employee.citizen_service_number,
                    employee.date_of_birth,
                    employee.partner,
                    employee.work_email
                ));
            }
            for employment in &employer.employments {
                lines.push(format!(
                    "{} {:?} {} {} {:?}",
                    employment.id,
                    employment.end_date,
                    employment.wage.monthly_salary,
                    employment.working_hours.hours_per_week,
                    employment.manager_employee_id
                ));
            }
        }
        lines.extend(
            world
                .change_log()
                .iter()
                .map(|change| format!("{change:?}")),
        );
        lines
    }

    #[test]
    fn same_seed_gives_the_same_world_and_mutations() {
        let mut first = small_world(42);
        let mut second = small_world(42);
        first.advance_days(30);
        second.advance_days(30);
        assert_eq!(fingerprint(&first), fingerprint(&second));
        let mut other = small_world(43);
        other.advance_days(30);
        assert_ne!(fingerprint(&first), fingerprint(&other));
    }

    #[test]
    fn generated_identifiers_are_valid_and_unique() {
        let world = World::generate(WorldConfig::new(7, 5, 200));
        let mut citizen_service_numbers = HashSet::new();
        let mut ids = HashSet::new();
        for employer in world.employers() {
            assert!(ids.insert(employer.id));
            let tax_number = &employer.payroll_tax_number;
            assert_eq!(tax_number.len(), 12, "{tax_number}");
            assert!(
                identifiers::passes_eleven_proef(&tax_number[..9]),
                "{tax_number}"
            );
            assert_eq!(&tax_number[9..10], "L");
            assert!(tax_number[10..].chars().all(|c| c.is_ascii_digit()));
            assert_eq!(employer.chamber_of_commerce_number.len(), 8);
            let mut employee_numbers = HashSet::new();
            for employee in &employer.employees {
                assert!(ids.insert(employee.id));
                assert!(employee_numbers.insert(employee.employee_number));
                let bsn = employee.served_citizen_service_number();
                assert!(identifiers::passes_eleven_proef(&bsn), "{bsn}");
                assert!(citizen_service_numbers.insert(bsn));
                assert!(!employee.initials.is_empty());
                assert!(employee.work_email.ends_with(&employer.email_domain));
            }
            for employment in &employer.employments {
                assert!(ids.insert(employment.id));
                assert_eq!(employment.wage.monthly_salary.scale(), 2);
                assert!(
                    employment.working_hours.hours_per_week <= employer.full_time_hours_per_week
                );
                assert!(employment.start_date <= world.today());
            }
        }
    }

    #[test]
    fn every_department_has_a_manager_from_its_own_employer() {
        let world = small_world(1);
        for employer in world.employers() {
            let own_employees: HashSet<Uuid> = employer
                .employees
                .iter()
                .map(|employee| employee.id)
                .collect();
            for department in &employer.departments {
                let manager = department.manager_employee_id;
                assert!(manager.is_some_and(|id| own_employees.contains(&id)));
            }
            for employment in employer.employments.iter().filter(|e| e.end_date.is_none()) {
                if let Some(manager) = employment.manager_employee_id {
                    assert!(own_employees.contains(&manager));
                    assert_ne!(manager, employment.employee_id);
                }
            }
        }
    }

    #[test]
    fn mutation_log_is_consistent_with_the_world() {
        let mut world = small_world(9);
        let version_before = world.version();
        let produced = world.advance_days(60).len();
        assert!(produced > 0);
        assert_eq!(world.change_log().len(), produced);

        let kinds: HashSet<ChangeKind> = world.change_log().iter().map(|c| c.kind).collect();
        for kind in [
            ChangeKind::Hired,
            ChangeKind::EmploymentEnded,
            ChangeKind::DepartmentChanged,
            ChangeKind::JobChanged,
            ChangeKind::HoursChanged,
            ChangeKind::SalaryChanged,
            ChangeKind::NameChanged,
            ChangeKind::ManagerChanged,
            ChangeKind::DepartmentManagerChanged,
            ChangeKind::Rehired,
            ChangeKind::SecondEmploymentStarted,
            ChangeKind::StartDateCorrected,
            ChangeKind::EndDateCorrected,
            ChangeKind::Reinstated,
            ChangeKind::Divorced,
            ChangeKind::LocationChanged,
        ] {
            assert!(
                kinds.contains(&kind),
                "60 busy days should produce {kind:?}"
            );
        }

        // Versions are strictly increasing, start above the genesis and end at the counter.
        let mut previous = version_before;
        for change in world.change_log() {
            assert!(change.version > previous, "{change:?}");
            previous = change.version;
        }
        assert_eq!(previous, world.version());

        // Every entity carries the version of the last log entry that touched it.
        let mut last_for_employment: HashMap<Uuid, u64> = HashMap::new();
        let mut last_for_employer: HashMap<Uuid, u64> = HashMap::new();
        // The last entry that set an employment's end or start, and an employee's name.
        let mut last_end: HashMap<Uuid, &WorldChange> = HashMap::new();
        let mut last_start: HashMap<Uuid, &WorldChange> = HashMap::new();
        let mut last_name: HashMap<Uuid, &WorldChange> = HashMap::new();
        for change in world.change_log() {
            last_for_employer.insert(change.employer_id, change.version);
            if let Some(employment_id) = change.employment_id {
                last_for_employment.insert(employment_id, change.version);
            }
            match change.kind {
                ChangeKind::NameChanged | ChangeKind::Divorced => {
                    last_name.insert(change.employee_id.unwrap(), change);
                }
                ChangeKind::EmploymentEnded
                | ChangeKind::EndDateCorrected
                | ChangeKind::Reinstated => {
                    last_end.insert(change.employment_id.unwrap(), change);
                }
                ChangeKind::Hired
                | ChangeKind::Rehired
                | ChangeKind::SecondEmploymentStarted
                | ChangeKind::StartDateCorrected => {
                    last_start.insert(change.employment_id.unwrap(), change);
                }
                _ => {}
            }
            if change.kind == ChangeKind::Hired {
                let employee_id = change.employee_id.unwrap();
                let (_, employment) = world.employment(change.employment_id.unwrap()).unwrap();
                assert!(
                    employment.income_relationship_number == 1,
                    "a hire is a first employment"
                );
                assert_eq!(Some(employment.employee_id), Some(employee_id));
                // Hires are entered on or before their first working day.
                assert!(change.effective_date >= change.date, "{change:?}");
            }
            if matches!(
                change.kind,
                ChangeKind::Rehired | ChangeKind::SecondEmploymentStarted
            ) {
                let (employer, employment) =
                    world.employment(change.employment_id.unwrap()).unwrap();
                assert_eq!(employer.id, change.employer_id);
                assert!(employment.income_relationship_number >= 2, "{change:?}");
            }
        }
        for (employee_id, change) in last_name {
            let (_, employee) = world.employee(employee_id).unwrap();
            assert_eq!(
                employee.partner.is_some(),
                change.kind == ChangeKind::NameChanged
            );
            assert!(employee.last_modified_version >= change.version);
        }
        for (employment_id, change) in last_end {
            let (_, employment) = world.employment(employment_id).unwrap();
            match change.kind {
                ChangeKind::Reinstated => assert_eq!(employment.end_date, None),
                _ => assert_eq!(employment.end_date, Some(change.effective_date)),
            }
        }
        for (employment_id, change) in last_start {
            let (_, employment) = world.employment(employment_id).unwrap();
            assert_eq!(employment.start_date, change.effective_date, "{change:?}");
        }
        // NumIV is never reused: per employee, every employment has its own number.
        for employer in world.employers() {
            let mut numbers = HashSet::new();
            for employment in &employer.employments {
                assert!(numbers.insert((
                    employment.employee_id,
                    employment.income_relationship_number
                )));
            }
        }
        for (employment_id, version) in last_for_employment {
            let (_, employment) = world.employment(employment_id).unwrap();
            // An employee-level change (a marriage) may stamp the employment later still.
            assert!(employment.last_modified_version >= version);
        }
        for employer in world.employers() {
            assert_eq!(
                Some(&employer.last_modified_version),
                last_for_employer.get(&employer.id)
            );
        }
        assert_eq!(world.changes_since(version_before).len(), produced);
        assert!(world.changes_since(world.version()).is_empty());
    }

    #[test]
    fn changes_take_effect_before_after_and_on_the_day_they_are_entered() {
        let mut world = small_world(11);
        world.advance_days(60);
        let log = world.change_log();
        let retroactive_across_a_month = log.iter().any(|change| {
            matches!(
                change.kind,
                ChangeKind::SalaryChanged | ChangeKind::HoursChanged
            ) && change.effective_date < change.date
                && change.effective_date.month() != change.date.month()
        });
        let hire_ahead = log.iter().any(|change| {
            change.kind == ChangeKind::Hired
                && (14..=42).contains(&(change.effective_date - change.date).num_days())
        });
        let hours_per_next_month = log.iter().any(|change| {
            change.kind == ChangeKind::HoursChanged
                && change.effective_date > change.date
                && change.effective_date.day() == 1
        });
        let dismissal_ahead = log.iter().any(|change| {
            change.kind == ChangeKind::EmploymentEnded && change.effective_date > change.date
        });
        assert!(retroactive_across_a_month);
        assert!(hire_ahead);
        assert!(hours_per_next_month);
        assert!(dismissal_ahead);
        // Every pay period and on-call contracts exist.
        let periods: HashSet<PayPeriod> = world.employers().iter().map(|e| e.pay_period).collect();
        assert_eq!(periods.len(), 3);
        assert!(
            world
                .employers()
                .iter()
                .flat_map(|employer| &employer.employments)
                .any(|employment| employment.on_call
                    && employment.working_hours.hours_per_week.is_zero()
                    && employment.wage.hourly_rate.is_some())
        );
        // The slice in force on a change's effective date carries it.
        for change in log
            .iter()
            .filter(|change| change.kind == ChangeKind::SalaryChanged)
        {
            let (_, employment) = world.employment(change.employment_id.unwrap()).unwrap();
            let slice = employment.wage_on(change.effective_date);
            assert!(slice.start_date <= change.effective_date);
        }
    }

    #[test]
    fn history_periods_are_contiguous() {
        let mut world = small_world(5);
        world.advance_days(90);
        for employer in world.employers() {
            for employment in &employer.employments {
                let mut previous_end = None;
                for period in &employment.wage_history {
                    let end = period.end_date.unwrap();
                    assert!(end >= period.start_date);
                    previous_end = Some(end);
                }
                if let Some(end) = previous_end {
                    assert_eq!(end.succ_opt(), Some(employment.wage.start_date));
                }
            }
        }
    }

    #[test]
    fn no_rates_means_no_changes_but_time_moves() {
        let mut world =
            World::generate(WorldConfig::new(3, 2, 10).with_rates(MutationRates::none()));
        let start = world.today();
        assert!(world.advance_days(10).is_empty());
        assert_eq!(world.today(), start + chrono::Days::new(10));
    }

    #[test]
    fn malformation_and_empty_list_knobs() {
        let mut world = small_world(2);
        let employer_id = world.employers()[0].id;
        let employee_id = world.employers()[0].employees[3].id;
        let before = world.version();
        world
            .inject_malformation(
                employee_id,
                RecordMalformation::CitizenServiceNumberFailsElevenProef,
            )
            .unwrap();
        let (_, employee) = world.employee(employee_id).unwrap();
        assert!(!identifiers::passes_eleven_proef(
            &employee.served_citizen_service_number()
        ));
        assert_eq!(employee.last_modified_version, before + 1);
        assert_eq!(
            world.change_log().last().map(|c| c.kind),
            Some(ChangeKind::MalformationInjected)
        );

        world
            .set_serves_empty_employee_list(employer_id, true)
            .unwrap();
        assert!(
            world
                .employer(employer_id)
                .unwrap()
                .serves_empty_employee_list
        );
        assert_eq!(
            world.version(),
            before + 1,
            "the empty-list knob is not a world change"
        );
        assert_eq!(
            world.set_serves_empty_employee_list(employee_id, true),
            Err(WorldError::UnknownEmployer(employee_id))
        );
    }

    #[test]
    fn names_follow_name_usage() {
        let mut employee = small_world(4).employers()[0].employees[0].clone();
        employee.initials = "S.L.".into();
        employee.prefix = "van";
        employee.last_name = "Bergen";
        employee.partner = Some(PartnerName {
            prefix: "van de",
            last_name: "Wiel",
        });
        employee.name_usage = NameUsage::Own;
        assert_eq!(employee.formatted_name(), "S.L. van Bergen");
        employee.name_usage = NameUsage::Partner;
        assert_eq!(employee.formatted_name(), "S.L. van de Wiel");
        employee.name_usage = NameUsage::PartnerOwn;
        assert_eq!(employee.formatted_name(), "S.L. van de Wiel-van Bergen");
        employee.name_usage = NameUsage::OwnPartner;
        assert_eq!(employee.formatted_name(), "S.L. van Bergen-van de Wiel");
    }

    #[test]
    fn a_benchmark_sized_world_generates_quickly() {
        let started = std::time::Instant::now();
        let mut world = World::generate(WorldConfig::new(1, 20, 1_000));
        world.advance_days(5);
        let employees: usize = world.employers().iter().map(|e| e.employees.len()).sum();
        assert!(employees >= 20_000);
        // Generous even for an unoptimised build on a slow machine.
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
}
