//! `virtual-board replay` as a user runs it: the binary, a config fixture, a multi-frame JSONL file.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn replay(config: &str, frames: &str, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_virtual-board"))
        .arg("replay")
        .arg("--config")
        .arg(root().join(config))
        .arg("--frames")
        .arg(frames)
        .args(extra)
        .output()
        .expect("run virtual-board")
}

fn lines(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[test]
fn multi_frame_file() {
    let frames = root().join("fixtures/frames/flat-json.jsonl");
    let out = replay(
        "fixtures/configs/flat-json.json",
        frames.to_str().unwrap(),
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = lines(&out);
    assert_eq!(rows.len(), 12, "6 cycles x 2 sequences");
    let main: Vec<&Value> = rows
        .iter()
        .filter(|r| r["sequence_name"] == "main")
        .collect();
    let values: Vec<&str> = main
        .iter()
        .map(|r| r["actual_value"].as_str().unwrap())
        .collect();
    assert_eq!(
        values,
        ["16.98", "16.98", "17.00", "17.00", "17.01", "17.12"]
    );
    assert_eq!(main[3]["process_error"], -1, "cycle 4 failed alignment");
    assert_eq!(main[5]["raw_value"], "N7.12");
    assert_eq!(main[0]["cycle"], 1);
    assert_eq!(main[0]["timestamp_processed"], "2024-01-01T01:00:00+0100");
    assert_eq!(
        main[1]["timestamp_processed"], "2024-01-01T01:01:00+0100",
        "clock advances by the interval"
    );
    let gas: Vec<&Value> = rows
        .iter()
        .filter(|r| r["sequence_name"] == "gas")
        .collect();
    assert!(
        gas[0]["value_status"].as_str().unwrap().starts_with("E90"),
        "nothing injected yet reads N"
    );
    assert_eq!(gas[1]["actual_value"], "34.5");
    assert_eq!(gas[5]["actual_value"], "34.5", "the last reading repeats");
}

#[test]
fn start_overrides_the_clock() {
    let frames = root().join("fixtures/frames/flat-json.jsonl");
    let out = replay(
        "fixtures/configs/flat-json.json",
        frames.to_str().unwrap(),
        &["--start", "0"],
    );
    assert_eq!(
        lines(&out)[0]["timestamp_processed"],
        "1970-01-01T01:00:00+0100"
    );
}

#[test]
fn bad_frame_line_names_the_line() {
    let dir = std::env::temp_dir().join(format!("vb-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let frames = dir.join("bad.jsonl");
    std::fs::write(&frames, "{\"sequence\":\"main\",\"digits\":[1,2],\"analogs\":[3,4]}\n{\"sequence\":\"main\",\"digits\":[1]}\n").unwrap();
    let out = replay(
        "fixtures/configs/flat-json.json",
        frames.to_str().unwrap(),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("frames line 2") && err.contains("roi-count"),
        "{err}"
    );
    assert_eq!(lines(&out).len(), 2, "the good first cycle was printed");
}

#[test]
fn missing_files_and_bad_config_are_clear() {
    let out = replay("fixtures/configs/nope.json", "/nonexistent.jsonl", &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config"));
    let dir = std::env::temp_dir().join(format!("vb-replay-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.json");
    std::fs::write(&cfg, r#"{"mqtt": {"maintopic": "a/#"}}"#).unwrap();
    let frames = root().join("fixtures/frames/flat-json.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_virtual-board"))
        .args([
            "replay",
            "--config",
            cfg.to_str().unwrap(),
            "--frames",
            frames.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mqtt.maintopic"), "{err}");
}
