//! World entities rendered in Loket's JSON shapes (`sources.md` 1.5), field names exact.
//!
//! Where `sources.md` does not know a shape, the choice made here is written on the function.
//! Enum-like fields are `{"key": <int>, "value": "<label>"}` metadata objects; references to
//! departments, functions and distribution units are `{"key": "<uuid>", ...}` objects.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::world::names::END_OF_EMPLOYMENT_REASONS;
use crate::world::{
    CivilStatus, ContractDuration, Department, Employee, Employer, Employment, Gender, NameUsage,
    OrganizationalPeriod, PayPeriod, RecordMalformation, WagePeriod, WorkingHoursPeriod,
};

/// A `{key, value}` metadata object.
fn metadata(key: u32, value: &str) -> Value {
    json!({ "key": key, "value": value })
}

fn date(value: NaiveDate) -> Value {
    Value::String(value.format("%Y-%m-%d").to_string())
}

fn optional_date(value: Option<NaiveDate>) -> Value {
    value.map_or(Value::Null, date)
}

fn optional_text(value: &str) -> Value {
    if value.is_empty() {
        Value::Null
    } else {
        Value::String(value.to_owned())
    }
}

/// A decimal as a JSON number, as Loket sends hours and amounts.
///
/// serde_json (without `arbitrary_precision`) keeps a fractional number as an f64 on its way to
/// the wire. No arithmetic happens on it, and every amount here has at most two decimals and
/// far fewer than 15 significant digits, so the shortest round-trip printing serde_json uses
/// writes exactly the decimal digits back out.
pub(super) fn decimal_number(value: Decimal) -> Value {
    value
        .normalize()
        .to_string()
        .parse::<serde_json::Number>()
        .map_or(Value::Null, Value::Number)
}

pub(super) fn employer(employer: &Employer) -> Value {
    json!({
        "id": employer.id,
        "employerNumber": employer.employer_number,
        "companyName": employer.company_name,
        "chamberOfCommerceNumber": employer.chamber_of_commerce_number,
        // The doc shows no payroll tax number field on the employer; Loket keeps it in a
        // separate wage-tax resource. It is served here under a chosen name so extractors can
        // read it without an extra call; a client must treat it as optional.
        "payrollTaxNumber": employer.payroll_tax_number,
        "employerLogo": null,
        "providerLogo": null,
        "legalForm": metadata(1, "B.V."),
        "branch": null,
        "sbi": null,
        "address": address(&employer.address, true),
        "contactInformation": {
            "emailAddress": format!("info@{}", employer.email_domain),
            "phoneNumber": null,
            "faxNumber": null,
            "website": format!("www.{}", employer.email_domain),
        },
        "contact": null,
        "providerSettings": null,
    })
}

fn address(address: &crate::world::Address, with_province: bool) -> Value {
    let mut fields = json!({
        "street": address.street,
        "houseNumber": address.house_number,
        "houseNumberAddition": null,
        "postalCode": address.postal_code,
        "city": address.city,
        "location": null,
        "country": { "key": 1, "value": "Nederland", "isoCode": "NL" },
        "furtherIndication": null,
    });
    if with_province && let Some(object) = fields.as_object_mut() {
        object.insert("province".to_owned(), Value::Null);
    }
    fields
}

/// Loket's `howToFormatLastName`. The doc shows key 2 = "last name + last name partner"; the
/// other keys are chosen in the same wording.
fn how_to_format_last_name(usage: NameUsage) -> Value {
    match usage {
        NameUsage::Own => metadata(1, "last name"),
        NameUsage::OwnPartner => metadata(2, "last name + last name partner"),
        NameUsage::Partner => metadata(3, "last name partner"),
        NameUsage::PartnerOwn => metadata(4, "last name partner + last name"),
    }
}

/// Loket's `formattedName`, a sortable form: the first last name without its prefix, then
/// (with a partner name in use) " - " and the second last name with its prefix, then the
/// initials and the first name's prefix. The doc's example "Wiel - van Bergen S.L. van de" is
/// partner-own for own "van Bergen" and partner "van de Wiel".
pub(super) fn loket_formatted_name(employee: &Employee) -> String {
    let own = (employee.prefix, employee.last_name);
    let partner = employee
        .partner
        .map(|partner| (partner.prefix, partner.last_name));
    let (first, second) = match (employee.name_usage, partner) {
        (NameUsage::Partner, Some(partner)) => (partner, None),
        (NameUsage::PartnerOwn, Some(partner)) => (partner, Some(own)),
        (NameUsage::OwnPartner, Some(partner)) => (own, Some(partner)),
        _ => (own, None),
    };
    let mut name = first.1.to_owned();
    if let Some((prefix, last_name)) = second {
        name.push_str(" - ");
        name.push_str(&crate::world::join_prefix(prefix, last_name));
    }
    name.push(' ');
    name.push_str(&employee.initials);
    if !first.0.is_empty() {
        name.push(' ');
        name.push_str(first.0);
    }
    name
}

