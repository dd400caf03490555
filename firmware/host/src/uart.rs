//! UART0 as a pseudo-terminal: the rig (or `screen /dev/pts/N`) opens the slave side like a USB serial port.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::pty::openpty;
use nix::sys::termios::{self, SetArg};

/// A simulated line rate: bytes may not pass faster than 10 bit times each (8N1).
#[derive(Debug)]
pub struct Wire {
    baud: u32,
    free_at: Instant,
}

impl Wire {
    pub fn new(baud: u32) -> Wire {
        Wire {
            baud: baud.max(1),
            free_at: Instant::now(),
        }
    }

    /// Blocks until `n` more bytes could have crossed the wire.
    fn pass(&mut self, n: usize) {
        let now = Instant::now();
        let start = self.free_at.max(now);
        self.free_at = start + Duration::from_secs_f64(n as f64 * 10.0 / f64::from(self.baud));
        if self.free_at > now {
            std::thread::sleep(self.free_at - now);
        }
    }
}

/// The writable side of the UART, shared by everything that prints.
#[derive(Clone)]
pub struct Uart {
    out: Arc<Mutex<File>>,
    wire: Option<Arc<Mutex<Wire>>>,
}

impl Uart {
    /// Writes one line (a `\r\n` ends it, as an ESP32 console does).
    pub fn line(&self, text: &str) {
        let mut bytes = text.as_bytes().to_vec();
        bytes.extend_from_slice(b"\r\n");
        self.raw(&bytes);
    }

    /// Writes bytes as they are (the ROM loader's SLIP frames).
    pub fn raw(&self, bytes: &[u8]) {
        if let Some(wire) = &self.wire {
            if let Ok(mut w) = wire.lock() {
                w.pass(bytes.len());
            }
        }
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(bytes);
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
    /// Opens the PTY; with `baud`, both directions are slowed to that line rate.
    pub fn open(baud: Option<u32>) -> Result<Pty> {
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
                wire: baud.map(|b| Arc::new(Mutex::new(Wire::new(b)))),
            },
            master_reader: master,
            _slave: pty.slave,
        })
    }

    /// Reads what the host sends on a thread and hands each chunk to `on_bytes`.
    pub fn spawn_reader(
        self,
        baud: Option<u32>,
        on_bytes: impl Fn(Vec<u8>) + Send + 'static,
    ) -> Result<(PathBuf, Uart, OwnedFd)> {
        let Pty {
            path,
            uart,
            mut master_reader,
            _slave,
        } = self;
        let mut wire = baud.map(Wire::new);
        std::thread::Builder::new()
            .name("uart-rx".into())
            .spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match master_reader.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if let Some(w) = wire.as_mut() {
                                w.pass(n);
                            }
                            on_bytes(buf[..n].to_vec());
                        }
                    }
                }
            })
            .context("cannot start the UART reader")?;
        Ok((path, uart, _slave))
    }
}

/// The ROM and second-stage bootloader lines up to the point where the app image is checked.
pub fn bootloader_banner(reset_reason: &str) -> Vec<String> {
    vec![
        "ESP-ROM:esp32c3-api1-20210207".into(),
        "Build:Feb  7 2021".into(),
        format!("rst:{reset_reason},boot:0xc (SPI_FAST_FLASH_BOOT)"),
        "SPIWP:0xee".into(),
        "mode:DIO, clock div:1".into(),
        "load:0x3fcd5820,len:0x1714".into(),
        "entry 0x403cc710".into(),
        "I (30) boot: ESP-IDF v5.1 2nd stage bootloader".into(),
    ]
}

/// The lines of a successful boot: bootloader, then the app's identification.
pub fn boot_banner(reset_reason: &str, offset: usize, project: &str, version: &str) -> Vec<String> {
    let mut lines = bootloader_banner(reset_reason);
    lines.push(format!(
        "I (35) boot: Loaded app from partition at offset 0x{offset:x}"
    ));
    lines.push(format!("I (40) app_init: Project name:     {project}"));
    lines.push(format!("I (45) app_init: App version:      {version}"));
    lines.push("I (50) cpu_start: Pro cpu start user code".into());
    lines
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
