//! The device driven through events, as a board would: boot, MQTT, cycles, control topics, GPIO, console, REST.

mod common;

use common::{fixture, Bench, T0};
use meter_core::engine::{Action, Event};
use serde_json::{json, Value};

fn manual(extra: Value) -> String {
    let mut base = json!({
        "operationmode": {"opmode": 0},
        "digit": {"sequence": [{"sequenceid": 0, "roi": [{"name": "d1"}, {"name": "d2"}, {"name": "d3"}]}]},
        "analog": {"sequence": [{"sequenceid": 0, "roi": []}]},
        "postprocessing": {"sequence": [{"sequenceid": 0, "extendedresolution": false, "maxratechecktype": 0}]},
        "mqtt": {"enabled": true, "uri": "mqtt://127.0.0.1:1883", "maintopic": "meter"},
        "gpio": {"customizationenabled": true, "gpiopin": []},
        "network": {"time": {"timezone": "UTC0"}}
    });
    meter_core::config::merge(&mut base, extra);
    base.to_string()
}

fn post(extra: Value) -> Value {
    let mut p = json!({"sequenceid": 0, "extendedresolution": false, "maxratechecktype": 0});
    meter_core::config::merge(&mut p, extra);
    json!({"postprocessing": {"sequence": [p]}})
}

// ---- boot and connection ----

#[test]
fn boot_asks_for_connection_with_lwt() {
    let mut b = Bench::new();
    b.boot(Some(manual(json!({}))), None);
    let connect = b.all.iter().find_map(|a| {
        if let Action::MqttConnect(s) = a {
            Some(s.clone())
        } else {
            None
        }
    });
    let s = connect.expect("MqttConnect at boot");
    assert_eq!((s.host.as_str(), s.port, s.tls), ("127.0.0.1", 1883, false));
    assert_eq!(s.lwt_topic, "meter/device/status/connection");
    assert_eq!(s.lwt_payload, "offline");
    assert_eq!(
        s.keepalive_s, 120,
        "what v17 sends whatever the interval (decision 29)"
    );
}

#[test]
fn mqtt_disabled_never_connects() {
    let mut b = Bench::new();
    b.boot(Some(json!({"mqtt": {"enabled": false}}).to_string()), None);
    assert!(!b.all.iter().any(|a| matches!(a, Action::MqttConnect(_))));
    assert!(b.engine.mqtt_settings().is_none());
}

#[test]
fn connect_subscribes_control_topics_and_publishes_birth() {
    let b = Bench::online(&fixture("flat-json.json"));
    assert!(b
        .subscriptions
        .contains(&"watermeter/process/ctrl/cycle_start".to_string()));
    assert!(b
        .subscriptions
        .contains(&"watermeter/process/ctrl/set_fallbackvalue".to_string()));
    assert!(b
        .subscriptions
        .contains(&"watermeter/device/gpio/relay/ctrl".to_string()));
    assert!(b
        .subscriptions
        .contains(&"watermeter/device/gpio/gpio13/ctrl".to_string()));
    assert!(
        !b.subscriptions.iter().any(|s| s.contains("/door/")),
        "inputs take no ctrl"
    );
    let birth = &b.tree["watermeter/device/status/connection"];
    assert_eq!((birth.payload.as_str(), birth.retain), ("online", true));
}

#[test]
fn device_info_is_retained_after_connect() {
    let b = Bench::online(&fixture("flat-json.json"));
    assert!(b.tree["watermeter/device/info/hardware"].retain);
    let hw = b.json("/device/info/hardware");
    assert_eq!(hw["board"]["chip_model"], "ESP32C3");
    assert_eq!(hw["board"]["chip_cores"], 1);
    assert_eq!(hw["camera"]["type"], "simulated");
    assert!(hw["sdcard"]["capacity"].is_number());
    let net = b.json("/device/info/network");
    assert_eq!(
        net,
        json!({"hostname": "watermeter", "ipv4_address": "127.0.0.1", "mac_address": "02:00:00:00:00:01"})
    );
    assert_eq!(b.get("/device/info/firmware_version"), Some("v17.0.0-test"));
}

