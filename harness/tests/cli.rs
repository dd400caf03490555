//! `hil` as a user runs it: broker, tree, migration verify, ha check against a live virtual board, and the errors.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn hil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hil"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn live_device_commands() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .args(["build", "-q", "-p", "virtual-board"])
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(status.success());
    let port = free_port();
    let _broker = Kill(
        hil()
            .args(["broker", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "hil broker did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let uri = format!("mqtt://127.0.0.1:{port}");
    let topic = format!("cli{}/meter", std::process::id());
    let mut config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("fixtures/configs/ha-json-topics.json")).unwrap(),
    )
    .unwrap();
    config["mqtt"]["uri"] = uri.clone().into();
    config["mqtt"]["maintopic"] = topic.clone().into();
    let dir = std::env::temp_dir().join(format!("hil-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("c.json"), config.to_string()).unwrap();
    // The HA check listens from before the device connects, as a user would run it.
    let ha = hil()
        .args([
            "ha", "check", "--broker", &uri, "--root", &topic, "--for", "3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // The host's clock: no time server here, and a board without time does not start its automatic cycles.
    let mut board = Command::new(harness::board::default_board_bin())
        .args(["--limits", "host", "--state-dir"])
        .arg(&dir)
        .arg("--config")
        .arg(dir.join("c.json"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(board.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let _board = Kill(board);

    // The automatic mode runs its first cycle right after connecting.
    for _ in 0..20 {
        let out = hil()
            .args(["tree", "--broker", &uri, "--root", &topic, "--for", "0.5"])
            .output()
            .unwrap();
        if text(&out).contains("/process/status/cycle_counter") {
            break;
        }
    }
    // A subscriber that came before the board saw everything live; a new one gets the retained tree, flagged.
    let out = hil()
        .args(["tree", "--broker", &uri, "--root", &topic, "--for", "0.5"])
        .output()
        .unwrap();
    let tree = text(&out);
    assert!(
        tree.contains(&format!("{topic}/device/status/connection [r] online")),
        "{tree}"
    );
    let out = hil()
        .args([
            "tree", "--broker", &uri, "--root", &topic, "--for", "0.5", "--json",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v[format!("{topic}/device/status/connection")]["retain"],
        true
    );

    let out = hil()
        .args([
            "migration",
            "verify",
            "--broker",
            &uri,
            "--root",
            &topic,
            "--for",
            "1",
            "--trigger-cycle",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("migration notes hold"));

    let out = ha.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("pressing '1' started a cycle"),
        "{}",
        text(&out)
    );

    // A root with no device: every row fails, non-zero exit.
    let out = hil()
        .args([
            "migration",
            "verify",
            "--broker",
            &uri,
            "--root",
            "nobody/here",
            "--for",
            "0.3",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("FAIL"));
}

#[test]
fn errors_say_what_to_do() {
    let port = free_port();
    let out = hil()
        .args(["run", "--broker", &format!("mqtt://127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let t = text(&out);
    assert!(
        t.contains(&format!("mqtt://127.0.0.1:{port}")) && t.contains("unreachable"),
        "{t}"
    );

    let out = hil()
        .args(["run", "--board-bin", "/nonexistent/virtual-board"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("cargo build --release -p virtual-board"),
        "{}",
        text(&out)
    );

    let out = hil().args(["run", "--tags", "gpio and"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("tag expression"), "{}", text(&out));
}
