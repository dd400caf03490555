//! `fixtures/reference/v17-surface.toml` (the machine-readable v17.0.0 comparison) kept true by the rig: two virtual
//! boards on the embedded broker (`fixtures/configs/ha-json-topics.json`: JSON and single topics, HA discovery, two
//! exposed GPIO pins; once with `retainprocessdata` on, once off) run a cycle, and their live topic trees are held
//! against the table:
//!
//! - every `[[topic]]`: published (each sequence id, each exposed pin), retained as v17 (`retain`, `"config"` =
//!   `retainprocessdata`) or as we decided (`ours_retain`), judged by a subscriber that comes after the cycle;
//!   every publish at the table's QoS (`ours_qos`); every payload matching `pattern`; JSON payloads with every
//!   property of `properties`;
//! - every `[[ha_entity]]`: its config topic (per sequence, per pin), v17's unique id and name; all keys but `qos`
//!   and `dev` for the `same` ones; no discovery config the table does not list;
//! - control payloads naming a key twice are refused (decision 62) and change nothing;
//! - and, without a board, the counts in `docs/mqtt-api/reference-comparison.md` and the decisions the verdicts cite.
//!
//! The rig knows the device only through fixtures and the table (no firmware crate).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

// The rig's regex engine, as cucumber re-exports it for its steps (the harness has no regex dependency of its own).
use cucumber::codegen::Regex;
use harness::board::{Board, VirtualBoard};
use harness::broker::{self, BrokerTarget};
use harness::observer::{Direction, Observer, Seen};
use harness::sntp::SntpServer;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(15);

/// Pin modes whose state carries `pwm_duty` (v17 `gpioPin.cpp` 217-220; flashlight-default is PWM on the boards
/// v17 runs on).
const PWM_MODES: [&str; 3] = ["output-pwm", "flashlight-pwm", "flashlight-default"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn surface() -> toml::Table {
    let path = root().join("fixtures/reference/v17-surface.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn items<'a>(table: &'a toml::Table, kind: &str) -> Vec<&'a toml::Table> {
    table
        .get(kind)
        .and_then(toml::Value::as_array)
        .map(|a| a.iter().filter_map(toml::Value::as_table).collect())
        .unwrap_or_default()
}

fn text<'a>(item: &'a toml::Table, key: &str) -> &'a str {
    item.get(key).and_then(toml::Value::as_str).unwrap_or("")
}

/// A table topic (`process/data/[N]/json`) as an anchored regex; the placeholders capture.
fn topic_regex(main: &str, topic: &str) -> Regex {
    let mut re = String::from("^");
    for c in format!("{main}/{topic}")
        .replace("[N]", "\u{1}")
        .replace("[G]", "\u{2}")
        .chars()
    {
        match c {
            '\u{1}' => re.push_str("([0-9]+)"),
            '\u{2}' => re.push_str("([A-Za-z0-9_-]+)"),
            c if "\\.+*?()|[]{}^$#&-~".contains(c) => {
                re.push('\\');
                re.push(c);
            }
            c => re.push(c),
        }
    }
    re.push('$');
    Regex::new(&re).unwrap()
}

/// What a board published, as the rig saw it.
struct Live {
    tag: &'static str,
    main: String,
    node: String,
    prefix: String,
    config: Value,
    /// Every publish the first observer received, per topic, in order.
    history: BTreeMap<String, Vec<Seen>>,
    /// Topics a subscriber that came after the cycle got with the retain flag.
    retained: BTreeSet<String>,
}

impl Live {
    fn retain_process_data(&self) -> bool {
        self.config["mqtt"]["retainprocessdata"].as_bool() == Some(true)
    }

