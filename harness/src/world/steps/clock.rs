//! Steps on the board's clock beyond Central European time: timestamps in zones of a fixed offset (west of UTC,
//! with minutes), and a rebooted board taking its time again from the rig's server (with the clock it kept).

use std::time::Duration;

use anyhow::{anyhow, Context};
use cucumber::{given, then, when};

use super::time::{board_clock_near, json_timestamp, now_unix, parse_timestamp};
use super::Step;
use crate::world::{ctx, Rig};

/// `+HHMM` / `-HHMM` -> seconds east of UTC.
fn offset_seconds(text: &str) -> Option<i64> {
    let sign = match text.get(..1)? {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let (h, m) = (text.get(1..3)?, text.get(3..5)?);
    (text.len() == 5).then_some(())?;
    Some(sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60))
}

#[then(expr = "the JSON at {string} has {string} within {int} s of now at UTC offset {string}")]
async fn json_time_at_offset(
    w: &mut Rig,
    rel: String,
    field: String,
    tolerance: i64,
    offset: String,
) -> Step {
    let want =
        offset_seconds(&offset).ok_or_else(|| anyhow!("{offset:?} is not +HHMM or -HHMM"))?;
    let topic = w.t(&rel);
    w.expect(
        format!("the JSON at '{rel}' has {field} within {tolerance} s of now at {offset}"),
        Some(topic.clone()),
        format!("{field} = now{offset}"),
    );
    let (text, unix, got) = json_timestamp(w, &topic, &field).await?;
    w.saw(format!("{field} = {text}"));
    // "Now" is what the rig's time server tells (the rig's clock unless a step set another date).
    let now = w
        .sntp
        .as_ref()
        .map_or_else(now_unix, |sntp| sntp.now_unix());
    if (now - unix).abs() > tolerance {
        fail!(
            "'{topic}' {field} = {text}: {} s from the rig's clock",
            now - unix
        );
    }
    if got != want {
        fail!("'{topic}' {field} = {text}: offset {got} s, expected {want} s ({offset})");
    }
    Ok(())
}

#[given(expr = "the time server tells the time as of {string}")]
async fn time_server_date(w: &mut Rig, utc: String) -> Step {
    let text = utc
        .strip_suffix('Z')
        .map(|t| format!("{t}+0000"))
        .ok_or_else(|| anyhow!("{utc:?} is not a UTC time YYYY-MM-DDTHH:MM:SSZ"))?;
    let (unix, _) = parse_timestamp(&text).with_context(|| format!("{utc:?}"))?;
    w.sntp
        .as_ref()
        .ok_or_else(|| anyhow!("the rig serves no time to this board (a step before this one must give it a config)"))?
        .tell_time_as_of(unix);
    w.action(format!("the time server tells {utc}"));
    Ok(())
}

#[given(expr = "the board has the time server's time within {int} s")]
#[then(expr = "the board has the time server's time within {int} s")]
async fn board_has_server_time(w: &mut Rig, tolerance: i64) -> Step {
    // To the time the server tells, which a step may have moved away from the rig's clock.
    let server = |w: &Rig| {
        Ok(w.sntp
            .as_ref()
            .ok_or_else(|| anyhow!("the rig serves no time to this board"))?
            .now_unix())
    };
    board_clock_near(w, server, "the time server's time", tolerance).await
}

#[given(expr = "the time server answers after {int} ms")]
async fn time_server_slow(w: &mut Rig, ms: u64) -> Step {
    w.sntp
        .as_ref()
        .ok_or_else(|| anyhow!("the rig serves no time to this board"))?
        .delay_answers(ms);
    Ok(())
}

#[given(expr = "the time server's clock jumps {int} minutes ahead")]
#[when(expr = "the time server's clock jumps {int} minutes ahead")]
async fn time_server_jumps(w: &mut Rig, minutes: i64) -> Step {
    let sntp = w
        .sntp
        .as_ref()
        .ok_or_else(|| anyhow!("the rig serves no time to this board"))?;
    sntp.tell_time_as_of(sntp.now_unix() + minutes * 60);
    w.action(format!(
        "the time server's clock jumps {minutes} minutes ahead"
    ));
    Ok(())
}

#[when("the board reboots from its console and asks the rig for the time again")]
async fn reboot_and_resync(w: &mut Rig) -> Step {
    let asked = |w: &Rig| w.sntp.as_ref().map(|s| s.answered());
    let before = asked(w).ok_or_else(|| anyhow!("the rig serves no time to this board"))?;
    let reply = w.console("reboot").await?;
    if !reply.starts_with("ok") {
        fail!("the board refused to reboot: {reply}");
    }
    // A soft reboot keeps the clock (an ESP32's RTC); the firmware starts again and asks for the time at once.
    let deadline = std::time::Instant::now() + ctx().timeout;
    while asked(w).unwrap_or(0) <= before {
        if std::time::Instant::now() > deadline {
            fail!(
                "the board did not ask the rig for the time within {:?} of its reboot",
                ctx().timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
