//! Builds the initial population of a world: employers, departments, employees, employments.
//!
//! Generation draws from the world's seeded generator only, in a fixed order, so a seed always
//! yields the same world. Hires made later by the mutation engine reuse the same builders.

use std::collections::HashSet;

use chrono::{Days, NaiveDate};
use rand::Rng;
use rand::rngs::SmallRng;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::names;
use super::{
    Address, CivilStatus, ContractDuration, CostCenter, Department, Employee, Employer, Employment,
    EntityLocation, Gender, JobFunction, NameUsage, OrganizationalPeriod, PartnerName, PayPeriod,
    WagePeriod, WorkingHoursPeriod, World, identifiers, random_uuid,
};

/// Version stamped on everything that exists when the world is generated; mutations start above
/// it, so `lastModifiedVersionNumber gt 1` means "changed since generation".
pub(super) const GENESIS_VERSION: u64 = 1;

/// Job function positions with a fixed meaning; the rest are ordinary jobs.
pub(super) const DIRECTOR_FUNCTION: usize = 0;
pub(super) const TEAM_LEAD_FUNCTION: usize = 1;
pub(super) const FIRST_ORDINARY_FUNCTION: usize = 2;

/// Part-time weeks people actually work; decimals as tenths of an hour.
const PART_TIME_HOURS_IN_TENTHS: &[i64] = &[160, 200, 225, 240, 280, 300, 320, 340];

/// Fills a freshly created world with its employers and their people.
pub(super) fn populate(world: &mut World) {
    world.version = GENESIS_VERSION;
    let mut employer_numbers = HashSet::new();
    let mut company_names = HashSet::new();
    for _ in 0..world.config.employer_count {
        let employer = build_employer(
            &mut world.random,
            &mut employer_numbers,
            &mut company_names,
            world.config.employees_per_employer,
        );
        let employer_index = world.employers.len();
        world.locations.insert(
            employer.id,
            EntityLocation::Employer {
                employer: employer_index,
            },
        );
        for (department_index, department) in employer.departments.iter().enumerate() {
            world.locations.insert(
                department.id,
                EntityLocation::Department {
                    employer: employer_index,
                    department: department_index,
                },
            );
        }
        world.employers.push(employer);
        populate_employer(world, employer_index);
    }
}

fn build_employer(
    random: &mut SmallRng,
    employer_numbers: &mut HashSet<u32>,
    company_names: &mut HashSet<String>,
    employee_count: usize,
) -> Employer {
    let id = random_uuid(random);
    let employer_number = loop {
        let candidate = random.random_range(10_000..100_000);
        if employer_numbers.insert(candidate) {
            break candidate;
        }
    };
    let stem = pick(random, names::COMPANY_STEMS);
    let trade = pick(random, names::COMPANY_TRADES);
    let mut company_name = format!("{stem} {trade} B.V.");
    let mut email_domain = format!("{}{}.nl", slug(stem), slug(trade));
    if !company_names.insert(company_name.clone()) {
        // Two employers drew the same name; a place name keeps them apart, as real groups do.
        let city = pick(random, names::CITIES);
        company_name = format!("{stem} {trade} {city} {employer_number} B.V.");
        email_domain = format!(
            "{}{}{}{employer_number}.nl",
            slug(stem),
            slug(trade),
            slug(city)
        );
        company_names.insert(company_name.clone());
    }
    let payroll_tax_number =
        identifiers::payroll_tax_number_from_rsin(identifiers::random_eleven_proef_number(random));
    let chamber_of_commerce_number = identifiers::random_chamber_of_commerce_number(random);
    let full_time_hours_per_week = Decimal::from(pick(random, &[36u32, 38, 40]));
    let address = random_address(random);
    // The first three employers of a world pay per month, per four weeks and per week, so
    // even a small world has every loontijdvak; later ones mostly pay per month, as most
    // Dutch employers do.
    let pay_period = match employer_numbers.len() {
        1 => PayPeriod::Month,
        2 => PayPeriod::FourWeeks,
        3 => PayPeriod::Week,
        _ => pick(
            random,
            &[
                PayPeriod::Month,
                PayPeriod::Month,
                PayPeriod::Month,
                PayPeriod::FourWeeks,
                PayPeriod::Week,
            ],
        ),
    };

    // Roughly one department per six people, at least three, at most the whole name list.
    let department_count = (employee_count / 6).clamp(3, names::DEPARTMENT_NAMES.len());
    let mut departments = Vec::with_capacity(department_count);
    let mut cost_centers = Vec::with_capacity(department_count);
    for (position, name) in names::DEPARTMENT_NAMES
        .iter()
        .take(department_count)
        .enumerate()
    {
        let code = u32::try_from(position).unwrap_or(0) + 1;
        departments.push(Department {
            id: random_uuid(random),
            code,
            name,
            parent_department: if position == 0 { None } else { Some(0) },
            manager_employee_id: None,
            last_modified_version: GENESIS_VERSION,
        });
        cost_centers.push(CostCenter {
            id: random_uuid(random),
            code: 100 + code,
            name: format!("Kostenplaats {name}"),
        });
    }
    let job_functions = names::JOB_FUNCTIONS
        .iter()
        .map(|(title, group, base_salary)| JobFunction {
            id: random_uuid(random),
            title,
            group,
            full_time_monthly_base_salary: Decimal::from(*base_salary),
        })
        .collect();

    Employer {
        id,
        employer_number,
        company_name,
        payroll_tax_number,
        chamber_of_commerce_number,
        email_domain,
        address,
        full_time_hours_per_week,
        pay_period,
        departments,
        job_functions,
        cost_centers,
        employees: Vec::with_capacity(employee_count),
        employments: Vec::with_capacity(employee_count + employee_count / 20),
        last_modified_version: GENESIS_VERSION,
        serves_empty_employee_list: false,
        next_employee_number: 1,
    }
}

