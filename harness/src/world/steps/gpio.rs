//! Steps on GPIO lines: driving inputs, reading outputs, jumpers.

use std::time::Duration;

use anyhow::{bail, Result};
use cucumber::{given, then, when};

use crate::world::{ctx, Rig};

#[when(expr = "I set input GPIO {int} {word}")]
async fn set_input(w: &mut Rig, pin: u8, level: String) -> Result<()> {
    let high = match level.as_str() {
        "high" => true,
        "low" => false,
        other => bail!("level '{other}' is neither high nor low"),
    };
    let board = w.board()?;
    tokio::task::block_in_place(|| board.drive_input(pin, high)).map_err(Into::into)
}

#[given(expr = "GPIO {int} is jumpered to GPIO {int}")]
async fn jumpered(w: &mut Rig, from: u8, to: u8) -> Result<()> {
    let board = w.board()?;
    tokio::task::block_in_place(|| board.jumper(from, to))?;
    Ok(())
}

#[then(expr = "GPIO {int} is {word}")]
async fn gpio_level(w: &mut Rig, pin: u8, level: String) -> Result<()> {
    let want = level == "high";
    let deadline = std::time::Instant::now() + ctx().timeout;
    loop {
        let board = w.board()?;
        let (high, _) = tokio::task::block_in_place(|| board.read_output(pin))?;
        if high == want {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("GPIO {pin} stayed {}", if high { "high" } else { "low" });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[then(expr = "GPIO {int} has PWM duty {int}")]
async fn gpio_duty(w: &mut Rig, pin: u8, duty: u32) -> Result<()> {
    let board = w.board()?;
    let (_, d) = tokio::task::block_in_place(|| board.read_output(pin))?;
    if d != Some(duty) {
        bail!("GPIO {pin} has PWM duty {d:?}, expected {duty}");
    }
    Ok(())
}
