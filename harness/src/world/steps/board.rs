//! Steps that set a board up and ask it about itself: the config it starts with, starting it, reset, its stored
//! config.

use anyhow::{anyhow, bail, Result};
use cucumber::{given, then, when};
use serde_json::Value;

use crate::world::{parse_value, set_path, Rig};

#[given(expr = "the config {string}")]
async fn given_config(w: &mut Rig, fixture: String) -> Result<()> {
    w.stage(&fixture).await
}

#[given(expr = "the config value {string} is {}")]
async fn given_config_value(w: &mut Rig, path: String, value: String) -> Result<()> {
    let config = w
        .config
        .as_mut()
        .ok_or_else(|| anyhow!("stage a config first: 'Given the config \"x.json\"'"))?;
    set_path(config, &path, parse_value(&value))
}

#[given("the board is started")]
async fn given_started(w: &mut Rig) -> Result<()> {
    w.start().await
}

#[given(expr = "a virtual board with config {string}")]
async fn given_board_with(w: &mut Rig, fixture: String) -> Result<()> {
    w.stage(&fixture).await?;
    w.start().await
}

#[given("a virtual board")]
async fn given_board(w: &mut Rig) -> Result<()> {
    w.stage("flat-json.json").await?;
    w.start().await
}

#[given("the device is online")]
#[then("the device is online")]
async fn device_online(w: &mut Rig) -> Result<()> {
    w.wait_for("device/status/connection", "online")
        .await
        .map(|_| ())
}

#[when("the board is reset")]
async fn reset(w: &mut Rig) -> Result<()> {
    let board = w.board()?;
    tokio::task::block_in_place(|| board.reset())?;
    Ok(())
}

#[then("the board is still running")]
async fn still_running(w: &mut Rig) -> Result<()> {
    let reply = w.console("status")?;
    if !reply.starts_with("ok {") {
        bail!("status replied {reply:?}");
    }
    Ok(())
}

#[then(expr = "the board config has {string} = {}")]
async fn board_config(w: &mut Rig, path: String, value: String) -> Result<()> {
    let reply = w.console(&format!("config get {path}"))?;
    let got = reply
        .strip_prefix("ok ")
        .ok_or_else(|| anyhow!("config get {path}: {reply}"))?;
    let (got, want): (Value, Value) = (serde_json::from_str(got)?, parse_value(&value));
    if got != want {
        bail!("config {path} is {got}, expected {want}");
    }
    Ok(())
}
