//! The device: events in, actions out. Deterministic: the same events at the same times give the same actions.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::Serialize;
use serde_json::{json, Value};

use crate::camera::{Frame, Reading, SimCamera};
use crate::config::{self, Config, ConfigError, OpMode};
use crate::console::{self, Command};
use crate::control::{self, SetFallbackError};
use crate::discovery::{self, DeviceFacts, MeterType};
use crate::gpio::Gpio;
use crate::postprocess::{fixed, SequenceState, Shape, StoredFallback};
use crate::readout::{to_class100, DigitModel, ReadoutParams, Roi};

/// Retained `connection` payloads: birth and last will.
pub const ONLINE: &str = "online";
pub const OFFLINE: &str = "offline";
/// Every publish and subscription uses QoS 1.
pub const QOS: u8 = 1;
/// Process errors or deviations in a row that escalate to -2 / 2.
const IN_ROW_LIMIT: u32 = 3;
/// The birth is published once more this long after connecting.
const BIRTH_AGAIN_AFTER_MS: u64 = 2000;

/// Static facts a board reports once at boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoardInfo {
    pub board_type: String,
    pub chip_model: String,
    pub chip_cores: u32,
    pub chip_revision: String,
    pub chip_frequency_mhz: u32,
    pub camera_type: String,
    pub camera_frequency_mhz: u32,
    pub sd_capacity_mb: u64,
    pub sd_partition_mb: u64,
    pub ip_address: String,
    pub mac_address: String,
    pub firmware_version: String,
}

/// Dynamic facts a board samples (sent before each cycle, or whenever they change).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BoardStatus {
    pub wlan_rssi: i32,
    pub chip_temp_c: f64,
    /// Heap figures in bytes; published in kB.
    pub heap_total_free: u64,
    pub heap_internal_free: u64,
    pub heap_internal_largest_free: u64,
    pub heap_internal_min_free: u64,
    pub heap_spiram_free: u64,
    pub heap_spiram_largest_free: u64,
    pub heap_spiram_min_free: u64,
    pub sd_partition_free_mb: u64,
    pub ntp_sync_status: String,
}

/// What the board read from its flash at boot.
#[derive(Debug, Clone, Default)]
pub struct Boot {
    pub info: BoardInfo,
    /// The persisted config document (JSON), if any.
    pub stored_config: Option<String>,
    /// The persisted fallback values (JSON array of [`StoredFallback`]), if any.
    pub stored_fallbacks: Option<String>,
}

/// An HTTP request to the web interface / REST API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Vec<u8>,
}

/// The reply to an [`HttpRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// Inputs to the device.
#[derive(Debug, Clone)]
pub enum Event {
    Booted(Boot),
    BoardStatus(BoardStatus),
    MqttConnected,
    MqttDisconnected,
    MqttMessage {
        topic: String,
        payload: Vec<u8>,
    },
    /// Time passes (drives the automatic mode).
    Tick,
    /// The answer to [`Action::RequestFrame`].
    Frame(Frame),
    PinChanged {
        pin: u8,
        level: bool,
    },
    ConsoleLine(String),
    Http(HttpRequest),
}

/// How the board connects to the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keepalive_s: u16,
    pub ca_cert: String,
    pub client_cert: String,
    pub client_key: String,
    pub lwt_topic: String,
    pub lwt_payload: &'static str,
}

/// Log levels of [`Action::Log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    /// The letter an ESP-IDF log line starts with (`E (123) tag: ...`).
    pub fn letter(self) -> char {
        match self {
            Level::Error => 'E',
            Level::Warn => 'W',
            Level::Info => 'I',
            Level::Debug => 'D',
        }
    }
}

/// Outputs of the device, for the board to carry out.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Publish {
        topic: String,
        payload: String,
        retain: bool,
        qos: u8,
    },
    Subscribe {
        filter: String,
        qos: u8,
    },
    /// (Re)connect to the broker with these settings, dropping any current connection.
    MqttConnect(MqttSettings),
    MqttDisconnect,
    ConfigurePin {
        pin: u8,
        mode: crate::gpio::PinMode,
    },
    SetPin {
        pin: u8,
        level: bool,
        duty: Option<u32>,
    },
    /// Take an image and evaluate it; answer with [`Event::Frame`].
    RequestFrame,
    ConsoleWrite(String),
    Http(HttpResponse),
    /// Store this config document (pretty JSON) power-loss safe.
    PersistConfig(String),
    /// Store the fallback values (JSON array).
    PersistFallbacks(String),
    Reboot,
    EnterDownloadMode,
    Log {
        level: Level,
        message: String,
    },
}

/// `process_state` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    Initialization,
    InitializationDelayed,
    SetupMode,
    IdleNoAutostart,
    IdleWaitingForAutostart,
    TakeImage,
    ImageAlignment,
    RoiDigit,
    RoiAnalog,
    PostProcessing,
    PublishToMqtt,
    AdditionalTasks,
    PostProcessEventHandling,
}

impl ProcessState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initialization => "Initialization",
            Self::InitializationDelayed => "Initialization - Delayed",
            Self::SetupMode => "Setup Mode",
            Self::IdleNoAutostart => "Idle - No Autostart",
            Self::IdleWaitingForAutostart => "Idle - Waiting For Autostart",
            Self::TakeImage => "Take Image",
            Self::ImageAlignment => "Image Alignment",
            Self::RoiDigit => "ROI Processing - Digit",
            Self::RoiAnalog => "ROI Processing - Analog",
            Self::PostProcessing => "Post-Processing",
            Self::PublishToMqtt => "Publish to MQTT",
            Self::AdditionalTasks => "Additional Tasks",
            Self::PostProcessEventHandling => "Post Process Event Handling",
        }
    }
}

