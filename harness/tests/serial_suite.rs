//! `hil run --board` end to end: the scenario suite on a board the rig reaches only the way it reaches a real one —
//! an inventory entry, its serial port (console: factory-reset, config merge, reboot), a broker both reach, and its
//! web address. A virtual board stands in for the ESP32-C3; `@virtual-only`, `@wiring` and `@browser` scenarios are
//! skipped with their reasons, the rest must pass.

mod common;

use std::process::{Command, Stdio};

use harness::board::BoardProcess;

#[test]
fn the_suite_passes_on_a_board_reached_through_its_inventory() {
    let bin = common::board_bin();
    let broker = harness::broker::start_embedded("127.0.0.1:0".parse().unwrap()).expect("broker");
    let dir = std::env::temp_dir().join(format!("hil-serial-suite-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let board = BoardProcess::start(&bin, &dir.join("state"), &[], Stdio::null()).expect("board");
    let inventory = dir.join("pty-board.toml");
    std::fs::write(
        &inventory,
        format!(
            "chip = \"esp32c3\"\nport = \"{}\"\nreset = \"console\"\nbroker = \"mqtt://{}:{}\"\nhttp = \"{}\"\ntimeserver = \"rig\"\nboard_type = \"Virtual Board\"\n[pin_map]\n12 = 5\n13 = 6\n14 = 7\n15 = 3\n4 = 10\n",
            board.serial(),
            broker.host,
            broker.port,
            board.http()
        ),
    )
    .unwrap();
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO_BIN_EXE_hil"))
        .args(["run", "--tags", "not @browser", "--board"])
        .arg(&inventory)
        .current_dir(&root)
        .output()
        .expect("hil run");
    let text = common::text(&out);
    // The failed steps with what they said, not the whole run.
    let failures: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains('✘'))
        .filter(|l| !l.contains('✔'))
        .take(60)
        .collect();
    assert!(
        out.status.success(),
        "{}\n{}",
        failures.join("\n"),
        &text[text.len().saturating_sub(1000)..]
    );
    assert!(
        text.contains("skipped: ") && text.contains("@virtual-only"),
        "{text}"
    );
    assert!(
        text.contains("@wiring scenario(s) or feature(s): inventory 'pty-board' has no [[wiring]]"),
        "{text}"
    );
    let ran: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" scenarios ("))
        .collect();
    assert!(
        !ran.is_empty() && ran.iter().all(|l| !l.contains("failed")),
        "{ran:?}"
    );
    drop(board);
    let _ = std::fs::remove_dir_all(&dir);
}
