//! Control input: the subscribed control topics (cycle start, fallback value, GPIO ctrl, Home Assistant's status) and GPIO input changes.

use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;

use super::{Action, Engine, Level, ONLINE};
use crate::control::{self, SetFallbackError};
use crate::postprocess::{SequenceState, StoredFallback};

impl Engine {
    pub(super) fn on_mqtt_message(&mut self, topic: &str, payload: &[u8]) {
        let main = &self.config.mqtt.main_topic;
        if topic == self.config.mqtt.home_assistant.status_topic
            && self.config.mqtt.home_assistant.discovery_enabled
        {
            // Exactly `online` (the reference's strncmp takes any prefix of it, decision 46).
            if payload == ONLINE.as_bytes() {
                self.log(
                    Level::Info,
                    "Home Assistant is online: publishing discovery and the states",
                );
                self.discovery_pending = true;
                self.flush_scheduled();
                self.republish_states();
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
        // The value set replaces what was stored for this sequence (the first cycle must not restore the old one);
        // the other sequences' stored values are still restored with it, and saved along until then.
        self.stored_fallbacks.retain(|s| s.sequence != req.sequence);
        let seq = &mut self.sequences[index];
        seq.set_fallback(value, now, &tz);
        let message = format!("set_fallbackvalue: '{}' = {}", seq.name, seq.fallback_text);
        self.log(Level::Info, message);
        self.persist_fallbacks();
        Ok(())
    }

    pub(super) fn persist_fallbacks(&mut self) {
        let mut list: Vec<StoredFallback> = self
            .sequences
            .iter()
            .filter_map(SequenceState::stored_fallback)
            .collect();
        // Keep stored values of sequences that have not been restored yet (no cycle since boot: the first cycle
        // takes them all).
        for stored in &self.stored_fallbacks {
            if !list.iter().any(|s| s.sequence == stored.sequence) {
                list.push(stored.clone());
            }
        }
        for seq in &mut self.sequences {
            seq.fallback_updated = false;
        }
        let text = serde_json::to_string(&list).unwrap_or_else(|_| "[]".to_string());
        self.push(Action::PersistFallbacks(text));
    }

    pub(super) fn on_gpio_ctrl(&mut self, name: &str, payload: &[u8]) {
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
        pin.apply(ctrl);
        let (number, level, duty, state, exposed) = (
            pin.config.number,
            pin.level,
            pin.driven_duty(),
            pin.state_json(),
            pin.config.expose_to_mqtt,
        );
        self.push(Action::SetPin {
            pin: number,
            level,
            duty,
        });
        // Every accepted ctrl is echoed, changed or not (reference `gpioPin.cpp` setPinState).
        if exposed {
            self.publish(&format!("/device/gpio/{name}/state"), state, false);
        }
        Ok(())
    }

    pub(super) fn on_pin_changed(&mut self, number: u8, level: bool) {
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
    pub(super) fn settle_inputs(&mut self) {
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
    pub(super) fn input_accepted(&mut self, number: u8, level: bool) {
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
}
