//! The run-loop contract (crate docs): the engine says when it next needs a tick, and hands out its actions one
//! at a time, rendering large ones only when they are taken.

mod common;

use common::{fixture, Bench, T0};
use meter_core::engine::{Action, Event};
use serde_json::json;

fn config(extra: serde_json::Value) -> String {
    let mut base: serde_json::Value = serde_json::from_str(&fixture("flat-json.json")).unwrap();
    meter_core::config::merge(&mut base, extra);
    base.to_string()
}

#[test]
fn an_automatic_cycle_is_due_at_its_interval_and_nothing_earlier() {
    let mut b = Bench::online(&config(
        json!({"operationmode": {"opmode": 1, "automaticprocessinterval": 2}}),
    ));
    // Booted and connected: the first cycle is due at once, the birth again in 2 s.
    assert_eq!(b.engine.next_deadline(), Some(T0));
    b.send(Event::Tick);
    assert_eq!(b.engine.cycle_counter(), 1);
    let cycle_started = T0;
    assert_eq!(
        b.engine.next_deadline(),
        Some(T0 + 2000),
        "the repeated birth comes first"
    );
    b.now = T0 + 2000;
    b.send(Event::Tick);
    let next = cycle_started + 2 * 60_000;
    assert_eq!(b.engine.next_deadline(), Some(next));
    // A tick before the deadline does nothing.
    b.now = next - 1;
    b.send(Event::Tick);
    assert_eq!(b.engine.cycle_counter(), 1);
    b.now = next;
    b.send(Event::Tick);
    assert_eq!(b.engine.cycle_counter(), 2);
}

#[test]
fn manual_mode_needs_no_tick_once_the_birth_is_repeated() {
    let mut b = Bench::online(&config(json!({})));
    assert_eq!(b.engine.next_deadline(), Some(T0 + 2000));
    b.now = T0 + 2000;
    b.send(Event::Tick);
    assert_eq!(b.engine.next_deadline(), None);
}

#[test]
fn the_first_automatic_cycle_is_not_due_before_the_broker_is_there() {
    let mut b = Bench::new();
    b.boot(Some(config(json!({"operationmode": {"opmode": 1}}))), None);
    assert_eq!(b.engine.next_deadline(), None);
    b.send(Event::MqttConnected);
    assert_eq!(b.engine.next_deadline(), Some(T0));
}

