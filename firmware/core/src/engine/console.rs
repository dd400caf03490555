//! The serial console: one command per line, one `ok ...` / `err ...` reply each.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::{json, Value};

use super::{Action, Engine, OFFLINE};
use crate::camera::Reading;
use crate::config::{self, Config};
use crate::console::{self, Command};
use crate::readout::DigitModel;

impl Engine {
    pub(super) fn on_console(&mut self, line: &str) {
        let reply = match console::parse(line) {
            Ok(None) => return,
            Ok(Some(cmd)) => self.run_command(cmd),
            Err(e) => format!("err {} {}", e.code, e.message),
        };
        if let Some(error) = reply.strip_prefix("err ") {
            self.last_error = Some(error.to_string());
        }
        self.push(Action::ConsoleWrite(reply));
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
            "uptime": self.uptime_s(),
            // The board's clock in its time zone, as timestamps show it (1970 until network time sets it).
            "time": self.config.timezone.format(self.now_s()),
            "time_sync": self.status.time.as_str(),
            "firmware_version": self.info.firmware_version,
            // As last sampled (a board samples right before it answers `status`): a rig reads the peak from
            // heap_internal_min_free.
            "heap": serde_json::to_value(super::topics::Heap::of(&self.status)).unwrap_or_default(),
            "sequences": sequences,
            "gpio": pins,
        })
    }

    pub(super) fn run_command(&mut self, cmd: Command) -> String {
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
            Command::ConfigGet { path } => {
                if let Err(e) = config::path_segments(&path) {
                    return format!("err bad-path {e}");
                }
                match config::get_path(&self.config_redacted(), &path) {
                    Some(v) => format!("ok {v}"),
                    None => format!("err unknown-path no config key '{path}'"),
                }
            }
            Command::ConfigSet { path, value } => {
                let mut doc = self.document();
                let value = config::keep_redacted_secrets(&doc, &path, value);
                let result = config::set_path(&mut doc, &path, value)
                    .and_then(|()| self.apply_document(doc));
                match result {
                    Ok(()) => format!("ok {path} saved"),
                    Err(e) => format!("err invalid-config {e}"),
                }
            }
            Command::ConfigMerge { patch } => match self.merge_config(patch) {
                Ok(()) => "ok config merged and saved".to_string(),
                Err(e) => format!("err invalid-config {e}"),
            },
            Command::FactoryReset => {
                // What a fresh chip holds: the defaults and no fallback values (a HIL rig's clean slate).
                let defaults = Config::from_partial(&json!({})).map(|(doc, _)| doc);
                match defaults {
                    Ok(doc) => {
                        self.push(Action::PersistConfig(doc.to_string()));
                        self.push(Action::PersistFallbacks("[]".to_string()));
                        self.going_down();
                        self.push(Action::Reboot);
                        "ok factory reset, rebooting".to_string()
                    }
                    Err(e) => format!("err internal defaults do not validate: {e}"),
                }
            }
            Command::Reboot => {
                self.going_down();
                self.push(Action::Reboot);
                "ok rebooting".to_string()
            }
            Command::Download => {
                self.going_down();
                self.push(Action::EnterDownloadMode);
                "ok entering download mode".to_string()
            }
        }
    }

    /// Before a restart: the tree says `offline` (the board then leaves MQTT in order, which drops the will, so
    /// without this the retained `connection` would read `online` until the device is back, or forever).
    fn going_down(&mut self) {
        self.publish("/device/status/connection", OFFLINE, true);
    }

    pub(super) fn unknown_sequence(&self, name: &str) -> String {
        let known: Vec<&str> = self.sequences.iter().map(|s| s.name.as_str()).collect();
        format!(
            "err unknown-sequence no number sequence '{name}' (configured: {})",
            known.join(", ")
        )
    }

    pub(super) fn inject_frame(
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
}
