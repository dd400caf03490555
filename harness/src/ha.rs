//! The Home Assistant discovery cross-check: every config is valid JSON and expands as HA expands it
//! (abbreviations, `~`); every state / availability topic is published; every value template's `value_json.X` is a
//! property of that topic's JSON; unique ids are unique; every command topic has an effect (checked by the caller,
//! who can publish).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::observer::Seen;

struct Abbreviations {
    entity: HashMap<&'static str, &'static str>,
    device: HashMap<&'static str, &'static str>,
}

fn abbreviations() -> &'static Abbreviations {
    static TABLE: OnceLock<Abbreviations> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut entity = HashMap::new();
        let mut device = HashMap::new();
        let mut section = "";
        for line in include_str!("ha_abbreviations.txt").lines() {
            let line = line.trim();
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            if line.starts_with('[') {
                section = line;
                continue;
            }
            if let Some((abbr, full)) = line.split_once(' ') {
                match section {
                    "[device]" => device.insert(abbr, full),
                    _ => entity.insert(abbr, full),
                };
            }
        }
        Abbreviations { entity, device }
    })
}

/// Expands a discovery payload the way Home Assistant does: abbreviations, device abbreviations, then `~` in every
/// `*topic` value.
pub fn expand(payload: &Map<String, Value>) -> Map<String, Value> {
    let table = abbreviations();
    let mut out = Map::new();
    for (k, v) in payload {
        let key = table
            .entity
            .get(k.as_str())
            .map_or(k.clone(), |f| f.to_string());
        let value = if key == "device" {
            match v {
                Value::Object(d) => Value::Object(
                    d.iter()
                        .map(|(dk, dv)| {
                            (
                                table
                                    .device
                                    .get(dk.as_str())
                                    .map_or(dk.clone(), |f| f.to_string()),
                                dv.clone(),
                            )
                        })
                        .collect(),
                ),
                other => other.clone(),
            }
        } else {
            v.clone()
        };
        out.insert(key, value);
    }
    if let Some(Value::String(base)) = out.remove("~") {
        for (k, v) in out.iter_mut() {
            if let Value::String(s) = v {
                if k.ends_with("topic") {
                    if let Some(rest) = s.strip_prefix('~') {
                        *s = format!("{base}{rest}");
                    } else if let Some(rest) = s.strip_suffix('~') {
                        *s = format!("{rest}{base}");
                    }
                }
            }
        }
    }
    out
}

/// One finding of the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub config_topic: String,
    pub message: String,
}

/// The expanded configs and the command topics to exercise.
#[derive(Debug, Default)]
pub struct Report {
    pub configs: usize,
    pub problems: Vec<Problem>,
    /// (config topic, command topic, payload to press).
    pub commands: Vec<(String, String, String)>,
}

/// `value_json.X` properties used by a template.
fn template_properties(template: &str) -> Vec<String> {
    let mut props = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find("value_json.") {
        rest = &rest[i + "value_json.".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            props.push(name);
        }
    }
    props
}