fn gender(gender: Gender) -> Value {
    match gender {
        Gender::Male => metadata(1, "Man"),
        Gender::Female => metadata(2, "Vrouw"),
        Gender::Unknown => metadata(3, "Onbekend"),
    }
}

fn civil_status(status: CivilStatus) -> Value {
    match status {
        CivilStatus::Unmarried => metadata(1, "Ongehuwd"),
        CivilStatus::Married => metadata(2, "Gehuwd"),
        CivilStatus::Divorced => metadata(4, "Gescheiden"),
    }
}

/// The date of birth as served, broken on purpose for an `InvalidDateOfBirth` record.
fn served_date_of_birth(employee: &Employee) -> Value {
    if employee.malformation == Some(RecordMalformation::InvalidDateOfBirth) {
        // Looks like a date, parses as none: month 13 of day 32.
        return Value::String(format!("{}-13-32", employee.date_of_birth.year()));
    }
    date(employee.date_of_birth)
}

/// Removes `lastName` from a name object when the record carries `MissingLastName`.
fn apply_missing_last_name(employee: &Employee, fields: &mut Map<String, Value>) {
    if employee.malformation == Some(RecordMalformation::MissingLastName) {
        fields.remove("lastName");
    }
}

/// AOW (state pension) date: the doc shows it; the simulator uses the 67th birthday.
fn aow_date(date_of_birth: NaiveDate) -> Value {
    date_of_birth
        .with_year(date_of_birth.year() + 67)
        .or_else(|| {
            date_of_birth
                .succ_opt()
                .and_then(|next| next.with_year(next.year() + 67))
        })
        .map_or(Value::Null, date)
}

pub(super) fn employee(employee: &Employee) -> Value {
    let mut personal_details = json!({
        "firstName": employee.first_name,
        "initials": employee.initials,
        "prefix": optional_text(employee.prefix),
        "lastName": employee.last_name,
        "lastNamePartner": employee.partner.map(|partner| partner.last_name),
        "prefixPartner": employee.partner.map(|partner| optional_text(partner.prefix)),
        "formattedName": loket_formatted_name(employee),
        "dateOfBirth": served_date_of_birth(employee),
        "placeOfBirth": employee.place_of_birth,
        "dateOfDeath": null,
        "aowDate": aow_date(employee.date_of_birth),
        "howToFormatLastName": how_to_format_last_name(employee.name_usage),
        "civilStatus": civil_status(employee.civil_status),
        "gender": gender(employee.gender),
        "nationality": metadata(1, "Nederlandse"),
        "title": null,
        "photo": null,
    });
    if let Some(fields) = personal_details.as_object_mut() {
        apply_missing_last_name(employee, fields);
    }
    json!({
        "id": employee.id,
        "employeeNumber": employee.employee_number,
        "personalDetails": personal_details,
        // `emailAddress` carries the private address and `businessEmailAddress` the work
        // address (S3 lists both). Manager users carry the work address, so join users to
        // employees on `businessEmailAddress`.
        "contactInformation": {
            "emailAddress": employee.private_email,
            "mobilePhoneNumber": employee.mobile_phone_number,
            "phoneNumber": null,
            "faxNumber": null,
            "businessEmailAddress": employee.work_email,
            "businessPhoneNumber": null,
            "businessMobilePhoneNumber": null,
        },
        "address": address(&employee.address, false),
        "deviatingPostalAddress": null,
        "identityDocument": null,
        "travel": null,
        "exclusionFromAbsenceStatus": false,
        "statusEmployeeSelfService": null,
        "revokeEmployeeSelfServiceAccessOn": null,
    })
}

