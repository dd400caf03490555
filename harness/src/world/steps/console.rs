//! Steps on the serial console: typing lines, its replies and its log.

use std::time::Duration;

use cucumber::{then, when};

use super::Step;
use crate::world::{ctx, Rig};

#[when(expr = "I type {string} on the console")]
async fn type_console(w: &mut Rig, line: String) -> Step {
    let reply = w.console(&line).await?;
    w.console_refused(&line, &reply);
    Ok(())
}

#[when(
    expr = "I type {string} widened with spaces before its last character to {int} bytes on the console"
)]
async fn type_console_widened(w: &mut Rig, line: String, n: usize) -> Step {
    // Inside the line, not at its end: a line's trailing spaces are not part of the command.
    let Some(last) = line.chars().last() else {
        fail!("an empty line cannot be widened");
    };
    let body = &line[..line.len() - last.len_utf8()];
    if line.len() > n {
        fail!("the line is already {} bytes, more than {n}", line.len());
    }
    let widened = format!("{body}{}{last}", " ".repeat(n - line.len()));
    let reply = w.console(&widened).await?;
    w.console_refused(&widened, &reply);
    Ok(())
}

/// Checks the last console reply with `ok`.
fn reply_check(w: &mut Rig, how: &str, text: &str, ok: impl Fn(&str) -> bool) -> Step {
    w.console_checked();
    w.expect(
        format!("the console reply {how} {text:?}"),
        None,
        text.into(),
    );
    let reply = w.console_reply.clone();
    if !ok(&reply) {
        w.saw(reply.clone());
        fail!("console replied {reply:?}, expected it to {how} {text:?}");
    }
    Ok(())
}

#[then(expr = "the console reply is {string}")]
async fn console_reply_is(w: &mut Rig, expected: String) -> Step {
    reply_check(w, "be", &expected, |r| r == expected)
}

#[then(expr = "the console reply starts with {string}")]
async fn console_reply_starts(w: &mut Rig, prefix: String) -> Step {
    reply_check(w, "start with", &prefix, |r| r.starts_with(&prefix))
}

#[then(expr = "the console reply contains {string}")]
async fn console_reply_contains(w: &mut Rig, text: String) -> Step {
    reply_check(w, "contain", &text, |r| r.contains(&text))
}

#[then(expr = "the console shows an error containing {string}")]
async fn console_error(w: &mut Rig, text: String) -> Step {
    w.console_checked();
    w.expect(
        format!("the console shows an error containing {text:?}"),
        None,
        text.clone(),
    );
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
        let known = w.known_outcome(None, false);
        if known.is_some() || std::time::Instant::now() > deadline {
            let tail: Vec<String> = log.iter().rev().take(8).map(|(_, l)| l.clone()).collect();
            w.saw(format!("last reply {:?}", w.console_reply));
            fail!(
                "no console error containing {text:?}{}; last reply {:?}; last lines {tail:?}",
                known.map(|k| format!(" ({k})")).unwrap_or_default(),
                w.console_reply
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[then(expr = "the console log contains {string}")]
async fn console_log_contains(w: &mut Rig, text: String) -> Step {
    w.expect(
        format!("the console log contains {text:?}"),
        None,
        text.clone(),
    );
    let deadline = std::time::Instant::now() + ctx().timeout;
    loop {
        if w.board()?
            .console_capture()
            .iter()
            .any(|(_, l)| l.contains(&text))
        {
            return Ok(());
        }
        let known = w.known_outcome(None, false);
        if let Some(why) = known {
            fail!("the console never showed {text:?}, and cannot now: {why}");
        }
        if std::time::Instant::now() > deadline {
            fail!("the console never showed {text:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[when("I forget what the console showed")]
async fn forget_console(w: &mut Rig) -> Step {
    w.console_mark = w.board()?.console_capture().len();
    Ok(())
}

#[then(expr = "the console log does not contain {string}")]
async fn console_log_lacks(w: &mut Rig, text: String) -> Step {
    w.expect(
        format!("the console log does not contain {text:?}"),
        None,
        text.clone(),
    );
    let mark = w.console_mark;
    if let Some((_, line)) = w
        .board()?
        .console_capture()
        .into_iter()
        .skip(mark)
        .find(|(_, l)| l.contains(&text))
    {
        w.saw(line.clone());
        fail!("the console showed {text:?}: {line:?}");
    }
    Ok(())
}
