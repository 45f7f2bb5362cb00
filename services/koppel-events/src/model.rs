//! The canonical model every source is mapped into: employer, employee, employment.
//!
//! These are plain data. They mirror the named types in `schemas/types/` one to one; the
//! conversion to and from Avro lives in `avro_value`, so nothing here knows about the wire.

use std::fmt;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

/// The system an event was extracted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceSystem {
    /// A symbol this reader does not know (written by a newer writer).
    Unknown,
    Loket,
    Unit4,
    Raet,
    Hibob,
}

impl SourceSystem {
    /// The lower-case token used in subjects and configuration.
    pub fn as_token(self) -> &'static str {
        match self {
            SourceSystem::Unknown => "unknown",
            SourceSystem::Loket => "loket",
            SourceSystem::Unit4 => "unit4",
            SourceSystem::Raet => "raet",
            SourceSystem::Hibob => "hibob",
        }
    }

    pub fn from_token(token: &str) -> Option<Self> {
        match token {
            "loket" => Some(SourceSystem::Loket),
            "unit4" => Some(SourceSystem::Unit4),
            "raet" => Some(SourceSystem::Raet),
            "hibob" => Some(SourceSystem::Hibob),
            _ => None,
        }
    }
}

impl fmt::Display for SourceSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_token())
    }
}

/// A Dutch citizen service number (burgerservicenummer) that passed the 11-proef.
///
/// Its `Debug` prints a mask, and it has no `Display`: the only way to the digits is
/// [`Bsn::expose`], so a BSN cannot reach a log line by accident.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Bsn(String);

/// Why a string is not a BSN. Carries no digits, so it is safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BsnError {
    #[error("a BSN has 9 digits (8-digit numbers get a leading zero), got {length} characters")]
    Length { length: usize },
    #[error("a BSN holds digits only")]
    NotDigits,
    #[error("the BSN fails the 11-proef")]
    ElevenTest,
}

impl Bsn {
    /// Parses and checks a BSN. An 8-digit number is padded with a leading zero, as the
    /// Belastingdienst allows.
    pub fn parse(input: &str) -> Result<Self, BsnError> {
        let trimmed = input.trim();
        if !trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BsnError::NotDigits);
        }
        let digits = match trimmed.len() {
            9 => trimmed.to_owned(),
            8 => format!("0{trimmed}"),
            length => return Err(BsnError::Length { length }),
        };
        if !passes_eleven_test(&digits) {
            return Err(BsnError::ElevenTest);
        }
        Ok(Bsn(digits))
    }

    /// The nine digits. Call it only where the BSN leaves koppel on purpose (the wire, a
    /// recipient request, `--show-pii`).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `*****1234`: enough to tell two people apart in a support conversation.
    pub fn masked(&self) -> String {
        let tail = self.0.get(5..).unwrap_or_default();
        format!("*****{tail}")
    }
}

/// Serialized as the nine digits: JSON output is a wire format like Avro. Tools that print
/// events for people (`koppel tail`) mask it unless asked not to.
impl Serialize for Bsn {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl fmt::Debug for Bsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bsn(<redacted>)")
    }
}

/// The 11-proef for BSNs: 9*d1 + 8*d2 + ... + 2*d8 - 1*d9 is a multiple of 11 (and not 0).
pub fn passes_eleven_test(digits: &str) -> bool {
    if digits.len() != 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let mut sum: i64 = 0;
    for (position, byte) in digits.bytes().enumerate() {
        let digit = i64::from(byte - b'0');
        let weight = if position == 8 {
            -1
        } else {
            9 - position as i64
        };
        sum += weight * digit;
    }
    sum != 0 && sum % 11 == 0
}

/// Which last names a person uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NameUsage {
    Own,
    Partner,
    PartnerOwn,
    OwnPartner,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct PersonName {
    pub initials: Option<String>,
    pub first_name: Option<String>,
    pub prefix: Option<String>,
    pub last_name: String,
    pub partner_prefix: Option<String>,
    pub partner_last_name: Option<String>,
    pub name_usage: NameUsage,
    pub formatted: String,
}

