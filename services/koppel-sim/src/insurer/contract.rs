//! The wire contract of the pension insurer salary link: paths, headers, request and response
//! bodies, exactly as written down in `docs/recipients/pension-insurer-salary-link.md`.
//!
//! Every amount, factor and hour count is a JSON string holding a decimal (`"52000.00"`), never a
//! JSON number, so no float ever carries money between koppel and the insurer. A JSON number where
//! a decimal is expected is refused with `422 INVALID_BODY`.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Enrolment of a joiner (from koppel's `EmploymentStarted`).
pub const ENROLMENTS_PATH: &str = "/salary-link/v1/enrolments";
/// Change of pensionable salary, part-time percentage or hours (from `EmploymentChanged`).
pub const EMPLOYMENT_MUTATIONS_PATH: &str = "/salary-link/v1/employment-mutations";
/// A leaver (from `EmploymentEnded`).
pub const TERMINATIONS_PATH: &str = "/salary-link/v1/terminations";
/// A change of name, address, date of birth and the like (from `EmployeeUpdated`).
pub const PERSONAL_DATA_CHANGES_PATH: &str = "/salary-link/v1/personal-data-changes";
/// A start date corrected after the enrolment (payroll's start-date correction).
pub const START_DATE_CORRECTIONS_PATH: &str = "/salary-link/v1/start-date-corrections";
/// A termination withdrawn: the participant is active again (payroll's reinstate).
pub const REINSTATEMENTS_PATH: &str = "/salary-link/v1/reinstatements";
/// Control: register (link) an employer at the insurer. `{payroll_tax_number}` is appended.
pub const CONTROL_LINKED_EMPLOYERS_PATH: &str = "/salary-link/v1/control/linked-employers";
/// Control: the summary of everything received.
pub const CONTROL_SUMMARY_PATH: &str = "/salary-link/v1/control/summary";
/// Control: one participant's state. `{payroll_tax_number}/{bsn}` is appended.
pub const CONTROL_PARTICIPANTS_PATH: &str = "/salary-link/v1/control/participants";

/// The idempotency key header: koppel's event id, a UUID, identical on every retry.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// The JetStream stream sequence of the event, increasing in publish order.
pub const STREAM_SEQUENCE_HEADER: &str = "koppel-stream-sequence";

/// A citizen service number. Debug output hides it (BSNs are personal data that must not reach
/// logs), and it deserializes from any string so that a malformed BSN is answered with the
/// specific `INVALID_BSN` code rather than a generic body error.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bsn(String);

impl Bsn {
    pub fn new(bsn: impl Into<String>) -> Self {
        Self(bsn.into())
    }

    /// The digits. Named `expose` so that every place that reveals a BSN is easy to find.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Bsn {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Bsn(<redacted>)")
    }
}

/// What kind of salary-link request a request is; one per path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    Enrolment,
    EmploymentMutation,
    Termination,
    PersonalDataChange,
    StartDateCorrection,
    Reinstatement,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Enrolment => "enrolment",
            RequestKind::EmploymentMutation => "employment_mutation",
            RequestKind::Termination => "termination",
            RequestKind::PersonalDataChange => "personal_data_change",
            RequestKind::StartDateCorrection => "start_date_correction",
            RequestKind::Reinstatement => "reinstatement",
        }
    }
}

/// How the participant wants to be addressed, as in the Dutch "naamgebruik" code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameUsage {
    #[default]
    Own,
    Partner,
    PartnerOwn,
    OwnPartner,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    Male,
    Female,
    Other,
    Unknown,
}

/// Every part is optional because koppel's canonical address is: sources deliver foreign and
/// incomplete addresses, and refusing the whole enrolment over a missing postal code would stop
/// the pension accrual for a detail the insurer can ask the participant about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub street: Option<String>,
    pub house_number: Option<String>,
    pub house_number_addition: Option<String>,
    pub postal_code: Option<String>,
    pub city: Option<String>,
    /// ISO 3166-1 alpha-2, e.g. `NL`.
    pub country_code: Option<String>,
}

