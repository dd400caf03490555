//! Flashing over serial with the espflash library: connection (reset strategies, ROM or stub), writing an app image
//! or an ELF, verification, reset. Every failure says what to do about it. Finding the port is [`ports`].
//!
//! The espflash *CLI* only opens ports it can enumerate, so it cannot flash a pseudo-terminal; the library can,
//! which is how the virtual board is flashed through the very same path as a real board.

use std::path::{Path, PathBuf};
use std::time::Duration;

use espflash::command::Command;
use espflash::connection::{Connection, ResetAfterOperation, ResetBeforeOperation};
use espflash::flasher::{FlashData, FlashSettings, Flasher};
use espflash::image_format::{idf::IdfBootloaderFormat, Segment};
use espflash::target::{Chip, ProgressCallbacks, XtalFrequency};

use crate::app_image::{self, ImageError};

pub mod ports;

pub use ports::{detect_port, is_pseudo_terminal, open_port, pick_port, Chooser, KNOWN_BRIDGES};
use ports::{known_list, list_ports, usb_info};

/// Where a plain app image goes when no partition table says otherwise.
pub const APP_OFFSET: u32 = 0x10000;

/// Why flashing failed, with the fix.
#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    #[error("no ESP32 serial port found (looked for {}); plug the board in or pass --port{}", known_list(), list_ports(.0))]
    NoPort(Vec<String>),
    #[error("several ESP32 serial ports found, pass one with --port:{}", list_ports(.0))]
    AmbiguousPort(Vec<String>),
    #[error(
        "{port} does not exist: is the board plugged in (or the virtual board still running)?"
    )]
    PortMissing { port: String },
    #[error("permission denied on {port}: add yourself to the serial group (`sudo usermod -aG dialout $USER`, then log in again)")]
    PermissionDenied { port: String },
    #[error("{port} is busy: {holders} has it open; close that program (serial monitor, screen, another flash) and retry")]
    PortBusy { port: String, holders: String },
    #[error("cannot open {port}: {detail}")]
    Open { port: String, detail: String },
    #[error("no sync reply from the ROM loader on {port}: put the chip in download mode (hold BOOT, GPIO9 on ESP32-C3, while pressing RESET), check the USB cable, or try --before {hint}")]
    NoSync { port: String, hint: &'static str },
    #[error("wrong chip: {what}")]
    WrongChip { what: String },
    #[error("the image ({size} bytes at 0x{offset:x}) is larger than the app partition ({partition} bytes); shrink the firmware or use a larger flash/partition")]
    TooLarge {
        size: usize,
        offset: u32,
        partition: usize,
    },
    #[error("{path}: {source}")]
    BadImage { path: String, source: ImageError },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("flashing failed: {0}")]
    Espflash(String),
}

impl FlashError {
    /// Whether the rig could not reach or drive the chip (port, sync, transfer), as opposed to an image the rig
    /// refuses (wrong chip, too large, bad format): the first is infrastructure, the second the scenario's business.
    pub fn is_infrastructure(&self) -> bool {
        !matches!(
            self,
            FlashError::WrongChip { .. }
                | FlashError::TooLarge { .. }
                | FlashError::BadImage { .. }
        )
    }
}

/// How to reset the chip into the loader before flashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Before {
    /// DTR/RTS on a USB-UART bridge, or the USB-JTAG sequence, chosen by the port's USB id.
    DefaultReset,
    /// The USB-JTAG/serial reset sequence.
    UsbReset,
    /// The chip is already in download mode.
    NoReset,
    /// Ask the running meterrig firmware: the console command `download` restarts it into the ROM loader
    /// (boards without reset lines, virtual boards).
    Console,
}

/// What to do after flashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum After {
    /// Reset the chip so it boots the new image.
    HardReset,
    /// Leave the chip in the loader.
    NoReset,
}

/// Options of one flash.
#[derive(Debug, Clone)]
pub struct FlashOptions {
    pub port: PathBuf,
    pub baud: u32,
    pub before: Before,
    pub after: After,
    pub verify: bool,
    pub stub: bool,
}

/// What was flashed.
#[derive(Debug, Clone)]
pub struct FlashReport {
    pub bytes: usize,
    pub version: Option<String>,
    pub elapsed: Duration,
    pub stub: bool,
    pub reset: &'static str,
}

