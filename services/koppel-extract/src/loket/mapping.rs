//! Loket records to the canonical model. Pure functions, no IO: every choice is here and
//! unit-tested on the examples `sources.md` documents.
//!
//! Choices (also in docs/sources/loket.md):
//! - **Names.** `howToFormatLastName` gives the name usage (`last name` = own, `last name
//!   partner` = partner, `last name + last name partner` = own-partner, `last name partner +
//!   last name` = partner-own; Dutch labels and the numeric key as fallbacks). `formatted` is
//!   built the Dutch way ("S.L. van de Wiel-van Bergen") with `PersonName::format`, not taken
//!   from Loket's `formattedName`, which is a sort key ("Wiel - van Bergen S.L. van de").
//! - **Gender** comes from `personalDetails.gender`, never `civilStatus` (a bug in S1).
//! - **Hours.** The employee's own hours are `deviatingHoursPerWeek`, else
//!   `averageHoursPerWeek`; the full-time week is `shift.fullTimeHoursPerWeek` (which S1
//!   wrongly used as the employee's hours). The part-time factor is their quotient.
//! - **Department, function, cost center** come from the organisational entity valid on the
//!   reference date, never from the whole history array (S1's pitfall).
//! - **Slices.** Organisational entity, working hours and wage are each the slice in force on
//!   the later of the reference date and the latest slice's start ([`in_force_or_upcoming`]):
//!   a change entered per next month, and a hire entered before its first day, are published
//!   when entered, with the date they hold from. Each slice's `startDate` becomes
//!   `placement_valid_from`, `hours_valid_from` or `salary_valid_from`.
//! - **Salary** is `grossWage` per `grossWageType`: `Periodeloon` is an amount per pay period
//!   of the payroll administration (`payrollAdministration.payrollPeriodType`: month, four
//!   weeks or week; a month when absent), `Uurloon` an hourly wage.
//! - **Pensionable salary** is full-time and yearly ([`pensionable_salary`]): the amount per
//!   period × periods per year (12, 13 or 52) × full-time hours / own hours, or for an hourly
//!   wage the rate × full-time hours × 52; then × months per year / 12 (13 with a thirteenth
//!   month) × (1 + holiday allowance), rounded to cents once. The holiday allowance
//!   (vakantietoeslag) defaults to 8% and is configurable.
//! - **Manager**: see [`ManagerDirectory`].

use std::collections::HashMap;

use chrono::NaiveDate;
use koppel_events::model::parttime_factor;
use koppel_events::{
    Address, Bsn, Employee, Employer, Employment, Gender, Money, NameUsage, OrganisationUnit,
    PersonName, Salary, SalaryPeriod, SourceSystem,
};
use koppel_registry::EmployerRegistration;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserialize;

pub use crate::mapping::{MappingError, parse_date, parse_decimal};
use crate::mapping::{non_empty, round_hours, within_contract};

use super::wire::{
    Department, EmployerUser, LoketEmployee, LoketEmployer, LoketEmployment, Metadata,
    OrganizationalEntity, Reference, UserDepartments, Wage, WorkingHours, scalar_text,
};

/// Settings of the salary mapping. Part of `[loket]` in the extractor config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MappingSettings {
    /// Holiday allowance (vakantietoeslag) in percent, added to the pensionable salary.
    pub holiday_allowance_percent: Decimal,
    /// Monthly salaries per year in the pensionable salary (12; 13 with a thirteenth month).
    pub months_per_year: Decimal,
}

impl Default for MappingSettings {
    fn default() -> Self {
        MappingSettings {
            holiday_allowance_percent: Decimal::from(8),
            months_per_year: Decimal::from(12),
        }
    }
}

