//! ROI results -> raw value string: the digit / analog-pointer readout of the reference firmware.
//!
//! Every ROI result is held as the reference's `CNNResult`: an integer 0..99 (tenths) for class-100 digits and
//! analog pointers, 0..9 for class-11 digits; `None` is an unrecognised ROI (`N`).

use alloc::string::String;

/// Tolerance of an analog pointer reading, tenths (reference `Analog_error`).
const ANALOG_ERROR: i32 = 3;
/// Band around the digit's zero crossing where a digit after an analog pointer rounds (`Digital_Uncertainty`).
const DIGITAL_UNCERTAINTY: i32 = 2;
/// Band around a whole digit that rounds instead of truncating (`DigitalBand`).
const DIGITAL_BAND: i32 = 3;
/// Predecessor far enough from its zero crossing (`Digital_Transition_Area_Predecessor`, 0.7 / 9.3).
const TRANSITION_AREA_PREDECESSOR: i32 = 7;
/// Predecessor pre-runs its zero crossing from 9.7 on (`Digital_Transition_Area_Forward`).
const TRANSITION_AREA_FORWARD: i32 = 97;

/// The digit model of the sequences' digit ROIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigitModel {
    /// 0.0 .. 9.9 per digit (also covers `dig-cont`); a rejected digit reads `N`.
    Class100,
    /// 0 .. 9 or `N` per digit; no extended resolution.
    Class11,
}

impl DigitModel {
    /// Class-11 cannot resolve tenths, so extended resolution never applies to it.
    pub fn allows_extended_resolution(self) -> bool {
        self == DigitModel::Class100
    }
}

/// One ROI result in tenths (class-100 / analog) or units (class-11); `None` reads `N`.
pub type Roi = Option<i32>;

/// Converts a reading as injected (e.g. `6.7`) into the model's integer result.
pub fn to_class100(value: f64) -> i32 {
    let tenths = libm::round(value * 10.0);
    if tenths.is_nan() {
        return 0;
    }
    (tenths as i64).clamp(0, 99) as i32
}

/// Parameters of one sequence that shape its raw value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadoutParams {
    pub model: DigitModel,
    pub extended_resolution: bool,
    /// `analogdigitsyncvalue` (e.g. 9.2), the pointer position where the next digit starts to move.
    pub analog_digit_sync_value: f64,
}

/// The readout of the analog pointers: digits from most to least significant (reference `getReadout` for analogs).
pub fn analog_readout(analogs: &[Roi], extended_resolution: bool) -> String {
    let mut result = String::new();
    let Some((last, rest)) = analogs.split_last() else {
        return result;
    };
    let mut previous = match last {
        Some(v) => {
            let digit = eval_analog(*v, -1);
            push_digit(&mut result, digit);
            if extended_resolution {
                push_digit(&mut result, v % 10);
            }
            digit
        }
        None => {
            result.push('N');
            if extended_resolution {
                result.push('N');
            }
            -1
        }
    };
    for roi in rest.iter().rev() {
        match roi {
            Some(v) => {
                previous = eval_analog(*v, previous);
                result.insert(0, digit_char(previous));
            }
            None => {
                previous = -1;
                result.insert(0, 'N');
            }
        }
    }
    result
}

/// The readout of the digit ROIs. `analog` is `Some` when the sequence has pointers, carrying the most significant
/// pointer's value and digit result when that pointer was read.
pub fn digit_readout(
    digits: &[Roi],
    analog: Option<Option<(i32, i32)>>,
    params: &ReadoutParams,
) -> String {
    let mut result = String::new();
    if params.model == DigitModel::Class11 {
        for d in digits {
            match d {
                Some(v) => push_digit(&mut result, *v),
                None => result.push('N'),
            }
        }
        return result;
    }
    let Some(last_index) = digits.len().checked_sub(1) else {
        return result;
    };
    let mut previous;
    match digits[last_index] {
        Some(value) => {
            if params.extended_resolution && analog.is_none() {
                push_digit(&mut result, value / 10);
                push_digit(&mut result, value % 10);
                previous = value / 10;
            } else {
                previous = match analog.flatten() {
                    Some((pointer, pointer_digit)) => {
                        let sync = libm::round(params.analog_digit_sync_value * 10.0) as i32;
                        eval_digit(value, pointer, pointer_digit, true, sync)
                    }
                    None => eval_digit(value, -1, -1, false, 0),
                };
                push_digit(&mut result, previous);
            }
        }
        None => {
            previous = -1;
            result.push('N');
            if params.extended_resolution {
                result.push('N');
            }
        }
    }
    for i in (0..last_index).rev() {
        match digits[i] {
            Some(value) => {
                // The reference hands over the successor's raw value even when it was rejected (treated as 0).
                let successor = digits[i + 1].unwrap_or(0);
                previous = eval_digit(value, successor, previous, false, 0);
                result.insert(0, digit_char(previous));
            }
            None => {
                previous = -1;
                result.insert(0, 'N');
            }
        }
    }
    result
}

