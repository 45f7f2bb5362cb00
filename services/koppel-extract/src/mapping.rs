//! Mapping helpers every source shares: the record-level error type and the lenient readers
//! for dates, decimals and text that source JSON carries.
//!
//! Amounts, hours and factors are `Decimal`, read from their text. A JSON string is parsed as
//! written. A JSON number has already been read by serde_json (this workspace does not enable
//! `arbitrary_precision`), so its text is `serde_json::Number`'s own shortest round-trip
//! form: exact for every value with at most 15 significant digits, which covers any amount in
//! cents below ten trillion euro and any hour count. No arithmetic is ever done in `f64`.

use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, NaiveDate, TimeDelta, Utc, Weekday};
use koppel_events::model::BsnError;
use koppel_events::{Employment, EncodeError};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;

/// Why one record cannot be mapped. Names the field and the rule, never the value, so it is
/// safe in logs and in `SyncCompleted.record_errors`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("mandatory field {0} is missing")]
    Missing(&'static str),
    #[error("field {0} is not a valid date")]
    InvalidDate(&'static str),
    #[error("field {0} is not a valid number")]
    InvalidNumber(&'static str),
    #[error("field {0} holds a code the contract does not define")]
    UnknownCode(&'static str),
    #[error("citizen service number is invalid: {0}")]
    Bsn(#[from] BsnError),
    #[error("field {0} holds a value beyond what the event contract can carry")]
    BeyondContract(&'static str),
}

/// `employment` if the event contract can carry it (every decimal within its schema's
/// precision and scale), else a record error naming the field. Without this check one such
/// record would make its event fail to encode, and with it the employer's whole run.
pub fn within_contract(employment: Employment) -> Result<Employment, MappingError> {
    match koppel_events::codec::check_employment(&employment) {
        Ok(()) => Ok(employment),
        Err(
            EncodeError::DecimalScale { field, .. } | EncodeError::DecimalPrecision { field, .. },
        ) => Err(MappingError::BeyondContract(field)),
        Err(_) => Err(MappingError::BeyondContract("employment")),
    }
}

/// Text of a JSON scalar (numbers and strings alike), `None` for null or empty.
pub fn scalar_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// Trimmed text, `None` when absent or blank.
pub fn non_empty(text: Option<&String>) -> Option<String> {
    text.map(|text| text.trim())
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

/// Parses a `YYYY-MM-DD` date; absent and empty are `None`.
pub fn parse_date(
    field: &'static str,
    text: Option<&str>,
) -> Result<Option<NaiveDate>, MappingError> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => {
            // Source dates are plain dates; tolerate a time part some endpoints may add.
            let date_part = text.get(..10).unwrap_or(text);
            NaiveDate::parse_from_str(date_part, "%Y-%m-%d")
                .map(Some)
                .map_err(|_| MappingError::InvalidDate(field))
        }
    }
}

/// A JSON number (or numeric string) as a `Decimal`, through its text: no float arithmetic
/// ever touches an amount or an hour count.
pub fn parse_decimal(
    field: &'static str,
    value: Option<&Value>,
) -> Result<Option<Decimal>, MappingError> {
    let Some(text) = scalar_text(value) else {
        return Ok(None);
    };
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map(Some)
        .map_err(|_| MappingError::InvalidNumber(field))
}

/// Hours to four decimals, trailing zeros dropped, so `"32.00"` and `32` digest alike.
pub fn round_hours(hours: Decimal) -> Decimal {
    hours
        .round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero)
        .normalize()
}

/// An amount to cents, half away from zero (how Dutch payroll rounds).
pub fn round_cents(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// From when a change holds, and whether the source said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectiveDate {
    /// The source's own date: a start or end date, or the start of a slice.
    Source(NaiveDate),
    /// The source gives no date; this is the day koppel observed the change.
    Observed(NaiveDate),
}

impl EffectiveDate {
    pub fn date(self) -> NaiveDate {
        match self {
            EffectiveDate::Source(date) | EffectiveDate::Observed(date) => date,
        }
    }

    pub fn is_observation(self) -> bool {
        matches!(self, EffectiveDate::Observed(_))
    }
}

/// The source's date from which one changed field of an employment holds, if the source
/// dates it. Field names are the canonical ones `changed_fields` carries (a part such as
/// `department.name` counts as its field).
pub fn employment_field_valid_from(employment: &Employment, field: &str) -> Option<NaiveDate> {
    let field = field.split('.').next().unwrap_or(field);
    match field {
        "start_date" => Some(employment.start_date),
        // A removed end date (a reinstatement) has no date of its own.
        "end_date" | "end_reason" => employment.end_date,
        "job_title" | "department" | "cost_center" | "location" | "placement_valid_from" => {
            employment.placement_valid_from
        }
        "hours_per_week" | "fulltime_hours_per_week" | "parttime_factor" | "hours_valid_from" => {
            employment.hours_valid_from
        }
        "salary" | "salary_valid_from" => employment.salary_valid_from,
        // Derived from salary and hours: it holds once both do.
        "pensionable_salary" => match (employment.salary_valid_from, employment.hours_valid_from) {
            (Some(salary), Some(hours)) => Some(salary.max(hours)),
            (salary, hours) => salary.or(hours),
        },
        _ => None,
    }
}

/// From when a change to an employment holds: the earliest source date among its changed
/// fields (a retroactive raise and a department move per today in one poll hold, together,
/// from the raise's date; each field's own date stays readable in the `*_valid_from` fields),
/// else the observation day.
pub fn employment_change_effective_date(
    employment: &Employment,
    changed_fields: &[String],
    observed_on: NaiveDate,
) -> EffectiveDate {
    changed_fields
        .iter()
        .filter_map(|field| employment_field_valid_from(employment, field))
        .min()
        .map_or(EffectiveDate::Observed(observed_on), EffectiveDate::Source)
}

/// The calendar date in Europe/Amsterdam at `instant`: UTC+1, and UTC+2 from the last Sunday
/// of March 01:00 UTC until the last Sunday of October 01:00 UTC (the EU rule, in force since
/// 1996). A payroll date is a Dutch date: between 22:00 and 24:00 UTC in summer (23:00 in
/// winter) the UTC date is still yesterday's.
pub fn amsterdam_date(instant: DateTime<Utc>) -> NaiveDate {
    let year = instant.year();
    let summer_starts = last_sunday(year, 3)
        .and_hms_opt(1, 0, 0)
        .map(|t| t.and_utc());
    let summer_ends = last_sunday(year, 10)
        .and_hms_opt(1, 0, 0)
        .map(|t| t.and_utc());
    let in_summer = matches!((summer_starts, summer_ends), (Some(start), Some(end)) if instant >= start && instant < end);
    let offset = TimeDelta::hours(if in_summer { 2 } else { 1 });
    (instant + offset).date_naive()
}

fn last_sunday(year: i32, month: u32) -> NaiveDate {
    let first_of_next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    }
    .unwrap_or_default();
    let mut day = first_of_next.pred_opt().unwrap_or(first_of_next);
    while day.weekday() != Weekday::Sun {
        day = day.checked_sub_days(Days::new(1)).unwrap_or(day);
    }
    day
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn instant(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn employment() -> Employment {
        let day = |text| NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
        Employment {
            employment_id: "dv-1".to_owned(),
            employee_id: "e-1".to_owned(),
            income_relationship_number: Some(1),
            start_date: day("2020-03-01"),
            end_date: None,
            end_reason: None,
            job_title: None,
            department: None,
            cost_center: None,
            location: None,
            employment_type: None,
            contract_type: None,
            hours_per_week: None,
            fulltime_hours_per_week: None,
            parttime_factor: None,
            salary: None,
            pensionable_salary: None,
            pension_scheme: None,
            placement_valid_from: Some(day("2026-03-01")),
            hours_valid_from: Some(day("2026-02-01")),
            salary_valid_from: Some(day("2026-01-01")),
        }
    }

    /// Before: every EmploymentChanged said it held from the day koppel saw it, so a raise per
    /// 1 January entered in February reached the insurer as a February change.
    #[test]
    fn a_change_holds_from_the_earliest_source_date_of_its_fields() {
        let day = |text| NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
        let observed = day("2026-02-10");
        let fields = |names: &[&str]| {
            names
                .iter()
                .map(|name| (*name).to_owned())
                .collect::<Vec<_>>()
        };
        let employment = employment();
        assert_eq!(
            employment_change_effective_date(&employment, &fields(&["salary"]), observed),
            EffectiveDate::Source(day("2026-01-01"))
        );
        assert_eq!(
            employment_change_effective_date(
                &employment,
                &fields(&["department", "hours_per_week"]),
                observed
            ),
            EffectiveDate::Source(day("2026-02-01"))
        );
        // The pensionable salary holds once both salary and hours do.
        assert_eq!(
            employment_field_valid_from(&employment, "pensionable_salary.amount"),
            Some(day("2026-02-01"))
        );
        // A removed end date (reinstatement) and undated fields: the observation day.
        let reinstated = employment_change_effective_date(
            &employment,
            &fields(&["end_date", "end_reason", "contract_type"]),
            observed,
        );
        assert_eq!(reinstated, EffectiveDate::Observed(observed));
        assert!(reinstated.is_observation());
    }

    #[test]
    fn the_reference_date_is_the_amsterdam_date() {
        let day = |text| NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
        // Winter: UTC+1.
        assert_eq!(
            amsterdam_date(instant("2026-01-31T22:59:59Z")),
            day("2026-01-31")
        );
        assert_eq!(
            amsterdam_date(instant("2026-01-31T23:00:00Z")),
            day("2026-02-01")
        );
        // Summer: UTC+2; 22:30 UTC on 30 June is already 1 July in Amsterdam.
        assert_eq!(
            amsterdam_date(instant("2026-06-30T22:30:00Z")),
            day("2026-07-01")
        );
        assert_eq!(
            amsterdam_date(instant("2026-06-30T21:59:00Z")),
            day("2026-06-30")
        );
        // The switches: 29 March 2026 and 25 October 2026, both at 01:00 UTC.
        assert_eq!(last_sunday(2026, 3), day("2026-03-29"));
        assert_eq!(last_sunday(2026, 10), day("2026-10-25"));
        assert_eq!(
            amsterdam_date(instant("2026-03-29T00:59:00Z")),
            day("2026-03-29")
        );
        assert_eq!(
            amsterdam_date(instant("2026-10-24T22:30:00Z")),
            day("2026-10-25")
        );
        assert_eq!(
            amsterdam_date(instant("2026-10-25T22:30:00Z")),
            day("2026-10-25")
        );
        assert_eq!(
            amsterdam_date(instant("2026-12-31T23:30:00Z")),
            day("2027-01-01")
        );
    }

    #[test]
    fn decimals_come_from_text_and_numbers_alike() {
        let text = parse_decimal("x", Some(&json!("3650.10"))).unwrap();
        assert_eq!(text, Some(Decimal::from_str("3650.10").unwrap()));
        let number = parse_decimal("x", Some(&json!(0.1))).unwrap();
        assert_eq!(number, Some(Decimal::from_str("0.1").unwrap()));
        assert_eq!(parse_decimal("x", Some(&json!(""))).unwrap(), None);
        assert_eq!(
            parse_decimal("x", Some(&json!("drie"))),
            Err(MappingError::InvalidNumber("x"))
        );
        assert_eq!(
            round_hours(Decimal::from_str("32.00").unwrap()),
            Decimal::from(32)
        );
    }

    #[test]
    fn dates_are_plain_dates() {
        assert_eq!(
            parse_date("d", Some("2021-09-01T00:00:00")).unwrap(),
            NaiveDate::from_ymd_opt(2021, 9, 1)
        );
        assert_eq!(
            parse_date("d", Some("1988-13-32")),
            Err(MappingError::InvalidDate("d"))
        );
        assert_eq!(parse_date("d", None).unwrap(), None);
    }
}
