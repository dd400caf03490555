//! The engine as a board drives it: booted online with MQTT and GPIO pins, then fed control messages, console
//! lines, HTTP requests, pin changes and time, one op per input line (readable seeds, see docs/fuzzing.md):
//!
//! ```text
//! m <suffix> <payload>      MQTT message on <main>/<suffix> (process/ctrl/..., device/gpio/<pin>/ctrl)
//! t <topic> <payload>       MQTT message on an absolute topic (homeassistant/status)
//! c <bytes>                 console bytes (through the boards' line splitter)
//! h <METHOD> <path>[?query] [body]
//! p <pin> <0|1>             an input pin changes
//! w <ms>                    time passes, then a tick
//! s <ms>                    the wall clock is stepped by ms (may be negative)
//! d / r                     MQTT disconnected / connected
//! b <n>                     power cycle with fixture config n (the last persisted one if n is not a number)
//! ```
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use meter_core::config::Config;
use meter_core::console::LineSplitter;
use meter_core::engine::{
    Action, BoardInfo, BoardStatus, Boot, Engine, Event, HttpRequest, TimeStatus,
};

const FIXTURES: [&str; 3] = [
    include_str!("../../fixtures/configs/flat-json.json"),
    include_str!("../../fixtures/configs/ha-json-topics.json"),
    include_str!("../../fixtures/configs/nested-topics.json"),
];
/// 2024-02-02T15:59:24Z.
const T0: u64 = 1_706_889_564_000;
/// Bounds the work per input (each op may run a cycle).
const MAX_OPS: usize = 64;

struct Board {
    engine: Engine,
    now: u64,
    config: String,
    fallbacks: Option<String>,
    /// Every main topic and discovery prefix the device had: where it may publish.
    roots: BTreeSet<String>,
    /// Its Home Assistant status topics: what it may subscribe to besides its own tree.
    status_topics: BTreeSet<String>,
    reboot: bool,
}

impl Board {
    fn boot(config: String, fallbacks: Option<String>) -> Board {
        let mut b = Board {
            engine: Engine::new(),
            now: T0,
            config,
            fallbacks,
            roots: BTreeSet::new(),
            status_topics: BTreeSet::new(),
            reboot: false,
        };
        b.start();
        b
    }

    fn power_on(&mut self) {
        self.engine = Engine::new();
        self.start();
    }

    fn start(&mut self) {
        self.reboot = false;
        self.learn();
        let info = BoardInfo {
            board_type: "Virtual Board".into(),
            chip_model: "ESP32C3".into(),
            firmware_version: "v17.0.0-fuzz".into(),
            ..BoardInfo::default()
        };
        self.send(Event::Booted(Boot {
            info,
            stored_config: Some(self.config.clone()),
            stored_fallbacks: self.fallbacks.clone(),
        }));
        let status = BoardStatus {
            heap_total_free: 100_000,
            time: TimeStatus::Synchronized,
            ..BoardStatus::default()
        };
        self.send(Event::BoardStatus(status));
        self.send(Event::MqttConnected);
    }

    fn learn(&mut self) {
        let mqtt = &self.engine.config().mqtt;
        self.roots.insert(format!("{}/", mqtt.main_topic));
        self.roots
            .insert(format!("{}/", mqtt.home_assistant.discovery_prefix));
        self.status_topics
            .insert(mqtt.home_assistant.status_topic.clone());
    }

    fn send(&mut self, event: Event) {
        self.learn();
        self.engine.push_event(self.now, event);
        self.drain();
    }

    fn drain(&mut self) {
        let mut frame = false;
        while let Some(action) = self.engine.poll_action() {
            self.learn();
            self.check(&action);
            match action {
                Action::RequestFrame => frame = true,
                Action::PersistConfig(c) => self.config = c,
                Action::PersistFallbacks(f) => self.fallbacks = Some(f),
                Action::Reboot | Action::EnterDownloadMode => self.reboot = true,
                _ => {}
            }
        }
        if frame {
            self.now += 1500;
            let f = self.engine.capture_simulated();
            self.send(Event::Frame(f));
        }
    }