/// Adds the employer's initial employees. The first employee of each department becomes its
/// manager, so every department has one from the start.
fn populate_employer(world: &mut World, employer_index: usize) {
    let department_count = world
        .employers
        .get(employer_index)
        .map_or(0, |employer| employer.departments.len());
    let today = world.today;
    for position in 0..world.config.employees_per_employer {
        let is_department_manager = position < department_count;
        let department = if is_department_manager {
            position
        } else {
            world.random.random_range(0..department_count.max(1))
        };
        let job_function = if !is_department_manager {
            world
                .random
                .random_range(FIRST_ORDINARY_FUNCTION..names::JOB_FUNCTIONS.len())
        } else if department == 0 {
            DIRECTOR_FUNCTION
        } else {
            TEAM_LEAD_FUNCTION
        };
        // Employment started up to twenty years ago (never before the 18th birthday).
        let age_in_days = world.random.random_range(20 * 365..66 * 365);
        let seniority_in_days = world
            .random
            .random_range(1..=(age_in_days - 18 * 365).min(20 * 365));
        let start_date = days_before(today, seniority_in_days);
        let placement = Placement {
            department,
            job_function,
            start_date,
            age_in_days,
            may_have_earlier_employment: true,
        };
        let (employee_id, _employment_id) =
            add_employee(world, employer_index, placement, GENESIS_VERSION);
        if is_department_manager
            && let Some(department) = world
                .employers
                .get_mut(employer_index)
                .and_then(|employer| employer.departments.get_mut(department))
        {
            department.manager_employee_id = Some(employee_id);
        }
    }
    if let Some(employer) = world.employers.get_mut(employer_index) {
        let managers: Vec<Option<Uuid>> = employer
            .employments
            .iter()
            .map(|employment| super::mutations::desired_manager(employer, employment))
            .collect();
        for (employment, manager) in employer.employments.iter_mut().zip(managers) {
            if employment.end_date.is_none() {
                employment.manager_employee_id = manager;
            }
        }
    }
}

/// Where and when a new employee starts.
#[derive(Debug, Clone, Copy)]
pub(super) struct Placement {
    pub(super) department: usize,
    pub(super) job_function: usize,
    pub(super) start_date: NaiveDate,
    /// Age of the new employee on the world's current day.
    pub(super) age_in_days: u64,
    /// Whether the employee may get an earlier, ended employment (a rehire). Only the initial
    /// population has history; a hire made by the mutation engine is a first employment, so
    /// the ground-truth log's `Hired` entry names every employment it created.
    pub(super) may_have_earlier_employment: bool,
}