/// The employee summary embedded in an employment.
fn employment_employee(employee: &Employee) -> Value {
    let mut summary = json!({
        "id": employee.id,
        "employeeNumber": employee.employee_number,
        "firstName": employee.first_name,
        "initials": employee.initials,
        "prefix": optional_text(employee.prefix),
        "lastName": employee.last_name,
        "lastNamePartner": employee.partner.map(|partner| partner.last_name),
        "prefixPartner": employee.partner.map(|partner| optional_text(partner.prefix)),
        "formattedName": loket_formatted_name(employee),
        "dateOfBirth": served_date_of_birth(employee),
        "photo": null,
    });
    if let Some(fields) = summary.as_object_mut() {
        apply_missing_last_name(employee, fields);
    }
    summary
}

pub(super) fn employment(employer: &Employer, employment: &Employment) -> Value {
    let employee = employer
        .employee_at(employment.employee_index)
        .map_or(Value::Null, employment_employee);
    let end_reason = employment.end_reason.map_or(Value::Null, |reason| {
        let key = END_OF_EMPLOYMENT_REASONS
            .iter()
            .position(|known| *known == reason)
            .and_then(|position| u32::try_from(position + 1).ok())
            .unwrap_or(0);
        metadata(key, reason)
    });
    let (duration_type, indefinite_since) = match employment.contract_duration {
        ContractDuration::Indefinite => {
            (metadata(1, "Onbepaalde tijd"), date(employment.start_date))
        }
        ContractDuration::Definite => (metadata(2, "Bepaalde tijd"), Value::Null),
    };
    json!({
        "id": employment.id,
        "startDate": date(employment.start_date),
        "endDate": optional_date(employment.end_date),
        "historicalStartDate": null,
        "payrollId": null,
        "employee": employee,
        "administration": null,
        "payrollAdministration": {
            "id": employer.id,
            "name": employer.company_name,
            "description": null,
            "clientNumber": employer.employer_number,
            "payrollPeriodType": payroll_period_type(employer.pay_period),
        },
        "nonPayrollAdministration": null,
        "typeOfEmployee": metadata(1, "Werknemer"),
        "employmentDurationType": duration_type,
        "employmentContractType": metadata(1, "Arbeidsovereenkomst (excl BBL)"),
        "employmentCategoryType": null,
        "endOfEmploymentReason": end_reason,
        "endOfEmploymentReasonTaxAuthorities": null,
        "endOfEmploymentDueToIllness": false,
        "startDateContractOfIndefiniteDuration": indefinite_since,
        "cancellationPeriodTimeUnit": metadata(4, "Maand(en)"),
        "cancellationPeriodEmployee": 1,
        "cancellationPeriodEmployer": 1,
        "incomeRelationshipNumber": employment.income_relationship_number,
        "professionCode": null,
        "isDirectorAndMajorShareholder": false,
        "isOnCallEmployment": employment.on_call,
        "writtenEmploymentContract": true,
        "emailLeaveRequest": null,
        "namePayslip": employer.employee_at(employment.employee_index).map(Employee::formatted_name),
        "linkedEmployment": null,
        "employeeProfileId": null,
        "essMutationSet": null,
    })
}

/// A `{key, code, description}` department reference.
fn department_reference(department: &Department) -> Value {
    json!({ "key": department.id, "code": department.code, "description": department.name })
}

pub(super) fn organizational_entity(employer: &Employer, period: &OrganizationalPeriod) -> Value {
    let function = employer.job_function_at(period.job_function).map_or(Value::Null, |function| {
        json!({ "key": function.id, "description": function.title, "group": function.group })
    });
    let department = employer
        .department_at(period.department)
        .map_or(Value::Null, department_reference);
    let distribution_unit = employer.cost_center_at(period.cost_center).map_or(
        Value::Null,
        |center| json!({ "key": center.id, "code": center.code, "description": center.name }),
    );
    json!({
        "id": period.id,
        "startDate": date(period.start_date),
        "endDate": optional_date(period.end_date),
        "function": function,
        "deviatingFunctionDescription": null,
        "deviatingFunctionGroup": null,
        "standardFunction": null,
        "department": department,
        "distributionUnit": distribution_unit,
        "placeOfEmployment": period.location,
        "internalTelephoneExtensionNumber": null,
    })
}

