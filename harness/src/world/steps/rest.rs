//! Steps on the REST API of the web interface.

use anyhow::{bail, Result};
use cucumber::{then, when};
use serde_json::json;

use crate::world::{parse_value, set_path, Rig};

#[when(expr = "I change {string} to {} via the REST API")]
async fn rest_change(w: &mut Rig, path: String, value: String) -> Result<()> {
    let mut patch = json!({});
    set_path(&mut patch, &path, parse_value(&value))?;
    w.http("POST", "/api/config", &patch.to_string()).await
}

#[when(expr = "I post {string} to the REST config")]
async fn rest_post(w: &mut Rig, body: String) -> Result<()> {
    w.http("POST", "/api/config", &body).await
}

#[when(expr = "I request {string} via HTTP")]
async fn http_get(w: &mut Rig, path: String) -> Result<()> {
    w.http("GET", &path, "").await
}

#[then(expr = "the REST reply status is {int}")]
async fn rest_status(w: &mut Rig, status: u16) -> Result<()> {
    if w.http.0 != status {
        bail!(
            "HTTP status {} (body {}), expected {status}",
            w.http.0,
            w.http.1
        );
    }
    Ok(())
}

#[then(expr = "the REST reply contains {string}")]
async fn rest_contains(w: &mut Rig, text: String) -> Result<()> {
    if !w.http.1.contains(&text) {
        bail!("HTTP body {:?} does not contain {text:?}", w.http.1);
    }
    Ok(())
}

#[when(expr = "I move the main topic to {string} below it")]
async fn move_main(w: &mut Rig, suffix: String) -> Result<()> {
    let new = format!("{}/{}", w.main_topic, suffix);
    w.http(
        "POST",
        "/api/config",
        &json!({"mqtt": {"maintopic": new}}).to_string(),
    )
    .await?;
    if w.http.0 != 200 {
        bail!(
            "moving the main topic was refused: {} {}",
            w.http.0,
            w.http.1
        );
    }
    Ok(())
}

#[then(expr = "the REST reply does not contain {string}")]
async fn rest_not_contains(w: &mut Rig, text: String) -> Result<()> {
    if w.http.1.contains(&text) {
        bail!("HTTP body contains {text:?}: {}", w.http.1);
    }
    Ok(())
}
