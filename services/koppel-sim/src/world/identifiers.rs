//! Dutch identifiers the world hands out: BSNs, RSIN-based loonheffingennummers and KvK numbers.
//!
//! BSN and RSIN share one check, the 11-proef: with the nine digits d1..d9,
//! `9*d1 + 8*d2 + ... + 2*d8 - 1*d9` must be divisible by 11. Generators draw eight digits and
//! solve for the ninth, so every identifier the world generates is valid unless a test asks
//! for a malformed one on purpose.

use rand::Rng;

/// Whether nine digits pass the 11-proef. Anything that is not exactly nine ASCII digits fails.
pub fn passes_eleven_proef(digits: &str) -> bool {
    let bytes = digits.as_bytes();
    if bytes.len() != 9 || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut sum: i64 = 0;
    for (position, byte) in bytes.iter().enumerate() {
        let digit = i64::from(byte - b'0');
        // Weights run 9, 8, ..., 2 for the first eight digits and -1 for the check digit.
        let weight = if position == 8 {
            -1
        } else {
            9 - position as i64
        };
        sum += digit * weight;
    }
    sum % 11 == 0
}

/// Draws nine digits (as a number below 10^9) that pass the 11-proef and start with a non-zero
/// digit, so the formatted value never depends on zero padding.
pub(crate) fn random_eleven_proef_number(random: &mut impl Rng) -> u32 {
    loop {
        let first_eight: u32 = random.random_range(10_000_000..100_000_000);
        if let Some(check_digit) = eleven_proef_check_digit(first_eight) {
            return first_eight * 10 + check_digit;
        }
    }
}

/// The check digit that makes `first_eight` followed by it pass the 11-proef, or `None` when the
/// remainder is 10 (no single digit works, the number is skipped, as the real issuers do).
fn eleven_proef_check_digit(first_eight: u32) -> Option<u32> {
    let mut remaining = first_eight;
    let mut sum = 0;
    // Walk from the eighth digit (weight 2) back to the first (weight 9).
    for weight in 2..=9 {
        sum += (remaining % 10) * weight;
        remaining /= 10;
    }
    let check_digit = sum % 11;
    (check_digit < 10).then_some(check_digit)
}

/// Turns a valid 11-proef number into one that fails it, keeping it nine digits long: the check
/// digit is moved by one, which always breaks divisibility by 11.
pub(crate) fn break_eleven_proef(valid_number: u32) -> u32 {
    let check_digit = valid_number % 10;
    let broken_digit = if check_digit == 9 { 8 } else { check_digit + 1 };
    valid_number - check_digit + broken_digit
}

/// Formats a nine-digit identifier with leading zeros kept.
pub fn format_nine_digits(number: u32) -> String {
    format!("{number:09}")
}

/// A loonheffingennummer: the RSIN (nine digits passing the 11-proef), `L` and a two-digit
/// subnumber. The world uses `L01` for every employer, as most single-payroll employers have.
pub(crate) fn payroll_tax_number_from_rsin(rsin: u32) -> String {
    format!("{rsin:09}L01")
}

/// A KvK (chamber of commerce) number: eight digits, the first one non-zero.
pub(crate) fn random_chamber_of_commerce_number(random: &mut impl Rng) -> String {
    let number: u32 = random.random_range(10_000_000..100_000_000);
    number.to_string()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    #[test]
    fn known_valid_and_invalid_numbers() {
        // 111222333: 9+8+7*1 + 6*2+5*2+4*2 + 3*3+2*3 - 3 = 66, divisible by 11.
        assert!(passes_eleven_proef("111222333"));
        assert!(passes_eleven_proef("123456782"));
        assert!(!passes_eleven_proef("123456789"));
        assert!(!passes_eleven_proef("12345678"));
        assert!(!passes_eleven_proef("12345678a"));
        assert!(!passes_eleven_proef("1234567820"));
    }

    #[test]
    fn generated_numbers_pass_and_broken_ones_fail() {
        let mut random = SmallRng::seed_from_u64(11);
        for _ in 0..10_000 {
            let number = random_eleven_proef_number(&mut random);
            let formatted = format_nine_digits(number);
            assert_eq!(formatted.len(), 9);
            assert!(passes_eleven_proef(&formatted), "{formatted} should pass");
            let broken = format_nine_digits(break_eleven_proef(number));
            assert_eq!(broken.len(), 9);
            assert!(!passes_eleven_proef(&broken), "{broken} should fail");
        }
    }

    #[test]
    fn payroll_tax_number_has_the_loket_shape() {
        let mut random = SmallRng::seed_from_u64(3);
        let number = payroll_tax_number_from_rsin(random_eleven_proef_number(&mut random));
        assert_eq!(number.len(), 12);
        assert!(passes_eleven_proef(&number[..9]));
        assert_eq!(&number[9..], "L01");
    }
}
