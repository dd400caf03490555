//! Home Assistant MQTT discovery: one config topic per entity, serialized as real JSON.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::gpio::PinMode;
use crate::postprocess::fixed;

/// Units and classes of a meter type (`mqtt.homeassistant.metertype`, 0..16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeterType {
    pub device_class: &'static str,
    pub value_unit: &'static str,
    /// `h` or `min`: the time unit of `rate_per_time_unit`.
    pub time_unit: &'static str,
    pub rate_unit: &'static str,
}

const METER_TYPES: [MeterType; 17] = [
    MeterType {
        device_class: "",
        value_unit: "",
        time_unit: "min",
        rate_unit: "",
    },
    MeterType {
        device_class: "water",
        value_unit: "m³",
        time_unit: "h",
        rate_unit: "m³/h",
    },
    MeterType {
        device_class: "water",
        value_unit: "L",
        time_unit: "h",
        rate_unit: "L/h",
    },
    MeterType {
        device_class: "water",
        value_unit: "L",
        time_unit: "min",
        rate_unit: "L/min",
    },
    MeterType {
        device_class: "water",
        value_unit: "gal",
        time_unit: "h",
        rate_unit: "gal/h",
    },
    MeterType {
        device_class: "water",
        value_unit: "gal",
        time_unit: "min",
        rate_unit: "gal/min",
    },
    MeterType {
        device_class: "water",
        value_unit: "ft³",
        time_unit: "min",
        rate_unit: "ft³/min",
    },
    MeterType {
        device_class: "gas",
        value_unit: "m³",
        time_unit: "h",
        rate_unit: "m³/h",
    },
    MeterType {
        device_class: "gas",
        value_unit: "ft³",
        time_unit: "min",
        rate_unit: "ft³/min",
    },
    MeterType {
        device_class: "energy",
        value_unit: "Wh",
        time_unit: "h",
        rate_unit: "W",
    },
    MeterType {
        device_class: "energy",
        value_unit: "kWh",
        time_unit: "h",
        rate_unit: "kW",
    },
    MeterType {
        device_class: "energy",
        value_unit: "MWh",
        time_unit: "h",
        rate_unit: "MW",
    },
    MeterType {
        device_class: "energy",
        value_unit: "GJ",
        time_unit: "h",
        rate_unit: "GJ/h",
    },
    MeterType {
        device_class: "temperature",
        value_unit: "°C",
        time_unit: "min",
        rate_unit: "K/min",
    },
    MeterType {
        device_class: "temperature",
        value_unit: "°F",
        time_unit: "min",
        rate_unit: "K/min",
    },
    MeterType {
        device_class: "pressure",
        value_unit: "bar",
        time_unit: "min",
        rate_unit: "bar/min",
    },
    MeterType {
        device_class: "pressure",
        value_unit: "psi",
        time_unit: "min",
        rate_unit: "psi/min",
    },
];

impl MeterType {
    pub fn get(index: u8) -> MeterType {
        METER_TYPES
            .get(usize::from(index))
            .copied()
            .unwrap_or(METER_TYPES[0])
    }

    pub fn rate_per_hour(self) -> bool {
        self.time_unit == "h"
    }

    /// Device class of the rate sensor; none where HA has no matching unit (L/h, gal/h, GJ/h).
    fn rate_device_class(self) -> &'static str {
        match self.device_class {
            "water" | "gas" if !matches!(self.rate_unit, "L/h" | "gal/h") => "volume_flow_rate",
            "energy" if self.rate_unit != "GJ/h" => "power",
            _ => "",
        }
    }

    /// State class of the value sensors; counters only for cumulative meters.
    fn value_state_class(self, negative_allowed: bool) -> &'static str {
        match self.device_class {
            "water" | "gas" | "energy" if !negative_allowed => "total_increasing",
            _ => "measurement",
        }
    }
}

/// Facts about the device shown in the discovery `dev` block.
#[derive(Debug, Clone, Default)]
pub struct DeviceFacts {
    pub board_type: String,
    pub firmware_version: String,
    pub ip_address: String,
}

/// One entity to announce.
struct Entity<'a> {
    component: &'static str,
    object: String,
    name: String,
    icon: &'static str,
    /// Relative state or command topic (`~` is prepended).
    topic: String,
    json_property: Option<&'a str>,
    unit: &'a str,
    device_class: &'a str,
    state_class: &'a str,
    category: &'a str,
}

