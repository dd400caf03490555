//! The device configuration: the reference `config.json` schema, its defaults, and validation that names the path
//! of every bad key. The JSON document is the source of truth (it is what is persisted and shown); [`Config`] is
//! its validated, typed view.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde_json::{Map, Value};

use crate::gpio::PinMode;
use crate::readout::DigitModel;
use crate::time::TimeZone;

/// What a redacted secret reads as; posting it back keeps the stored secret.
pub const REDACTED: &str = "******";

/// What a sent-back secret may read to keep the stored one: the reference's placeholder (`configClass.cpp`) and
/// the 8 stars earlier meterrig versions showed.
pub fn is_redacted(text: &str) -> bool {
    text == REDACTED || text == "********"
}

/// The reference's zone when none is configured (`time_sntp.cpp` initTime).
pub const DEFAULT_TIMEZONE: &str = "CET-1CEST,M3.5.0,M10.5.0/3";
/// Keys whose values are secrets wherever they appear.
const SECRET_KEYS: &[&str] = &["password", "clientkey", "token", "apikey"];

/// One bad key: where, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

/// A refused configuration: every bad key with its path. The running configuration is left unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub errors: Vec<FieldError>,
}

impl ConfigError {
    fn one(path: &str, message: impl Into<String>) -> Self {
        ConfigError {
            errors: alloc::vec![FieldError {
                path: path.to_string(),
                message: message.into()
            }],
        }
    }

    /// The first bad key's path (there is always at least one).
    pub fn path(&self) -> &str {
        self.errors.first().map_or("", |e| e.path.as_str())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.path, e.message)?;
        }
        Ok(())
    }
}

#[cfg(feature = "std")]
extern crate std;
#[cfg(feature = "std")]
impl std::error::Error for ConfigError {}

/// `operationmode.opmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpMode {
    Setup,
    Manual,
    Automatic,
}

/// `postprocessing.sequence[].maxratechecktype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateCheck {
    Off,
    PerMinute,
    PerInterval,
}

/// `mqtt.processdatanotation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notation {
    Json,
    Topics,
    JsonAndTopics,
}

impl Notation {
    pub fn json(self) -> bool {
        matches!(self, Notation::Json | Notation::JsonAndTopics)
    }
    pub fn topics(self) -> bool {
        matches!(self, Notation::Topics | Notation::JsonAndTopics)
    }
}

/// Post-processing parameters of one sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct PostProcessing {
    pub decimal_shift: i32,
    pub analog_digit_sync_value: f64,
    pub extended_resolution: bool,
    pub ignore_leading_nan: bool,
    pub check_digit_increase_consistency: bool,
    pub max_rate_check: RateCheck,
    pub max_rate: f64,
    pub allow_negative_rate: bool,
    pub use_fallback_value: bool,
    /// Minutes a stored fallback value stays valid across a reboot.
    pub fallback_value_age_startup: u32,
}

impl Default for PostProcessing {
    fn default() -> Self {
        PostProcessing {
            decimal_shift: 0,
            analog_digit_sync_value: 9.2,
            extended_resolution: true,
            ignore_leading_nan: false,
            check_digit_increase_consistency: false,
            max_rate_check: RateCheck::PerMinute,
            max_rate: 0.15,
            allow_negative_rate: false,
            use_fallback_value: true,
            fallback_value_age_startup: 720,
        }
    }
}

/// One number sequence: its id and name, its ROIs, its post-processing.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceConfig {
    pub id: u32,
    pub name: String,
    pub digit_rois: Vec<String>,
    pub analog_rois: Vec<String>,
    pub post: PostProcessing,
}

/// A parsed `mqtt.uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttUri {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl MqttUri {
    /// `mqtt://host[:port]` or `mqtts://host[:port]` (default ports 1883 / 8883).
    pub fn parse(uri: &str) -> Result<MqttUri, String> {
        let (tls, rest) = if let Some(r) = uri.strip_prefix("mqtt://") {
            (false, r)
        } else if let Some(r) = uri.strip_prefix("mqtts://") {
            (true, r)
        } else {
            return Err("must start with mqtt:// or mqtts://".to_string());
        };
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') || authority.contains('@') || authority.contains(' ') {
            return Err("must be scheme://host[:port] without user info or path".to_string());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !authority.starts_with('[') || h.ends_with(']') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("port '{p}' is not a number 1..65535"))?;
                if port == 0 {
                    return Err("port must be 1..65535".to_string());
                }
                (h, port)
            }
            _ => (authority, if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() {
            return Err("host is missing".to_string());
        }
        Ok(MqttUri {
            tls,
            host: host.to_string(),
            port,
        })
    }
}

/// `mqtt.homeassistant`.
#[derive(Debug, Clone, PartialEq)]
pub struct HomeAssistant {
    pub discovery_enabled: bool,
    pub discovery_prefix: String,
    pub status_topic: String,
    pub meter_type: u8,
    pub retain_discovery: bool,
}

/// `mqtt`.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttConfig {
    pub enabled: bool,
    pub uri: Option<MqttUri>,
    pub main_topic: String,
    pub client_id: String,
    /// 0 none, 1 basic (user/password), 2 TLS client certificate.
    pub auth_mode: u8,
    pub username: String,
    pub password: String,
    pub ca_cert: String,
    pub client_cert: String,
    pub client_key: String,
    pub notation: Notation,
    pub retain_process_data: bool,
    pub home_assistant: HomeAssistant,
    /// Seconds (`mqtt.keepalive`, our extension): the reference sends 120 s whatever it intends (decision 29).
    pub keepalive_s: u16,
}

/// One entry of `gpio.gpiopin`.
#[derive(Debug, Clone, PartialEq)]
pub struct PinConfig {
    pub number: u8,
    pub enabled: bool,
    pub name: String,
    pub mode: PinMode,
    pub debounce_ms: u32,
    pub pwm_frequency: u32,
    pub expose_to_mqtt: bool,
    pub expose_to_rest: bool,
}

