//! The whole Gherkin suite on virtual boards with an embedded broker, as part of `cargo test`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    // The rig starts boards as programs: make sure the board program is built (a no-op when it is).
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-q", "-p", "virtual-board"])
        .current_dir(&root)
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "cannot build virtual-board"
    );
    let hil = env!("CARGO_BIN_EXE_hil");
    let board = harness::board::default_board_bin();
    let logs = std::env::temp_dir().join(format!("hil-console-{}", std::process::id()));
    let out = Command::new(hil)
        .args(["run", "--concurrency", "8", "--board-bin"])
        .arg(&board)
        .env("HIL_CONSOLE_DIR", &logs)
        .current_dir(&root)
        .status()
        .expect("run hil");
    // Every scenario left its board's console log (what CI uploads).
    let kept = std::fs::read_dir(&logs).map(|d| d.count()).unwrap_or(0);
    let banner = std::fs::read_dir(&logs)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("ESP-ROM:esp32c3")));
    let _ = std::fs::remove_dir_all(&logs);
    assert!(
        kept >= 100 && banner,
        "console logs kept: {kept}, boot banner seen: {banner}"
    );
    if out.success() {
        println!("suite: 1 passed, 0 failed");
    } else {
        println!("suite: 0 passed, 1 failed");
        std::process::exit(1);
    }
}
