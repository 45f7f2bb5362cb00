//! Mapping helpers every source shares: the record-level error type and the lenient readers
//! for dates, decimals and text that source JSON carries.
//!
//! Amounts, hours and factors are `Decimal`, read from their text. A JSON string is parsed as
//! written. A JSON number has already been read by serde_json (this workspace does not enable
//! `arbitrary_precision`), so its text is `serde_json::Number`'s own shortest round-trip
//! form: exact for every value with at most 15 significant digits, which covers any amount in
//! cents below ten trillion euro and any hour count. No arithmetic is ever done in `f64`.

use std::str::FromStr;

use chrono::NaiveDate;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
