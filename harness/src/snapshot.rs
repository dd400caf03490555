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
    /// The board type the device reports (`Virtual Board`, or the inventory's): `[board]`, so one snapshot
    /// holds for every board.
    pub board: String,
}

impl Placeholders {
    /// Replaces the per-scenario names (main topic, node id) and the board type with `[M]` / `[node]` / `[board]`.
    pub fn apply(&self, s: &str) -> String {
        let mut out = s.to_string();
        if !self.main_topic.is_empty() {
            out = out.replace(&self.main_topic, "[M]");
        }
        if !self.node.is_empty() {
            out = out.replace(&self.node, "[node]");
        }
        if !self.board.is_empty() {
            out = out.replace(&self.board, "[board]");
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

/// Where a run leaves snapshots that did not match (`NAME.snap.new`, insta's format): under target/, never in the
/// checkout (a CI runner's work tree stays as it was). `hil snapshots` lists and accepts them.
pub fn pending_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/hil/snapshots")
}

/// Asserts `text` against the named snapshot. insta compares against a copy of the stored snapshot in
/// [`pending_dir`], so what it writes on a mismatch lands there.
pub fn assert_snapshot(name: &str, text: &str) {
    let pending = pending_dir();
    let copy = pending.join(format!("{name}.snap"));
    let staged = std::fs::create_dir_all(&pending).and_then(|()| {
        match std::fs::read(snapshot_dir().join(format!("{name}.snap"))) {
            // Scenarios assert the same snapshot at once: write aside, then rename (atomic).
            Ok(stored) => {
                let tmp = pending.join(format!(
                    ".{name}.{}.{:?}.tmp",
                    std::process::id(),
                    std::thread::current().id()
                ));
                std::fs::write(&tmp, stored)?;
                std::fs::rename(&tmp, &copy)
            }
            Err(_) => match std::fs::remove_file(&copy) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        }
    });
    if let Err(e) = staged {
        panic!(
            "snapshot '{name}': cannot stage it in {}: {e}",
            pending.display()
        );
    }
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(&pending);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

/// Names of the snapshots a run left pending.
pub fn pending() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(pending_dir())
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".snap.new"))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Moves a pending snapshot into features/snapshots (accepting the new behaviour).
pub fn accept(name: &str) -> std::io::Result<PathBuf> {
    let from = pending_dir().join(format!("{name}.snap.new"));
    let to = snapshot_dir().join(format!("{name}.snap"));
    std::fs::copy(&from, &to)?;
    std::fs::remove_file(&from)?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_that_does_not_match_is_left_pending_outside_the_checkout() {
        let name = format!("selftest-pending-{}", std::process::id());
        let stored = snapshot_dir().join(format!("{name}.snap"));
        let failed = std::panic::catch_unwind(|| assert_snapshot(&name, "new behaviour")).is_err();
        assert!(failed, "a snapshot nobody stored must fail");
        assert!(!stored.exists(), "the run wrote into the checkout");
        assert!(!snapshot_dir().join(format!("{name}.snap.new")).exists());
        // insta writes nothing on CI (CI=true): the diff is in the failure then.
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        if !ci {
            assert!(pending().contains(&name), "pending: {:?}", pending());
            let accepted = accept(&name).unwrap();
            assert!(stored_text(&accepted).is_some_and(|t| t == "new behaviour"));
            std::fs::remove_file(&accepted).unwrap();
            assert!(!pending().contains(&name));
        }
    }

    fn stored_text(path: &std::path::Path) -> Option<String> {
        let file = std::fs::read_to_string(path).ok()?;
        let body = file.strip_prefix("---\n")?.split_once("\n---\n")?.1;
        Some(body.trim_end_matches('\n').to_string())
    }
    use std::time::Duration;

    #[test]
    fn volatile_fields_are_redacted_by_name() {
        let p = Placeholders {
            board: String::new(),
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
            board: String::new(),
            main_topic: "m".into(),
            node: String::new(),
        };
        assert_eq!(tree_text(&tree, &p), "[M]/a [r] 1\n[M]/b [-] 2");
    }
}
