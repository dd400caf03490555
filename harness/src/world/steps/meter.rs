//! Steps that show the meter something (digits, pointers, a failed alignment) and run cycles.

use std::time::Duration;

use anyhow::{bail, Result};
use cucumber::{given, when};

use crate::world::{ctx, Rig};

#[given(expr = "the meter shows digits {word} and pointers {word}")]
#[when(expr = "the meter shows digits {word} and pointers {word}")]
async fn meter_digits_pointers(w: &mut Rig, digits: String, pointers: String) -> Result<()> {
    w.frame("main", &digits, &pointers)
}

#[given(expr = "the meter shows digits {word}")]
#[when(expr = "the meter shows digits {word}")]
async fn meter_digits(w: &mut Rig, digits: String) -> Result<()> {
    w.frame("main", &digits, "")
}

#[given(expr = "sequence {string} shows digits {word} and pointers {word}")]
#[when(expr = "sequence {string} shows digits {word} and pointers {word}")]
async fn seq_digits_pointers(
    w: &mut Rig,
    seq: String,
    digits: String,
    pointers: String,
) -> Result<()> {
    w.frame(&seq, &digits, &pointers)
}

#[given(expr = "sequence {string} shows digits {word}")]
#[when(expr = "sequence {string} shows digits {word}")]
async fn seq_digits(w: &mut Rig, seq: String, digits: String) -> Result<()> {
    w.frame(&seq, &digits, "")
}

#[when("the image alignment fails")]
async fn alignment_fails(w: &mut Rig) -> Result<()> {
    let reply = w.console("frame main align=fail")?;
    if !reply.starts_with("ok") {
        bail!("the board refused align=fail: {reply}");
    }
    Ok(())
}

#[given("I trigger a cycle")]
#[when("I trigger a cycle")]
async fn trigger_cycle(w: &mut Rig) -> Result<()> {
    // A cycle ran when a new cycle_counter arrives (a redelivered QoS-1 cycle_start may add one of its own).
    let topic = w.t("process/status/cycle_counter");
    let before = w.obs()?.history_of(&topic).len();
    w.publish("process/ctrl/cycle_start", b"1").await?;
    let deadline = std::time::Instant::now() + ctx().timeout;
    while w.obs()?.history_of(&topic).len() <= before {
        if std::time::Instant::now() > deadline {
            bail!(
                "cycle_start had no effect: no new '{topic}' within {:?}",
                ctx().timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[when(expr = "I trigger {int} cycles")]
async fn trigger_cycles(w: &mut Rig, n: u32) -> Result<()> {
    for _ in 0..n {
        trigger_cycle(w).await?;
    }
    Ok(())
}
