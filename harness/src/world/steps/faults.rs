//! Steps that break things on purpose: the broker going away, power loss.

use std::time::Duration;

use anyhow::anyhow;
use cucumber::when;

use super::Step;
use crate::world::Rig;

#[when(expr = "the broker goes away for {int} ms")]
async fn broker_away(w: &mut Rig, ms: u64) -> Step {
    w.action(format!("broker cable down for {ms} ms"));
    let cable = w.cable.as_ref().ok_or_else(|| anyhow!("no cable"))?;
    cable.set_down(true);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    cable.set_down(false);
    w.action("broker cable up");
    Ok(())
}

#[when("the broker restarts")]
async fn broker_restarts(w: &mut Rig) -> Step {
    broker_away(w, 500).await
}

#[when("the board loses power")]
async fn power_loss(w: &mut Rig) -> Step {
    w.action("power off");
    w.on_board("the rig cannot cut the board's power", |b| b.power_off())?;
    Ok(())
}

#[when("the board is powered on")]
async fn power_on(w: &mut Rig) -> Step {
    w.action("power on");
    w.on_board("the board did not start when powered on", |b| b.power_on())?;
    Ok(())
}

#[when(expr = "the broker goes away and I publish {string} to {string} meanwhile")]
async fn outage_publish(w: &mut Rig, payload: String, rel: String) -> Step {
    w.action("broker cable down");
    let cable = w.cable.as_ref().ok_or_else(|| anyhow!("no cable"))?;
    cable.set_down(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.publish(&rel, payload.as_bytes()).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let Some(c) = w.cable.as_ref() {
        c.set_down(false);
    }
    w.action("broker cable up");
    Ok(())
}