    fn sequences(&self) -> Vec<(u64, String)> {
        self.config["numbersequences"]["sequence"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                (
                    s["sequenceid"].as_u64().unwrap(),
                    s["sequencename"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Exposed pins: (topic name, mode).
    fn exposed_pins(&self) -> Vec<(String, String)> {
        self.config["gpio"]["gpiopin"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["pinenabled"] == json!(true) && p["exposetomqtt"] == json!(true))
            .map(|p| {
                let name = p["pinname"].as_str().unwrap_or_default();
                let name = if name.is_empty() {
                    format!("gpio{}", p["gpionumber"])
                } else {
                    name.to_string()
                };
                (name, p["pinmode"].as_str().unwrap().to_string())
            })
            .collect()
    }

    fn discovery(&self) -> BTreeMap<String, Value> {
        let re = Regex::new(&format!(
            "^{}/[a-z_]+/{}/[A-Za-z0-9_-]+/config$",
            self.prefix, self.node
        ))
        .unwrap();
        self.history
            .iter()
            .filter(|(t, _)| re.is_match(t))
            .filter_map(|(t, seen)| {
                let last = seen.last()?;
                Some((t.clone(), serde_json::from_str(&last.payload).ok()?))
            })
            .collect()
    }
}

/// Starts a board with `ha-json-topics.json` on `broker`, runs a cycle with frames, and records its tree.
async fn run_board(
    bin: &Path,
    broker: &BrokerTarget,
    sntp: &SntpServer,
    tag: &'static str,
    retain_process_data: bool,
) -> (Live, VirtualBoard, Observer) {
    let fixture = root().join("fixtures/configs/ha-json-topics.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let node = format!("v17s_{}_{tag}", std::process::id());
    let main = format!("hil/{node}");
    let mut mqtt = broker.board_settings(&broker.uri());
    mqtt.insert("maintopic".into(), json!(main));
    mqtt.insert("clientid".into(), json!(node));
    mqtt.insert("retainprocessdata".into(), json!(retain_process_data));
    for (k, v) in mqtt {
        config["mqtt"][k] = v;
    }
    config["network"]["time"]["ntp"] =
        json!({"timesyncenabled": true, "timeserver": sntp.address()});
    let prefix = config["mqtt"]["homeassistant"]["discoveryprefix"]
        .as_str()
        .unwrap()
        .to_string();

    let filters = [format!("{main}/#"), format!("{prefix}/+/{node}/#")];
    let obs = Observer::connect(broker, &filters).await.expect("observer");
    let dir = std::env::temp_dir().join(format!("hil-v17-surface-{node}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut board = tokio::task::block_in_place(|| VirtualBoard::start(bin, &dir, Some(&config)))
        .expect("virtual board");
    let t = |rel: &str| format!("{main}/{rel}");
    obs.wait_for(&t("device/status/connection"), "online", WAIT)
        .await
        .expect("the board comes online");
    // The fixture measures automatically: the first cycle waits for MQTT and the first time sync (the start
    // interlock), and reads `N` (no frame yet); the second, started over MQTT, reads the frames.
    let counter = t("process/status/cycle_counter");
    let idle = "Idle - Waiting For Autostart";
    let state = t("process/status/process_state");
    obs.wait_for(&counter, "1", WAIT)
        .await
        .expect("the first automatic cycle");
    obs.wait_for(&state, idle, WAIT)
        .await
        .expect("the first cycle ends");
    for line in [
        "frame main digits=1,2,3,4.2 analogs=5.5,6.6",
        "frame second digits=7,8.1",
    ] {
        let reply = tokio::task::block_in_place(|| board.console(line, WAIT)).expect(line);
        assert!(reply.starts_with("ok"), "{line}: {reply}");
    }
    obs.publish(&t("process/ctrl/cycle_start"), b"1", false)
        .await
        .unwrap();
    obs.wait_for(&counter, "2", WAIT)
        .await
        .expect("the second cycle");
    obs.wait_for(&state, idle, WAIT)
        .await
        .expect("the second cycle ends");

    // Only a subscriber that comes later sees the retain flag (an empty retained payload deletes the topic's
    // retained message, so such a topic has none).
    let late = Observer::connect(broker, &[format!("{main}/#")])
        .await
        .expect("late observer");
    late.wait_published(&t("device/status/connection"), WAIT)
        .await
        .expect("a retained connection state");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let retained = late
        .timeline()
        .into_iter()
        .filter(|l| l.direction == Direction::Received && l.seen.retain)
        .map(|l| l.topic)
        .collect();
    late.disconnect().await;

    let mut history: BTreeMap<String, Vec<Seen>> = BTreeMap::new();
    for logged in obs.timeline() {
        if logged.direction == Direction::Received {
            history.entry(logged.topic).or_default().push(logged.seen);
        }
    }
    let live = Live {
        tag,
        main,
        node,
        prefix,
        config,
        history,
        retained,
    };
    (live, board, obs)
}

/// Every `[[topic]]` of the table against one board's tree.
fn check_topics(surface: &toml::Table, live: &Live, problems: &mut Vec<String>) {
    let sequence_ids: BTreeSet<String> = live
        .sequences()
        .iter()
        .map(|(id, _)| id.to_string())
        .collect();
    let pins: BTreeMap<String, String> = live.exposed_pins().into_iter().collect();
    let pin_names: BTreeSet<String> = pins.keys().cloned().collect();
    for item in items(surface, "topic") {
        let topic = text(item, "topic");
        let re = topic_regex(&live.main, topic);
        let say = |problems: &mut Vec<String>, what: String| {
            problems.push(format!(
                "[{}] topic {topic} ({}): {what}",
                live.tag,
                text(item, "verdict")
            ))
        };
        let matched: Vec<(&String, &Vec<Seen>)> = live
            .history
            .iter()
            .filter(|(t, _)| re.is_match(t))
            .collect();
        if matched.is_empty() {
            say(problems, "never published".into());
            continue;
        }
        // Every sequence, every exposed pin.
        let caught: BTreeSet<String> = matched
            .iter()
            .filter_map(|(t, _)| re.captures(t)?.get(1).map(|m| m.as_str().to_string()))
            .collect();
        if topic.contains("[N]") && caught != sequence_ids {
            say(
                problems,
                format!("published for sequences {caught:?}, the config has {sequence_ids:?}"),
            );
        }
        if topic.contains("[G]") && caught != pin_names {
            say(
                problems,
                format!("published for pins {caught:?}, the exposed pins are {pin_names:?}"),
            );
        }
        let retain = item.get("ours_retain").or_else(|| item.get("retain"));
        let want_retained = match retain {
            Some(toml::Value::Boolean(b)) => *b,
            Some(toml::Value::String(s)) if s == "config" => live.retain_process_data(),
            other => panic!("{topic}: retain {other:?}"),
        };
        let qos = item
            .get("ours_qos")
            .or_else(|| item.get("qos"))
            .and_then(toml::Value::as_integer)
            .unwrap_or_else(|| panic!("{topic}: no qos")) as u8;
        let pattern = item
            .get("pattern")
            .and_then(toml::Value::as_str)
            .map(|p| Regex::new(p).unwrap_or_else(|e| panic!("{topic}: pattern: {e}")));
        let properties: Vec<&str> = item
            .get("properties")
            .and_then(toml::Value::as_array)
            .map(|a| a.iter().filter_map(toml::Value::as_str).collect())
            .unwrap_or_default();
        let pwm_only: Vec<&str> = item
            .get("pwm_only_properties")
            .and_then(toml::Value::as_array)
            .map(|a| a.iter().filter_map(toml::Value::as_str).collect())
            .unwrap_or_default();
        for (t, seen) in matched {
            let retained = live.retained.contains(t.as_str());
            // A retained empty payload deletes the topic's retained message: there is nothing to see.
            let deleted = seen.last().is_some_and(|s| s.payload.is_empty());
            let pwm_pin = re
                .captures(t)
                .and_then(|c| c.get(1))
                .and_then(|name| pins.get(name.as_str()))
                .is_some_and(|mode| PWM_MODES.contains(&mode.as_str()));
            if retained != want_retained && !(want_retained && deleted) {
                say(
                    problems,
                    format!("{t}: retained {retained}, the table says {want_retained}"),
                );
            }
            for s in seen {
                if s.qos != qos {
                    say(
                        problems,
                        format!("{t} {:?}: QoS {}, the table says {qos}", s.payload, s.qos),
                    );
                }
                if let Some(p) = &pattern {
                    if !p.is_match(&s.payload) {
                        say(
                            problems,
                            format!("{t}: {:?} does not match {}", s.payload, p.as_str()),
                        );
                    }
                }
                if text(item, "format") == "json" {
                    match serde_json::from_str::<Value>(&s.payload) {
                        Ok(v) if v.is_object() => {
                            for p in properties
                                .iter()
                                .filter(|p| pwm_pin || !pwm_only.contains(p))
                            {
                                let pointer = format!("/{}", p.replace('.', "/"));
                                if v.pointer(&pointer).is_none() {
                                    say(problems, format!("{t}: no property {p} in {}", s.payload));
                                }
                            }
                        }
                        _ => say(problems, format!("{t}: not a JSON object: {:?}", s.payload)),
                    }
                }
            }
        }
    }
}

/// Every `[[ha_entity]]` of the table against one board's discovery configs.
fn check_entities(surface: &toml::Table, live: &Live, problems: &mut Vec<String>) {
    let configs = live.discovery();
    if configs.is_empty() {
        problems.push(format!(
            "[{}] no discovery config under {}/",
            live.tag, live.prefix
        ));
        return;
    }
    let sequences = live.sequences();
    let pins = live.exposed_pins();
    let mut listed = BTreeSet::new();
    for item in items(surface, "ha_entity") {
        let (component, object_id) = (text(item, "component"), text(item, "object_id"));
        let verdict = text(item, "verdict");
        // One expansion per sequence ([S], [N]) or per pin ([G]; `pwm_duty` only for PWM pins).
        let mut expansions: Vec<Vec<(&str, String)>> = Vec::new();
        if object_id.contains("[S]") {
            for (id, name) in &sequences {
                expansions.push(vec![("[S]", name.clone()), ("[N]", id.to_string())]);
            }
        } else if object_id.contains("[G]") {
            for (name, mode) in &pins {
                if object_id.ends_with("pwm_duty") && mode != "output-pwm" {
                    continue;
                }
                expansions.push(vec![("[G]", name.clone())]);
            }
        } else {
            expansions.push(Vec::new());
        }
        for subst in expansions {
            let fill = |s: &str| {
                let mut s = s.replace("[node]", &live.node).replace("[M]", &live.main);
                for (k, v) in &subst {
                    s = s.replace(k, v);
                }
                s
            };
            let topic = format!(
                "{}/{component}/{}/{}/config",
                live.prefix,
                live.node,
                fill(object_id)
            );
            listed.insert(topic.clone());
            let say = |problems: &mut Vec<String>, what: String| {
                problems.push(format!(
                    "[{}] HA {component} {object_id} ({verdict}): {what}",
                    live.tag
                ))
            };
            let Some(payload) = configs.get(&topic) else {
                say(problems, format!("no config on {topic}"));
                continue;
            };
            let Some(keys) = item.get("keys").and_then(toml::Value::as_table) else {
                continue;
            };
            // Entity identity, whatever the verdict: v17's unique id and name.
            for key in ["uniq_id", "name"] {
                if let Some(want) = keys.get(key).and_then(toml::Value::as_str) {
                    if payload[key].as_str() != Some(fill(want).as_str()) {
                        say(
                            problems,
                            format!("{key} {}, v17 {:?}", payload[key], fill(want)),
                        );
                    }
                }
            }
            if verdict != "same" {
                continue;
            }
            // `qos` (a string in v17, decision 10) and `dev` (decision 13) are compared once, not per entity.
            for (key, want) in keys
                .iter()
                .filter(|(k, _)| !["qos", "dev"].contains(&k.as_str()))
            {
                let want = match want {
                    toml::Value::String(s) => json!(fill(s)),
                    other => serde_json::to_value(other).unwrap(),
                };
                if payload.get(key) != Some(&want) {
                    say(
                        problems,
                        format!("{key} = {:?}, v17 {want}", payload.get(key)),
                    );
                }
            }
            let extra: Vec<&String> = payload
                .as_object()
                .map(|o| o.keys().filter(|k| !keys.contains_key(*k)).collect())
                .unwrap_or_default();
            if !extra.is_empty() {
                say(problems, format!("keys v17 does not send: {extra:?}"));
            }
        }
    }
    for topic in configs.keys().filter(|t| !listed.contains(*t)) {
        problems.push(format!(
            "[{}] {topic}: an entity the table does not list",
            live.tag
        ));
    }
}

/// The board's console `status` JSON.
fn status(board: &mut VirtualBoard) -> Value {
    let reply = tokio::task::block_in_place(|| board.console("status", WAIT)).expect("status");
    let json = reply
        .strip_prefix("ok ")
        .unwrap_or_else(|| panic!("status: {reply}"));
    serde_json::from_str(json).unwrap()
}

/// `[[behaviour]]` "a key named twice in a control payload": refused (decision 62), nothing changes.
async fn check_duplicate_keys(
    live: &Live,
    board: &mut VirtualBoard,
    obs: &Observer,
    problems: &mut Vec<String>,
) {
    let (pin, _) = live
        .exposed_pins()
        .into_iter()
        .next()
        .expect("an exposed pin");
    let state_topic = format!("{}/device/gpio/{pin}/state", live.main);
    let cases = [
        (
            format!("{}/process/ctrl/set_fallbackvalue", live.main),
            r#"{"sequence":"main","value":1,"value":2}"#.to_string(),
            "set_fallbackvalue",
        ),
        (
            format!("{}/device/gpio/{pin}/ctrl", live.main),
            r#"{"state":1,"state":0}"#.to_string(),
            "gpio ctrl",
        ),
    ];
    for (topic, payload, what) in cases {
        // A republish of the same state (the board repeats its states 2 s after connecting with discovery on,
        // decision 53) is no change; a new payload is.
        let states_before = obs.history_of(&state_topic);
        let fallback_before = status(board)["sequences"][0]["fallback_value"].clone();
        obs.publish(&topic, payload.as_bytes(), false)
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let error = loop {
            let s = status(board);
            let error = s["last_error"].as_str().unwrap_or_default().to_string();
            if (error.contains(what) && error.contains("twice"))
                || std::time::Instant::now() > deadline
            {
                break (error, s);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (error, s) = error;
        if !(error.contains(what) && error.contains("twice")) {
            problems.push(format!(
                "[{}] {payload} on {topic} was not refused for its duplicate key: last_error {error:?}",
                live.tag
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let last_before = states_before.last().map(|s| s.payload.clone());
        if obs
            .history_of(&state_topic)
            .iter()
            .skip(states_before.len())
            .any(|s| Some(&s.payload) != last_before.as_ref())
        {
            problems.push(format!(
                "[{}] {payload} on {topic} changed the pin",
                live.tag
            ));
        }
        if s["sequences"][0]["fallback_value"] != fallback_before {
            problems.push(format!(
                "[{}] {payload} on {topic} set the fallback value",
                live.tag
            ));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_board_publishes_what_the_v17_table_says() {
    let surface = surface();
    let bin = common::board_bin();
    let broker = broker::start_embedded("127.0.0.1:0".parse().unwrap()).expect("broker");
    let sntp = SntpServer::start().expect("sntp");
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(
        run_board(&bin, &broker, &sntp, "retained", true),
        run_board(&bin, &broker, &sntp, "unretained", false),
    );
    let ((retained, mut board, obs), (unretained, _board_b, _obs_b)) = (a, b);
    let mut problems = Vec::new();
    for live in [&retained, &unretained] {
        check_topics(&surface, live, &mut problems);
    }
    check_entities(&surface, &retained, &mut problems);
    check_duplicate_keys(&retained, &mut board, &obs, &mut problems).await;
    assert!(
        problems.is_empty(),
        "{} differences from fixtures/reference/v17-surface.toml:\n{}",
        problems.len(),
        problems.join("\n")
    );
    eprintln!(
        "two boards checked against the table in {:?}",
        started.elapsed()
    );
}

/// The md's counts line and the decisions the verdicts cite (existing, not withdrawn): no board needed.
#[test]
fn the_comparison_and_the_decisions_agree_with_the_table() {
    let surface = surface();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut cited: BTreeSet<u32> = BTreeSet::new();
    let mut total = 0;
    for kind in ["topic", "control", "ha_entity", "meter_type", "behaviour"] {
        for item in items(&surface, kind) {
            total += 1;
            let verdict = text(item, "verdict");
            let category = match verdict {
                "same" | "spec" | "DIFF" => verdict,
                v if v.starts_with("decision ") => {
                    for n in v["decision ".len()..].split(',') {
                        cited.insert(n.trim().parse().unwrap_or_else(|_| panic!("verdict {v:?}")));
                    }
                    "decision"
                }
                v => panic!("unknown verdict {v:?}"),
            };
            *counts.entry(category).or_default() += 1;
        }
    }
    let n = |k: &str| counts.get(k).copied().unwrap_or(0);
    let line = format!(
        "{total} items: **{} same, {} spec, {} decision, {} DIFF**.",
        n("same"),
        n("spec"),
        n("decision"),
        n("DIFF")
    );
    let md = std::fs::read_to_string(root().join("docs/mqtt-api/reference-comparison.md")).unwrap();
    assert!(
        md.lines().any(|l| l == line),
        "docs/mqtt-api/reference-comparison.md does not say '{line}': regenerate it with \
         `python3 ci/reference_comparison.py`"
    );
    // The whole md, when a Python with tomllib (3.11+) is there to generate it.
    match std::process::Command::new("python3")
        .arg(root().join("ci/reference_comparison.py"))
        .arg("--check")
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) if String::from_utf8_lossy(&out.stderr).contains("tomllib") => {
            eprintln!("skipped the md check: python3 has no tomllib (3.11+ needed)")
        }
        Ok(out) => panic!("{}", common::text(&out)),
        Err(e) => eprintln!("skipped the md check: no python3 ({e})"),
    }
    let decisions = std::fs::read_to_string(root().join("docs/decisions.md")).unwrap();
    let mut rows: BTreeMap<u32, bool> = BTreeMap::new(); // number -> withdrawn
    for l in decisions.lines() {
        let cells: Vec<&str> = l.split(" | ").collect();
        if let (Some(num), Some(we_do)) = (cells.first(), cells.get(3)) {
            if let Ok(num) = num.trim_start_matches("| ").parse::<u32>() {
                rows.insert(num, we_do.starts_with("withdrawn"));
            }
        }
    }
    for d in cited {
        match rows.get(&d) {
            None => panic!("a verdict cites decision {d}, which docs/decisions.md does not have"),
            Some(true) => panic!("a verdict cites decision {d}, which is withdrawn"),
            Some(false) => {}
        }
    }
}
