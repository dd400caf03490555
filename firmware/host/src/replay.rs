//! Offline replay: recorded ROI readings through the core with a given config, one cycle per frame line, no broker.
//!
//! Frame lines (JSON Lines): `{"sequence":"main","digits":[1.2,"N"],"analogs":[9.5]}` or
//! `{"sequence":"main","align":"fail"}`. Other sequences repeat their last reading (as the simulated camera does).
//! Output: per cycle and sequence one JSON line, the `process/data/[N]/json` payload plus `"cycle"` and
//! `"process_error"`.

use std::io::{BufRead, Write};

use anyhow::{anyhow, bail, Context, Result};
use meter_core::config::Config;
use meter_core::engine::{Action, Boot, Engine, Event};
use serde_json::Value;

/// 2024-01-01T00:00:00Z, the default start of the replay clock.
pub const DEFAULT_START_S: i64 = 1_704_067_200;

/// Replays `frames` through a device configured with `config_text` (a partial or complete config document).
pub fn run(
    config_text: &str,
    frames: impl BufRead,
    start_s: i64,
    mut out: impl Write,
) -> Result<u64> {
    let partial: Value = serde_json::from_str(config_text).context("config is not valid JSON")?;
    let (mut doc, _) =
        Config::from_partial(&partial).map_err(|e| anyhow!("config refused: {e}"))?;
    // No broker in a replay: the device runs with MQTT off and is read directly.
    doc["mqtt"]["enabled"] = Value::Bool(false);
    let config = Config::from_json(&doc).map_err(|e| anyhow!("config refused: {e}"))?;
    let interval_ms = (config.interval_min * 60_000.0).round() as u64;
    let mut now_ms = u64::try_from(start_s).context("--start must not be before 1970")? * 1000;

    let mut engine = Engine::new();
    let boot = Boot {
        stored_config: Some(doc.to_string()),
        ..Boot::default()
    };
    engine.handle(now_ms, Event::Booted(boot));

    let mut cycle = 0u64;
    for (index, line) in frames.lines().enumerate() {
        let number = index + 1;
        let line = line.with_context(|| format!("frames line {number}: unreadable"))?;
        if line.trim().is_empty() {
            continue;
        }
        let command = console_command(&line).with_context(|| format!("frames line {number}"))?;
        let reply = console(&mut engine, now_ms, &command);
        if !reply.starts_with("ok") {
            bail!("frames line {number}: {}", reply.trim_start_matches("err "));
        }
        engine.request_cycle();
        let frame = engine.capture_simulated();
        engine.handle(now_ms, Event::Frame(frame));
        cycle += 1;
        for seq in engine.sequences() {
            let mut data: Value = serde_json::from_str(&engine.process_data_json(seq))?;
            data["cycle"] = Value::from(cycle);
            data["process_error"] = Value::from(engine.process_error());
            writeln!(out, "{data}")?;
        }
        now_ms += interval_ms;
    }
    Ok(cycle)
}

fn console(engine: &mut Engine, now_ms: u64, line: &str) -> String {
    engine
        .handle(now_ms, Event::ConsoleLine(line.to_string()))
        .into_iter()
        .find_map(|a| {
            if let Action::ConsoleWrite(r) = a {
                Some(r)
            } else {
                None
            }
        })
        .unwrap_or_default()
}

/// A frame line as the console `frame` command the device understands.
fn console_command(line: &str) -> Result<String> {
    let v: Value = serde_json::from_str(line).context("not valid JSON")?;
    let sequence = v
        .get("sequence")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("\"sequence\" (a name) is missing"))?;
    if sequence.is_empty() || sequence.contains(char::is_whitespace) {
        bail!("\"sequence\" '{sequence}' is not a sequence name");
    }
    match v.get("align").map(|a| a.as_str()) {
        Some(Some("fail")) => return Ok(format!("frame {sequence} align=fail")),
        Some(_) => bail!("\"align\" only takes \"fail\""),
        None => {}
    }
    let list = |key: &str| -> Result<String> {
        let Some(items) = v.get(key) else {
            return Ok(String::new());
        };
        let items = items
            .as_array()
            .ok_or_else(|| anyhow!("\"{key}\" must be an array"))?;
        let values: Result<Vec<String>> = items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Number(n) => Ok(n.to_string()),
                Value::String(s) if s == "N" => Ok("N".to_string()),
                other => Err(anyhow!(
                    "\"{key}\"[{i}] {other} is neither a number nor \"N\""
                )),
            })
            .collect();
        Ok(values?.join(","))
    };
    Ok(format!(
        "frame {sequence} digits={} analogs={}",
        list("digits")?,
        list("analogs")?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lines_become_console_commands() {
        assert_eq!(
            console_command(r#"{"sequence":"main","digits":[1.2,"N"],"analogs":[9.5]}"#).unwrap(),
            "frame main digits=1.2,N analogs=9.5"
        );
        assert_eq!(
            console_command(r#"{"sequence":"main","align":"fail"}"#).unwrap(),
            "frame main align=fail"
        );
        assert_eq!(
            console_command(r#"{"sequence":"m","digits":[]}"#).unwrap(),
            "frame m digits= analogs="
        );
        assert!(console_command(r#"{"digits":[1]}"#).is_err());
        assert!(console_command(r#"{"sequence":"main","digits":[true]}"#).is_err());
        assert!(console_command(r#"{"sequence":"main","align":"ok"}"#).is_err());
        assert!(console_command("nope").is_err());
    }
}