pub fn map_employer(
    registration: &EmployerRegistration,
    employer: &LoketEmployer,
) -> Result<Employer, MappingError> {
    let name =
        non_empty(employer.company_name.as_ref()).ok_or(MappingError::Missing("companyName"))?;
    Ok(Employer {
        employer_key: registration.employer_key.clone(),
        source: SourceSystem::Loket,
        source_employer_id: employer.id.clone(),
        name,
        employer_number: scalar_text(employer.employer_number.as_ref()),
        payroll_tax_number: non_empty(employer.payroll_tax_number.as_ref())
            .or_else(|| registration.payroll_tax_number.clone()),
        chamber_of_commerce_number: non_empty(employer.chamber_of_commerce_number.as_ref()),
    })
}

/// The name usage from `howToFormatLastName`: the label first (English or Dutch), the
/// numeric key as a fallback, own name when neither says.
pub fn name_usage(format: Option<&Metadata>) -> NameUsage {
    let Some(format) = format else {
        return NameUsage::Own;
    };
    if let Some(label) = format.value.as_deref() {
        let label = label.trim().to_lowercase();
        let partner_first = label.starts_with("last name partner")
            || label.starts_with("naam partner")
            || label.starts_with("partner");
        if label.contains('+') {
            return if partner_first {
                NameUsage::PartnerOwn
            } else {
                NameUsage::OwnPartner
            };
        }
        if label.contains("partner") {
            return NameUsage::Partner;
        }
        if !label.is_empty() {
            return NameUsage::Own;
        }
    }
    match scalar_text(format.key.as_ref()).as_deref() {
        Some("2") => NameUsage::OwnPartner,
        Some("3") => NameUsage::Partner,
        Some("4") => NameUsage::PartnerOwn,
        _ => NameUsage::Own,
    }
}

pub fn gender(gender: Option<&Metadata>) -> Gender {
    let label = gender
        .and_then(|gender| gender.value.as_deref())
        .map(|label| label.trim().to_lowercase());
    match label.as_deref() {
        Some("man" | "male" | "m") => Gender::Male,
        Some("vrouw" | "female" | "v" | "f") => Gender::Female,
        None | Some("" | "onbekend" | "unknown" | "niet gespecificeerd") => Gender::Unknown,
        Some(_) => Gender::Other,
    }
}

/// Maps an employee. `bsn` is the text the citizen-service-number endpoint returned (absent
/// when the authorising user may not read BSNs); `manager_employee_id` comes from
/// [`ManagerDirectory`].
pub fn map_employee(
    employee: &LoketEmployee,
    bsn: Option<&str>,
    manager_employee_id: Option<String>,
) -> Result<Employee, MappingError> {
    let details = employee
        .personal_details
        .as_ref()
        .ok_or(MappingError::Missing("personalDetails"))?;
    let last_name = non_empty(details.last_name.as_ref())
        .ok_or(MappingError::Missing("personalDetails.lastName"))?;
    let initials = non_empty(details.initials.as_ref());
    let prefix = non_empty(details.prefix.as_ref());
    let partner_prefix = non_empty(details.prefix_partner.as_ref());
    let partner_last_name = non_empty(details.last_name_partner.as_ref());
    let usage = name_usage(details.how_to_format_last_name.as_ref());
    let formatted = PersonName::format(
        initials.as_deref(),
        prefix.as_deref(),
        &last_name,
        partner_prefix.as_deref(),
        partner_last_name.as_deref(),
        usage,
    );
    let date_of_birth = parse_date(
        "personalDetails.dateOfBirth",
        details.date_of_birth.as_deref(),
    )?;
    let bsn = match bsn.map(str::trim).filter(|text| !text.is_empty()) {
        Some(text) => Some(Bsn::parse(text)?),
        None => None,
    };
    let contact = employee.contact_information.clone().unwrap_or_default();
    let address = employee.address.as_ref().and_then(|address| {
        let mapped = Address {
            street: non_empty(address.street.as_ref()),
            house_number: scalar_text(address.house_number.as_ref()),
            house_number_addition: scalar_text(address.house_number_addition.as_ref()),
            postal_code: non_empty(address.postal_code.as_ref()),
            city: non_empty(address.city.as_ref()),
            country_code: address
                .country
                .as_ref()
                .and_then(|country| non_empty(country.iso_code.as_ref())),
        };
        (mapped != Address::default()).then_some(mapped)
    });
    Ok(Employee {
        employee_id: employee.id.clone(),
        employee_number: scalar_text(employee.employee_number.as_ref()),
        name: PersonName {
            initials,
            first_name: non_empty(details.first_name.as_ref()),
            prefix,
            last_name,
            partner_prefix,
            partner_last_name,
            name_usage: usage,
            formatted,
        },
        date_of_birth,
        gender: gender(details.gender.as_ref()),
        bsn,
        email: non_empty(contact.email_address.as_ref()),
        work_email: non_empty(contact.business_email_address.as_ref()),
        phone: non_empty(contact.mobile_phone_number.as_ref())
            .or_else(|| non_empty(contact.phone_number.as_ref())),
        address,
        manager_employee_id,
    })
}

