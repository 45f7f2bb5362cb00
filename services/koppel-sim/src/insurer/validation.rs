//! Identifier and value checks of the pension insurer salary link: BSN 11-proef, loonheffingennummer
//! format, and the plausibility of hours, part-time percentage and pensionable salary.
//!
//! These checks are written independently of koppel's own validation on purpose: the simulator is
//! the second opinion that catches a sender which lets an invalid identifier through.

use rust_decimal::Decimal;

/// The BSN "11-proef": nine digits d1..d9 with `d1*9 + d2*8 + ... + d8*2 - d9*1` divisible by 11.
///
/// All zeros passes the arithmetic but is never issued, so it is refused as well. Eight-digit
/// BSNs (a lost leading zero) are refused: the contract asks for exactly nine digits, and padding
/// is the sender's job because only the sender knows the value was numeric somewhere upstream.
pub fn is_valid_bsn(bsn: &str) -> bool {
    let bytes = bsn.as_bytes();
    if bytes.len() != 9 || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    if bytes.iter().all(|digit| *digit == b'0') {
        return false;
    }
    let mut weighted_sum: i64 = 0;
    for (position, digit) in bytes.iter().enumerate() {
        let value = i64::from(digit - b'0');
        // Weights 9, 8, ..., 2 for the first eight digits, and -1 for the check digit.
        let weight = if position == 8 {
            -1
        } else {
            9 - position as i64
        };
        weighted_sum += value * weight;
    }
    weighted_sum % 11 == 0
}

/// The loonheffingennummer format: nine digits, the letter `L`, two digits (`123456789L01`).
///
/// Only the format is checked. The nine digits are the employer's RSIN/BSN, but funds identify an
/// employer by the whole number as it is registered with them, so the link registry is the real
/// check (an unknown number is answered with `0014.2`).
pub fn is_valid_payroll_tax_number(payroll_tax_number: &str) -> bool {
    let bytes = payroll_tax_number.as_bytes();
    bytes.len() == 12
        && bytes[..9].iter().all(u8::is_ascii_digit)
        && bytes[9] == b'L'
        && bytes[10..].iter().all(u8::is_ascii_digit)
}

/// The employment values a salary link carries, checked together because their limits depend on
/// each other only loosely (hours above full-time hours are allowed: overtime contracts exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmploymentValues {
    pub hours_per_week: Decimal,
    pub fulltime_hours_per_week: Decimal,
    pub parttime_percentage: Decimal,
    pub fulltime_pensionable_salary_yearly: Decimal,
}

/// Returns a human-readable reason when a value is out of range, `None` when all are acceptable.
pub fn employment_values_problem(values: &EmploymentValues) -> Option<String> {
    let hundred = Decimal::ONE_HUNDRED;
    // A week has 168 hours; anything above is a unit mix-up (hours per month sent as per week).
    let hours_in_a_week = Decimal::from(168);
    if values.hours_per_week < Decimal::ZERO || values.hours_per_week > hours_in_a_week {
        return Some("hours_per_week must be between 0 and 168".to_owned());
    }
    if values.fulltime_hours_per_week <= Decimal::ZERO
        || values.fulltime_hours_per_week > hours_in_a_week
    {
        return Some("fulltime_hours_per_week must be above 0 and at most 168".to_owned());
    }
    if values.parttime_percentage < Decimal::ZERO || values.parttime_percentage > hundred {
        // A factor (0.8) sent where a percentage (80) is expected passes this range check, which
        // is why the contract document stresses the unit and the tests compare exact values.
        return Some("parttime_percentage must be between 0 and 100".to_owned());
    }
    if values.fulltime_pensionable_salary_yearly < Decimal::ZERO {
        return Some("fulltime_pensionable_salary_yearly must not be negative".to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn bsn_eleven_proof_accepts_known_valid_numbers() {
        // 111222333: 1*9+1*8+1*7+2*6+2*5+2*4+3*3+3*2-3*1 = 66, divisible by 11.
        assert!(is_valid_bsn("111222333"));
        // 123456782: 9+16+21+24+25+24+21+16-2 = 154 = 14*11.
        assert!(is_valid_bsn("123456782"));
    }

    #[test]
    fn bsn_eleven_proof_rejects_wrong_check_digit_and_bad_shapes() {
        assert!(!is_valid_bsn("123456789"));
        assert!(!is_valid_bsn("111222334"));
        assert!(
            !is_valid_bsn("12345678"),
            "eight digits must be padded by the sender"
        );
        assert!(!is_valid_bsn("1234567820"));
        assert!(!is_valid_bsn("12345678a"));
        assert!(!is_valid_bsn(""));
        assert!(!is_valid_bsn("000000000"));
        assert!(!is_valid_bsn(" 23456782"));
    }

    #[test]
    fn payroll_tax_number_format() {
        assert!(is_valid_payroll_tax_number("123456789L01"));
        assert!(is_valid_payroll_tax_number("000000000L99"));
        assert!(
            !is_valid_payroll_tax_number("123456789l01"),
            "the L is upper case"
        );
        assert!(!is_valid_payroll_tax_number("123456789L1"));
        assert!(!is_valid_payroll_tax_number("12345678L01"));
        assert!(!is_valid_payroll_tax_number("123456789X01"));
        assert!(!is_valid_payroll_tax_number("123456789L011"));
        assert!(!is_valid_payroll_tax_number("12345678AL01"));
        assert!(!is_valid_payroll_tax_number(""));
    }

    fn decimal(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn plausible_values() -> EmploymentValues {
        EmploymentValues {
            hours_per_week: decimal("32"),
            fulltime_hours_per_week: decimal("40"),
            parttime_percentage: decimal("80.00"),
            fulltime_pensionable_salary_yearly: decimal("52000.00"),
        }
    }

    #[test]
    fn plausible_employment_values_pass() {
        assert_eq!(employment_values_problem(&plausible_values()), None);
        let leave = EmploymentValues {
            hours_per_week: Decimal::ZERO,
            parttime_percentage: Decimal::ZERO,
            ..plausible_values()
        };
        assert_eq!(employment_values_problem(&leave), None);
    }

    #[test]
    fn out_of_range_employment_values_are_named() {
        let cases = [
            (
                EmploymentValues {
                    hours_per_week: decimal("-1"),
                    ..plausible_values()
                },
                "hours_per_week",
            ),
            (
                EmploymentValues {
                    fulltime_hours_per_week: Decimal::ZERO,
                    ..plausible_values()
                },
                "fulltime_hours_per_week",
            ),
            (
                EmploymentValues {
                    parttime_percentage: decimal("100.01"),
                    ..plausible_values()
                },
                "parttime_percentage",
            ),
            (
                EmploymentValues {
                    fulltime_pensionable_salary_yearly: decimal("-0.01"),
                    ..plausible_values()
                },
                "fulltime_pensionable_salary_yearly",
            ),
        ];
        for (values, field) in cases {
            let problem = employment_values_problem(&values).unwrap();
            assert!(problem.starts_with(field), "{problem} should name {field}");
        }
    }
}
