//! Decimal number text (`0123.45`, `-0.150`, `1e3`) read and written as the device does. [`parse`] does without
//! core's general float parser (Eisel-Lemire and a 10 KiB table: ~17 KiB of the ESP32-C3 image) for numbers that
//! are meter readings and config values: every number of up to 15 significant digits and an exponent within ±22 is
//! read exactly as `str::parse::<f64>` reads it (one correctly rounded IEEE operation on exact operands); longer or
//! larger ones within a few units in the last place.

use alloc::format;
use alloc::string::{String, ToString};

/// Powers of ten that are exact in an `f64` (10^22 is the largest).
const EXACT_POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Significant digits kept; more are dropped (and counted in the exponent).
const MAX_DIGITS: u32 = 19;

/// The finite number `text` writes: an optional sign, digits with an optional decimal point (at least one digit),
/// an optional exponent. `None` for anything else, and for `inf`, `nan` and overflow.
pub fn parse(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let (negative, mut i) = match bytes.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let mut mantissa: u64 = 0;
    let mut kept = 0u32;
    let mut exponent: i32 = 0;
    let mut any_digit = false;
    let mut seen_point = false;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'0'..=b'9' => {
                any_digit = true;
                if mantissa == 0 && b == b'0' {
                    // Leading zeros are not significant.
                } else if kept < MAX_DIGITS {
                    mantissa = mantissa * 10 + u64::from(b - b'0');
                    kept += 1;
                } else {
                    exponent = exponent.saturating_add(1);
                }
                if seen_point {
                    exponent = exponent.saturating_sub(1);
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => break,
        }
        i += 1;
    }
    if !any_digit {
        return None;
    }
    if let Some(b'e' | b'E') = bytes.get(i) {
        i += 1;
        let (sign, start) = match bytes.get(i) {
            Some(b'-') => (-1, i + 1),
            Some(b'+') => (1, i + 1),
            _ => (1, i),
        };
        let mut e: i32 = 0;
        i = start;
        while let Some(&b @ b'0'..=b'9') = bytes.get(i) {
            e = e.saturating_mul(10).saturating_add(i32::from(b - b'0'));
            i += 1;
        }
        if i == start {
            return None;
        }
        exponent = exponent.saturating_add(sign * e);
    }
    if i != bytes.len() {
        return None;
    }
    let magnitude = scale(mantissa, exponent);
    let value = if negative { -magnitude } else { magnitude };
    value.is_finite().then_some(value)
}

/// `mantissa` × 10^`exponent`. Within ±22 it is one operation with an exact power of ten (the one rounding is
/// IEEE's, as core's parser rounds, for a mantissa below 2^53); beyond, powers of 10^22 first.
fn scale(mantissa: u64, exponent: i32) -> f64 {
    if mantissa == 0 {
        return 0.0;
    }
    // Past these even 19 digits are zero or infinite; the loops below would take long to say so (an exponent of
    // 2^31 would be 97 million rounds).
    if exponent < -342 {
        return 0.0;
    }
    if exponent > 308 {
        return f64::INFINITY;
    }
    let mut value = mantissa as f64;
    let mut rest = exponent;
    while rest > 22 {
        value *= EXACT_POW10[22];
        rest -= 22;
    }
    while rest < -22 {
        value /= EXACT_POW10[22];
        rest += 22;
    }
    let last = EXACT_POW10[rest.unsigned_abs() as usize];
    if rest < 0 {
        value / last
    } else {
        value * last
    }
}

/// `std::to_string`-with-precision of the reference: fixed notation, `places` decimals (negative -> 0, at most
/// 17), rounded as printf rounds (the exact binary value, half to even). `-0.00` is written `0.00`: the reference
/// prints the sign, but a zero rate is not negative.
// core's formatter stays linked anyway (serde's error messages print floats), so it costs nothing here.
pub fn fixed(value: f64, places: i32) -> String {
    let places = places.clamp(0, 17) as usize;
    let s = format!("{value:.places$}");
    if s.starts_with('-') && s[1..].bytes().all(|b| b == b'0' || b == b'.') {
        return s[1..].to_string();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn writes_as_printf_does() {
        assert_eq!(fixed(16.98, 2), "16.98");
        assert_eq!(fixed(1.0, 3), "1.000");
        assert_eq!(fixed(2.5, 0), "2");
        assert_eq!(fixed(3.5, 0), "4");
        assert_eq!(fixed(0.125, 2), "0.12");
        assert_eq!(fixed(1.005, 2), "1.00");
        assert_eq!(fixed(-0.0001, 2), "0.00");
        assert_eq!(fixed(-1.5, 1), "-1.5");
        assert_eq!(fixed(3.0, -2), "3");
        assert_eq!(fixed(0.0, 0), "0");
    }

    #[test]
    fn reads_what_meters_and_configs_write() {
        assert_eq!(parse("0123.45"), Some(123.45));
        assert_eq!(parse("-0.150"), Some(-0.15));
        assert_eq!(parse("+7"), Some(7.0));
        assert_eq!(parse("5."), Some(5.0));
        assert_eq!(parse(".5"), Some(0.5));
        assert_eq!(parse("1e3"), Some(1000.0));
        assert_eq!(parse("2.5E-2"), Some(0.025));
        assert_eq!(parse("-0"), Some(-0.0));
        assert_eq!(parse("00000000000000000000000001.5"), Some(1.5));
    }

    #[test]
    fn refuses_what_is_not_one_finite_number() {
        for text in [
            "", "-", ".", "e5", "1e", "1e+", "1.2.3", "12a", " 1", "1 ", "N", "inf", "NaN",
            "1e400", "0x10", "--1",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn equals_core_for_up_to_15_digits(int in 0u64..1_000_000_000, frac in 0u64..1_000_000, places in 0usize..7, neg: bool) {
            let text = if places == 0 {
                format!("{}{int}", if neg { "-" } else { "" })
            } else {
                let frac = frac % 10u64.pow(places as u32);
                format!("{}{int}.{frac:0places$}", if neg { "-" } else { "" })
            };
            prop_assert_eq!(parse(&text), text.parse::<f64>().ok(), "{}", text);
        }

        #[test]
        fn equals_core_with_exponents(m in 0u64..(1 << 53), e in -22i32..=22) {
            let text = format!("{m}e{e}");
            prop_assert_eq!(parse(&text), text.parse::<f64>().ok(), "{}", text);
        }

        #[test]
        fn is_close_to_core_for_long_and_large_numbers(m in 1u64..u64::MAX, e in -280i32..280) {
            let text = format!("{m}e{e}");
            let ours = parse(&text).unwrap();
            let core = text.parse::<f64>().unwrap();
            prop_assert!(((ours - core) / core).abs() < 1e-14, "{} {} {}", text, ours, core);
        }
    }
}
