//! Steps on Home Assistant discovery, and on a live Home Assistant that discovers the board.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use cucumber::{given, then, when};
use serde_json::{json, Value};

use super::{match_snapshot, Step};
use crate::world::{ctx, set_path, Rig};
use crate::{ha, home_assistant, snapshot};

#[then("the Home Assistant discovery is consistent")]
async fn ha_consistent(w: &mut Rig) -> Step {
    w.expect(
        "the Home Assistant discovery is consistent".into(),
        None,
        "discovery configs without problems".into(),
    );
    // A cycle's publishes arrive one after another: the last state topics may still be on their way.
    let deadline = std::time::Instant::now() + ctx().timeout;
    let report = loop {
        let report = ha::check(&w.obs()?.tree(), "homeassistant");
        if (report.configs > 0 && report.problems.is_empty())
            || std::time::Instant::now() > deadline
        {
            break report;
        }
        if let Some(why) = w.known_outcome(None, true) {
            fail!("discovery is not consistent and cannot become so: {why}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if report.configs == 0 {
        w.saw("no discovery configs");
        fail!("no discovery configs were published under homeassistant/");
    }
    if !report.problems.is_empty() {
        let lines: Vec<String> = report
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.config_topic, p.message))
            .collect();
        w.saw(lines.join("\n"));
        fail!("{} discovery problems:\n{}", lines.len(), lines.join("\n"));
    }
    for (config, cmd, press) in report.commands {
        let next = w.counter() + 1;
        w.obs()?.publish(&cmd, press.as_bytes(), false).await?;
        w.wait_for("process/status/cycle_counter", &next.to_string())
            .await
            .with_context(|| format!("{config}: pressing {cmd} had no effect"))?;
    }
    Ok(())
}

fn discovery_topic(w: &Rig, which: &str) -> Result<String> {
    let (component, object) = which
        .split_once('/')
        .ok_or_else(|| anyhow!("'{which}': expected component/object"))?;
    Ok(format!(
        "homeassistant/{component}/{}/{object}/config",
        w.node
    ))
}

#[then(expr = "the discovery config {string} is published")]
async fn discovery_published(w: &mut Rig, which: String) -> Step {
    let topic = discovery_topic(w, &which)?;
    w.expect(
        format!("the discovery config {which} is published"),
        Some(topic.clone()),
        "(published)".into(),
    );
    w.wait_topic(&topic, "was published", true, |_| true)
        .await?;
    Ok(())
}

#[then(expr = "the discovery config {string} matches snapshot {string}")]
async fn discovery_snapshot(w: &mut Rig, which: String, name: String) -> Step {
    let topic = discovery_topic(w, &which)?;
    let seen = w
        .wait_topic(&topic, "was published", true, |_| true)
        .await?;
    let mut v: Value = serde_json::from_str(&seen.payload)?;
    snapshot::redact_json(&mut v);
    let text = w.placeholders().apply(&serde_json::to_string_pretty(&v)?);
    let what = format!("the discovery config {which} matches snapshot {name}");
    match_snapshot(w, what, &name, &text);
    Ok(())
}

#[then(expr = "the discovery configs match snapshot {string}")]
async fn discovery_all_snapshot(w: &mut Rig, name: String) -> Step {
    let first = discovery_topic(w, "button/cycle_start")?;
    w.wait_topic(&first, "was published", true, |_| true)
        .await?;
    let tree = w.with_retain_flags(w.subtree("homeassistant/")?).await?;
    let text = snapshot::tree_text(&tree, &w.placeholders());
    match_snapshot(
        w,
        format!("the discovery configs match snapshot {name}"),
        &name,
        &text,
    );
    Ok(())
}

