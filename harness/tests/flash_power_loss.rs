//! Power loss during flashing (issue 14 item 6): the virtual board is killed (SIGKILL, its flash file keeps what was
//! written so far, as a NOR chip does) at random points of a flash by `hil flash` (espflash) and by Espressif's
//! esptool, 20 times each. After every cut the board is powered on again and must never run a half-written image:
//! whatever the flash holds at 0x10000 decides what is allowed. The old image, whole: it boots the old version; the
//! new image, whole (the cut came after the last block): it boots the new version; anything else: the bootloader
//! refuses it (the app never runs: HTTP answers 503, the log says why). Then a new flash recovers the board.
//!
//! The cut flashes run at 921600 baud (the virtual board's `--uart-baud`), so a flash takes about as long as on a chip.
//! A quarter of the cuts fall at a random point before the writing starts (sync, stub upload, erase request), the
//! rest at a random point of the writing itself (timed from the moment the app region starts to change, over the
//! writing's length in a first whole flash), so most cuts leave the image half-written. The recovery flashes run at
//! loopback speed. `FLASH_POWER_LOSS_SEED=N` repeats a run's cut points; the seed is printed. `.ci/run` sets
//! REQUIRE_ESPTOOL=1, so there the esptool half cannot pass by skipping.
//!
//! As on a real board, the chip holds a 2nd-stage bootloader at 0x0 that an app flash never touches (a stand-in:
//! the virtual board simulates the bootloader itself). Without it, a cut right after the erase left a chip erased
//! outside the firmware's storage, which the virtual board takes for a never-flashed one and boots its built-in
//! firmware from; a real chip's bootloader refuses the erased app instead.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{board_bin, text};
use harness::board::BoardProcess;

const APP_OFFSET: usize = 0x10000;
const IMAGE_SIZE: usize = 48 * 1024;
const CUTS: usize = 20;
/// The line rate of the cut flashes.
const WIRE_BAUD: &str = "921600";

/// How the campaign flashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    /// `hil flash` (the espflash library).
    Espflash,
    /// Espressif's esptool (`esptool`, else `python3 -m esptool`).
    Esptool,
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

/// The flasher's command line for `image` over `port` (the board already waits in its ROM loader).
fn flash_command(tool: Tool, esptool: &[String], port: &str, image: &Path) -> Command {
    match tool {
        Tool::Espflash => {
            let mut c = Command::new(env!("CARGO_BIN_EXE_hil"));
            c.args([
                "flash", "--port", port, "--before", "no-reset", "--after", "no-reset",
            ])
            .arg(image);
            c
        }
        Tool::Esptool => {
            let mut c = Command::new(&esptool[0]);
            c.args(&esptool[1..])
                .args([
                    "--chip",
                    "esp32c3",
                    "--port",
                    port,
                    "--before",
                    "no-reset",
                    "--after",
                    "no-reset",
                    "write-flash",
                    "0x10000",
                ])
                .arg(image);
            c
        }
    }
}

/// A small xorshift: the cut points need no better, and a seed repeats them.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in [0, span).
    fn below(&mut self, span: Duration) -> Duration {
        let nanos = span.as_nanos().max(1) as u64;
        Duration::from_nanos(self.next() % nanos)
    }
}

struct Campaign {
    tool: Tool,
    esptool: Vec<String>,
    bin: PathBuf,
    dir: PathBuf,
    state: PathBuf,
}

/// What the board did when powered on.
#[derive(Debug, PartialEq, Eq)]
enum Boot {
    /// The app runs and reports this version.
    Runs(String),
    /// The bootloader refused the flash (HTTP 503 "no app is running").
    Refused,
}

