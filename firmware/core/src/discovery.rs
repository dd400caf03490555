//! Home Assistant MQTT discovery: one config topic per entity, serialized as real JSON.
//!
//! Entity identity (component, object id, unique id, name) and order are the reference's
//! (`server_mqtt.cpp` mqttServer_publishHADiscovery, v17.0.0). Where a v17 key makes Home Assistant log an error or a
//! warning, or show a wrong state, the key is what Home Assistant accepts (each such case is a numbered decision in
//! docs/decisions.md): every payload carries the whole device block, numeric sensors map `N` and empty values to
//! unknown, state and device classes are ones HA allows for the unit.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::gpio::PinMode;
use crate::postprocess::fixed;

/// Units and classes of a meter type (`mqtt.homeassistant.metertype`, 0..10 as `cfgDataStruct.h` HAMeterType;
/// table `ClassFlowMQTT.cpp` 38-70).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeterType {
    pub device_class: &'static str,
    pub value_unit: &'static str,
    /// `h`: `rate_per_time_unit` is per hour; otherwise per minute.
    pub time_unit: &'static str,
    pub rate_unit: &'static str,
}

const fn meter(
    device_class: &'static str,
    value_unit: &'static str,
    time_unit: &'static str,
    rate_unit: &'static str,
) -> MeterType {
    MeterType {
        device_class,
        value_unit,
        time_unit,
        rate_unit,
    }
}

/// v17's table, but `ft³/m` (cubic feet per metre) is written `ft³/min`, as HA knows it (decision 50).
const METER_TYPES: [MeterType; 11] = [
    meter("", "", "", ""),
    meter("water", "m³", "h", "m³/h"),
    meter("water", "L", "h", "L/h"),
    meter("water", "ft³", "m", "ft³/min"),
    meter("water", "gal", "h", "gal/h"),
    meter("gas", "m³", "h", "m³/h"),
    meter("gas", "ft³", "m", "ft³/min"),
    meter("energy", "Wh", "h", "W"),
    meter("energy", "kWh", "h", "kW"),
    meter("energy", "MWh", "h", "MW"),
    meter("energy", "GJ", "h", "GJ/h"),
];

/// The meter types there are (`0..=MAX_METER_TYPE`).
pub const MAX_METER_TYPE: u8 = 10;

