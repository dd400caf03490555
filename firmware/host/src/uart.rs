//! UART0 as a pseudo-terminal: the rig (or `screen /dev/pts/N`) opens the slave side like a USB serial port. The
//! firmware prints into the shell's bounded pipe ([`UartPipe`]); this side moves it to the port.

use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use embassy_sync::blocking_mutex::raw::RawMutex;
use meter_shell::uart::UartPipe;
use meter_shell::{Inbox, Input};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::pty::openpty;
use nix::sys::termios::{self, SetArg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

    /// Waits until `n` more bytes could have crossed the wire.
    async fn pass(&mut self, n: usize) {
        let now = Instant::now();
        let start = self.free_at.max(now);
        self.free_at = start + Duration::from_secs_f64(n as f64 * 10.0 / f64::from(self.baud));
        if self.free_at > now {
            tokio::time::sleep(self.free_at - now).await;
        }
    }
}

/// UART0 as a pseudo-terminal: its device path and the master side. Writes that the host does not read wait here;
/// the firmware never does (it prints into the shell's bounded pipe, which drops what does not fit).
pub struct Pty {
    pub path: PathBuf,
    reader: tokio::sync::Mutex<tokio::fs::File>,
    writer: tokio::sync::Mutex<tokio::fs::File>,
    last_words: File,
    /// Held open so the master never reads EIO while no client has the port open.
    _slave: OwnedFd,
    baud: Option<u32>,
}

impl Pty {
    /// Opens the PTY; with `baud`, both directions are slowed to that line rate.
    pub fn open(baud: Option<u32>) -> Result<Pty> {
        let pty = openpty(None, None).context("cannot open a pseudo-terminal")?;
        // Raw like a UART: no echo, no line editing, no CR/LF translation.
        let mut attrs = termios::tcgetattr(pty.slave.as_fd())?;
        termios::cfmakeraw(&mut attrs);
        termios::tcsetattr(pty.slave.as_fd(), SetArg::TCSANOW, &attrs)?;
        let path = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd()))
            .context("cannot resolve the pseudo-terminal path")?;
        let master = File::from(pty.master);
        Ok(Pty {
            path,
            reader: tokio::sync::Mutex::new(tokio::fs::File::from_std(master.try_clone()?)),
            writer: tokio::sync::Mutex::new(tokio::fs::File::from_std(master.try_clone()?)),
            last_words: master,
            _slave: pty.slave,
            baud,
        })
    }

    /// Moves what the firmware printed from the pipe to the port, as fast as the host reads (and the line rate
    /// allows). Runs for the life of the board.
    pub async fn send_from<M: RawMutex>(&self, pipe: &UartPipe<M>) {
        let mut wire = self.baud.map(Wire::new);
        let mut buf = [0u8; 1024];
        let mut port = self.writer.lock().await;
        loop {
            let n = pipe.read(&mut buf).await;
            if let Some(w) = wire.as_mut() {
                w.pass(n).await;
            }
            if port.write_all(&buf[..n]).await.is_err() || port.flush().await.is_err() {
                return;
            }
        }
    }

    /// The port's file descriptor (where the last words of a failing process go).
    pub fn raw_fd(&self) -> i32 {
        self.last_words.as_raw_fd()
    }

    /// Writes bytes now if the port takes them, without waiting (the last words of a process that is about to
    /// end: a port nobody reads must not keep it from ending).
    pub fn write_now(&self, bytes: &[u8]) {
        let nonblocking = fcntl(self.last_words.as_raw_fd(), FcntlArg::F_GETFL).and_then(|flags| {
            fcntl(
                self.last_words.as_raw_fd(),
                FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
            )
        });
        if nonblocking.is_ok() {
            let _ = (&self.last_words).write(bytes);
        }
    }

    /// Delivers what the host types to the board's inbox, chunk by chunk. Runs for the life of the board.
    pub async fn receive<M: RawMutex>(&self, inbox: &Inbox<M>) {
        let mut wire = self.baud.map(Wire::new);
        let mut buf = vec![0u8; 64 * 1024];
        let mut port = self.reader.lock().await;
        loop {
            match port.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if let Some(w) = wire.as_mut() {
                        w.pass(n).await;
                    }
                    inbox.send(Input::Uart(buf[..n].to_vec())).await;
                }
            }
        }
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