impl PinConfig {
    /// The pin's name in topics: its `pinname`, or `gpio<N>` when empty.
    pub fn topic_name(&self) -> String {
        if self.name.is_empty() {
            format!("gpio{}", self.number)
        } else {
            self.name.clone()
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub opmode: OpMode,
    /// `digit.enabled` / `analog.enabled`: the cycle has an ROI processing step for them.
    pub digit_enabled: bool,
    pub analog_enabled: bool,
    /// Minutes between automatic cycles.
    pub interval_min: f64,
    pub digit_model: DigitModel,
    pub sequences: Vec<SequenceConfig>,
    pub mqtt: MqttConfig,
    pub gpio: Vec<PinConfig>,
    pub hostname: String,
    pub timezone: TimeZone,
    pub ntp: NtpConfig,
}

/// `network.time.ntp`: where the time comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtpConfig {
    pub sync_enabled: bool,
    /// Host name or address, optionally `:port` (an extension: the reference always uses 123); empty means the
    /// reference's default `pool.ntp.org`.
    pub server: String,
    /// Automatic processing waits for the first time sync (a manual trigger does not wait).
    pub start_interlock: bool,
}

impl NtpConfig {
    /// The server to ask, as `(host, port)`.
    pub fn server(&self) -> (String, u16) {
        let text = if self.server.is_empty() {
            "pool.ntp.org"
        } else {
            self.server.as_str()
        };
        match text.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => {
                (host.to_string(), port.parse().unwrap_or(123))
            }
            _ => (text.to_string(), 123),
        }
    }
}

/// The top-level sections of [`default_json`]: a stored document with all of them is whole.
const SECTIONS: [&str; 9] = [
    "config",
    "operationmode",
    "numbersequences",
    "digit",
    "analog",
    "postprocessing",
    "mqtt",
    "gpio",
    "network",
];

/// The reference firmware's defaults (upstream `config_json_default_expected`), for the sections the device uses.
/// Kept as text: built with `json!` they were 6 KiB of code in the ESP32-C3 image, as text under 2 KiB.
pub const DEFAULTS: &str = include_str!("defaults.json");

/// [`DEFAULTS`] parsed.
pub fn default_json() -> Value {
    crate::json::parse_unique(DEFAULTS.as_bytes()).unwrap_or_else(|_| Value::Object(Map::new()))
}

/// The Wi-Fi station's credentials (`network.wlan`), which a board needs before the network and the firmware run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WlanCredentials {
    pub ssid: String,
    pub password: String,
}

/// `network.wlan` of a stored config document; `None` without a document or an SSID.
pub fn wlan_credentials(stored: &str) -> Option<WlanCredentials> {
    let doc = crate::json::parse_unique(stored.as_bytes()).ok()?;
    let text = |key: &str| {
        get_path(&doc, &format!("network.wlan.{key}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let ssid = text("ssid");
    (!ssid.is_empty()).then(|| WlanCredentials {
        ssid,
        password: text("password"),
    })
}

/// Why a time server setting cannot be used, if so: a host name or address (IPv6 in brackets is not supported),
/// optionally `:port`.
fn bad_time_server(server: &str) -> Option<&'static str> {
    let (host, port) = match server.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (server, None),
    };
    if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return Some("the port after ':' must be 1..65535");
    }
    let ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
    (!ok || (host.is_empty() && port.is_some()))
        .then_some("must be a host name or IPv4 address, optionally with ':port'")
}

/// Deep-merges `patch` into `base`: objects merge key by key, everything else (arrays too) replaces.
/// A redacted secret in the patch keeps the secret already in `base`. The patch's parts move into `base` instead of
/// being copied (a config document in a device's small heap exists once, not twice).
pub fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.as_str().is_some_and(is_redacted)
                    && SECRET_KEYS.contains(&k.as_str())
                    && b.contains_key(&k)
                {
                    continue;
                }
                match b.get_mut(&k) {
                    // Merging into what is there is replacing it unless both are objects (the arm below).
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, p) => *b = p,
    }
}

/// A copy of `config` with every secret replaced by [`REDACTED`] (empty secrets stay empty).
pub fn redacted(config: &Value) -> Value {
    let mut copy = config.clone();
    redact(&mut copy);
    copy
}

/// Replaces every secret of `config` by [`REDACTED`] in place (empty secrets stay empty).
pub fn redact(config: &mut Value) {
    match config {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                let secret =
                    SECRET_KEYS.contains(&k.as_str()) && v.as_str().is_some_and(|s| !s.is_empty());
                if secret {
                    *v = Value::String(REDACTED.to_string());
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

/// Splits `a.b[2].c` or `a.b.2.c` into segments; an empty key (`a..b`, `.`, `a.`) or a malformed index is refused.
pub fn path_segments(path: &str) -> Result<Vec<String>, ConfigError> {
    let bad = |why: &str| ConfigError::one(path, format!("not a config path: {why}"));
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (key, mut indices) = part.split_at(part.find('[').unwrap_or(part.len()));
        if key.is_empty() {
            return Err(bad(
                "empty key (write keys separated by single dots, e.g. mqtt.maintopic)",
            ));
        }
        segments.push(key.to_string());
        while !indices.is_empty() {
            let Some((index, rest)) = indices.strip_prefix('[').and_then(|i| i.split_once(']'))
            else {
                return Err(bad("an index is written [n]"));
            };
            if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("an index is written [n]"));
            }
            segments.push(index.to_string());
            indices = rest;
        }
    }
    Ok(segments)
}

