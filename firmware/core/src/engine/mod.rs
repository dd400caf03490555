//! The device: events in, actions out. Deterministic: the same events at the same times give the same actions.
//!
//! The engine is split by concern: [`contract`] (what goes in and out), `topics` (the v17 topic tree), `control`
//! (control topics and GPIO inputs), `cycle` (the process cycle), `console` (the serial console) and `apply`
//! (configuration changes). The board contract (run loop, deadlines) is in the crate docs.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::Value;

use crate::camera::{Frame, SimCamera};
use crate::config::{self, Config, ConfigError, OpMode};
use crate::gpio::Gpio;
use crate::postprocess::{SequenceState, Shape, StoredFallback};
use crate::readout::{to_class100, DigitModel};

mod apply;
mod console;
pub mod contract;
mod control;
mod cycle;
mod topics;

pub use contract::{
    Action, BoardInfo, BoardStatus, Boot, Event, HttpRequest, HttpResponse, Level, MqttSettings,
    ProcessState, TimeStatus,
};

/// Retained `connection` payloads: birth and last will.
pub const ONLINE: &str = "online";
pub const OFFLINE: &str = "offline";
/// Every publish and subscription uses QoS 1.
pub const QOS: u8 = 1;
/// Process errors or deviations in a row that escalate to -2 / 2.
const IN_ROW_LIMIT: u32 = 3;
/// The birth is published once more this long after connecting.
const BIRTH_AGAIN_AFTER_MS: u64 = 2000;

/// An action the engine has decided and the board has not taken yet.
// Nearly every entry is an `Action`: boxing it would cost an allocation each to save space on the rare other one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Queued {
    Action(Action),
    /// Discovery configs from `next` on: each is rendered only when the board takes it, so a board never holds
    /// more than one in memory.
    Discovery {
        next: usize,
        retain: bool,
    },
}

