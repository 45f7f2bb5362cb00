//! Mapping unit tests on fixtures built from the examples `sources.md` documents.

use std::str::FromStr;

use chrono::NaiveDate;
use koppel_events::{Gender, NameUsage, SalaryPeriod};
use koppel_extract::loket::mapping::{
    ManagerDirectory, MappingError, MappingSettings, map_employee, map_employment, name_usage,
    pensionable_salary, valid_on,
};
use koppel_extract::loket::wire::{
    Department, EmployerUser, LoketEmployee, LoketEmployment, Metadata, OrganizationalEntity,
    UserDepartments, Wage, WorkingHours,
};
use rust_decimal::Decimal;
use serde_json::json;

fn decimal(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

/// The employee of sources.md 1.5 (Susan van Bergen, partner van de Wiel).
fn documented_employee() -> LoketEmployee {
    serde_json::from_value(json!({
        "id": "b14acd0d-75d7-4fc8-8b22-4a3924585cab", "employeeNumber": 156,
        "personalDetails": {"firstName": "Susan", "initials": "S.L.", "prefix": "van", "lastName": "Bergen",
            "lastNamePartner": "Wiel", "prefixPartner": "van de",
            "formattedName": "Wiel - van Bergen S.L. van de",
            "dateOfBirth": "1995-05-21", "placeOfBirth": "Amsterdam", "dateOfDeath": null, "aowDate": "2062-08-21",
            "howToFormatLastName": {"key": 2, "value": "last name + last name partner"},
            "civilStatus": {"key": 2, "value": "Maried"},
            "gender": {"key": 2, "value": "female"}, "nationality": {"key": 2, "value": "Dutch"},
            "title": {"key": 2, "value": "e.g. Msc, PHD or Baron"}, "photo": "https://api.loket.nl/v2/x"},
        "contactInformation": {"emailAddress": "info@loket.nl", "mobilePhoneNumber": "+31 6-1231456",
            "phoneNumber": "+31 13-1234567", "faxNumber": "+31 13-1234561",
            "businessEmailAddress": null, "businessPhoneNumber": null, "businessMobilePhoneNumber": null},
        "address": {"street": "Voordijk", "houseNumber": 12, "houseNumberAddition": "D", "postalCode": "1234AA",
            "city": "Leiden", "location": "Fourth floor", "country": {"key": 1, "value": "Netherlands", "isoCode": "NL"}},
        "identityDocument": {"documentIdentification": "CRE45553433", "typeOfDocument": {"key": 2, "value": "Passport"}}
    }))
    .unwrap()
}

#[test]
fn the_documented_employee_maps_with_the_partner_name_convention() {
    let employee = map_employee(&documented_employee(), Some("111222333"), None).unwrap();
    assert_eq!(employee.employee_number.as_deref(), Some("156"));
    assert_eq!(employee.name.name_usage, NameUsage::OwnPartner);
    assert_eq!(employee.name.prefix.as_deref(), Some("van"));
    assert_eq!(employee.name.partner_prefix.as_deref(), Some("van de"));
    assert_eq!(employee.name.formatted, "S.L. van Bergen-van de Wiel");
    // Gender from `gender`, not from `civilStatus` (S1's bug).
    assert_eq!(employee.gender, Gender::Female);
    assert_eq!(employee.date_of_birth, Some(date("1995-05-21")));
    assert_eq!(employee.email.as_deref(), Some("info@loket.nl"));
    assert_eq!(employee.phone.as_deref(), Some("+31 6-1231456"));
    let address = employee.address.unwrap();
    assert_eq!(address.house_number.as_deref(), Some("12"));
    assert_eq!(address.country_code.as_deref(), Some("NL"));
    assert!(!format!("{:?}", employee.bsn).contains("111222333"));
}

#[test]
fn every_name_usage_label_is_understood() {
    let usage = |key: i64, value: &str| {
        name_usage(Some(&Metadata {
            key: Some(json!(key)),
            value: Some(value.to_owned()),
        }))
    };
    assert_eq!(usage(1, "last name"), NameUsage::Own);
    assert_eq!(
        usage(2, "last name + last name partner"),
        NameUsage::OwnPartner
    );
    assert_eq!(usage(3, "last name partner"), NameUsage::Partner);
    assert_eq!(
        usage(4, "last name partner + last name"),
        NameUsage::PartnerOwn
    );
    assert_eq!(usage(4, "Naam partner + eigen naam"), NameUsage::PartnerOwn);
    assert_eq!(
        name_usage(Some(&Metadata {
            key: Some(json!(3)),
            value: None
        })),
        NameUsage::Partner
    );
    assert_eq!(name_usage(None), NameUsage::Own);
}

#[test]
fn bad_records_give_errors_that_name_no_values() {
    let error = map_employee(&documented_employee(), Some("123456789"), None).unwrap_err();
    assert!(matches!(error, MappingError::Bsn(_)));
    assert!(!error.to_string().contains("123456789"));
    let mut missing = documented_employee();
    if let Some(details) = missing.personal_details.as_mut() {
        details.last_name = None;
    }
    assert_eq!(
        map_employee(&missing, None, None).unwrap_err(),
        MappingError::Missing("personalDetails.lastName")
    );
    let mut bad_date = documented_employee();
    if let Some(details) = bad_date.personal_details.as_mut() {
        details.date_of_birth = Some("1995-13-32".to_owned());
    }
    assert_eq!(
        map_employee(&bad_date, None, None).unwrap_err(),
        MappingError::InvalidDate("personalDetails.dateOfBirth")
    );
}

fn documented_employment() -> LoketEmployment {
    serde_json::from_value(json!({
        "id": "5a1f0000-0000-4000-8000-000000000001", "startDate": "2018-01-01", "endDate": null,
        "historicalStartDate": "2012-05-01", "payrollId": 2,
        "employee": {"id": "b14acd0d-75d7-4fc8-8b22-4a3924585cab", "employeeNumber": 156, "firstName": "Susan"},
        "typeOfEmployee": {"key": 1, "value": "Werknemer"},
        "employmentDurationType": {"key": 1, "value": "Contract of indefinite duration"},
        "employmentContractType": {"key": 1, "value": "Arbeidsovereenkomst (excl BBL)"},
        "endOfEmploymentReason": null, "incomeRelationshipNumber": 12, "professionCode": 4
    }))
    .unwrap()
}

/// Two organisational entities, an old one (ended 2018-10-23) and the current one.
fn documented_organization() -> Vec<OrganizationalEntity> {
    serde_json::from_value(json!([
        {"id": "0e000000-0000-4000-8000-000000000001", "startDate": "2018-01-01", "endDate": "2018-10-23",
         "function": {"key": "f1", "description": "Directeur", "group": "internal"},
         "deviatingFunctionDescription": "Directeur", "deviatingFunctionGroup": "9A",
         "department": {"key": "d1", "code": 2, "description": "Verkoop"},
         "distributionUnit": {"key": "u1", "code": 2, "description": "Sales"},
         "placeOfEmployment": "Amsterdam office"},
        {"id": "0e000000-0000-4000-8000-000000000002", "startDate": "2018-10-24", "endDate": null,
         "function": {"key": "f2", "description": "Accountmanager", "group": "internal"},
         "deviatingFunctionDescription": null,
         "department": {"key": "d2", "code": 3, "description": "Inkoop"},
         "distributionUnit": {"key": "u2", "code": 3, "description": "Purchasing"},
         "placeOfEmployment": "Leiden"}
    ]))
    .unwrap()
}

fn documented_working_hours() -> WorkingHours {
    serde_json::from_value(json!({
        "id": "0a000000-0000-4000-8000-000000000001", "startDate": "2018-01-01", "endDate": null,
        "shift": {"shiftNumber": 1, "fullTimeHoursPerWeek": 40, "bonusPercentage": 12},
        "deviatingHoursPerWeek": 32, "averageHoursPerWeek": 32, "aggregatedHoursPerWeek": 24,
        "averageParttimeFactor": 0, "regularWorkPattern": true
    }))
    .unwrap()
}

fn wage(amount: &str) -> Wage {
    serde_json::from_value(json!({
        "id": "0b000000-0000-4000-8000-000000000001", "startDate": "2018-01-01", "endDate": null,
        "grossWage": serde_json::Number::from_str(amount).unwrap(),
        "grossWageType": {"key": 1, "value": "Periodeloon"}
    }))
    .unwrap()
}

#[test]
fn the_organisational_entity_valid_on_the_reference_date_is_used() {
    let history = documented_organization();
    let old = valid_on(&history, date("2018-06-01")).unwrap();
    assert_eq!(
        old.department.as_ref().unwrap().description.as_deref(),
        Some("Verkoop")
    );
    let current = valid_on(&history, date("2025-01-01")).unwrap();
    let employment = map_employment(
        &documented_employment(),
        Some(current),
        Some(&documented_working_hours()),
        Some(&wage("4000")),
        &MappingSettings::default(),
    )
    .unwrap();
    let department = employment.department.unwrap();
    assert_eq!(department.id, "d2");
    assert_eq!(department.code.as_deref(), Some("3"));
    assert_eq!(
        employment.cost_center.unwrap().name.as_deref(),
        Some("Purchasing")
    );
    assert_eq!(employment.job_title.as_deref(), Some("Accountmanager"));
    assert_eq!(employment.location.as_deref(), Some("Leiden"));
    assert_eq!(employment.income_relationship_number, Some(12));
    assert_eq!(employment.employment_type.as_deref(), Some("Werknemer"));
    assert!(valid_on(&history, date("2017-01-01")).is_none());
}

#[test]
fn hours_factor_salary_and_pensionable_salary_follow_the_documented_formula() {
    let employment = map_employment(
        &documented_employment(),
        None,
        Some(&documented_working_hours()),
        Some(&wage("3200.50")),
        &MappingSettings::default(),
    )
    .unwrap();
    // The employee's own 32 hours against the shift's 40 (not the shift's 40 as own hours).
    assert_eq!(employment.hours_per_week, Some(decimal("32")));
    assert_eq!(employment.fulltime_hours_per_week, Some(decimal("40")));
    assert_eq!(employment.parttime_factor, Some(decimal("0.8")));
    let salary = employment.salary.unwrap();
    assert_eq!(salary.period, SalaryPeriod::Month);
    assert_eq!(salary.amount.amount, decimal("3200.50"));
    // 3200.50 / 0.8 * 12 * 1.08 = 51848.10
    assert_eq!(
        employment.pensionable_salary.unwrap().amount,
        decimal("51848.10")
    );

    let thirteen = MappingSettings {
        months_per_year: decimal("13"),
        holiday_allowance_percent: decimal("8"),
    };
    assert_eq!(
        pensionable_salary(&salary, Some(decimal("40")), Some(decimal("40")), &thirteen)
            .unwrap()
            .amount,
        decimal("44935.02")
    );
    assert!(
        pensionable_salary(&salary, Some(decimal("0")), Some(decimal("40")), &thirteen).is_none()
    );
}

#[test]
fn a_missing_start_date_is_a_record_error() {
    let mut employment = documented_employment();
    employment.start_date = None;
    assert_eq!(
        map_employment(&employment, None, None, None, &MappingSettings::default()).unwrap_err(),
        MappingError::Missing("startDate")
    );
}

#[test]
fn managers_are_found_through_department_manager_users_by_business_email() {
    let departments: Vec<Department> = serde_json::from_value(json!([
        {"id": "board", "code": 1, "description": "Directie", "subDepartmentOf": null},
        {"id": "sales", "code": 2, "description": "Verkoop", "subDepartmentOf": {"key": "board", "code": 1}}
    ]))
    .unwrap();
    let users: Vec<EmployerUser> = serde_json::from_value(json!([
        {"id": "u-admin", "isDepartmentManager": false, "contactInformation": {"emailAddress": "salaris@x.nl"}},
        {"id": "u-ceo", "isDepartmentManager": true, "contactInformation": {"emailAddress": "CEO@x.nl"}},
        {"id": "u-sales", "isDepartmentManager": true, "contactInformation": {"emailAddress": "sales.lead@x.nl"}}
    ]))
    .unwrap();
    let links: Vec<UserDepartments> = serde_json::from_value(json!([
        {"userId": "u-admin", "departments": [{"id": "board"}, {"id": "sales"}]},
        {"userId": "u-ceo", "departments": [{"id": "board"}]},
        {"userId": "u-sales", "departments": [{"id": "sales"}]}
    ]))
    .unwrap();
    let employee = |id: &str, email: &str| -> LoketEmployee {
        serde_json::from_value(
            json!({"id": id, "contactInformation": {"businessEmailAddress": email}}),
        )
        .unwrap()
    };
    let employees = vec![
        employee("e-ceo", "ceo@x.nl"),
        employee("e-lead", "sales.lead@x.nl"),
        employee("e-rep", "rep@x.nl"),
    ];
    let directory = ManagerDirectory::build(&departments, &users, &links, &employees);
    assert_eq!(
        directory.manager_of("sales", "e-rep").as_deref(),
        Some("e-lead")
    );
    // A manager's manager is found up the tree.
    assert_eq!(
        directory.manager_of("sales", "e-lead").as_deref(),
        Some("e-ceo")
    );
    assert_eq!(directory.manager_of("board", "e-ceo"), None);
    assert_eq!(directory.manager_of("unknown", "e-rep"), None);
}