/// The complete raw value before the decimal shift: digits, then `.` and the pointers when both are present.
pub fn raw_readout(digits: &[Roi], analogs: &[Roi], params: &ReadoutParams) -> String {
    let analog_part = analog_readout(analogs, params.extended_resolution);
    if digits.is_empty() {
        return analog_part;
    }
    if analogs.is_empty() {
        return digit_readout(digits, None, params);
    }
    // The pointer nearest the digits hands its value and its evaluated digit to the last digit.
    let handover = match (analogs[0], analog_part.as_bytes().first()) {
        (Some(v), Some(&c)) => char::from(c).to_digit(10).map(|d| (v, d as i32)),
        _ => None,
    };
    let mut raw = digit_readout(digits, Some(handover), params);
    raw.push('.');
    raw.push_str(&analog_part);
    raw
}

/// Reference `evalAnalogNumber`: the digit shown by a pointer, corrected by the less significant pointer.
pub fn eval_analog(value: i32, previous: i32) -> i32 {
    if previous <= -1 {
        return value / 10;
    }
    let mut max = value + ANALOG_ERROR;
    if max >= 100 {
        max -= 100;
    }
    let mut min = value - ANALOG_ERROR;
    if min < 0 {
        min += 100;
    }
    // The reference decides by the less significant pointer only where `min` and `max` fall in different decades;
    // where they do not, both are `value / 10` anyway, so that check is left out.
    if previous <= ANALOG_ERROR {
        return max / 10;
    }
    if previous >= 10 - ANALOG_ERROR {
        return min / 10;
    }
    value / 10
}

/// Reference `evalDigitNumber`: the digit shown, corrected by its less significant neighbour.
pub fn eval_digit(
    value: i32,
    previous_value: i32,
    previous_result: i32,
    previous_is_analog: bool,
    sync: i32,
) -> i32 {
    let integer = value / 10;
    let decimal = value % 10;
    if previous_result <= -1 {
        return integer;
    }
    if previous_is_analog {
        return eval_analog_to_digit(value, previous_value, previous_result, sync);
    }
    let round_up = |integer: i32| if integer + 1 >= 10 { 0 } else { integer + 1 };
    if (TRANSITION_AREA_PREDECESSOR..=100 - TRANSITION_AREA_PREDECESSOR).contains(&previous_value) {
        // Predecessor is far from its zero crossing: round only inside the band around a whole digit.
        if (decimal <= DIGITAL_BAND || decimal >= 10 - DIGITAL_BAND) && decimal >= 5 {
            return round_up(integer);
        }
        return integer;
    }
    if previous_result <= 1 {
        // The predecessor has crossed zero: this digit has passed at least half way.
        return if decimal >= 5 {
            round_up(integer)
        } else {
            integer
        };
    }
    if (previous_value <= TRANSITION_AREA_FORWARD && previous_result == previous_value / 10)
        || decimal >= 4
    {
        return integer;
    }
    // This digit runs ahead of a predecessor still at 9.x.
    if integer - 1 < 0 {
        9
    } else {
        integer - 1
    }
}

