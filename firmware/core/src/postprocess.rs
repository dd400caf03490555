//! Raw value -> actual value, fallback value, rates and value status (reference `ClassFlowPostProcessing`).

use alloc::format;
use alloc::string::{String, ToString};

use crate::config::{PostProcessing, RateCheck};
use crate::readout::{self, DigitModel, ReadoutParams, Roi};
use crate::time::TimeZone;

pub const STATUS_VALID: &str = "000 Valid";
pub const STATUS_EMPTY: &str = "W01 Empty data";
pub const STATUS_NO_SUBSTITUTE: &str = "E90 No data to substitute N";
pub const STATUS_RATE_NEGATIVE: &str = "E91 Rate negative";
pub const STATUS_RATE_TOO_HIGH_NEG: &str = "E92 Rate too high (<)";
pub const STATUS_RATE_TOO_HIGH_POS: &str = "E93 Rate too high (>)";

/// The shape of a sequence: how many ROIs of each kind it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub digits: usize,
    pub analogs: usize,
}

/// Decimal shift corrected for extended resolution, and the number of decimal places shown (`setDecimalShift`).
pub fn decimal_layout(shape: Shape, post: &PostProcessing, model: DigitModel) -> (i32, i32) {
    let mut shift = post.decimal_shift;
    let places = match (shape.digits > 0, shape.analogs > 0) {
        (true, false) => {
            if post.extended_resolution && model.allows_extended_resolution() {
                shift -= 1;
            }
            -shift
        }
        (false, true) => {
            if post.extended_resolution {
                shift -= 1;
            }
            -shift
        }
        (true, true) => shape.analogs as i32 - shift + i32::from(post.extended_resolution),
        (false, false) => 0,
    };
    (shift, places)
}

/// Moves the decimal point of a digit string by `shift` places (reference `shiftDecimal`).
pub fn shift_decimal(value: &str, shift: i32) -> String {
    if shift == 0 {
        return value.to_string();
    }
    let mut digits: String = value.chars().filter(|c| *c != '.').collect();
    let point = value.find('.').unwrap_or(value.len()) as i32;
    let new_point = point + shift;
    if new_point <= 0 {
        for _ in new_point..0 {
            digits.insert(0, '0');
        }
        return format!("0.{digits}");
    }
    let new_point = new_point as usize;
    // The reference leaves a trailing '.' when the point lands at the end ("123."); we drop it.
    if new_point >= digits.len() {
        while digits.len() < new_point {
            digits.push('0');
        }
        return digits;
    }
    format!("{}.{}", &digits[..new_point], &digits[new_point..])
}

/// Replaces every `N` with the digit at the same position of the fallback value (reference `substituteN`).
pub fn substitute_n(input: &str, fallback: f64) -> String {
    let point = input.find('.').unwrap_or(input.len()) as i32;
    input
        .char_indices()
        .map(|(i, c)| {
            if c != 'N' {
                return c;
            }
            let i = i as i32;
            let power = if i < point { point - i - 1 } else { point - i };
            digit_at(fallback, power)
        })
        .collect()
}

/// The decimal digit of `value` at 10^`power`, robust against binary fractions like 0.29999999.
fn digit_at(value: f64, power: i32) -> char {
    let scaled = value / libm::pow(10.0, f64::from(power));
    // A relative nudge stops 123.45 * 100 = 12344.999.. from reading 4 instead of 5 (reference uses float as is).
    let nudged = libm::floor(scaled + libm::fabs(scaled) * 1e-12 + 1e-9);
    let digit = libm::fmod(nudged, 10.0);
    char::from_digit(if digit >= 0.0 { digit as u32 % 10 } else { 0 }, 10).unwrap_or('0')
}

/// Digit-increase consistency for class-11 digits (reference `checkDigitConsistency`): a digit may only move when
/// its less significant neighbour crossed zero.
pub fn check_digit_consistency(
    input: f64,
    decimal_shift: i32,
    has_analogs: bool,
    fallback: f64,
) -> f64 {
    if input.is_nan() || input <= 0.0 || !input.is_finite() || !fallback.is_finite() {
        return input;
    }
    let mut input = input;
    let mut pot = decimal_shift;
    if !has_analogs {
        pot += 1;
    }
    let pot_max = libm::log10(input) as i32 + 1;
    let digit = |v: f64, p: i32| -> i32 {
        (libm::floor(v / libm::pow(10.0, f64::from(p))) as i64).rem_euclid(10) as i32
    };
    while pot <= pot_max {
        let now_before = digit(input, pot - 1);
        let old_before = digit(fallback, pot - 1);
        let now = digit(input, pot);
        let old = digit(fallback, pot);
        let no_zero_crossing = old_before <= now_before;
        if no_zero_crossing {
            if now != old {
                input += f64::from(old - now) * libm::pow(10.0, f64::from(pot));
            }
        } else if now == old {
            input += libm::pow(10.0, f64::from(pot));
        }
        pot += 1;
    }
    input
}

