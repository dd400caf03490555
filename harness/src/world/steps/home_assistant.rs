//! Steps on Home Assistant discovery.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use cucumber::then;
use serde_json::Value;

use super::{match_snapshot, Step};
use crate::world::{ctx, Rig};
use crate::{ha, snapshot};

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