impl PersonName {
    /// Formats the name the Dutch way for the given usage, e.g. "J. de Vries-van Dijk" for
    /// own-partner. Used by sources that do not deliver a formatted name.
    pub fn format(
        initials: Option<&str>,
        prefix: Option<&str>,
        last_name: &str,
        partner_prefix: Option<&str>,
        partner_last_name: Option<&str>,
        name_usage: NameUsage,
    ) -> String {
        let join = |prefix: Option<&str>, name: &str| match prefix {
            Some(prefix) if !prefix.is_empty() => format!("{prefix} {name}"),
            _ => name.to_owned(),
        };
        let own = join(prefix, last_name);
        let partner = partner_last_name.map(|name| join(partner_prefix, name));
        let last = match (name_usage, partner) {
            (NameUsage::Own, _) | (_, None) => own,
            (NameUsage::Partner, Some(partner)) => partner,
            (NameUsage::PartnerOwn, Some(partner)) => format!("{partner}-{own}"),
            (NameUsage::OwnPartner, Some(partner)) => format!("{own}-{partner}"),
        };
        match initials {
            Some(initials) if !initials.is_empty() => format!("{initials} {last}"),
            _ => last,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    Unknown,
    Male,
    Female,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Address {
    pub street: Option<String>,
    pub house_number: Option<String>,
    pub house_number_addition: Option<String>,
    pub postal_code: Option<String>,
    pub city: Option<String>,
    pub country_code: Option<String>,
}

/// A department or cost center.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct OrganisationUnit {
    pub id: String,
    pub code: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Money {
    pub amount: Decimal,
    pub currency: String,
}

impl Money {
    pub fn euro(amount: Decimal) -> Self {
        Money {
            amount,
            currency: "EUR".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SalaryPeriod {
    Unknown,
    Hour,
    Week,
    FourWeeks,
    Month,
    Year,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Salary {
    pub amount: Money,
    pub period: SalaryPeriod,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Employer {
    pub employer_key: String,
    pub source: SourceSystem,
    pub source_employer_id: String,
    pub name: String,
    pub employer_number: Option<String>,
    pub payroll_tax_number: Option<String>,
    pub chamber_of_commerce_number: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Employee {
    pub employee_id: String,
    pub employee_number: Option<String>,
    pub name: PersonName,
    pub date_of_birth: Option<NaiveDate>,
    pub gender: Gender,
    pub bsn: Option<Bsn>,
    pub email: Option<String>,
    pub work_email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<Address>,
    pub manager_employee_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Employment {
    pub employment_id: String,
    pub employee_id: String,
    pub income_relationship_number: Option<i64>,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub end_reason: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<OrganisationUnit>,
    pub cost_center: Option<OrganisationUnit>,
    pub location: Option<String>,
    pub employment_type: Option<String>,
    pub contract_type: Option<String>,
    pub hours_per_week: Option<Decimal>,
    pub fulltime_hours_per_week: Option<Decimal>,
    pub parttime_factor: Option<Decimal>,
    pub salary: Option<Salary>,
    pub pensionable_salary: Option<Money>,
    pub pension_scheme: Option<String>,
    /// From when `job_title`, `department`, `cost_center` and `location` hold: the start of
    /// the source's slice; `None` where the source does not date them.
    pub placement_valid_from: Option<NaiveDate>,
    /// From when the hours and the part-time factor hold.
    pub hours_valid_from: Option<NaiveDate>,
    /// From when `salary` holds; `pensionable_salary` holds from the later of this and
    /// `hours_valid_from`.
    pub salary_valid_from: Option<NaiveDate>,
}

/// The part-time factor as the contract defines it: hours over full-time hours, rounded half
/// away from zero to the 6 decimals the schema holds. `None` when full-time hours are zero.
pub fn parttime_factor(
    hours_per_week: Decimal,
    fulltime_hours_per_week: Decimal,
) -> Option<Decimal> {
    if fulltime_hours_per_week.is_zero() {
        return None;
    }
    let factor = hours_per_week.checked_div(fulltime_hours_per_week)?;
    Some(factor.round_dp_with_strategy(6, rust_decimal::RoundingStrategy::MidpointAwayFromZero))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    #[test]
    fn eleven_test_accepts_known_valid_numbers() {
        // 111222333: 9+8+7+12+10+8+9+6-3 = 66 = 6 * 11.
        assert!(passes_eleven_test("111222333"));
        assert!(passes_eleven_test("123456782"));
        assert!(!passes_eleven_test("123456789"));
        assert!(!passes_eleven_test("000000000"));
        assert!(!passes_eleven_test("12345678"));
    }

    #[test]
    fn bsn_parse_pads_eight_digits_and_rejects_bad_input() {
        assert_eq!(
            Bsn::parse("111222333").map(|b| b.expose().to_owned()),
            Ok("111222333".to_owned())
        );
        assert_eq!(Bsn::parse("12345678").err(), Some(BsnError::ElevenTest));
        assert_eq!(Bsn::parse("1234a6789").err(), Some(BsnError::NotDigits));
        assert_eq!(
            Bsn::parse("1234").err(),
            Some(BsnError::Length { length: 4 })
        );
    }

    #[test]
    fn bsn_never_shows_in_debug() {
        let bsn = Bsn::parse("111222333").unwrap();
        let debug = format!("{bsn:?}");
        assert!(!debug.contains("111222333"), "{debug}");
        assert_eq!(bsn.masked(), "*****2333");
    }

    #[test]
    fn name_formatting_follows_usage() {
        let format = |usage| {
            PersonName::format(
                Some("J."),
                Some("de"),
                "Vries",
                Some("van"),
                Some("Dijk"),
                usage,
            )
        };
        assert_eq!(format(NameUsage::Own), "J. de Vries");
        assert_eq!(format(NameUsage::Partner), "J. van Dijk");
        assert_eq!(format(NameUsage::PartnerOwn), "J. van Dijk-de Vries");
        assert_eq!(format(NameUsage::OwnPartner), "J. de Vries-van Dijk");
    }

    #[test]
    fn parttime_factor_is_exact_and_rounded() {
        let d = |s| Decimal::from_str(s).unwrap();
        assert_eq!(parttime_factor(d("32"), d("36")), Some(d("0.888889")));
        assert_eq!(parttime_factor(d("36"), d("36")), Some(d("1")));
        assert_eq!(parttime_factor(d("20"), d("0")), None);
    }
}