pub use crate::decimal::fixed;

/// A fallback value as stored in flash: the sequence name, when it was taken (unix seconds) and the value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredFallback {
    pub sequence: String,
    pub time: i64,
    pub value: String,
}

/// Everything the device knows and publishes about one number sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceState {
    pub id: u32,
    pub name: String,
    pub shape: Shape,
    pub decimal_shift: i32,
    pub decimal_places: i32,
    pub raw_value: String,
    pub actual_value: f64,
    pub actual_value_text: String,
    pub fallback_value: f64,
    pub fallback_text: String,
    pub fallback_valid: bool,
    pub fallback_time: Option<i64>,
    pub fallback_time_text: String,
    pub rate_per_minute: f64,
    pub rate_per_minute_text: String,
    pub rate_per_interval: f64,
    pub rate_per_interval_text: String,
    pub value_status: String,
    pub processed_time_text: String,
    /// Set by a cycle whose new value was taken as the fallback value (it must be persisted).
    pub fallback_updated: bool,
}

/// What one post-processing pass found beyond the values: a deviation (rate too high) for the process error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    pub deviation: bool,
}

impl SequenceState {
    pub fn new(
        id: u32,
        name: &str,
        shape: Shape,
        post: &PostProcessing,
        model: DigitModel,
    ) -> Self {
        let (decimal_shift, decimal_places) = decimal_layout(shape, post, model);
        SequenceState {
            id,
            name: name.to_string(),
            shape,
            decimal_shift,
            decimal_places,
            raw_value: String::new(),
            actual_value: 0.0,
            actual_value_text: String::new(),
            fallback_value: 0.0,
            fallback_text: String::new(),
            fallback_valid: false,
            fallback_time: None,
            fallback_time_text: String::new(),
            rate_per_minute: 0.0,
            // The reference's initial texts (`ClassFlowDefineTypes.h` 74-75): a first cycle without a value (W01)
            // publishes them.
            rate_per_minute_text: "0.0".to_string(),
            rate_per_interval: 0.0,
            rate_per_interval_text: "0.0".to_string(),
            value_status: String::new(),
            processed_time_text: String::new(),
            fallback_updated: false,
        }
    }

    /// Restores a persisted fallback value, honouring its maximum age at startup (reference `loadFallbackValue`).
    pub fn restore_fallback(
        &mut self,
        stored: &StoredFallback,
        now: i64,
        post: &PostProcessing,
        tz: &TimeZone,
    ) {
        if !post.use_fallback_value {
            return;
        }
        self.fallback_time = Some(stored.time);
        self.fallback_time_text = tz.format(stored.time);
        let age_minutes = (now - stored.time).div_euclid(60);
        let parsed = crate::decimal::parse(stored.value.trim());
        if age_minutes > i64::from(post.fallback_value_age_startup) {
            self.invalidate_fallback("Outdated");
        } else if age_minutes < 0 {
            self.invalidate_fallback("Not Determinable");
        } else if let Some(value) = parsed {
            self.fallback_valid = true;
            self.fallback_value = value;
            self.fallback_text = fixed(value, self.decimal_places + 1);
        } else {
            self.invalidate_fallback("Not Determinable");
        }
    }

    fn invalidate_fallback(&mut self, why: &str) {
        self.fallback_valid = false;
        self.fallback_value = 0.0;
        self.fallback_text = why.to_string();
    }

    /// Presets the fallback value (MQTT `set_fallbackvalue`, REST): already validated by the caller.
    pub fn set_fallback(&mut self, value: f64, now: i64, tz: &TimeZone) {
        self.fallback_value = value;
        self.fallback_time = Some(now);
        self.fallback_time_text = tz.format(now);
        self.fallback_text = fixed(value, self.decimal_places + 1);
        self.fallback_valid = true;
        self.fallback_updated = true;
    }

