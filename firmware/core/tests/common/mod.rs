//! A test bench around the engine: plays the board (simulated camera, MQTT connection) and records the tree.
#![allow(dead_code)]

use std::collections::BTreeMap;

use meter_core::engine::{
    Action, BoardInfo, BoardStatus, Boot, Engine, Event, HttpRequest, HttpResponse,
};

/// 2024-02-02T15:59:24Z.
pub const T0: u64 = 1_706_889_564_000;

pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../../fixtures/configs/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn board_info() -> BoardInfo {
    BoardInfo {
        board_type: "Virtual Board".into(),
        chip_model: "ESP32C3".into(),
        chip_cores: 1,
        chip_revision: "0.4".into(),
        chip_frequency_mhz: 160,
        camera_type: "simulated".into(),
        camera_frequency_mhz: 20,
        sd_capacity_mb: 0,
        sd_partition_mb: 0,
        ip_address: "127.0.0.1".into(),
        mac_address: "02:00:00:00:00:01".into(),
        firmware_version: "v17.0.0-test".into(),
    }
}

pub fn board_status() -> BoardStatus {
    BoardStatus {
        wlan_rssi: -55,
        chip_temp_c: 41.4,
        heap_total_free: 200 * 1024,
        heap_internal_free: 150 * 1024,
        heap_internal_largest_free: 100 * 1024,
        heap_internal_min_free: 90 * 1024,
        heap_spiram_free: 0,
        heap_spiram_largest_free: 0,
        heap_spiram_min_free: 0,
        sd_partition_free_mb: 0,
        time: meter_core::engine::TimeStatus::Synchronized,
    }
}

/// A retained/non-retained publish as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    pub payload: String,
    pub retain: bool,
}

pub struct Bench {
    pub engine: Engine,
    pub now: u64,
    pub tree: BTreeMap<String, Msg>,
    pub publishes: Vec<(String, Msg)>,
    pub subscriptions: Vec<String>,
    pub console: Vec<String>,
    pub logs: Vec<String>,
    pub pins: BTreeMap<u8, (bool, Option<u32>)>,
    pub persisted_config: Option<String>,
    pub persisted_fallbacks: Option<String>,
    pub all: Vec<Action>,
}

impl Bench {
    pub fn new() -> Self {
        Bench {
            engine: Engine::new(),
            now: T0,
            tree: BTreeMap::new(),
            publishes: Vec::new(),
            subscriptions: Vec::new(),
            console: Vec::new(),
            logs: Vec::new(),
            pins: BTreeMap::new(),
            persisted_config: None,
            persisted_fallbacks: None,
            all: Vec::new(),
        }
    }

    /// Boots with a config fixture (or inline JSON) and connects to the broker.
    pub fn online(config: &str) -> Self {
        let mut b = Bench::new();
        b.boot(Some(config.to_string()), None);
        b.send(Event::MqttConnected);
        b
    }

    pub fn boot(&mut self, config: Option<String>, fallbacks: Option<String>) {
        self.send(Event::Booted(Boot {
            info: board_info(),
            stored_config: config,
            stored_fallbacks: fallbacks,
        }));
        self.send(Event::BoardStatus(board_status()));
    }

    pub fn send(&mut self, event: Event) -> Vec<Action> {
        self.engine.push_event(self.now, event);
        self.drain()
    }

    /// Carries out what the engine has queued (a frame request is answered by the simulated camera).
    pub fn drain(&mut self) -> Vec<Action> {
        let actions: Vec<Action> = std::iter::from_fn(|| self.engine.poll_action()).collect();
        let mut frame_requested = false;
        for a in &actions {
            self.all.push(a.clone());
            match a {
                Action::Publish {
                    topic,
                    payload,
                    retain,
                    qos,
                } => {
                    assert_eq!(*qos, 1, "QoS 1 everywhere ({topic})");
                    let m = Msg {
                        payload: payload.clone(),
                        retain: *retain,
                    };
                    self.tree.insert(topic.clone(), m.clone());
                    self.publishes.push((topic.clone(), m));
                }
                Action::Subscribe { filter, .. } => self.subscriptions.push(filter.clone()),
                Action::ConsoleWrite(line) => self.console.push(line.clone()),
                Action::Log { message, .. } => self.logs.push(message.clone()),
                Action::SetPin { pin, level, duty } => {
                    self.pins.insert(*pin, (*level, *duty));
                }
                Action::PersistConfig(c) => self.persisted_config = Some(c.clone()),
                Action::PersistFallbacks(f) => self.persisted_fallbacks = Some(f.clone()),
                Action::RequestFrame => frame_requested = true,
                _ => {}
            }
        }
        if frame_requested {
            // The board takes the picture a little later.
            self.now += 1500;
            let frame = self.engine.capture_simulated();
            let mut more = self.send(Event::Frame(frame));
            let mut all = actions;
            all.append(&mut more);
            return all;
        }
        actions
    }

    pub fn console(&mut self, line: &str) -> String {
        self.send(Event::ConsoleLine(line.to_string()));
        self.console.last().cloned().unwrap_or_default()
    }

    pub fn mqtt(&mut self, rel: &str, payload: &str) -> Vec<Action> {
        let topic = format!("{}{rel}", self.engine.config().mqtt.main_topic);
        self.send(Event::MqttMessage {
            topic,
            payload: payload.as_bytes().to_vec(),
        })
    }

    pub fn cycle(&mut self) {
        self.mqtt("/process/ctrl/cycle_start", "1");
    }

    pub fn advance_s(&mut self, s: u64) {
        self.now += s * 1000;
    }

    pub fn get(&self, rel: &str) -> Option<&str> {
        let topic = format!("{}{rel}", self.engine.config().mqtt.main_topic);
        self.tree.get(&topic).map(|m| m.payload.as_str())
    }

    pub fn json(&self, rel: &str) -> serde_json::Value {
        let text = self
            .get(rel)
            .unwrap_or_else(|| panic!("{rel} not published"));
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{rel}: {e}: {text}"))
    }

    pub fn http(&mut self, method: &str, path: &str, query: &str, body: &str) -> HttpResponse {
        let req = HttpRequest {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            body: body.as_bytes().to_vec(),
        };
        let response = self.engine.http(self.now, &req);
        self.drain();
        response
    }

    /// The tree as text, one `topic [r] payload` line per topic, sorted; volatile values are not redacted here
    /// because the bench's time and board facts are fixed.
    pub fn tree_text(&self) -> String {
        self.tree
            .iter()
            .map(|(t, m)| format!("{t} {} {}", if m.retain { "[r]" } else { "[-]" }, m.payload))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn clear(&mut self) {
        self.tree.clear();
        self.publishes.clear();
        self.logs.clear();
        self.console.clear();
    }
}
