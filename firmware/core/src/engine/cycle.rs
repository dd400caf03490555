//! The process cycle: automatic and requested starts, the flashlight, evaluation, post-processing and the publish step.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{digit_result, Action, BoardStatus, Engine, Level, ProcessState, TimeStatus, ONLINE};
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

    /// A cycle on request (MQTT, REST, GPIO): now, or right after the running one.
    pub fn request_cycle(&mut self) {
        // A manual start does not wait for the time (reference: "Start process (manual trigger) without synced
        // time"), and ends the wait.
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
        self.next_auto_ms = self.now_ms + libm::round(self.config.interval_min * 60_000.0) as u64;
        self.set_state(ProcessState::TakeImage);
        self.drive_flashlights(true);
        self.push(Action::RequestFrame);
    }

    pub(super) fn drive_flashlights(&mut self, on: bool) {
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
            self.push(Action::SetPin {
                pin,
                level: on,
                duty,
            });
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

    pub(super) fn restore_fallbacks(&mut self) {
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