impl<'a> Entity<'a> {
    fn sensor(object: &str, name: &str, icon: &'static str, topic: &str) -> Self {
        Entity {
            component: "sensor",
            object: object.to_string(),
            name: name.to_string(),
            icon,
            topic: topic.to_string(),
            json_property: None,
            unit: "",
            device_class: "",
            state_class: "",
            category: "diagnostic",
        }
    }
    fn json(mut self, property: &'a str) -> Self {
        self.json_property = Some(property);
        self
    }
    fn unit(mut self, unit: &'a str) -> Self {
        self.unit = unit;
        self
    }
    fn class(mut self, device: &'a str, state: &'a str) -> Self {
        self.device_class = device;
        self.state_class = state;
        self
    }
    fn category(mut self, category: &'a str) -> Self {
        self.category = category;
        self
    }
}

/// The `index`th discovery config topic and payload of [`discovery_messages`], if there is one.
pub fn message_at(config: &Config, facts: &DeviceFacts, index: usize) -> Option<(String, String)> {
    discovery_messages(config, facts).into_iter().nth(index)
}

/// Every discovery config topic and payload for this configuration.
pub fn discovery_messages(config: &Config, facts: &DeviceFacts) -> Vec<(String, String)> {
    let meter = MeterType::get(config.mqtt.home_assistant.meter_type);
    let mut entities: Vec<Entity> = Vec::new();
    let net = "/device/info/network";
    let status = "/device/status/";
    entities.push(Entity::sensor(
        "connection",
        "Connection",
        "network-outline",
        "/device/status/connection",
    ));
    entities.push(
        Entity::sensor(
            "device_uptime",
            "Uptime",
            "clock-time-eight-outline",
            "/device/status/device_uptime",
        )
        .unit("s"),
    );
    entities.push(
        Entity::sensor(
            "wlan_rssi",
            "WLAN Signal Strength",
            "wifi",
            "/device/status/wlan_rssi",
        )
        .unit("dBm")
        .class("signal_strength", "measurement"),
    );
    for (object, name) in [
        ("heap_internal_free", "Memory Internal Free"),
        ("heap_spiram_free", "Memory External Free"),
    ] {
        entities.push(
            Entity::sensor(object, name, "memory", &format!("{status}heap"))
                .json(object)
                .unit("kB")
                .class("", "measurement"),
        );
    }
    entities.push(
        Entity::sensor(
            "chip_temp",
            "CPU Temperature",
            "thermometer",
            "/device/status/chip_temp",
        )
        .unit("°C")
        .class("temperature", "measurement"),
    );
    entities.push(Entity::sensor(
        "ntp_syncstatus",
        "NTP Sync Status",
        "network-outline",
        "/device/status/ntp_syncstatus",
    ));
    for (object, name) in [
        ("ipv4_address", "IP Address"),
        ("mac_address", "MAC Address"),
        ("hostname", "Hostname"),
    ] {
        entities.push(Entity::sensor(object, name, "network-outline", net).json(object));
    }
    entities.push(Entity::sensor(
        "process_status",
        "Process Status",
        "list-status",
        "/process/status/process_status",
    ));
    entities.push(
        Entity::sensor(
            "process_interval",
            "Process Interval",
            "clock-time-eight-outline",
            "/process/status/process_interval",
        )
        .unit("min"),
    );
    entities.push(
        Entity::sensor(
            "process_time",
            "Process Time",
            "clock-time-eight-outline",
            "/process/status/process_time",
        )
        .unit("s")
        .class("", "measurement"),
    );
    entities.push(Entity::sensor(
        "process_state",
        "Process State",
        "list-status",
        "/process/status/process_state",
    ));
    entities.push(Entity {
        component: "binary_sensor",
        device_class: "problem",
        category: "",
        ..Entity::sensor(
            "process_error",
            "Process Error State",
            "alert-outline",
            "/process/status/process_error",
        )
    });
    entities.push(Entity::sensor(
        "process_error_value",
        "Process Error Value",
        "alert-outline",
        "/process/status/process_error",
    ));

    let interval = fixed(config.interval_min, 1);
    for seq in &config.sequences {
        let topic = format!("/process/data/{}/json", seq.id);
        let value_state = meter.value_state_class(seq.post.allow_negative_rate);
        let s = &seq.name;
        let per = |object: &str, name: &str, icon: &'static str| {
            Entity::sensor(
                &format!("{s}_{object}"),
                &format!("{s}: {name}"),
                icon,
                &topic,
            )
        };
        entities.push(
            per("actual_value", "Actual Value", "gauge")
                .json("actual_value")
                .unit(meter.value_unit)
                .class(meter.device_class, value_state)
                .category(""),
        );
        if seq.post.use_fallback_value {
            entities.push(
                per("fallback_value", "Fallback Value", "gauge")
                    .json("fallback_value")
                    .unit(meter.value_unit)
                    .class(meter.device_class, value_state),
            );
        }
        entities.push(
            per("raw_value", "Raw Value", "gauge")
                .json("raw_value")
                .unit(meter.value_unit)
                .class(meter.device_class, value_state),
        );
        entities
            .push(per("value_status", "Value Status", "alert-circle-outline").json("value_status"));
        entities.push(
            per("rate_per_time_unit", "Rate", "swap-vertical")
                .json("rate_per_time_unit")
                .unit(meter.rate_unit)
                .class(meter.rate_device_class(), "measurement")
                .category(""),
        );
        entities.push(
            per(
                "rate_per_interval",
                &format!("Rate / Interval ({interval}min)"),
                "arrow-expand-vertical",
            )
            .json("rate_per_interval")
            .unit(meter.value_unit)
            .class("", "measurement"),
        );
        entities.push(
            per(
                "timestamp_processed",
                "Last Processed",
                "clock-time-eight-outline",
            )
            .json("timestamp_processed")
            .class("timestamp", ""),
        );
    }
    entities.push(Entity {
        component: "button",
        category: "",
        ..Entity::sensor(
            "cycle_start",
            "Manual Cycle Start",
            "timer-play-outline",
            "/process/ctrl/cycle_start",
        )
    });
    for pin in config.gpio.iter().filter(|p| p.enabled && p.expose_to_mqtt) {
        let name = pin.topic_name();
        let topic = format!("/device/gpio/{name}/state");
        entities.push(Entity {
            component: "binary_sensor",
            ..Entity::sensor(
                &format!("{name}_state"),
                &format!("{name}: State"),
                "",
                &topic,
            )
            .json("state")
        });
        if pin.mode == PinMode::OutputPwm {
            entities.push(
                Entity::sensor(
                    &format!("{name}_pwm_duty"),
                    &format!("{name}: PWM Duty"),
                    "",
                    &topic,
                )
                .json("pwm_duty"),
            );
        }
    }

    let node = config.node_id();
    let ha = &config.mqtt.home_assistant;
    entities
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let topic = format!(
                "{}/{}/{node}/{}/config",
                ha.discovery_prefix, e.component, e.object
            );
            (topic, entity_payload(e, config, facts, i == 0))
        })
        .collect()
}