/// Creates an employee and its current employment (and, for a few, an earlier ended one), stamps
/// them with `version` and registers their ids. Returns the employee and current employment id.
/// How an employment is contracted: hours and the way it is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Contract {
    /// Drawn like most contracts: full or part time with a salary per pay period, a few paid
    /// per hour, a few on call.
    Drawn,
    /// An on-call (zero-hours) contract paid per hour.
    OnCall,
}

pub(super) fn add_employee(
    world: &mut World,
    employer_index: usize,
    placement: Placement,
    version: u64,
) -> (Uuid, Uuid) {
    let today = world.today;
    let World {
        random,
        employers,
        locations,
        issued_citizen_service_numbers,
        ..
    } = world;
    let Some(employer) = employers.get_mut(employer_index) else {
        return (Uuid::nil(), Uuid::nil());
    };
    let employee_number = employer.next_employee_number;
    employer.next_employee_number += 1;
    let employee = build_employee(
        random,
        issued_citizen_service_numbers,
        &employer.email_domain,
        employee_number,
        days_before(today, placement.age_in_days),
        version,
    );
    let employee_id = employee.id;
    let employee_index = employer.employees.len();
    employer.employees.push(employee);
    locations.insert(
        employee_id,
        EntityLocation::Employee {
            employer: employer_index,
            employee: employee_index,
        },
    );

    let mut income_relationship_number = 1;
    // About one in twenty-five had an earlier employment with this employer (a rehire), which
    // makes the current one NumIV 2, as payroll numbers inkomstenverhoudingen per employee.
    let earliest_earlier_start = days_before(today, placement.age_in_days.saturating_sub(18 * 365));
    if placement.may_have_earlier_employment && random.random_range(0..25) == 0 {
        let gap = random.random_range(30..300);
        let length = random.random_range(200..2000);
        let earlier_end = days_before(placement.start_date, gap);
        let earlier_start = days_before(earlier_end, length);
        if earlier_start > earliest_earlier_start {
            let mut earlier = build_employment(
                random,
                employer,
                employee_id,
                employee_index,
                1,
                Placement {
                    start_date: earlier_start,
                    ..placement
                },
                Contract::Drawn,
                version,
            );
            earlier.end_date = Some(earlier_end);
            earlier.end_reason = Some(pick(random, names::END_OF_EMPLOYMENT_REASONS));
            earlier.contract_duration = ContractDuration::Definite;
            locations.insert(
                earlier.id,
                EntityLocation::Employment {
                    employer: employer_index,
                    employment: employer.employments.len(),
                },
            );
            employer.employments.push(earlier);
            income_relationship_number = 2;
        }
    }

    let employment = build_employment(
        random,
        employer,
        employee_id,
        employee_index,
        income_relationship_number,
        placement,
        Contract::Drawn,
        version,
    );
    let employment_id = employment.id;
    locations.insert(
        employment_id,
        EntityLocation::Employment {
            employer: employer_index,
            employment: employer.employments.len(),
        },
    );
    employer.employments.push(employment);
    employer.last_modified_version = version;
    (employee_id, employment_id)
}

