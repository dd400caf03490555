//! Snapshots of JSON payloads and topic trees with insta. Volatile values are redacted by name in ONE place
//! ([`VOLATILE`]) so a snapshot changes only when behaviour changes. Review with `cargo insta review`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::observer::Seen;

/// Field and topic names whose values change from run to run.
pub const VOLATILE: &[&str] = &[
    "device_uptime",
    "wlan_rssi",
    "chip_temp",
    "heap",
    "sd_partition_free",
    "ipv4_address",
    "mac_address",
    "hostname",
    "timestamp_processed",
    "timestamp_fallbackvalue",
    "process_time",
    "firmware_version",
    "sw",
    "cu",
];

const REDACTED: &str = "[redacted]";

fn volatile(name: &str) -> bool {
    VOLATILE.contains(&name) || name.starts_with("heap_")
}

/// Redacts volatile fields (recursively) of a JSON value.
pub fn redact_json(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if volatile(k) {
                    *x = Value::String(REDACTED.into());
                } else {
                    redact_json(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact_json),
        _ => {}
    }
}

/// Names that differ per scenario (the unique main topic, the HA node id) and their placeholders.
#[derive(Debug, Clone, Default)]
pub struct Placeholders {
    pub main_topic: String,
    pub node: String,
}

impl Placeholders {
    /// Replaces the per-scenario names (main topic, node id) with `[M]` / `[node]`.
    pub fn apply(&self, s: &str) -> String {
        let mut out = s.to_string();
        if !self.main_topic.is_empty() {
            out = out.replace(&self.main_topic, "[M]");
        }
        if !self.node.is_empty() {
            out = out.replace(&self.node, "[node]");
        }
        out
    }
}

/// A payload as it goes into a snapshot: JSON pretty-printed and redacted, plain text redacted by topic name.
pub fn payload_text(topic: &str, payload: &str, p: &Placeholders) -> String {
    let last = topic.rsplit('/').next().unwrap_or(topic);
    if volatile(last) {
        return REDACTED.into();
    }
    match serde_json::from_str::<Value>(payload) {
        Ok(mut v) if v.is_object() || v.is_array() => {
            redact_json(&mut v);
            p.apply(&serde_json::to_string(&v).unwrap_or_default())
        }
        _ => p.apply(payload),
    }
}

/// A tree (or subtree) as text: `topic [r|-] payload` per line, sorted.
pub fn tree_text(tree: &BTreeMap<String, Seen>, p: &Placeholders) -> String {
    tree.iter()
        .map(|(t, s)| {
            format!(
                "{} {} {}",
                p.apply(t),
                if s.retain { "[r]" } else { "[-]" },
                payload_text(t, &s.payload, p)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where snapshots live: next to the features that take them.
pub fn snapshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../features/snapshots")
}

/// The text a named snapshot holds (without insta's header), if there is one.
pub fn stored(name: &str) -> Option<String> {
    let file = std::fs::read_to_string(snapshot_dir().join(format!("{name}.snap"))).ok()?;
    // The header is `---`, metadata lines, `---`; the snapshot follows.
    let body = file.strip_prefix("---\n")?.split_once("\n---\n")?.1;
    Some(body.trim_end_matches('\n').to_string())
}

/// Asserts `text` against the named snapshot.
pub fn assert_snapshot(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(snapshot_dir());
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn volatile_fields_are_redacted_by_name() {
        let p = Placeholders {
            main_topic: "x/m_1".into(),
            node: "m_1".into(),
        };
        let text = payload_text(
            "x/m_1/device/info/network",
            r#"{"hostname":"h","ipv4_address":"1.2.3.4","other":"x/m_1"}"#,
            &p,
        );
        assert_eq!(
            text,
            r#"{"hostname":"[redacted]","ipv4_address":"[redacted]","other":"[M]"}"#
        );
        assert_eq!(
            payload_text("x/device/status/device_uptime", "12", &p),
            "[redacted]"
        );
        assert_eq!(payload_text("x/process/status/cycle_counter", "3", &p), "3");
        let mut v = serde_json::json!({"heap_total_free": 1, "dev": {"sw": "v1", "ids": ["n"]}});
        redact_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"heap_total_free": "[redacted]", "dev": {"sw": "[redacted]", "ids": ["n"]}})
        );
    }

    #[test]
    fn stored_snapshots_read_without_their_header() {
        let text = stored("device-info-hardware").expect("a snapshot the suite uses");
        assert!(
            text.starts_with('{') && text.contains("chip_model"),
            "{text}"
        );
        assert_eq!(stored("no-such-snapshot"), None);
    }

    #[test]
    fn tree_lines_are_sorted_with_retain_flags() {
        let seen = |p: &str, r| Seen {
            payload: p.into(),
            retain: r,
            qos: 1,
            at: Duration::ZERO,
        };
        let tree = BTreeMap::from([
            ("m/b".to_string(), seen("2", false)),
            ("m/a".to_string(), seen("1", true)),
        ]);
        let p = Placeholders {
            main_topic: "m".into(),
            node: String::new(),
        };
        assert_eq!(tree_text(&tree, &p), "[M]/a [r] 1\n[M]/b [-] 2");
    }
}
