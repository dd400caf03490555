//! `hil image` + `hil flash` as a user runs them against a virtual board in download mode, and every refusal.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{board_bin, text};
use harness::board::BoardProcess;

fn hil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hil"))
}

fn start(bin: &Path, dir: &Path, download: bool) -> BoardProcess {
    let args: &[&str] = if download { &["--download"] } else { &[] };
    BoardProcess::start(bin, dir, args, Stdio::null()).expect("virtual board")
}

fn status_version(board: &BoardProcess) -> String {
    board
        .firmware_version(Duration::from_secs(5))
        .expect("firmware version")
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
    let port = board.serial().to_string();
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

    // The board now runs that app: asked over its console, it restarts into the ROM loader for the next flash.
    let app_console = image(&dir, "v17.0.10-console", &[]);
    let out = hil()
        .args(["flash", "--port", &port, "--before", "console"])
        .arg(&app_console)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(status_version(&board), "v17.0.10-console");
    drop(board);

    // The flash persists: a power cycle boots the same image.
    let again = start(&bin, &dir.join("board"), false);
    assert_eq!(status_version(&again), "v17.0.10-console");
    drop(again);

    // The ROM loader alone (no stub), left in the loader.
    let board = start(&bin, &dir.join("board"), true);
    let port = board.serial().to_string();
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
    let port = board.serial().to_string();
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

    // Bigger than the room after 0x10000 in the board's 4 MiB flash: refused after connecting, nothing written.
    let huge = image(&dir, "v-huge", &["--size", "4200000"]);
    let huge_board = start(&bin, &dir.join("board-huge"), true);
    let out = hil()
        .args([
            "flash",
            "--port",
            huge_board.serial(),
            "--before",
            "no-reset",
        ])
        .arg(&huge)
        .output()
        .unwrap();
    assert!(
        text(&out).contains("is larger than the app partition (4128768 bytes)"),
        "{}",
        text(&out)
    );
    assert!(
        !dir.join("board-huge/flash.bin").exists(),
        "nothing was written"
    );
    drop(huge_board);

    // No loader answers on a board that runs its app: no sync, with the fix.
    drop(board);
    let board = start(&bin, &dir.join("board2"), false);
    let port = board.serial().to_string();
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

#[test]
fn hil_monitor_timestamps_lines_forwards_typing_and_ends_with_the_port() {
    use std::io::{BufRead, BufReader, Write};
    let bin = board_bin();
    let dir = std::env::temp_dir().join(format!("hil-monitor-{}", std::process::id()));
    let board = start(&bin, &dir, false);
    let mut monitor = hil()
        .args(["monitor", "--port", board.serial()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hil monitor");
    let mut typed = monitor.stdin.take().expect("stdin");
    let mut lines = BufReader::new(monitor.stdout.take().expect("stdout")).lines();
    std::thread::sleep(Duration::from_millis(200));
    typed.write_all(b"status\n").expect("type");
    let reply = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("] ok {"))
        .expect("the console's reply, timestamped");
    let stamp = reply
        .trim_start_matches('[')
        .split(']')
        .next()
        .unwrap_or_default();
    assert!(
        stamp.trim().parse::<f64>().is_ok() && stamp.contains('.'),
        "{reply}"
    );
    // The board goes away (power loss): the monitor says so and ends.
    drop(board);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter()
            .any(|l| l.contains("closed (board reset or unplugged)")),
        "{rest:?}"
    );
    let status = monitor.wait().expect("monitor ends");
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