/// The device.
pub struct Engine {
    config: Config,
    doc: Value,
    info: BoardInfo,
    status: BoardStatus,
    booted: bool,
    boot_ms: u64,
    now_ms: u64,
    mqtt_connected: bool,
    state: ProcessState,
    cycle_counter: u64,
    cycle_started_ms: Option<u64>,
    cycle_requested: bool,
    next_auto_ms: u64,
    last_process_time_s: u64,
    errors_in_row: u32,
    deviations_in_row: u32,
    last_error: Option<String>,
    sequences: Vec<SequenceState>,
    stored_fallbacks: Vec<StoredFallback>,
    fallbacks_restored: bool,
    gpio: Gpio,
    device_info_pending: bool,
    discovery_pending: bool,
    /// When to publish the birth once more after connecting (see `on_tick`).
    birth_again_at: Option<u64>,
    camera: SimCamera,
    out: Vec<Action>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// A device with the default configuration, not yet booted.
    pub fn new() -> Engine {
        let doc = config::default_json();
        let config = match Config::from_json(&doc) {
            Ok(c) => c,
            Err(e) => panic!("built-in defaults are invalid: {e}"),
        };
        let mut engine = Engine {
            sequences: Vec::new(),
            gpio: Gpio::new(&config.gpio),
            config,
            doc,
            info: BoardInfo::default(),
            status: BoardStatus::default(),
            booted: false,
            boot_ms: 0,
            now_ms: 0,
            mqtt_connected: false,
            state: ProcessState::Initialization,
            cycle_counter: 0,
            cycle_started_ms: None,
            cycle_requested: false,
            next_auto_ms: 0,
            last_process_time_s: 0,
            errors_in_row: 0,
            deviations_in_row: 0,
            last_error: None,
            stored_fallbacks: Vec::new(),
            fallbacks_restored: false,
            device_info_pending: true,
            discovery_pending: true,
            birth_again_at: None,
            camera: SimCamera::new(),
            out: Vec::new(),
        };
        engine.rebuild_sequences();
        engine
    }

    /// Handles one event at `now_ms` (unix milliseconds) and returns what the board must do.
    pub fn handle(&mut self, now_ms: u64, event: Event) -> Vec<Action> {
        self.now_ms = now_ms;
        match event {
            Event::Booted(boot) => self.on_boot(boot),
            Event::BoardStatus(s) => self.status = s,
            Event::MqttConnected => self.on_mqtt_connected(),
            Event::MqttDisconnected => {
                self.mqtt_connected = false;
                self.log(Level::Warn, "MQTT: disconnected from broker");
            }
            Event::MqttMessage { topic, payload } => self.on_mqtt_message(&topic, &payload),
            Event::Tick => self.on_tick(),
            Event::Frame(frame) => self.on_frame(frame),
            Event::PinChanged { pin, level } => self.on_pin_changed(pin, level),
            Event::ConsoleLine(line) => self.on_console(&line),
            Event::Http(req) => {
                let resp = self.on_http(&req);
                self.out.push(Action::Http(resp));
            }
        }
        core::mem::take(&mut self.out)
    }