/// A period with a start and an optional end, as Loket's histories are.
pub trait Period {
    fn start(&self) -> Option<&str>;
    fn end(&self) -> Option<&str>;
}

macro_rules! period {
    ($type:ty) => {
        impl Period for $type {
            fn start(&self) -> Option<&str> {
                self.start_date.as_deref()
            }
            fn end(&self) -> Option<&str> {
                self.end_date.as_deref()
            }
        }
    };
}
period!(OrganizationalEntity);
period!(WorkingHours);
period!(Wage);

/// The slice to publish: the one in force on the later of `date` and the latest slice's
/// start. A slice entered ahead (a raise per next month, every slice of a hire that starts in
/// three weeks) is published when entered, with its own start date, instead of being missed
/// until a full sync happens to run on or after that day.
pub fn in_force_or_upcoming<T: Period>(periods: &[T], date: NaiveDate) -> Option<&T> {
    let latest_start = periods
        .iter()
        .filter_map(|period| parse_date("startDate", period.start()).ok().flatten())
        .max();
    valid_on(
        periods,
        latest_start.map_or(date, |latest| latest.max(date)),
    )
}

/// The start date of a slice, `None` when absent or not a date.
pub fn slice_start<T: Period>(period: Option<&T>) -> Option<NaiveDate> {
    parse_date("startDate", period?.start()).ok().flatten()
}

/// The period valid on `date`: started on or before it and not ended before it. When none is
/// (a gap, or the date lies after the last end), the latest period that started on or
/// before `date`; when every period starts later, none.
pub fn valid_on<T: Period>(periods: &[T], date: NaiveDate) -> Option<&T> {
    let dated = periods.iter().filter_map(|period| {
        let start = parse_date("startDate", period.start()).ok().flatten()?;
        let end = parse_date("endDate", period.end()).ok().flatten();
        Some((period, start, end))
    });
    let mut latest_started: Option<(&T, NaiveDate)> = None;
    for (period, start, end) in dated {
        if start > date {
            continue;
        }
        if end.is_none_or(|end| end >= date) {
            return Some(period);
        }
        if latest_started.is_none_or(|(_, latest)| start >= latest) {
            latest_started = Some((period, start));
        }
    }
    latest_started.map(|(period, _)| period)
}

fn unit(reference: Option<&Reference>) -> Option<OrganisationUnit> {
    let reference = reference?;
    let id = scalar_text(reference.key.as_ref())?;
    Some(OrganisationUnit {
        id,
        code: scalar_text(reference.code.as_ref()),
        name: non_empty(reference.description.as_ref()),
    })
}

