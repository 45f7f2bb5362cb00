//! Unit4 records to the canonical model. Pure functions, no IO, unit-tested on the examples of
//! docs/sources/unit4.md.
//!
//! Choices:
//! - **Names.** `naamgebruik` carries the BRP letters: E own name, P partner's, V partner's
//!   before own, N own before partner's. Absent means own name; any other letter is a record
//!   error (guessing a name usage would publish a wrong name). `formatted` is built with
//!   `PersonName::format`, as for Loket.
//! - **Gender.** `geslacht` M, V, O (O is "onbekend" in the BRP: unknown); absent is unknown,
//!   any other code is `Other`.
//! - **BSN** is checked with the 11-proef; a failing one rejects the employee (the error names
//!   the rule, never the number).
//! - **Hours.** `uren.urenPerWeek` and `uren.voltijdUrenPerWeek`, the employer's
//!   `voltijdUrenPerWeek` when the employment has none. The part-time factor is not served;
//!   it is their quotient (`koppel_events::model::parttime_factor`).
//! - **Effective dates.** `plaatsing.ingangsdatum`, `uren.ingangsdatum` and
//!   `salarisgegevens.ingangsdatum` say from when the placement, the hours and the salary hold
//!   (`placement_valid_from`, `hours_valid_from`, `salary_valid_from`); Unit4 serves the latest
//!   values entered, so a date may lie in the future.
//! - **Salary** is `salarisgegevens.brutoSalaris` per `periode`; the **pensionable salary** is
//!   `pensioengevendJaarsalaris` as payroll computed it (full-time, yearly), never recomputed;
//!   the **pension scheme** is `pensioenregeling`.
//! - **Manager** is served per employment (`leidinggevendeWerknemerId`); koppel's manager
//!   lives on the employee, so it is taken from the employee's current employment
//!   ([`manager_of`]).
//! - Amounts and hours are read from their decimal text (see [`crate::mapping`]).

use chrono::NaiveDate;
use koppel_events::model::parttime_factor;
use koppel_events::{
    Address, Bsn, Employee, Employer, Employment, Gender, Money, NameUsage, OrganisationUnit,
    PersonName, Salary, SalaryPeriod, SourceSystem,
};
use koppel_registry::EmployerRegistration;
use rust_decimal::Decimal;
use serde_json::Value;

use super::wire::{Dienstverband, Eenheid, Werkgever, Werknemer};
use crate::mapping::{
    MappingError, parse_date, parse_decimal, round_cents, round_hours, scalar_text, within_contract,
};

fn date(field: &'static str, value: Option<&Value>) -> Result<Option<NaiveDate>, MappingError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => parse_date(field, Some(text)),
        Some(_) => Err(MappingError::InvalidDate(field)),
    }
}

pub fn map_employer(
    registration: &EmployerRegistration,
    employer: &Werkgever,
) -> Result<Employer, MappingError> {
    Ok(Employer {
        employer_key: registration.employer_key.clone(),
        source: SourceSystem::Unit4,
        source_employer_id: employer.werkgever_id.clone(),
        name: scalar_text(employer.naam.as_ref()).ok_or(MappingError::Missing("naam"))?,
        employer_number: scalar_text(employer.werkgever_nummer.as_ref()),
        payroll_tax_number: scalar_text(employer.loonheffingennummer.as_ref())
            .or_else(|| registration.payroll_tax_number.clone()),
        chamber_of_commerce_number: scalar_text(employer.kvk_nummer.as_ref()),
    })
}

/// The employer's full-time week, the fallback for employments that do not state theirs.
pub fn employer_fulltime_hours(employer: &Werkgever) -> Result<Option<Decimal>, MappingError> {
    Ok(parse_decimal(
        "voltijdUrenPerWeek",
        employer.voltijd_uren_per_week.as_ref(),
    )?
    .map(round_hours))
}