/// Reference `evalAnalogToDigitTransition`: the last digit in front of an analog pointer.
pub fn eval_analog_to_digit(value: i32, pointer_value: i32, pointer_result: i32, sync: i32) -> i32 {
    let integer = value / 10;
    let decimal = value % 10;
    let in_uncertainty =
        decimal >= 10 - DIGITAL_UNCERTAINTY || (pointer_result <= 4 && decimal >= 6);
    if !in_uncertainty || decimal < 5 {
        return integer;
    }
    let mut result = if integer + 1 >= 10 { 0 } else { integer + 1 };
    // No zero crossing of the pointer yet: take the round-up back.
    if pointer_result >= 6 && (pointer_value > sync || pointer_value <= 2) {
        result = if result - 1 < 0 { 9 } else { result - 1 };
    }
    result
}

fn digit_char(d: i32) -> char {
    char::from_digit(d.clamp(0, 9) as u32, 10).unwrap_or('N')
}

fn push_digit(s: &mut String, d: i32) {
    s.push(digit_char(d));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c100(ext: bool) -> ReadoutParams {
        ReadoutParams {
            model: DigitModel::Class100,
            extended_resolution: ext,
            analog_digit_sync_value: 9.2,
        }
    }
    fn t(v: f64) -> i32 {
        to_class100(v)
    }

    // Cases from the reference's own unit tests of evalDigitNumber / evalAnalogNumber.
    #[test]
    fn digit_without_predecessor_truncates() {
        assert_eq!(eval_digit(t(5.3), -1, -1, false, 0), 5);
        assert_eq!(eval_digit(t(9.9), -1, -1, false, 0), 9);
    }

    #[test]
    fn digit_after_zero_crossing_of_predecessor() {
        assert_eq!(eval_digit(t(5.3), t(0.1), 0, false, 0), 5);
        assert_eq!(eval_digit(t(4.5), t(0.7), 0, false, 0), 4);
        assert_eq!(eval_digit(t(5.7), t(0.1), 0, false, 0), 6);
        assert_eq!(eval_digit(t(9.6), t(0.1), 0, false, 0), 0);
    }

    #[test]
    fn digit_before_zero_crossing_of_predecessor() {
        assert_eq!(eval_digit(t(5.7), t(9.8), 9, false, 0), 5);
        assert_eq!(eval_digit(t(4.5), t(9.8), 9, false, 0), 4);
        assert_eq!(eval_digit(t(4.5), t(9.5), 9, false, 0), 4);
        assert_eq!(eval_digit(t(8.6), t(9.8), 9, false, 0), 8);
        assert_eq!(eval_digit(t(5.2), t(9.8), 9, false, 0), 4);
        assert_eq!(eval_digit(t(0.2), t(9.8), 9, false, 0), 9);
    }

    #[test]
    fn digit_in_safe_area_rounds_only_in_band() {
        assert_eq!(eval_digit(t(1.8), t(5.0), 5, false, 0), 2);
        assert_eq!(eval_digit(t(1.2), t(5.0), 5, false, 0), 1);
        assert_eq!(eval_digit(t(1.5), t(5.0), 5, false, 0), 1);
        assert_eq!(eval_digit(t(9.8), t(5.0), 5, false, 0), 0);
        // The band is 0.3 wide: 1.7 rounds, 1.6 does not.
        assert_eq!(eval_digit(t(1.7), t(5.0), 5, false, 0), 2);
        assert_eq!(eval_digit(t(1.6), t(5.0), 5, false, 0), 1);
        // The predecessor's safe area starts at 0.7 and ends at 9.3.
        assert_eq!(eval_digit(t(2.8), t(0.7), 0, false, 0), 3);
        assert_eq!(eval_digit(t(2.8), t(0.6), 0, false, 0), 3);
        assert_eq!(eval_digit(t(2.4), t(9.3), 9, false, 0), 2);
    }

    #[test]
    fn analog_without_predecessor() {
        assert_eq!(eval_analog(73, -1), 7);
        assert_eq!(eval_analog(0, -1), 0);
    }

    #[test]
    fn analog_ambiguous_uses_predecessor() {
        // 2.9 with predecessor at 0 -> the pointer already passed 3.
        assert_eq!(eval_analog(29, 0), 3);
        // 3.1 with predecessor at 9 -> the pointer has not reached 3 yet.
        assert_eq!(eval_analog(31, 9), 2);
        // 9.9 with predecessor 1 -> wraps to 0.
        assert_eq!(eval_analog(99, 1), 0);
        // 0.1 with predecessor 9 -> wraps back to 9.
        assert_eq!(eval_analog(1, 9), 9);
        // Unambiguous pointer keeps its value.
        assert_eq!(eval_analog(55, 9), 5);
        // Ambiguous but predecessor in the middle -> keep.
        assert_eq!(eval_analog(29, 5), 2);
        // The tolerance is 0.3: 2.7 is still ambiguous, so a predecessor at 0 lifts it to 3 ...
        assert_eq!(eval_analog(27, 0), 3);
        // ... but 2.6 is not.
        assert_eq!(eval_analog(26, 0), 2);
        // Predecessor exactly at the tolerance (0.3 / 9.7 boundary) still counts.
        assert_eq!(eval_analog(29, 3), 3);
        assert_eq!(eval_analog(31, 7), 2);
    }

    #[test]
    fn analog_to_digit_transition() {
        // Digit 2.8 with pointer 8.7 (not yet through zero), sync 7.7 -> stays 2.
        assert_eq!(eval_analog_to_digit(28, 87, 8, 77), 2);
        // Digit 2.9 with pointer 0.1 (through zero) -> 3.
        assert_eq!(eval_analog_to_digit(29, 1, 0, 92), 3);
        // Digit runs late: pointer at 2, decimal 6 -> round up.
        assert_eq!(eval_analog_to_digit(36, 20, 2, 92), 4);
        // Digit 6.7 with pointer 9.5 -> 6.
        assert_eq!(eval_analog_to_digit(67, 95, 9, 92), 6);
        // Digit 9.9 with pointer 9.9 (before sync crossing? 99 > 92) -> back to 9.
        assert_eq!(eval_analog_to_digit(99, 99, 9, 92), 9);
        // Mid-range decimal is never touched.
        assert_eq!(eval_analog_to_digit(45, 50, 5, 92), 4);
    }

    #[test]
    fn analog_readout_extended_appends_tenths() {
        assert_eq!(analog_readout(&[Some(99), Some(1)], true), "001");
        assert_eq!(analog_readout(&[Some(99), Some(1)], false), "00");
        assert_eq!(analog_readout(&[Some(95), Some(84)], false), "98");
        assert_eq!(analog_readout(&[], false), "");
    }

    #[test]
    fn analog_readout_marks_unknown_pointer() {
        assert_eq!(analog_readout(&[Some(50), None], false), "5N");
        assert_eq!(analog_readout(&[None, Some(30)], true), "N30");
    }

    #[test]
    fn digit_readout_class11_concatenates() {
        let p = ReadoutParams {
            model: DigitModel::Class11,
            ..c100(false)
        };
        assert_eq!(digit_readout(&[Some(1), None, Some(9)], None, &p), "1N9");
    }

    #[test]
    fn digit_readout_rejected_digits_read_n() {
        assert_eq!(
            digit_readout(&[Some(10), None, Some(30)], None, &c100(false)),
            "1N3"
        );
        assert_eq!(
            digit_readout(&[Some(10), Some(20), None], None, &c100(true)),
            "12NN"
        );
        assert_eq!(
            digit_readout(&[Some(10), Some(20), None], None, &c100(false)),
            "12N"
        );
    }

    #[test]
    fn raw_readout_joins_digits_and_pointers() {
        let raw = raw_readout(&[Some(12), Some(67)], &[Some(95), Some(84)], &c100(false));
        assert_eq!(raw, "16.98");
    }

    #[test]
    fn raw_readout_pointer_n_gives_no_handover() {
        let raw = raw_readout(&[Some(12), Some(67)], &[None, Some(84)], &c100(false));
        assert_eq!(raw, "16.N8");
    }

    #[test]
    fn class100_conversion_clamps_and_rounds() {
        assert_eq!(to_class100(6.7), 67);
        assert_eq!(to_class100(9.96), 99);
        assert_eq!(to_class100(-1.0), 0);
        assert_eq!(to_class100(f64::NAN), 0);
        assert_eq!(to_class100(0.05), 1);
    }
}