/// The salary period of a wage: `Uurloon` is per hour; `Periodeloon` (and its synonyms) is per
/// pay period of the payroll administration; explicit labels name their period.
pub fn salary_period(
    wage_type: Option<&Metadata>,
    payroll_period: Option<&Metadata>,
) -> SalaryPeriod {
    let label = wage_type
        .and_then(|wage_type| wage_type.value.as_deref())
        .map(|label| label.trim().to_lowercase());
    match label.as_deref() {
        Some("periodeloon" | "period") => pay_period(payroll_period),
        Some("maandloon" | "month" | "monthly") => SalaryPeriod::Month,
        Some("uurloon" | "hour" | "hourly") => SalaryPeriod::Hour,
        Some("weekloon" | "week" | "weekly") => SalaryPeriod::Week,
        Some("4-wekenloon" | "vierwekenloon" | "four weeks") => SalaryPeriod::FourWeeks,
        Some("jaarloon" | "year" | "yearly") => SalaryPeriod::Year,
        _ => SalaryPeriod::Unknown,
    }
}

/// The loontijdvak of a payroll administration; a month when Loket does not say.
fn pay_period(payroll_period: Option<&Metadata>) -> SalaryPeriod {
    let Some(period) = payroll_period else {
        return SalaryPeriod::Month;
    };
    let label = period
        .value
        .as_deref()
        .map(|label| label.trim().to_lowercase());
    match label.as_deref() {
        Some("maand" | "month") => SalaryPeriod::Month,
        Some("vier weken" | "4 weken" | "four weeks") => SalaryPeriod::FourWeeks,
        Some("week") => SalaryPeriod::Week,
        _ => match scalar_text(period.key.as_ref()).as_deref() {
            Some("2") => SalaryPeriod::FourWeeks,
            Some("3") => SalaryPeriod::Week,
            Some("1") => SalaryPeriod::Month,
            _ => SalaryPeriod::Unknown,
        },
    }
}

/// Full-time yearly pensionable salary.
///
/// - per month, four weeks or week: amount × 12, 13 or 52 × full-time hours / own hours;
/// - per year: amount × full-time hours / own hours;
/// - per hour: rate × full-time hours × 52 (it needs no own hours, so an on-call contract
///   with zero hours has one too);
///
/// then × `months_per_year` / 12 (a thirteenth month adds a twelfth) × (1 + holiday
/// allowance), rounded half away from zero to cents. `None` when the period is unknown, or a
/// needed hour count is missing or zero.
pub fn pensionable_salary(
    salary: &Salary,
    hours_per_week: Option<Decimal>,
    fulltime_hours_per_week: Option<Decimal>,
    settings: &MappingSettings,
) -> Option<Money> {
    let fulltime = fulltime_hours_per_week.filter(|hours| !hours.is_zero())?;
    let amount = salary.amount.amount;
    let full_time_yearly = match salary.period {
        SalaryPeriod::Hour => amount
            .checked_mul(fulltime)?
            .checked_mul(Decimal::from(52))?,
        SalaryPeriod::Unknown => return None,
        period => {
            let periods_per_year = match period {
                SalaryPeriod::Month => Decimal::from(12),
                SalaryPeriod::FourWeeks => Decimal::from(13),
                SalaryPeriod::Week => Decimal::from(52),
                _ => Decimal::ONE,
            };
            let hours = hours_per_week.filter(|hours| !hours.is_zero())?;
            amount
                .checked_mul(periods_per_year)?
                .checked_mul(fulltime)?
                .checked_div(hours)?
        }
    };
    let allowance = Decimal::ONE + settings.holiday_allowance_percent / Decimal::ONE_HUNDRED;
    let yearly = full_time_yearly
        .checked_mul(settings.months_per_year)?
        .checked_div(Decimal::from(12))?
        .checked_mul(allowance)?;
    Some(Money::euro(yearly.round_dp_with_strategy(
        2,
        RoundingStrategy::MidpointAwayFromZero,
    )))
}

