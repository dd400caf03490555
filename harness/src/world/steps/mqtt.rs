//! Steps on the MQTT topic tree: publishing to the device, and what it published (values, retain flags, JSON
//! fields, history).

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cucumber::{then, when};
use serde_json::Value;

use super::Step;
use crate::observer::Observer;
use crate::world::{ctx, Rig};

#[when(expr = "I publish {string} to {string}")]
async fn publish_to(w: &mut Rig, payload: String, rel: String) -> Step {
    Ok(w.publish(&rel, payload.as_bytes()).await?)
}

#[when(expr = "I publish {string} to the absolute topic {string}")]
async fn publish_abs(w: &mut Rig, payload: String, topic: String) -> Step {
    Ok(w.obs()?.publish(&topic, payload.as_bytes(), false).await?)
}

#[when(expr = "I publish an empty payload to {string}")]
async fn publish_empty(w: &mut Rig, rel: String) -> Step {
    Ok(w.publish(&rel, b"").await?)
}

#[when(expr = "I publish {int} bytes to {string}")]
async fn publish_bytes(w: &mut Rig, n: usize, rel: String) -> Step {
    Ok(w.publish(&rel, &vec![b'x'; n]).await?)
}

#[when(expr = "I publish {string} padded with spaces to {int} bytes to {string}")]
async fn publish_padded(w: &mut Rig, payload: String, n: usize, rel: String) -> Step {
    if payload.len() > n {
        fail!(
            "{payload:?} is already {} bytes, more than {n}",
            payload.len()
        );
    }
    // Whitespace after a JSON value is still the same JSON document.
    let mut bytes = payload.into_bytes();
    bytes.resize(n, b' ');
    Ok(w.publish(&rel, &bytes).await?)
}

#[when(expr = "I wait {int} ms")]
async fn wait_ms(_w: &mut Rig, ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[when("I forget what was published")]
async fn forget(w: &mut Rig) -> Step {
    w.obs()?.clear();
    Ok(())
}

#[then(expr = "topic {string} is {string}")]
async fn topic_is(w: &mut Rig, rel: String, payload: String) -> Step {
    let topic = w.t(&rel);
    w.expect(
        format!("topic '{rel}' is {payload:?}"),
        Some(topic.clone()),
        payload.clone(),
    );
    w.wait_topic(&topic, &format!("read {payload:?}"), true, |s| {
        s.payload == payload
    })
    .await?;
    Ok(())
}

async fn retained_check(w: &mut Rig, rel: &str, payload: &str, want: bool) -> Result<()> {
    let topic = w.t(rel);
    let what = if want { "retained" } else { "not retained" };
    w.expect(
        format!("topic '{rel}' is {payload:?} and {what}"),
        Some(topic.clone()),
        format!("{payload} ({what})"),
    );
    w.wait_topic(&topic, &format!("read {payload:?}"), true, |s| {
        s.payload == payload
    })
    .await?;
    // Only a fresh subscriber sees the retain flag. The device re-asserts its birth 2 s after connecting, so a
    // retained value may settle within 3 s (a late LWT of the previous connection); judge it after that window.
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
                w.saw(format!("{payload} (not retained)"));
                bail!("'{topic}' = '{payload}' is not retained (a new subscriber does not get it)")
            }
            (false, true) => {
                w.saw(format!("{payload} (retained)"));
                bail!("'{topic}' = '{payload}' is retained but should not be")
            }
        }
    }
}

#[then(expr = "topic {string} is {string} within {int} ms")]
async fn topic_is_within(w: &mut Rig, rel: String, payload: String, ms: u64) -> Step {
    let topic = w.t(&rel);
    w.expect(
        format!("topic '{rel}' is {payload:?} within {ms} ms"),
        Some(topic.clone()),
        payload.clone(),
    );
    let what = format!("read {payload:?}");
    w.wait_topic_for(&topic, &what, true, Duration::from_millis(ms), |s| {
        s.payload == payload
    })
    .await?;
    Ok(())
}

