//! Steps on the MQTT topic tree: publishing to the device, and what it published (values, retain flags, JSON
//! fields, history).

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cucumber::{then, when};
use serde_json::Value;

use crate::observer::Observer;
use crate::world::{ctx, Rig};

#[when(expr = "I publish {string} to {string}")]
async fn publish_to(w: &mut Rig, payload: String, rel: String) -> Result<()> {
    w.publish(&rel, payload.as_bytes()).await
}

#[when(expr = "I publish {string} to the absolute topic {string}")]
async fn publish_abs(w: &mut Rig, payload: String, topic: String) -> Result<()> {
    w.obs()?.publish(&topic, payload.as_bytes(), false).await
}

#[when(expr = "I publish an empty payload to {string}")]
async fn publish_empty(w: &mut Rig, rel: String) -> Result<()> {
    w.publish(&rel, b"").await
}

#[when(expr = "I publish {int} bytes to {string}")]
async fn publish_bytes(w: &mut Rig, n: usize, rel: String) -> Result<()> {
    w.publish(&rel, &vec![b'x'; n]).await
}

#[when(expr = "I wait {int} ms")]
async fn wait_ms(_w: &mut Rig, ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[when("I forget what was published")]
async fn forget(w: &mut Rig) -> Result<()> {
    w.obs()?.clear();
    Ok(())
}

#[then(expr = "topic {string} is {string}")]
async fn topic_is(w: &mut Rig, rel: String, payload: String) -> Result<()> {
    w.wait_for(&rel, &payload).await.map(|_| ())
}

async fn retained_check(w: &Rig, rel: &str, payload: &str, want: bool) -> Result<()> {
    w.wait_for(rel, payload).await?;
    // Only a fresh subscriber sees the retain flag. The device re-asserts its birth 2 s after connecting, so a
    // retained value may settle within 3 s (a late LWT of the previous connection); judge it after that window.
    let topic = w.t(rel);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let late = Observer::connect(&ctx().broker, std::slice::from_ref(&topic)).await?;
        let got = late
            .wait_for(&topic, payload, Duration::from_millis(500))
            .await;
        late.disconnect().await;
        let retained = got.as_ref().is_ok_and(|s| s.retain);
        match (want, retained) {
            (true, true) | (false, false) => return Ok(()),
            _ if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            (true, false) => {
                bail!("'{topic}' = '{payload}' is not retained (a new subscriber does not get it)")
            }
            (false, true) => bail!("'{topic}' = '{payload}' is retained but should not be"),
        }
    }
}

#[then(expr = "topic {string} is {string} and retained")]
async fn topic_retained(w: &mut Rig, rel: String, payload: String) -> Result<()> {
    retained_check(w, &rel, &payload, true).await
}

#[then(expr = "topic {string} is {string} and not retained")]
async fn topic_not_retained(w: &mut Rig, rel: String, payload: String) -> Result<()> {
    retained_check(w, &rel, &payload, false).await
}

#[then(expr = "topic {string} is published")]
async fn topic_published(w: &mut Rig, rel: String) -> Result<()> {
    w.obs()?
        .wait_published(&w.t(&rel), ctx().timeout)
        .await
        .map(|_| ())
}

#[then(expr = "topic {string} is not published")]
async fn topic_not_published(w: &mut Rig, rel: String) -> Result<()> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    match w.obs()?.get(&w.t(&rel)) {
        Some(s) => bail!("'{}' was published: {:?}", w.t(&rel), s.payload),
        None => Ok(()),
    }
}

fn json_at(w: &Rig, rel: &str) -> Result<Value> {
    let seen = w
        .obs()?
        .get(&w.t(rel))
        .ok_or_else(|| anyhow!("'{}' was never published", w.t(rel)))?;
    serde_json::from_str(&seen.payload)
        .with_context(|| format!("'{}' is not JSON: {:?}", w.t(rel), seen.payload))
}

fn json_field_of(payload: &str, field: &str) -> Option<String> {
    let v: Value = serde_json::from_str(payload).ok()?;
    // Dotted paths reach into objects: "board.chip_model".
    match field.split('.').try_fold(&v, |cur, key| cur.get(key))? {
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[then(expr = "the JSON at {string} has {string} = {string}")]
async fn json_field(w: &mut Rig, rel: String, field: String, expected: String) -> Result<()> {
    let what = format!("had {field} = {expected:?}");
    w.obs()?
        .wait_until(&w.t(&rel), ctx().timeout, &what, |s| {
            json_field_of(&s.payload, &field).as_deref() == Some(expected.as_str())
        })
        .await
        .map(|_| ())
}

#[then(expr = "the JSON at {string} has {string} starting with {string}")]
async fn json_field_prefix(w: &mut Rig, rel: String, field: String, prefix: String) -> Result<()> {
    w.obs()?.wait_published(&w.t(&rel), ctx().timeout).await?;
    let v = json_at(w, &rel)?;
    let actual = v.get(&field).and_then(Value::as_str).unwrap_or_default();
    if !actual.starts_with(&prefix) {
        bail!(
            "'{}' has {field} = {actual:?}, expected it to start with {prefix:?}",
            w.t(&rel)
        );
    }
    Ok(())
}

#[then(expr = "the JSON at {string} has {string} ending with {string}")]
async fn json_field_suffix(w: &mut Rig, rel: String, field: String, suffix: String) -> Result<()> {
    w.obs()?.wait_published(&w.t(&rel), ctx().timeout).await?;
    let v = json_at(w, &rel)?;
    let actual = v.get(&field).and_then(Value::as_str).unwrap_or_default();
    if !actual.ends_with(&suffix) {
        bail!(
            "'{}' has {field} = {actual:?}, expected it to end with {suffix:?}",
            w.t(&rel)
        );
    }
    Ok(())
}

#[then(expr = "the history of {string} contains {string}")]
async fn history_contains(w: &mut Rig, rel: String, payload: String) -> Result<()> {
    let deadline = std::time::Instant::now() + ctx().timeout;
    loop {
        let history = w.obs()?.history_of(&w.t(&rel));
        if history.iter().any(|s| s.payload == payload) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            let seen: Vec<String> = history.iter().map(|s| s.payload.clone()).collect();
            bail!(
                "'{}' never carried {payload:?}; history {seen:?}",
                w.t(&rel)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
