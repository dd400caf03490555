//! Migration notes v16 -> v17: the machine-readable map (`fixtures/migration/v16-v17.toml`), the project's
//! markdown generated from it, and the check against a live topic tree: each replacement is published (with its
//! JSON property), no v16 topic is.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::observer::Seen;

#[derive(Debug, Clone, Deserialize)]
pub struct Row {
    pub old: String,
    pub new: String,
    pub json_property: Option<String>,
    pub cluster: String,
    pub note: Option<String>,
    #[serde(default)]
    pub removed: bool,
}

#[derive(Deserialize)]
struct Map {
    topic: Vec<Row>,
}

pub fn parse(toml_text: &str) -> Result<Vec<Row>> {
    Ok(toml::from_str::<Map>(toml_text)
        .context("migration map is not valid TOML of [[topic]] rows")?
        .topic)
}

/// The project's migration notes page, generated from the map.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "# MQTT API migration notes: v16 -> v17\n\n\
Generated from `fixtures/migration/v16-v17.toml` (`hil migration notes`); `hil migration verify` checks every row\n\
against a running device. `[M]` = main topic, `[S]` = sequence name (v16), `[N]` = sequence id (v17),\n\
`[P]` = GPIO number, `[G]` = GPIO name.\n\n\
| v16 topic | v17 replacement | JSON property | cluster | note |\n|---|---|---|---|---|\n",
    );
    for r in rows {
        let new = if r.removed {
            "(removed)".to_string()
        } else {
            format!("`{}`", r.new)
        };
        let prop = r
            .json_property
            .as_deref()
            .map(|p| format!("`{p}`"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "| `{}` | {new} | {prop} | {} | {} |",
            r.old,
            r.cluster,
            r.note.as_deref().unwrap_or("")
        );
    }
    s
}

/// What the device's tree says about its sequences and pins.
#[derive(Debug, Default)]
pub struct Device {
    pub main: String,
    /// (id, name)
    pub sequences: Vec<(String, String)>,
    pub pins: Vec<String>,
    pub home_assistant: bool,
}

impl Device {
    /// Reads sequences (`process/data/[N]/json` or `.../sequence_name`) and pins (`device/gpio/[G]/state`).
    pub fn from_tree(main: &str, tree: &BTreeMap<String, Seen>) -> Device {
        let mut d = Device {
            main: main.to_string(),
            ..Device::default()
        };
        let data = format!("{main}/process/data/");
        for (t, s) in tree {
            if let Some(rest) = t.strip_prefix(&data) {
                let (id, field) = rest.split_once('/').unwrap_or((rest, ""));
                let name = match field {
                    "json" => serde_json::from_str::<Value>(&s.payload)
                        .ok()
                        .and_then(|v| v["sequence_name"].as_str().map(str::to_string)),
                    "sequence_name" => Some(s.payload.clone()),
                    _ => None,
                };
                if let Some(name) = name {
                    if !d.sequences.iter().any(|(i, _)| i == id) {
                        d.sequences.push((id.to_string(), name));
                    }
                }
            }
            if let Some(g) = t
                .strip_prefix(&format!("{main}/device/gpio/"))
                .and_then(|r| r.strip_suffix("/state"))
            {
                d.pins.push(g.to_string());
            }
            if t.ends_with("/config") && s.payload.contains(&format!("\"~\":\"{main}\"")) {
                d.home_assistant = true;
            }
        }
        d
    }
}

/// The verdict on one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(String),
    NotApplicable(String),
}

fn json_has(tree: &BTreeMap<String, Seen>, topic: &str, prop: &str) -> bool {
    tree.get(topic)
        .and_then(|s| serde_json::from_str::<Value>(&s.payload).ok())
        .is_some_and(|v| v.get(prop).is_some())
}