    /// The simulated camera: a board without a camera answers [`Action::RequestFrame`] with this.
    pub fn capture_simulated(&mut self) -> Frame {
        let shapes: Vec<(String, usize, usize)> = self
            .sequences
            .iter()
            .map(|s| (s.name.clone(), s.shape.digits, s.shape.analogs))
            .collect();
        self.camera.capture(&shapes)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The config document with secrets redacted.
    pub fn config_redacted(&self) -> Value {
        config::redacted(&self.doc)
    }

    pub fn state(&self) -> ProcessState {
        self.state
    }

    pub fn cycle_counter(&self) -> u64 {
        self.cycle_counter
    }

    pub fn sequences(&self) -> &[SequenceState] {
        &self.sequences
    }

    pub fn gpio(&self) -> &Gpio {
        &self.gpio
    }

    pub fn mqtt_connected(&self) -> bool {
        self.mqtt_connected
    }

    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// 0 ok, -1 error, -2 errors in a row, 1 deviation, 2 deviations in a row.
    pub fn process_error(&self) -> i32 {
        if self.errors_in_row >= IN_ROW_LIMIT {
            -2
        } else if self.deviations_in_row >= IN_ROW_LIMIT {
            2
        } else if self.errors_in_row > 0 {
            -1
        } else if self.deviations_in_row > 0 {
            1
        } else {
            0
        }
    }

    /// How the board should connect, or `None` when MQTT is disabled.
    pub fn mqtt_settings(&self) -> Option<MqttSettings> {
        let m = &self.config.mqtt;
        let uri = m.uri.as_ref().filter(|_| m.enabled)?;
        // Reference: keepalive 2.5 processing intervals, so a slow automatic mode does not trip the broker.
        let keepalive =
            libm::round(self.config.interval_min * 60.0 * 2.5).clamp(10.0, 65_535.0) as u16;
        Some(MqttSettings {
            host: uri.host.clone(),
            port: uri.port,
            tls: uri.tls,
            client_id: m.client_id.clone(),
            username: (m.auth_mode == 1).then(|| m.username.clone()),
            password: (m.auth_mode == 1 && !m.password.is_empty()).then(|| m.password.clone()),
            keepalive_s: keepalive,
            ca_cert: m.ca_cert.clone(),
            client_cert: m.client_cert.clone(),
            client_key: m.client_key.clone(),
            lwt_topic: self.topic("/device/status/connection"),
            lwt_payload: OFFLINE,
        })
    }

    fn topic(&self, rel: &str) -> String {
        format!("{}{rel}", self.config.mqtt.main_topic)
    }

    pub(crate) fn log(&mut self, level: Level, message: impl Into<String>) {
        self.out.push(Action::Log {
            level,
            message: message.into(),
        });
    }

    /// Records a refused input: logged and kept as the `last_error` shown by `status`.
    fn refuse(&mut self, message: String) {
        self.log(Level::Warn, message.clone());
        self.last_error = Some(message);
    }

    fn publish(&mut self, rel: &str, payload: impl Into<String>, retain: bool) {
        let topic = self.topic(rel);
        self.publish_abs(topic, payload.into(), retain);
    }

    fn publish_abs(&mut self, topic: String, payload: String, retain: bool) {
        if self.mqtt_connected {
            self.out.push(Action::Publish {
                topic,
                payload,
                retain,
                qos: QOS,
            });
        }
    }

    fn set_state(&mut self, state: ProcessState) {
        self.state = state;
        self.log(Level::Debug, format!("process state: {}", state.as_str()));
    }

    fn idle_state(&self) -> ProcessState {
        match self.config.opmode {
            OpMode::Setup => ProcessState::SetupMode,
            OpMode::Manual => ProcessState::IdleNoAutostart,
            OpMode::Automatic => ProcessState::IdleWaitingForAutostart,
        }
    }

    fn now_s(&self) -> i64 {
        (self.now_ms / 1000) as i64
    }

    // ---- boot ----

    fn on_boot(&mut self, boot: Boot) {
        self.booted = true;
        self.boot_ms = self.now_ms;
        self.info = boot.info;
        if let Some(text) = boot.stored_config {
            match serde_json::from_str::<Value>(&text)
                .map_err(|e| ConfigError {
                    errors: alloc::vec![config::FieldError {
                        path: "$".into(),
                        message: e.to_string()
                    }],
                })
                .and_then(|v| Config::from_partial(&v))
            {
                Ok((doc, cfg)) => {
                    self.doc = doc;
                    self.config = cfg;
                }
                Err(e) => self.log(
                    Level::Error,
                    format!("stored config refused, running with defaults: {e}"),
                ),
            }
        }
        if let Some(text) = boot.stored_fallbacks {
            match serde_json::from_str::<Vec<StoredFallback>>(&text) {
                Ok(list) => self.stored_fallbacks = list,
                Err(e) => self.log(
                    Level::Error,
                    format!("stored fallback values unreadable, ignored: {e}"),
                ),
            }
        }
        self.rebuild_sequences();
        self.gpio = Gpio::new(&self.config.gpio);
        self.configure_pins();
        self.set_state(ProcessState::Initialization);
        self.log(
            Level::Info,
            format!(
                "firmware {} on {}",
                self.info.firmware_version, self.info.board_type
            ),
        );
        self.next_auto_ms = self.now_ms;
        self.device_info_pending = true;
        self.discovery_pending = self.config.mqtt.home_assistant.discovery_enabled;
        match self.mqtt_settings() {
            Some(s) => self.out.push(Action::MqttConnect(s)),
            None => self.log(Level::Info, "MQTT disabled"),
        }
        let idle = self.idle_state();
        self.set_state(idle);
    }

    fn configure_pins(&mut self) {
        let pins: Vec<_> = self
            .gpio
            .pins
            .iter()
            .map(|p| (p.config.number, p.config.mode, p.level, p.driven_duty()))
            .collect();
        for (pin, mode, level, duty) in pins {
            self.out.push(Action::ConfigurePin { pin, mode });
            if !mode.is_input() {
                self.out.push(Action::SetPin { pin, level, duty });
            }
        }
    }

    fn rebuild_sequences(&mut self) {
        let model = self.config.digit_model;
        let old = core::mem::take(&mut self.sequences);
        for seq in &self.config.sequences {
            let shape = Shape {
                digits: seq.digit_rois.len(),
                analogs: seq.analog_rois.len(),
            };
            let mut state = SequenceState::new(seq.id, &seq.name, shape, &seq.post, model);
            // Keep what the device knew about a sequence of the same name and shape across a config change.
            if let Some(prev) = old.iter().find(|s| s.name == seq.name) {
                if prev.shape == shape && prev.decimal_places == state.decimal_places {
                    state = prev.clone();
                    state.id = seq.id;
                }
            }
            self.sequences.push(state);
        }
    }

    // ---- MQTT ----

    fn on_mqtt_connected(&mut self) {
        self.mqtt_connected = true;
        self.log(
            Level::Info,
            format!(
                "MQTT: connected, main topic '{}'",
                self.config.mqtt.main_topic
            ),
        );
        for rel in [
            "/process/ctrl/cycle_start",
            "/process/ctrl/set_fallbackvalue",
        ] {
            let filter = self.topic(rel);
            self.out.push(Action::Subscribe { filter, qos: QOS });
        }
        let ctrl: Vec<String> = self
            .gpio
            .exposed()
            .filter(|p| p.config.mode.is_controllable())
            .map(|p| format!("/device/gpio/{}/ctrl", p.config.topic_name()))
            .collect();
        for rel in ctrl {
            let filter = self.topic(&rel);
            self.out.push(Action::Subscribe { filter, qos: QOS });
        }
        if self.config.mqtt.home_assistant.discovery_enabled {
            let filter = self.config.mqtt.home_assistant.status_topic.clone();
            self.out.push(Action::Subscribe { filter, qos: QOS });
        }
        self.publish("/device/status/connection", ONLINE, true);
        self.birth_again_at = Some(self.now_ms + BIRTH_AGAIN_AFTER_MS);
        let states: Vec<(String, String)> = self
            .gpio
            .exposed()
            .map(|p| {
                (
                    format!("/device/gpio/{}/state", p.config.topic_name()),
                    p.state_json(),
                )
            })
            .collect();
        for (rel, payload) in states {
            self.publish(&rel, payload, false);
        }
        self.flush_scheduled();
    }

    /// Publishes device info and discovery if they are scheduled (boot, REST request, HA `online`).
    fn flush_scheduled(&mut self) {
        if !self.mqtt_connected {
            return;
        }
        if self.discovery_pending && self.config.mqtt.home_assistant.discovery_enabled {
            self.publish_discovery();
        }
        self.discovery_pending = false;
        if self.device_info_pending {
            self.publish_device_info();
            self.device_info_pending = false;
        }
    }

    fn device_facts(&self) -> DeviceFacts {
        DeviceFacts {
            board_type: self.info.board_type.clone(),
            firmware_version: self.info.firmware_version.clone(),
            ip_address: self.info.ip_address.clone(),
        }
    }

    fn publish_discovery(&mut self) {
        let retain = self.config.mqtt.home_assistant.retain_discovery;
        for (topic, payload) in discovery::discovery_messages(&self.config, &self.device_facts()) {
            self.publish_abs(topic, payload, retain);
        }
    }

    /// The `device/info/*` payloads.
    pub fn device_info_payloads(&self) -> [(&'static str, String); 3] {
        let i = &self.info;
        let hardware = json!({
            "board": {"board_type": i.board_type, "chip_model": i.chip_model, "chip_cores": i.chip_cores,
                      "chip_revision": i.chip_revision, "chip_frequency": i.chip_frequency_mhz},
            "camera": {"type": i.camera_type, "frequency": i.camera_frequency_mhz},
            "sdcard": {"capacity": i.sd_capacity_mb, "partition_size": i.sd_partition_mb},
        });
        let network = json!({"hostname": self.config.hostname, "ipv4_address": i.ip_address, "mac_address": i.mac_address});
        [
            ("/device/info/hardware", hardware.to_string()),
            ("/device/info/network", network.to_string()),
            ("/device/info/firmware_version", i.firmware_version.clone()),
        ]
    }

    fn publish_device_info(&mut self) {
        for (rel, payload) in self.device_info_payloads() {
            self.publish(rel, payload, true);
        }
    }

    fn publish_device_status(&mut self) {
        let s = self.status.clone();
        let uptime = self.now_ms.saturating_sub(self.boot_ms) / 1000;
        self.publish("/device/status/connection", ONLINE, true);
        self.publish("/device/status/device_uptime", uptime.to_string(), false);
        self.publish("/device/status/wlan_rssi", s.wlan_rssi.to_string(), false);
        self.publish("/device/status/chip_temp", fixed(s.chip_temp_c, 0), false);
        let heap = json!({
            "heap_total_free": s.heap_total_free / 1024,
            "heap_internal_free": s.heap_internal_free / 1024,
            "heap_internal_largest_free": s.heap_internal_largest_free / 1024,
            "heap_internal_min_free": s.heap_internal_min_free / 1024,
            "heap_spiram_free": s.heap_spiram_free / 1024,
            "heap_spiram_largest_free": s.heap_spiram_largest_free / 1024,
            "heap_spiram_min_free": s.heap_spiram_min_free / 1024,
        });
        self.publish("/device/status/heap", heap.to_string(), false);
        self.publish(
            "/device/status/sd_partition_free",
            s.sd_partition_free_mb.to_string(),
            false,
        );
        self.publish("/device/status/ntp_sync_status", s.ntp_sync_status, false);
    }

    /// `Processing (Automatic)` etc.
    pub fn process_status(&self) -> &'static str {
        match self.config.opmode {
            OpMode::Automatic => "Processing (Automatic)",
            OpMode::Manual => "Processing (Triggered Only)",
            OpMode::Setup => "Not Processing / Not Ready",
        }
    }

    fn publish_process_status(&mut self) {
        self.publish(
            "/process/status/process_status",
            self.process_status(),
            false,
        );
        self.publish(
            "/process/status/process_interval",
            fixed(self.config.interval_min, 1),
            false,
        );
        self.publish(
            "/process/status/process_time",
            self.last_process_time_s.to_string(),
            false,
        );
        self.publish("/process/status/process_state", self.state.as_str(), false);
        self.publish(
            "/process/status/process_error",
            self.process_error().to_string(),
            false,
        );
        self.publish(
            "/process/status/cycle_counter",
            self.cycle_counter.to_string(),
            false,
        );
    }

    /// The `process/data/[N]/json` payload of a sequence.
    pub fn process_data_json(&self, seq: &SequenceState) -> String {
        #[derive(Serialize)]
        struct Data<'a> {
            sequence_name: &'a str,
            actual_value: &'a str,
            fallback_value: &'a str,
            raw_value: &'a str,
            value_status: &'a str,
            rate_per_minute: &'a str,
            rate_per_interval: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            rate_per_time_unit: Option<String>,
            timestamp_processed: &'a str,
            timestamp_fallbackvalue: &'a str,
        }
        let per_time_unit = self.config.mqtt.home_assistant.discovery_enabled.then(|| {
            seq.rate_per_time_unit_text(
                MeterType::get(self.config.mqtt.home_assistant.meter_type).rate_per_hour(),
            )
        });
        let data = Data {
            sequence_name: &seq.name,
            actual_value: &seq.actual_value_text,
            fallback_value: &seq.fallback_text,
            raw_value: &seq.raw_value,
            value_status: &seq.value_status,
            rate_per_minute: &seq.rate_per_minute_text,
            rate_per_interval: &seq.rate_per_interval_text,
            rate_per_time_unit: per_time_unit,
            timestamp_processed: &seq.processed_time_text,
            timestamp_fallbackvalue: &seq.fallback_time_text,
        };
        serde_json::to_string(&data).unwrap_or_default()
    }