fn build_employee(
    random: &mut SmallRng,
    issued_citizen_service_numbers: &mut HashSet<u32>,
    employer_email_domain: &str,
    employee_number: u32,
    date_of_birth: NaiveDate,
    version: u64,
) -> Employee {
    let id = random_uuid(random);
    let gender = match random.random_range(0..100) {
        0..49 => Gender::Male,
        49..98 => Gender::Female,
        _ => Gender::Unknown,
    };
    let first_name = match gender {
        Gender::Male => pick(random, names::MALE_FIRST_NAMES),
        Gender::Female => pick(random, names::FEMALE_FIRST_NAMES),
        Gender::Unknown => {
            if random.random_range(0..2) == 0 {
                pick(random, names::MALE_FIRST_NAMES)
            } else {
                pick(random, names::FEMALE_FIRST_NAMES)
            }
        }
    };
    let initials = if random.random_range(0..10) < 3 {
        let second = pick(random, names::SECOND_NAMES);
        format!("{}.{}.", initial_of(first_name), initial_of(second))
    } else {
        format!("{}.", initial_of(first_name))
    };
    let prefix = pick(random, names::NAME_PREFIXES);
    let last_name = pick(random, names::LAST_NAMES);
    let (partner, name_usage, civil_status) = if random.random_range(0..100) < 40 {
        let partner = random_partner_name(random, last_name);
        (
            Some(partner),
            random_name_usage(random),
            CivilStatus::Married,
        )
    } else {
        (None, NameUsage::Own, CivilStatus::Unmarried)
    };
    let citizen_service_number = loop {
        let candidate = identifiers::random_eleven_proef_number(random);
        if issued_citizen_service_numbers.insert(candidate) {
            break candidate;
        }
    };
    let own_slug = format!("{}{}", slug(prefix), slug(last_name));
    let private_email = format!(
        "{}.{own_slug}{}@{}",
        slug(first_name),
        random.random_range(1..100),
        pick(random, names::PRIVATE_MAIL_DOMAINS)
    );
    // The personnel number keeps work addresses unique, which the manager join of Loket
    // integrations (user e-mail to employee e-mail) depends on.
    let work_email = format!(
        "{}.{own_slug}.{employee_number}@{employer_email_domain}",
        slug(first_name)
    );
    let mobile_phone_number = format!("06-{:08}", random.random_range(10_000_000..100_000_000));
    Employee {
        id,
        employee_number,
        first_name,
        initials,
        prefix,
        last_name,
        partner,
        name_usage,
        date_of_birth,
        place_of_birth: pick(random, names::CITIES),
        gender,
        civil_status,
        citizen_service_number,
        private_email,
        work_email,
        mobile_phone_number,
        address: random_address(random),
        malformation: None,
        last_modified_version: version,
    }
}

/// Adds another employment of an existing employee (a re-hire or a second job) with the given
/// NumIV, stamps it with `version` and registers its id. Returns the employment id.
pub(super) fn add_employment(
    world: &mut World,
    employer_index: usize,
    employee_index: usize,
    income_relationship_number: u32,
    placement: Placement,
    contract: Contract,
    version: u64,
) -> Option<Uuid> {
    let World {
        random,
        employers,
        locations,
        ..
    } = world;
    let employer = employers.get_mut(employer_index)?;
    let employee_id = employer.employees.get(employee_index)?.id;
    let employment = build_employment(
        random,
        employer,
        employee_id,
        employee_index,
        income_relationship_number,
        placement,
        contract,
        version,
    );
    let employment_id = employment.id;
    locations.insert(
        employment_id,
        EntityLocation::Employment {
            employer: employer_index,
            employment: employer.employments.len(),
        },
    );
    employer.employments.push(employment);
    employer.last_modified_version = version;
    Some(employment_id)
}