/// `naamgebruik` (BRP letters) to the canonical name usage.
pub fn name_usage(code: Option<&Value>) -> Result<NameUsage, MappingError> {
    match scalar_text(code).map(|code| code.to_uppercase()).as_deref() {
        None | Some("E") => Ok(NameUsage::Own),
        Some("P") => Ok(NameUsage::Partner),
        Some("V") => Ok(NameUsage::PartnerOwn),
        Some("N") => Ok(NameUsage::OwnPartner),
        Some(_) => Err(MappingError::UnknownCode("naamgebruik")),
    }
}

/// `geslacht` (M, V, O) to the canonical gender.
pub fn gender(code: Option<&Value>) -> Gender {
    match scalar_text(code).map(|code| code.to_uppercase()).as_deref() {
        Some("M") => Gender::Male,
        Some("V") => Gender::Female,
        None | Some("O") => Gender::Unknown,
        Some(_) => Gender::Other,
    }
}

/// Maps an employee; `manager_employee_id` comes from [`manager_of`].
pub fn map_employee(
    employee: &Werknemer,
    manager_employee_id: Option<String>,
) -> Result<Employee, MappingError> {
    let last_name =
        scalar_text(employee.achternaam.as_ref()).ok_or(MappingError::Missing("achternaam"))?;
    let initials = scalar_text(employee.voorletters.as_ref());
    let prefix = scalar_text(employee.tussenvoegsel.as_ref());
    let partner_prefix = scalar_text(employee.tussenvoegsel_partner.as_ref());
    let partner_last_name = scalar_text(employee.achternaam_partner.as_ref());
    let usage = name_usage(employee.naamgebruik.as_ref())?;
    let formatted = PersonName::format(
        initials.as_deref(),
        prefix.as_deref(),
        &last_name,
        partner_prefix.as_deref(),
        partner_last_name.as_deref(),
        usage,
    );
    let bsn = match scalar_text(employee.bsn.as_ref()) {
        Some(text) => Some(Bsn::parse(&text)?),
        None => None,
    };
    let address = employee.adres.as_ref().and_then(|address| {
        let mapped = Address {
            street: scalar_text(address.straat.as_ref()),
            house_number: scalar_text(address.huisnummer.as_ref()),
            house_number_addition: scalar_text(address.huisnummer_toevoeging.as_ref()),
            postal_code: scalar_text(address.postcode.as_ref()),
            city: scalar_text(address.woonplaats.as_ref()),
            country_code: scalar_text(address.land.as_ref()),
        };
        (mapped != Address::default()).then_some(mapped)
    });
    Ok(Employee {
        employee_id: employee.werknemer_id.clone(),
        employee_number: scalar_text(employee.personeelsnummer.as_ref()),
        name: PersonName {
            initials,
            first_name: scalar_text(employee.voornaam.as_ref()),
            prefix,
            last_name,
            partner_prefix,
            partner_last_name,
            name_usage: usage,
            formatted,
        },
        date_of_birth: date("geboortedatum", employee.geboortedatum.as_ref())?,
        gender: gender(employee.geslacht.as_ref()),
        bsn,
        email: scalar_text(employee.email_prive.as_ref()),
        work_email: scalar_text(employee.email_zakelijk.as_ref()),
        phone: scalar_text(employee.telefoon_mobiel.as_ref()),
        address,
        manager_employee_id,
    })
}

