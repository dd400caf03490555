//! Steps that set a board up and ask it about itself: the config it starts with, starting it, reset, its stored
//! config.

use anyhow::anyhow;
use cucumber::{given, then, when};
use serde_json::Value;

use super::Step;
use crate::world::{parse_value, set_path, Rig};

#[given(expr = "the config {string}")]
async fn given_config(w: &mut Rig, fixture: String) -> Step {
    Ok(w.stage(&fixture).await?)
}

#[given(expr = "the config value {string} is {}")]
async fn given_config_value(w: &mut Rig, path: String, value: String) -> Step {
    let config = w
        .config
        .as_mut()
        .ok_or_else(|| anyhow!("stage a config first: 'Given the config \"x.json\"'"))?;
    Ok(set_path(config, &path, parse_value(&value))?)
}

#[given("the board is started")]
async fn given_started(w: &mut Rig) -> Step {
    Ok(w.start().await?)
}

#[given(expr = "a virtual board with config {string}")]
async fn given_board_with(w: &mut Rig, fixture: String) -> Step {
    w.stage(&fixture).await?;
    Ok(w.start().await?)
}

#[given("a virtual board")]
async fn given_board(w: &mut Rig) -> Step {
    w.stage("flat-json.json").await?;
    Ok(w.start().await?)
}

#[given("the device is online")]
#[then("the device is online")]
async fn device_online(w: &mut Rig) -> Step {
    let topic = w.t("device/status/connection");
    w.expect("the device is online".into(), Some(topic), "online".into());
    w.wait_for("device/status/connection", "online").await?;
    Ok(())
}

#[when("the board is reset")]
async fn reset(w: &mut Rig) -> Step {
    w.action("reset");
    w.on_board("the board did not restart after a reset", |b| b.reset())
        .await?;
    Ok(())
}

#[then("the board is still running")]
async fn still_running(w: &mut Rig) -> Step {
    w.expect(
        "the board is still running".into(),
        None,
        "status answers ok {...}".into(),
    );
    let reply = w.console("status").await?;
    w.saw(reply.clone());
    if !reply.starts_with("ok {") {
        fail!("status replied {reply:?}");
    }
    Ok(())
}

#[then(expr = "the board config has {string} = {}")]
async fn board_config(w: &mut Rig, path: String, value: String) -> Step {
    w.expect(
        format!("the board config has {path} = {value}"),
        None,
        value.clone(),
    );
    let reply = w.console(&format!("config get {path}")).await?;
    w.saw(reply.clone());
    let Some(got) = reply.strip_prefix("ok ") else {
        fail!("config get {path}: {reply}");
    };
    let (got, want): (Value, Value) = (serde_json::from_str(got)?, parse_value(&value));
    w.saw(got.to_string());
    if got != want {
        fail!("config {path} is {got}, expected {want}");
    }
    Ok(())
}

#[then(expr = "the board uses under {int}% of a core for {int} ms")]
async fn board_mostly_idle(w: &mut Rig, percent: u32, ms: u64) -> Step {
    w.expect(
        format!("the board uses under {percent}% of a core for {ms} ms"),
        None,
        format!("< {percent}%"),
    );
    let cpu = |w: &mut Rig| {
        w.board()?.cpu_time().ok_or_else(|| {
            anyhow!("the rig cannot see this board's CPU time (a real chip): tag the scenario @virtual-only")
        })
    };
    let (before, since) = (cpu(w)?, std::time::Instant::now());
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    let used = cpu(w)?.saturating_sub(before);
    let wall = since.elapsed();
    let share = 100.0 * used.as_secs_f64() / wall.as_secs_f64();
    w.saw(format!("{share:.0}% of a core ({used:?} in {wall:?})"));
    if share >= f64::from(percent) {
        fail!("the board used {share:.0}% of a core ({used:?} of CPU in {wall:?}), expected under {percent}%");
    }
    Ok(())
}