    fn publish_process_data(&mut self) {
        let retain = self.config.mqtt.retain_process_data;
        let notation = self.config.mqtt.notation;
        let ha = self.config.mqtt.home_assistant.discovery_enabled;
        let per_hour = MeterType::get(self.config.mqtt.home_assistant.meter_type).rate_per_hour();
        self.publish(
            "/process/data/number_sequences",
            self.sequences.len().to_string(),
            retain,
        );
        let sequences = self.sequences.clone();
        for seq in &sequences {
            let base = format!("/process/data/{}", seq.id);
            if notation.json() || ha {
                let payload = self.process_data_json(seq);
                self.publish(&format!("{base}/json"), payload, retain);
            }
            if notation.topics() {
                let mut fields: Vec<(&str, String)> = alloc::vec![
                    ("sequence_name", seq.name.clone()),
                    ("actual_value", seq.actual_value_text.clone()),
                    ("fallback_value", seq.fallback_text.clone()),
                    ("raw_value", seq.raw_value.clone()),
                    ("value_status", seq.value_status.clone()),
                    ("rate_per_minute", seq.rate_per_minute_text.clone()),
                    ("rate_per_interval", seq.rate_per_interval_text.clone()),
                ];
                if ha {
                    fields.push(("rate_per_time_unit", seq.rate_per_time_unit_text(per_hour)));
                }
                fields.push(("timestamp_processed", seq.processed_time_text.clone()));
                fields.push(("timestamp_fallbackvalue", seq.fallback_time_text.clone()));
                for (field, value) in fields {
                    self.publish(&format!("{base}/{field}"), value, retain);
                }
            }
        }
    }