/// The value at a dotted path (`mqtt.maintopic`, `gpio.gpiopin[0].pinmode`); `None` for a path that is not one.
pub fn get_path<'a>(config: &'a Value, path: &str) -> Option<&'a Value> {
    let mut v = config;
    for seg in path_segments(path).ok()? {
        v = match v {
            Value::Object(m) => m.get(&seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// The value to store at `path` when a person sends `value` there: a secret sent back as [`REDACTED`] (what
/// `config get` showed) keeps the secret already stored, as [`merge`] does.
pub fn keep_redacted_secrets(config: &Value, path: &str, mut value: Value) -> Value {
    fn restore(new: &mut Value, old: &Value, key: Option<&str>) {
        match (new, old) {
            (Value::String(s), Value::String(_))
                if is_redacted(s) && key.is_some_and(|k| SECRET_KEYS.contains(&k)) =>
            {
                *s = old.as_str().unwrap_or_default().to_string();
            }
            (Value::Object(n), Value::Object(o)) => {
                for (k, v) in n.iter_mut() {
                    if let Some(old) = o.get(k) {
                        restore(v, old, Some(k));
                    }
                }
            }
            (Value::Array(n), Value::Array(o)) => {
                for (v, old) in n.iter_mut().zip(o) {
                    restore(v, old, None);
                }
            }
            _ => {}
        }
    }
    if let (Some(old), Ok(segments)) = (get_path(config, path), path_segments(path)) {
        restore(&mut value, old, segments.last().map(String::as_str));
    }
    value
}

/// Sets the value at a dotted path. The parent must exist; a new key may be added to an existing object.
pub fn set_path(config: &mut Value, path: &str, value: Value) -> Result<(), ConfigError> {
    let segs = path_segments(path)?;
    let Some((last, parents)) = segs.split_last() else {
        return Err(ConfigError::one(path, "empty path"));
    };
    let mut v = config;
    for seg in parents {
        v = match v {
            Value::Object(m) => m.get_mut(seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| ConfigError::one(path, format!("no such key '{seg}'")))?;
    }
    match v {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let slot = last.parse::<usize>().ok().and_then(|i| a.get_mut(i));
            let slot =
                slot.ok_or_else(|| ConfigError::one(path, format!("no element '{last}'")))?;
            *slot = value;
            Ok(())
        }
        _ => Err(ConfigError::one(path, "parent is not an object or array")),
    }
}

/// Checks an MQTT topic used for publishing: no wildcards, no empty levels, no leading/trailing `/`.
pub fn check_topic(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() {
        return Err("must not be empty");
    }
    if topic.contains('+') || topic.contains('#') {
        return Err("must not contain the wildcards '+' or '#'");
    }
    if topic.starts_with('/') || topic.ends_with('/') {
        return Err("must not start or end with '/'");
    }
    if topic.contains("//") {
        return Err("must not contain empty levels ('//')");
    }
    if topic.chars().any(|c| c == '\0' || c.is_control()) {
        return Err("must not contain control characters");
    }
    if topic.len() > 128 {
        return Err("must be at most 128 characters");
    }
    Ok(())
}

/// Home Assistant accepts only `[a-zA-Z0-9_-]` in node and object ids.
pub fn is_ha_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Config {
    /// Validates a complete configuration document (defaults already merged in).
    pub fn from_json(doc: &Value) -> Result<Config, ConfigError> {
        let mut r = Reader { errors: Vec::new() };
        let config = r.config(doc);
        if r.errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { errors: r.errors })
        }
    }

    /// Merges a (partial) document over the defaults and validates it: returns the full document and its view.
    pub fn from_partial(partial: &Value) -> Result<(Value, Config), ConfigError> {
        Config::from_document(partial.clone())
    }

    /// The config of a document read back from the flash. A device saves whole documents, which need no defaults
    /// merged in (that would hold a second whole document in a small heap at boot); a partial one gets them.
    pub fn from_stored(doc: Value) -> Result<(Value, Config), ConfigError> {
        let whole = doc
            .as_object()
            .is_some_and(|o| SECTIONS.iter().all(|k| o.contains_key(*k)));
        if whole {
            let config = Config::from_json(&doc)?;
            Ok((doc, config))
        } else {
            Config::from_document(doc)
        }
    }

    /// [`Config::from_partial`] of a document the caller gives away (it is merged over the defaults in place).
    pub fn from_document(partial: Value) -> Result<(Value, Config), ConfigError> {
        if !partial.is_object() {
            return Err(ConfigError::one("$", "configuration must be a JSON object"));
        }
        let mut doc = default_json();
        merge(&mut doc, partial);
        let config = Config::from_json(&doc)?;
        Ok((doc, config))
    }

    /// The sequence with this name.
    pub fn sequence(&self, name: &str) -> Option<&SequenceConfig> {
        self.sequences.iter().find(|s| s.name == name)
    }

    /// Node id for Home Assistant: the last level of the main topic.
    pub fn node_id(&self) -> &str {
        self.mqtt
            .main_topic
            .rsplit('/')
            .next()
            .unwrap_or(&self.mqtt.main_topic)
    }
}

struct Reader {
    errors: Vec<FieldError>,
}

const OPMODE_KEYS: &[&str] = &["opmode", "automaticprocessinterval", "usedemoimages"];
const MQTT_KEYS: &[&str] = &[
    "keepalive",
    "enabled",
    "uri",
    "maintopic",
    "clientid",
    "authmode",
    "username",
    "password",
    "tls",
    "processdatanotation",
    "retainprocessdata",
    "homeassistant",
];
const HA_KEYS: &[&str] = &[
    "discoveryenabled",
    "discoveryprefix",
    "statustopic",
    "metertype",
    "retaindiscovery",
];
const TLS_KEYS: &[&str] = &["cacert", "clientcert", "clientkey"];
const POST_KEYS: &[&str] = &[
    "sequenceid",
    "sequencename",
    "decimalshift",
    "analogdigitsyncvalue",
    "extendedresolution",
    "ignoreleadingnan",
    "checkdigitincreaseconsistency",
    "maxratechecktype",
    "maxrate",
    "allownegativerate",
    "usefallbackvalue",
    "fallbackvalueagestartup",
];
const PIN_KEYS: &[&str] = &[
    "gpionumber",
    "gpiousage",
    "pinenabled",
    "pinname",
    "pinmode",
    "capturemode",
    "inputdebouncetime",
    "pwmfrequency",
    "exposetomqtt",
    "exposetorest",
    "smartled",
    "intensitycorrectionfactor",
];

impl Reader {
    fn err(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn obj<'a>(&mut self, parent: &'a Value, path: &str) -> Option<&'a Map<String, Value>> {
        match get_path(parent, path) {
            Some(Value::Object(m)) => Some(m),
            Some(_) => {
                self.err(path, "must be an object");
                None
            }
            None => None,
        }
    }

    fn known(&mut self, obj: &Map<String, Value>, path: &str, keys: &[&str]) {
        for k in obj.keys() {
            if !keys.contains(&k.as_str()) {
                self.err(
                    &format!("{path}.{k}"),
                    format!("unknown key (known: {})", keys.join(", ")),
                );
            }
        }
    }

    fn bool(
        &mut self,
        obj: Option<&Map<String, Value>>,
        path: &str,
        key: &str,
        default: bool,
    ) -> bool {
        match obj.and_then(|o| o.get(key)) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.err(&format!("{path}.{key}"), "must be true or false");
                default
            }
        }
    }

    fn string(
        &mut self,
        obj: Option<&Map<String, Value>>,
        path: &str,
        key: &str,
        default: &str,
    ) -> String {
        match obj.and_then(|o| o.get(key)) {
            None => default.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                self.err(&format!("{path}.{key}"), "must be a string");
                default.to_string()
            }
        }
    }

    /// A number, also accepted as a numeric string (the reference writes some numbers as strings, e.g. "9.2").
    fn number(
        &mut self,
        obj: Option<&Map<String, Value>>,
        path: &str,
        key: &str,
        default: f64,
        min: f64,
        max: f64,
    ) -> f64 {
        let read = |v: &Value| {
            match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => crate::decimal::parse(s.trim()),
                _ => None,
            }
            .filter(|v| v.is_finite())
        };
        self.bounded(obj, path, key, (default, min, max), read, "a number")
    }

    /// A whole number, also accepted as a string of one.
    fn int(
        &mut self,
        obj: Option<&Map<String, Value>>,
        path: &str,
        key: &str,
        default: i64,
        min: i64,
        max: i64,
    ) -> i64 {
        let read = |v: &Value| match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        self.bounded(obj, path, key, (default, min, max), read, "a whole number")
    }

    /// The value at `key` as `read` takes it, within `min..=max`; absent: the default; unreadable or out of range:
    /// an error at the key's path, and the default.
    fn bounded<T: PartialOrd + fmt::Display + Copy>(
        &mut self,
        obj: Option<&Map<String, Value>>,
        path: &str,
        key: &str,
        (default, min, max): (T, T, T),
        read: impl Fn(&Value) -> Option<T>,
        kind: &str,
    ) -> T {
        let Some(raw) = obj.and_then(|o| o.get(key)) else {
            return default;
        };
        let full = format!("{path}.{key}");
        match read(raw) {
            Some(v) if v >= min && v <= max => v,
            Some(v) => {
                self.err(&full, format!("{v} is out of range {min}..{max}"));
                default
            }
            None => {
                self.err(&full, format!("must be {kind}"));
                default
            }
        }
    }

    fn array<'a>(
        &mut self,
        obj: Option<&'a Map<String, Value>>,
        path: &str,
        key: &str,
    ) -> &'a [Value] {
        match obj.and_then(|o| o.get(key)) {
            None => &[],
            Some(Value::Array(a)) => a,
            Some(_) => {
                self.err(&format!("{path}.{key}"), "must be an array");
                &[]
            }
        }
    }

    fn topic(
        &mut self,
        obj: Option<&Map<String, Value>>,
        path: &str,
        key: &str,
        default: &str,
    ) -> String {
        let t = self.string(obj, path, key, default);
        if let Err(why) = check_topic(&t) {
            self.err(&format!("{path}.{key}"), format!("'{t}' {why}"));
        }
        t
    }

    fn config(&mut self, doc: &Value) -> Config {
        if !doc.is_object() {
            self.err("$", "configuration must be a JSON object");
        }
        let op = self.obj(doc, "operationmode");
        if let Some(o) = op {
            self.known(o, "operationmode", OPMODE_KEYS);
        }
        let opmode = match self.int(op, "operationmode", "opmode", -1, -1, 1) {
            0 => OpMode::Manual,
            1 => OpMode::Automatic,
            _ => OpMode::Setup,
        };
        let interval_min = self.number(
            op,
            "operationmode",
            "automaticprocessinterval",
            1.0,
            0.01,
            1440.0,
        );

        let digit = self.obj(doc, "digit");
        let digit_model = match self.string(digit, "digit", "cnntype", "class100").as_str() {
            "class100" => DigitModel::Class100,
            "class11" => DigitModel::Class11,
            other => {
                self.err(
                    "digit.cnntype",
                    format!("'{other}' is not one of class100, class11"),
                );
                DigitModel::Class100
            }
        };
        let digit_enabled = self.bool(digit, "digit", "enabled", true);
        let analog = self.obj(doc, "analog");
        let analog_enabled = self.bool(analog, "analog", "enabled", true);

        let sequences = self.sequences(doc, digit_enabled, analog_enabled);
        let mqtt = self.mqtt(doc);
        let gpio = self.gpio(doc);

        let wlan = self.obj(doc, "network.wlan");
        let hostname = self.string(wlan, "network.wlan", "hostname", "watermeter");
        if hostname.is_empty()
            || !hostname
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            self.err(
                "network.wlan.hostname",
                "must be letters, digits and '-' only",
            );
        }
        self.string(wlan, "network.wlan", "ssid", "");
        self.string(wlan, "network.wlan", "password", "");
        let time = self.obj(doc, "network.time");
        let tz_text = self.string(time, "network.time", "timezone", "");
        // An empty zone is the reference's default zone, not UTC (`time_sntp.cpp` initTime).
        let effective_tz = if tz_text.is_empty() {
            DEFAULT_TIMEZONE
        } else {
            tz_text.as_str()
        };
        let timezone = match TimeZone::parse(effective_tz) {
            Ok(tz) => tz,
            Err(e) => {
                self.err(
                    "network.time.timezone",
                    format!("'{tz_text}' is not a POSIX TZ rule: {}", e.0),
                );
                TimeZone::UTC
            }
        };
        let ntp_obj = self.obj(doc, "network.time.ntp");
        let ntp = NtpConfig {
            sync_enabled: self.bool(ntp_obj, "network.time.ntp", "timesyncenabled", true),
            server: self.string(ntp_obj, "network.time.ntp", "timeserver", ""),
            start_interlock: self.bool(ntp_obj, "network.time.ntp", "processstartinterlock", true),
        };
        if let Some(why) = bad_time_server(&ntp.server) {
            self.err("network.time.ntp.timeserver", why);
        }
        Config {
            opmode,
            digit_enabled,
            analog_enabled,
            interval_min,
            digit_model,
            sequences,
            mqtt,
            gpio,
            hostname,
            timezone,
            ntp,
        }
    }

    fn sequences(
        &mut self,
        doc: &Value,
        digit_enabled: bool,
        analog_enabled: bool,
    ) -> Vec<SequenceConfig> {
        let ns = self.obj(doc, "numbersequences");
        let list = self.array(ns, "numbersequences", "sequence");
        if list.is_empty() {
            self.err(
                "numbersequences.sequence",
                "at least one number sequence is required",
            );
        }
        if list.len() > 10 {
            self.err(
                "numbersequences.sequence",
                "at most 10 number sequences are supported",
            );
        }
        let mut out: Vec<SequenceConfig> = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let path = format!("numbersequences.sequence[{i}]");
            let Some(o) = item.as_object() else {
                self.err(&path, "must be an object");
                continue;
            };
            let given = o.contains_key("sequenceid");
            if !given {
                self.err(&format!("{path}.sequenceid"), "is required");
            }
            let id = self.int(Some(o), &path, "sequenceid", 0, 0, 999);
            let name = self.string(Some(o), &path, "sequencename", "");
            if !is_ha_id(&name) {
                self.err(
                    &format!("{path}.sequencename"),
                    format!("'{name}' must be non-empty [a-zA-Z0-9_-]"),
                );
            }
            if given && out.iter().any(|s| s.id as i64 == id) {
                self.err(&format!("{path}.sequenceid"), format!("{id} is used twice"));
            }
            if out.iter().any(|s| s.name == name) {
                self.err(
                    &format!("{path}.sequencename"),
                    format!("'{name}' is used twice"),
                );
            }
            let id = u32::try_from(id).unwrap_or(0);
            out.push(SequenceConfig {
                id,
                name,
                digit_rois: Vec::new(),
                analog_rois: Vec::new(),
                post: PostProcessing::default(),
            });
        }
        for (section, enabled) in [("digit", digit_enabled), ("analog", analog_enabled)] {
            let sec = self.obj(doc, section);
            let entries = self.array(sec, section, "sequence");
            for (i, item) in entries.iter().enumerate() {
                let path = format!("{section}.sequence[{i}]");
                let Some(o) = item.as_object() else {
                    self.err(&path, "must be an object");
                    continue;
                };
                let id = self.int(Some(o), &path, "sequenceid", -1, 0, 999);
                let Some(seq) = out.iter_mut().position(|s| s.id as i64 == id) else {
                    self.err(
                        &format!("{path}.sequenceid"),
                        format!("{id} is not a configured number sequence"),
                    );
                    continue;
                };
                let rois = self.array(Some(o), &path, "roi");
                let mut names: Vec<String> = Vec::new();
                for (j, roi) in rois.iter().enumerate() {
                    let rpath = format!("{path}.roi[{j}]");
                    let name = match roi {
                        Value::Object(r) => self.string(Some(r), &rpath, "name", ""),
                        _ => {
                            self.err(&rpath, "must be an object with a \"name\"");
                            continue;
                        }
                    };
                    if name.is_empty() {
                        self.err(&format!("{rpath}.name"), "must not be empty");
                    } else if names.contains(&name) {
                        self.err(
                            &format!("{rpath}.name"),
                            format!("'{name}' is used twice in this sequence"),
                        );
                    }
                    names.push(name);
                }
                if enabled {
                    if section == "digit" {
                        out[seq].digit_rois = names;
                    } else {
                        out[seq].analog_rois = names;
                    }
                }
            }
        }
        let pp = self.obj(doc, "postprocessing");
        let entries = self.array(pp, "postprocessing", "sequence");
        for (i, item) in entries.iter().enumerate() {
            let path = format!("postprocessing.sequence[{i}]");
            let Some(o) = item.as_object() else {
                self.err(&path, "must be an object");
                continue;
            };
            self.known(o, &path, POST_KEYS);
            let id = self.int(Some(o), &path, "sequenceid", -1, 0, 999);
            let post = self.post(o, &path);
            match out.iter_mut().find(|s| s.id as i64 == id) {
                Some(seq) => seq.post = post,
                None => self.err(
                    &format!("{path}.sequenceid"),
                    format!("{id} is not a configured number sequence"),
                ),
            }
        }
        out
    }

    fn post(&mut self, o: &Map<String, Value>, path: &str) -> PostProcessing {
        let d = PostProcessing::default();
        let o = Some(o);
        PostProcessing {
            decimal_shift: self.int(o, path, "decimalshift", 0, -9, 9) as i32,
            analog_digit_sync_value: self.number(
                o,
                path,
                "analogdigitsyncvalue",
                d.analog_digit_sync_value,
                6.0,
                9.9,
            ),
            extended_resolution: self.bool(o, path, "extendedresolution", d.extended_resolution),
            ignore_leading_nan: self.bool(o, path, "ignoreleadingnan", d.ignore_leading_nan),
            check_digit_increase_consistency: self.bool(
                o,
                path,
                "checkdigitincreaseconsistency",
                false,
            ),
            max_rate_check: match self.int(o, path, "maxratechecktype", 1, 0, 2) {
                0 => RateCheck::Off,
                2 => RateCheck::PerInterval,
                _ => RateCheck::PerMinute,
            },
            max_rate: self.number(o, path, "maxrate", d.max_rate, 0.0, 1e12),
            allow_negative_rate: self.bool(o, path, "allownegativerate", d.allow_negative_rate),
            use_fallback_value: self.bool(o, path, "usefallbackvalue", d.use_fallback_value),
            fallback_value_age_startup: self.int(
                o,
                path,
                "fallbackvalueagestartup",
                720,
                0,
                525_600,
            ) as u32,
        }
    }

    fn mqtt(&mut self, doc: &Value) -> MqttConfig {
        let m = self.obj(doc, "mqtt");
        if let Some(o) = m {
            self.known(o, "mqtt", MQTT_KEYS);
        }
        let p = "mqtt";
        let enabled = self.bool(m, p, "enabled", false);
        let uri_text = self.string(m, p, "uri", "");
        let uri = if uri_text.is_empty() {
            if enabled {
                self.err(
                    "mqtt.uri",
                    "is required when MQTT is enabled (e.g. mqtt://192.168.1.2:1883)",
                );
            }
            None
        } else {
            match MqttUri::parse(&uri_text) {
                Ok(u) => Some(u),
                Err(why) => {
                    self.err("mqtt.uri", format!("'{uri_text}' {why}"));
                    None
                }
            }
        };
        let main_topic = self.topic(m, p, "maintopic", "watermeter");
        let client_id = self.string(m, p, "clientid", "watermeter");
        if client_id.is_empty()
            || client_id.len() > 64
            || client_id.chars().any(char::is_whitespace)
        {
            self.err("mqtt.clientid", "must be 1..64 characters without spaces");
        }
        let auth_mode = self.int(m, p, "authmode", 0, 0, 2) as u8;
        let username = self.string(m, p, "username", "");
        let password = self.string(m, p, "password", "");
        if auth_mode == 1 && username.is_empty() {
            self.err("mqtt.username", "is required with authmode 1 (basic)");
        }
        let tls = self.obj(doc, "mqtt.tls");
        if let Some(o) = tls {
            self.known(o, "mqtt.tls", TLS_KEYS);
        }
        let ca_cert = self.string(tls, "mqtt.tls", "cacert", "");
        let client_cert = self.string(tls, "mqtt.tls", "clientcert", "");
        let client_key = self.string(tls, "mqtt.tls", "clientkey", "");
        // The reference takes a client certificate and key as optional with TLS; one without the other is no use.
        if client_cert.is_empty() != client_key.is_empty() {
            self.err(
                "mqtt.tls.clientcert",
                "a client certificate needs its key (mqtt.tls.clientkey), and the other way round",
            );
        }
        let notation = match self.int(m, p, "processdatanotation", 0, 0, 2) {
            1 => Notation::Topics,
            2 => Notation::JsonAndTopics,
            _ => Notation::Json,
        };
        let retain_process_data = self.bool(m, p, "retainprocessdata", false);
        let keepalive_s = self.int(m, p, "keepalive", 120, 2, 65_535) as u16;
        let ha = self.obj(doc, "mqtt.homeassistant");
        if let Some(o) = ha {
            self.known(o, "mqtt.homeassistant", HA_KEYS);
        }
        let hp = "mqtt.homeassistant";
        let home_assistant = HomeAssistant {
            discovery_enabled: self.bool(ha, hp, "discoveryenabled", false),
            discovery_prefix: self.topic(ha, hp, "discoveryprefix", "homeassistant"),
            status_topic: self.topic(ha, hp, "statustopic", "homeassistant/status"),
            meter_type: self.int(
                ha,
                hp,
                "metertype",
                1,
                0,
                i64::from(crate::discovery::MAX_METER_TYPE),
            ) as u8,
            retain_discovery: self.bool(ha, hp, "retaindiscovery", false),
        };
        if home_assistant.discovery_enabled {
            let node = main_topic.rsplit('/').next().unwrap_or("");
            if check_topic(&main_topic).is_ok() && !is_ha_id(node) {
                self.err(
                    "mqtt.maintopic",
                    format!("last level '{node}' is the Home Assistant node id and may only contain [a-zA-Z0-9_-]"),
                );
            }
        }
        MqttConfig {
            enabled,
            uri,
            main_topic,
            client_id,
            auth_mode,
            username,
            password,
            ca_cert,
            client_cert,
            client_key,
            notation,
            retain_process_data,
            home_assistant,
            keepalive_s,
        }
    }

    fn gpio(&mut self, doc: &Value) -> Vec<PinConfig> {
        let g = self.obj(doc, "gpio");
        // The pins are used only with customization on (reference `gpioControl.cpp` 244); they are checked anyway.
        let customization = self.bool(g, "gpio", "customizationenabled", false);
        let list = self.array(g, "gpio", "gpiopin");
        let mut pins: Vec<PinConfig> = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let path = format!("gpio.gpiopin[{i}]");
            let Some(o) = item.as_object() else {
                self.err(&path, "must be an object");
                continue;
            };
            self.known(o, &path, PIN_KEYS);
            let o = Some(o);
            if o.is_some_and(|o| !o.contains_key("gpionumber")) {
                self.err(&format!("{path}.gpionumber"), "is required");
            }
            let number = self.int(o, &path, "gpionumber", 0, 0, 48);
            let mode_text = self.string(o, &path, "pinmode", "input");
            let mode = PinMode::parse(&mode_text).unwrap_or_else(|| {
                self.err(
                    &format!("{path}.pinmode"),
                    format!("'{mode_text}' is not one of {}", PinMode::NAMES.join(", ")),
                );
                PinMode::Input
            });
            let name = self.string(o, &path, "pinname", "");
            if !name.is_empty() && !is_ha_id(&name) {
                self.err(
                    &format!("{path}.pinname"),
                    format!("'{name}' may only contain [a-zA-Z0-9_-]"),
                );
            }
            let pwm_frequency = self.int(o, &path, "pwmfrequency", 5000, 1, 40_000_000) as u32;
            let pin = PinConfig {
                number: u8::try_from(number).unwrap_or(0),
                enabled: self.bool(o, &path, "pinenabled", false),
                name,
                mode,
                debounce_ms: self.int(o, &path, "inputdebouncetime", 200, 0, 60_000) as u32,
                pwm_frequency,
                expose_to_mqtt: self.bool(o, &path, "exposetomqtt", false),
                expose_to_rest: self.bool(o, &path, "exposetorest", false),
            };
            if pins.iter().any(|p| p.number == pin.number) {
                self.err(
                    &format!("{path}.gpionumber"),
                    format!("GPIO{} is configured twice", pin.number),
                );
            }
            if pin.enabled
                && pins
                    .iter()
                    .any(|p| p.enabled && p.topic_name() == pin.topic_name())
            {
                self.err(
                    &format!("{path}.pinname"),
                    format!("'{}' is used by another enabled pin", pin.topic_name()),
                );
            }
            pins.push(pin);
        }
        if customization {
            pins
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn time_server_is_a_host_with_an_optional_port() {
        for good in ["", "pool.ntp.org", "192.168.1.1:123", "ntp_1.lan:1"] {
            assert_eq!(bad_time_server(good), None, "{good:?}");
        }
        for bad in [
            ":123",
            "pool ntp.org",
            "pool.ntp.org:0",
            "pool.ntp.org:x",
            "[::1]:123",
        ] {
            assert!(bad_time_server(bad).is_some(), "{bad:?}");
        }
    }

    fn partial(v: Value) -> Result<Config, ConfigError> {
        Config::from_partial(&v).map(|(_, c)| c)
    }

    #[test]
    fn the_whole_document_has_every_section() {
        let d = default_json();
        let keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
        let mut sections = SECTIONS.to_vec();
        sections.sort_unstable();
        assert_eq!(keys, sections);
        let (doc, c) = Config::from_stored(d.clone()).unwrap();
        assert_eq!(doc, d);
        assert_eq!(c, Config::from_json(&d).unwrap());
    }

    #[test]
    fn defaults_are_valid_and_match_reference() {
        let c = partial(json!({})).unwrap();
        assert_eq!(c.opmode, OpMode::Setup);
        assert_eq!(c.interval_min, 1.0);
        assert_eq!(c.mqtt.main_topic, "watermeter");
        assert_eq!(c.mqtt.home_assistant.meter_type, 1);
        assert_eq!(c.sequences.len(), 1);
        assert_eq!(c.sequences[0].post.max_rate, 0.15);
        // The reference's five default pins are configured but unused: customization is off.
        assert_eq!(c.gpio.len(), 0);
        let c = partial(json!({"gpio": {"customizationenabled": true}})).unwrap();
        assert_eq!(c.gpio.len(), 5);
    }

    #[test]
    fn main_topic_rules() {
        for bad in ["", "/a", "a/", "a//b", "a/+/b", "a/#", "a\u{1}b"] {
            let e = partial(json!({"mqtt": {"maintopic": bad}})).unwrap_err();
            assert_eq!(e.path(), "mqtt.maintopic", "{bad}");
        }
        assert!(partial(json!({"mqtt": {"maintopic": "water/b1/meter"}})).is_ok());
    }

    #[test]
    fn uri_rules() {
        let e = partial(json!({"mqtt": {"enabled": true, "uri": "http://x"}})).unwrap_err();
        assert_eq!(e.path(), "mqtt.uri");
        assert!(e.to_string().contains("mqtt://"));
        let e = partial(json!({"mqtt": {"enabled": true, "uri": ""}})).unwrap_err();
        assert_eq!(e.path(), "mqtt.uri");
        let c = partial(json!({"mqtt": {"enabled": true, "uri": "mqtts://broker.local"}})).unwrap();
        assert_eq!(
            c.mqtt.uri,
            Some(MqttUri {
                tls: true,
                host: "broker.local".into(),
                port: 8883
            })
        );
        assert_eq!(MqttUri::parse("mqtt://127.0.0.1:1884").unwrap().port, 1884);
        assert!(MqttUri::parse("mqtt://h:0").is_err());
        assert!(MqttUri::parse("mqtt://h:99999").is_err());
        assert!(MqttUri::parse("mqtt://:1883").is_err());
        assert!(MqttUri::parse("mqtt://u@h").is_err());
    }

    #[test]
    fn every_bad_key_is_reported_with_its_path() {
        let e = partial(json!({
            "mqtt": {"maintopic": "a/#", "processdatanotation": 7, "retainprocessdata": "yes"},
            "operationmode": {"opmode": 5}
        }))
        .unwrap_err();
        let paths: Vec<&str> = e.errors.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"mqtt.maintopic"));
        assert!(paths.contains(&"mqtt.processdatanotation"));
        assert!(paths.contains(&"mqtt.retainprocessdata"));
        assert!(paths.contains(&"operationmode.opmode"));
    }

    #[test]
    fn unknown_keys_in_modelled_sections_are_refused() {
        let e = partial(json!({"mqtt": {"maintopik": "x"}})).unwrap_err();
        assert_eq!(e.path(), "mqtt.maintopik");
    }

    #[test]
    fn numbers_as_strings_are_accepted() {
        let c = partial(json!({"operationmode": {"automaticprocessinterval": "2.5"}})).unwrap();
        assert_eq!(c.interval_min, 2.5);
        let e =
            partial(json!({"operationmode": {"automaticprocessinterval": "soon"}})).unwrap_err();
        assert_eq!(e.path(), "operationmode.automaticprocessinterval");
    }

    #[test]
    fn sequences_link_by_id() {
        let c = partial(json!({
            "numbersequences": {"sequence": [{"sequenceid": 0, "sequencename": "main"}, {"sequenceid": 3, "sequencename": "gas"}]},
            "digit": {"sequence": [{"sequenceid": 3, "roi": [{"name": "d1"}, {"name": "d2"}]}]},
            "analog": {"sequence": [{"sequenceid": 0, "roi": [{"name": "a1"}]}]},
            "postprocessing": {"sequence": [{"sequenceid": 3, "decimalshift": -2}]}
        }))
        .unwrap();
        assert_eq!(c.sequences[1].digit_rois, ["d1", "d2"]);
        assert_eq!(c.sequences[0].analog_rois, ["a1"]);
        assert_eq!(c.sequences[1].post.decimal_shift, -2);
        assert_eq!(c.sequences[0].post.decimal_shift, 0);
    }

    #[test]
    fn sequence_errors() {
        let e = partial(json!({"numbersequences": {"sequence": []}})).unwrap_err();
        assert_eq!(e.path(), "numbersequences.sequence");
        let e = partial(json!({"numbersequences": {"sequence": [{"sequenceid": 0, "sequencename": "a b"}]},
                               "digit": {"sequence": []}, "analog": {"sequence": []}, "postprocessing": {"sequence": []}}))
        .unwrap_err();
        assert_eq!(e.path(), "numbersequences.sequence[0].sequencename");
        let e =
            partial(json!({"digit": {"sequence": [{"sequenceid": 9, "roi": []}]}})).unwrap_err();
        assert_eq!(e.path(), "digit.sequence[0].sequenceid");
        let e = partial(json!({"digit": {"sequence": [{"sequenceid": 0, "roi": [{"name": "x"}, {"name": "x"}]}]}})).unwrap_err();
        assert_eq!(e.path(), "digit.sequence[0].roi[1].name");
        let e = partial(
            json!({"postprocessing": {"sequence": [{"sequenceid": 0, "analogdigitsyncvalue": 3}]}}),
        )
        .unwrap_err();
        assert_eq!(e.path(), "postprocessing.sequence[0].analogdigitsyncvalue");
    }

    #[test]
    fn ha_node_id_must_be_safe_when_discovery_is_on() {
        let e = partial(
            json!({"mqtt": {"maintopic": "water/mé", "homeassistant": {"discoveryenabled": true}}}),
        )
        .unwrap_err();
        assert_eq!(e.path(), "mqtt.maintopic");
        assert!(partial(json!({"mqtt": {"maintopic": "water/mé"}})).is_ok());
    }

    #[test]
    fn gpio_errors() {
        let e = partial(json!({"gpio": {"gpiopin": [{"gpionumber": 4, "pinmode": "laser"}]}}))
            .unwrap_err();
        assert_eq!(e.path(), "gpio.gpiopin[0].pinmode");
        let e = partial(json!({"gpio": {"gpiopin": [{"gpionumber": 4}, {"gpionumber": 4}]}}))
            .unwrap_err();
        assert_eq!(e.path(), "gpio.gpiopin[1].gpionumber");
        let e = partial(json!({"gpio": {"gpiopin": [{"gpionumber": 4, "pwmfrequency": 0}]}}))
            .unwrap_err();
        assert_eq!(e.path(), "gpio.gpiopin[0].pwmfrequency");
        let e = partial(json!({"gpio": {"gpiopin": [{"gpionumber": 4, "pinname": "a/b"}]}}))
            .unwrap_err();
        assert_eq!(e.path(), "gpio.gpiopin[0].pinname");
    }

    #[test]
    fn timezone_is_validated() {
        let e = partial(json!({"network": {"time": {"timezone": "Mars/Olympus"}}})).unwrap_err();
        assert_eq!(e.path(), "network.time.timezone");
    }

    #[test]
    fn redaction_hides_secrets_and_merge_keeps_them() {
        let (doc, _) = Config::from_partial(
            &json!({"mqtt": {"password": "hunter2", "tls": {"clientcert": "CERT", "clientkey": "KEY"}},
                                                    "network": {"wlan": {"password": "wifi"}}}),
        )
        .unwrap();
        let shown = redacted(&doc);
        let text = shown.to_string();
        assert!(!text.contains("hunter2") && !text.contains("KEY") && !text.contains("wifi"));
        assert_eq!(get_path(&shown, "mqtt.password"), Some(&json!(REDACTED)));
        assert_eq!(get_path(&shown, "mqtt.username"), Some(&json!("")));
        let mut back = doc.clone();
        merge(&mut back, shown.clone());
        assert_eq!(get_path(&back, "mqtt.password"), Some(&json!("hunter2")));
        assert_eq!(back, doc);
    }

    #[test]
    fn path_get_and_set() {
        let mut doc = default_json();
        assert_eq!(
            get_path(&doc, "gpio.gpiopin[2].gpionumber"),
            Some(&json!(4))
        );
        assert_eq!(get_path(&doc, "gpio.gpiopin.2.gpionumber"), Some(&json!(4)));
        set_path(&mut doc, "mqtt.maintopic", json!("x/y")).unwrap();
        assert_eq!(get_path(&doc, "mqtt.maintopic"), Some(&json!("x/y")));
        assert!(set_path(&mut doc, "nope.deeper.key", json!(1)).is_err());
        assert!(set_path(&mut doc, "gpio.gpiopin[99].pinmode", json!("input")).is_err());
        assert_eq!(get_path(&doc, "mqtt.nothing"), None);
    }

    #[test]
    fn uri_ipv6_and_trailing_slash() {
        assert_eq!(
            MqttUri::parse("mqtt://[::1]:1884").unwrap(),
            MqttUri {
                tls: false,
                host: "[::1]".into(),
                port: 1884
            }
        );
        assert_eq!(MqttUri::parse("mqtt://[::1]").unwrap().port, 1883);
        assert_eq!(MqttUri::parse("mqtt://broker/").unwrap().host, "broker");
        assert!(MqttUri::parse("mqtt://broker/path").is_err());
    }

    #[test]
    fn auth_modes_require_credentials() {
        assert_eq!(
            partial(json!({"mqtt": {"authmode": 1}}))
                .unwrap_err()
                .path(),
            "mqtt.username"
        );
        // TLS: client certificate and key are optional (as in the reference), but go together.
        assert!(partial(json!({"mqtt": {"authmode": 2}})).is_ok());
        assert_eq!(
            partial(json!({"mqtt": {"authmode": 2, "tls": {"clientkey": "K"}}}))
                .unwrap_err()
                .path(),
            "mqtt.tls.clientcert"
        );
        assert!(partial(json!({"mqtt": {"authmode": 1, "username": "u"}})).is_ok());
    }

    #[test]
    fn reference_only_sections_are_kept() {
        let (doc, _) =
            Config::from_partial(&json!({"influxdbv1": {"enabled": false, "uri": ""}})).unwrap();
        assert_eq!(get_path(&doc, "influxdbv1.enabled"), Some(&json!(false)));
    }

    #[test]
    fn node_id_is_last_level() {
        let c = partial(json!({"mqtt": {"maintopic": "water/b1/meter"}})).unwrap();
        assert_eq!(c.node_id(), "meter");
        let c = partial(json!({"mqtt": {"maintopic": "flat"}})).unwrap();
        assert_eq!(c.node_id(), "flat");
    }

    #[test]
    fn non_object_config_is_refused() {
        assert_eq!(
            Config::from_partial(&json!([1, 2])).unwrap_err().path(),
            "$"
        );
    }

    #[test]
    fn the_defaults_are_one_valid_document() {
        let defaults =
            crate::json::parse_unique(DEFAULTS.as_bytes()).expect("defaults.json parses");
        assert_eq!(defaults, default_json());
        Config::from_json(&defaults).expect("the defaults validate");
    }

    #[test]
    fn wlan_credentials_come_from_the_stored_document() {
        let doc = json!({"network": {"wlan": {"ssid": "home", "password": "pw"}}}).to_string();
        assert_eq!(
            wlan_credentials(&doc),
            Some(WlanCredentials {
                ssid: "home".into(),
                password: "pw".into()
            })
        );
        let open = json!({"network": {"wlan": {"ssid": "cafe"}}}).to_string();
        assert_eq!(
            wlan_credentials(&open).map(|c| c.password),
            Some(String::new())
        );
        assert_eq!(
            wlan_credentials(&json!({"network": {"wlan": {"ssid": ""}}}).to_string()),
            None
        );
        assert_eq!(wlan_credentials("{"), None);
    }
}
