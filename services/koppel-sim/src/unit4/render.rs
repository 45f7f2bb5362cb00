//! World entities in the provisional Unit4 contract's JSON (docs/sources/unit4.md).
//!
//! Amounts, hours and factors are JSON strings with a fixed number of decimals, so no float
//! ever carries them. Codes follow Dutch registries: `naamgebruik` uses the BRP letters E
//! (eigen), P (partner), V (partner voor eigen), N (partner na eigen); `geslacht` M, V, O.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use crate::world::{
    Employee, Employer, Employment, Gender, NameUsage, PayPeriod, RecordMalformation,
};

/// Holiday allowance (vakantietoeslag) used in the served pensionable salary: 8%.
const HOLIDAY_ALLOWANCE: Decimal = Decimal::from_parts(108, 0, 0, false, 2);

fn date(date: NaiveDate) -> Value {
    Value::String(date.format("%Y-%m-%d").to_string())
}

fn optional_text(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        Value::String(text.to_owned())
    }
}

fn decimal(value: Decimal, scale: u32) -> Value {
    Value::String(value.round_dp(scale).to_string())
}

pub(super) fn employer(employer: &Employer) -> Value {
    json!({
        "werkgeverId": employer.id,
        "werkgeverNummer": employer.employer_number,
        "naam": employer.company_name,
        "loonheffingennummer": employer.payroll_tax_number,
        "kvkNummer": employer.chamber_of_commerce_number,
        "voltijdUrenPerWeek": decimal(employer.full_time_hours_per_week, 2),
    })
}

fn name_usage_code(usage: NameUsage) -> &'static str {
    match usage {
        NameUsage::Own => "E",
        NameUsage::Partner => "P",
        NameUsage::PartnerOwn => "V",
        NameUsage::OwnPartner => "N",
    }
}

fn gender_code(gender: Gender) -> &'static str {
    match gender {
        Gender::Male => "M",
        Gender::Female => "V",
        Gender::Unknown => "O",
    }
}

pub(super) fn employee(employee: &Employee) -> Value {
    let date_of_birth = if employee.malformation == Some(RecordMalformation::InvalidDateOfBirth) {
        Value::String(format!("{}-13-32", employee.date_of_birth.year()))
    } else {
        date(employee.date_of_birth)
    };
    let mut fields: Map<String, Value> = json!({
        "werknemerId": employee.id,
        "personeelsnummer": employee.employee_number,
        "voorletters": employee.initials,
        "voornaam": employee.first_name,
        "tussenvoegsel": optional_text(employee.prefix),
        "achternaam": employee.last_name,
        "tussenvoegselPartner": employee.partner.map_or(Value::Null, |partner| optional_text(partner.prefix)),
        "achternaamPartner": employee.partner.map(|partner| partner.last_name),
        "naamgebruik": name_usage_code(employee.name_usage),
        "geboortedatum": date_of_birth,
        "geslacht": gender_code(employee.gender),
        "bsn": employee.served_citizen_service_number(),
        "emailPrive": employee.private_email,
        "emailZakelijk": employee.work_email,
        "telefoonMobiel": employee.mobile_phone_number,
        "adres": {
            "straat": employee.address.street,
            "huisnummer": employee.address.house_number,
            "huisnummerToevoeging": Value::Null,
            "postcode": employee.address.postal_code,
            "woonplaats": employee.address.city,
            "land": "NL",
        },
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    if employee.malformation == Some(RecordMalformation::MissingLastName) {
        fields.remove("achternaam");
    }
    Value::Object(fields)
}

/// Full-time yearly pensionable salary as payroll computes it: the month-equivalent salary
/// scaled to full time × 12, or for an hourly wage the rate × full-time hours × 52, plus
/// holiday allowance. The loontijdvak does not change the yearly amount (13 four-week periods
/// and 52 weeks make the same year as 12 months).
fn pensionable_salary(employment: &Employment) -> Decimal {
    let hours = employment.working_hours.hours_per_week;
    let full_time = employment.working_hours.full_time_hours_per_week;
    let yearly_full_time = match employment.wage.hourly_rate {
        Some(rate) => rate * full_time * Decimal::from(52),
        None if hours.is_zero() => employment.wage.monthly_salary * Decimal::from(12),
        None => employment.wage.monthly_salary * full_time / hours * Decimal::from(12),
    };
    (yearly_full_time * HOLIDAY_ALLOWANCE).round_dp(2)
}

/// `salarisgegevens.periode` and `brutoSalaris`: the amount per loontijdvak (`maand`,
/// `4 weken`, `week`) or the hourly wage (`uur`).
fn gross_salary(employer: &Employer, employment: &Employment) -> (Decimal, &'static str) {
    match employment.wage.hourly_rate {
        Some(rate) => (rate, "uur"),
        None => {
            let period = match employer.pay_period {
                PayPeriod::Month => "maand",
                PayPeriod::FourWeeks => "4 weken",
                PayPeriod::Week => "week",
            };
            (
                employer
                    .pay_period
                    .amount_per_period(employment.wage.monthly_salary),
                period,
            )
        }
    }
}

/// The latest values entered, each with the day it holds from (`ingangsdatum`): a change
/// entered per next month is served as soon as it is entered, with a future date.
pub(super) fn employment(employer: &Employer, employment: &Employment) -> Value {
    let department = employer.departments.get(employment.organization.department);
    let function = employer
        .job_functions
        .get(employment.organization.job_function);
    let cost_center = employer
        .cost_centers
        .get(employment.organization.cost_center);
    let (gross, period) = gross_salary(employer, employment);
    json!({
        "dienstverbandId": employment.id,
        "werknemerId": employment.employee_id,
        "inkomstenverhoudingNummer": employment.income_relationship_number,
        "datumInDienst": date(employment.start_date),
        "datumUitDienst": employment.end_date.map(date),
        "redenUitDienst": employment.end_reason,
        "oproepkracht": employment.on_call,
        "plaatsing": {
            "ingangsdatum": date(employment.organization.start_date),
            "standplaats": employment.organization.location,
        },
        "functie": function.map(|function| function.title),
        "afdeling": department.map(|department| json!({
            "afdelingId": department.id,
            "code": department.code.to_string(),
            "omschrijving": department.name,
        })),
        "kostenplaats": cost_center.map(|cost_center| json!({
            "kostenplaatsId": cost_center.id,
            "code": cost_center.code.to_string(),
            "omschrijving": cost_center.name,
        })),
        "leidinggevendeWerknemerId": employment.manager_employee_id,
        "uren": {
            "urenPerWeek": decimal(employment.working_hours.hours_per_week, 2),
            "voltijdUrenPerWeek": decimal(employment.working_hours.full_time_hours_per_week, 2),
            "ingangsdatum": date(employment.working_hours.start_date),
        },
        "salarisgegevens": {
            "brutoSalaris": decimal(gross, 2),
            "periode": period,
            "pensioengevendJaarsalaris": decimal(pensionable_salary(employment), 2),
            "pensioenregeling": format!("PR-{}", employer.employer_number),
            "ingangsdatum": date(employment.wage.start_date),
        },
    })
}
