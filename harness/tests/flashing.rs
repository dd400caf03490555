//! `hil image` + `hil flash` as a user runs them against a virtual board in download mode, and every refusal.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

fn hil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hil"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A virtual board process; killed (power loss) on drop.
struct Running {
    child: Child,
    ready: serde_json::Value,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn board_bin() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .current_dir(&root)
        .args(["build", "-q", "-p", "virtual-board"])
        .status()
        .expect("cargo build");
    assert!(status.success());
    harness::board::default_board_bin()
}

fn start(bin: &Path, dir: &Path, download: bool) -> Running {
    let mut cmd = Command::new(bin);
    cmd.arg("--state-dir").arg(dir);
    if download {
        cmd.arg("--download");
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn virtual-board");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready = serde_json::from_str(&line).expect("ready line");
    Running { child, ready }
}

fn status_version(board: &Running) -> String {
    let addr = board.ready["http"].as_str().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if let Ok((200, body)) = harness::world::http_request(addr, "GET", "/api/status", "") {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            return v["firmware_version"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the board never served /api/status"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn image(dir: &Path, version: &str, extra: &[&str]) -> PathBuf {
    let path = dir.join(format!("{version}.bin"));
    let out = hil()
        .args(["image", "--version", version, "--output"])
        .arg(&path)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    path
}

#[test]
fn hil_flash_writes_an_image_the_board_then_boots() {
    let bin = board_bin();
    let dir = std::env::temp_dir().join(format!("hil-flash-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let app = image(&dir, "v17.0.9-cli", &["--size", "200000"]);

    let board = start(&bin, &dir.join("board"), true);
    let port = board.ready["serial"].as_str().unwrap().to_string();
    let out = hil()
        .args(["flash", "--port", &port, "--before", "no-reset"])
        .arg(&app)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("version v17.0.9-cli"), "{}", text(&out));
    // A pseudo-terminal has no EN line: the hard reset became "run user code" and the new app runs.
    assert!(text(&out).contains("run user code"), "{}", text(&out));
    assert_eq!(status_version(&board), "v17.0.9-cli");
    drop(board);

    // The flash persists: a power cycle boots the same image.
    let again = start(&bin, &dir.join("board"), false);
    assert_eq!(status_version(&again), "v17.0.9-cli");
    drop(again);

    // The ROM loader alone (no stub), left in the loader.
    let board = start(&bin, &dir.join("board"), true);
    let port = board.ready["serial"].as_str().unwrap().to_string();
    let app2 = image(&dir, "v17.1.0-rom", &[]);
    let out = hil()
        .args([
            "flash",
            "--port",
            &port,
            "--before",
            "no-reset",
            "--after",
            "no-reset",
            "--no-stub",
        ])
        .arg(&app2)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ROM loader"), "{}", text(&out));
    drop(board);
    let again = start(&bin, &dir.join("board"), false);
    assert_eq!(status_version(&again), "v17.1.0-rom");
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn flash_refusals_say_what_to_do() {
    let bin = board_bin();
    let dir = std::env::temp_dir().join(format!("hil-flash-err-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let good = image(&dir, "v1", &[]);

    let out = hil()
        .args(["flash", "--port", "/dev/does-not-exist"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("does not exist: is the board plugged in"),
        "{}",
        text(&out)
    );

    let s3 = image(&dir, "v2", &["--chip", "esp32s3"]);
    let out = hil()
        .args(["flash", "--port", "/dev/null"])
        .arg(&s3)
        .output()
        .unwrap();
    assert!(
        text(&out).contains("wrong chip") && text(&out).contains("built for esp32s3"),
        "{}",
        text(&out)
    );

    let mut bytes = std::fs::read(&good).unwrap();
    bytes[60] ^= 0xFF;
    let bad = dir.join("bad.bin");
    std::fs::write(&bad, &bytes).unwrap();
    let out = hil()
        .args(["flash", "--port", "/dev/null"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(text(&out).contains("checksum mismatch"), "{}", text(&out));

    let out = hil()
        .args(["image", "--version", "v1", "--chip", "esp99", "--output"])
        .arg(dir.join("x.bin"))
        .output()
        .unwrap();
    assert!(
        text(&out).contains("unknown chip 'esp99'"),
        "{}",
        text(&out)
    );

    // A port another program holds open is busy, and the holder is named.
    let board = start(&bin, &dir.join("board"), true);
    let port = board.ready["serial"].as_str().unwrap().to_string();
    let holder = Command::new("sleep")
        .arg("30")
        .stdin(std::fs::File::open(&port).unwrap())
        .spawn()
        .unwrap();
    let out = hil()
        .args(["flash", "--port", &port, "--before", "no-reset"])
        .arg(&good)
        .output()
        .unwrap();
    let mut holder = holder;
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(text(&out).contains("is busy: sleep (pid"), "{}", text(&out));

    // No loader answers on a board that runs its app: no sync, with the fix.
    drop(board);
    let board = start(&bin, &dir.join("board2"), false);
    let port = board.ready["serial"].as_str().unwrap().to_string();
    let out = hil()
        .args(["flash", "--port", &port, "--before", "no-reset"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        text(&out).contains("no sync reply") && text(&out).contains("hold BOOT"),
        "{}",
        text(&out)
    );
    assert!(
        status_version(&board).ends_with("-host"),
        "the running app was not disturbed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