/// Maps an employment with the organisational entity, working hours and wage chosen for the
/// reference date (see [`valid_on`]).
pub fn map_employment(
    employment: &LoketEmployment,
    organization: Option<&OrganizationalEntity>,
    working_hours: Option<&WorkingHours>,
    wage: Option<&Wage>,
    settings: &MappingSettings,
) -> Result<Employment, MappingError> {
    let employee_id = employment
        .employee
        .as_ref()
        .and_then(|employee| non_empty(employee.id.as_ref()))
        .ok_or(MappingError::Missing("employee.id"))?;
    let start_date = parse_date("startDate", employment.start_date.as_deref())?
        .ok_or(MappingError::Missing("startDate"))?;
    let end_date = parse_date("endDate", employment.end_date.as_deref())?;
    let income_relationship_number =
        match scalar_text(employment.income_relationship_number.as_ref()) {
            Some(text) => Some(
                text.parse::<i64>()
                    .map_err(|_| MappingError::InvalidNumber("incomeRelationshipNumber"))?,
            ),
            None => None,
        };
    let job_title = organization.and_then(|entity| {
        non_empty(entity.deviating_function_description.as_ref()).or_else(|| {
            entity
                .function
                .as_ref()
                .and_then(|function| non_empty(function.description.as_ref()))
        })
    });
    let (hours_per_week, fulltime_hours_per_week) = match working_hours {
        Some(hours) => {
            let own = match parse_decimal(
                "deviatingHoursPerWeek",
                hours.deviating_hours_per_week.as_ref(),
            )? {
                Some(own) => Some(own),
                None => {
                    parse_decimal("averageHoursPerWeek", hours.average_hours_per_week.as_ref())?
                }
            };
            let fulltime = parse_decimal(
                "shift.fullTimeHoursPerWeek",
                hours
                    .shift
                    .as_ref()
                    .and_then(|shift| shift.full_time_hours_per_week.as_ref()),
            )?;
            (own.map(round_hours), fulltime.map(round_hours))
        }
        None => (None, None),
    };
    let factor = match (hours_per_week, fulltime_hours_per_week) {
        (Some(hours), Some(fulltime)) => {
            parttime_factor(hours, fulltime).map(|factor| factor.normalize())
        }
        _ => None,
    };
    let salary = match wage {
        Some(wage) => parse_decimal("grossWage", wage.gross_wage.as_ref())?.map(|amount| Salary {
            amount: Money::euro(
                amount.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero),
            ),
            period: salary_period(
                wage.gross_wage_type.as_ref(),
                employment
                    .payroll_administration
                    .as_ref()
                    .and_then(|administration| administration.payroll_period_type.as_ref()),
            ),
        }),
        None => None,
    };
    let pensionable = salary.as_ref().and_then(|salary| {
        pensionable_salary(salary, hours_per_week, fulltime_hours_per_week, settings)
    });
    let label = |metadata: Option<&Metadata>| metadata.and_then(|m| non_empty(m.value.as_ref()));
    within_contract(Employment {
        employment_id: employment.id.clone(),
        employee_id,
        income_relationship_number,
        start_date,
        end_date,
        end_reason: label(employment.end_of_employment_reason.as_ref()),
        job_title,
        department: organization.and_then(|entity| unit(entity.department.as_ref())),
        cost_center: organization.and_then(|entity| unit(entity.distribution_unit.as_ref())),
        location: organization.and_then(|entity| non_empty(entity.place_of_employment.as_ref())),
        employment_type: label(employment.type_of_employee.as_ref()),
        contract_type: label(employment.employment_duration_type.as_ref()),
        hours_per_week,
        fulltime_hours_per_week,
        parttime_factor: factor,
        salary,
        pensionable_salary: pensionable,
        // Loket keeps pension data in `pensionbenefits`, one call per employment; not read.
        pension_scheme: None,
        placement_valid_from: slice_start(organization),
        hours_valid_from: slice_start(working_hours),
        salary_valid_from: slice_start(wage),
    })
}

