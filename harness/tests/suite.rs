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
    let out = Command::new(hil)
        .args(["run", "--concurrency", "8", "--board-bin"])
        .arg(&board)
        .current_dir(&root)
        .status()
        .expect("run hil");
    if out.success() {
        println!("suite: 1 passed, 0 failed");
    } else {
        println!("suite: 0 passed, 1 failed");
        std::process::exit(1);
    }
}