    fn on_mqtt_message(&mut self, topic: &str, payload: &[u8]) {
        let main = &self.config.mqtt.main_topic;
        if topic == self.config.mqtt.home_assistant.status_topic
            && self.config.mqtt.home_assistant.discovery_enabled
        {
            if payload == ONLINE.as_bytes() {
                self.log(
                    Level::Info,
                    "Home Assistant is online: publishing discovery",
                );
                self.discovery_pending = true;
                self.flush_scheduled();
            }
            return;
        }
        let Some(rel) = topic.strip_prefix(main.as_str()) else {
            self.log(Level::Debug, format!("MQTT: ignoring message on '{topic}'"));
            return;
        };
        match rel {
            "/process/ctrl/cycle_start" => {
                if payload.is_empty() {
                    self.refuse(
                        "cycle_start: empty payload ignored (send any non-empty payload)"
                            .to_string(),
                    );
                } else if payload.len() > control::MAX_CONTROL_PAYLOAD {
                    self.refuse(format!(
                        "cycle_start: payload of {} bytes exceeds the 4096 byte limit",
                        payload.len()
                    ));
                } else {
                    self.log(Level::Info, "cycle_start requested via MQTT");
                    self.request_cycle();
                }
            }
            "/process/ctrl/set_fallbackvalue" => {
                if let Err(e) = self.set_fallback_value(payload) {
                    self.refuse(format!("set_fallbackvalue: {e}"));
                }
            }
            _ => match rel
                .strip_prefix("/device/gpio/")
                .and_then(|r| r.strip_suffix("/ctrl"))
            {
                Some(name) => self.on_gpio_ctrl(name, payload),
                None => self.log(Level::Debug, format!("MQTT: ignoring message on '{topic}'")),
            },
        }
    }

    /// Applies a `set_fallbackvalue` payload; on error nothing changes.
    pub fn set_fallback_value(&mut self, payload: &[u8]) -> Result<(), SetFallbackError> {
        let req = control::parse_set_fallback(payload)?;
        let index = self
            .sequences
            .iter()
            .position(|s| s.name == req.sequence)
            .ok_or_else(|| SetFallbackError::UnknownSequence(req.sequence.clone()))?;
        let value = if req.value >= 0.0 {
            req.value
        } else {
            let seq = &self.sequences[index];
            seq.raw_as_number()
                .ok_or_else(|| SetFallbackError::NoValidRawValue {
                    sequence: seq.name.clone(),
                    raw: seq.raw_value.clone(),
                })?
        };
        let now = self.now_s();
        let tz = self.config.timezone.clone();
        self.fallbacks_restored = true;
        let seq = &mut self.sequences[index];
        seq.set_fallback(value, now, &tz);
        let message = format!("set_fallbackvalue: '{}' = {}", seq.name, seq.fallback_text);
        self.log(Level::Info, message);
        self.persist_fallbacks();
        Ok(())
    }

    fn persist_fallbacks(&mut self) {
        let mut list: Vec<StoredFallback> = self
            .sequences
            .iter()
            .filter_map(SequenceState::stored_fallback)
            .collect();
        // Keep stored values of sequences that have not been restored yet (no cycle since boot).
        for stored in &self.stored_fallbacks {
            if !list.iter().any(|s| s.sequence == stored.sequence) && !self.fallbacks_restored {
                list.push(stored.clone());
            }
        }
        for seq in &mut self.sequences {
            seq.fallback_updated = false;
        }
        let text = serde_json::to_string(&list).unwrap_or_else(|_| "[]".to_string());
        self.out.push(Action::PersistFallbacks(text));
    }

    fn on_gpio_ctrl(&mut self, name: &str, payload: &[u8]) {
        let exposed = self
            .gpio
            .by_name(name)
            .is_some_and(|p| p.config.expose_to_mqtt);
        if !exposed {
            self.refuse(format!(
                "gpio ctrl: {}",
                crate::gpio::CtrlError::UnknownPin(name.to_string())
            ));
            return;
        }
        match self.gpio_ctrl(name, payload) {
            Ok(()) => {}
            Err(e) => self.refuse(format!("gpio ctrl '{name}': {e}")),
        }
    }