/// Who manages whom, reconstructed from users, as Loket has no manager field.
///
/// **A heuristic** (the HelloID connector's readme calls it "not 100% reliable"): a
/// department's manager is the employer user marked `isDepartmentManager` and linked to the
/// department (`users/departments`), correlated to an employee by e-mail: the user's
/// `contactInformation.emailAddress` against the employee's `businessEmailAddress`
/// (case-insensitive). An employee's manager is the manager of their department, or, when
/// that is the employee themselves or there is none, of the nearest department above it.
/// A user whose address matches no employee (or several) manages nobody.
#[derive(Debug, Clone, Default)]
pub struct ManagerDirectory {
    /// Department id -> managing employee id.
    manager_by_department: HashMap<String, String>,
    /// Department id -> parent department id.
    parent_by_department: HashMap<String, String>,
}

impl ManagerDirectory {
    pub fn build(
        departments: &[Department],
        users: &[EmployerUser],
        user_departments: &[UserDepartments],
        employees: &[LoketEmployee],
    ) -> Self {
        let normalize = |email: &str| email.trim().to_lowercase();
        let mut employee_by_email: HashMap<String, Option<String>> = HashMap::new();
        for employee in employees {
            let email = employee
                .contact_information
                .as_ref()
                .and_then(|contact| contact.business_email_address.as_deref())
                .map(normalize)
                .filter(|email| !email.is_empty());
            if let Some(email) = email {
                employee_by_email
                    .entry(email)
                    // Two employees on one address: ambiguous, so nobody.
                    .and_modify(|existing| *existing = None)
                    .or_insert_with(|| Some(employee.id.clone()));
            }
        }
        let manager_employee_by_user: HashMap<&str, String> = users
            .iter()
            .filter(|user| user.is_department_manager == Some(true))
            .filter_map(|user| {
                let email = user
                    .contact_information
                    .as_ref()
                    .and_then(|contact| contact.email_address.as_deref())
                    .map(normalize)?;
                let employee = employee_by_email.get(&email)?.clone()?;
                Some((user.id.as_str(), employee))
            })
            .collect();
        let mut manager_by_department = HashMap::new();
        for link in user_departments {
            let Some(employee) = manager_employee_by_user.get(link.user_id.as_str()) else {
                continue;
            };
            for department in &link.departments {
                manager_by_department
                    .entry(department.id.clone())
                    .or_insert_with(|| employee.clone());
            }
        }
        let parent_by_department = departments
            .iter()
            .filter_map(|department| {
                let parent = scalar_text(department.sub_department_of.as_ref()?.key.as_ref())?;
                Some((department.id.clone(), parent))
            })
            .collect();
        ManagerDirectory {
            manager_by_department,
            parent_by_department,
        }
    }