/// Checks one row against the tree for one expansion of its placeholders.
fn check_one(
    row: &Row,
    tree: &BTreeMap<String, Seen>,
    d: &Device,
    seq: Option<&(String, String)>,
) -> Verdict {
    let fill = |t: &str| {
        let mut t = t.replace("[M]", &d.main);
        if let Some((id, name)) = seq {
            t = t.replace("[N]", id).replace("[S]", name);
        }
        t
    };
    let old = fill(&row.old);
    // v16 GPIO topics: nothing at all may remain under [M]/GPIO/.
    if row.old.contains("[P]") {
        let v16 = format!("{}/GPIO/", d.main);
        if let Some(t) = tree.keys().find(|t| t.starts_with(&v16)) {
            return Verdict::Fail(format!("v16 topic {t} is still published"));
        }
    } else if tree.contains_key(&old) {
        return Verdict::Fail(format!("v16 topic {old} is still published"));
    }
    if row.removed {
        return Verdict::Pass;
    }
    if row.new.contains("[G]") {
        if d.pins.is_empty() {
            return Verdict::NotApplicable("no GPIO exposed to MQTT".into());
        }
        return Verdict::Pass;
    }
    let new = fill(&row.new);
    // Control topics are subscribed, not published: scenarios exercise them by publishing.
    if row
        .note
        .as_deref()
        .is_some_and(|n| n.starts_with("subscribed"))
    {
        return Verdict::NotApplicable(format!(
            "{new} is subscribed by the device (exercised by publishing)"
        ));
    }
    let ha_only = row
        .note
        .as_deref()
        .is_some_and(|n| n.contains("Home Assistant"));
    if ha_only && !d.home_assistant {
        return Verdict::NotApplicable("Home Assistant discovery is off".into());
    }
    match &row.json_property {
        None => {
            if tree.contains_key(&new) {
                Verdict::Pass
            } else if let Some(base) = new
                .strip_suffix("/json")
                .filter(|b| tree.contains_key(&format!("{b}/actual_value")))
            {
                Verdict::NotApplicable(format!(
                    "process data notation is Topics ({base}/<field> topics)"
                ))
            } else {
                Verdict::Fail(format!("{new} is not published"))
            }
        }
        Some(prop) => {
            if new.ends_with(&format!("/{prop}")) {
                // A per-field topic: published as a topic, or as the property of the sequence's JSON topic.
                let json_topic = format!("{}/json", new.trim_end_matches(&format!("/{prop}")));
                if tree.contains_key(&new) || json_has(tree, &json_topic, prop) {
                    Verdict::Pass
                } else {
                    Verdict::Fail(format!(
                        "neither {new} nor property '{prop}' of {json_topic} is published"
                    ))
                }
            } else if json_has(tree, &new, prop) {
                Verdict::Pass
            } else if tree.contains_key(&new) {
                Verdict::Fail(format!("{new} has no property '{prop}'"))
            } else {
                Verdict::Fail(format!("{new} is not published"))
            }
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Line {
    pub old: String,
    pub new: String,
    pub verdict: Verdict,
}

/// Checks every row; rows with `[N]`/`[S]` are checked for every sequence of the device.
pub fn verify(rows: &[Row], tree: &BTreeMap<String, Seen>, d: &Device) -> Vec<Line> {
    let mut out = Vec::new();
    for row in rows {
        let per_sequence = row.new.contains("[N]") || row.old.contains("[S]");
        if per_sequence && d.sequences.is_empty() {
            out.push(Line {
                old: row.old.clone(),
                new: row.new.clone(),
                verdict: Verdict::Fail("no process data published yet (run a cycle first)".into()),
            });
            continue;
        }
        let sequences: Vec<Option<&(String, String)>> = if per_sequence {
            d.sequences.iter().map(Some).collect()
        } else {
            vec![None]
        };
        for seq in sequences {
            let label = |t: &str| match seq {
                Some((id, name)) => t.replace("[N]", id).replace("[S]", name),
                None => t.to_string(),
            };
            out.push(Line {
                old: label(&row.old),
                new: label(&row.new),
                verdict: check_one(row, tree, d, seq),
            });
        }
    }
    out
}

/// The report as a table; the bool is true when every row passed or was not applicable.
pub fn table(lines: &[Line]) -> (String, bool) {
    let mut s = String::new();
    let mut ok = true;
    let _ = writeln!(
        s,
        "{:<6} {:<40} {:<45} detail",
        "result", "v16 topic", "v17 replacement"
    );
    for l in lines {
        let (word, detail) = match &l.verdict {
            Verdict::Pass => ("PASS", String::new()),
            Verdict::NotApplicable(why) => ("n/a", why.clone()),
            Verdict::Fail(why) => {
                ok = false;
                ("FAIL", why.clone())
            }
        };
        let _ = writeln!(s, "{word:<6} {:<40} {:<45} {detail}", l.old, l.new);
    }
    (s, ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Row> {
        parse(include_str!("../../fixtures/migration/v16-v17.toml")).unwrap()
    }

    fn good_tree() -> BTreeMap<String, Seen> {
        let mut t = BTreeMap::new();
        for (k, v) in [
            (
                "m/device/info/network",
                r#"{"hostname":"h","ipv4_address":"i","mac_address":"a"}"#,
            ),
            ("m/process/status/process_interval", "1.0"),
            ("m/device/status/connection", "online"),
            ("m/device/status/device_uptime", "1"),
            ("m/device/status/heap", r#"{"heap_total_free":1}"#),
            ("m/device/status/wlan_rssi", "-50"),
            ("m/device/status/chip_temp", "40"),
            ("m/process/status/process_state", "Publish to MQTT"),
            ("m/process/ctrl/cycle_start", "1"),
            ("m/process/ctrl/set_fallbackvalue", "{}"),
            (
                "m/process/data/0/json",
                r#"{"sequence_name":"main","actual_value":"1","raw_value":"1","value_status":"000 Valid","rate_per_minute":"0","rate_per_interval":"0","timestamp_processed":"t","fallback_value":"1"}"#,
            ),
        ] {
            t.insert(k.to_string(), Seen::live(v));
        }
        t
    }

    #[test]
    fn map_parses_and_renders() {
        let r = rows();
        assert!(r.len() >= 20);
        let md = markdown(&r);
        assert!(md.contains("| `[M]/ctrl/flow_start` | `[M]/process/ctrl/cycle_start` |"));
    }

    #[test]
    fn committed_notes_match_the_map() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/mqtt-api/migration-notes.md"
        ))
        .expect("docs/mqtt-api/migration-notes.md (regenerate with `hil migration notes`)");
        assert_eq!(
            doc,
            markdown(&rows()),
            "docs/mqtt-api/migration-notes.md is stale: run `hil migration notes`"
        );
    }

    #[test]
    fn a_v17_tree_passes() {
        let tree = good_tree();
        let d = Device::from_tree("m", &tree);
        assert_eq!(d.sequences, vec![("0".to_string(), "main".to_string())]);
        let lines = verify(&rows(), &tree, &d);
        let (text, ok) = table(&lines);
        assert!(ok, "{text}");
    }

    #[test]
    fn a_v16_topic_or_missing_property_fails() {
        let mut tree = good_tree();
        tree.insert("m/main/value".into(), Seen::live("1"));
        tree.insert(
            "m/device/info/network".into(),
            Seen::live(r#"{"hostname":"h"}"#),
        );
        let d = Device::from_tree("m", &tree);
        let (text, ok) = table(&verify(&rows(), &tree, &d));
        assert!(!ok);
        assert!(
            text.contains("v16 topic m/main/value is still published"),
            "{text}"
        );
        assert!(
            text.contains("m/device/info/network has no property 'mac_address'"),
            "{text}"
        );
    }
}
