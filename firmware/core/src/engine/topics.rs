//! The v17 topic tree: what is published on connect, per cycle, and on request (device info, device status, process status and data, Home Assistant discovery).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::Serialize;

use super::{Action, Engine, Level, Queued, BIRTH_AGAIN_AFTER_MS, ONLINE, QOS};
use crate::config::OpMode;
use crate::discovery::{DeviceFacts, MeterType};
use crate::postprocess::{fixed, SequenceState};

impl Engine {
    pub(super) fn on_mqtt_connected(&mut self) {
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
            self.push(Action::Subscribe { filter, qos: QOS });
        }
        let ctrl: Vec<String> = self
            .gpio
            .exposed()
            .filter(|p| p.config.mode.is_controllable())
            .map(|p| format!("/device/gpio/{}/ctrl", p.config.topic_name()))
            .collect();
        for rel in ctrl {
            let filter = self.topic(&rel);
            self.push(Action::Subscribe { filter, qos: QOS });
        }
        if self.config.mqtt.home_assistant.discovery_enabled {
            let filter = self.config.mqtt.home_assistant.status_topic.clone();
            self.push(Action::Subscribe { filter, qos: QOS });
        }
        self.publish("/device/status/connection", ONLINE, true);
        self.birth_again_at = Some(self.now_ms + BIRTH_AGAIN_AFTER_MS);
        self.publish_gpio_states();
        // Every connect brings the retained tree back (decision 1): a broker that restarted without persistence
        // has none of it, and the device cannot tell from its own side.
        self.device_info_pending = true;
        self.discovery_pending = self.config.mqtt.home_assistant.discovery_enabled;
        self.flush_scheduled();
        if self.config.mqtt.retain_process_data
            && self
                .sequences
                .iter()
                .any(|s| !s.processed_time_text.is_empty())
        {
            self.publish_process_data();
        }
    }

    /// Publishes device info and discovery if they are scheduled (boot, REST request, HA `online`).
    pub(super) fn flush_scheduled(&mut self) {
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

    pub(super) fn device_facts(&self) -> DeviceFacts {
        DeviceFacts {
            board_type: self.info.board_type.clone(),
            firmware_version: self.info.firmware_version.clone(),
            ip_address: self.info.ip_address.clone(),
        }
    }

    pub(super) fn publish_discovery(&mut self) {
        if self.mqtt_connected {
            let retain = self.config.mqtt.home_assistant.retain_discovery;
            self.out.push_back(Queued::Discovery { next: 0, retain });
        }
    }

    /// The `device/info/*` payloads.
    pub fn device_info_payloads(&self) -> [(&'static str, String); 3] {
        let i = &self.info;
        // Keys in the reference's order (cJSON keeps insertion order; `server_mqtt.cpp` ~90-130).
        #[derive(Serialize)]
        struct Board<'a> {
            board_type: &'a str,
            chip_model: &'a str,
            chip_cores: u32,
            chip_revision: &'a str,
            chip_frequency: u32,
        }
        #[derive(Serialize)]
        struct Camera<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            frequency: u32,
        }
        #[derive(Serialize)]
        struct SdCard {
            capacity: u64,
            partition_size: u64,
        }
        #[derive(Serialize)]
        struct Hardware<'a> {
            board: Board<'a>,
            camera: Camera<'a>,
            sdcard: SdCard,
        }
        #[derive(Serialize)]
        struct Network<'a> {
            hostname: &'a str,
            ipv4_address: &'a str,
            mac_address: &'a str,
        }
        let hardware = Hardware {
            board: Board {
                board_type: &i.board_type,
                chip_model: &i.chip_model,
                chip_cores: i.chip_cores,
                chip_revision: &i.chip_revision,
                chip_frequency: i.chip_frequency_mhz,
            },
            camera: Camera {
                kind: &i.camera_type,
                frequency: i.camera_frequency_mhz,
            },
            sdcard: SdCard {
                capacity: i.sd_capacity_mb,
                partition_size: i.sd_partition_mb,
            },
        };
        let network = Network {
            hostname: &self.config.hostname,
            ipv4_address: &i.ip_address,
            mac_address: &i.mac_address,
        };
        [
            (
                "/device/info/hardware",
                serde_json::to_string(&hardware).unwrap_or_default(),
            ),
            (
                "/device/info/network",
                serde_json::to_string(&network).unwrap_or_default(),
            ),
            ("/device/info/firmware_version", i.firmware_version.clone()),
        ]
    }

    pub(super) fn publish_device_info(&mut self) {
        for (rel, payload) in self.device_info_payloads() {
            self.publish(rel, payload, true);
        }
    }

    pub(super) fn publish_device_status(&mut self) {
        let s = self.status.clone();
        let uptime = self.uptime_s();
        self.publish("/device/status/connection", ONLINE, true);
        self.publish("/device/status/device_uptime", uptime.to_string(), false);
        self.publish("/device/status/wlan_rssi", s.wlan_rssi.to_string(), false);
        self.publish("/device/status/chip_temp", fixed(s.chip_temp_c, 0), false);
        self.publish(
            "/device/status/heap",
            serde_json::to_string(&Heap::of(&s)).unwrap_or_default(),
            false,
        );
        self.publish(
            "/device/status/sd_partition_free",
            s.sd_partition_free_mb.to_string(),
            false,
        );
        self.publish("/device/status/ntp_syncstatus", s.time.as_str(), false);
    }

    /// `Processing (Automatic)` etc.
    pub fn process_status(&self) -> &'static str {
        match self.config.opmode {
            OpMode::Automatic => "Processing (Automatic)",
            OpMode::Manual => "Processing (Triggered Only)",
            OpMode::Setup => "Not Processing / Not Ready",
        }
    }

    pub(super) fn publish_process_status(&mut self) {
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

    pub(super) fn publish_process_data(&mut self) {
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

    /// The states a restarted Home Assistant has no retained copy of: device and process status, GPIO states, the
    /// last process data (decision 53: HA shows them at once instead of `unknown` until the next cycle).
    pub(super) fn republish_states(&mut self) {
        if !self.mqtt_connected {
            return;
        }
        self.publish_device_status();
        self.publish_process_status();
        self.publish_gpio_states();
        if self
            .sequences
            .iter()
            .any(|s| !s.processed_time_text.is_empty())
        {
            self.publish_process_data();
        }
    }

    pub(super) fn publish_gpio_states(&mut self) {
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

/// The heap figures in bytes, keys in the reference's order (`server_mqtt.cpp` 169-195).
#[derive(Serialize)]
pub(super) struct Heap {
    heap_total_free: u64,
    heap_internal_free: u64,
    heap_internal_largest_free: u64,
    heap_internal_min_free: u64,
    heap_spiram_free: u64,
    heap_spiram_largest_free: u64,
    heap_spiram_min_free: u64,
}

impl Heap {
    pub(super) fn of(s: &super::BoardStatus) -> Heap {
        Heap {
            heap_total_free: s.heap_total_free,
            heap_internal_free: s.heap_internal_free,
            heap_internal_largest_free: s.heap_internal_largest_free,
            heap_internal_min_free: s.heap_internal_min_free,
            heap_spiram_free: s.heap_spiram_free,
            heap_spiram_largest_free: s.heap_spiram_largest_free,
            heap_spiram_min_free: s.heap_spiram_min_free,
        }
    }
}