    /// The manager of `employee_id` working in `department_id`.
    pub fn manager_of(&self, department_id: &str, employee_id: &str) -> Option<String> {
        let mut current = Some(department_id.to_owned());
        // Bounded walk: a cycle in the source's tree must not hang the extractor.
        for _ in 0..=self.parent_by_department.len() {
            let department = current?;
            match self.manager_by_department.get(&department) {
                Some(manager) if manager != employee_id => return Some(manager.clone()),
                _ => current = self.parent_by_department.get(&department).cloned(),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use serde_json::json;

    fn decimal(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn metadata(key: u32, value: &str) -> Metadata {
        serde_json::from_value(json!({ "key": key, "value": value })).unwrap()
    }

    fn salary(amount: &str, period: SalaryPeriod) -> Salary {
        Salary {
            amount: Money::euro(decimal(amount)),
            period,
        }
    }

    #[test]
    fn periodeloon_is_per_pay_period_of_the_payroll_administration() {
        let periodeloon = metadata(1, "Periodeloon");
        assert_eq!(
            salary_period(Some(&periodeloon), Some(&metadata(2, "Vier weken"))),
            SalaryPeriod::FourWeeks
        );
        assert_eq!(
            salary_period(Some(&periodeloon), Some(&metadata(3, "Week"))),
            SalaryPeriod::Week
        );
        assert_eq!(salary_period(Some(&periodeloon), None), SalaryPeriod::Month);
        assert_eq!(
            salary_period(Some(&metadata(2, "Uurloon")), Some(&metadata(1, "Maand"))),
            SalaryPeriod::Hour
        );
    }

    /// Before: a 4-weekly Periodeloon was read as monthly (×12, 7.7% low), and weekly, hourly
    /// and on-call employees had no pensionable salary at all.
    #[test]
    fn every_pay_period_gives_the_same_yearly_pensionable_salary() {
        let settings = MappingSettings::default();
        let full_time = Some(decimal("40"));
        // 3900 a month = 46800 a year = 3600 per four weeks = 900 a week = 22.50 an hour.
        let yearly = |salary: Salary, hours: &str| {
            pensionable_salary(&salary, Some(decimal(hours)), full_time, &settings)
                .map(|money| money.amount)
        };
        let expected = Some(decimal("50544.00"));
        assert_eq!(yearly(salary("3900", SalaryPeriod::Month), "40"), expected);
        assert_eq!(
            yearly(salary("3600", SalaryPeriod::FourWeeks), "40"),
            expected
        );
        assert_eq!(yearly(salary("900", SalaryPeriod::Week), "40"), expected);
        assert_eq!(yearly(salary("22.50", SalaryPeriod::Hour), "40"), expected);
        // Part time scales to full time; an on-call contract (zero hours) paid per hour has one.
        assert_eq!(
            yearly(salary("1800", SalaryPeriod::FourWeeks), "20"),
            expected
        );
        assert_eq!(yearly(salary("22.50", SalaryPeriod::Hour), "0"), expected);
        assert_eq!(yearly(salary("3900", SalaryPeriod::Month), "0"), None);
        // A thirteenth month adds a twelfth, whatever the period.
        let thirteen = MappingSettings {
            months_per_year: Decimal::from(13),
            ..MappingSettings::default()
        };
        assert_eq!(
            pensionable_salary(
                &salary("3600", SalaryPeriod::FourWeeks),
                Some(decimal("40")),
                full_time,
                &thirteen
            )
            .map(|money| money.amount),
            Some(decimal("54756.00"))
        );
    }

    fn wage(start: &str, end: Option<&str>, amount: &str) -> Wage {
        serde_json::from_value(json!({
            "startDate": start, "endDate": end, "grossWage": amount,
            "grossWageType": { "key": 1, "value": "Periodeloon" }
        }))
        .unwrap()
    }

    /// Before: the slice valid on the reference date was taken, so a raise entered per next
    /// month was never seen by a delta sync, and a hire entered before its first day had no
    /// salary, hours or department.
    #[test]
    fn a_slice_entered_ahead_is_published_when_entered() {
        let history = [
            wage("2020-01-01", Some("2026-01-31"), "3000"),
            wage("2026-02-01", None, "3100"),
        ];
        let chosen = in_force_or_upcoming(&history, day("2026-01-15")).unwrap();
        assert_eq!(chosen.start_date.as_deref(), Some("2026-02-01"));
        assert_eq!(slice_start(Some(chosen)), Some(day("2026-02-01")));
        // A retroactive slice is simply the one in force.
        let chosen = in_force_or_upcoming(&history, day("2026-03-10")).unwrap();
        assert_eq!(chosen.start_date.as_deref(), Some("2026-02-01"));
        // A hire that starts in three weeks.
        let hire = [wage("2026-02-09", None, "2800")];
        assert!(valid_on(&hire, day("2026-01-19")).is_none());
        assert!(in_force_or_upcoming(&hire, day("2026-01-19")).is_some());
    }
}
