//! Snapshot steps: JSON payloads and topic trees against `features/snapshots/`.

use cucumber::then;
use serde_json::Value;

use super::{match_snapshot as check, Step};
use crate::snapshot;
use crate::world::Rig;

#[then(expr = "the JSON at {string} matches snapshot {string}")]
async fn json_snapshot(w: &mut Rig, rel: String, name: String) -> Step {
    let topic = w.t(&rel);
    let seen = w
        .wait_topic(&topic, "was published", true, |_| true)
        .await?;
    let mut v: Value = serde_json::from_str(&seen.payload)?;
    snapshot::redact_json(&mut v);
    let text = w.placeholders().apply(&serde_json::to_string_pretty(&v)?);
    check(
        w,
        format!("the JSON at '{rel}' matches snapshot {name}"),
        &name,
        &text,
    );
    Ok(())
}

#[then(expr = "the topic tree matches snapshot {string}")]
async fn tree_snapshot(w: &mut Rig, name: String) -> Step {
    let tree = w.with_retain_flags(w.obs()?.tree()).await?;
    let text = snapshot::tree_text(&tree, &w.placeholders());
    check(
        w,
        format!("the topic tree matches snapshot {name}"),
        &name,
        &text,
    );
    Ok(())
}

#[then(expr = "the topic tree under {string} matches snapshot {string}")]
async fn subtree_snapshot(w: &mut Rig, rel: String, name: String) -> Step {
    let tree = w.with_retain_flags(w.subtree(&w.t(&rel))?).await?;
    let text = snapshot::tree_text(&tree, &w.placeholders());
    let what = format!("the topic tree under '{rel}' matches snapshot {name}");
    check(w, what, &name, &text);
    Ok(())
}