/// Checks every `<prefix>/.../config` topic of `tree`.
pub fn check(tree: &BTreeMap<String, Seen>, prefix: &str) -> Report {
    let mut report = Report::default();
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    let configs: Vec<(&String, &Seen)> = tree
        .iter()
        .filter(|(t, _)| t.starts_with(&format!("{prefix}/")) && t.ends_with("/config"))
        .collect();
    report.configs = configs.len();
    for (topic, seen) in configs {
        let mut problem = |m: String| {
            report.problems.push(Problem {
                config_topic: topic.clone(),
                message: m,
            })
        };
        let raw: Value = match serde_json::from_str(&seen.payload) {
            Ok(v) => v,
            Err(e) => {
                problem(format!("not valid JSON: {e}"));
                continue;
            }
        };
        let Some(obj) = raw.as_object() else {
            problem("config is not a JSON object".into());
            continue;
        };
        let cfg = expand(obj);
        match cfg.get("unique_id").and_then(Value::as_str) {
            Some(id) => {
                if let Some(other) = ids.insert(id.to_string(), topic.clone()) {
                    problem(format!("unique_id '{id}' is also used by {other}"));
                }
            }
            None => problem("no unique_id".into()),
        }
        for key in ["state_topic", "availability_topic"] {
            if let Some(t) = cfg.get(key).and_then(Value::as_str) {
                if t.contains('~') {
                    problem(format!("{key} '{t}' still contains '~' after expansion"));
                } else if !tree.contains_key(t) {
                    problem(format!("{key} '{t}' is never published"));
                }
            }
        }
        if let (Some(t), Some(tpl)) = (
            cfg.get("state_topic").and_then(Value::as_str),
            cfg.get("value_template").and_then(Value::as_str),
        ) {
            let props = template_properties(tpl);
            if !props.is_empty() {
                match tree
                    .get(t)
                    .map(|s| serde_json::from_str::<Value>(&s.payload))
                {
                    Some(Ok(Value::Object(state))) => {
                        for p in props {
                            if !state.contains_key(&p) {
                                problem(format!(
                                    "value_template uses value_json.{p}, but {t} has no '{p}'"
                                ));
                            }
                        }
                    }
                    Some(_) => problem(format!(
                        "value_template reads JSON, but {t} is not a JSON object"
                    )),
                    None => {}
                }
            }
        }
        if cfg.get("state_topic").is_none() && cfg.get("command_topic").is_none() {
            problem("neither state_topic nor command_topic".into());
        }
        if let Some(cmd) = cfg.get("command_topic").and_then(Value::as_str) {
            let press = cfg
                .get("payload_press")
                .and_then(Value::as_str)
                .unwrap_or("PRESS")
                .to_string();
            report
                .commands
                .push((topic.clone(), cmd.to_string(), press));
        }
        let names: BTreeSet<&str> = cfg.keys().map(String::as_str).collect();
        if !names.contains("name") {
            problem("no name".into());
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expands_abbreviations_and_tilde() {
        let p = json!({"~": "m/x", "stat_t": "~/state", "avty_t": "pre/~", "uniq_id": "u", "dev": {"ids": ["n"], "sw": "1"}});
        let e = expand(p.as_object().unwrap());
        assert_eq!(e["state_topic"], "m/x/state");
        assert_eq!(e["availability_topic"], "pre/m/x");
        assert_eq!(e["unique_id"], "u");
        assert_eq!(
            e["device"],
            json!({"identifiers": ["n"], "sw_version": "1"})
        );
        assert!(e.get("~").is_none());
    }

    #[test]
    fn finds_every_kind_of_problem() {
        let mut tree = BTreeMap::new();
        tree.insert("m/a".to_string(), Seen::live(r#"{"x": 1}"#));
        tree.insert(
            "ha/sensor/n/a/config".to_string(),
            Seen::live(
                r#"{"~":"m","stat_t":"~/a","val_tpl":"{{value_json.y}}","uniq_id":"u","name":"A"}"#,
            ),
        );
        tree.insert(
            "ha/sensor/n/b/config".to_string(),
            Seen::live(r#"{"stat_t":"m/missing","uniq_id":"u","name":"B"}"#),
        );
        tree.insert("ha/sensor/n/c/config".to_string(), Seen::live("{nope"));
        tree.insert(
            "ha/button/n/d/config".to_string(),
            Seen::live(r#"{"cmd_t":"m/go","pl_prs":"1","uniq_id":"d","name":"D"}"#),
        );
        let r = check(&tree, "ha");
        assert_eq!(r.configs, 4);
        let msgs: Vec<&str> = r.problems.iter().map(|p| p.message.as_str()).collect();
        assert!(msgs.iter().any(|m| m.contains("value_json.y")), "{msgs:?}");
        assert!(
            msgs.iter()
                .any(|m| m.contains("'m/missing' is never published")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("unique_id 'u' is also used")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.contains("not valid JSON")),
            "{msgs:?}"
        );
        assert_eq!(
            r.commands,
            vec![(
                "ha/button/n/d/config".to_string(),
                "m/go".to_string(),
                "1".to_string()
            )]
        );
    }

    #[test]
    fn knows_the_whole_table() {
        assert!(abbreviations().entity.len() > 200);
        assert_eq!(abbreviations().device["cu"], "configuration_url");
    }
}