/// Connects to the loader (syncing, detecting the chip, uploading the stub unless `stub` is off).
pub fn connect(opts: &FlashOptions) -> Result<Flasher, FlashError> {
    let mut serial = open_port(&opts.port)?;
    let pty = is_pseudo_terminal(&opts.port);
    if opts.before == Before::Console {
        use std::io::Write;
        serial.write_all(b"\ndownload\n").map_err(|e| {
            FlashError::Espflash(format!("cannot write to {}: {e}", opts.port.display()))
        })?;
        // The firmware answers, then restarts into the ROM loader; its banner is skipped by the sync.
        std::thread::sleep(Duration::from_millis(300));
    }
    let before = match opts.before {
        // A pseudo-terminal has no DTR/RTS: the board must already wait in download mode.
        _ if pty => ResetBeforeOperation::NoReset,
        Before::DefaultReset => ResetBeforeOperation::DefaultReset,
        Before::UsbReset => ResetBeforeOperation::UsbReset,
        Before::NoReset | Before::Console => ResetBeforeOperation::NoReset,
    };
    let after = match opts.after {
        // No EN line either: `finish` boots the image through the loader instead, from the stub when it runs
        // (espflash's "stay in the loader" reboots the stub into the ROM without waiting: a command right after
        // it can be lost in the reboot).
        _ if pty && opts.after == After::HardReset => ResetAfterOperation::NoResetNoStub,
        _ if pty => ResetAfterOperation::NoReset,
        After::HardReset => ResetAfterOperation::HardReset,
        After::NoReset => ResetAfterOperation::NoReset,
    };
    let connection = Connection::new(serial, usb_info(&opts.port), after, before, 115_200);
    let port = opts.port.display().to_string();
    Flasher::connect(
        connection,
        opts.stub,
        opts.verify,
        false,
        Some(Chip::Esp32c3),
        Some(opts.baud),
    )
    .map_err(|e| explain(e, &port, opts.before))
}

fn explain(e: espflash::Error, port: &str, before: Before) -> FlashError {
    match e {
        espflash::Error::ChipMismatch(wanted, found) => FlashError::WrongChip {
            what: format!("the rig flashes {wanted} images but the board on {port} is {found}"),
        },
        espflash::Error::Connection(_) => FlashError::NoSync {
            port: port.to_string(),
            hint: if before == Before::NoReset {
                "default-reset"
            } else {
                "usb-reset (USB-JTAG boards) or no-reset (board already in download mode)"
            },
        },
        other => FlashError::Espflash(format!("{other}")),
    }
}

/// What is written where: a plain app image at the app offset, or an ELF turned into bootloader, partition table
/// and app.
pub enum Payload {
    App {
        image: Vec<u8>,
        version: Option<String>,
    },
    /// Converted once, when loaded (the conversion also checks the ELF and the partition table).
    Elf(ElfImage),
}

/// An ELF turned into what goes into flash.
pub struct ElfImage {
    /// (address, bytes): bootloader, partition table, app image.
    pub segments: Vec<(u32, Vec<u8>)>,
    /// The app image alone (what `hil image --from-elf` writes).
    pub app: Vec<u8>,
    /// The app partition's size.
    pub partition_size: usize,
}

fn idf_format<'a>(
    elf: &'a [u8],
    partition_table: Option<&Path>,
) -> Result<IdfBootloaderFormat<'a>, FlashError> {
    let data = FlashData::new(
        FlashSettings::default(),
        0,
        None,
        Chip::Esp32c3,
        XtalFrequency::_40Mhz,
    );
    // esp-idf-part panics on some CSV input (e.g. an unknown data subtype): report it instead of crashing.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let made = std::panic::catch_unwind(|| {
        IdfBootloaderFormat::new(elf, &data, partition_table, None, None, None)
    });
    std::panic::set_hook(hook);
    match made {
        Ok(result) => result
            .map_err(|e| FlashError::Espflash(format!("cannot make an app image of the ELF: {e}"))),
        Err(_) => Err(FlashError::Espflash(format!(
            "the partition table {} is not understood (espflash's parser gave up; check types and subtypes)",
            partition_table.map_or("(default)".into(), |p| p.display().to_string())
        ))),
    }
}