/// The device.
pub struct Engine {
    config: Config,
    /// The config document (compact JSON): kept as text, a parsed document takes about eight times the memory.
    doc: String,
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
    gpio: Gpio,
    device_info_pending: bool,
    discovery_pending: bool,
    /// When to publish the birth once more after connecting (see `on_tick`).
    birth_again_at: Option<u64>,
    /// The wait for the first time sync is over (synced once, or a manual trigger went ahead).
    time_wait_over: bool,
    /// The running cycle had an error or a deviation.
    cycle_events: bool,
    camera: SimCamera,
    out: VecDeque<Queued>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// A device with the default configuration, not yet booted.
    pub fn new() -> Engine {
        let defaults = config::default_json();
        let config = match Config::from_json(&defaults) {
            Ok(c) => c,
            Err(e) => panic!("built-in defaults are invalid: {e}"),
        };
        let doc = defaults.to_string();
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
            device_info_pending: true,
            discovery_pending: true,
            birth_again_at: None,
            time_wait_over: false,
            cycle_events: false,
            camera: SimCamera::new(),
            out: VecDeque::new(),
        };
        engine.rebuild_sequences();
        engine
    }

    /// Handles one event at `now_ms` (unix milliseconds) and returns everything the board must do, including what
    /// earlier [`Engine::push_event`] calls left in the queue. Convenient for tests; boards with little memory use
    /// [`Engine::push_event`] + [`Engine::poll_action`].
    pub fn handle(&mut self, now_ms: u64, event: Event) -> Vec<Action> {
        self.push_event(now_ms, event);
        core::iter::from_fn(|| self.poll_action()).collect()
    }

    /// Handles one event at `now_ms`; what the board must do waits in the engine's queue for
    /// [`Engine::poll_action`]. May be called while actions are still queued: new ones come after them.
    pub fn push_event(&mut self, now_ms: u64, event: Event) {
        self.now_ms = now_ms;
        match event {
            Event::Booted(boot) => self.on_boot(boot),
            Event::BoardStatus(s) => self.on_board_status(s),
            Event::MqttConnected => self.on_mqtt_connected(),
            Event::MqttDisconnected => {
                self.mqtt_connected = false;
                self.log(Level::Warn, "MQTT: disconnected from broker");
            }
            Event::MqttMessage { topic, payload } => self.on_mqtt_message(&topic, &payload),
            Event::MqttMessageTooLarge { topic, size } => self.refuse(format!(
                "MQTT: a message of {size} bytes on '{topic}' is larger than the device takes: skipped"
            )),
            Event::Tick => self.on_tick(),
            Event::TimeStepped { by_ms } => self.on_time_stepped(by_ms),
            Event::Frame(frame) => self.on_frame(frame),
            Event::PinChanged { pin, level } => self.on_pin_changed(pin, level),
            Event::ConsoleLine(line) => self.on_console(&line),
        }
    }

    /// Answers a request to the web interface / REST API at `now_ms`. Other actions it causes (a saved config, a
    /// reconnect) wait in the queue for [`Engine::poll_action`].
    pub fn http(&mut self, now_ms: u64, request: &HttpRequest) -> HttpResponse {
        self.now_ms = now_ms;
        self.on_http(request)
    }

    /// The next action for the board, in the order the engine decided them; `None` when there is nothing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        loop {
            match self.out.pop_front()? {
                Queued::Action(action) => return Some(action),
                Queued::Discovery { next, retain } => {
                    // A connection lost meanwhile makes the rest moot: the next connect publishes them all.
                    if !self.mqtt_connected {
                        continue;
                    }
                    let facts = self.device_facts();
                    let Some((topic, payload)) =
                        crate::discovery::message_at(&self.config, &facts, next)
                    else {
                        continue;
                    };
                    self.out.push_front(Queued::Discovery {
                        next: next + 1,
                        retain,
                    });
                    return Some(Action::Publish {
                        topic,
                        payload,
                        retain,
                        qos: QOS,
                    });
                }
            }
        }
    }

    /// When the engine next needs an [`Event::Tick`] (unix milliseconds, the clock of the events), if ever: the
    /// next automatic cycle, a GPIO input whose held-back level has lasted its debounce time, the repeated birth.
    /// A board sleeps until then (or until something else happens) instead of ticking on a fixed period; a tick
    /// earlier than this does nothing, one later delays what was due.
    pub fn next_deadline(&self) -> Option<u64> {
        let inputs = self
            .gpio
            .pins
            .iter()
            .filter_map(crate::gpio::Pin::settle_deadline);
        let cycle = self.next_automatic_cycle();
        inputs.chain(self.birth_again_at).chain(cycle).min()
    }

    fn push(&mut self, action: Action) {
        self.out.push_back(Queued::Action(action));
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

    /// The config document (parsed from its text; it is not kept parsed).
    pub(crate) fn document(&self) -> Value {
        crate::json::parse_unique(self.doc.as_bytes()).unwrap_or_else(|_| config::default_json())
    }

    /// The config document with secrets redacted.
    pub fn config_redacted(&self) -> Value {
        let mut doc = self.document();
        config::redact(&mut doc);
        doc
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
        // The reference sends a username and password with basic and with TLS authentication, an empty password
        // as empty (`interface_mqtt.cpp` 316-343).
        let credentials = m.auth_mode != 0;
        Some(MqttSettings {
            host: uri.host.clone(),
            port: uri.port,
            tls: uri.tls,
            client_id: m.client_id.clone(),
            username: credentials.then(|| m.username.clone()),
            password: credentials.then(|| m.password.clone()),
            keepalive_s: m.keepalive_s,
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
        self.push(Action::Log {
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
            self.push(Action::Publish {
                topic,
                payload,
                retain,
                qos: QOS,
            });
        }
    }

    /// Every state the process goes through is published (reference: `ClassFlowControl.cpp` doFlow loops,
    /// `MainFlowControl.cpp` task states), but the initialization ones, which come before MQTT.
    fn set_state(&mut self, state: ProcessState) {
        self.state = state;
        self.log(Level::Debug, format!("process state: {}", state.as_str()));
        if !matches!(
            state,
            ProcessState::Initialization | ProcessState::InitializationDelayed
        ) {
            self.publish("/process/status/process_state", state.as_str(), false);
        }
    }

    fn idle_state(&self) -> ProcessState {
        if self.waiting_for_time_sync() {
            return ProcessState::InitializationWaitingForTimeSync;
        }
        match self.config.opmode {
            OpMode::Setup => ProcessState::SetupMode,
            OpMode::Manual => ProcessState::IdleNoAutostart,
            OpMode::Automatic => ProcessState::IdleWaitingForAutostart,
        }
    }

    /// The process start interlock (reference `MainFlowControl.cpp` ~965): with network time on, processing
    /// waits for the first sync after boot; a manual trigger does not wait (and ends the wait).
    fn waiting_for_time_sync(&self) -> bool {
        let ntp = &self.config.ntp;
        ntp.sync_enabled
            && ntp.start_interlock
            && !self.time_wait_over
            && self.status.time != TimeStatus::Synchronized
            && self.config.opmode != OpMode::Setup
    }

    /// Seconds since boot (the board's clock steps are taken out, see [`Event::TimeStepped`]).
    fn uptime_s(&self) -> u64 {
        self.now_ms.saturating_sub(self.boot_ms) / 1000
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
            match crate::json::parse_unique(text.as_bytes())
                .map_err(|e| ConfigError {
                    errors: alloc::vec![config::FieldError {
                        path: e.path,
                        message: e.message
                    }],
                })
                .and_then(config::Config::from_stored)
            {
                Ok((doc, cfg)) => {
                    self.doc = doc.to_string();
                    self.config = cfg;
                }
                Err(e) => self.log(
                    Level::Error,
                    format!("stored config refused, running with defaults: {e}"),
                ),
            }
        }
        if let Some(text) = boot.stored_fallbacks {
            match serde_json::from_slice::<Vec<StoredFallback>>(text.as_bytes()) {
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
        self.time_wait_over = false;
        self.push(Action::ConfigureTime(self.config.ntp.clone()));
        match self.mqtt_settings() {
            Some(s) => self.push(Action::MqttConnect(s)),
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
            self.push(Action::ConfigurePin { pin, mode });
            if !mode.is_input() {
                self.push(Action::SetPin { pin, level, duty });
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
}

/// A digit as typed -> the model's integer result (class-11: 0..9).
fn digit_result(v: f64, model: DigitModel) -> i32 {
    match model {
        DigitModel::Class100 => to_class100(v),
        DigitModel::Class11 => (libm::round(v) as i64).clamp(0, 9) as i32,
    }
}