/// The pension-relevant personal data of a participant. Name parts follow the Dutch model
/// (prefix "van der" kept apart from the last name) because statements are addressed by them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonalData {
    pub initials: Option<String>,
    pub first_name: Option<String>,
    pub name_prefix: Option<String>,
    pub last_name: String,
    pub partner_name_prefix: Option<String>,
    pub partner_last_name: Option<String>,
    #[serde(default)]
    pub name_usage: NameUsage,
    pub date_of_birth: NaiveDate,
    pub gender: Gender,
    pub email: Option<String>,
    pub address: Option<Address>,
}

/// `POST /salary-link/v1/enrolments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentRequest {
    pub payroll_tax_number: String,
    pub bsn: Bsn,
    pub income_relationship_number: u32,
    pub personnel_number: String,
    pub scheme_id: String,
    pub start_date: NaiveDate,
    #[serde(with = "decimal_string")]
    pub hours_per_week: Decimal,
    #[serde(with = "decimal_string")]
    pub fulltime_hours_per_week: Decimal,
    #[serde(with = "decimal_string")]
    pub parttime_percentage: Decimal,
    #[serde(with = "decimal_string")]
    pub fulltime_pensionable_salary_yearly: Decimal,
    pub personal_data: PersonalData,
}

/// `POST /salary-link/v1/employment-mutations`. Carries the full current values, not a delta, so
/// a replayed or reordered mutation never leaves a half-applied state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmploymentMutationRequest {
    pub payroll_tax_number: String,
    pub bsn: Bsn,
    pub income_relationship_number: u32,
    pub personnel_number: String,
    pub effective_date: NaiveDate,
    pub scheme_id: String,
    #[serde(with = "decimal_string")]
    pub hours_per_week: Decimal,
    #[serde(with = "decimal_string")]
    pub fulltime_hours_per_week: Decimal,
    #[serde(with = "decimal_string")]
    pub parttime_percentage: Decimal,
    #[serde(with = "decimal_string")]
    pub fulltime_pensionable_salary_yearly: Decimal,
}

/// `POST /salary-link/v1/terminations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminationRequest {
    pub payroll_tax_number: String,
    pub bsn: Bsn,
    pub income_relationship_number: u32,
    pub personnel_number: String,
    /// The last day of the employment (inclusive), as the Loonaangifte's `DatEind`.
    pub end_date: NaiveDate,
    pub end_reason: Option<String>,
}

/// `POST /salary-link/v1/start-date-corrections`: the enrolled start date was wrong. Carries the
/// full current values too, which hold from the corrected start unless a later mutation said
/// otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartDateCorrectionRequest {
    pub payroll_tax_number: String,
    pub bsn: Bsn,
    pub income_relationship_number: u32,
    pub personnel_number: String,
    pub start_date: NaiveDate,
    pub scheme_id: String,
    #[serde(with = "decimal_string")]
    pub hours_per_week: Decimal,
    #[serde(with = "decimal_string")]
    pub fulltime_hours_per_week: Decimal,
    #[serde(with = "decimal_string")]
    pub parttime_percentage: Decimal,
    #[serde(with = "decimal_string")]
    pub fulltime_pensionable_salary_yearly: Decimal,
}

/// `POST /salary-link/v1/reinstatements`: the termination is withdrawn, the employment goes on.
/// `effective_date` is the day payroll withdrew it; the values are the full current ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReinstatementRequest {
    pub payroll_tax_number: String,
    pub bsn: Bsn,
    pub income_relationship_number: u32,
    pub personnel_number: String,
    pub effective_date: NaiveDate,
    pub scheme_id: String,
    #[serde(with = "decimal_string")]
    pub hours_per_week: Decimal,
    #[serde(with = "decimal_string")]
    pub fulltime_hours_per_week: Decimal,
    #[serde(with = "decimal_string")]
    pub parttime_percentage: Decimal,
    #[serde(with = "decimal_string")]
    pub fulltime_pensionable_salary_yearly: Decimal,
}

