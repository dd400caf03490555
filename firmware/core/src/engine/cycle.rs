//! The process cycle: automatic and requested starts, the flashlight, evaluation, post-processing and the publish step.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{digit_result, Action, BoardStatus, Engine, Level, ProcessState, TimeStatus, ONLINE};

/// What went wrong in a cycle.
#[derive(Debug, Clone, Copy)]
enum Event {
    /// The cycle stopped (e.g. alignment failed).
    Error,
    /// The cycle went on (e.g. a rate too high, MQTT not connected).
    Deviation,
}
use crate::camera::{Frame, Reading};
use crate::config::OpMode;
use crate::readout::{to_class100, ReadoutParams, Roi};

impl Engine {
    pub(super) fn on_tick(&mut self) {
        self.settle_inputs();
        // After a quick reboot the broker may deliver the old connection's LWT after our birth, leaving a stale
        // retained `offline`: say `online` once more.
        if self.birth_again_at.is_some_and(|at| self.now_ms >= at) {
            self.birth_again_at = None;
            self.publish("/device/status/connection", ONLINE, true);
            // Home Assistant subscribes to a new entity's state topic only after its config arrives: the states
            // published with the discovery at connect reach no one, and are not retained (decision 53).
            if self.config.mqtt.home_assistant.discovery_enabled {
                self.republish_states();
            }
        }
        if self
            .next_automatic_cycle()
            .is_some_and(|at| self.now_ms >= at)
        {
            self.start_cycle();
        }
    }

    /// When the next automatic cycle is due, if one is scheduled: automatic mode, booted, no cycle running, and
    /// (for the first one) the broker connected so its results are not lost.
    pub(super) fn next_automatic_cycle(&self) -> Option<u64> {
        let waiting_for_broker =
            self.config.mqtt.enabled && !self.mqtt_connected && self.cycle_counter == 0;
        let scheduled = self.booted
            && self.config.opmode == OpMode::Automatic
            && self.cycle_started_ms.is_none()
            && !waiting_for_broker
            && !self.waiting_for_time_sync();
        scheduled.then_some(self.next_auto_ms)
    }

    /// What the board sampled: heap, RSSI, temperature, time sync. The first sync ends the wait of the process
    /// start interlock.
    pub(super) fn on_board_status(&mut self, status: BoardStatus) {
        let was_waiting = self.waiting_for_time_sync();
        if status.time == TimeStatus::Synchronized {
            self.time_wait_over = true;
        }
        self.status = status;
        if was_waiting && !self.waiting_for_time_sync() && self.cycle_started_ms.is_none() {
            self.log(Level::Info, "time is synchronized: processing may start");
            let idle = self.idle_state();
            self.set_state(idle);
        }
    }

    pub(super) fn on_time_stepped(&mut self, by_ms: i64) {
        let shift = |t: u64| (t as i64 + by_ms).max(0) as u64;
        self.boot_ms = shift(self.boot_ms);
        self.next_auto_ms = shift(self.next_auto_ms);
        self.cycle_started_ms = self.cycle_started_ms.map(shift);
        self.birth_again_at = self.birth_again_at.map(shift);
        for pin in &mut self.gpio.pins {
            pin.shift_time(by_ms);
        }
    }

