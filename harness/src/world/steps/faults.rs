//! Steps that break things on purpose: the broker going away, power loss.

use std::time::Duration;

use anyhow::{anyhow, Result};
use cucumber::when;

use crate::world::Rig;

#[when(expr = "the broker goes away for {int} ms")]
async fn broker_away(w: &mut Rig, ms: u64) -> Result<()> {
    let cable = w.cable.as_ref().ok_or_else(|| anyhow!("no cable"))?;
    cable.set_down(true);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    cable.set_down(false);
    Ok(())
}

#[when("the broker restarts")]
async fn broker_restarts(w: &mut Rig) -> Result<()> {
    broker_away(w, 500).await
}

#[when("the board loses power")]
async fn power_loss(w: &mut Rig) -> Result<()> {
    let board = w.board()?;
    tokio::task::block_in_place(|| board.power_off()).map_err(Into::into)
}

#[when("the board is powered on")]
async fn power_on(w: &mut Rig) -> Result<()> {
    let board = w.board()?;
    tokio::task::block_in_place(|| board.power_on())?;
    Ok(())
}

#[when(expr = "the broker goes away and I publish {string} to {string} meanwhile")]
async fn outage_publish(w: &mut Rig, payload: String, rel: String) -> Result<()> {
    let cable = w.cable.as_ref().ok_or_else(|| anyhow!("no cable"))?;
    cable.set_down(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.publish(&rel, payload.as_bytes()).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let Some(c) = w.cable.as_ref() {
        c.set_down(false);
    }
    Ok(())
}