/// Converts an ESP32-C3 ELF the way espflash does (ESP-IDF bootloader, partition table, app image).
pub fn elf_to_image(elf: &[u8], partition_table: Option<&Path>) -> Result<ElfImage, FlashError> {
    let format = idf_format(elf, partition_table)?;
    let partition_size = format
        .metadata()
        .get("part_size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let segments: Vec<(u32, Vec<u8>)> = format
        .flash_segments()
        .map(|s| (s.addr, s.data().to_vec()))
        .collect();
    let app = segments.last().map(|(_, d)| d.clone()).unwrap_or_default();
    Ok(ElfImage {
        segments,
        app,
        partition_size,
    })
}

/// Static RAM an ELF takes: (initialised data, zeroed data, code in IRAM), from its allocated sections.
pub fn static_ram(elf: &[u8]) -> Result<(u64, u64, u64), FlashError> {
    use object::{Object, ObjectSection};
    let file =
        object::File::parse(elf).map_err(|e| FlashError::Espflash(format!("not an ELF: {e}")))?;
    let (mut data, mut bss, mut iram) = (0, 0, 0);
    for section in file.sections() {
        let name = section.name().unwrap_or_default();
        let addr = section.address();
        // ESP32-C3 DRAM 0x3FC80000.., IRAM 0x40380000..
        if (0x3FC8_0000..0x3FCE_0000).contains(&addr)
            && !name.contains("dummy")
            && !name.contains("stack")
            && !name.contains("uninit")
        {
            if name.starts_with(".bss") || name.starts_with(".noinit") {
                bss += section.size();
            } else {
                data += section.size();
            }
        } else if (0x4038_0000..0x403E_0000).contains(&addr) {
            iram += section.size();
        }
    }
    Ok((data, bss, iram))
}

impl Payload {
    /// The (address, size) regions it writes.
    pub fn regions(&self) -> Vec<(u32, usize)> {
        match self {
            Payload::App { image, .. } => vec![(APP_OFFSET, image.len())],
            Payload::Elf(image) => image.segments.iter().map(|(a, d)| (*a, d.len())).collect(),
        }
    }
}

/// Reads and checks an image file before anything touches the board; `force` writes it even when the checks fail
/// (to test what a board does with a bad image).
pub fn load_payload(
    path: &Path,
    partition_table: Option<&Path>,
    force: bool,
) -> Result<Payload, FlashError> {
    let bytes = std::fs::read(path).map_err(|source| FlashError::Read {
        path: path.display().to_string(),
        source,
    })?;
    if app_image::is_elf(&bytes) {
        // Converted now, so a bad ELF is refused before the board is touched.
        return elf_to_image(&bytes, partition_table).map(Payload::Elf);
    }
    let info = match app_image::inspect(&bytes) {
        Ok(info) => info,
        Err(_) if force => {
            return Ok(Payload::App {
                image: bytes,
                version: None,
            })
        }
        Err(source) => {
            return Err(FlashError::BadImage {
                path: path.display().to_string(),
                source,
            })
        }
    };
    if info.chip_id != 5 && !force {
        return Err(FlashError::WrongChip {
            what: format!(
                "{} is built for {}, the board is an esp32c3; build it for riscv32imc-unknown-none-elf / esp32c3",
                path.display(),
                app_image::chip_name(info.chip_id)
            ),
        });
    }
    Ok(Payload::App {
        image: bytes,
        version: Some(info.version),
    })
}

/// Flashes `payload` and resets the chip as asked. A pseudo-terminal cannot pulse EN: a hard reset becomes the
/// loader's "run user code", which boots the new image the same way.
pub fn flash(
    opts: &FlashOptions,
    payload: &Payload,
    progress: &mut dyn ProgressCallbacks,
) -> Result<FlashReport, FlashError> {
    let started = std::time::Instant::now();
    let mut flasher = connect(opts)?;
    let info = flasher
        .device_info()
        .map_err(|e| FlashError::Espflash(e.to_string()))?;
    let flash_size = info.flash_size.size() as usize;
    let (bytes, version) = match payload {
        Payload::App { image, version } => {
            let partition = flash_size.saturating_sub(APP_OFFSET as usize);
            if image.len() > partition {
                return Err(FlashError::TooLarge {
                    size: image.len(),
                    offset: APP_OFFSET,
                    partition,
                });
            }
            flasher
                .write_bin_to_flash(APP_OFFSET, image, progress)
                .map_err(|e| FlashError::Espflash(e.to_string()))?;
            (image.len(), version.clone())
        }
        Payload::Elf(image) => {
            let segments: Vec<Segment<'_>> = image
                .segments
                .iter()
                .map(|(addr, data)| Segment::new(*addr, data))
                .collect();
            flasher
                .write_bins_to_flash(&segments, progress)
                .map_err(|e| FlashError::Espflash(e.to_string()))?;
            (image.segments.iter().map(|(_, d)| d.len()).sum(), None)
        }
    };
    let stub = opts.stub;
    let reset = finish(&mut flasher, opts)?;
    Ok(FlashReport {
        bytes,
        version,
        elapsed: started.elapsed(),
        stub,
        reset,
    })
}

/// espflash has already done what the connection's "after" asked; on a pseudo-terminal that was "stay in the
/// loader" (the stub hands back to the ROM loader), so a hard reset becomes the ROM's "run user code".
fn finish(flasher: &mut Flasher, opts: &FlashOptions) -> Result<&'static str, FlashError> {
    let espflash_err = |e: espflash::Error| FlashError::Espflash(e.to_string());
    match opts.after {
        After::NoReset => Ok("left in the loader"),
        After::HardReset if !is_pseudo_terminal(&opts.port) => Ok("hard reset (EN pulsed)"),
        After::HardReset if opts.stub => {
            let conn = flasher.connection();
            conn.write_command(Command::RunUserCode)
                .map_err(espflash_err)?;
            conn.flush().map_err(espflash_err)?;
            Ok("run user code (a pseudo-terminal has no EN line)")
        }
        After::HardReset => {
            let conn = flasher.connection();
            conn.command(Command::FlashBegin {
                size: 0,
                blocks: 0,
                block_size: 0x400,
                offset: 0,
                supports_encryption: false,
            })
            .map_err(espflash_err)?;
            conn.write_command(Command::FlashEnd { reboot: false })
                .map_err(espflash_err)?;
            conn.flush().map_err(espflash_err)?;
            Ok("run user code (a pseudo-terminal has no EN line)")
        }
    }
}