/// `POST /salary-link/v1/personal-data-changes`. Person-level, so no income relationship number:
/// koppel's `EmployeeUpdated` describes the person, not one of their employments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonalDataChangeRequest {
    pub payroll_tax_number: String,
    pub bsn: Bsn,
    pub personnel_number: String,
    pub personal_data: PersonalData,
}

/// `PUT /salary-link/v1/control/linked-employers/{payroll_tax_number}`: the insurer's own
/// registration of an employer ("aansluiting"), done out of band in reality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmployerLink {
    /// The employer's contract (affiliation) number at the insurer.
    pub contract_number: String,
    /// The pension schemes the employer's contract covers. Empty means "any scheme": handy for a
    /// demo that does not want to mirror the world's scheme ids.
    #[serde(default)]
    pub scheme_ids: Vec<String>,
}

/// The body of `202 Accepted`, and of `409 Conflict` for a repeated idempotency key (then it is
/// the receipt of the first delivery, unchanged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub receipt_id: Uuid,
    pub received_at: DateTime<Utc>,
    pub idempotency_key: Uuid,
    pub request_kind: RequestKind,
}

/// The body of every 400, 401 and 422 answer. `result` is always `NOK`, as the funds' technical
/// feedback says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub result: String,
    pub code: String,
    pub message: String,
}

/// Why the insurer refused a request. Every code is permanent: sending the same request again
/// gets the same answer until the data or the employer link is fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RejectionCode {
    /// No or a wrong bearer token (401).
    Unauthorized,
    /// The `Idempotency-Key` header is missing or not a UUID (400).
    InvalidIdempotencyKey,
    /// The `Koppel-Stream-Sequence` header is missing or not an unsigned integer (400).
    InvalidStreamSequence,
    /// The body is not JSON at all (400).
    MalformedJson,
    /// The body is JSON but not the documented shape: a missing or unknown field, a JSON number
    /// where a decimal string is expected, a bad date (422).
    InvalidBody,
    /// The same idempotency key arrived earlier with a different body or on another path (422).
    IdempotencyKeyReused,
    /// The loonheffingennummer is not `#########L##` (422).
    InvalidPayrollTaxNumber,
    /// The employer is not linked at the insurer: the funds' `0014.2` technical NOK (422).
    UnlinkedEmployer,
    /// The BSN fails the 11-proef (422).
    InvalidBsn,
    /// The scheme is not one of the employer's contract (422).
    UnknownScheme,
    /// A value is out of range, e.g. a part-time percentage above 100 (422).
    InvalidValue,
    /// A mutation, termination or personal-data change for a BSN never enrolled (422).
    UnknownParticipant,
    /// A mutation or termination for another income relationship than the enrolled one (422).
    IncomeRelationshipMismatch,
    /// An enrolment reusing the number of an ended income relationship: UPA control `p0042` (422).
    IncomeRelationshipNumberReused,
    /// An enrolment of a participant already active under another income relationship (422).
    ParticipantAlreadyEnrolled,
    /// An effective or end date before the enrolled start date, or after the end date (422).
    EffectiveDateOutsideEmployment,
}