#[test]
fn gpio_states_after_connect() {
    let b = Bench::online(&fixture("flat-json.json"));
    assert_eq!(b.get("/device/gpio/relay/state"), Some(r#"{"state":0}"#));
    assert_eq!(
        b.get("/device/gpio/gpio13/state"),
        Some(r#"{"state":0,"pwm_duty":0}"#)
    );
    assert_eq!(
        b.get("/device/gpio/door/state"),
        Some(r#"{"state":1}"#),
        "pull-up idles high"
    );
    assert_eq!(b.get("/device/gpio/flash/state"), None, "not exposed");
}

#[test]
fn nothing_is_published_while_disconnected() {
    let mut b = Bench::new();
    b.boot(Some(manual(json!({}))), None);
    b.cycle_without_mqtt();
    assert!(b.publishes.is_empty());
    assert_eq!(b.engine.cycle_counter(), 1);
}

impl Bench {
    fn cycle_without_mqtt(&mut self) {
        self.http("GET", "/api/status", "", "");
        // A GPIO trigger is the only way to start a cycle without MQTT in this config; use the engine directly.
        self.engine.request_cycle();
        let frame = self.engine.capture_simulated();
        self.send(Event::Frame(frame));
    }
}

// ---- the process cycle ----

#[test]
fn cycle_start_runs_one_cycle_and_publishes_status() {
    let mut b = Bench::online(&manual(json!({})));
    b.console("frame main digits=1,2,3");
    b.cycle();
    assert_eq!(b.get("/process/status/cycle_counter"), Some("1"));
    // Every state is published as it comes (reference ClassFlowControl.cpp / MainFlowControl.cpp); the cycle
    // ends idle. No analog ROIs here, but the analog step belongs to the flow while analog is enabled.
    let states: Vec<&str> = b
        .publishes
        .iter()
        .filter(|(t, _)| t.ends_with("/process/status/process_state"))
        .map(|(_, m)| m.payload.as_str())
        .collect();
    assert_eq!(
        states,
        [
            "Take Image",
            "Image Alignment",
            "ROI Processing - Digit",
            "ROI Processing - Analog",
            "Post-Processing",
            "Publish to MQTT",
            "Publish to MQTT",
            "Additional Tasks",
            "Idle - No Autostart"
        ]
    );
    assert_eq!(
        b.get("/process/status/process_status"),
        Some("Processing (Triggered Only)")
    );
    assert_eq!(b.get("/process/status/process_interval"), Some("1.0"));
    assert_eq!(
        b.get("/process/status/process_time"),
        Some("0"),
        "the first cycle reports the one before it: none"
    );
    assert_eq!(b.get("/process/status/process_error"), Some("0"));
    assert_eq!(b.get("/device/status/device_uptime"), Some("1"));
    assert_eq!(b.get("/device/status/wlan_rssi"), Some("-55"));
    assert_eq!(b.get("/device/status/chip_temp"), Some("41"));
    assert_eq!(b.get("/device/status/ntp_syncstatus"), Some("Synchronized"));
    assert_eq!(
        b.json("/device/status/heap")["heap_total_free"],
        200 * 1024,
        "bytes"
    );
    assert_eq!(b.engine.state().as_str(), "Idle - No Autostart");
    b.cycle();
    assert_eq!(b.get("/process/status/cycle_counter"), Some("2"));
    assert_eq!(
        b.get("/process/status/process_time"),
        Some("1"),
        "the first cycle took 1.5 s"
    );
}

#[test]
fn process_data_json_fields() {
    let mut b = Bench::online(&manual(json!({})));
    b.console("frame main digits=1,2,3");
    b.cycle();
    let data = b.json("/process/data/0/json");
    assert_eq!(data["sequence_name"], "main");
    assert_eq!(data["actual_value"], "123");
    assert_eq!(data["raw_value"], "123");
    assert_eq!(data["fallback_value"], "123");
    assert_eq!(data["value_status"], "000 Valid");
    assert_eq!(data["rate_per_minute"], "0.0");
    assert_eq!(data["rate_per_interval"], "0");
    assert_eq!(data["timestamp_processed"], "2024-02-02T15:59:25+0000");
    assert!(
        data.get("rate_per_time_unit").is_none(),
        "only with HA discovery"
    );
    assert_eq!(b.get("/process/data/number_sequences"), Some("1"));
}

#[test]
fn cycle_start_with_empty_payload_is_refused() {
    let mut b = Bench::online(&manual(json!({})));
    b.mqtt("/process/ctrl/cycle_start", "");
    assert_eq!(b.engine.cycle_counter(), 0);
    assert!(b.engine.last_error().unwrap().contains("empty payload"));
}

#[test]
fn cycle_start_works_in_setup_mode() {
    let mut b = Bench::online(&manual(json!({"operationmode": {"opmode": -1}})));
    b.cycle();
    assert_eq!(b.engine.cycle_counter(), 1);
    assert_eq!(
        b.get("/process/status/process_status"),
        Some("Not Processing / Not Ready")
    );
    assert_eq!(b.engine.state().as_str(), "Setup Mode");
}

#[test]
fn automatic_mode_runs_on_interval() {
    let mut b = Bench::online(&manual(
        json!({"operationmode": {"opmode": 1, "automaticprocessinterval": 2}}),
    ));
    b.send(Event::Tick);
    assert_eq!(b.engine.cycle_counter(), 1);
    b.advance_s(60);
    b.send(Event::Tick);
    assert_eq!(b.engine.cycle_counter(), 1, "interval not yet over");
    b.advance_s(60);
    b.send(Event::Tick);
    assert_eq!(b.engine.cycle_counter(), 2);
    assert_eq!(
        b.get("/process/status/process_status"),
        Some("Processing (Automatic)")
    );
    assert_eq!(b.engine.state().as_str(), "Idle - Waiting For Autostart");
}

#[test]
fn manual_mode_ignores_ticks() {
    let mut b = Bench::online(&manual(json!({})));
    for _ in 0..5 {
        b.advance_s(600);
        b.send(Event::Tick);
    }
    assert_eq!(b.engine.cycle_counter(), 0);
}

#[test]
fn first_automatic_cycle_waits_for_broker() {
    let mut b = Bench::new();
    b.boot(Some(manual(json!({"operationmode": {"opmode": 1}}))), None);
    b.send(Event::Tick);
    assert_eq!(b.engine.cycle_counter(), 0);
    b.send(Event::MqttConnected);
    b.send(Event::Tick);
    assert_eq!(b.engine.cycle_counter(), 1);
}

#[test]
fn alignment_failure_aborts_and_escalates() {
    let mut b = Bench::online(&manual(json!({})));
    b.console("frame main digits=1,2,3");
    b.cycle();
    let data_before = b.get("/process/data/0/json").unwrap().to_string();
    let mut seen = vec![];
    for _ in 0..4 {
        assert!(b.console("frame main align=fail").starts_with("ok"));
        b.cycle();
        seen.push(b.get("/process/status/process_error").unwrap().to_string());
    }
    assert_eq!(seen, ["-1", "-1", "-2", "-2"]);
    assert_eq!(
        b.get("/process/data/0/json").unwrap(),
        data_before,
        "aborted cycles publish no process data"
    );
    assert!(b.engine.last_error().unwrap().contains("alignment failed"));
    b.cycle();
    assert_eq!(
        b.get("/process/status/process_error"),
        Some("0"),
        "a good cycle clears the error"
    );
}

#[test]
fn flashlight_is_on_only_while_taking_the_image() {
    let mut b = Bench::online(&fixture("flat-json.json"));
    let actions = b.mqtt("/process/ctrl/cycle_start", "go");
    let flash: Vec<(bool, Option<u32>)> = actions
        .iter()
        .filter_map(|a| {
            if let Action::SetPin {
                pin: 4,
                level,
                duty,
            } = a
            {
                Some((*level, *duty))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(flash, [(true, Some(8191)), (false, Some(0))]);
    let on = actions
        .iter()
        .position(|a| {
            matches!(
                a,
                Action::SetPin {
                    pin: 4,
                    level: true,
                    ..
                }
            )
        })
        .unwrap();
    let req = actions
        .iter()
        .position(|a| matches!(a, Action::RequestFrame))
        .unwrap();
    assert!(on < req, "light on before the image is taken");
}

#[test]
fn frame_without_cycle_is_ignored() {
    let mut b = Bench::online(&manual(json!({})));
    let frame = b.engine.capture_simulated();
    b.send(Event::Frame(frame));
    assert_eq!(b.engine.cycle_counter(), 0);
    assert!(b.logs.iter().any(|l| l.contains("no cycle is running")));
}

#[test]
fn cycle_requested_during_cycle_follows_it() {
    let mut b = Bench::online(&manual(json!({})));
    let now = b.now;
    let a = b.engine.handle(
        now,
        Event::MqttMessage {
            topic: "meter/process/ctrl/cycle_start".into(),
            payload: b"1".to_vec(),
        },
    );
    assert!(a.contains(&Action::RequestFrame));
    let a = b.engine.handle(
        now,
        Event::MqttMessage {
            topic: "meter/process/ctrl/cycle_start".into(),
            payload: b"1".to_vec(),
        },
    );
    assert!(!a.contains(&Action::RequestFrame), "second request waits");
    let frame = b.engine.capture_simulated();
    let a = b.engine.handle(now + 1000, Event::Frame(frame));
    assert!(
        a.contains(&Action::RequestFrame),
        "queued cycle starts right after"
    );
    assert_eq!(b.engine.cycle_counter(), 2);
}

// ---- post-processing through the device ----

#[test]
fn n_without_fallback_is_e90() {
    let mut b = Bench::online(&manual(json!({})));
    b.console("frame main digits=1,N,3");
    b.cycle();
    let d = b.json("/process/data/0/json");
    assert_eq!(d["value_status"], "E90 No data to substitute N | Raw: 1N3");
    assert_eq!(d["actual_value"], "");
    assert_eq!(d["raw_value"], "1N3");
}

#[test]
fn n_is_substituted_from_fallback() {
    let mut b = Bench::online(&manual(json!({})));
    b.console("frame main digits=1,2,3");
    b.cycle();
    b.advance_s(60);
    b.console("frame main digits=1,N,4");
    b.cycle();
    let d = b.json("/process/data/0/json");
    assert_eq!(d["actual_value"], "124");
    assert_eq!(d["raw_value"], "1N4");
    assert_eq!(d["value_status"], "000 Valid");
}

#[test]
fn nothing_injected_reads_all_n() {
    let mut b = Bench::online(&manual(json!({})));
    b.cycle();
    assert_eq!(b.json("/process/data/0/json")["raw_value"], "NNN");
}

#[test]
fn rates_and_max_rate_deviation() {
    let cfg = manual(post(json!({"maxratechecktype": 1, "maxrate": 2})));
    let mut b = Bench::online(&cfg);
    b.console("frame main digits=1,0,0");
    b.cycle();
    b.advance_s(60);
    b.console("frame main digits=1,0,1");
    b.cycle();
    let d = b.json("/process/data/0/json");
    assert_eq!(d["rate_per_interval"], "1");
    assert_eq!(d["value_status"], "000 Valid");
    assert!(d["rate_per_minute"].as_str().unwrap().starts_with("1.0"));
    // +50 within a minute: too high.
    let mut errors = vec![];
    for v in ["1,5,1", "1,5,1", "1,5,1"] {
        b.advance_s(60);
        b.console(&format!("frame main digits={v}"));
        b.cycle();
        errors.push(b.get("/process/status/process_error").unwrap().to_string());
    }
    let d = b.json("/process/data/0/json");
    assert!(
        d["value_status"]
            .as_str()
            .unwrap()
            .starts_with("E93 Rate too high (>) | Value: 151, Fallback: 101, Rate: "),
        "{d}"
    );
    assert_eq!(d["actual_value"], "101", "the fallback stands in");
    assert_eq!(d["rate_per_minute"], "0.0");
    assert_eq!(errors, ["1", "1", "2"]);
}

#[test]
fn rate_too_high_negative_is_e92() {
    let cfg = manual(post(
        json!({"maxratechecktype": 2, "maxrate": 5, "allownegativerate": true}),
    ));
    let mut b = Bench::online(&cfg);
    b.console("frame main digits=5,0,0");
    b.cycle();
    b.console("frame main digits=4,0,0");
    b.advance_s(60);
    b.cycle();
    let d = b.json("/process/data/0/json");
    assert!(
        d["value_status"]
            .as_str()
            .unwrap()
            .starts_with("E92 Rate too high (<)"),
        "{d}"
    );
}

#[test]
fn negative_rate_is_e91_unless_allowed() {
    let mut b = Bench::online(&manual(json!({})));
    b.console("frame main digits=5,0,0");
    b.cycle();
    b.advance_s(60);
    b.console("frame main digits=4,9,9");
    b.cycle();
    let d = b.json("/process/data/0/json");
    assert_eq!(d["value_status"], "E91 Rate negative");
    assert_eq!(d["actual_value"], "500");
    assert_eq!(
        b.get("/process/status/process_error"),
        Some("0"),
        "a negative rate is no deviation"
    );

    let mut b = Bench::online(&manual(post(json!({"allownegativerate": true}))));
    b.console("frame main digits=5,0,0");
    b.cycle();
    b.advance_s(60);
    b.console("frame main digits=4,9,9");
    b.cycle();
    let d = b.json("/process/data/0/json");
    assert_eq!(d["value_status"], "000 Valid");
    assert_eq!(d["actual_value"], "499");
    assert_eq!(d["rate_per_interval"], "-1");
}

#[test]
fn fallback_disabled_reads_disabled() {
    let mut b = Bench::online(&manual(post(json!({"usefallbackvalue": false}))));
    b.console("frame main digits=1,2,3");
    b.cycle();
    let d = b.json("/process/data/0/json");
    assert_eq!(d["fallback_value"], "Disabled");
    assert_eq!(d["actual_value"], "123");
}

#[test]
fn decimal_places_follow_shift() {
    let mut b = Bench::online(&manual(post(json!({"decimalshift": -2}))));
    b.console("frame main digits=1,2,3");
    b.cycle();
    assert_eq!(b.json("/process/data/0/json")["actual_value"], "1.23");
}

#[test]
fn class11_ignore_leading_n() {
    let cfg = manual(json!({"digit": {"cnntype": "class11"},
                            "postprocessing": {"sequence": [{"sequenceid": 0, "ignoreleadingnan": true, "maxratechecktype": 0}]}}));
    let mut b = Bench::online(&cfg);
    b.console("frame main digits=N,4,2");
    b.cycle();
    let d = b.json("/process/data/0/json");
    assert_eq!(d["raw_value"], "42");
    assert_eq!(d["actual_value"], "42");
    assert!(b
        .console("frame main digits=1.5,4,2")
        .starts_with("err bad-value"));
}

#[test]
fn class11_digit_increase_consistency() {
    let cfg = manual(json!({"digit": {"cnntype": "class11"},
                            "postprocessing": {"sequence": [{"sequenceid": 0, "checkdigitincreaseconsistency": true, "maxratechecktype": 0}]}}));
    let mut b = Bench::online(&cfg);
    b.console("frame main digits=1,2,9");
    b.cycle();
    b.advance_s(60);
    // The tens digit jumps although the units did not cross zero: put back.
    b.console("frame main digits=1,3,9");
    b.cycle();
    assert_eq!(b.json("/process/data/0/json")["actual_value"], "129");
}

// ---- set_fallbackvalue ----

#[test]
fn set_fallbackvalue_sets_and_persists() {
    let mut b = Bench::online(&manual(json!({})));
    b.mqtt(
        "/process/ctrl/set_fallbackvalue",
        r#"{"sequence":"main","value":120}"#,
    );
    let stored: Value = serde_json::from_str(b.persisted_fallbacks.as_deref().unwrap()).unwrap();
    assert_eq!(
        stored,
        json!([{"sequence": "main", "time": T0 / 1000, "value": "120"}])
    );
    b.advance_s(60);
    b.console("frame main digits=1,2,3");
    b.cycle();
    let d = b.json("/process/data/0/json");
    assert_eq!(d["rate_per_interval"], "3");
    assert_eq!(d["value_status"], "000 Valid");
}

#[test]
fn set_fallbackvalue_negative_takes_raw_value() {
    let mut b = Bench::online(&manual(post(json!({"allownegativerate": true}))));
    b.console("frame main digits=1,2,3");
    b.cycle();
    b.mqtt(
        "/process/ctrl/set_fallbackvalue",
        r#"{"sequence":"main","value":-1}"#,
    );
    assert!(b.engine.last_error().is_none());
    assert_eq!(b.engine.sequences()[0].fallback_value, 123.0);
}

#[test]
fn set_fallbackvalue_errors_change_nothing() {
    let mut b = Bench::online(&manual(json!({})));
    b.console("frame main digits=N,N,N");
    b.cycle();
    let before = b.engine.sequences().to_vec();
    let persisted = b.persisted_fallbacks.clone();
    let cases = [
        ("{nope", "not valid JSON"),
        ("[]", "must be a JSON object"),
        (r#"{"value":1}"#, "\"sequence\""),
        (
            r#"{"sequence":"nope","value":1}"#,
            "no number sequence named 'nope'",
        ),
        (r#"{"sequence":"main"}"#, "\"value\" is missing"),
        (r#"{"sequence":"main","value":"abc"}"#, "is not a number"),
        (r#"{"sequence":"main","value":"NaN"}"#, "is not a number"),
        (r#"{"sequence":"main","value":"12"}"#, "is not a number"),
        (
            r#"{"sequence":"main","value":-5}"#,
            "no valid raw value ('NNN')",
        ),
    ];
    for (payload, expected) in cases {
        b.mqtt("/process/ctrl/set_fallbackvalue", payload);
        let err = b.engine.last_error().unwrap_or_default().to_string();
        assert!(err.contains(expected), "{payload}: {err}");
        assert_eq!(b.engine.sequences(), &before[..], "{payload} changed state");
        assert_eq!(b.persisted_fallbacks, persisted);
    }
    let big = format!(
        r#"{{"sequence":"main","value":1,"pad":"{}"}}"#,
        "x".repeat(5000)
    );
    b.mqtt("/process/ctrl/set_fallbackvalue", &big);
    assert!(b.engine.last_error().unwrap().contains("exceeds"));
    assert_eq!(b.engine.sequences(), &before[..]);
}

#[test]
fn fallback_survives_reboot_within_age() {
    let cfg = manual(json!({}));
    let mut b = Bench::online(&cfg);
    b.console("frame main digits=1,2,3");
    b.cycle();
    let stored = b.persisted_fallbacks.clone().unwrap();

    let mut rebooted = Bench::new();
    rebooted.now = b.now + 10 * 60_000;
    rebooted.boot(Some(cfg.clone()), Some(stored.clone()));
    rebooted.send(Event::MqttConnected);
    rebooted.console("frame main digits=1,2,N");
    rebooted.cycle();
    let d = rebooted.json("/process/data/0/json");
    assert_eq!(
        d["actual_value"], "123",
        "N substituted from the restored fallback"
    );

    let mut late = Bench::new();
    late.now = b.now + 13 * 3_600_000;
    late.boot(Some(cfg), Some(stored));
    late.send(Event::MqttConnected);
    late.console("frame main digits=1,2,N");
    late.cycle();
    let d = late.json("/process/data/0/json");
    assert!(
        d["value_status"].as_str().unwrap().starts_with("E90"),
        "older than 720 min: outdated {d}"
    );
}

#[test]
fn unreadable_stored_fallbacks_are_ignored() {
    let mut b = Bench::new();
    b.boot(Some(manual(json!({}))), Some("{broken".into()));
    assert!(b
        .logs
        .iter()
        .any(|l| l.contains("fallback values unreadable")));
}

// ---- GPIO ----

#[test]
fn gpio_output_ctrl_drives_pin_and_publishes_state() {
    let mut b = Bench::online(&fixture("flat-json.json"));
    b.mqtt("/device/gpio/relay/ctrl", r#"{"state":1}"#);
    assert_eq!(b.pins[&12], (true, None));
    assert_eq!(b.get("/device/gpio/relay/state"), Some(r#"{"state":1}"#));
    assert!(!b.tree["watermeter/device/gpio/relay/state"].retain);
}

#[test]
fn gpio_pwm_ctrl() {
    let mut b = Bench::online(&fixture("flat-json.json"));
    b.mqtt("/device/gpio/gpio13/ctrl", r#"{"state":1,"pwm_duty":4096}"#);
    assert_eq!(b.pins[&13], (true, Some(4096)));
    assert_eq!(
        b.get("/device/gpio/gpio13/state"),
        Some(r#"{"state":1,"pwm_duty":4096}"#)
    );
    b.mqtt("/device/gpio/gpio13/ctrl", r#"{"state":0,"pwm_duty":4096}"#);
    assert_eq!(b.pins[&13], (false, Some(0)), "state 0 drives no duty");
}

#[test]
fn gpio_bad_ctrl_leaves_pin_unchanged() {
    let mut b = Bench::online(&fixture("flat-json.json"));
    b.mqtt("/device/gpio/gpio13/ctrl", r#"{"state":1,"pwm_duty":100}"#);
    let before = b.engine.gpio().clone();
    let cases = [
        ("/device/gpio/gpio13/ctrl", "{", "not valid JSON"),
        (
            "/device/gpio/gpio13/ctrl",
            r#"{"state":1,"pwm_duty":9000}"#,
            "out of range 0..8191",
        ),
        (
            "/device/gpio/gpio13/ctrl",
            r#"{"state":1}"#,
            "pwm_duty\" (a number) is required",
        ),
        (
            "/device/gpio/relay/ctrl",
            r#"{"state":"on"}"#,
            "must be a number",
        ),
        (
            "/device/gpio/door/ctrl",
            r#"{"state":1}"#,
            "only output and output-pwm",
        ),
        (
            "/device/gpio/flash/ctrl",
            r#"{"state":1}"#,
            "no enabled GPIO named 'flash'",
        ),
        (
            "/device/gpio/nope/ctrl",
            r#"{"state":1}"#,
            "no enabled GPIO named 'nope'",
        ),
    ];
    for (topic, payload, expected) in cases {
        b.mqtt(topic, payload);
        let err = b.engine.last_error().unwrap_or_default().to_string();
        assert!(err.contains(expected), "{topic} {payload}: {err}");
        assert_eq!(b.engine.gpio(), &before);
    }
}

#[test]
fn input_change_publishes_state_with_debounce() {
    let mut b = Bench::online(&fixture("flat-json.json"));
    b.send(Event::PinChanged {
        pin: 14,
        level: false,
    });
    assert_eq!(b.get("/device/gpio/door/state"), Some(r#"{"state":0}"#));
    b.now += 50;
    b.send(Event::PinChanged {
        pin: 14,
        level: true,
    });
    assert_eq!(
        b.get("/device/gpio/door/state"),
        Some(r#"{"state":0}"#),
        "inside the debounce time: held back"
    );
    b.now += 100;
    b.send(Event::Tick);
    assert_eq!(b.get("/device/gpio/door/state"), Some(r#"{"state":0}"#));
    // The line stayed high (a board reports no further edge): accepted once it lasted the 200 ms.
    b.now += 100;
    b.send(Event::Tick);
    assert_eq!(b.get("/device/gpio/door/state"), Some(r#"{"state":1}"#));
}

#[test]
fn trigger_pin_falling_edge_starts_cycle() {
    let mut b = Bench::online(&fixture("ha-json-topics.json"));
    let before = b.engine.cycle_counter();
    b.send(Event::PinChanged {
        pin: 15,
        level: false,
    });
    assert_eq!(b.engine.cycle_counter(), before + 1);
    b.now += 1000;
    b.send(Event::PinChanged {
        pin: 15,
        level: true,
    });
    assert_eq!(
        b.engine.cycle_counter(),
        before + 1,
        "rising edge does nothing"
    );
}

// ---- console ----

#[test]
fn console_help_and_status() {
    let mut b = Bench::online(&manual(json!({})));
    assert!(b.console("help").starts_with("ok commands:"));
    let status = b.console("status");
    let v: Value = serde_json::from_str(status.strip_prefix("ok ").unwrap()).unwrap();
    assert_eq!(v["state"], "Idle - No Autostart");
    assert_eq!(v["cycle_counter"], 0);
    assert_eq!(v["mqtt_connected"], true);
    assert_eq!(v["last_error"], Value::Null);
}

#[test]
fn console_errors_are_single_err_lines() {
    let mut b = Bench::online(&manual(json!({})));
    assert_eq!(b.console("fly"), "err unknown-command 'fly' (try 'help')");
    assert!(b
        .console("frame gas digits=1")
        .starts_with("err unknown-sequence no number sequence 'gas' (configured: main)"));
    assert!(b
        .console("frame main digits=1,2")
        .starts_with("err roi-count"));
    assert!(b
        .console("frame main digits=1,2,3 analogs=4")
        .starts_with("err roi-count"));
    assert!(b
        .console("config get mqtt.nothing")
        .starts_with("err unknown-path"));
    assert!(b
        .console("config set mqtt.maintopic \"a/#\"")
        .starts_with("err invalid-config mqtt.maintopic"));
    let v: Value = serde_json::from_str(b.console("status").strip_prefix("ok ").unwrap()).unwrap();
    assert!(v["last_error"].as_str().unwrap().contains("invalid-config"));
    let replies = b.console.len();
    b.send(Event::ConsoleLine("   ".into()));
    assert_eq!(b.console.len(), replies, "an empty line gets no reply");
}

#[test]
fn console_config_get_redacts_secrets() {
    let mut b = Bench::online(&manual(
        json!({"mqtt": {"authmode": 1, "username": "u", "password": "s3cret"}}),
    ));
    assert_eq!(b.console("config get mqtt.password"), "ok \"******\"");
    assert_eq!(b.console("config get mqtt.username"), "ok \"u\"");
    assert_eq!(b.console("config get operationmode.opmode"), "ok 0");
    assert!(!b.console("config get mqtt").contains("s3cret"));
}

#[test]
fn console_config_set_of_a_shown_secret_keeps_the_secret() {
    let mut b = Bench::online(&manual(json!({
        "mqtt": {"authmode": 1, "username": "u", "password": "s3cret"},
        "network": {"wlan": {"ssid": "home", "password": "wifi-pw"}}
    })));
    // What `config get` shows, copied back as it is.
    assert_eq!(
        b.console("config set mqtt.password \"********\""),
        "ok mqtt.password saved"
    );
    assert_eq!(b.engine.config().mqtt.password, "s3cret");
    // v17's placeholder (6 stars) as well as earlier meterrig's (8).
    b.console("config set network.wlan.password \"******\"");
    let saved: Value = serde_json::from_str(b.persisted_config.as_deref().unwrap()).unwrap();
    assert_eq!(saved["network"]["wlan"]["password"], "wifi-pw");
    assert_eq!(saved["mqtt"]["password"], "s3cret");
    // The whole object `config get mqtt` returned, with one change.
    let shown = b.console("config get mqtt");
    let mut mqtt: Value = serde_json::from_str(shown.strip_prefix("ok ").unwrap()).unwrap();
    mqtt["maintopic"] = json!("water/kitchen");
    assert!(b
        .console(&format!("config set mqtt {mqtt}"))
        .starts_with("ok "));
    assert_eq!(b.engine.config().mqtt.password, "s3cret");
    assert_eq!(b.engine.config().mqtt.main_topic, "water/kitchen");
    // A new secret is taken as given.
    b.console("config set mqtt.password \"n3w\"");
    assert_eq!(b.engine.config().mqtt.password, "n3w");
}

#[test]
fn a_v17_config_json_with_its_password_placeholder_does_not_set_the_placeholder_as_password() {
    // v17 keeps passwords in NVS and writes "******" into config.json (configClass.cpp).
    let mut b = Bench::new();
    let v17 = manual(json!({"mqtt": {"authmode": 1, "username": "u", "password": "******"}}));
    let (doc, config) =
        meter_core::config::Config::from_partial(&serde_json::from_str(&v17).unwrap()).unwrap();
    assert_eq!(config.mqtt.password, "");
    b.boot(Some(doc.to_string()), None);
    assert_eq!(b.engine.config().mqtt.password, "");
}

#[test]
fn an_empty_time_zone_is_the_reference_default() {
    let b = Bench::online(&manual(json!({"network": {"time": {"timezone": ""}}})));
    let cet = meter_core::time::TimeZone::parse(meter_core::config::DEFAULT_TIMEZONE).unwrap();
    assert_eq!(b.engine.config().timezone, cet);
}

#[test]
fn console_config_paths_with_empty_keys_are_refused() {
    let mut b = Bench::online(&manual(json!({})));
    for path in [
        "mqtt..maintopic",
        ".",
        "mqtt.",
        ".mqtt",
        "gpio.gpiopin[x]",
        "gpio.gpiopin[0",
    ] {
        let get = b.console(&format!("config get {path}"));
        assert!(get.starts_with("err bad-path"), "get {path}: {get}");
        let set = b.console(&format!("config set {path} 1"));
        assert!(set.starts_with("err invalid-config"), "set {path}: {set}");
    }
    assert_eq!(
        b.console("config get digit.sequence[0].roi[1].name"),
        "ok \"d2\""
    );
    assert_eq!(
        b.console("config get digit.sequence.0.roi.1.name"),
        "ok \"d2\""
    );
}

#[test]
fn a_duplicate_key_is_refused_with_its_path_on_console_rest_and_storage() {
    let mut b = Bench::online(&manual(json!({})));
    let reply = b.console(r#"config merge {"mqtt":{"maintopic":"a"},"mqtt":{"maintopic":"b"}}"#);
    assert!(
        reply.starts_with("err bad-json") && reply.contains("mqtt: key given twice"),
        "{reply}"
    );
    let reply = b.console(r#"config set mqtt {"maintopic":"a","maintopic":"b"}"#);
    assert!(reply.contains("mqtt.maintopic: key given twice"), "{reply}");
    assert_eq!(b.engine.config().mqtt.main_topic, "meter");
    let r = b.http(
        "POST",
        "/api/config",
        "",
        r#"{"gpio":{"gpiopin":[{"pinmode":"input","pinmode":"output"}]}}"#,
    );
    assert_eq!(r.status, 400);
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["path"], "gpio.gpiopin[0].pinmode");
    // A stored document with a duplicate is refused at boot like any bad stored config: defaults, logged.
    let mut b = Bench::new();
    b.boot(
        Some(r#"{"mqtt":{"maintopic":"a"},"mqtt":{"maintopic":"b"}}"#.to_string()),
        None,
    );
    assert_eq!(b.engine.config().mqtt.main_topic, "watermeter");
    assert!(
        b.logs
            .iter()
            .any(|l| l.contains("stored config refused") && l.contains("mqtt")),
        "{:?}",
        b.logs
    );
}

#[test]
fn console_config_set_persists_and_applies() {
    let mut b = Bench::online(&manual(json!({})));
    assert_eq!(
        b.console("config set operationmode.opmode 1"),
        "ok operationmode.opmode saved"
    );
    let saved: Value = serde_json::from_str(b.persisted_config.as_deref().unwrap()).unwrap();
    assert_eq!(saved["operationmode"]["opmode"], 1);
    assert_eq!(b.engine.state().as_str(), "Idle - Waiting For Autostart");
    b.send(Event::Tick);
    assert_eq!(b.engine.cycle_counter(), 1);
}

#[test]
fn console_config_merge_takes_a_whole_document_across_sections() {
    let mut b = Bench::online(&manual(json!({})));
    // Two sequences at once: `config set` section by section would fail on the cross-reference.
    let patch = json!({
        "numbersequences": {"sequence": [{"sequenceid": 0, "sequencename": "main"}, {"sequenceid": 1, "sequencename": "second"}]},
        "operationmode": {"opmode": 1}
    });
    assert_eq!(
        b.console(&format!("config merge {patch}")),
        "ok config merged and saved"
    );
    let saved: Value = serde_json::from_str(b.persisted_config.as_deref().unwrap()).unwrap();
    assert_eq!(saved["operationmode"]["opmode"], 1);
    let before = b.engine.config().clone();
    for line in [
        "config merge [1]",
        "config merge {broken",
        "config merge {\"mqtt\": {\"uri\": \"http://x\"}}",
    ] {
        assert!(b.console(line).starts_with("err "), "{line}");
        assert_eq!(b.engine.config(), &before, "{line}");
    }
}

#[test]
fn console_factory_reset_persists_defaults_and_no_fallbacks_then_reboots() {
    let mut b = Bench::online(&manual(json!({"operationmode": {"opmode": 1}})));
    let actions = b
        .engine
        .handle(0, Event::ConsoleLine("factory-reset".into()));
    let config = actions.iter().find_map(|a| match a {
        Action::PersistConfig(text) => Some(text.clone()),
        _ => None,
    });
    let saved: Value = serde_json::from_str(&config.expect("config persisted")).unwrap();
    let (defaults, _) = meter_core::config::Config::from_partial(&json!({})).unwrap();
    assert_eq!(saved, defaults, "back to the defaults");
    assert!(actions.contains(&Action::PersistFallbacks("[]".into())));
    let reboot = actions
        .iter()
        .position(|a| *a == Action::Reboot)
        .expect("reboot");
    let reply = actions
        .iter()
        .position(|a| matches!(a, Action::ConsoleWrite(r) if r == "ok factory reset, rebooting"))
        .expect("reply");
    assert!(
        reboot < reply,
        "the board reboots after the loop: both are there, reply last"
    );
}

#[test]
fn console_config_set_invalid_changes_nothing() {
    let mut b = Bench::online(&manual(json!({})));
    let before = b.engine.config().clone();
    for line in [
        "config set mqtt.uri \"http://x\"",
        "config set operationmode.opmode 9",
        "config set nope.deeper 1",
        "config set gpio.gpiopin[5].pinmode \"output\"",
    ] {
        assert!(b.console(line).starts_with("err "), "{line}");
        assert_eq!(b.engine.config(), &before, "{line}");
    }
    assert!(b.persisted_config.is_none());
}

#[test]
fn console_reboot_and_download() {
    let mut b = Bench::online(&manual(json!({})));
    assert_eq!(b.console("reboot"), "ok rebooting");
    assert!(b.all.contains(&Action::Reboot));
    assert_eq!(b.console("download"), "ok entering download mode");
    assert!(b.all.contains(&Action::EnterDownloadMode));
}

// ---- configuration changes ----

#[test]
fn main_topic_change_moves_the_tree() {
    let mut b = Bench::online(&manual(json!({})));
    b.console("config set mqtt.maintopic \"water/new\"");
    let offline = &b.tree["meter/device/status/connection"];
    assert_eq!(
        (offline.payload.as_str(), offline.retain),
        ("offline", true),
        "old tree marked offline"
    );
    let connect = b.all.iter().rev().find_map(|a| {
        if let Action::MqttConnect(s) = a {
            Some(s.clone())
        } else {
            None
        }
    });
    assert_eq!(
        connect.unwrap().lwt_topic,
        "water/new/device/status/connection"
    );
    assert!(!b.engine.mqtt_connected());
    b.send(Event::MqttConnected);
    assert_eq!(
        b.tree["water/new/device/status/connection"].payload,
        "online"
    );
    assert!(b
        .tree
        .contains_key("water/new/device/info/firmware_version"));
    assert!(b
        .subscriptions
        .contains(&"water/new/process/ctrl/cycle_start".to_string()));
}

#[test]
fn moving_to_another_broker_marks_the_tree_offline_on_the_old_one() {
    let mut b = Bench::online(&manual(json!({})));
    b.all.clear();
    b.console("config set mqtt.uri \"mqtt://10.0.0.2:1883\"");
    let offline = b.all.iter().position(|a| {
        matches!(a, Action::Publish { topic, payload, retain: true, .. }
            if topic == "meter/device/status/connection" && payload == "offline")
    });
    let connect = b
        .all
        .iter()
        .position(|a| matches!(a, Action::MqttConnect(_)));
    match (offline, connect) {
        (Some(o), Some(c)) => assert!(o < c, "offline goes to the old broker first"),
        _ => panic!("offline then MqttConnect expected: {:?}", b.all),
    }
    // A change that keeps broker and tree reconnects without marking the device offline.
    b.send(Event::MqttConnected);
    b.all.clear();
    b.console("config set mqtt.processdatanotation 1");
    assert!(!b
        .all
        .iter()
        .any(|a| matches!(a, Action::Publish { payload, .. } if payload == "offline")));
}

#[test]
fn disabling_mqtt_disconnects() {
    let mut b = Bench::online(&manual(json!({})));
    b.console("config set mqtt.enabled false");
    let offline = b.all.iter().position(|a| {
        matches!(a, Action::Publish { topic, payload, retain: true, .. }
            if topic.ends_with("/device/status/connection") && payload == "offline")
    });
    let disconnect = b.all.iter().position(|a| *a == Action::MqttDisconnect);
    match (offline, disconnect) {
        (Some(o), Some(d)) => assert!(o < d, "offline is published before leaving"),
        _ => panic!("offline then MqttDisconnect expected: {:?}", b.all),
    }
}

#[test]
fn invalid_stored_config_boots_with_defaults() {
    let mut b = Bench::new();
    b.boot(Some("{\"mqtt\": {\"maintopic\": \"#\"}}".into()), None);
    assert_eq!(b.engine.config().mqtt.main_topic, "watermeter");
    assert!(b
        .logs
        .iter()
        .any(|l| l.contains("stored config refused") && l.contains("mqtt.maintopic")));
}

// ---- REST ----

#[test]
fn rest_mqtt_tasks() {
    let mut b = Bench::online(&manual(json!({})));
    assert_eq!(b.http("GET", "/mqtt", "task=api_name", "").body, "mqtt:v2");
    b.tree.clear();
    let r = b.http("GET", "/mqtt", "task=publish_device_info", "");
    assert!(r.body.starts_with("002:"));
    assert!(
        b.tree.contains_key("meter/device/info/hardware"),
        "republished"
    );
    // As the reference answers: 200 with the error text; its 64-byte query and 30-byte task buffers.
    let r = b.http("GET", "/mqtt", "task=nope", "");
    assert_eq!((r.status, r.body.as_str()), (200, "E90: Task not found"));
    assert!(b
        .http("GET", "/mqtt", "", "")
        .body
        .contains("Handler usage"));
    let long = format!("task=api_name&pad={}", "x".repeat(50));
    assert!(b
        .http("GET", "/mqtt", &long, "")
        .body
        .contains("Handler usage"));
    let long_task = format!("task=api_name{}", "x".repeat(20));
    assert_eq!(
        b.http("GET", "/mqtt", &long_task, "").body,
        "E90: Task not found"
    );
}

#[test]
fn rest_config_get_post() {
    let mut b = Bench::online(&manual(
        json!({"mqtt": {"authmode": 1, "username": "u", "password": "pw"}}),
    ));
    let r = b.http("GET", "/api/config", "", "");
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["mqtt"]["password"], "******");
    // Posting the shown config back keeps the password.
    let r = b.http("POST", "/api/config", "", &r.body);
    assert_eq!(r.status, 200);
    assert_eq!(b.engine.config().mqtt.password, "pw");
    let r = b.http(
        "POST",
        "/api/config",
        "",
        r#"{"mqtt": {"processdatanotation": 2}}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        b.engine.config().mqtt.notation,
        meter_core::config::Notation::JsonAndTopics
    );
}

#[test]
fn rest_config_invalid_is_400_with_path_and_nothing_changes() {
    let mut b = Bench::online(&manual(json!({})));
    let before = b.engine.config().clone();
    let r = b.http(
        "POST",
        "/api/config",
        "",
        r#"{"mqtt": {"maintopic": "a//b"}}"#,
    );
    assert_eq!(r.status, 400);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["path"], "mqtt.maintopic");
    assert!(v["error"].as_str().unwrap().contains("empty levels"));
    let r = b.http("POST", "/api/config", "", "not json");
    assert_eq!(r.status, 400);
    assert_eq!(serde_json::from_str::<Value>(&r.body).unwrap()["path"], "$");
    assert_eq!(b.http("POST", "/api/config", "", "[1]").status, 400);
    assert_eq!(b.engine.config(), &before);
    assert!(b.persisted_config.is_none());
}

#[test]
fn rest_status_and_unknown_routes() {
    let mut b = Bench::online(&manual(json!({})));
    let v: Value = serde_json::from_str(&b.http("GET", "/api/status", "", "").body).unwrap();
    assert_eq!(v["main_topic"], "meter");
    assert_eq!(b.http("GET", "/nope", "", "").status, 404);
    assert_eq!(b.http("DELETE", "/api/config", "", "").status, 405);
}

// ---- notations, retain, nesting ----

fn data_topics(b: &Bench) -> Vec<String> {
    b.tree
        .keys()
        .filter(|t| t.contains("/process/data/"))
        .cloned()
        .collect()
}

#[test]
fn notation_json_only() {
    let mut b = Bench::online(&manual(json!({"mqtt": {"processdatanotation": 0}})));
    b.cycle();
    assert_eq!(
        data_topics(&b),
        [
            "meter/process/data/0/json",
            "meter/process/data/number_sequences"
        ]
    );
}

#[test]
fn notation_topics_only() {
    let mut b = Bench::online(&manual(json!({"mqtt": {"processdatanotation": 1}})));
    b.cycle();
    let t = data_topics(&b);
    assert!(!t.contains(&"meter/process/data/0/json".to_string()));
    for f in [
        "sequence_name",
        "actual_value",
        "fallback_value",
        "raw_value",
        "value_status",
        "rate_per_minute",
        "rate_per_interval",
        "timestamp_processed",
        "timestamp_fallbackvalue",
    ] {
        assert!(t.contains(&format!("meter/process/data/0/{f}")), "{f}");
    }
    assert!(!t.contains(&"meter/process/data/0/rate_per_time_unit".to_string()));
}

#[test]
fn notation_topics_with_ha_still_sends_json_and_rate_per_time_unit() {
    let mut b = Bench::online(&manual(
        json!({"mqtt": {"processdatanotation": 1, "homeassistant": {"discoveryenabled": true}}}),
    ));
    b.cycle();
    let t = data_topics(&b);
    assert!(t.contains(&"meter/process/data/0/json".to_string()));
    assert!(t.contains(&"meter/process/data/0/rate_per_time_unit".to_string()));
    assert!(b
        .json("/process/data/0/json")
        .get("rate_per_time_unit")
        .is_some());
}

#[test]
fn retain_process_data_flag() {
    for retain in [false, true] {
        let mut b = Bench::online(&manual(
            json!({"mqtt": {"processdatanotation": 2, "retainprocessdata": retain}}),
        ));
        b.cycle();
        for (t, m) in &b.tree {
            if t.contains("/process/data/") {
                assert_eq!(m.retain, retain, "{t}");
            }
            if t.contains("/process/status/")
                || t.contains("/device/status/") && !t.ends_with("connection")
            {
                assert!(!m.retain, "{t} is never retained");
            }
        }
    }
}

#[test]
fn nested_main_topic_and_sequence_ids() {
    let mut b = Bench::online(&fixture("nested-topics.json"));
    b.console("frame main digits=1,2,3");
    b.console("frame hot digits=4,5 analogs=6.6");
    b.cycle();
    assert_eq!(b.get("/process/data/number_sequences"), Some("2"));
    assert_eq!(
        b.tree["water/b1/meter/process/data/7/actual_value"].payload,
        "45.6"
    );
    // Extended resolution carries the last digit's tenth: 1.0 2.0 3.0 -> "123.0".
    assert_eq!(
        b.tree["water/b1/meter/process/data/0/raw_value"].payload,
        "123.0"
    );
    assert!(b.tree.keys().all(|t| t.starts_with("water/b1/meter/")));
}

// ---- Home Assistant ----

#[test]
fn discovery_published_at_connect_and_on_ha_online() {
    let mut b = Bench::online(&fixture("ha-json-topics.json"));
    let configs: Vec<&String> = b
        .tree
        .keys()
        .filter(|t| t.starts_with("homeassistant/"))
        .collect();
    assert!(configs.len() > 30, "{}", configs.len());
    assert!(
        b.tree["homeassistant/sensor/watermeter/main_actual_value/config"].retain,
        "retaindiscovery"
    );
    assert!(b
        .subscriptions
        .contains(&"homeassistant/status".to_string()));
    b.clear();
    b.send(Event::MqttMessage {
        topic: "homeassistant/status".into(),
        payload: b"offline".to_vec(),
    });
    assert!(b.tree.is_empty());
    b.send(Event::MqttMessage {
        topic: "homeassistant/status".into(),
        payload: b"online".to_vec(),
    });
    assert!(b
        .tree
        .contains_key("homeassistant/button/watermeter/cycle_start/config"));
}

#[test]
fn discovery_entities_are_consistent() {
    let b = Bench::online(&fixture("ha-json-topics.json"));
    let mut ids = std::collections::HashSet::new();
    for (topic, msg) in b
        .tree
        .iter()
        .filter(|(t, _)| t.starts_with("homeassistant/"))
    {
        let v: Value =
            serde_json::from_str(&msg.payload).unwrap_or_else(|e| panic!("{topic}: {e}"));
        assert_eq!(v["~"], "home/utility/watermeter");
        assert_eq!(v["avty_t"], "~/device/status/connection");
        assert_eq!(v["qos"], 1);
        let uid = v["uniq_id"].as_str().unwrap().to_string();
        assert!(
            topic.ends_with(&format!(
                "/{}/config",
                uid.strip_prefix("watermeter_").unwrap()
            )),
            "{topic} {uid}"
        );
        assert!(ids.insert(uid), "duplicate uniq_id in {topic}");
        assert!(
            v.get("stat_t").is_some() ^ v.get("cmd_t").is_some(),
            "{topic}"
        );
    }
    let button: Value =
        serde_json::from_str(&b.tree["homeassistant/button/watermeter/cycle_start/config"].payload)
            .unwrap();
    assert_eq!(button["cmd_t"], "~/process/ctrl/cycle_start");
    assert_eq!(button["pl_prs"], "1");
    // Every sequence has a fallback value entity, as in the reference (also with the fallback value off).
    assert!(b
        .tree
        .contains_key("homeassistant/sensor/watermeter/second_fallback_value/config"));
    assert!(b
        .tree
        .contains_key("homeassistant/sensor/watermeter/main_fallback_value/config"));
    assert!(b
        .tree
        .contains_key("homeassistant/binary_sensor/watermeter/process_error/config"));
    assert!(b
        .tree
        .contains_key("homeassistant/sensor/watermeter/connection/config"));
    assert!(b
        .tree
        .contains_key("homeassistant/sensor/watermeter/dimmer_pwm_duty/config"));
}

#[test]
fn discovery_units_follow_meter_type() {
    let unit = |meter: u8, negative: bool| {
        let cfg = manual(
            json!({"mqtt": {"homeassistant": {"discoveryenabled": true, "metertype": meter}},
                                "postprocessing": {"sequence": [{"sequenceid": 0, "allownegativerate": negative}]}}),
        );
        let b = Bench::online(&cfg);
        let v: Value = serde_json::from_str(
            &b.tree["homeassistant/sensor/meter/main_actual_value/config"].payload,
        )
        .unwrap();
        let r: Value = serde_json::from_str(
            &b.tree["homeassistant/sensor/meter/main_rate_per_time_unit/config"].payload,
        )
        .unwrap();
        (
            v["unit_of_meas"].clone(),
            v["dev_cla"].clone(),
            v["stat_cla"].clone(),
            r["unit_of_meas"].clone(),
            r["dev_cla"].clone(),
        )
    };
    assert_eq!(
        unit(1, false),
        (
            json!("m³"),
            json!("water"),
            json!("total_increasing"),
            json!("m³/h"),
            json!("volume_flow_rate")
        )
    );
    assert_eq!(
        unit(1, true).2,
        json!("total"),
        "HA: no 'measurement' for water"
    );
    assert_eq!(
        unit(2, false).4,
        Value::Null,
        "L/h has no HA 2024.3 device class"
    );
    assert_eq!(unit(5, false).1, json!("gas"));
    assert_eq!(
        unit(10, false),
        (
            json!("GJ"),
            json!("energy"),
            json!("total_increasing"),
            json!("GJ/h"),
            Value::Null
        )
    );
    assert_eq!(unit(8, false).3, json!("kW"));
    assert_eq!(unit(8, false).4, json!("power"));
    assert_eq!(unit(0, false).0, Value::Null, "generic has no unit");
}

#[test]
fn rate_per_time_unit_is_per_hour_for_hourly_meters() {
    let cfg =
        manual(json!({"mqtt": {"homeassistant": {"discoveryenabled": true, "metertype": 1}}}));
    let mut b = Bench::online(&cfg);
    b.console("frame main digits=1,0,0");
    b.cycle();
    // Each cycle takes 1.5 s: 58 s + 1.5 s later the next frame is exactly 60 s after the first.
    b.advance_s(58);
    b.console("frame main digits=1,0,1");
    b.cycle();
    let d = b.json("/process/data/0/json");
    assert_eq!(d["rate_per_minute"], "1.0");
    assert_eq!(d["rate_per_time_unit"], "60");
}

#[test]
fn discovery_disabled_publishes_nothing_to_prefix() {
    let b = Bench::online(&manual(json!({})));
    assert!(!b.tree.keys().any(|t| t.starts_with("homeassistant/")));
    assert!(!b
        .subscriptions
        .contains(&"homeassistant/status".to_string()));
}

#[test]
fn discovery_names_with_quotes_stay_valid_json() {
    let b = Bench::online(&manual(
        json!({"mqtt": {"maintopic": "a\"b/node", "homeassistant": {"discoveryenabled": true}}}),
    ));
    let v: Value =
        serde_json::from_str(&b.tree["homeassistant/sensor/node/connection/config"].payload)
            .unwrap();
    assert_eq!(v["~"], "a\"b/node");
}

// ---- determinism ----

#[test]
fn same_events_same_actions() {
    let run = || {
        let mut b = Bench::online(&fixture("ha-json-topics.json"));
        b.console("frame main digits=1,2,3,4 analogs=5.5,6.6");
        b.cycle();
        b.advance_s(300);
        b.send(Event::Tick);
        b.mqtt("/device/gpio/valve/ctrl", r#"{"state":1}"#);
        b.all
    };
    assert_eq!(run(), run());
}

// ---- more edges ----

#[test]
fn deviation_then_error_resets_the_other_counter() {
    let cfg = manual(post(json!({"maxratechecktype": 2, "maxrate": 1})));
    let mut b = Bench::online(&cfg);
    b.console("frame main digits=1,0,0");
    b.cycle();
    b.console("frame main digits=2,0,0");
    b.cycle();
    assert_eq!(b.get("/process/status/process_error"), Some("1"));
    b.console("frame main align=fail");
    b.cycle();
    assert_eq!(
        b.get("/process/status/process_error"),
        Some("-1"),
        "an error replaces the deviation streak"
    );
}

#[test]
fn uptime_counts_from_boot() {
    let mut b = Bench::online(&manual(json!({})));
    b.advance_s(3600);
    b.cycle();
    assert_eq!(b.get("/device/status/device_uptime"), Some("3601"));
}

#[test]
fn gpio_config_change_reconfigures_pins_and_subscriptions() {
    let mut b = Bench::online(&manual(json!({})));
    let before = b.subscriptions.len();
    let r = b.http("POST", "/api/config", "", r#"{"gpio": {"gpiopin": [{"gpionumber": 5, "pinenabled": true, "pinname": "pump", "pinmode": "output", "exposetomqtt": true}]}}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(b.all.contains(&Action::ConfigurePin {
        pin: 5,
        mode: meter_core::gpio::PinMode::Output
    }));
    assert!(b.subscriptions[before..].contains(&"meter/device/gpio/pump/ctrl".to_string()));
    b.mqtt("/device/gpio/pump/ctrl", r#"{"state":1}"#);
    assert_eq!(b.get("/device/gpio/pump/state"), Some(r#"{"state":1}"#));
}

#[test]
fn discovery_not_retained_unless_configured() {
    let b = Bench::online(&manual(
        json!({"mqtt": {"homeassistant": {"discoveryenabled": true, "retaindiscovery": false}}}),
    ));
    assert!(!b.tree["homeassistant/sensor/meter/connection/config"].retain);
}

#[test]
fn foreign_topics_and_ha_status_without_discovery_are_ignored() {
    let mut b = Bench::online(&manual(json!({})));
    b.clear();
    b.send(Event::MqttMessage {
        topic: "homeassistant/status".into(),
        payload: b"online".to_vec(),
    });
    b.send(Event::MqttMessage {
        topic: "other/process/ctrl/cycle_start".into(),
        payload: b"1".to_vec(),
    });
    b.mqtt("/process/ctrl/unknown", "1");
    assert!(b.tree.is_empty());
    assert_eq!(b.engine.cycle_counter(), 0);
    assert!(b.engine.last_error().is_none());
}

#[test]
fn sequence_added_by_config_appears_in_next_cycle() {
    let mut b = Bench::online(&manual(json!({})));
    b.cycle();
    assert_eq!(b.get("/process/data/number_sequences"), Some("1"));
    let patch = json!({"numbersequences": {"sequence": [{"sequenceid": 0, "sequencename": "main"}, {"sequenceid": 4, "sequencename": "new"}]},
                       "digit": {"sequence": [{"sequenceid": 0, "roi": [{"name": "d1"}, {"name": "d2"}, {"name": "d3"}]},
                                              {"sequenceid": 4, "roi": [{"name": "n1"}]}]}});
    assert_eq!(
        b.http("POST", "/api/config", "", &patch.to_string()).status,
        200
    );
    b.console("frame new digits=7");
    b.cycle();
    assert_eq!(b.get("/process/data/number_sequences"), Some("2"));
    // New sequences get the default post-processing: extended resolution adds the tenth.
    assert_eq!(b.json("/process/data/4/json")["actual_value"], "7.0");
}

#[test]
fn disconnect_stops_publishing_until_reconnect() {
    let mut b = Bench::online(&manual(json!({})));
    b.send(Event::MqttDisconnected);
    b.clear();
    b.cycle_without_mqtt();
    assert!(b.publishes.is_empty());
    b.send(Event::MqttConnected);
    assert_eq!(b.get("/device/status/connection"), Some("online"));
}

#[test]
fn web_page_shows_running_config_without_secrets() {
    let mut b = Bench::online(&manual(
        json!({"mqtt": {"authmode": 1, "username": "u", "password": "topsecret"}}),
    ));
    let r = b.http("GET", "/", "", "");
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/html"));
    assert!(r.text().contains("Settings &gt; Configuration"));
    let data: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        data["mqtt"]["maintopic"], "meter",
        "the running config is in the page"
    );
    assert_eq!(data["mqtt"]["password"], "******");
    assert!(!r.text().contains("topsecret"));
}

/// Retained `online` births published so far.
fn births(b: &Bench) -> usize {
    b.publishes
        .iter()
        .filter(|(t, m)| t == "meter/device/status/connection" && m.payload == "online" && m.retain)
        .count()
}

#[test]
fn birth_is_published_again_after_connecting() {
    let mut b = Bench::online(&manual(json!({})));
    assert_eq!(births(&b), 1);
    b.now += 1000;
    b.send(Event::Tick);
    assert_eq!(births(&b), 1, "not yet");
    b.now += 1500;
    b.send(Event::Tick);
    assert_eq!(births(&b), 2, "once more, against a late LWT");
    b.now += 5000;
    b.send(Event::Tick);
    assert_eq!(births(&b), 2, "only once");
}

#[test]
fn birth_is_published_again_when_the_clock_is_stepped_after_connecting() {
    // On a loaded machine the board connected 37 ms before its first network time (CI): the repeated birth, and
    // with it the states Home Assistant needs, must still come 2 s after connecting.
    let mut b = Bench::online(&manual(json!({})));
    assert_eq!(births(&b), 1);
    b.now += 37;
    let by_ms: i64 = 1_780_000_000_000;
    b.now = (b.now as i64 + by_ms) as u64;
    b.send(Event::TimeStepped { by_ms });
    b.now += 1000;
    b.send(Event::Tick);
    assert_eq!(births(&b), 1, "not yet");
    b.now += 1000;
    b.send(Event::Tick);
    assert_eq!(births(&b), 2, "2 s after connecting, on the stepped clock");
}
