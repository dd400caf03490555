//! Snapshot steps: JSON payloads and topic trees against `features/snapshots/`.

use anyhow::Result;
use cucumber::then;
use serde_json::Value;

use crate::snapshot;
use crate::world::{ctx, Rig};

#[then(expr = "the JSON at {string} matches snapshot {string}")]
async fn json_snapshot(w: &mut Rig, rel: String, name: String) -> Result<()> {
    w.obs()?.wait_published(&w.t(&rel), ctx().timeout).await?;
    let seen = w.obs()?.get(&w.t(&rel)).unwrap_or_else(|| unreachable!());
    let mut v: Value = serde_json::from_str(&seen.payload)?;
    snapshot::redact_json(&mut v);
    let text = serde_json::to_string_pretty(&v)?;
    snapshot::assert_snapshot(&name, &w.placeholders().apply(&text));
    Ok(())
}

#[then(expr = "the topic tree matches snapshot {string}")]
async fn tree_snapshot(w: &mut Rig, name: String) -> Result<()> {
    let tree = w.with_retain_flags(w.obs()?.tree()).await?;
    snapshot::assert_snapshot(&name, &snapshot::tree_text(&tree, &w.placeholders()));
    Ok(())
}

#[then(expr = "the topic tree under {string} matches snapshot {string}")]
async fn subtree_snapshot(w: &mut Rig, rel: String, name: String) -> Result<()> {
    let tree = w.with_retain_flags(w.subtree(&w.t(&rel))?).await?;
    snapshot::assert_snapshot(&name, &snapshot::tree_text(&tree, &w.placeholders()));
    Ok(())
}