impl RejectionCode {
    /// The machine-readable code in the error body. `0014.2` and `p0042` are the pension funds'
    /// own codes, kept so that people who know UPA feedback recognise them.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionCode::Unauthorized => "UNAUTHORIZED",
            RejectionCode::InvalidIdempotencyKey => "INVALID_IDEMPOTENCY_KEY",
            RejectionCode::InvalidStreamSequence => "INVALID_STREAM_SEQUENCE",
            RejectionCode::MalformedJson => "MALFORMED_JSON",
            RejectionCode::InvalidBody => "INVALID_BODY",
            RejectionCode::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            RejectionCode::InvalidPayrollTaxNumber => "INVALID_PAYROLL_TAX_NUMBER",
            RejectionCode::UnlinkedEmployer => "0014.2",
            RejectionCode::InvalidBsn => "INVALID_BSN",
            RejectionCode::UnknownScheme => "UNKNOWN_SCHEME",
            RejectionCode::InvalidValue => "INVALID_VALUE",
            RejectionCode::UnknownParticipant => "UNKNOWN_PARTICIPANT",
            RejectionCode::IncomeRelationshipMismatch => "INCOME_RELATIONSHIP_MISMATCH",
            RejectionCode::IncomeRelationshipNumberReused => "p0042",
            RejectionCode::ParticipantAlreadyEnrolled => "PARTICIPANT_ALREADY_ENROLLED",
            RejectionCode::EffectiveDateOutsideEmployment => "EFFECTIVE_DATE_OUTSIDE_EMPLOYMENT",
        }
    }

    /// 400 for requests that are broken as HTTP, 401 for authentication, 422 for everything the
    /// insurer understood and refused. All of them are permanent for the sender.
    pub fn http_status(self) -> u16 {
        match self {
            RejectionCode::Unauthorized => 401,
            RejectionCode::InvalidIdempotencyKey
            | RejectionCode::InvalidStreamSequence
            | RejectionCode::MalformedJson => 400,
            _ => 422,
        }
    }
}

/// Decimals as JSON strings, in both directions, written out here instead of relying on
/// rust_decimal's serde feature flags so the contract does not change when a feature is toggled
/// elsewhere in the workspace.
pub mod decimal_string {
    use std::str::FromStr;

    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        // Deserializing into String makes a JSON number fail with "expected a string", which is
        // exactly the refusal the contract promises.
        let text = String::deserialize(deserializer)?;
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.len() != text.len() || trimmed.contains(['e', 'E']) {
            return Err(serde::de::Error::custom(
                "expected a plain decimal string such as \"52000.00\"",
            ));
        }
        Decimal::from_str(trimmed).map_err(|_| {
            serde::de::Error::custom("expected a plain decimal string such as \"52000.00\"")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize)]
    struct Amount {
        #[serde(with = "decimal_string")]
        amount: Decimal,
    }

    #[test]
    fn decimals_travel_as_strings_and_keep_their_scale() {
        let parsed: Amount = serde_json::from_str(r#"{"amount":"52000.50"}"#).unwrap();
        assert_eq!(parsed.amount, Decimal::new(5_200_050, 2));
        assert_eq!(
            serde_json::to_string(&parsed).unwrap(),
            r#"{"amount":"52000.50"}"#
        );
    }

    #[test]
    fn json_numbers_and_odd_strings_are_refused_as_decimals() {
        for body in [
            r#"{"amount":52000.5}"#,
            r#"{"amount":52000}"#,
            r#"{"amount":"5.2e4"}"#,
            r#"{"amount":" 1"}"#,
            r#"{"amount":""}"#,
            r#"{"amount":"twelve"}"#,
        ] {
            assert!(
                serde_json::from_str::<Amount>(body).is_err(),
                "{body} should be refused"
            );
        }
    }

    #[test]
    fn bsn_debug_output_is_redacted() {
        let bsn = Bsn::new("123456782");
        assert_eq!(format!("{bsn:?}"), "Bsn(<redacted>)");
        assert_eq!(bsn.expose(), "123456782");
    }

    #[test]
    fn pension_fund_codes_are_kept_verbatim() {
        assert_eq!(RejectionCode::UnlinkedEmployer.as_str(), "0014.2");
        assert_eq!(RejectionCode::UnlinkedEmployer.http_status(), 422);
        assert_eq!(
            RejectionCode::IncomeRelationshipNumberReused.as_str(),
            "p0042"
        );
        assert_eq!(RejectionCode::Unauthorized.http_status(), 401);
        assert_eq!(RejectionCode::MalformedJson.http_status(), 400);
    }
}