#[then("no discovery config is published")]
async fn no_discovery(w: &mut Rig) -> Step {
    w.expect(
        "no discovery config is published".into(),
        None,
        "(none)".into(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tree = w.subtree("homeassistant/")?;
    if let Some(t) = tree.keys().next() {
        w.saw(t.clone());
        fail!("discovery config {t} was published although discovery is off");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// A live Home Assistant on the broker (`@live-home-assistant`, `crate::home_assistant`): what HA shows a user.

/// How long HA may take to show what the board published (HA on a loaded machine is slower than the board).
fn ha_timeout() -> Duration {
    ctx().timeout.max(Duration::from_secs(30))
}

/// Whether `text` names the board `node` (not a board whose node merely starts with it: `..x1` is not `..x12`).
fn mentions(text: &str, node: &str) -> bool {
    let text = text.to_ascii_lowercase();
    let node = node.to_ascii_lowercase();
    text.match_indices(&node).any(|(i, _)| {
        !text[i + node.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// Whether `text` names any board of this run (main topics and node ids end in `_s<seed>x<n>`).
fn mentions_a_board(text: &str) -> bool {
    let mark = format!("_s{}x", ctx().seed);
    text.match_indices(&mark).any(|(i, _)| {
        text[i + mark.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

impl Rig {
    fn live_ha(&self) -> Result<home_assistant::Attached> {
        home_assistant::attached(&self.node).ok_or_else(|| {
            anyhow!("no Home Assistant: start the board with 'Given a virtual board with config \"...\" that Home Assistant discovers'")
        })
    }

    /// WARNING and worse HA logged since the scenario's board started: about this board, or about no board of the
    /// run (HA itself, its MQTT connection).
    fn ha_problems(&self, ha: &home_assistant::Attached) -> Result<Vec<home_assistant::LogRecord>> {
        Ok(ha
            .ha
            .records_since(ha.log_mark)?
            .into_iter()
            .filter(|r| matches!(r.level.as_str(), "WARNING" | "ERROR" | "CRITICAL"))
            .filter(|r| {
                let text = format!("{} {}", r.logger, r.message);
                mentions(&text, &self.node) || !mentions_a_board(&text)
            })
            .collect())
    }

    /// HA's entities of this board: its device (identifiers) or its unique ids (`<node>_...`).
    fn board_entities(&self, all: &[Value]) -> Vec<Value> {
        let prefix = format!("{}_", self.node);
        all.iter()
            .filter(|e| {
                let by_device = e["device"]["identifiers"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|id| id[1] == self.node.as_str()));
                let by_id = e["unique_id"]
                    .as_str()
                    .is_some_and(|u| u.starts_with(&prefix));
                by_device || by_id
            })
            .cloned()
            .collect()
    }

    /// The unique ids of the discovery configs the board published (under its discovery prefix, non-empty).
    fn published_unique_ids(&self, prefix: &str) -> Result<Vec<String>> {
        let part = format!("/{}/", self.node);
        let mut ids = Vec::new();
        for (topic, seen) in self.subtree(&format!("{prefix}/"))? {
            if !topic.contains(&part) || !topic.ends_with("/config") || seen.payload.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&seen.payload)
                .with_context(|| format!("{topic}: not JSON"))?;
            let id = v["uniq_id"]
                .as_str()
                .or(v["unique_id"].as_str())
                .ok_or_else(|| anyhow!("{topic}: no unique id"))?;
            ids.push(id.to_string());
        }
        Ok(ids)
    }

    /// Polls HA's MQTT entities until `check` says Ok or HA's time is up; the error is the last answer, with what
    /// HA logged about the board meanwhile.
    async fn until_ha(
        &mut self,
        mut check: impl FnMut(&Rig, &[Value]) -> std::result::Result<(), String>,
    ) -> Step {
        let ha = self.live_ha()?;
        let deadline = std::time::Instant::now() + ha_timeout();
        loop {
            let last = match ha.ha.entities().await {
                Ok(list) => match check(self, &list) {
                    Ok(()) => return Ok(()),
                    Err(why) => why,
                },
                Err(e) => format!("Home Assistant did not answer: {e:#}"),
            };
            if std::time::Instant::now() > deadline {
                let problems = self.ha_problems(&ha).unwrap_or_default();
                let logged = if problems.is_empty() {
                    String::new()
                } else {
                    let lines: Vec<String> = problems.iter().map(|r| r.short()).collect();
                    format!("\nHome Assistant logged:\n{}", lines.join("\n"))
                };
                self.saw(format!("{last}{logged}"));
                fail!("after {} s: {last}{logged}", ha_timeout().as_secs());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn board_for_ha(&mut self, fixture: &str, own: bool) -> Step {
        let root = ctx().root.clone();
        let ha = if own {
            None
        } else {
            match home_assistant::shared(&root, &ctx().broker).await {
                Ok(ha) => Some(ha),
                Err(e) => {
                    return Err(self
                        .infrastructure("Home Assistant did not start", e)
                        .into())
                }
            }
        };
        self.stage(fixture).await?;
        let ha = match ha {
            Some(ha) => ha,
            None => {
                let prefix = format!("hil-ha-{}", self.node);
                match home_assistant::LiveHa::start(&root, &ctx().broker, &prefix).await {
                    Ok(ha) => {
                        self.action(format!(
                            "Home Assistant {} of the scenario's own started in {:.1?}",
                            ha.version, ha.startup
                        ));
                        Arc::new(ha)
                    }
                    Err(e) => {
                        return Err(self
                            .infrastructure("Home Assistant did not start", e)
                            .into())
                    }
                }
            }
        };
        let config = self
            .config
            .as_mut()
            .ok_or_else(|| anyhow!("no config staged"))?;
        set_path(config, "mqtt.homeassistant.discoveryenabled", json!(true))?;
        set_path(
            config,
            "mqtt.homeassistant.discoveryprefix",
            json!(ha.prefix),
        )?;
        set_path(
            config,
            "mqtt.homeassistant.statustopic",
            json!(format!("{}/status", ha.prefix)),
        )?;
        // From here on HA's log is this scenario's business: discovery starts when the board connects.
        let mark = ha.log_mark();
        self.start().await?;
        home_assistant::attach(&self.node, ha, mark, own);
        Ok(())
    }
}

#[given(expr = "a virtual board with config {string} that Home Assistant discovers")]
async fn board_with_ha(w: &mut Rig, fixture: String) -> Step {
    w.board_for_ha(&fixture, false).await
}

#[given(expr = "a virtual board with config {string} that a Home Assistant of its own discovers")]
async fn board_with_own_ha(w: &mut Rig, fixture: String) -> Step {
    w.board_for_ha(&fixture, true).await
}

/// Every discovery config the board published became an entity of HA, on the board's device, and its entity id
/// carries the device's name (so two meters cannot collide).
#[then("Home Assistant has an entity for every discovery config of the board")]
async fn ha_entity_per_config(w: &mut Rig) -> Step {
    let prefix = w.live_ha()?.ha.prefix.clone();
    w.expect(
        "Home Assistant has an entity for every discovery config of the board".into(),
        None,
        format!("one entity per config under {prefix}/+/{}/", w.node),
    );
    w.until_ha(|w, all| {
        let ids = w
            .published_unique_ids(&prefix)
            .map_err(|e| format!("{e:#}"))?;
        if ids.is_empty() {
            return Err(format!(
                "the board published no discovery config under {prefix}/"
            ));
        }
        let mine = w.board_entities(all);
        let mut problems = Vec::new();
        for id in &ids {
            match mine.iter().find(|e| e["unique_id"] == id.as_str()) {
                None => problems.push(format!("{id}: no entity")),
                Some(e) => {
                    let entity = e["entity_id"].as_str().unwrap_or_default();
                    let object = entity.split_once('.').map_or(entity, |(_, o)| o);
                    if !object.starts_with(&format!("{}_", w.node)) {
                        problems.push(format!(
                            "{id}: entity id {entity} lacks the device name {}",
                            w.node
                        ));
                    }
                    if !e["device"]["identifiers"]
                        .as_array()
                        .is_some_and(|ids| ids.iter().any(|i| i[1] == w.node.as_str()))
                    {
                        problems.push(format!("{id}: {entity} is not on the device {}", w.node));
                    }
                    if e["disabled_by"].is_string() {
                        problems.push(format!("{id}: {entity} disabled by {}", e["disabled_by"]));
                    }
                }
            }
        }
        for e in &mine {
            if !ids.iter().any(|id| e["unique_id"] == id.as_str()) {
                problems.push(format!(
                    "{}: an entity of no published config",
                    e["entity_id"]
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} configs, {} entities of the board:\n{}",
                ids.len(),
                mine.len(),
                problems.join("\n")
            ))
        }
    })
    .await
}

fn entity_of<'a>(
    w: &Rig,
    all: &'a [Value],
    object: &str,
) -> std::result::Result<&'a Value, String> {
    let id = format!("{}_{object}", w.node);
    all.iter()
        .find(|e| e["unique_id"] == id.as_str())
        .ok_or_else(|| format!("Home Assistant has no entity with unique id {id}"))
}

/// The state HA shows for the board's entity `object` (its unique id is `<node>_<object>`), e.g. `123.45`,
/// `on`, `unknown`, `unavailable`.
#[then(expr = "Home Assistant shows {string} as {string}")]
async fn ha_shows(w: &mut Rig, object: String, want: String) -> Step {
    w.expect(
        format!("Home Assistant shows {object} as {want}"),
        None,
        want.clone(),
    );
    w.until_ha(|w, all| {
        let e = entity_of(w, all, &object)?;
        let state = e["state"].as_str().unwrap_or("(no state)");
        if state == want {
            Ok(())
        } else {
            Err(format!("{} is {state:?}, not {want:?}", e["entity_id"]))
        }
    })
    .await
}

#[then(expr = "the unit of {string} in Home Assistant is {string}")]
async fn ha_unit(w: &mut Rig, object: String, want: String) -> Step {
    w.expect(
        format!("the unit of {object} in Home Assistant is {want}"),
        None,
        want.clone(),
    );
    w.until_ha(|w, all| {
        let e = entity_of(w, all, &object)?;
        match e["unit_of_measurement"].as_str() {
            Some(u) if u == want => Ok(()),
            other => Err(format!(
                "{} has unit {other:?}, not {want:?}",
                e["entity_id"]
            )),
        }
    })
    .await
}

/// Every entity of the board `unavailable` (what HA shows when the board's last will says `offline`), or none.
#[then(regex = r"^every entity of the board is (available|unavailable) in Home Assistant$")]
async fn ha_availability(w: &mut Rig, which: String) -> Step {
    let want_unavailable = which == "unavailable";
    w.expect(
        format!("every entity of the board is {which} in Home Assistant"),
        None,
        which.clone(),
    );
    let prefix = w.live_ha()?.ha.prefix.clone();
    w.until_ha(|w, all| {
        let published = w
            .published_unique_ids(&prefix)
            .map_err(|e| format!("{e:#}"))?
            .len();
        let mine = w.board_entities(all);
        if mine.is_empty() || mine.len() < published {
            return Err(format!(
                "Home Assistant has {} entities of the board, {published} discovery configs",
                mine.len()
            ));
        }
        let wrong: Vec<String> = mine
            .iter()
            .filter(|e| (e["state"] == "unavailable") != want_unavailable)
            .map(|e| format!("{} = {}", e["entity_id"], e["state"]))
            .collect();
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} of {} entities are not {which}:\n{}",
                wrong.len(),
                mine.len(),
                wrong.join("\n")
            ))
        }
    })
    .await
}

/// Presses the board's button entity `object` as a user does in HA's UI (service `button.press`).
#[when(expr = "I press {string} in Home Assistant")]
async fn ha_press(w: &mut Rig, object: String) -> Step {
    let mut entity = String::new();
    w.until_ha(|w, all| {
        let e = entity_of(w, all, &object)?;
        let id = e["entity_id"].as_str().unwrap_or_default();
        if !id.starts_with("button.") {
            return Err(format!("{id} is not a button"));
        }
        if e["state"] == "unavailable" {
            return Err(format!("{id} is unavailable"));
        }
        entity = id.to_string();
        Ok(())
    })
    .await?;
    w.action(format!("pressed {entity} in Home Assistant"));
    let ha = w.live_ha()?;
    ha.ha
        .call_service("button.press", &json!({ "entity_id": entity }))
        .await?;
    Ok(())
}

/// Home Assistant stops cleanly and starts again (its registries kept): only an HA of the scenario's own.
#[when("Home Assistant restarts")]
async fn ha_restarts(w: &mut Rig) -> Step {
    let ha = w.live_ha()?;
    if !ha.own {
        fail!("the shared Home Assistant does not restart (every scenario's entities would go unavailable): use 'that a Home Assistant of its own discovers'");
    }
    let before = ha.ha.starts();
    let took = match ha.ha.restart().await {
        Ok(t) => t,
        Err(e) => return Err(w.infrastructure("Home Assistant did not restart", e).into()),
    };
    if ha.ha.starts() != before + 1 {
        fail!(
            "Home Assistant reported start {} after start {before}",
            ha.ha.starts()
        );
    }
    w.action(format!("Home Assistant restarted in {took:.1?}"));
    Ok(())
}

/// What a user sees in HA's log (Settings > System > Logs): no WARNING, ERROR or CRITICAL record about this board, nor
/// any about no board at all (HA itself, its MQTT connection), since the board started.
#[then("Home Assistant logged no error or warning about the board")]
async fn ha_log_clean(w: &mut Rig) -> Step {
    let ha = w.live_ha()?;
    w.expect(
        "Home Assistant logged no error or warning about the board".into(),
        None,
        "(none)".into(),
    );
    // A barrier: once HA has handled a ping the rig publishes now, it has handled whatever the board and the rig
    // published before; HA's log writer (a queue and a thread) gets a moment more.
    let token = format!("{}-{}", w.node, w.now().as_nanos());
    w.obs()?
        .publish(home_assistant::PING_TOPIC, token.as_bytes(), false)
        .await?;
    let deadline = std::time::Instant::now() + ha_timeout();
    while !ha.ha.ping_seen(&token).await? {
        if std::time::Instant::now() > deadline {
            fail!(
                "Home Assistant did not handle the rig's message on {} within {} s",
                home_assistant::PING_TOPIC,
                ha_timeout().as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let problems = w.ha_problems(&ha)?;
    if !problems.is_empty() {
        // The evidence gets the whole records (tracebacks), the failure their gist.
        let whole: Vec<String> = problems.iter().map(ToString::to_string).collect();
        w.saw(whole.join("\n"));
        let lines: Vec<String> = problems.iter().map(|r| r.short()).collect();
        fail!(
            "Home Assistant logged {} problem(s):\n{}",
            problems.len(),
            lines.join("\n")
        );
    }
    Ok(())
}