/// No progress output (tests, the rig's own flashing).
pub struct Quiet;

impl ProgressCallbacks for Quiet {
    fn init(&mut self, _addr: u32, _total: usize) {}
    fn update(&mut self, _current: usize) {}
    fn verifying(&mut self) {}
    fn finish(&mut self, _skipped: bool) {}
}

/// An indicatif bar per written region: bytes, bytes/s, time left. espflash counts blocks; the bar scales them to
/// the region's bytes.
pub struct Bar {
    regions: Vec<(u32, usize)>,
    blocks: usize,
    bytes: usize,
    bar: Option<indicatif::ProgressBar>,
}

impl Bar {
    /// A bar for these (address, size) regions.
    pub fn new(regions: Vec<(u32, usize)>) -> Bar {
        Bar {
            regions,
            blocks: 1,
            bytes: 0,
            bar: None,
        }
    }
}

impl ProgressCallbacks for Bar {
    fn init(&mut self, addr: u32, total: usize) {
        self.blocks = total.max(1);
        self.bytes = self
            .regions
            .iter()
            .find(|(a, _)| *a == addr)
            .map_or(total, |(_, n)| *n);
        let bar = indicatif::ProgressBar::new(self.bytes as u64);
        let style = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(format!("0x{addr:06x}"));
        self.bar = Some(bar);
    }

    fn update(&mut self, current: usize) {
        if let Some(b) = &self.bar {
            b.set_position((current * self.bytes / self.blocks) as u64);
        }
    }

    fn verifying(&mut self) {
        if let Some(b) = &self.bar {
            b.set_message("verifying");
        }
    }

    fn finish(&mut self, skipped: bool) {
        if let Some(b) = self.bar.take() {
            b.finish_with_message(if skipped {
                "unchanged, skipped"
            } else {
                "written"
            });
        }
    }
}
