//! Steps on Home Assistant discovery.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cucumber::then;
use serde_json::Value;

use crate::ha;
use crate::snapshot;
use crate::world::{ctx, Rig};

#[then("the Home Assistant discovery is consistent")]
async fn ha_consistent(w: &mut Rig) -> Result<()> {
    // A cycle's publishes arrive one after another: the last state topics may still be on their way.
    let deadline = std::time::Instant::now() + ctx().timeout;
    let report = loop {
        let report = ha::check(&w.obs()?.tree(), "homeassistant");
        if (report.configs > 0 && report.problems.is_empty())
            || std::time::Instant::now() > deadline
        {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if report.configs == 0 {
        bail!("no discovery configs were published under homeassistant/");
    }
    if !report.problems.is_empty() {
        let lines: Vec<String> = report
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.config_topic, p.message))
            .collect();
        bail!("{} discovery problems:\n{}", lines.len(), lines.join("\n"));
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
async fn discovery_published(w: &mut Rig, which: String) -> Result<()> {
    let topic = discovery_topic(w, &which)?;
    w.obs()?
        .wait_published(&topic, ctx().timeout)
        .await
        .map(|_| ())
}

#[then(expr = "the discovery config {string} matches snapshot {string}")]
async fn discovery_snapshot(w: &mut Rig, which: String, name: String) -> Result<()> {
    let topic = discovery_topic(w, &which)?;
    let seen = w.obs()?.wait_published(&topic, ctx().timeout).await?;
    let mut v: Value = serde_json::from_str(&seen.payload)?;
    snapshot::redact_json(&mut v);
    snapshot::assert_snapshot(
        &name,
        &w.placeholders().apply(&serde_json::to_string_pretty(&v)?),
    );
    Ok(())
}

#[then(expr = "the discovery configs match snapshot {string}")]
async fn discovery_all_snapshot(w: &mut Rig, name: String) -> Result<()> {
    w.obs()?
        .wait_published(&discovery_topic(w, "button/cycle_start")?, ctx().timeout)
        .await?;
    let tree = w.with_retain_flags(w.subtree("homeassistant/")?).await?;
    snapshot::assert_snapshot(&name, &snapshot::tree_text(&tree, &w.placeholders()));
    Ok(())
}

#[then("no discovery config is published")]
async fn no_discovery(w: &mut Rig) -> Result<()> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tree = w.subtree("homeassistant/")?;
    if let Some(t) = tree.keys().next() {
        bail!("discovery config {t} was published although discovery is off");
    }
    Ok(())
}
