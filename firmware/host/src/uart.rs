//! UART0 as a pseudo-terminal: the rig (or `screen /dev/pts/N`) opens the slave side like a USB serial port.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use nix::pty::openpty;
use nix::sys::termios::{self, SetArg};

/// The writable side of the UART, shared by everything that prints.
#[derive(Clone)]
pub struct Uart {
    out: Arc<Mutex<File>>,
}

impl Uart {
    /// Writes one line (a `\r\n` ends it, as an ESP32 console does).
    pub fn line(&self, text: &str) {
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(text.as_bytes());
            let _ = out.write_all(b"\r\n");
            let _ = out.flush();
        }
    }
}

/// An open pseudo-terminal: its device path, the writer, and the reader of typed lines.
pub struct Pty {
    pub path: PathBuf,
    pub uart: Uart,
    master_reader: File,
    /// Held open so the master never reads EIO while no client has the port open.
    _slave: OwnedFd,
}

impl Pty {
    pub fn open() -> Result<Pty> {
        let pty = openpty(None, None).context("cannot open a pseudo-terminal")?;
        // Raw like a UART: no echo, no line editing, no CR/LF translation.
        let mut attrs = termios::tcgetattr(pty.slave.as_fd())?;
        termios::cfmakeraw(&mut attrs);
        termios::tcsetattr(pty.slave.as_fd(), SetArg::TCSANOW, &attrs)?;
        let path = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&pty.slave)
        ))
        .context("cannot resolve the pseudo-terminal path")?;
        let master = File::from(pty.master);
        let writer = master.try_clone()?;
        Ok(Pty {
            path,
            uart: Uart {
                out: Arc::new(Mutex::new(writer)),
            },
            master_reader: master,
            _slave: pty.slave,
        })
    }

    /// Reads typed lines on a thread and hands each to `on_line` (CR, LF or CRLF end a line).
    pub fn spawn_reader(
        self,
        on_line: impl Fn(String) + Send + 'static,
    ) -> (PathBuf, Uart, OwnedFd) {
        let Pty {
            path,
            uart,
            master_reader,
            _slave,
        } = self;
        std::thread::Builder::new()
            .name("uart-rx".into())
            .spawn(move || {
                let mut reader = BufReader::new(master_reader);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let text = String::from_utf8_lossy(&buf);
                            for part in text.split('\r') {
                                let line = part.trim_end_matches('\n');
                                if !line.trim().is_empty() {
                                    on_line(line.to_string());
                                }
                            }
                        }
                    }
                }
            })
            .expect("spawn uart reader");
        (path, uart, _slave)
    }
}

/// An ESP32-C3 ROM + bootloader banner, then the app's identification lines.
pub fn boot_banner(version: &str) -> Vec<String> {
    vec![
        "ESP-ROM:esp32c3-api1-20210207".into(),
        "Build:Feb  7 2021".into(),
        "rst:0x1 (POWERON),boot:0xc (SPI_FAST_FLASH_BOOT)".into(),
        "SPIWP:0xee".into(),
        "mode:DIO, clock div:1".into(),
        "load:0x3fcd5820,len:0x1714".into(),
        "entry 0x403cc710".into(),
        "I (30) boot: ESP-IDF v5.1 2nd stage bootloader".into(),
        "I (35) boot: Loaded app from partition at offset 0x10000".into(),
        "I (40) app_init: Project name:     meterrig".into(),
        format!("I (45) app_init: App version:      {version}"),
        "I (50) cpu_start: Pro cpu start user code".into(),
    ]
}

/// The ROM's banner in serial download mode.
pub fn download_banner() -> Vec<String> {
    vec![
        "ESP-ROM:esp32c3-api1-20210207".into(),
        "Build:Feb  7 2021".into(),
        "rst:0x1 (POWERON),boot:0x7 (DOWNLOAD(USB/UART0/1))".into(),
        "waiting for download".into(),
    ]
}