    /// A cycle on request (MQTT, REST, GPIO): now, or right after the running one.
    pub fn request_cycle(&mut self) {
        // A manual start does not wait for the time, and ends the wait (v17 lets only REST start without synced
        // time; MQTT and GPIO too here: decision 52).
        self.time_wait_over = true;
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

    pub(super) fn start_cycle(&mut self) {
        self.cycle_counter += 1;
        self.cycle_started_ms = Some(self.now_ms);
        self.cycle_events = false;
        self.next_auto_ms = self.now_ms + libm::round(self.config.interval_min * 60_000.0) as u64;
        self.set_state(ProcessState::TakeImage);
        self.drive_flashlights(true);
        self.push(Action::RequestFrame);
    }

    pub(super) fn drive_flashlights(&mut self, on: bool) {
        // (pin, duty, the state topic and payload of an exposed pin)
        type Driven = (u8, Option<u32>, Option<(String, String)>);
        let pins: Vec<Driven> = self
            .gpio
            .pins
            .iter_mut()
            .filter(|p| p.config.mode.is_flashlight())
            .map(|p| {
                p.level = on;
                if p.config.mode.is_pwm() {
                    // The duty stays what it is lit with, on and off (reference `gpioPin.cpp` setPinState).
                    p.duty = crate::gpio::pwm_max_duty(p.config.pwm_frequency);
                }
                // An exposed flashlight says so on MQTT, on and off (reference `gpioControl.cpp` ~381-465).
                let state = p.config.expose_to_mqtt.then(|| {
                    (
                        format!("/device/gpio/{}/state", p.config.topic_name()),
                        p.state_json(),
                    )
                });
                (p.config.number, p.driven_duty(), state)
            })
            .collect();
        for (pin, duty, state) in pins {
            self.push(Action::SetPin {
                pin,
                level: on,
                duty,
            });
            if let Some((topic, payload)) = state {
                self.publish(&topic, payload, false);
            }
        }
    }

    pub(super) fn on_frame(&mut self, frame: Frame) {
        let Some(started) = self.cycle_started_ms else {
            self.log(
                Level::Warn,
                "frame arrived while no cycle is running: ignored",
            );
            return;
        };
        self.drive_flashlights(false);
        // Stored at boot, restored with the first cycle (and then gone).
        if !self.stored_fallbacks.is_empty() {
            self.restore_fallbacks();
        }
        // Image evaluation (reference `ClassFlowControl.cpp` doFlowImageEvaluation): every step's state is
        // published; an error stops the evaluation, the publishing still runs.
        self.set_state(ProcessState::ImageAlignment);
        let mut error = false;
        match frame {
            Frame::AlignmentFailed => {
                error = true;
                self.refuse("Image Alignment: alignment failed, cycle aborted".to_string());
                self.process_event(Event::Error);
            }
            Frame::Aligned(readings) => {
                if self.config.digit_enabled {
                    self.set_state(ProcessState::RoiDigit);
                }
                if self.config.analog_enabled {
                    self.set_state(ProcessState::RoiAnalog);
                }
                self.set_state(ProcessState::PostProcessing);
                if self.post_process(&readings) {
                    self.process_event(Event::Deviation);
                }
            }
        }
        // Publishing (doFlowPublishData).
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
            // The reference counts this as a deviation (ClassFlowMQTT.cpp event 1).
            self.process_event(Event::Deviation);
        }
        // Additional tasks: a cycle without events clears the counters and says `0` at once; one with events is
        // handled first.
        if self.cycle_events {
            self.set_state(ProcessState::PostProcessEventHandling);
        } else {
            self.errors_in_row = 0;
            self.deviations_in_row = 0;
            self.publish("/process/status/process_error", "0", false);
        }
        self.set_state(ProcessState::AdditionalTasks);
        if self.sequences.iter().any(|s| s.fallback_updated) {
            self.persist_fallbacks();
        }
        // Published with the next cycle, as the reference measures it: start to additional tasks.
        self.last_process_time_s = self.now_ms.saturating_sub(started) / 1000;
        self.cycle_started_ms = None;
        let idle = self.idle_state();
        self.set_state(idle);
        if core::mem::take(&mut self.cycle_requested) {
            self.start_cycle();
        }
    }

    /// An error or deviation of this cycle: counted in a row, the other kind's count starts over.
    fn process_event(&mut self, event: Event) {
        self.cycle_events = true;
        match event {
            Event::Error => {
                self.errors_in_row += 1;
                self.deviations_in_row = 0;
            }
            Event::Deviation => {
                self.deviations_in_row += 1;
                self.errors_in_row = 0;
            }
        }
    }

    pub(super) fn restore_fallbacks(&mut self) {
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
    pub(super) fn post_process(&mut self, readings: &BTreeMap<String, Reading>) -> bool {
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
}