#[test]
fn a_held_back_input_is_due_when_it_has_lasted_the_debounce_time() {
    let mut b = Bench::online(&config(json!({})));
    b.now = T0 + 2000;
    b.send(Event::Tick);
    b.send(Event::PinChanged {
        pin: 14,
        level: false,
    });
    let edge = b.now;
    b.now += 50;
    b.send(Event::PinChanged {
        pin: 14,
        level: true,
    });
    // flat-json's door pin debounces 200 ms (the default).
    assert_eq!(b.engine.next_deadline(), Some(edge + 200));
    b.now = edge + 200;
    b.send(Event::Tick);
    assert_eq!(b.get("/device/gpio/door/state"), Some(r#"{"state":1}"#));
    assert_eq!(b.engine.next_deadline(), None);
}

#[test]
fn discovery_is_rendered_as_it_is_taken_and_dropped_when_the_connection_goes() {
    let mut b = Bench::new();
    b.boot(Some(fixture("ha-json-topics.json")), None);
    b.drain();
    b.engine.push_event(b.now, Event::MqttConnected);
    let mut discovery = 0;
    let mut everything = 0;
    while let Some(action) = b.engine.poll_action() {
        everything += 1;
        if let Action::Publish { topic, .. } = &action {
            if topic.starts_with("homeassistant/") {
                discovery += 1;
                if discovery == 3 {
                    // The connection drops while the board is still taking discovery configs.
                    b.engine.push_event(b.now, Event::MqttDisconnected);
                }
            }
        }
    }
    assert_eq!(
        discovery, 3,
        "the rest is not rendered for a lost connection"
    );
    assert!(everything > discovery);
    // The next connect publishes them all.
    b.engine.push_event(b.now, Event::MqttConnected);
    let all: Vec<Action> = std::iter::from_fn(|| b.engine.poll_action()).collect();
    let again = all
        .iter()
        .filter(
            |a| matches!(a, Action::Publish { topic, .. } if topic.starts_with("homeassistant/")),
        )
        .count();
    assert!(again > 3, "{again} discovery configs after the reconnect");
}

#[test]
fn actions_fed_while_the_queue_is_not_empty_come_after_it() {
    let mut b = Bench::online(&config(json!({})));
    b.engine.push_event(
        b.now,
        Event::ConsoleLine("config get mqtt.maintopic".into()),
    );
    b.engine
        .push_event(b.now, Event::ConsoleLine("status".into()));
    let replies: Vec<String> = std::iter::from_fn(|| b.engine.poll_action())
        .filter_map(|a| match a {
            Action::ConsoleWrite(line) => Some(line),
            _ => None,
        })
        .collect();
    assert_eq!(replies.len(), 2);
    assert!(replies[0].starts_with("ok \""), "{replies:?}");
    assert!(replies[1].starts_with("ok {"), "{replies:?}");
}

#[test]
fn processing_waits_for_network_time_but_a_manual_start_does_not() {
    let mut b = Bench::new();
    b.send(Event::Booted(meter_core::engine::Boot {
        info: common::board_info(),
        stored_config: Some(config(
            json!({"operationmode": {"opmode": 1, "automaticprocessinterval": 1}}),
        )),
        stored_fallbacks: None,
    }));
    let mut status = common::board_status();
    status.time = meter_core::engine::TimeStatus::NotSynchronized;
    b.send(Event::BoardStatus(status.clone()));
    b.send(Event::MqttConnected);
    assert_eq!(
        b.engine.state().as_str(),
        "Initialization - Waiting For Time Sync"
    );
    b.now += 120_000;
    b.send(Event::Tick);
    assert_eq!(
        b.engine.cycle_counter(),
        0,
        "no automatic cycle before the time"
    );
    assert_eq!(b.engine.next_deadline(), None);
    // The time arrives: processing may start, and does.
    status.time = meter_core::engine::TimeStatus::Synchronized;
    b.send(Event::BoardStatus(status.clone()));
    assert_eq!(b.engine.state().as_str(), "Idle - Waiting For Autostart");
    b.send(Event::Tick);
    assert_eq!(b.engine.cycle_counter(), 1);

    // Manual mode, never synced: cycle_start goes ahead anyway.
    let mut b = Bench::new();
    b.send(Event::Booted(meter_core::engine::Boot {
        info: common::board_info(),
        stored_config: Some(config(json!({}))),
        stored_fallbacks: None,
    }));
    status.time = meter_core::engine::TimeStatus::NotSynchronized;
    b.send(Event::BoardStatus(status));
    b.send(Event::MqttConnected);
    assert_eq!(
        b.engine.state().as_str(),
        "Initialization - Waiting For Time Sync"
    );
    b.cycle();
    assert_eq!(b.engine.cycle_counter(), 1);
    assert_eq!(b.engine.state().as_str(), "Idle - No Autostart");
}

#[test]
fn without_network_time_nothing_waits() {
    let mut b = Bench::new();
    let cfg = config(json!({"operationmode": {"opmode": 1},
                             "network": {"time": {"ntp": {"timesyncenabled": false}}}}));
    b.send(Event::Booted(meter_core::engine::Boot {
        info: common::board_info(),
        stored_config: Some(cfg),
        stored_fallbacks: None,
    }));
    let mut status = common::board_status();
    status.time = meter_core::engine::TimeStatus::Disabled;
    b.send(Event::BoardStatus(status));
    b.send(Event::MqttConnected);
    b.send(Event::Tick);
    assert_eq!(b.engine.cycle_counter(), 1);
    assert!(b
        .all
        .iter()
        .any(|a| matches!(a, Action::ConfigureTime(n) if !n.sync_enabled)));
}