impl Campaign {
    fn new(tool: Tool, esptool: Vec<String>) -> Campaign {
        let dir = std::env::temp_dir().join(format!(
            "hil-flash-power-loss-{tool:?}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Campaign {
            tool,
            esptool,
            bin: board_bin(),
            state: dir.join("board"),
            dir,
        }
    }

    fn image(&self, version: &str) -> (PathBuf, Vec<u8>) {
        let mut spec = harness::app_image::ImageSpec::new(version);
        spec.size = IMAGE_SIZE;
        let image = harness::app_image::build(&spec).expect("image");
        let path = self.dir.join(format!("{version}.bin"));
        std::fs::write(&path, &image).expect("write image");
        (path, image)
    }

    fn log(&self) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("board.log"))
            .expect("board log")
    }

    /// The board in download mode (BOOT held at reset), at the line rate when `wired`.
    fn download_mode(&self, wired: bool) -> BoardProcess {
        let args: &[&str] = if wired {
            &["--download", "--uart-baud", WIRE_BAUD]
        } else {
            &["--download"]
        };
        BoardProcess::start(&self.bin, &self.state, args, self.log().into()).expect("virtual board")
    }

    fn start_flash(&self, board: &BoardProcess, image: &Path) -> Child {
        flash_command(self.tool, &self.esptool, board.serial(), image)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the flasher")
    }

    /// A whole flash (at the line rate when `wired`); returns how long it took.
    fn flash(&self, image: &Path, wired: bool) -> Duration {
        let board = self.download_mode(wired);
        let t = Instant::now();
        let out = self
            .start_flash(&board, image)
            .wait_with_output()
            .expect("flasher");
        let took = t.elapsed();
        assert!(
            out.status.success(),
            "{:?} flash of {} failed:\n{}",
            self.tool,
            image.display(),
            text(&out)
        );
        took
    }

    /// What the flash chip holds where the app goes, as long as `len`.
    fn app_region(&self, len: usize) -> Vec<u8> {
        let flash = std::fs::read(self.state.join("flash.bin")).expect("flash.bin");
        flash
            .get(APP_OFFSET..APP_OFFSET + len)
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    }

    /// Powers the board on (no BOOT held) and asks what runs: the app's version, or the bootloader's refusal.
    fn boot(&self) -> Boot {
        let board = BoardProcess::start(&self.bin, &self.state, &[], self.log().into())
            .expect("virtual board");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match harness::http::request(board.http(), "GET", "/api/status", "") {
                Ok((200, body)) => {
                    let v: serde_json::Value = serde_json::from_str(&body).expect("status JSON");
                    return Boot::Runs(v["firmware_version"].as_str().unwrap_or("").to_string());
                }
                Ok((503, body)) if body.contains("no app is running") => return Boot::Refused,
                _ if Instant::now() > deadline => {
                    panic!("the board neither ran nor refused within 10 s")
                }
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// The 2nd-stage bootloader a real board has at 0x0 (a stand-in; module docs), written with the rig's flasher.
    fn install_bootloader(&self) {
        let board = self.download_mode(false);
        let opts = harness::flasher::FlashOptions {
            port: PathBuf::from(board.serial()),
            baud: 921_600,
            before: harness::flasher::Before::NoReset,
            after: harness::flasher::After::NoReset,
            verify: true,
            stub: true,
        };
        let mut flasher = harness::flasher::connect(&opts).expect("connect to the ROM loader");
        let mut stand_in =
            b"2nd-stage bootloader stand-in (the virtual board simulates the bootloader)".to_vec();
        stand_in.resize(4096, 0);
        flasher
            .write_bin_to_flash(0, &stand_in, &mut harness::flasher::Quiet)
            .expect("write the bootloader stand-in");
    }

    /// A whole flash at the line rate, timed: (when the app region started to change, how long the writing took).
    fn timed_flash(&self, image: &Path, old: &[u8]) -> (Duration, Duration) {
        let board = self.download_mode(true);
        let t = Instant::now();
        let mut flasher = self.start_flash(&board, image);
        let want = std::fs::read(image).expect("image");
        let (mut started, mut done) = (None, None);
        while flasher.try_wait().expect("flasher").is_none() {
            let region = self.app_region(want.len());
            if started.is_none() && region != old {
                started = Some(t.elapsed());
            }
            if done.is_none() && region == want {
                done = Some(t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let out = flasher.wait_with_output().expect("flasher");
        assert!(
            out.status.success(),
            "{:?} flash failed:\n{}",
            self.tool,
            text(&out)
        );
        let started = started.expect("the app region never changed during a whole flash");
        let done = done.unwrap_or_else(|| t.elapsed());
        (started, done.saturating_sub(started))
    }

    /// Waits until the app region no longer holds `old` (the flasher began erasing or writing it); None when the
    /// flasher ended first.
    fn write_begins(&self, flasher: &mut Child, old: &[u8], within: Duration) -> Option<Duration> {
        let t = Instant::now();
        while t.elapsed() < within {
            if self.app_region_head(64) != old[..64] {
                return Some(t.elapsed());
            }
            if flasher.try_wait().ok().flatten().is_some() {
                return None;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        None
    }

    fn app_region_head(&self, len: usize) -> Vec<u8> {
        use std::io::{Read, Seek, SeekFrom};
        let mut head = vec![0u8; len];
        let read = std::fs::File::open(self.state.join("flash.bin")).and_then(|mut f| {
            f.seek(SeekFrom::Start(APP_OFFSET as u64))?;
            f.read_exact(&mut head)
        });
        if read.is_err() {
            head.clear();
        }
        head
    }

    /// 20 cuts at random points, each checked and recovered; returns (old image booted, new image booted,
    /// half-written image refused).
    fn run(&self, seed: u64) -> (usize, usize, usize) {
        let mut rng = Rng(seed | 1);
        self.install_bootloader();
        let (first, first_bytes) =
            self.image(&format!("v17.8.0-{:?}-base", self.tool).to_lowercase());
        self.flash(&first, false);
        assert_eq!(self.boot(), Boot::Runs(version_of(&first)));
        // A whole flash at the line rate: when the writing starts, and how long it takes.
        let (second, second_bytes) =
            self.image(&format!("v17.8.0-{:?}-timed", self.tool).to_lowercase());
        let (before_write, writing) = self.timed_flash(&second, &first_bytes);
        assert_eq!(self.boot(), Boot::Runs(version_of(&second)));
        eprintln!(
            "{:?}: a whole flash at {WIRE_BAUD} baud starts writing after {before_write:.1?} and writes for {writing:.1?}",
            self.tool
        );
        let mut old = (version_of(&second), second_bytes);
        let mut counts = (0, 0, 0);
        for i in 0..CUTS {
            let version = format!("v17.8.{}-{:?}", i + 1, self.tool).to_lowercase();
            let (path, bytes) = self.image(&version);
            let mut board = self.download_mode(true);
            let mut flasher = self.start_flash(&board, &path);
            let cut_at = if rng.next().is_multiple_of(4) {
                let at = rng.below(before_write);
                std::thread::sleep(at);
                format!("{at:.1?} after the flasher started")
            } else {
                let at = rng.below(writing);
                match self.write_begins(&mut flasher, &old.1, Duration::from_secs(20)) {
                    Some(began) => {
                        std::thread::sleep(at);
                        format!("{at:.1?} into the writing (began {began:.1?} after the flasher started)")
                    }
                    None => panic!(
                        "cut {i}: the flasher ended (or took 20 s) before writing anything:\n{}",
                        text(&flasher.wait_with_output().expect("flasher"))
                    ),
                }
            };
            // Power loss: the board first; the flasher has nothing left to talk to.
            board.signal("KILL");
            let _ = flasher.kill();
            let _ = flasher.wait();
            drop(board);

            let region = self.app_region(bytes.len());
            let boot = self.boot();
            let what = if region == old.1 {
                counts.0 += 1;
                assert_eq!(
                    boot,
                    Boot::Runs(old.0.clone()),
                    "cut {i} ({cut_at}): the old image is whole, so it must boot"
                );
                "old image whole"
            } else if region == bytes {
                counts.1 += 1;
                assert_eq!(
                    boot,
                    Boot::Runs(version.clone()),
                    "cut {i} ({cut_at}): the new image is whole, so it must boot"
                );
                "new image whole"
            } else {
                counts.2 += 1;
                let written = region
                    .iter()
                    .zip(&bytes)
                    .take_while(|(a, b)| a == b)
                    .count();
                assert_eq!(
                    boot,
                    Boot::Refused,
                    "cut {i} ({cut_at}): a half-written image ({written} of {} bytes in place) ran",
                    bytes.len()
                );
                "half-written, refused"
            };
            eprintln!("{:?} cut {i:>2} {cut_at}: {what}", self.tool);

            // A new flash recovers the board.
            self.flash(&path, false);
            assert_eq!(
                self.boot(),
                Boot::Runs(version.clone()),
                "cut {i}: the flash after the power loss did not recover the board"
            );
            old = (version, bytes);
        }
        let log = std::fs::read_to_string(self.dir.join("board.log")).unwrap_or_default();
        if counts.2 > 0 {
            assert!(
                log.contains("is not bootable") || log.contains("No bootable app"),
                "refused boots leave the bootloader's reason in the log"
            );
        }
        counts
    }
}

impl Drop for Campaign {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The version the rig's image builder puts in a file named `<version>.bin`.
fn version_of(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string()
}

fn seed() -> u64 {
    match std::env::var("FLASH_POWER_LOSS_SEED") {
        Ok(s) => s.parse().expect("FLASH_POWER_LOSS_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

fn campaign(tool: Tool, esptool: Vec<String>) {
    let seed = seed();
    eprintln!("{tool:?}: FLASH_POWER_LOSS_SEED={seed}");
    let t = Instant::now();
    let (old, new, half) = Campaign::new(tool, esptool).run(seed);
    eprintln!(
        "{tool:?}: {CUTS} power cuts in {:.1?}: old image booted {old}, new image booted {new}, half-written refused \
         {half}; every one recovered by a new flash",
        t.elapsed()
    );
    // The cuts must have hit the writing, or this tested nothing.
    assert!(
        half >= 3,
        "only {half} of {CUTS} cuts left a half-written image (seed {seed}): the cuts missed the writes"
    );
}

#[test]
fn power_loss_during_an_espflash_flash_never_boots_a_half_written_image() {
    campaign(Tool::Espflash, Vec::new());
}

#[test]
fn power_loss_during_an_esptool_flash_never_boots_a_half_written_image() {
    let Some(tool) = esptool() else {
        assert!(
            std::env::var_os("REQUIRE_ESPTOOL").is_none(),
            "REQUIRE_ESPTOOL is set but esptool is not installed (pip install esptool)"
        );
        eprintln!("skipped: esptool is not installed (pip install esptool)");
        return;
    };
    campaign(Tool::Esptool, tool);
}
