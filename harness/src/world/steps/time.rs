//! Steps on network time: the rig serves each virtual board its time (`crate::sntp`), so it can take the time away
//! and check every timestamp a board publishes against its own clock. Dates are computed here from the calendar,
//! not with the firmware's code.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use cucumber::{given, then, when};
use serde_json::Value;

use super::Step;
use crate::world::{ctx, Rig};

#[given("the time server does not answer")]
async fn time_server_silent(w: &mut Rig) -> Step {
    w.sntp
        .as_ref()
        .ok_or_else(|| anyhow!("the rig serves no time to this board: its inventory has no `timeserver = \"rig\"` (it uses its network's)"))?
        .pause();
    Ok(())
}

#[when("the time server answers again")]
async fn time_server_back(w: &mut Rig) -> Step {
    w.sntp
        .as_ref()
        .ok_or_else(|| anyhow!("the rig serves no time to this board: its inventory has no `timeserver = \"rig\"` (it uses its network's)"))?
        .resume();
    Ok(())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SS±HHMM` (the v17 timestamp format): the unix time and the offset in seconds.
pub(crate) fn parse_timestamp(text: &str) -> Result<(i64, i64)> {
    let bad = || anyhow!("{text:?} is not a YYYY-MM-DDTHH:MM:SS+HHMM timestamp");
    if !text.is_ascii() || text.len() != 24 || &text[10..11] != "T" {
        return Err(bad());
    }
    let num = |a: usize, b: usize| text[a..b].parse::<i64>().map_err(|_| bad());
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, s) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let sign = match &text[19..20] {
        "+" => 1,
        "-" => -1,
        _ => return Err(bad()),
    };
    let offset = sign * (num(20, 22)? * 3600 + num(22, 24)? * 60);
    let local = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s;
    Ok((local - offset, offset))
}

/// The offset of Central European time at `unix` (the EU rule: summer time from the last Sunday of March to the last
/// Sunday of October, 01:00 UTC both).
fn central_european_offset(unix: i64) -> i64 {
    // The year by average length: off by a day at most around New Year, far from March and October.
    let year = 1970 + unix.div_euclid(86_400 * 365 + 86_400 / 4);
    let last_sunday = |month: i64| {
        let first_of_next = days_from_civil(year, month + 1, 1);
        // 1970-01-01 was a Thursday.
        let weekday = (first_of_next - 1 + 4).rem_euclid(7);
        (first_of_next - 1 - weekday) * 86_400 + 3600
    };
    if (last_sunday(3)..last_sunday(10)).contains(&unix) {
        7200
    } else {
        3600
    }
}

pub(super) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A timestamp field of the JSON at `topic`, once it is there: its text, unix time and UTC offset in seconds.
pub(super) async fn json_timestamp(
    w: &Rig,
    topic: &str,
    field: &str,
) -> Result<(String, i64, i64)> {
    let seen = w
        .obs()?
        .wait_until(topic, ctx().timeout, &format!("had {field}"), |s| {
            serde_json::from_str::<Value>(&s.payload)
                .ok()
                .and_then(|v| v.get(field).and_then(Value::as_str).map(str::to_string))
                .is_some_and(|t| !t.is_empty())
        })
        .await?;
    let v: Value = serde_json::from_str(&seen.payload)?;
    let text = v[field].as_str().unwrap_or_default().to_string();
    let (unix, offset) = parse_timestamp(&text).with_context(|| format!("'{topic}' {field}"))?;
    Ok((text, unix, offset))
}

#[then(expr = "the JSON at {string} has {string} within {int} s of now in Central European time")]
async fn json_time_is_now(w: &mut Rig, rel: String, field: String, tolerance: i64) -> Step {
    let topic = w.t(&rel);
    let (text, unix, offset) = json_timestamp(w, &topic, &field).await?;
    let now = now_unix();
    if (now - unix).abs() > tolerance {
        fail!(
            "'{topic}' {field} = {text}: {} s from the rig's clock",
            now - unix
        );
    }
    let expected = central_european_offset(unix);
    if offset != expected {
        fail!(
            "'{topic}' {field} = {text}: offset {offset} s, Central European time has {expected} s then"
        );
    }
    Ok(())
}

#[given(expr = "the console shows the time of the rig within {int} s")]
#[then(expr = "the console shows the time of the rig within {int} s")]
async fn console_time(w: &mut Rig, tolerance: i64) -> Step {
    // The first sync after power-on may still be under way, and a board keeps its clock across a soft reboot, as an
    // ESP32's RTC does.
    board_clock_near(w, |_| Ok(now_unix()), "the rig's clock", tolerance).await
}

/// Polls the console's `status` (`"time"`: the board's clock in its zone, `"time_sync"`) until the board says its
/// clock is synchronized and within `tolerance` s of `reference` (read anew on every poll: the clock runs on);
/// fails with the last difference once the step's time is up.
pub(super) async fn board_clock_near(
    w: &mut Rig,
    reference: impl Fn(&Rig) -> Result<i64>,
    whose: &str,
    tolerance: i64,
) -> Step {
    let deadline = std::time::Instant::now() + ctx().timeout;
    loop {
        let status = w.console_status().await?;
        let text = status["time"].as_str().unwrap_or_default();
        let off_by = if status["time_sync"] == "Synchronized" {
            let (unix, _) = parse_timestamp(text)?;
            let off_by = reference(w)? - unix;
            if off_by.abs() <= tolerance {
                return Ok(());
            }
            format!("{off_by} s from {whose}")
        } else {
            format!("`time_sync` {}", status["time_sync"])
        };
        if std::time::Instant::now() > deadline {
            fail!("the board's clock says {text} ({off_by}), not {whose} within {tolerance} s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_the_central_european_rule() {
        // 2024-02-02T16:59:24+0100 = 15:59:24 UTC.
        assert_eq!(
            parse_timestamp("2024-02-02T16:59:24+0100").unwrap(),
            (1_706_889_564, 3600)
        );
        assert_eq!(parse_timestamp("1970-01-01T00:00:00+0000").unwrap(), (0, 0));
        assert!(parse_timestamp("2024-02-02 16:59:24+0100").is_err());
        assert!(parse_timestamp("").is_err());
        // 2024: summer time from 2024-03-31T01:00Z to 2024-10-27T01:00Z.
        assert_eq!(central_european_offset(1_711_846_799), 3600);
        assert_eq!(central_european_offset(1_711_846_800), 7200);
        assert_eq!(central_european_offset(1_729_990_799), 7200);
        assert_eq!(central_european_offset(1_729_990_800), 3600);
    }
}
