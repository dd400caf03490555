//! Table-driven readout: the spec's worked examples (`fixtures/digitization-examples.toml`, a copy of
//! `shared/spec/digitization-examples.toml`) and more cases worked out from the reference algorithm.

use meter_core::config::{PostProcessing, RateCheck};
use meter_core::postprocess::{SequenceState, Shape};
use meter_core::readout::{to_class100, DigitModel, ReadoutParams};
use meter_core::time::TimeZone;
use serde::Deserialize;

#[derive(Deserialize)]
struct Cases {
    case: Vec<Case>,
}

#[derive(Deserialize, Clone)]
struct Case {
    digits: Vec<f64>,
    analogs: Vec<f64>,
    model: String,
    extended_resolution: bool,
    decimal_shift: i32,
    check_digit_increase_consistency: bool,
    analog_digit_sync_value: f64,
    expected: String,
}

fn run(case: &Case) -> String {
    let model = if case.model == "class11" {
        DigitModel::Class11
    } else {
        DigitModel::Class100
    };
    let post = PostProcessing {
        decimal_shift: case.decimal_shift,
        analog_digit_sync_value: case.analog_digit_sync_value,
        extended_resolution: case.extended_resolution,
        check_digit_increase_consistency: case.check_digit_increase_consistency,
        max_rate_check: RateCheck::Off,
        ..PostProcessing::default()
    };
    let shape = Shape {
        digits: case.digits.len(),
        analogs: case.analogs.len(),
    };
    let mut seq = SequenceState::new(0, "main", shape, &post, model);
    let digits: Vec<Option<i32>> = case
        .digits
        .iter()
        .map(|d| {
            Some(if model == DigitModel::Class11 {
                d.round() as i32
            } else {
                to_class100(*d)
            })
        })
        .collect();
    let analogs: Vec<Option<i32>> = case.analogs.iter().map(|a| Some(to_class100(*a))).collect();
    let params = ReadoutParams {
        model,
        extended_resolution: case.extended_resolution,
        analog_digit_sync_value: case.analog_digit_sync_value,
    };
    seq.process(
        &digits,
        &analogs,
        &params,
        &post,
        1_700_000_000,
        &TimeZone::UTC,
    );
    assert_eq!(
        seq.value_status, "000 Valid",
        "status for {:?}",
        case.digits
    );
    seq.actual_value_text
}

fn load(path: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    toml::from_str::<Cases>(&text)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .case
}

#[test]
fn spec_examples() {
    let cases = load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/digitization-examples.toml"
    ));
    assert_eq!(cases.len(), 8);
    for case in &cases {
        assert_eq!(
            run(case),
            case.expected,
            "digits {:?} analogs {:?}",
            case.digits,
            case.analogs
        );
    }
}

#[test]
fn fixture_copy_matches_shared_spec() {
    let shared = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/spec/digitization-examples.toml"
    );
    if let Ok(spec) = std::fs::read_to_string(shared) {
        let ours = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/digitization-examples.toml"
        ))
        .unwrap();
        assert_eq!(
            ours, spec,
            "fixtures/digitization-examples.toml drifted from shared/spec"
        );
    }
}

fn case(
    digits: &[f64],
    analogs: &[f64],
    model: &str,
    ext: bool,
    shift: i32,
    sync: f64,
    expected: &str,
) -> Case {
    Case {
        digits: digits.to_vec(),
        analogs: analogs.to_vec(),
        model: model.into(),
        extended_resolution: ext,
        decimal_shift: shift,
        check_digit_increase_consistency: false,
        analog_digit_sync_value: sync,
        expected: expected.into(),
    }
}

/// Cases worked by hand through the reference algorithm (evalDigitNumber / evalAnalogNumber /
/// evalAnalogToDigitTransition, shiftDecimal, setDecimalShift).
#[test]
fn own_cases() {
    let cases = [
        // Plain digits, no predecessor corrections needed.
        case(&[1.0, 2.0, 3.0], &[], "class100", false, 0, 9.2, "123"),
        // Last digit halfway: truncated without extended resolution...
        case(&[1.0, 2.0, 3.5], &[], "class100", false, 0, 9.2, "123"),
        // ...and carried as a tenth with it.
        case(&[1.0, 2.0, 3.5], &[], "class100", true, 0, 9.2, "123.5"),
        // Middle digit 2.8 after a predecessor at 0.1 (crossed zero) rounds up to 3.
        case(&[1.0, 2.8, 0.1], &[], "class100", false, 0, 9.2, "130"),
        // Middle digit 3.1 while its predecessor sits at 9.9 (not yet crossed) reads 2.
        case(&[1.0, 3.1, 9.9], &[], "class100", false, 0, 9.2, "129"),
        // Decimal shift to the right pads zeros.
        case(&[1.0, 2.0], &[], "class100", false, 2, 9.2, "1200"),
        // Decimal shift left past all digits.
        case(&[1.0, 2.0], &[], "class100", false, -3, 9.2, "0.012"),
        // Leading zeros are dropped.
        case(&[0.0, 0.0, 4.0, 2.0], &[], "class100", false, 0, 9.2, "42"),
        // Analog pointers only: whole numbers unless shifted (the reference adds no point without digits).
        case(&[], &[3.3, 7.8], "class100", false, 0, 9.2, "37"),
        case(&[], &[3.3, 7.8], "class100", true, 0, 9.2, "37.8"),
        case(&[], &[3.3, 7.8], "class100", false, -2, 9.2, "0.37"),
        // Pointer ambiguity resolved by the smaller pointer: 2.9 with 0.1 after it reads 3.
        case(&[5.0], &[2.9, 0.1], "class100", false, 0, 9.2, "5.30"),
        // Last digit in front of a pointer at 9.5: still before the sync value -> no carry.
        case(&[1.0, 4.9], &[9.5], "class100", false, 0, 9.2, "14.9"),
        // Same digit with the pointer through zero (0.2): carried.
        case(&[1.0, 4.9], &[0.2], "class100", false, 0, 9.2, "15.0"),
        // Class-11 digits are whole, no extended resolution even when asked.
        case(&[4.0, 0.0, 7.0], &[], "class11", true, 0, 9.2, "407"),
        case(&[4.0, 0.0, 7.0], &[5.5], "class11", false, 0, 9.2, "407.5"),
        // Class-11 with decimal shift.
        case(&[4.0, 0.0, 7.0], &[], "class11", false, -2, 9.2, "4.07"),
        // Extended resolution with digits + pointers adds the last pointer's tenth.
        case(&[2.0], &[4.4, 6.6], "class100", true, 0, 9.2, "2.466"),
        // A lower sync value makes the last digit carry earlier.
        case(&[3.9], &[8.0], "class100", false, 0, 7.7, "3.8"),
    ];
    for c in &cases {
        assert_eq!(
            run(c),
            c.expected,
            "digits {:?} analogs {:?} ext {}",
            c.digits,
            c.analogs,
            c.extended_resolution
        );
    }
}
