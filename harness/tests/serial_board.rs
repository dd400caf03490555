//! `SerialBoard` on pseudo-terminals: against a scripted device on a PTY (console, capture, reset strategies, the
//! errors a runner sees), and against a virtual board, which is a real device on a PTY (console, flashing through
//! its ROM loader after `download`, the new version booting).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use harness::board::{Board, BoardError, BoardProcess};
use harness::inventory::Inventory;
use harness::serial_board::SerialBoard;

fn inventory(port: &str, reset: &str, extra: &str) -> Inventory {
    Inventory::parse(
        "pty",
        &format!("chip = \"esp32c3\"\nport = \"{port}\"\nreset = \"{reset}\"\nbroker = \"mqtt://127.0.0.1:1\"\n{extra}"),
    )
    .expect("inventory")
}

/// A scripted device on the master side of a PTY: answers `status`, reports every line it got.
fn fake_device() -> (String, mpsc::Receiver<String>) {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let mut attrs = nix::sys::termios::tcgetattr(pty.slave.as_fd()).unwrap();
    nix::sys::termios::cfmakeraw(&mut attrs);
    nix::sys::termios::tcsetattr(
        pty.slave.as_fd(),
        nix::sys::termios::SetArg::TCSANOW,
        &attrs,
    )
    .unwrap();
    let path = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&pty.slave)
    ))
    .unwrap()
    .display()
    .to_string();
    let master = std::fs::File::from(pty.master);
    let mut out = master.try_clone().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _slave = pty.slave; // keep the PTY alive while the device runs
        out.write_all(b"ESP-ROM:esp32c3-api1-20210207\r\n").unwrap();
        for line in BufReader::new(master).lines() {
            let Ok(line) = line else { return };
            let line = line.trim().to_string();
            let reply = match line.as_str() {
                "status" => "ok {\"firmware_version\":\"v-fake\"}".to_string(),
                "reboot" => {
                    "ok rebooting\r\nrst:0xc (RTC_SW_CPU_RST),boot:0xc (SPI_FAST_FLASH_BOOT)"
                        .to_string()
                }
                other => format!("err bad-command unknown command '{other}'"),
            };
            let _ = tx.send(line);
            if out.write_all(format!("{reply}\r\n").as_bytes()).is_err() {
                return;
            }
        }
    });
    (path, rx)
}

#[test]
fn console_capture_and_reset_strategies_on_a_scripted_device() {
    let (port, seen) = fake_device();
    let mut board = SerialBoard::open(inventory(&port, "console", "")).expect("open");
    let reply = board
        .console("status", Duration::from_secs(2))
        .expect("reply");
    assert_eq!(reply, "ok {\"firmware_version\":\"v-fake\"}");
    let reply = board
        .console("frobnicate", Duration::from_secs(2))
        .expect("reply");
    assert!(reply.starts_with("err bad-command"), "{reply}");

    board.reset().expect("console reset");
    let mut got = Vec::new();
    while let Ok(l) = seen.recv_timeout(Duration::from_secs(2)) {
        got.push(l.clone());
        if l == "reboot" {
            break;
        }
    }
    assert_eq!(got, ["status", "frobnicate", "reboot"]);
    std::thread::sleep(Duration::from_millis(100));
    let log = board.console_lines();
    assert!(
        log.iter().any(|l| l.starts_with("ESP-ROM:esp32c3")),
        "{log:?}"
    );
    assert!(log.iter().any(|l| l.contains("RTC_SW_CPU_RST")), "{log:?}");

    assert!(matches!(board.power_off(), Err(BoardError::Unsupported(_))));
    let e = board.drive_input(14, true).unwrap_err().to_string();
    assert!(e.contains("no host line drives board pin 14"), "{e}");
    let e = board.jumper(12, 14).unwrap_err().to_string();
    assert!(e.contains("no jumper from board pin 12 to 14"), "{e}");
    drop(board);

    // RTS on a pseudo-terminal: the error names the fix.
    let (port, _seen) = fake_device();
    let mut board = SerialBoard::open(inventory(&port, "usb-jtag", "")).expect("open");
    let e = board.reset().unwrap_err().to_string();
    assert!(e.contains("reset = \"console\""), "{e}");
    let e = board.read_output(12).unwrap_err().to_string();
    assert!(e.contains("no host line reads board pin 12"), "{e}");
}

#[test]
fn the_pin_map_and_missing_ports_are_reported() {
    let inv = inventory("/dev/does-not-exist", "console", "[pin_map]\n12 = 4\n");
    assert_eq!(inv.board_pin(12), 4);
    let (port, _seen) = fake_device();
    let jumpered = inventory(
        &port,
        "console",
        "[pin_map]\n12 = 4\n14 = 6\n[[loopback]]\nfrom = 4\nto = 6\n",
    );
    let mut board = SerialBoard::open(jumpered).expect("open");
    assert!(
        board.jumper(12, 14).is_ok(),
        "scenario pins map onto the inventory's jumper"
    );
    assert!(board.jumper(14, 12).is_err(), "a jumper has a direction");
    drop(board);
    let e = SerialBoard::open(inv)
        .err()
        .expect("no such port")
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
}

#[test]
fn a_virtual_board_driven_as_a_serial_board_is_flashed_and_boots_the_new_version() {
    let dir = std::env::temp_dir().join(format!("hil-serial-vb-{}", std::process::id()));
    let process =
        BoardProcess::start(&common::board_bin(), &dir, &[], Stdio::null()).expect("virtual board");
    let port = process.serial().to_string();

    let mut board = SerialBoard::open(inventory(&port, "console", "")).expect("open");
    let reply = board
        .console("status", Duration::from_secs(5))
        .expect("status");
    assert!(reply.contains("-host\""), "{reply}");

    let image = dir.join("app.bin");
    std::fs::write(
        &image,
        harness::app_image::build(&harness::app_image::ImageSpec::new("v17.8.0-serial")).unwrap(),
    )
    .unwrap();
    let report = board.flash(&image);
    assert!(report.is_ok(), "{report:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let reply = board
            .console("status", Duration::from_secs(2))
            .unwrap_or_default();
        if reply.contains("\"firmware_version\":\"v17.8.0-serial\"") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "last reply {reply:?}");
    }
    drop(board);
    drop(process);
    let _ = std::fs::remove_dir_all(&dir);
}
