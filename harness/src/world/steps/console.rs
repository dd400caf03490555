//! Steps on the serial console: typing lines, its replies and its log.

use std::time::Duration;

use anyhow::{bail, Result};
use cucumber::{then, when};

use crate::world::{ctx, Rig};

#[when(expr = "I type {string} on the console")]
async fn type_console(w: &mut Rig, line: String) -> Result<()> {
    w.console(&line).map(|_| ())
}

#[then(expr = "the console reply is {string}")]
async fn console_reply_is(w: &mut Rig, expected: String) -> Result<()> {
    if w.console_reply != expected {
        bail!(
            "console replied {:?}, expected {expected:?}",
            w.console_reply
        );
    }
    Ok(())
}

#[then(expr = "the console reply starts with {string}")]
async fn console_reply_starts(w: &mut Rig, prefix: String) -> Result<()> {
    if !w.console_reply.starts_with(&prefix) {
        bail!(
            "console replied {:?}, expected it to start with {prefix:?}",
            w.console_reply
        );
    }
    Ok(())
}

#[then(expr = "the console shows an error containing {string}")]
async fn console_error(w: &mut Rig, text: String) -> Result<()> {
    let deadline = std::time::Instant::now() + ctx().timeout;
    loop {
        if w.console_reply.starts_with("err ") && w.console_reply.contains(&text) {
            return Ok(());
        }
        let log = w.board()?.console_capture();
        let hit = log
            .iter()
            .any(|(_, l)| (l.starts_with("W (") || l.starts_with("E (")) && l.contains(&text));
        if hit {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            let tail: Vec<String> = log.iter().rev().take(8).map(|(_, l)| l.clone()).collect();
            bail!(
                "no console error containing {text:?}; last reply {:?}; last lines {tail:?}",
                w.console_reply
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[then(expr = "the console log contains {string}")]
async fn console_log_contains(w: &mut Rig, text: String) -> Result<()> {
    let deadline = std::time::Instant::now() + ctx().timeout;
    loop {
        if w.board()?
            .console_capture()
            .iter()
            .any(|(_, l)| l.contains(&text))
        {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("the console never showed {text:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[when("I forget what the console showed")]
async fn forget_console(w: &mut Rig) -> Result<()> {
    w.console_mark = w.board()?.console_capture().len();
    Ok(())
}

#[then(expr = "the console log does not contain {string}")]
async fn console_log_lacks(w: &mut Rig, text: String) -> Result<()> {
    let mark = w.console_mark;
    if let Some((_, line)) = w
        .board()?
        .console_capture()
        .into_iter()
        .skip(mark)
        .find(|(_, l)| l.contains(&text))
    {
        bail!("the console showed {text:?}: {line:?}");
    }
    Ok(())
}

#[then(expr = "the console reply contains {string}")]
async fn console_reply_contains(w: &mut Rig, text: String) -> Result<()> {
    if !w.console_reply.contains(&text) {
        bail!(
            "console replied {:?}, expected it to contain {text:?}",
            w.console_reply
        );
    }
    Ok(())
}
