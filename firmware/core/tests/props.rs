//! Property tests: any readings and any post-processing parameters give no panic and a valid value status.

mod common;

use meter_core::config::{PostProcessing, RateCheck};
use meter_core::postprocess::{SequenceState, Shape};
use meter_core::readout::{DigitModel, ReadoutParams};
use meter_core::time::TimeZone;
use proptest::prelude::*;

const STATUS_PREFIXES: [&str; 6] = [
    "000 Valid",
    "W01 Empty data",
    "E90 ",
    "E91 Rate negative",
    "E92 ",
    "E93 ",
];

fn roi(max: i32) -> impl Strategy<Value = Option<i32>> {
    prop_oneof![1 => Just(None), 6 => (0..=max).prop_map(Some)]
}

fn post() -> impl Strategy<Value = PostProcessing> {
    (
        -4i32..=4,
        6.0f64..9.9,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0u8..3,
        0.0f64..100.0,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(shift, sync, ext, lead, cons, check, max, neg, fallback)| PostProcessing {
                decimal_shift: shift,
                analog_digit_sync_value: sync,
                extended_resolution: ext,
                ignore_leading_nan: lead,
                check_digit_increase_consistency: cons,
                max_rate_check: [RateCheck::Off, RateCheck::PerMinute, RateCheck::PerInterval]
                    [check as usize],
                max_rate: max,
                allow_negative_rate: neg,
                use_fallback_value: fallback,
                fallback_value_age_startup: 720,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_cycle_sequence_is_valid(
        class11 in any::<bool>(),
        cycles in prop::collection::vec(
            (prop::collection::vec(roi(99), 0..8), prop::collection::vec(roi(99), 0..4), 0i64..7200), 1..6),
        post in post(),
        preset in prop::option::of(0.0f64..1e7),
    ) {
        let model = if class11 { DigitModel::Class11 } else { DigitModel::Class100 };
        let (d0, a0) = (cycles[0].0.len(), cycles[0].1.len());
        let shape = Shape { digits: d0, analogs: a0 };
        let mut seq = SequenceState::new(0, "main", shape, &post, model);
        let tz = TimeZone::UTC;
        let mut now = 1_700_000_000;
        if let Some(v) = preset {
            seq.set_fallback(v, now, &tz);
        }
        for (digits, analogs, dt) in &cycles {
            now += dt;
            let mut digits: Vec<Option<i32>> = digits.iter().take(d0).cloned().collect();
            digits.resize(d0, None);
            if class11 {
                for d in digits.iter_mut().flatten() { *d %= 10; }
            }
            let mut analogs: Vec<Option<i32>> = analogs.iter().take(a0).cloned().collect();
            analogs.resize(a0, None);
            let params = ReadoutParams { model, extended_resolution: post.extended_resolution, analog_digit_sync_value: post.analog_digit_sync_value };
            seq.process(&digits, &analogs, &params, &post, now, &tz);
            prop_assert!(STATUS_PREFIXES.iter().any(|p| seq.value_status.starts_with(p)), "status {:?}", seq.value_status);
            if seq.value_status.starts_with("000") {
                prop_assert!(seq.actual_value_text.parse::<f64>().is_ok(), "actual {:?}", seq.actual_value_text);
            }
            prop_assert!(!seq.raw_value.contains(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'N')), "raw {:?}", seq.raw_value);
        }
    }

    #[test]
    fn console_never_panics(line in "\\PC{0,80}") {
        let mut b = common::Bench::online(&common::fixture("flat-json.json"));
        let reply = b.console(&line);
        prop_assert!(reply.is_empty() || reply.starts_with("ok") || reply.starts_with("err "));
        prop_assert!(!reply.contains('\n'));
    }

    #[test]
    fn control_payloads_never_panic(payload in prop::collection::vec(any::<u8>(), 0..200), which in 0usize..4) {
        let mut b = common::Bench::online(&common::fixture("flat-json.json"));
        let topic = ["/process/ctrl/set_fallbackvalue", "/process/ctrl/cycle_start", "/device/gpio/gpio13/ctrl", "/device/gpio/relay/ctrl"][which];
        let full = format!("watermeter{topic}");
        b.send(meter_core::Event::MqttMessage { topic: full, payload });
        prop_assert!(b.engine.mqtt_connected());
    }

    #[test]
    fn config_patches_never_panic(json in "\\{\"(mqtt|gpio|operationmode|postprocessing)\": \\{\"[a-z]{1,12}\": (1|-1|\"x\"|true|null|\\[\\]|\\{\\})\\}\\}") {
        let mut b = common::Bench::online(&common::fixture("flat-json.json"));
        let r = b.http("POST", "/api/config", "", &json);
        prop_assert!(r.status == 200 || r.status == 400);
    }
}
