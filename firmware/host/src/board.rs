//! The virtual board: the shared shell (`meter_shell`) on host parts. This file is only what a chip's hardware is
//! on a host: the boot ROM and bootloader (what boots, download mode, boot loops), the UART as a pseudo-terminal,
//! GPIO lines on a socket, the SPI flash in a file, the network through tokio, signals for reset and power.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use embassy_futures::select::{select, select5, Either, Either5};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use meter_core::config::Config;
use meter_core::engine::{BoardInfo, BoardStatus, HttpResponse, TimeStatus};
use meter_core::gpio::PinMode;
use meter_shell::mqtt::{Driver, Link};
use meter_shell::time::WallClock;
use meter_shell::uart::UartPipe;
use meter_shell::{Board, Clock, Exit, Inbox, Input, Shell};
use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};

use crate::app_image;
use crate::gpio_lines::{self, Lines};
use crate::heap::{self, Firmware};
use crate::http;
use crate::mqtt::{HostClock, HostNet, HostUdp};
use crate::rom_loader::{Output, RomLoader};
use crate::spi_flash::{SharedFlash, SpiFlash};
use crate::uart::{self, Pty};

type Mutex = CriticalSectionRawMutex;

/// What the firmware reports as its version when no image was flashed (the factory firmware).
pub const HOST_FIRMWARE_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"), "-host");
const PROJECT_NAME: &str = "meterrig";
/// A bootloader that finds no app resets and tries again, this often.
const BOOT_RETRY: Duration = Duration::from_secs(1);
/// Files of the state-directory layout before the config moved into the flash: read once, then renamed.
const OLD_CONFIG: &str = "config.json";
const OLD_FALLBACKS: &str = "fallbacks.json";

/// How the board was started.
pub struct Options {
    pub state_dir: PathBuf,
    pub config: Option<PathBuf>,
    pub download: bool,
    /// Simulated UART line rate (both directions); none = as fast as the PTY goes.
    pub uart_baud: Option<u32>,
    /// Whose limits the board has.
    pub limits: Limits,
}

/// The chip's limits, or the host's for experiments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Limits {
    /// As an ESP32-C3: its MQTT packet size, and time only from network time (1970 until the first sync).
    Chip,
    /// The host's: MQTT packets up to 1 MiB, the host's clock (synchronized from the start).
    Host,
}

/// What runs on the chip after a reset.
enum Mode {
    /// The firmware: the shell and the engine.
    App { reset_reason: &'static str },
    /// The ROM serial loader waits for a flasher.
    Download,
    /// No bootable app: the bootloader resets and fails again, until a reset into download mode.
    BootLoop,
}

/// The host's parts as the shell sees them.
struct HostBoard {
    lines: Lines,
}

/// The host's clock (unix milliseconds).
fn host_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Board for HostBoard {
    fn configure_pin(&mut self, pin: u8, mode: PinMode, _pwm_hz: u32) -> Result<(), String> {
        self.lines
            .configure(pin, mode.name(), mode.is_input(), mode.idle_level());
        Ok(())
    }

    fn set_pin(&mut self, pin: u8, level: bool, duty: Option<u32>) {
        self.lines.drive(pin, level, duty);
    }

    fn jumpered_input(&mut self, from: u8) -> Option<(u8, bool)> {
        self.lines.jumpered(from)
    }

    fn status(&mut self) -> BoardStatus {
        // The firmware's own heap as metered (heap.rs); without a limit, as if it had the chip's.
        let (used, peak, budget) = heap::figures();
        let size = if budget == usize::MAX {
            meter_shell::limits::FIRMWARE_HEAP.max(peak)
        } else {
            budget
        } as u64;
        let (used, peak) = (used as u64, peak as u64);
        BoardStatus {
            wlan_rssi: -50,
            chip_temp_c: 40.0,
            heap_total_free: size.saturating_sub(used),
            heap_internal_free: size.saturating_sub(used),
            heap_internal_largest_free: size.saturating_sub(used),
            heap_internal_min_free: size.saturating_sub(peak),
            heap_spiram_free: 0,
            heap_spiram_largest_free: 0,
            heap_spiram_min_free: 0,
            sd_partition_free_mb: 0,
            time: TimeStatus::NotSynchronized,
        }
    }

    fn log(&mut self, line: &str) {
        eprintln!("{line}");
    }
}

/// Validates a (partial) config file: the document, merged over the defaults, to store as the board's config.
pub fn seed_config(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --config {}", path.display()))?;
    let partial = meter_core::json::parse_unique(text.as_bytes())
        .map_err(|e| anyhow!("--config {} is not valid JSON: {e}", path.display()))?;
    let (doc, _) = Config::from_partial(&partial)
        .map_err(|e| anyhow!("--config {} refused: {e}", path.display()))?;
    Ok(serde_json::to_string_pretty(&doc)?)
}

/// A locally administered MAC derived from the state directory, stable across restarts.
fn mac_for(dir: &Path) -> [u8; 6] {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    let b = h.finish().to_be_bytes();
    [0x02, b[0], b[1], b[2], b[3], b[4]]
}

fn mac_text(mac: &[u8; 6]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02X}")).collect();
    parts.join(":")
}