    /// The raw value as a number, if it is a complete reading (no `N`, not empty).
    pub fn raw_as_number(&self) -> Option<f64> {
        if self.raw_value.is_empty() || self.raw_value.contains('N') {
            return None;
        }
        crate::decimal::parse(&self.raw_value)
    }

    /// The stored form of the fallback value, if there is one to keep.
    pub fn stored_fallback(&self) -> Option<StoredFallback> {
        let time = self.fallback_time?;
        self.fallback_valid.then(|| StoredFallback {
            sequence: self.name.clone(),
            time,
            value: fixed(self.fallback_value, self.decimal_places),
        })
    }

    /// `rate_per_time_unit`: per hour for meter types whose rate unit is per hour, else per minute.
    pub fn rate_per_time_unit_text(&self, per_hour: bool) -> String {
        if per_hour {
            fixed(self.rate_per_minute * 60.0, self.decimal_places)
        } else {
            self.rate_per_minute_text.clone()
        }
    }

    /// One post-processing pass over this cycle's ROI results, taken at `now` (unix seconds).
    pub fn process(
        &mut self,
        digits: &[Roi],
        analogs: &[Roi],
        params: &ReadoutParams,
        post: &PostProcessing,
        now: i64,
        tz: &TimeZone,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        self.processed_time_text = tz.format(now);
        let raw = readout::raw_readout(digits, analogs, params);
        if raw.is_empty() {
            self.set_empty();
            return outcome;
        }
        let mut raw = shift_decimal(&raw, self.decimal_shift);
        if params.model == DigitModel::Class11 && post.ignore_leading_nan {
            while raw.len() > 1 && raw.starts_with('N') {
                raw.remove(0);
            }
        }
        self.raw_value = raw.clone();
        let mut actual = raw;
        if actual.contains('N') {
            if post.use_fallback_value && self.fallback_valid {
                actual = substitute_n(&actual, self.fallback_value);
            } else {
                self.set_rates(0.0, 0.0);
                self.value_status = format!("{STATUS_NO_SUBSTITUTE} | Raw: {}", self.raw_value);
                self.actual_value_text = String::new();
                return outcome;
            }
        }
        // Leading zeros (a meter's "0042") are not significant to the parser.
        let Some(mut value) = crate::decimal::parse(&actual) else {
            self.set_empty();
            return outcome;
        };

        if !post.use_fallback_value {
            self.actual_value = value;
            self.set_rates(0.0, 0.0);
            self.fallback_value = 0.0;
            self.fallback_text = "Disabled".to_string();
            self.value_status = STATUS_VALID.to_string();
            self.actual_value_text = fixed(value, self.decimal_places);
            return outcome;
        }

        let mut confirmed = true;
        if self.fallback_valid {
            self.fallback_text = fixed(self.fallback_value, self.decimal_places);
            if params.model == DigitModel::Class11 && post.check_digit_increase_consistency {
                value = check_digit_consistency(
                    value,
                    self.decimal_shift,
                    self.shape.analogs > 0,
                    self.fallback_value,
                );
            }
            let elapsed = self.fallback_time.map_or(0, |t| (now - t).abs());
            let per_minute = if elapsed > 0 {
                (value - self.fallback_value) / (elapsed as f64 / 60.0)
            } else {
                0.0
            };
            let per_interval = value - self.fallback_value;
            self.rate_per_minute = per_minute;
            self.rate_per_interval = per_interval;
            let checked_rate = if post.max_rate_check == RateCheck::PerMinute {
                per_minute
            } else {
                per_interval
            };
            if post.max_rate_check != RateCheck::Off
                && libm::fabs(checked_rate) > libm::fabs(post.max_rate)
            {
                let code = if checked_rate < 0.0 {
                    // Diagnostic: restart the negative-movement window from now.
                    self.fallback_time = Some(now);
                    self.fallback_time_text = tz.format(now);
                    STATUS_RATE_TOO_HIGH_NEG
                } else {
                    STATUS_RATE_TOO_HIGH_POS
                };
                // Reference `ClassFlowPostProcessing.cpp` 327-329: the value, the fallback value as it reads,
                // the checked rate.
                self.value_status = format!(
                    "{code} | Value: {}, Fallback: {}, Rate: {}",
                    fixed(value, self.decimal_places),
                    self.fallback_text,
                    fixed(checked_rate, self.decimal_places)
                );
                confirmed = false;
                outcome.deviation = true;
            }
            if !post.allow_negative_rate && confirmed && value < self.fallback_value {
                self.value_status = STATUS_RATE_NEGATIVE.to_string();
                confirmed = false;
                self.fallback_time = Some(now);
                self.fallback_time_text = tz.format(now);
            }
        } else {
            self.rate_per_minute = 0.0;
            self.rate_per_interval = 0.0;
        }

        if confirmed {
            self.fallback_value = value;
            self.fallback_text = fixed(value, self.decimal_places);
            self.fallback_time = Some(now);
            self.fallback_time_text = tz.format(now);
            self.fallback_valid = true;
            self.fallback_updated = true;
            self.value_status = STATUS_VALID.to_string();
            self.actual_value = value;
        } else {
            self.rate_per_minute = 0.0;
            self.rate_per_interval = 0.0;
            self.actual_value = self.fallback_value;
        }
        self.rate_per_minute_text = fixed(self.rate_per_minute, self.decimal_places + 1);
        self.rate_per_interval_text = fixed(self.rate_per_interval, self.decimal_places);
        self.actual_value_text = fixed(self.actual_value, self.decimal_places);
        outcome
    }

