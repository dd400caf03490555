//! What the rig's tests share: the board program (built on demand) and a command's output as text.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// Builds `virtual-board` (a no-op when it is up to date) and returns its path.
pub fn board_bin() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .current_dir(&root)
        .args(["build", "-q", "-p", "virtual-board"])
        .status()
        .expect("cargo build");
    assert!(status.success(), "cannot build virtual-board");
    harness::board::default_board_bin()
}

/// stdout and stderr of a finished command.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