fn board_info(mac: &[u8; 6], firmware_version: &str) -> BoardInfo {
    BoardInfo {
        board_type: "Virtual Board".into(),
        chip_model: "ESP32C3".into(),
        chip_cores: 1,
        chip_revision: "0.4".into(),
        chip_frequency_mhz: 160,
        camera_type: meter_shell::board::CONSOLE_CAMERA_TYPE.into(),
        camera_frequency_mhz: meter_shell::board::CONSOLE_CAMERA_FREQUENCY_MHZ,
        sd_capacity_mb: 0,
        sd_partition_mb: 0,
        ip_address: "127.0.0.1".into(),
        mac_address: mac_text(mac),
        firmware_version: firmware_version.to_string(),
    }
}

/// Runs the board until SIGTERM / SIGINT (the reset button) or SIGKILL (power loss).
pub async fn run(opts: Options) -> Result<()> {
    std::fs::create_dir_all(&opts.state_dir)
        .with_context(|| format!("cannot create state dir {}", opts.state_dir.display()))?;
    let dir = opts
        .state_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve state dir {}", opts.state_dir.display()))?;
    let seed = opts.config.as_deref().map(seed_config).transpose()?;
    let chip = Rc::new(RefCell::new(SpiFlash::open(&dir)?));

    let clock = HostClock::new();
    let wall: WallClock<Mutex> = WallClock::new();
    if opts.limits == Limits::Host {
        wall.set(clock.now_ms(), host_unix_ms(), TimeStatus::Synchronized);
    }
    let link: Link<Mutex> = Link::new();
    let pipe: UartPipe<Mutex> = UartPipe::new();
    let inbox: Arc<Inbox<Mutex>> = Arc::new(Inbox::new());
    let mut shell = Shell::new(clock, &link, &wall, &pipe, SharedFlash(chip.clone()));
    migrate_state_dir(&mut shell, &dir).await?;
    if let Some(text) = seed {
        shell
            .save_config(&text)
            .await
            .map_err(|e| anyhow!("--config could not be saved in the flash: {e}"))?;
    }

    let pty = Pty::open(opts.uart_baud)?;
    let http_addr = http::serve(inbox.clone(), clock).await?;
    let lines = Lines::new();
    let gpio = gpio_lines::serve(&dir.join("gpio.sock"), lines.clone(), inbox.clone()).await?;
    let ready = json!({"serial": pty.path, "http": http_addr.to_string(), "gpio": gpio, "pid": std::process::id()});
    println!("{ready}");
    use std::io::Write;
    std::io::stdout().flush()?;

    let mac = mac_for(&dir);
    let mut chip_board = Chip {
        shell,
        board: HostBoard { lines },
        chip,
        pipe: &pipe,
        mac,
        loader: RomLoader::new(mac),
    };
    let max_packet = match opts.limits {
        Limits::Chip => meter_shell::limits::MQTT_MAX_PACKET,
        Limits::Host => 1024 * 1024 + 1024,
    };
    let mut driver = Driver::with_max_packet(&link, clock, max_packet);
    let mut net = HostNet;
    let mut udp = HostUdp;
    let time = async {
        match opts.limits {
            Limits::Chip => meter_shell::time::run(&wall, &clock, &mut udp).await,
            Limits::Host => std::future::pending().await,
        }
    };
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let first = if opts.download {
        Mode::Download
    } else {
        Mode::App {
            reset_reason: "0x1 (POWERON)",
        }
    };
    // The reset button: no orderly MQTT DISCONNECT, the broker sends the LWT.
    let reset_button = async {
        tokio::select! {
            _ = sigterm.recv() => {},
            _ = sigint.recv() => {},
        }
    };
    heap::limit(
        (opts.limits == Limits::Chip).then_some(meter_shell::limits::FIRMWARE_HEAP),
        pty.raw_fd(),
    );
    match crate::waker::Stable::new(select5(
        chip_board.run(first, &inbox),
        Firmware(driver.run(&mut net)),
        Firmware(time),
        pty.send_from(&pipe),
        select(pty.receive(&inbox), reset_button),
    ))
    .await
    {
        Either5::First(never) => match never {},
        Either5::Second(never) | Either5::Third(never) => never,
        Either5::Fourth(()) | Either5::Fifth(_) => {}
    }
    // What the reset prints goes out directly: the pipe's task has stopped.
    pty.write_now(b"rst:0xc (RTC_SW_CPU_RST)\r\n");
    std::process::exit(0);
}