/// Working hours. The employee's own hours are in `averageHoursPerWeek` (always) and in
/// `deviatingHoursPerWeek` (only when they differ from the shift's full-time week, else null).
/// `averageParttimeFactor` is a percentage with two decimals (100 for a full-timer); the doc's
/// example (0) does not settle its unit.
pub(super) fn working_hours(period: &WorkingHoursPeriod) -> Value {
    let deviating = if period.hours_per_week == period.full_time_hours_per_week {
        Value::Null
    } else {
        decimal_number(period.hours_per_week)
    };
    let factor_percentage = (period.part_time_factor() * Decimal::ONE_HUNDRED).round_dp(2);
    json!({
        "id": period.id,
        "startDate": date(period.start_date),
        "endDate": optional_date(period.end_date),
        "shift": {
            "shiftNumber": 1,
            "fullTimeHoursPerWeek": decimal_number(period.full_time_hours_per_week),
            "bonusPercentage": 0,
        },
        "deviatingHoursPerWeek": deviating,
        "averageHoursPerWeek": decimal_number(period.hours_per_week),
        "aggregatedHoursPerWeek": decimal_number(period.hours_per_week),
        "averageParttimeFactor": decimal_number(factor_percentage),
        "deviatingSvDaysPerPeriod": null,
        "regularWorkPattern": !period.hours_per_week.is_zero(),
        "flexibleHoursContract": if period.hours_per_week.is_zero() {
            metadata(3, "Nulurencontract")
        } else {
            Value::Null
        },
        "contractCode": null,
        "calculateUsingWorkPattern": {
            "leaveHours": false,
            "hoursRegularPeriod": false,
            "hoursBrokenPeriod": false,
            "daysDailyRate": false,
            "deviatingDaysAndHours": false,
        },
        "workPattern": null,
    })
}

/// The payroll administration's pay period (loontijdvak). `sources.md` shows
/// `payrollAdministration` with `cla` and `wageModel` but no period; the simulator serves it
/// as `payrollPeriodType` metadata: 1 Maand, 2 Vier weken, 3 Week.
fn payroll_period_type(pay_period: PayPeriod) -> Value {
    match pay_period {
        PayPeriod::Month => metadata(1, "Maand"),
        PayPeriod::FourWeeks => metadata(2, "Vier weken"),
        PayPeriod::Week => metadata(3, "Week"),
    }
}

/// A wage. `sources.md` names the endpoint but not the shape; the simulator chose
/// `grossWage` (a JSON number) with `grossWageType` metadata: `{"key":1,"value":"Periodeloon"}`
/// is the gross amount per pay period of the payroll administration (see
/// [`payroll_period_type`]: per month, four weeks or week), `{"key":2,"value":"Uurloon"}` a
/// gross hourly wage (hourly-paid and on-call employments).
pub(super) fn wage(employer: &Employer, period: &WagePeriod) -> Value {
    let (amount, wage_type) = match period.hourly_rate {
        Some(rate) => (rate, metadata(2, "Uurloon")),
        None => (
            employer.pay_period.amount_per_period(period.monthly_salary),
            metadata(1, "Periodeloon"),
        ),
    };
    json!({
        "id": period.id,
        "startDate": date(period.start_date),
        "endDate": optional_date(period.end_date),
        "grossWage": decimal_number(amount),
        "grossWageType": wage_type,
        "netWage": null,
        "wageScale": null,
    })
}

/// The employment reference added to items of the employer-wide `actual...` lists, whose
/// item shape `sources.md` does not give: the entity fields plus
/// `"employment": {"id", "incomeRelationshipNumber", "employee": {"id", "employeeNumber"}}`.
pub(super) fn with_employment_reference(
    mut item: Value,
    employer: &Employer,
    employment: &Employment,
) -> Value {
    let employee_number = employer
        .employee_at(employment.employee_index)
        .map(|employee| employee.employee_number);
    if let Some(fields) = item.as_object_mut() {
        fields.insert(
            "employment".to_owned(),
            json!({
                "id": employment.id,
                "incomeRelationshipNumber": employment.income_relationship_number,
                "employee": { "id": employment.employee_id, "employeeNumber": employee_number },
            }),
        );
    }
    item
}

pub(super) fn department(employer: &Employer, department: &Department) -> Value {
    let parent = department
        .parent_department
        .and_then(|index| employer.department_at(index))
        .map_or(Value::Null, department_reference);
    json!({
        "id": department.id,
        "code": department.code,
        "description": department.name,
        "emailLeaveRequest": null,
        "subDepartmentOf": parent,
    })
}