    /// Drives an output pin from a `ctrl` payload (MQTT or REST); on error the pin is unchanged.
    pub fn gpio_ctrl(&mut self, name: &str, payload: &[u8]) -> Result<(), crate::gpio::CtrlError> {
        let pin = self
            .gpio
            .by_name_mut(name)
            .ok_or_else(|| crate::gpio::CtrlError::UnknownPin(name.to_string()))?;
        let ctrl = pin.parse_ctrl(payload)?;
        let changed = pin.apply(ctrl);
        let (number, level, duty, state, exposed) = (
            pin.config.number,
            pin.level,
            pin.driven_duty(),
            pin.state_json(),
            pin.config.expose_to_mqtt,
        );
        self.out.push(Action::SetPin {
            pin: number,
            level,
            duty,
        });
        if changed && exposed {
            self.publish(&format!("/device/gpio/{name}/state"), state, false);
        }
        Ok(())
    }

    fn on_pin_changed(&mut self, number: u8, level: bool) {
        let now = self.now_ms;
        let Some(pin) = self.gpio.by_number_mut(number) else {
            self.log(
                Level::Debug,
                format!("GPIO{number}: level change on an unconfigured pin ignored"),
            );
            return;
        };
        if !pin.config.mode.is_input() {
            return;
        }
        let Some(level) = pin.input_changed(level, now) else {
            return;
        };
        self.input_accepted(number, level);
    }

    /// Inputs whose held-back level has now lasted the debounce time.
    fn settle_inputs(&mut self) {
        let now = self.now_ms;
        let settled: Vec<(u8, bool)> = self
            .gpio
            .pins
            .iter_mut()
            .filter(|p| p.config.mode.is_input())
            .filter_map(|p| p.settle(now).map(|level| (p.config.number, level)))
            .collect();
        for (number, level) in settled {
            self.input_accepted(number, level);
        }
    }

    /// A debounced input change: log it, publish the state, and trigger a cycle on a trigger pin's falling edge.
    fn input_accepted(&mut self, number: u8, level: bool) {
        let Some(pin) = self.gpio.by_number_mut(number) else {
            return;
        };
        let (name, mode, state, exposed) = (
            pin.config.topic_name(),
            pin.config.mode,
            pin.state_json(),
            pin.config.expose_to_mqtt,
        );
        self.log(
            Level::Info,
            format!("GPIO '{name}' input -> {}", u8::from(level)),
        );
        if exposed {
            self.publish(&format!("/device/gpio/{name}/state"), state, false);
        }
        if mode == crate::gpio::PinMode::TriggerCycleStart && !level {
            self.log(
                Level::Info,
                format!("cycle_start requested by GPIO '{name}' (falling edge)"),
            );
            self.request_cycle();
        }
    }

    // ---- process cycle ----

    fn on_tick(&mut self) {
        self.settle_inputs();
        // After a quick reboot the broker may deliver the old connection's LWT after our birth, leaving a stale
        // retained `offline`: say `online` once more.
        if self.birth_again_at.is_some_and(|at| self.now_ms >= at) {
            self.birth_again_at = None;
            self.publish("/device/status/connection", ONLINE, true);
        }
        if !self.booted
            || self.config.opmode != OpMode::Automatic
            || self.cycle_started_ms.is_some()
        {
            return;
        }
        // The first automatic cycle waits for the broker, so its results are not lost.
        if self.config.mqtt.enabled && !self.mqtt_connected && self.cycle_counter == 0 {
            return;
        }
        if self.now_ms >= self.next_auto_ms {
            self.start_cycle();
        }
    }

    /// A cycle on request (MQTT, REST, GPIO): now, or right after the running one.
    pub fn request_cycle(&mut self) {
        if self.cycle_started_ms.is_some() {
            self.cycle_requested = true;
            self.log(
                Level::Info,
                "cycle already running: the requested cycle follows it",
            );
        } else {
            self.start_cycle();
        }
    }

    fn start_cycle(&mut self) {
        self.cycle_counter += 1;
        self.cycle_started_ms = Some(self.now_ms);
        self.next_auto_ms = self.now_ms + libm::round(self.config.interval_min * 60_000.0) as u64;
        self.set_state(ProcessState::TakeImage);
        self.drive_flashlights(true);
        self.out.push(Action::RequestFrame);
    }

    fn drive_flashlights(&mut self, on: bool) {
        let pins: Vec<(u8, Option<u32>)> = self
            .gpio
            .pins
            .iter_mut()
            .filter(|p| p.config.mode.is_flashlight())
            .map(|p| {
                p.level = on;
                if p.config.mode.is_pwm() {
                    p.duty = if on {
                        crate::gpio::pwm_max_duty(p.config.pwm_frequency)
                    } else {
                        0
                    };
                }
                (p.config.number, p.driven_duty())
            })
            .collect();
        for (pin, duty) in pins {
            self.out.push(Action::SetPin {
                pin,
                level: on,
                duty,
            });
        }
    }

    fn on_frame(&mut self, frame: Frame) {
        let Some(started) = self.cycle_started_ms else {
            self.log(
                Level::Warn,
                "frame arrived while no cycle is running: ignored",
            );
            return;
        };
        self.drive_flashlights(false);
        if !self.fallbacks_restored {
            self.restore_fallbacks();
        }
        let mut error = false;
        let mut deviation = false;
        self.set_state(ProcessState::ImageAlignment);
        match frame {
            Frame::AlignmentFailed => {
                error = true;
                self.refuse("Image Alignment: alignment failed, cycle aborted".to_string());
            }
            Frame::Aligned(readings) => {
                self.set_state(ProcessState::RoiDigit);
                self.set_state(ProcessState::RoiAnalog);
                self.set_state(ProcessState::PostProcessing);
                deviation = self.post_process(&readings);
            }
        }
        if error {
            self.errors_in_row += 1;
            self.deviations_in_row = 0;
        } else if deviation {
            self.deviations_in_row += 1;
            self.errors_in_row = 0;
        } else {
            self.errors_in_row = 0;
            self.deviations_in_row = 0;
        }
        self.last_process_time_s = self.now_ms.saturating_sub(started) / 1000;
        self.set_state(ProcessState::PublishToMqtt);
        if self.mqtt_connected {
            self.flush_scheduled();
            self.publish_device_status();
            self.publish_process_status();
            if !error {
                self.publish_process_data();
            }
        } else if self.config.mqtt.enabled {
            self.log(
                Level::Warn,
                "Publish to MQTT skipped: not connected to broker",
            );
        }
        self.set_state(ProcessState::AdditionalTasks);
        if self.sequences.iter().any(|s| s.fallback_updated) {
            self.persist_fallbacks();
        }
        self.set_state(ProcessState::PostProcessEventHandling);
        self.cycle_started_ms = None;
        let idle = self.idle_state();
        self.set_state(idle);
        if core::mem::take(&mut self.cycle_requested) {
            self.start_cycle();
        }
    }