    fn set_empty(&mut self) {
        self.raw_value = String::new();
        self.actual_value = 0.0;
        self.actual_value_text = String::new();
        self.value_status = STATUS_EMPTY.to_string();
    }

    fn set_rates(&mut self, per_minute: f64, per_interval: f64) {
        self.rate_per_minute = per_minute;
        self.rate_per_interval = per_interval;
        self.rate_per_minute_text = fixed(per_minute, self.decimal_places + 1);
        self.rate_per_interval_text = fixed(per_interval, self.decimal_places);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_decimal_moves_point_left_and_right() {
        assert_eq!(shift_decimal("170052.8", -3), "170.0528");
        assert_eq!(shift_decimal("123", 0), "123");
        assert_eq!(shift_decimal("123", 2), "12300");
        assert_eq!(shift_decimal("123", -3), "0.123");
        assert_eq!(shift_decimal("123", -5), "0.00123");
        assert_eq!(shift_decimal("12.3", 1), "123");
        assert_eq!(shift_decimal("1N3", -1), "1N.3");
    }

    #[test]
    fn substitute_n_takes_digits_of_fallback() {
        assert_eq!(substitute_n("12N.4", 123.4), "123.4");
        assert_eq!(substitute_n("N2.N", 93.7), "92.7");
        assert_eq!(substitute_n("123.4N", 123.45), "123.45");
        assert_eq!(substitute_n("NNN", 7.0), "007");
    }

    #[test]
    fn substitute_n_is_robust_to_binary_fractions() {
        // 0.29 * 100 = 28.999999999999996 in binary floating point.
        assert_eq!(substitute_n("0.2N", 0.29), "0.29");
        assert_eq!(substitute_n("N.NN", 1.13), "1.13");
    }

    #[test]
    fn digit_consistency_keeps_digit_until_neighbour_crosses_zero() {
        // Fallback 129, reading 139 while the units did not cross zero: the tens digit is put back.
        assert_eq!(check_digit_consistency(139.0, 0, false, 129.0), 129.0);
        // Units crossed zero (9 -> 0) but the tens digit stayed: it is incremented.
        assert_eq!(check_digit_consistency(110.0, 0, false, 119.0), 120.0);
        // A consistent reading is unchanged.
        assert_eq!(check_digit_consistency(121.0, 0, false, 120.0), 121.0);
    }

    #[test]
    fn decimal_layout_matches_reference() {
        let mut post = PostProcessing {
            extended_resolution: false,
            ..PostProcessing::default()
        };
        let d = Shape {
            digits: 5,
            analogs: 0,
        };
        let a = Shape {
            digits: 0,
            analogs: 3,
        };
        let b = Shape {
            digits: 5,
            analogs: 2,
        };
        assert_eq!(decimal_layout(d, &post, DigitModel::Class100), (0, 0));
        assert_eq!(decimal_layout(b, &post, DigitModel::Class100), (0, 2));
        post.extended_resolution = true;
        assert_eq!(decimal_layout(d, &post, DigitModel::Class100), (-1, 1));
        assert_eq!(decimal_layout(d, &post, DigitModel::Class11), (0, 0));
        assert_eq!(decimal_layout(a, &post, DigitModel::Class11), (-1, 1));
        post.decimal_shift = -3;
        assert_eq!(decimal_layout(b, &post, DigitModel::Class100), (-3, 6));
    }
}