/// Imports a state directory of the file layout (`config.json`, `fallbacks.json`) into the flash, once.
async fn migrate_state_dir<F>(shell: &mut Shell<'_, Mutex, HostClock, F>, dir: &Path) -> Result<()>
where
    F: embedded_storage_async::nor_flash::MultiwriteNorFlash,
{
    for (file, key) in [
        (OLD_CONFIG, meter_shell::storage::CONFIG),
        (OLD_FALLBACKS, meter_shell::storage::FALLBACKS),
    ] {
        let path = dir.join(file);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let saved = if key == meter_shell::storage::CONFIG {
            shell.save_config(&text).await
        } else {
            shell.save_fallbacks(&text).await
        };
        saved.map_err(|e| anyhow!("cannot move {} into the flash: {e}", path.display()))?;
        let done = dir.join(format!("{file}.migrated"));
        std::fs::rename(&path, &done)
            .with_context(|| format!("cannot rename {}", path.display()))?;
        eprintln!(
            "state dir: {} moved into the flash's storage partition (kept as {})",
            path.display(),
            done.display()
        );
    }
    Ok(())
}

/// The chip: what boots after a reset, and the firmware's shell when it runs.
struct Chip<'a> {
    shell: Shell<'a, Mutex, HostClock, SharedFlash>,
    board: HostBoard,
    chip: Rc<RefCell<SpiFlash>>,
    pipe: &'a UartPipe<Mutex>,
    mac: [u8; 6],
    loader: RomLoader,
}