/// A Loket user of the employer: one per department manager plus a payroll administrator.
#[derive(Debug)]
pub(super) struct EmployerUser<'a> {
    pub(super) id: Uuid,
    /// The manager this user is; `None` for the payroll administrator.
    pub(super) manager: Option<&'a Employee>,
    /// Positions in `Employer::departments` the user is linked to.
    pub(super) departments: Vec<usize>,
}

/// The employer's users: the payroll administrator (linked to every department, not a
/// department manager) followed by one user per distinct department manager, in department
/// order. User ids are UUIDv5s of the employer and employee ids, so they are stable.
pub(super) fn employer_users(employer: &Employer) -> Vec<EmployerUser<'_>> {
    let mut users = vec![EmployerUser {
        id: Uuid::new_v5(&employer.id, b"payroll-administrator"),
        manager: None,
        departments: (0..employer.departments.len()).collect(),
    }];
    for (position, department) in employer.departments.iter().enumerate() {
        let Some(manager_id) = department.manager_employee_id else {
            continue;
        };
        if let Some(existing) = users
            .iter_mut()
            .find(|user| user.manager.is_some_and(|m| m.id == manager_id))
        {
            existing.departments.push(position);
            continue;
        }
        let Some(manager) = employer
            .employees
            .iter()
            .find(|employee| employee.id == manager_id)
        else {
            continue;
        };
        users.push(EmployerUser {
            id: Uuid::new_v5(&employer.id, manager_id.as_bytes()),
            manager: Some(manager),
            departments: vec![position],
        });
    }
    users
}

pub(super) fn user(employer: &Employer, user: &EmployerUser<'_>) -> Value {
    let (user_name, personal_details, email, role) = match user.manager {
        Some(manager) => (
            format!(
                "{}{}",
                manager.first_name.to_lowercase(),
                manager.employee_number
            ),
            json!({
                "firstName": manager.first_name,
                "initials": manager.initials,
                "prefix": optional_text(manager.prefix),
                "lastName": manager.last_name,
            }),
            manager.work_email.clone(),
            metadata(4, "Leidinggevende"),
        ),
        None => (
            "salarisadministratie".to_owned(),
            json!({ "firstName": "Salaris", "initials": "S.", "prefix": null, "lastName": "Administratie" }),
            format!("salaris@{}", employer.email_domain),
            metadata(3, "Salarisadministrateur"),
        ),
    };
    json!({
        "id": user.id,
        "userName": user_name,
        "isDepartmentManager": user.manager.is_some(),
        "personalDetails": personal_details,
        "contactInformation": { "emailAddress": email, "phoneNumber": null, "placeOfEmployment": null },
        "accessStatus": metadata(3, "Has access to Client"),
        "loginMethod": metadata(1, "Username and password"),
        "userSpecifiedRole": role,
        "userCustomSpecifiedRole": null,
        "azureActiveDirectory": null,
        "dateTimeCreation": null,
        "dateTimeLastLogin": null,
        "hasMultiFactorAuthentication": false,
        "twoFactorAuthenticationRequired": false,
        "hasIntegrations": false,
        "isLinkedToMultipleEmployers": false,
        "hasAccessToPayrollingTestData": false,
    })
}

/// `users/departments` item: `{"userId", "departments": [{"id", "code", "description",
/// "hasAccessToSubDepartments"}]}`; the members beyond `id` are the simulator's choice.
pub(super) fn user_departments(employer: &Employer, user: &EmployerUser<'_>) -> Value {
    let departments: Vec<Value> = user
        .departments
        .iter()
        .filter_map(|index| employer.department_at(*index))
        .map(|department| {
            json!({
                "id": department.id,
                "code": department.code,
                "description": department.name,
                // The board's manager and the administrator see the whole tree.
                "hasAccessToSubDepartments": department.parent_department.is_none() || user.manager.is_none(),
            })
        })
        .collect();
    json!({ "userId": user.id, "departments": departments })
}

/// `citizenservicenumber` content: `{"citizenServiceNumber": "123456782"}` (shape chosen; the
/// doc gives only the path).
pub(super) fn citizen_service_number(employee: &Employee) -> Value {
    json!({ "citizenServiceNumber": employee.served_citizen_service_number() })
}

/// A `lastmodifiedversionnumbers` item: `{"id", "lastModifiedVersionNumber"}` (the likely
/// form `sources.md` 1.7 names).
pub(super) fn version_item(id: Uuid, version: u64) -> Value {
    json!({ "id": id, "lastModifiedVersionNumber": version })
}