#[then(expr = "topic {string} is {string} and retained")]
async fn topic_retained(w: &mut Rig, rel: String, payload: String) -> Step {
    Ok(retained_check(w, &rel, &payload, true).await?)
}

#[then(expr = "topic {string} is {string} and not retained")]
async fn topic_not_retained(w: &mut Rig, rel: String, payload: String) -> Step {
    Ok(retained_check(w, &rel, &payload, false).await?)
}

#[then(expr = "topic {string} is published")]
async fn topic_published(w: &mut Rig, rel: String) -> Step {
    let topic = w.t(&rel);
    w.expect(
        format!("topic '{rel}' is published"),
        Some(topic.clone()),
        "(published)".into(),
    );
    w.wait_topic(&topic, "was published", true, |_| true)
        .await?;
    Ok(())
}

#[then(expr = "topic {string} is not published")]
async fn topic_not_published(w: &mut Rig, rel: String) -> Step {
    let topic = w.t(&rel);
    w.expect(
        format!("topic '{rel}' is not published"),
        Some(topic.clone()),
        "(never published)".into(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    match w.obs()?.get(&topic) {
        Some(s) => fail!("'{topic}' was published: {:?}", s.payload),
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
async fn json_field(w: &mut Rig, rel: String, field: String, expected: String) -> Step {
    let topic = w.t(&rel);
    w.expect(
        format!("the JSON at '{rel}' has {field} = {expected:?}"),
        Some(topic.clone()),
        format!("{field} = {expected}"),
    );
    let what = format!("had {field} = {expected:?}");
    let result = w
        .wait_topic(&topic, &what, true, |s| {
            json_field_of(&s.payload, &field).as_deref() == Some(expected.as_str())
        })
        .await;
    if result.is_err() {
        if let Some(actual) = w
            .obs()?
            .get(&topic)
            .and_then(|s| json_field_of(&s.payload, &field))
        {
            w.saw(format!("{field} = {actual}"));
        }
    }
    result?;
    Ok(())
}

/// Waits for the JSON at `rel`, then checks a string field with `ok`.
async fn json_string_field(
    w: &mut Rig,
    rel: &str,
    field: &str,
    how: &str,
    text: &str,
    ok: impl Fn(&str) -> bool,
) -> Result<()> {
    let topic = w.t(rel);
    w.expect(
        format!("the JSON at '{rel}' has {field} {how} {text:?}"),
        Some(topic.clone()),
        format!("{field} {how} {text}"),
    );
    w.wait_topic(&topic, "was published", true, |_| true)
        .await?;
    let v = json_at(w, rel)?;
    let actual = v.get(field).and_then(Value::as_str).unwrap_or_default();
    if !ok(actual) {
        w.saw(format!("{field} = {actual}"));
        bail!("'{topic}' has {field} = {actual:?}, expected it to {how} {text:?}");
    }
    Ok(())
}

#[then(expr = "the JSON at {string} has {string} starting with {string}")]
async fn json_field_prefix(w: &mut Rig, rel: String, field: String, prefix: String) -> Step {
    let ok = |a: &str| a.starts_with(&prefix);
    Ok(json_string_field(w, &rel, &field, "start with", &prefix, ok).await?)
}

#[then(expr = "the JSON at {string} has {string} ending with {string}")]
async fn json_field_suffix(w: &mut Rig, rel: String, field: String, suffix: String) -> Step {
    let ok = |a: &str| a.ends_with(&suffix);
    Ok(json_string_field(w, &rel, &field, "end with", &suffix, ok).await?)
}

#[then(expr = "the history of {string} contains {string}")]
async fn history_contains(w: &mut Rig, rel: String, payload: String) -> Step {
    let topic = w.t(&rel);
    w.expect(
        format!("the history of '{rel}' contains {payload:?}"),
        Some(topic.clone()),
        payload.clone(),
    );
    let deadline = std::time::Instant::now() + ctx().timeout;
    loop {
        let history = w.obs()?.history_of(&topic);
        if history.iter().any(|s| s.payload == payload) {
            return Ok(());
        }
        let known = w.known_outcome(Some(&topic), true);
        if known.is_some() || std::time::Instant::now() > deadline {
            let seen: Vec<String> = history.iter().map(|s| s.payload.clone()).collect();
            w.saw(format!("history {seen:?}"));
            match known {
                Some(why) => {
                    fail!("'{topic}' cannot carry {payload:?} now: {why}; history {seen:?}")
                }
                None => fail!("'{topic}' never carried {payload:?}; history {seen:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Board-specific values by shape: what a real board reports differs from a virtual one's (RSSI, IP).
#[then(expr = "topic {string} is a whole number from {int} to {int} and not retained")]
async fn topic_number_not_retained(w: &mut Rig, rel: String, low: i64, high: i64) -> Step {
    let topic = w.t(&rel);
    w.expect(
        format!("topic '{rel}' is a whole number from {low} to {high} and not retained"),
        Some(topic.clone()),
        format!("{low}..={high} (not retained)"),
    );
    let in_range = |p: &str| p.parse::<i64>().is_ok_and(|n| (low..=high).contains(&n));
    let seen = w
        .wait_topic(
            &topic,
            &format!("read a whole number {low}..={high}"),
            true,
            |s| in_range(&s.payload),
        )
        .await?;
    Ok(retained_check(w, &rel, &seen.payload, false).await?)
}

#[then(expr = "the JSON at {string} has {string} = the board's IP address")]
async fn json_board_ip(w: &mut Rig, rel: String, field: String) -> Step {
    match w.board_ip() {
        Some(ip) => json_field(w, rel, field, ip).await,
        // The rig does not know a real board's address (no `http` in its inventory): an IPv4 address at least.
        None => {
            let topic = w.t(&rel);
            w.wait_topic(&topic, "was published", true, |_| true)
                .await?;
            let v = json_at(w, &rel)?;
            let text = json_field_of(&v.to_string(), &field).unwrap_or_default();
            match text.parse::<std::net::Ipv4Addr>() {
                Ok(ip) if !ip.is_unspecified() => Ok(()),
                _ => fail!("'{topic}' has {field} = {text:?}, not an IPv4 address"),
            }
        }
    }
}

#[then(expr = "{string} was published {int} times within {int} ms")]
async fn published_times(w: &mut Rig, rel: String, times: usize, ms: u64) -> Step {
    let topic = w.t(&rel);
    w.expect(
        format!("'{rel}' published {times} times within {ms} ms"),
        Some(topic.clone()),
        format!("{times} publishes"),
    );
    let counted = w
        .obs()?
        .wait_history(&topic, Duration::from_millis(ms), |h| {
            (h.len() >= times).then_some(())
        })
        .await;
    if let Err(history) = counted {
        let count = history.len();
        w.saw(format!("{count} publishes"));
        fail!("'{topic}' was published {count} times within {ms} ms, expected {times}");
    }
    Ok(())
}

#[then(expr = "{string} is published again {int} to {int} ms after its first publish")]
async fn published_again_after(w: &mut Rig, rel: String, low: u64, high: u64) -> Step {
    let topic = w.t(&rel);
    w.expect(
        format!("'{rel}' published again {low}..{high} ms after its first publish"),
        Some(topic.clone()),
        format!("a second publish {low}..{high} ms after the first"),
    );
    let timeout = ctx().timeout + Duration::from_millis(high);
    let second = w
        .obs()?
        .wait_history(&topic, timeout, |h| match h {
            [first, again, ..] => Some((
                again.at.saturating_sub(first.at).as_millis(),
                again.payload.clone(),
            )),
            _ => None,
        })
        .await;
    let (gap, payload) = match second {
        Ok(second) => second,
        Err(history) => {
            w.saw(format!("{} publishes", history.len()));
            fail!(
                "'{topic}' was published {} times, never again",
                history.len()
            );
        }
    };
    w.saw(format!("again after {gap} ms: {payload:?}"));
    if !(u128::from(low)..=u128::from(high)).contains(&gap) {
        fail!("'{topic}' was published again {gap} ms after its first publish, expected {low}..{high} ms");
    }
    Ok(())
}