    fn check(&self, action: &Action) {
        match action {
            Action::Publish { topic, qos, .. } => {
                assert_eq!(*qos, 1, "{topic}");
                assert!(
                    self.roots.iter().any(|r| topic.starts_with(r.as_str())),
                    "publish outside the device's tree: {topic:?} (roots {:?})",
                    self.roots
                );
                assert!(
                    !topic.contains(['+', '#', '\0']),
                    "not a topic name: {topic:?}"
                );
            }
            Action::Subscribe { filter, qos } => {
                assert_eq!(*qos, 1, "{filter}");
                assert!(
                    self.status_topics.contains(filter)
                        || self.roots.iter().any(|r| filter.starts_with(r.as_str())),
                    "subscription outside the device's tree: {filter:?}"
                );
            }
            Action::MqttConnect(s) => assert!(
                self.roots
                    .iter()
                    .any(|r| s.lwt_topic.starts_with(r.as_str())),
                "will outside the device's tree: {}",
                s.lwt_topic
            ),
            Action::ConsoleWrite(line) => {
                assert!(!line.contains(['\r', '\n']), "one reply line: {line:?}");
                assert!(
                    line.starts_with("ok") || line.starts_with("err "),
                    "{line:?}"
                );
            }
            Action::PersistConfig(c) => {
                // What the device saves it must be able to boot from.
                let doc = meter_core::json::parse_unique(c.as_bytes())
                    .unwrap_or_else(|e| panic!("saved config is not JSON: {e}: {c}"));
                if let Err(e) = Config::from_stored(doc) {
                    panic!("saved config does not boot: {e}: {c}");
                }
            }
            Action::PersistFallbacks(f) => {
                let v: serde_json::Value = serde_json::from_str(f)
                    .unwrap_or_else(|e| panic!("saved fallbacks are not JSON: {e}: {f}"));
                assert!(v.is_array(), "{f}");
            }
            _ => {}
        }
    }

    fn http(&mut self, method: &str, target: &str, body: &[u8]) {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let req = HttpRequest {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            body: body.to_vec(),
        };
        self.learn();
        let resp = self.engine.http(self.now, &req);
        assert!(
            [200, 400, 404, 405, 413].contains(&resp.status),
            "{} for {method} {target}",
            resp.status
        );
        if resp.content_type == "application/json" {
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&resp.text()) {
                panic!("{method} {target}: reply is not JSON: {e}: {}", resp.text());
            }
        }
        self.drain();
    }
}

fn word(s: &[u8]) -> (&[u8], &[u8]) {
    match s.iter().position(|&b| b == b' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &[]),
    }
}

fn number<T: std::str::FromStr>(s: &[u8]) -> Option<T> {
    std::str::from_utf8(s).ok()?.trim().parse().ok()
}

fuzz_target!(|data: &[u8]| {
    let mut board = Board::boot(FIXTURES[0].to_string(), None);
    let mut console = LineSplitter::default();
    for line in data.split(|&b| b == b'\n').take(MAX_OPS) {
        let (op, rest) = word(line);
        match op {
            b"m" | b"t" => {
                let (topic, payload) = word(rest);
                let topic = String::from_utf8_lossy(topic);
                let topic = if op == b"m" {
                    format!("{}/{topic}", board.engine.config().mqtt.main_topic)
                } else {
                    topic.into_owned()
                };
                board.send(Event::MqttMessage {
                    topic,
                    payload: payload.to_vec(),
                });
            }
            b"c" => {
                let mut bytes = rest.to_vec();
                bytes.push(b'\n');
                for l in console.feed(&bytes) {
                    board.send(Event::ConsoleLine(l));
                }
            }
            b"h" => {
                let (method, rest) = word(rest);
                let (target, body) = word(rest);
                board.http(
                    &String::from_utf8_lossy(method),
                    &String::from_utf8_lossy(target),
                    body,
                );
            }
            b"p" => {
                let (pin, level) = word(rest);
                if let Some(pin) = number::<u8>(pin) {
                    board.send(Event::PinChanged {
                        pin,
                        level: level.first() == Some(&b'1'),
                    });
                }
            }
            b"w" => {
                board.now += number::<u64>(rest).unwrap_or(1000).min(86_400_000);
                board.send(Event::Tick);
            }
            b"s" => {
                if let Some(by_ms) = number::<i64>(rest) {
                    let by_ms = by_ms.clamp(-86_400_000, 86_400_000);
                    board.now = board.now.saturating_add_signed(by_ms);
                    board.send(Event::TimeStepped { by_ms });
                }
            }
            b"d" => board.send(Event::MqttDisconnected),
            b"r" => board.send(Event::MqttConnected),
            b"b" => {
                if let Some(n) = number::<usize>(rest) {
                    board.config = FIXTURES[n % FIXTURES.len()].to_string();
                }
                board.power_on();
            }
            _ => {}
        }
        if board.reboot {
            board.power_on();
        }
    }
});