    fn restore_fallbacks(&mut self) {
        self.fallbacks_restored = true;
        let now = self.now_s();
        let tz = self.config.timezone.clone();
        for stored in core::mem::take(&mut self.stored_fallbacks) {
            let Some(cfg) = self.config.sequence(&stored.sequence).cloned() else {
                continue;
            };
            if let Some(seq) = self
                .sequences
                .iter_mut()
                .find(|s| s.name == stored.sequence)
            {
                seq.restore_fallback(&stored, now, &cfg.post, &tz);
                let (name, text) = (seq.name.clone(), seq.fallback_text.clone());
                self.log(
                    Level::Info,
                    format!("{name}: fallback value restored: {text}"),
                );
            }
        }
    }

    /// Post-processes every sequence; returns true when any deviated (rate too high).
    fn post_process(&mut self, readings: &BTreeMap<String, Reading>) -> bool {
        let now = self.now_s();
        let model = self.config.digit_model;
        let tz = self.config.timezone.clone();
        let mut deviation = false;
        let configs = self.config.sequences.clone();
        for (seq, cfg) in self.sequences.iter_mut().zip(configs.iter()) {
            let reading = readings.get(&seq.name);
            let digits: Vec<Roi> = (0..seq.shape.digits)
                .map(|i| {
                    reading
                        .and_then(|r| r.digits.get(i).copied().flatten())
                        .map(|v| digit_result(v, model))
                })
                .collect();
            let analogs: Vec<Roi> = (0..seq.shape.analogs)
                .map(|i| {
                    reading
                        .and_then(|r| r.analogs.get(i).copied().flatten())
                        .map(to_class100)
                })
                .collect();
            let params = ReadoutParams {
                model,
                extended_resolution: cfg.post.extended_resolution,
                analog_digit_sync_value: cfg.post.analog_digit_sync_value,
            };
            let outcome = seq.process(&digits, &analogs, &params, &cfg.post, now, &tz);
            deviation |= outcome.deviation;
        }
        deviation
    }

    // ---- console ----

    fn on_console(&mut self, line: &str) {
        let reply = match console::parse(line) {
            Ok(None) => return,
            Ok(Some(cmd)) => self.run_command(cmd),
            Err(e) => format!("err {} {}", e.code, e.message),
        };
        if let Some(error) = reply.strip_prefix("err ") {
            self.last_error = Some(error.to_string());
        }
        self.out.push(Action::ConsoleWrite(reply));
    }

    /// The `status` JSON shared by the console and `GET /api/status`.
    pub fn status_json(&self) -> Value {
        let sequences: Vec<Value> = self
            .sequences
            .iter()
            .map(|s| {
                json!({"sequence": s.name, "id": s.id, "actual_value": s.actual_value_text, "raw_value": s.raw_value,
                       "fallback_value": s.fallback_text, "value_status": s.value_status})
            })
            .collect();
        let pins: Vec<Value> = self
            .gpio
            .pins
            .iter()
            .map(|p| json!({"gpio": p.config.number, "name": p.config.topic_name(), "mode": p.config.mode.name(),
                            "state": u8::from(p.level), "pwm_duty": p.duty}))
            .collect();
        json!({
            "state": self.state.as_str(),
            "process_status": self.process_status(),
            "cycle_counter": self.cycle_counter,
            "process_error": self.process_error(),
            "mqtt_connected": self.mqtt_connected,
            "main_topic": self.config.mqtt.main_topic,
            "last_error": self.last_error,
            "uptime": self.now_ms.saturating_sub(self.boot_ms) / 1000,
            "firmware_version": self.info.firmware_version,
            "sequences": sequences,
            "gpio": pins,
        })
    }

    fn run_command(&mut self, cmd: Command) -> String {
        match cmd {
            Command::Help => format!("ok {}", console::HELP),
            Command::Status => format!("ok {}", self.status_json()),
            Command::Frame {
                sequence,
                digits,
                analogs,
            } => self.inject_frame(&sequence, digits, analogs),
            Command::AlignFail { sequence } => {
                if self.config.sequence(&sequence).is_none() {
                    return self.unknown_sequence(&sequence);
                }
                self.camera.push_align_fail(&sequence);
                format!(
                    "ok queued align=fail for {sequence} ({} queued)",
                    self.camera.queued(&sequence)
                )
            }
            Command::ConfigGet { path } => match config::get_path(&self.config_redacted(), &path) {
                Some(v) => format!("ok {v}"),
                None => format!("err unknown-path no config key '{path}'"),
            },
            Command::ConfigSet { path, value } => {
                let mut doc = self.doc.clone();
                let result = config::set_path(&mut doc, &path, value)
                    .and_then(|()| self.apply_document(doc));
                match result {
                    Ok(()) => format!("ok {path} saved"),
                    Err(e) => format!("err invalid-config {e}"),
                }
            }
            Command::ConfigMerge { patch } => match self.merge_config(&patch) {
                Ok(()) => "ok config merged and saved".to_string(),
                Err(e) => format!("err invalid-config {e}"),
            },
            Command::FactoryReset => {
                // What a fresh chip holds: the defaults and no fallback values (a HIL rig's clean slate).
                let defaults = Config::from_partial(&json!({})).map(|(doc, _)| doc);
                match defaults {
                    Ok(doc) => {
                        self.out.push(Action::PersistConfig(
                            serde_json::to_string_pretty(&doc).unwrap_or_default(),
                        ));
                        self.out.push(Action::PersistFallbacks("[]".to_string()));
                        self.out.push(Action::Reboot);
                        "ok factory reset, rebooting".to_string()
                    }
                    Err(e) => format!("err internal defaults do not validate: {e}"),
                }
            }
            Command::Reboot => {
                self.out.push(Action::Reboot);
                "ok rebooting".to_string()
            }
            Command::Download => {
                self.out.push(Action::EnterDownloadMode);
                "ok entering download mode".to_string()
            }
        }
    }

