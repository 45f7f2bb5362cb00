//! Loket's JSON shapes (`sources.md` 1.5), as lenient serde types: every member optional and
//! unknown members ignored, because Loket adds fields over time and the mapping, not the
//! parser, decides what is mandatory. Each list item is parsed on its own, so one malformed
//! record fails only itself.

use serde::Deserialize;
use serde_json::Value;

use crate::http_source::Page;

/// The collection envelope: `_embedded`, `currentPage`, `totalPages` (`pageSize` and
/// `totalSize` are not relied on: `sources.md` could not verify them).
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    #[serde(rename = "_embedded", default)]
    pub(crate) embedded: Vec<Value>,
    #[serde(rename = "currentPage", default)]
    pub(crate) current_page: Option<u64>,
    #[serde(rename = "totalPages", default)]
    pub(crate) total_pages: Option<u64>,
}

impl From<Envelope> for Page<Value> {
    fn from(envelope: Envelope) -> Self {
        Page {
            items: envelope.embedded,
            current_page: envelope.current_page,
            total_pages: envelope.total_pages,
        }
    }
}

/// The single-resource envelope `{"content": {...}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Single {
    #[serde(default)]
    pub(crate) content: Value,
}

/// A `{"key": ..., "value": "..."}` metadata object.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub key: Option<Value>,
    #[serde(default)]
    pub value: Option<String>,
}

/// A `{"key": "<uuid>", "code": ..., "description": "..."}` reference (department, function,
/// distribution unit).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Reference {
    #[serde(default)]
    pub key: Option<Value>,
    #[serde(default)]
    pub code: Option<Value>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoketEmployer {
    pub id: String,
    #[serde(default)]
    pub employer_number: Option<Value>,
    #[serde(default)]
    pub company_name: Option<String>,
    #[serde(default)]
    pub chamber_of_commerce_number: Option<String>,
    /// Not in the public shape (Loket keeps it in a wage-tax resource); read when present.
    #[serde(default)]
    pub payroll_tax_number: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonalDetails {
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub initials: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub last_name_partner: Option<String>,
    #[serde(default)]
    pub prefix_partner: Option<String>,
    #[serde(default)]
    pub formatted_name: Option<String>,
    #[serde(default)]
    pub date_of_birth: Option<String>,
    #[serde(default)]
    pub how_to_format_last_name: Option<Metadata>,
    #[serde(default)]
    pub gender: Option<Metadata>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactInformation {
    #[serde(default)]
    pub email_address: Option<String>,
    #[serde(default)]
    pub mobile_phone_number: Option<String>,
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub business_email_address: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Country {
    #[serde(default)]
    pub iso_code: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoketAddress {
    #[serde(default)]
    pub street: Option<String>,
    #[serde(default)]
    pub house_number: Option<Value>,
    #[serde(default)]
    pub house_number_addition: Option<Value>,
    #[serde(default)]
    pub postal_code: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub country: Option<Country>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoketEmployee {
    pub id: String,
    #[serde(default)]
    pub employee_number: Option<Value>,
    #[serde(default)]
    pub personal_details: Option<PersonalDetails>,
    #[serde(default)]
    pub contact_information: Option<ContactInformation>,
    #[serde(default)]
    pub address: Option<LoketAddress>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmployeeReference {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub employee_number: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoketEmployment {
    pub id: String,
    #[serde(default)]
    pub start_date: Option<String>,
    #[serde(default)]
    pub end_date: Option<String>,
    #[serde(default)]
    pub employee: Option<EmployeeReference>,
    #[serde(default)]
    pub income_relationship_number: Option<Value>,
    #[serde(default)]
    pub type_of_employee: Option<Metadata>,
    #[serde(default)]
    pub employment_duration_type: Option<Metadata>,
    #[serde(default)]
    pub employment_contract_type: Option<Metadata>,
    #[serde(default)]
    pub end_of_employment_reason: Option<Metadata>,
    #[serde(default)]
    pub payroll_administration: Option<PayrollAdministration>,
}

/// The payroll administration an employment is paid in. `payrollPeriodType` (the loontijdvak:
/// 1 Maand, 2 Vier weken, 3 Week) is not in `sources.md`'s example; koppel reads it when
/// present and takes a month otherwise, which is what Loket's `Periodeloon` meant before.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PayrollAdministration {
    #[serde(default)]
    pub id: Option<Value>,
    #[serde(default)]
    pub payroll_period_type: Option<Metadata>,
}

/// The employment an item of an employer-wide `actual...` list belongs to.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmploymentReference {
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationalEntity {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub start_date: Option<String>,
    #[serde(default)]
    pub end_date: Option<String>,
    #[serde(default)]
    pub function: Option<Reference>,
    #[serde(default)]
    pub deviating_function_description: Option<String>,
    #[serde(default)]
    pub department: Option<Reference>,
    #[serde(default)]
    pub distribution_unit: Option<Reference>,
    #[serde(default)]
    pub place_of_employment: Option<String>,
    #[serde(default)]
    pub employment: Option<EmploymentReference>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shift {
    #[serde(default)]
    pub full_time_hours_per_week: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkingHours {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub start_date: Option<String>,
    #[serde(default)]
    pub end_date: Option<String>,
    #[serde(default)]
    pub shift: Option<Shift>,
    #[serde(default)]
    pub deviating_hours_per_week: Option<Value>,
    #[serde(default)]
    pub average_hours_per_week: Option<Value>,
    #[serde(default)]
    pub employment: Option<EmploymentReference>,
}

/// A wage period. `sources.md` names the endpoint but not the shape; the members read here
/// are `grossWage` (an amount) and `grossWageType` (its period, `Periodeloon` = per month).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Wage {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub start_date: Option<String>,
    #[serde(default)]
    pub end_date: Option<String>,
    #[serde(default)]
    pub gross_wage: Option<Value>,
    #[serde(default)]
    pub gross_wage_type: Option<Metadata>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Department {
    pub id: String,
    #[serde(default)]
    pub code: Option<Value>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub sub_department_of: Option<Reference>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserContact {
    #[serde(default)]
    pub email_address: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmployerUser {
    pub id: String,
    #[serde(default)]
    pub is_department_manager: Option<bool>,
    #[serde(default)]
    pub contact_information: Option<UserContact>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DepartmentLink {
    pub id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserDepartments {
    pub user_id: String,
    #[serde(default)]
    pub departments: Vec<DepartmentLink>,
}

/// A `lastmodifiedversionnumbers` item; the number may be named either way (`sources.md` 1.7).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionItem {
    pub id: String,
    #[serde(default)]
    pub last_modified_version_number: Option<u64>,
    #[serde(default)]
    pub version: Option<u64>,
}

impl VersionItem {
    pub fn number(&self) -> Option<u64> {
        self.last_modified_version_number.or(self.version)
    }
}

/// `citizenservicenumber` content.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CitizenServiceNumber {
    #[serde(default)]
    pub citizen_service_number: Option<Value>,
}

pub(crate) use crate::mapping::scalar_text;