/// Units HA (2024.3 and later) accepts for the rate's device class: v17 sends `volume_flow_rate` / `power` for
/// every meter type, HA refuses the class with any other unit (decision 50).
const FLOW_UNITS: [&str; 4] = ["m³/h", "L/min", "ft³/min", "gal/min"];
const POWER_UNITS: [&str; 2] = ["W", "kW"];

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

    /// Device class of the rate sensor: v17's, where HA accepts it for the unit.
    fn rate_device_class(self) -> &'static str {
        let (class, units): (&str, &[&str]) = match self.device_class {
            "energy" => ("power", &POWER_UNITS),
            _ => ("volume_flow_rate", &FLOW_UNITS),
        };
        if units.contains(&self.rate_unit) {
            class
        } else {
            ""
        }
    }

    /// State class of the actual value. v17: `total_increasing`, or `measurement` with negative rates allowed; HA
    /// allows only `total` / `total_increasing` for water, gas and energy (decision 51).
    fn actual_state_class(self, negative_allowed: bool) -> &'static str {
        match (negative_allowed, self.device_class) {
            (false, _) => "total_increasing",
            (true, "") => "measurement",
            (true, _) => "total",
        }
    }

    /// State class of the fallback and raw values. v17: `measurement`; for water, gas and energy HA needs `total`
    /// (decision 51).
    fn other_value_state_class(self) -> &'static str {
        if self.device_class.is_empty() {
            "measurement"
        } else {
            "total"
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
struct Entity {
    component: &'static str,
    object: String,
    name: String,
    icon: &'static str,
    /// Relative state or command topic (`~` is prepended).
    topic: String,
    json_property: Option<&'static str>,
    /// A number in HA: `N` or an empty value must read unknown, not an error.
    numeric: bool,
    unit: String,
    device_class: &'static str,
    state_class: &'static str,
    category: &'static str,
}

impl Entity {
    fn sensor(object: &str, name: &str, icon: &'static str, topic: &str) -> Self {
        Entity {
            component: "sensor",
            object: object.to_string(),
            name: name.to_string(),
            icon,
            topic: topic.to_string(),
            json_property: None,
            numeric: false,
            unit: String::new(),
            device_class: "",
            state_class: "",
            category: "diagnostic",
        }
    }
    fn json(mut self, property: &'static str) -> Self {
        self.json_property = Some(property);
        self
    }
    fn number(mut self) -> Self {
        self.numeric = true;
        self
    }
    fn unit(mut self, unit: &str) -> Self {
        self.unit = unit.to_string();
        self
    }
    fn class(mut self, device: &'static str, state: &'static str) -> Self {
        self.device_class = device;
        self.state_class = state;
        self
    }
    fn category(mut self, category: &'static str) -> Self {
        self.category = category;
        self
    }
}

/// The entities, in v17's order (our `connection` sensor, which the spec adds, first).
fn entities(config: &Config) -> Vec<Entity> {
    let meter = MeterType::get(config.mqtt.home_assistant.meter_type);
    let net = "/device/info/network";
    let mut list = alloc::vec![Entity::sensor(
        "connection",
        "Connection",
        "network-outline",
        "/device/status/connection",
    )];
    for (object, name) in [
        ("ipv4_address", "IP Address"),
        ("mac_address", "MAC Address"),
        ("hostname", "Hostname"),
    ] {
        list.push(Entity::sensor(object, name, "network-outline", net).json(object));
    }
    list.push(
        Entity::sensor(
            "device_uptime",
            "Uptime",
            "clock-time-eight-outline",
            "/device/status/device_uptime",
        )
        .unit("s"),
    );
    for (object, name) in [
        ("heap_internal_free", "Memory Internal Free"),
        ("heap_spiram_free", "Memory External Free"),
    ] {
        list.push(
            Entity::sensor(object, name, "memory", "/device/status/heap")
                .json(object)
                .unit("B")
                .class("", "measurement"),
        );
    }
    list.push(
        Entity::sensor(
            "wlan_rssi",
            "WLAN Signal Strength",
            "wifi",
            "/device/status/wlan_rssi",
        )
        .unit("dBm")
        .class("signal_strength", "measurement"),
    );
    list.push(
        Entity::sensor(
            "chip_temp",
            "CPU Temperature",
            "thermometer",
            "/device/status/chip_temp",
        )
        .unit("°C")
        .class("temperature", "measurement"),
    );
    list.push(Entity::sensor(
        "ntp_syncstatus",
        "NTP Sync Status",
        "network-outline",
        "/device/status/ntp_syncstatus",
    ));
    list.push(Entity::sensor(
        "process_status",
        "Process Status",
        "list-status",
        "/process/status/process_status",
    ));
    list.push(
        Entity::sensor(
            "process_interval",
            "Process Interval",
            "clock-time-eight-outline",
            "/process/status/process_interval",
        )
        .unit("min"),
    );
    list.push(
        Entity::sensor(
            "process_time",
            "Process Time",
            "clock-time-eight-outline",
            "/process/status/process_time",
        )
        .unit("s")
        .class("", "measurement"),
    );
    list.push(Entity::sensor(
        "process_state",
        "Process State",
        "list-status",
        "/process/status/process_state",
    ));
    list.push(Entity {
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
    list.push(Entity::sensor(
        "process_error_value",
        "Process Error Value",
        "alert-outline",
        "/process/status/process_error",
    ));

    let interval = fixed(config.interval_min, 1);
    for seq in &config.sequences {
        let topic = format!("/process/data/{}/json", seq.id);
        let s = &seq.name;
        let per = |object: &str, name: &str, icon: &'static str| {
            Entity::sensor(
                &format!("{s}_{object}"),
                &format!("{s}: {name}"),
                icon,
                &topic,
            )
        };
        list.push(
            per("actual_value", "Actual Value", "gauge")
                .json("actual_value")
                .number()
                .unit(meter.value_unit)
                .class(
                    meter.device_class,
                    meter.actual_state_class(seq.post.allow_negative_rate),
                )
                .category(""),
        );
        list.push(
            per("fallback_value", "Fallback Value", "gauge")
                .json("fallback_value")
                .number()
                .unit(meter.value_unit)
                .class(meter.device_class, meter.other_value_state_class()),
        );
        list.push(
            per("raw_value", "Raw Value", "gauge")
                .json("raw_value")
                .number()
                .unit(meter.value_unit)
                .class(meter.device_class, meter.other_value_state_class()),
        );
        list.push(per("value_status", "Value Status", "alert-circle-outline").json("value_status"));
        list.push(
            per("rate_per_time_unit", "Rate", "swap-vertical")
                .json("rate_per_time_unit")
                .number()
                .unit(meter.rate_unit)
                .class(meter.rate_device_class(), "measurement")
                .category(""),
        );
        let per_interval = if meter.value_unit.is_empty() {
            String::new()
        } else {
            format!("{}/{interval}min", meter.value_unit)
        };
        list.push(
            per(
                "rate_per_interval",
                "Rate / Interval",
                "arrow-expand-vertical",
            )
            .json("rate_per_interval")
            .number()
            .unit(&per_interval)
            .class("", "measurement"),
        );
        list.push(
            per(
                "timestamp_processed",
                "Last Processed",
                "clock-time-eight-outline",
            )
            .json("timestamp_processed")
            .number()
            .class("timestamp", ""),
        );
    }
    list.push(Entity {
        component: "button",
        device_class: "update",
        category: "config",
        ..Entity::sensor(
            "cycle_start",
            "Manual Cycle Start",
            "timer-play-outline",
            "/process/ctrl/cycle_start",
        )
    });
    // Not in v17: the state of exposed pins (decision 12).
    for pin in config.gpio.iter().filter(|p| p.enabled && p.expose_to_mqtt) {
        let name = pin.topic_name();
        let topic = format!("/device/gpio/{name}/state");
        list.push(Entity {
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
            list.push(
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
    list
}

/// The `index`th discovery config topic and payload, if there is one: only that entity is rendered.
pub fn message_at(config: &Config, facts: &DeviceFacts, index: usize) -> Option<(String, String)> {
    let entity = entities(config).into_iter().nth(index)?;
    Some(message(&entity, config, facts))
}

/// Every discovery config topic and payload for this configuration.
pub fn discovery_messages(config: &Config, facts: &DeviceFacts) -> Vec<(String, String)> {
    entities(config)
        .iter()
        .map(|e| message(e, config, facts))
        .collect()
}

fn message(e: &Entity, config: &Config, facts: &DeviceFacts) -> (String, String) {
    let ha = &config.mqtt.home_assistant;
    let topic = format!(
        "{}/{}/{}/{}/config",
        ha.discovery_prefix,
        e.component,
        config.node_id(),
        e.object
    );
    (topic, payload(e, config, facts))
}

/// A value template that gives HA a number or nothing: `N`, an empty value or any other text reads unknown
/// (`None`) instead of an error in HA's log and a stale state (decision 49).
fn numeric_template(property: &str) -> String {
    format!("{{{{ value_json.{property} if value_json.{property} | is_number else None }}}}")
}

/// The same for a timestamp: nothing before the first cycle.
fn timestamp_template(property: &str) -> String {
    format!("{{{{ value_json.{property} if value_json.{property} else None }}}}")
}

fn payload(e: &Entity, config: &Config, facts: &DeviceFacts) -> String {
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
    match e.json_property {
        Some(p) if e.device_class == "timestamp" => put("val_tpl", json!(timestamp_template(p))),
        Some(p) if e.numeric => put("val_tpl", json!(numeric_template(p))),
        Some(p) => put("val_tpl", json!(format!("{{{{value_json.{p}}}}}"))),
        // A problem only after several errors or deviations in a row (-2 / 2); v17's template verbatim.
        None if e.object == "process_error" => put(
            "val_tpl",
            json!("{{ 'ON' if '-2' in value or '2' in value else 'OFF'}}"),
        ),
        None => {}
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
    // The whole device block in every payload (v17 sends it once per round): HA (current releases subscribe per
    // component) may see any of them first, and names its entities after the device only if it has the name
    // (decision 13).
    let mut dev = json!({
        "ids": [node],
        "name": node,
        "mdl": format!("meterrig meter ({})", facts.board_type),
        "mf": "meterrig",
        "sw": facts.firmware_version,
    });
    // HA refuses the whole payload for a configuration URL without a host.
    if !facts.ip_address.is_empty() && facts.ip_address != "0.0.0.0" {
        dev["cu"] = json!(format!("http://{}", facts.ip_address));
    }
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
        crate::config::merge(&mut base, extra);
        Config::from_partial(&base).unwrap().1
    }

    fn payloads(config: &Config) -> Vec<(String, Value)> {
        discovery_messages(config, &DeviceFacts::default())
            .into_iter()
            .map(|(t, p)| (t, serde_json::from_str(&p).unwrap()))
            .collect()
    }

    fn entity(config: &Config, object: &str) -> Value {
        payloads(config)
            .into_iter()
            .find(|(t, _)| t.ends_with(&format!("/{object}/config")))
            .unwrap_or_else(|| panic!("no {object}"))
            .1
    }

    #[test]
    fn meter_types_are_v17s_0_to_10() {
        let t = |i| MeterType::get(i);
        assert_eq!((t(1).device_class, t(1).rate_unit), ("water", "m³/h"));
        assert_eq!((t(5).device_class, t(5).value_unit), ("gas", "m³"));
        assert_eq!(
            (t(8).device_class, t(8).value_unit, t(8).rate_unit),
            ("energy", "kWh", "kW")
        );
        assert_eq!((t(10).value_unit, t(10).rate_unit), ("GJ", "GJ/h"));
        assert!(t(1).rate_per_hour() && !t(3).rate_per_hour() && !t(0).rate_per_hour());
        assert_eq!(t(11), t(0), "beyond the table: no units");
        // The rate's class only where HA takes the unit.
        assert_eq!(t(1).rate_device_class(), "volume_flow_rate");
        assert_eq!(t(3).rate_device_class(), "volume_flow_rate");
        assert_eq!(t(2).rate_device_class(), "", "L/h: not in HA 2024.3");
        assert_eq!(t(8).rate_device_class(), "power");
        assert_eq!(t(10).rate_device_class(), "", "GJ/h is no power unit");
        assert_eq!(t(0).rate_device_class(), "", "no unit");
    }

    #[test]
    fn entities_come_in_v17s_order_under_prefix_component_node_object() {
        let c = config(json!({"mqtt": {"homeassistant": {"discoveryprefix": "ha"}}}));
        let topics: Vec<String> = payloads(&c).into_iter().map(|(t, _)| t).collect();
        let objects: Vec<&str> = topics
            .iter()
            .map(|t| t.trim_end_matches("/config").rsplit('/').next().unwrap())
            .collect();
        assert_eq!(
            objects,
            [
                "connection",
                "ipv4_address",
                "mac_address",
                "hostname",
                "device_uptime",
                "heap_internal_free",
                "heap_spiram_free",
                "wlan_rssi",
                "chip_temp",
                "ntp_syncstatus",
                "process_status",
                "process_interval",
                "process_time",
                "process_state",
                "process_error",
                "process_error_value",
                "main_actual_value",
                "main_fallback_value",
                "main_raw_value",
                "main_value_status",
                "main_rate_per_time_unit",
                "main_rate_per_interval",
                "main_timestamp_processed",
                "cycle_start"
            ]
        );
        assert_eq!(topics[0], "ha/sensor/node/connection/config");
        assert!(topics.contains(&"ha/binary_sensor/node/process_error/config".to_string()));
        assert!(topics.contains(&"ha/button/node/cycle_start/config".to_string()));
    }

    #[test]
    fn every_payload_carries_the_whole_device() {
        let facts = DeviceFacts {
            board_type: "B".into(),
            firmware_version: "v1".into(),
            ip_address: "10.0.0.2".into(),
        };
        for (_, p) in discovery_messages(&config(json!({})), &facts) {
            let v: Value = serde_json::from_str(&p).unwrap();
            assert_eq!(
                v["dev"],
                json!({"ids": ["node"], "name": "node", "mdl": "meterrig meter (B)", "mf": "meterrig",
                       "sw": "v1", "cu": "http://10.0.0.2"})
            );
        }
        let no_ip = DeviceFacts::default();
        let v: Value =
            serde_json::from_str(&discovery_messages(&config(json!({})), &no_ip)[0].1).unwrap();
        assert!(v["dev"].get("cu").is_none(), "no URL without an address");
    }

    #[test]
    fn rate_per_interval_is_v17s_name_with_the_interval_in_the_unit() {
        let c = config(json!({"operationmode": {"automaticprocessinterval": 2.5}}));
        let v = entity(&c, "main_rate_per_interval");
        assert_eq!(v["name"], "main: Rate / Interval");
        assert_eq!(v["unit_of_meas"], "m³/2.5min");
        let none = config(json!({"mqtt": {"homeassistant": {"metertype": 0}}}));
        assert!(entity(&none, "main_rate_per_interval")
            .get("unit_of_meas")
            .is_none());
    }

    #[test]
    fn numbers_read_unknown_when_the_value_is_not_one() {
        let v = entity(&config(json!({})), "main_actual_value");
        assert_eq!(
            v["val_tpl"],
            "{{ value_json.actual_value if value_json.actual_value | is_number else None }}"
        );
        let v = entity(&config(json!({})), "main_value_status");
        assert_eq!(v["val_tpl"], "{{value_json.value_status}}");
        let v = entity(&config(json!({})), "main_timestamp_processed");
        assert_eq!(v["dev_cla"], "timestamp");
        assert!(v["val_tpl"].as_str().unwrap().ends_with("else None }}"));
    }

    #[test]
    fn state_classes_are_ones_ha_allows() {
        let c = config(json!({}));
        assert_eq!(
            entity(&c, "main_actual_value")["stat_cla"],
            "total_increasing"
        );
        assert_eq!(entity(&c, "main_raw_value")["stat_cla"], "total");
        assert_eq!(entity(&c, "main_fallback_value")["stat_cla"], "total");
        let negative = config(
            json!({"postprocessing": {"sequence": [{"sequenceid": 0, "allownegativerate": true}]}}),
        );
        assert_eq!(entity(&negative, "main_actual_value")["stat_cla"], "total");
        let generic = config(json!({"mqtt": {"homeassistant": {"metertype": 0}},
            "postprocessing": {"sequence": [{"sequenceid": 0, "allownegativerate": true}]}}));
        assert_eq!(
            entity(&generic, "main_actual_value")["stat_cla"],
            "measurement"
        );
        assert_eq!(
            entity(&generic, "main_raw_value")["stat_cla"],
            "measurement"
        );
    }

    #[test]
    fn v17s_button_and_problem_sensor() {
        let c = config(json!({}));
        let b = entity(&c, "cycle_start");
        assert_eq!(
            (b["dev_cla"].as_str(), b["ent_cat"].as_str()),
            (Some("update"), Some("config"))
        );
        assert_eq!(b["cmd_t"], "~/process/ctrl/cycle_start");
        let v = entity(&c, "process_error");
        assert_eq!(v["dev_cla"], "problem");
        assert_eq!(
            v["val_tpl"],
            "{{ 'ON' if '-2' in value or '2' in value else 'OFF'}}"
        );
        assert!(v.get("ent_cat").is_none());
        assert_eq!(entity(&c, "heap_internal_free")["unit_of_meas"], "B");
    }

    #[test]
    fn one_entity_is_rendered_at_a_time_as_the_list_has_it() {
        let c = config(json!({}));
        let all = discovery_messages(&c, &DeviceFacts::default());
        for (i, m) in all.iter().enumerate() {
            assert_eq!(message_at(&c, &DeviceFacts::default(), i).as_ref(), Some(m));
        }
        assert_eq!(message_at(&c, &DeviceFacts::default(), all.len()), None);
    }
}