    fn unknown_sequence(&self, name: &str) -> String {
        let known: Vec<&str> = self.sequences.iter().map(|s| s.name.as_str()).collect();
        format!(
            "err unknown-sequence no number sequence '{name}' (configured: {})",
            known.join(", ")
        )
    }

    fn inject_frame(
        &mut self,
        name: &str,
        digits: Option<Vec<Option<f64>>>,
        analogs: Option<Vec<Option<f64>>>,
    ) -> String {
        let Some(seq) = self.sequences.iter().find(|s| s.name == name) else {
            return self.unknown_sequence(name);
        };
        let shape = seq.shape;
        let digits = digits.unwrap_or_default();
        let analogs = analogs.unwrap_or_default();
        if digits.len() != shape.digits || analogs.len() != shape.analogs {
            return format!(
                "err roi-count sequence '{name}' has {} digit and {} analog ROIs, got {} and {}",
                shape.digits,
                shape.analogs,
                digits.len(),
                analogs.len()
            );
        }
        if self.config.digit_model == DigitModel::Class11 {
            if let Some(i) = digits
                .iter()
                .position(|d| d.is_some_and(|v| libm::trunc(v) != v))
            {
                return format!(
                    "err bad-value digits[{i}]: class11 digits are whole numbers 0..9 or N"
                );
            }
        }
        self.camera.push(name, Reading { digits, analogs });
        format!(
            "ok queued frame for {name} ({} queued)",
            self.camera.queued(name)
        )
    }

    /// Validates and applies a complete config document: persisted, then every part that changed is applied.
    /// An invalid document changes nothing.
    pub fn apply_document(&mut self, doc: Value) -> Result<(), ConfigError> {
        let (doc, new) = Config::from_partial(&doc)?;
        let old = core::mem::replace(&mut self.config, new);
        self.doc = doc;
        self.out.push(Action::PersistConfig(
            serde_json::to_string_pretty(&self.doc).unwrap_or_default(),
        ));
        self.log(Level::Info, "configuration saved");
        if old.sequences != self.config.sequences || old.digit_model != self.config.digit_model {
            self.rebuild_sequences();
        }
        if old.gpio != self.config.gpio {
            self.gpio = Gpio::new(&self.config.gpio);
            self.configure_pins();
        }
        if old.opmode != self.config.opmode || old.interval_min != self.config.interval_min {
            self.next_auto_ms = self.now_ms;
            if self.cycle_started_ms.is_none() {
                let idle = self.idle_state();
                self.set_state(idle);
            }
        }
        if old.mqtt != self.config.mqtt
            || old.gpio != self.config.gpio
            || old.sequences != self.config.sequences
        {
            // Mark the old tree offline before leaving it (boards leave in order, with DISCONNECT, so the broker
            // drops the will); the new tree gets birth, info and discovery.
            let leaving = old.mqtt.main_topic != self.config.mqtt.main_topic
                || self.mqtt_settings().is_none();
            if self.mqtt_connected && leaving {
                let topic = format!("{}/device/status/connection", old.mqtt.main_topic);
                self.publish_abs(topic, OFFLINE.to_string(), true);
            }
            self.device_info_pending = true;
            self.discovery_pending = self.config.mqtt.home_assistant.discovery_enabled;
            if old.mqtt != self.config.mqtt {
                self.mqtt_connected = false;
                match self.mqtt_settings() {
                    Some(s) => self.out.push(Action::MqttConnect(s)),
                    None => self.out.push(Action::MqttDisconnect),
                }
            } else {
                self.on_mqtt_connected_refresh();
            }
        }
        Ok(())
    }

    /// Re-subscribes and republishes after a GPIO or sequence change on the same connection.
    fn on_mqtt_connected_refresh(&mut self) {
        if self.mqtt_connected {
            self.on_mqtt_connected();
        }
    }

    /// Merges a partial document into the running config (REST `POST /api/config`).
    pub fn merge_config(&mut self, patch: &Value) -> Result<(), ConfigError> {
        if !patch.is_object() {
            return Err(ConfigError {
                errors: alloc::vec![config::FieldError {
                    path: "$".into(),
                    message: "must be a JSON object".into()
                }],
            });
        }
        let mut doc = self.doc.clone();
        config::merge(&mut doc, patch);
        self.apply_document(doc)
    }

    /// Schedules device info (REST) and publishes it at once when connected.
    pub fn schedule_device_info(&mut self) {
        self.device_info_pending = true;
        self.flush_scheduled();
    }

    /// Schedules discovery (REST) and publishes it at once when connected.
    pub fn schedule_discovery(&mut self) {
        self.discovery_pending = true;
        self.flush_scheduled();
    }
}

/// A digit as typed -> the model's integer result (class-11: 0..9).
fn digit_result(v: f64, model: DigitModel) -> i32 {
    match model {
        DigitModel::Class100 => to_class100(v),
        DigitModel::Class11 => (libm::round(v) as i64).clamp(0, 9) as i32,
    }
}