/// The manager of an employee, from their employments: the one without an end date first
/// (of several, the main job: the lowest NumIV), then one ending on or after
/// `reference_date`, then the latest start. Ended employments keep the manager they had (the
/// source freezes it), so a leaver keeps theirs.
pub fn manager_of(employments: &[&Dienstverband], reference_date: NaiveDate) -> Option<String> {
    employments
        .iter()
        .map(|employment| {
            let end = date("datumUitDienst", employment.datum_uit_dienst.as_ref())
                .ok()
                .flatten();
            let start = date("datumInDienst", employment.datum_in_dienst.as_ref())
                .ok()
                .flatten();
            let income_relationship_number =
                scalar_text(employment.inkomstenverhouding_nummer.as_ref())
                    .and_then(|text| text.parse::<i64>().ok());
            let main_job_first = if end.is_none() {
                std::cmp::Reverse(income_relationship_number.unwrap_or(i64::MAX))
            } else {
                std::cmp::Reverse(0)
            };
            (
                (
                    end.is_none(),
                    end.is_some_and(|end| end >= reference_date),
                    main_job_first,
                    start,
                ),
                employment,
            )
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .and_then(|(_, employment)| scalar_text(employment.leidinggevende_werknemer_id.as_ref()))
}

fn unit(reference: Option<&Eenheid>) -> Option<OrganisationUnit> {
    let reference = reference?;
    Some(OrganisationUnit {
        id: scalar_text(reference.id.as_ref()).or_else(|| scalar_text(reference.code.as_ref()))?,
        code: scalar_text(reference.code.as_ref()),
        name: scalar_text(reference.omschrijving.as_ref()),
    })
}

/// `periode` to the salary period.
pub fn salary_period(period: Option<&Value>) -> SalaryPeriod {
    match scalar_text(period)
        .map(|label| label.to_lowercase())
        .as_deref()
    {
        Some("maand" | "month") => SalaryPeriod::Month,
        Some("uur" | "hour") => SalaryPeriod::Hour,
        Some("week") => SalaryPeriod::Week,
        Some("4 weken" | "4-weken" | "vier weken" | "vierweken") => SalaryPeriod::FourWeeks,
        Some("jaar" | "year") => SalaryPeriod::Year,
        _ => SalaryPeriod::Unknown,
    }
}

/// Maps an employment. `employer_fulltime_hours` is the employer's full-time week, used when
/// the employment states none.
pub fn map_employment(
    employment: &Dienstverband,
    employer_fulltime_hours: Option<Decimal>,
) -> Result<Employment, MappingError> {
    let employee_id = scalar_text(employment.werknemer_id.as_ref())
        .ok_or(MappingError::Missing("werknemerId"))?;
    let start_date = date("datumInDienst", employment.datum_in_dienst.as_ref())?
        .ok_or(MappingError::Missing("datumInDienst"))?;
    let end_date = date("datumUitDienst", employment.datum_uit_dienst.as_ref())?;
    let income_relationship_number =
        match scalar_text(employment.inkomstenverhouding_nummer.as_ref()) {
            Some(text) => Some(
                text.parse::<i64>()
                    .map_err(|_| MappingError::InvalidNumber("inkomstenverhoudingNummer"))?,
            ),
            None => None,
        };
    let hours = employment.uren.clone().unwrap_or_default();
    let hours_per_week =
        parse_decimal("uren.urenPerWeek", hours.uren_per_week.as_ref())?.map(round_hours);
    let fulltime_hours_per_week = parse_decimal(
        "uren.voltijdUrenPerWeek",
        hours.voltijd_uren_per_week.as_ref(),
    )?
    .map(round_hours)
    .or(employer_fulltime_hours);
    let factor = match (hours_per_week, fulltime_hours_per_week) {
        (Some(hours), Some(fulltime)) => {
            parttime_factor(hours, fulltime).map(|factor| factor.normalize())
        }
        _ => None,
    };
    let salary_data = employment.salarisgegevens.clone().unwrap_or_default();
    let salary = parse_decimal(
        "salarisgegevens.brutoSalaris",
        salary_data.bruto_salaris.as_ref(),
    )?
    .map(|amount| Salary {
        amount: Money::euro(round_cents(amount)),
        period: salary_period(salary_data.periode.as_ref()),
    });
    let pensionable_salary = parse_decimal(
        "salarisgegevens.pensioengevendJaarsalaris",
        salary_data.pensioengevend_jaarsalaris.as_ref(),
    )?
    .map(|amount| Money::euro(round_cents(amount)));
    let placement = employment.plaatsing.clone().unwrap_or_default();
    within_contract(Employment {
        employment_id: employment.dienstverband_id.clone(),
        employee_id,
        income_relationship_number,
        start_date,
        end_date,
        end_reason: scalar_text(employment.reden_uit_dienst.as_ref()),
        job_title: scalar_text(employment.functie.as_ref()),
        department: unit(employment.afdeling.as_ref()),
        cost_center: unit(employment.kostenplaats.as_ref()),
        location: scalar_text(placement.standplaats.as_ref()),
        employment_type: None,
        contract_type: None,
        hours_per_week,
        fulltime_hours_per_week,
        parttime_factor: factor,
        salary,
        pensionable_salary,
        pension_scheme: scalar_text(salary_data.pensioenregeling.as_ref()),
        placement_valid_from: date("plaatsing.ingangsdatum", placement.ingangsdatum.as_ref())?,
        hours_valid_from: date("uren.ingangsdatum", hours.ingangsdatum.as_ref())?,
        salary_valid_from: date(
            "salarisgegevens.ingangsdatum",
            salary_data.ingangsdatum.as_ref(),
        )?,
    })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use serde_json::json;

    use super::*;

    fn decimal(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    /// The werknemer of docs/sources/unit4.md.
    fn documented_employee() -> Werknemer {
        serde_json::from_value(json!({
            "werknemerId": "6f1c9a52-2d7e-4c1b-9a51-0f3c2b7d8e11", "personeelsnummer": 17,
            "voorletters": "S.L.", "voornaam": "Sanne",
            "tussenvoegsel": "van", "achternaam": "Bergen", "tussenvoegselPartner": "de",
            "achternaamPartner": "Wit", "naamgebruik": "N", "geboortedatum": "1988-04-02",
            "geslacht": "V", "bsn": "111222333",
            "emailPrive": "sanne@example.nl", "emailZakelijk": "s.vanbergen@example.nl",
            "telefoonMobiel": "+31 6 12345678",
            "adres": {"straat": "Dorpsstraat", "huisnummer": 12, "huisnummerToevoeging": null,
                "postcode": "1234 AB", "woonplaats": "Utrecht", "land": "NL"}
        }))
        .unwrap()
    }

    /// The dienstverband of docs/sources/unit4.md.
    fn documented_employment() -> Dienstverband {
        serde_json::from_value(json!({
            "dienstverbandId": "0b7e2f64-81a4-4e0c-a3a9-5d2c6f7e9a10",
            "werknemerId": "6f1c9a52-2d7e-4c1b-9a51-0f3c2b7d8e11", "inkomstenverhoudingNummer": 1,
            "datumInDienst": "2021-09-01", "datumUitDienst": null, "redenUitDienst": null,
            "functie": "Calculator",
            "afdeling": {"afdelingId": "5c0f6f0e-77aa-4b8f-9c4e-2a1d3b4c5d6e", "code": "3", "omschrijving": "Werkvoorbereiding"},
            "kostenplaats": {"kostenplaatsId": "7d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6", "code": "300", "omschrijving": "Bouw"},
            "leidinggevendeWerknemerId": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            "uren": {"urenPerWeek": "32.00", "voltijdUrenPerWeek": "38.00"},
            "salarisgegevens": {"brutoSalaris": "3650.00", "periode": "maand",
                "pensioengevendJaarsalaris": "53634.95", "pensioenregeling": "PR-1001",
                "ingangsdatum": "2026-01-01"}
        }))
        .unwrap()
    }

    #[test]
    fn the_documented_employee_maps_with_her_own_name_before_her_partners() {
        let employee = map_employee(&documented_employee(), Some("m-1".to_owned())).unwrap();
        assert_eq!(employee.name.name_usage, NameUsage::OwnPartner);
        assert_eq!(employee.name.formatted, "S.L. van Bergen-de Wit");
        assert_eq!(employee.name.first_name.as_deref(), Some("Sanne"));
        assert_eq!(employee.gender, Gender::Female);
        assert_eq!(employee.bsn.as_ref().map(Bsn::expose), Some("111222333"));
        assert_eq!(employee.employee_number.as_deref(), Some("17"));
        assert_eq!(employee.date_of_birth, NaiveDate::from_ymd_opt(1988, 4, 2));
        assert_eq!(
            employee.work_email.as_deref(),
            Some("s.vanbergen@example.nl")
        );
        assert_eq!(employee.phone.as_deref(), Some("+31 6 12345678"));
        assert_eq!(employee.manager_employee_id.as_deref(), Some("m-1"));
        let address = employee.address.unwrap();
        assert_eq!(address.house_number.as_deref(), Some("12"));
        assert_eq!(address.house_number_addition, None);
        assert_eq!(address.country_code.as_deref(), Some("NL"));
    }

    #[test]
    fn name_usage_follows_the_brp_letters() {
        let cases = [
            ("E", NameUsage::Own, "S.L. van Bergen"),
            ("P", NameUsage::Partner, "S.L. de Wit"),
            ("V", NameUsage::PartnerOwn, "S.L. de Wit-van Bergen"),
            ("N", NameUsage::OwnPartner, "S.L. van Bergen-de Wit"),
        ];
        for (code, usage, formatted) in cases {
            let mut employee = documented_employee();
            employee.naamgebruik = Some(json!(code));
            let mapped = map_employee(&employee, None).unwrap();
            assert_eq!(mapped.name.name_usage, usage, "{code}");
            assert_eq!(mapped.name.formatted, formatted, "{code}");
        }
        assert_eq!(name_usage(None), Ok(NameUsage::Own));
        assert_eq!(name_usage(Some(&json!("n"))), Ok(NameUsage::OwnPartner));
        assert_eq!(
            name_usage(Some(&json!("X"))),
            Err(MappingError::UnknownCode("naamgebruik"))
        );
    }

    #[test]
    fn gender_codes() {
        assert_eq!(gender(Some(&json!("M"))), Gender::Male);
        assert_eq!(gender(Some(&json!("V"))), Gender::Female);
        assert_eq!(gender(Some(&json!("O"))), Gender::Unknown);
        assert_eq!(gender(None), Gender::Unknown);
        assert_eq!(gender(Some(&json!("X"))), Gender::Other);
    }

    #[test]
    fn bad_records_are_errors_that_never_quote_the_bsn() {
        let mut employee = documented_employee();
        employee.bsn = Some(json!("111222334"));
        let error = map_employee(&employee, None).unwrap_err();
        assert!(matches!(error, MappingError::Bsn(_)));
        assert!(!error.to_string().contains("111222334"), "{error}");
        assert!(!format!("{employee:?}").contains("111222334"));

        let mut employee = documented_employee();
        employee.achternaam = None;
        assert_eq!(
            map_employee(&employee, None).unwrap_err(),
            MappingError::Missing("achternaam")
        );
        let mut employee = documented_employee();
        employee.geboortedatum = Some(json!("1988-13-32"));
        assert_eq!(
            map_employee(&employee, None).unwrap_err(),
            MappingError::InvalidDate("geboortedatum")
        );
        // An 8-digit BSN (a number that lost its leading zero) is padded.
        let mut employee = documented_employee();
        employee.bsn = Some(json!(12345672));
        assert!(map_employee(&employee, None).is_ok());
    }

    #[test]
    fn the_documented_employment_maps_hours_salary_and_pension() {
        let employment = map_employment(&documented_employment(), None).unwrap();
        assert_eq!(employment.income_relationship_number, Some(1));
        assert_eq!(
            employment.start_date,
            NaiveDate::from_ymd_opt(2021, 9, 1).unwrap()
        );
        assert_eq!(employment.end_date, None);
        assert_eq!(employment.job_title.as_deref(), Some("Calculator"));
        let department = employment.department.unwrap();
        assert_eq!(department.id, "5c0f6f0e-77aa-4b8f-9c4e-2a1d3b4c5d6e");
        assert_eq!(department.code.as_deref(), Some("3"));
        assert_eq!(department.name.as_deref(), Some("Werkvoorbereiding"));
        assert_eq!(employment.cost_center.unwrap().code.as_deref(), Some("300"));
        assert_eq!(employment.hours_per_week, Some(decimal("32")));
        assert_eq!(employment.fulltime_hours_per_week, Some(decimal("38")));
        assert_eq!(employment.parttime_factor, Some(decimal("0.842105")));
        let salary = employment.salary.unwrap();
        assert_eq!(salary.amount.amount, decimal("3650.00"));
        assert_eq!(salary.amount.currency, "EUR");
        assert_eq!(salary.period, SalaryPeriod::Month);
        assert_eq!(
            employment.pensionable_salary.map(|money| money.amount),
            Some(decimal("53634.95"))
        );
        assert_eq!(employment.pension_scheme.as_deref(), Some("PR-1001"));
    }

    #[test]
    fn numbers_are_read_from_their_text_and_hours_fall_back_to_the_employer() {
        let mut record = documented_employment();
        record.uren = Some(serde_json::from_value(json!({"urenPerWeek": 19})).unwrap());
        record.salarisgegevens = Some(
            serde_json::from_value(json!({"brutoSalaris": 2011.1, "periode": "maand"})).unwrap(),
        );
        let employment = map_employment(&record, Some(decimal("38"))).unwrap();
        assert_eq!(employment.parttime_factor, Some(decimal("0.5")));
        assert_eq!(
            employment.salary.map(|salary| salary.amount.amount),
            Some(decimal("2011.10"))
        );
        assert_eq!(employment.pensionable_salary, None);

        record.uren = Some(serde_json::from_value(json!({"urenPerWeek": "veel"})).unwrap());
        assert_eq!(
            map_employment(&record, None).unwrap_err(),
            MappingError::InvalidNumber("uren.urenPerWeek")
        );
    }

    #[test]
    fn an_ended_employment_carries_its_end() {
        let mut record = documented_employment();
        record.datum_uit_dienst = Some(json!("2026-03-31"));
        record.reden_uit_dienst = Some(json!("Ontslag op eigen verzoek"));
        let employment = map_employment(&record, None).unwrap();
        assert_eq!(employment.end_date, NaiveDate::from_ymd_opt(2026, 3, 31));
        assert_eq!(
            employment.end_reason.as_deref(),
            Some("Ontslag op eigen verzoek")
        );
        record.werknemer_id = None;
        assert_eq!(
            map_employment(&record, None).unwrap_err(),
            MappingError::Missing("werknemerId")
        );
    }

    #[test]
    fn the_manager_comes_from_the_current_employment() {
        let reference = NaiveDate::from_ymd_opt(2026, 5, 1).unwrap();
        let mut earlier = documented_employment();
        earlier.datum_in_dienst = Some(json!("2015-01-01"));
        earlier.datum_uit_dienst = Some(json!("2019-12-31"));
        earlier.leidinggevende_werknemer_id = Some(json!("old-manager"));
        let mut current = documented_employment();
        current.leidinggevende_werknemer_id = Some(json!("new-manager"));
        assert_eq!(
            manager_of(&[&earlier, &current], reference).as_deref(),
            Some("new-manager")
        );
        // Once the current one ends too, the latest start still decides.
        current.datum_uit_dienst = Some(json!("2026-04-30"));
        assert_eq!(
            manager_of(&[&current, &earlier], reference).as_deref(),
            Some("new-manager")
        );
        assert_eq!(manager_of(&[], reference), None);
    }
}