fn entity_payload(e: &Entity, config: &Config, facts: &DeviceFacts, full_device: bool) -> String {
    let node = config.node_id();
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("~", json!(config.mqtt.main_topic));
    put("uniq_id", json!(format!("{node}_{}", e.object)));
    put("name", json!(e.name));
    if !e.icon.is_empty() {
        put("ic", json!(format!("mdi:{}", e.icon)));
    }
    if e.component == "button" {
        put("cmd_t", json!(format!("~{}", e.topic)));
        put("pl_prs", json!("1"));
    } else {
        put("stat_t", json!(format!("~{}", e.topic)));
    }
    if let Some(p) = e.json_property {
        put("val_tpl", json!(format!("{{{{value_json.{p}}}}}")));
    } else if e.object == "process_error" {
        // A problem only after several errors or deviations in a row (-2 / 2).
        put(
            "val_tpl",
            json!("{{ 'ON' if value in ['-2', '2'] else 'OFF' }}"),
        );
    }
    if e.component == "binary_sensor" && e.topic.contains("/gpio/") {
        put("pl_on", json!("1"));
        put("pl_off", json!("0"));
    }
    put("qos", json!(1));
    if !e.unit.is_empty() {
        put("unit_of_meas", json!(e.unit));
    }
    if !e.device_class.is_empty() {
        put("dev_cla", json!(e.device_class));
    }
    if !e.state_class.is_empty() {
        put("stat_cla", json!(e.state_class));
    }
    if !e.category.is_empty() {
        put("ent_cat", json!(e.category));
    }
    put("avty_t", json!("~/device/status/connection"));
    let dev = if full_device {
        json!({
            "ids": [node],
            "name": node,
            "mdl": format!("meterrig meter ({})", facts.board_type),
            "mf": "meterrig",
            "sw": facts.firmware_version,
            "cu": format!("http://{}", facts.ip_address),
        })
    } else {
        json!({"ids": [node]})
    };
    put("dev", dev);
    Value::Object(m).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    fn config(extra: serde_json::Value) -> Config {
        let mut base = json!({"mqtt": {"maintopic": "a/b/node", "homeassistant": {"discoveryenabled": true}},
                              "gpio": {"gpiopin": []}});
        crate::config::merge(&mut base, &extra);
        Config::from_partial(&base).unwrap().1
    }

    #[test]
    fn meter_type_table() {
        assert_eq!(MeterType::get(1).rate_unit, "m³/h");
        assert!(MeterType::get(1).rate_per_hour());
        assert!(!MeterType::get(3).rate_per_hour());
        assert_eq!(MeterType::get(9).rate_unit, "W");
        assert_eq!(MeterType::get(16).value_unit, "psi");
        assert_eq!(
            MeterType::get(200),
            MeterType::get(0),
            "out of range falls back to generic"
        );
        assert_eq!(
            MeterType::get(4).rate_device_class(),
            "",
            "gal/h has no HA class"
        );
        assert_eq!(MeterType::get(5).rate_device_class(), "volume_flow_rate");
        assert_eq!(
            MeterType::get(12).rate_device_class(),
            "",
            "GJ/h has no HA class"
        );
        assert_eq!(MeterType::get(15).value_state_class(false), "measurement");
    }

    #[test]
    fn topics_use_prefix_component_node_object() {
        let msgs = discovery_messages(
            &config(json!({"mqtt": {"homeassistant": {"discoveryprefix": "ha"}}})),
            &DeviceFacts::default(),
        );
        assert!(msgs
            .iter()
            .all(|(t, _)| t.starts_with("ha/") && t.ends_with("/config")));
        assert!(msgs
            .iter()
            .any(|(t, _)| t == "ha/sensor/node/main_raw_value/config"));
        assert!(msgs
            .iter()
            .any(|(t, _)| t == "ha/binary_sensor/node/process_error/config"));
        assert!(msgs
            .iter()
            .any(|(t, _)| t == "ha/button/node/cycle_start/config"));
    }

    #[test]
    fn only_first_message_carries_full_device() {
        let facts = DeviceFacts {
            board_type: "B".into(),
            firmware_version: "v1".into(),
            ip_address: "10.0.0.2".into(),
        };
        let msgs = discovery_messages(&config(json!({})), &facts);
        let full: Vec<serde_json::Value> = msgs
            .iter()
            .map(|(_, p)| serde_json::from_str(p).unwrap())
            .collect();
        assert_eq!(full[0]["dev"]["sw"], "v1");
        assert_eq!(full[0]["dev"]["cu"], "http://10.0.0.2");
        assert!(full[1..]
            .iter()
            .all(|v| v["dev"] == json!({"ids": ["node"]})));
    }

    #[test]
    fn interval_in_rate_per_interval_name() {
        let msgs = discovery_messages(
            &config(json!({"operationmode": {"automaticprocessinterval": 2.5}})),
            &DeviceFacts::default(),
        );
        let (_, p) = msgs
            .iter()
            .find(|(t, _)| t.ends_with("main_rate_per_interval/config"))
            .unwrap();
        assert!(p.contains("Rate / Interval (2.5min)"), "{p}");
    }

    #[test]
    fn process_error_problem_template() {
        let msgs = discovery_messages(&config(json!({})), &DeviceFacts::default());
        let (_, p) = msgs
            .iter()
            .find(|(t, _)| t.contains("binary_sensor/node/process_error/"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(p).unwrap();
        assert_eq!(v["dev_cla"], "problem");
        assert!(v["val_tpl"].as_str().unwrap().contains("'-2'"));
        assert!(v.get("ent_cat").is_none());
    }
}
