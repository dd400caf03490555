//! `hil bench` end to end on the embedded broker: round trips, then 1, 8 and 32 boards at once.

mod common;

use std::process::Command;

#[test]
fn bench_runs_its_round_trips_and_scaling_on_the_embedded_broker() {
    let bin = common::board_bin();
    let out = Command::new(env!("CARGO_BIN_EXE_hil"))
        .args(["bench", "--n", "3", "--board-bin"])
        .arg(&bin)
        .output()
        .expect("run hil bench");
    let text = common::text(&out);
    assert!(out.status.success(), "{text}");
    for line in [
        "cycle_start -> cycle_counter   n=3",
        "gpio ctrl -> state             n=3",
        " 1 boards at once: all online in",
        " 8 boards at once: all online in",
        "32 boards at once: all online in",
    ] {
        assert!(text.contains(line), "no '{line}' in:\n{text}");
    }
    // rumqttd panics on client ids with '/' (the bench once used its topics as client ids).
    assert!(!text.contains("panicked"), "{text}");
}
