//! Espressif's esptool, unmodified, flashes the virtual board through its ROM loader: with the flasher stub (its
//! default) and with `--no-stub`, then reads the flash back. `.ci/run` installs esptool with pip and sets
//! REQUIRE_ESPTOOL=1, so there this test cannot pass by skipping.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::board::BoardProcess;

fn start(dir: &Path, download: bool) -> BoardProcess {
    let args: &[&str] = if download { &["--download"] } else { &[] };
    BoardProcess::start(
        Path::new(env!("CARGO_BIN_EXE_virtual-board")),
        dir,
        args,
        Stdio::null(),
    )
    .expect("virtual board")
}

/// `esptool` on PATH, else `python3 -m esptool`; None when neither works.
fn esptool() -> Option<Vec<String>> {
    for cmd in [vec!["esptool"], vec!["python3", "-m", "esptool"]] {
        let ok = Command::new(cmd[0])
            .args(&cmd[1..])
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(cmd.iter().map(|s| s.to_string()).collect());
        }
    }
    None
}

#[test]
fn esptool_writes_images_the_board_boots() {
    let Some(tool) = esptool() else {
        assert!(
            std::env::var_os("REQUIRE_ESPTOOL").is_none(),
            "REQUIRE_ESPTOOL is set but esptool is not installed (pip install esptool)"
        );
        eprintln!("skipped: esptool is not installed (pip install esptool)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("vb-esptool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let state = dir.join("board");
    for (version, extra) in [
        ("v17.6.0-esptool", vec![]),
        ("v17.6.1-esptool-rom", vec!["--no-stub"]),
    ] {
        let mut spec = harness::app_image::ImageSpec::new(version);
        spec.size = 300_000;
        let image = harness::app_image::build(&spec).expect("image");
        let path: PathBuf = dir.join(format!("{version}.bin"));
        std::fs::write(&path, &image).expect("write image");

        let board = start(&state, true);
        let port = board.serial().to_string();
        let out = Command::new(&tool[0])
            .args(&tool[1..])
            .args([
                "--chip", "esp32c3", "--port", &port, "--before", "no-reset", "--after", "no-reset",
            ])
            .args(&extra)
            .args(["write-flash", "0x10000"])
            .arg(&path)
            .output()
            .expect("run esptool");
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "esptool {extra:?} failed:\n{log}");
        assert!(log.contains("Hash of data verified"), "{log}");
        if extra.is_empty() {
            assert!(log.contains("Stub flasher running"), "{log}");
        }

        // Read back what landed (stub READ_FLASH, or slow ROM reads with --no-stub).
        let back = dir.join("readback.bin");
        let out = Command::new(&tool[0])
            .args(&tool[1..])
            .args([
                "--chip", "esp32c3", "--port", &port, "--before", "no-reset", "--after", "no-reset",
            ])
            .args(["read-flash", "0x10000", "8192"])
            .arg(&back)
            .output()
            .expect("run esptool read-flash");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read(&back).expect("readback"), image[..8192]);
        drop(board);

        // Reset without BOOT held: the bootloader checks the image and the app reports its version.
        let booted = start(&state, false);
        assert_eq!(
            booted
                .firmware_version(Duration::from_secs(5))
                .expect("version"),
            version
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