#[allow(clippy::too_many_arguments)]
fn build_employment(
    random: &mut SmallRng,
    employer: &Employer,
    employee_id: Uuid,
    employee_index: usize,
    income_relationship_number: u32,
    placement: Placement,
    contract: Contract,
    version: u64,
) -> Employment {
    let full_time = employer.full_time_hours_per_week;
    // About 3 in 100 contracts are on call and 4 in 100 are paid per hour with fixed hours.
    let pay_draw = random.random_range(0..100);
    let on_call = contract == Contract::OnCall || pay_draw < 3;
    let paid_per_hour = on_call || pay_draw < 7;
    let hours_per_week = if on_call {
        Decimal::ZERO
    } else if random.random_range(0..100) < 55 {
        full_time
    } else {
        Decimal::new(pick(random, PART_TIME_HOURS_IN_TENTHS), 1).min(full_time)
    };
    let base_salary = employer
        .job_functions
        .get(placement.job_function)
        .map_or(Decimal::from(2500), |function| {
            function.full_time_monthly_base_salary
        });
    // People in one function earn between 90% and 115% of its base, pro rata their hours.
    let spread = Decimal::new(random.random_range(90..=115), 2);
    let (monthly_salary, hourly_rate) = if paid_per_hour {
        let rate = money(base_salary * spread * Decimal::from(12) / Decimal::from(52) / full_time);
        (monthly_from_hourly(rate, hours_per_week), Some(rate))
    } else {
        (
            money(base_salary * spread * hours_per_week / full_time),
            None,
        )
    };
    let contract_duration = if random.random_range(0..100) < 80 {
        ContractDuration::Indefinite
    } else {
        ContractDuration::Definite
    };
    Employment {
        id: random_uuid(random),
        employee_id,
        employee_index,
        income_relationship_number,
        start_date: placement.start_date,
        end_date: None,
        end_reason: None,
        contract_duration,
        on_call,
        manager_employee_id: None,
        organization: OrganizationalPeriod {
            id: random_uuid(random),
            start_date: placement.start_date,
            end_date: None,
            department: placement.department,
            job_function: placement.job_function,
            // The world keeps one cost center per department, at the same position.
            cost_center: placement.department,
            location: employer.address.city,
        },
        organization_history: Vec::new(),
        working_hours: WorkingHoursPeriod {
            id: random_uuid(random),
            start_date: placement.start_date,
            end_date: None,
            full_time_hours_per_week: full_time,
            hours_per_week,
        },
        working_hours_history: Vec::new(),
        wage: WagePeriod {
            id: random_uuid(random),
            start_date: placement.start_date,
            end_date: None,
            monthly_salary,
            hourly_rate,
        },
        wage_history: Vec::new(),
        last_modified_version: version,
    }
}

/// The month equivalent of an hourly wage for contracted hours: rate × hours × 52 / 12.
pub(super) fn monthly_from_hourly(rate: Decimal, hours_per_week: Decimal) -> Decimal {
    money(rate * hours_per_week * Decimal::from(52) / Decimal::from(12))
}

/// A partner name that differs from the own last name.
pub(super) fn random_partner_name(random: &mut SmallRng, own_last_name: &str) -> PartnerName {
    loop {
        let last_name = pick(random, names::LAST_NAMES);
        if last_name != own_last_name {
            return PartnerName {
                prefix: pick(random, names::NAME_PREFIXES),
                last_name,
            };
        }
    }
}

/// Name usage of married people: most keep their own name.
pub(super) fn random_name_usage(random: &mut SmallRng) -> NameUsage {
    match random.random_range(0..100) {
        0..45 => NameUsage::Own,
        45..70 => NameUsage::Partner,
        70..88 => NameUsage::PartnerOwn,
        _ => NameUsage::OwnPartner,
    }
}

fn random_address(random: &mut SmallRng) -> Address {
    const POSTAL_LETTERS: &[u8] = b"ABCDEFGHJKLMNPRTVWXZ";
    let first = char::from(pick(random, POSTAL_LETTERS));
    let second = char::from(pick(random, POSTAL_LETTERS));
    Address {
        street: pick(random, names::STREETS),
        house_number: random.random_range(1..250),
        postal_code: format!("{}{first}{second}", random.random_range(1000..10_000)),
        city: pick(random, names::CITIES),
    }
}

/// Rounds an amount to cents and keeps exactly two decimals, as payroll amounts are shown.
pub(super) fn money(amount: Decimal) -> Decimal {
    let mut rounded = amount.round_dp(2);
    rounded.rescale(2);
    rounded
}

/// A uniformly drawn element; the lists are static and never empty, and an empty one would
/// be a programming error caught by the first test run, so the fallback only keeps this total.
pub(super) fn pick<T: Copy>(random: &mut SmallRng, items: &[T]) -> T {
    let index = random.random_range(0..items.len().max(1));
    items[index.min(items.len().saturating_sub(1))]
}

pub(super) fn days_before(date: NaiveDate, days: u64) -> NaiveDate {
    date.checked_sub_days(Days::new(days)).unwrap_or(date)
}

/// Lower-case ASCII letters and digits of a name, for e-mail addresses and domains.
fn slug(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn initial_of(name: &str) -> char {
    name.chars().next().unwrap_or('X')
}
