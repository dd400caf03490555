//! Configuration changes at run time: validate, persist, and apply what changed (sequences, GPIO, schedule, MQTT).

use alloc::format;
use alloc::string::ToString;

use serde_json::Value;

use super::{Action, Engine, Level, OFFLINE};
use crate::config::{self, Config, ConfigError};
use crate::gpio::Gpio;

impl Engine {
    /// Validates and applies a complete config document: persisted, then every part that changed is applied.
    /// An invalid document changes nothing.
    pub fn apply_document(&mut self, doc: Value) -> Result<(), ConfigError> {
        // The document is the running one with a change: complete already, no defaults to merge in (that would
        // hold a second whole document in the heap).
        let new = Config::from_json(&doc)?;
        let old = core::mem::replace(&mut self.config, new);
        self.doc = doc.to_string();
        self.push(Action::PersistConfig(self.doc.clone()));
        self.log(Level::Info, "configuration saved");
        if old.sequences != self.config.sequences || old.digit_model != self.config.digit_model {
            self.rebuild_sequences();
        }
        if old.gpio != self.config.gpio {
            self.gpio = Gpio::new(&self.config.gpio);
            self.configure_pins();
        }
        if old.ntp != self.config.ntp {
            self.push(Action::ConfigureTime(self.config.ntp.clone()));
        }
        if old.opmode != self.config.opmode
            || old.interval_min != self.config.interval_min
            || old.ntp != self.config.ntp
        {
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
            // Leaving: another tree, no MQTT, or another broker (the old one would keep our retained `online`).
            let leaving = old.mqtt.main_topic != self.config.mqtt.main_topic
                || old.mqtt.uri != self.config.mqtt.uri
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
                    Some(s) => self.push(Action::MqttConnect(s)),
                    None => self.push(Action::MqttDisconnect),
                }
            } else {
                self.on_mqtt_connected_refresh();
            }
        }
        Ok(())
    }

    /// Re-subscribes and republishes after a GPIO or sequence change on the same connection.
    pub(super) fn on_mqtt_connected_refresh(&mut self) {
        if self.mqtt_connected {
            self.on_mqtt_connected();
        }
    }

    /// Merges a partial document into the running config (REST `POST /api/config`).
    pub fn merge_config(&mut self, patch: Value) -> Result<(), ConfigError> {
        if !patch.is_object() {
            return Err(ConfigError {
                errors: alloc::vec![config::FieldError {
                    path: "$".into(),
                    message: "must be a JSON object".into()
                }],
            });
        }
        let mut doc = self.document();
        config::merge(&mut doc, patch);
        self.apply_document(doc)
    }
}