impl Chip<'_> {
    /// Resets into `mode`, and again after every restart, for the life of the process.
    async fn run(&mut self, mut mode: Mode, inbox: &Inbox<Mutex>) -> std::convert::Infallible {
        loop {
            mode = match mode {
                Mode::App { reset_reason } => self.app(reset_reason, inbox).await,
                Mode::Download => self.download(inbox).await,
                Mode::BootLoop => self.boot_loop(inbox).await,
            };
        }
    }

    async fn print(&self, line: &str) {
        self.pipe.write_all(line.as_bytes()).await;
        self.pipe.write_all(b"\r\n").await;
    }

    /// The bootloader checks the flash, then the firmware runs until it restarts.
    async fn app(&mut self, reset_reason: &'static str, inbox: &Inbox<Mutex>) -> Mode {
        let flashed = self.chip.borrow().is_programmed();
        let (offset, project, version) = if flashed {
            let found = app_image::find_app(self.chip.borrow().contents());
            match found {
                Ok(app) => (app.offset, app.project_name, app.version),
                Err(failure) => {
                    for line in uart::bootloader_banner(reset_reason) {
                        self.print(&line).await;
                    }
                    for line in &failure.lines {
                        self.print(line).await;
                        eprintln!("{line}");
                    }
                    return Mode::BootLoop;
                }
            }
        } else {
            (
                app_image::DEFAULT_APP_OFFSET,
                PROJECT_NAME.to_string(),
                HOST_FIRMWARE_VERSION.to_string(),
            )
        };
        for line in uart::boot_banner(reset_reason, offset, &project, &version) {
            self.print(&line).await;
        }
        self.board.lines.clear();
        self.board.lines.set_away(None);
        let info = board_info(&self.mac, &version);
        // The firmware's heap is metered; the ROM loader and the bootloader are the chip's, not the firmware's.
        let (shell, board) = (&mut self.shell, &mut self.board);
        let exit = Firmware(async {
            match shell.boot(board, info).await {
                Some(exit) => exit,
                None => shell.run(board, inbox).await,
            }
        })
        .await;
        match exit {
            Exit::Reboot => {
                self.print("Rebooting...").await;
                Mode::App {
                    reset_reason: "0xc (RTC_SW_CPU_RST)",
                }
            }
            Exit::Download => Mode::Download,
        }
    }

    /// The ROM serial loader: SLIP from the UART, flash writes, until it runs the app or reboots.
    async fn download(&mut self, inbox: &Inbox<Mutex>) -> Mode {
        self.board
            .lines
            .set_away(Some("the board is in download mode"));
        self.loader = RomLoader::new(self.mac);
        for line in uart::download_banner() {
            self.print(&line).await;
        }
        loop {
            match inbox.receive().await {
                Input::Uart(bytes) => {
                    let outputs = self.loader.feed(&bytes, &mut self.chip.borrow_mut());
                    for output in outputs {
                        match output {
                            Output::Uart(frame) => self.pipe.write_all(&frame).await,
                            Output::RunApp => {
                                eprintln!("ROM loader: run user code");
                                return Mode::App {
                                    reset_reason: "0xc (RTC_SW_CPU_RST)",
                                };
                            }
                            Output::Reboot => {
                                eprintln!("ROM loader: reboot (strapping still latched)");
                                return Mode::Download;
                            }
                            Output::Baud(baud) => {
                                eprintln!("ROM loader: host changed the baud rate to {baud}")
                            }
                        }
                    }
                }
                input => not_running(input, "the board is in download mode"),
            }
        }
    }

    /// No bootable app: the bootloader's failure again after every reset, the firmware never runs.
    async fn boot_loop(&mut self, inbox: &Inbox<Mutex>) -> Mode {
        let why = "no app is running (the bootloader found no bootable image)";
        self.board.lines.set_away(Some(why));
        let until = tokio::time::Instant::now() + BOOT_RETRY;
        loop {
            match select(inbox.receive(), tokio::time::sleep_until(until)).await {
                Either::First(input) => not_running(input, why),
                Either::Second(()) => {
                    return Mode::App {
                        reset_reason: "0x3 (RTC_SW_SYS_RST)",
                    }
                }
            }
        }
    }
}

/// An input while the firmware does not run: HTTP gets 503 with the reason; console bytes and pin changes reach
/// nothing.
fn not_running(input: Input, why: &str) {
    if let Input::Http(_, reply) = input {
        reply.send(HttpResponse::new(
            503,
            "application/json",
            json!({"error": why}).to_string(),
        ));
    }
}
