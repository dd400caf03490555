//! Boards the rig drives. A scenario talks to a [`Board`]: console, reset, power, GPIO lines, flashing. The
//! [`VirtualBoard`] runs the `virtual-board` program; [`crate::serial_board::SerialBoard`] is a real ESP32-C3.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// What went wrong with a board, said so that the fix is obvious.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("board program '{0}' not found: build it with `cargo build --release -p virtual-board` or pass --board-bin")]
    BinaryMissing(PathBuf),
    #[error("board did not start: {0}")]
    Start(String),
    #[error("no console reply to '{line}' within {timeout:?}; last console lines: {tail:?}")]
    ConsoleTimeout {
        line: String,
        timeout: Duration,
        tail: Vec<String>,
    },
    #[error("GPIO line: {0}")]
    Gpio(String),
    #[error("board is powered off")]
    PoweredOff,
    #[error("{0} is not supported by this board yet")]
    Unsupported(&'static str),
    #[error(transparent)]
    Flash(#[from] crate::flasher::FlashError),
    #[error("I/O with the board: {0}")]
    Io(#[from] std::io::Error),
}

impl BoardError {
    /// Whether the rig, not the firmware, failed: a board that does not start or answer its console, a flash that
    /// cannot connect, lost I/O, a capability the rig lacks. A refused GPIO request or a powered-off board is the
    /// scenario's business.
    pub fn is_infrastructure(&self) -> bool {
        match self {
            BoardError::BinaryMissing(_)
            | BoardError::Start(_)
            | BoardError::ConsoleTimeout { .. }
            | BoardError::Unsupported(_)
            | BoardError::Io(_) => true,
            BoardError::Flash(e) => e.is_infrastructure(),
            BoardError::Gpio(_) | BoardError::PoweredOff => false,
        }
    }
}

/// Whether a board is up, as far as the rig can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    Running,
    /// The rig cut its power.
    PoweredOff,
    /// The board program ended by itself (a crash), with its exit status.
    Exited(String),
}

/// A board under test, real or virtual: the same steps drive both.
pub trait Board: Send {
    /// Sends one console line and returns its `ok ...` / `err ...` reply.
    fn console(&mut self, line: &str, timeout: Duration) -> Result<String, BoardError>;
    /// Everything the board printed on its UART, with the time since the rig started it.
    fn console_capture(&self) -> Vec<(Duration, String)>;
    /// The captured console lines alone.
    fn console_lines(&self) -> Vec<String> {
        self.console_capture().into_iter().map(|(_, l)| l).collect()
    }
    /// The reset button (no orderly MQTT disconnect); the board boots again from its flash.
    fn reset(&mut self) -> Result<(), BoardError>;
    /// Power off (a power loss).
    fn power_off(&mut self) -> Result<(), BoardError>;
    /// Power on after `power_off`.
    fn power_on(&mut self) -> Result<(), BoardError>;
    /// Drives an input pin from outside.
    fn drive_input(&mut self, pin: u8, high: bool) -> Result<(), BoardError>;
    /// Reads an output pin: level and PWM duty (None without PWM).
    fn read_output(&mut self, pin: u8) -> Result<(bool, Option<u32>), BoardError>;
    /// A wire from output pin `from` to input pin `to` (virtual: placed now; real: must be on the board).
    fn jumper(&mut self, from: u8, to: u8) -> Result<(), BoardError>;
    /// Flashes an image over the serial port (app image at 0x10000, or an ELF), then resets the board into it.
    fn flash(&mut self, image: &Path) -> Result<(), BoardError> {
        self.flash_with(image, &FlashHow::default()).map(|_| ())
    }
    /// Flashes with options (ROM loader only, bypassed checks, a partition table, a power cut mid-flash).
    fn flash_with(
        &mut self,
        image: &Path,
        how: &FlashHow,
    ) -> Result<crate::flasher::FlashReport, BoardError>;
    /// Base URL of the web interface, if the rig can reach it.
    fn http_base(&self) -> Option<String>;
    /// When the board was started: the zero of its console capture's times.
    fn started(&self) -> Option<Instant> {
        None
    }
    /// Levels the firmware drove on its outputs (virtual boards watch their lines), since [`Board::started`].
    fn line_events(&self) -> Vec<(Duration, String)> {
        Vec::new()
    }
    /// The board's state dir (its flash, config, log), if it has one on this machine.
    fn state_dir(&self) -> Option<&Path> {
        None
    }
    /// Whether it runs (a real board is assumed to).
    fn liveness(&mut self) -> Liveness {
        Liveness::Running
    }
    /// CPU time the board program has used so far, where the rig can see it (a virtual board's process; not a
    /// real chip).
    fn cpu_time(&self) -> Option<Duration> {
        None
    }
    /// Which board this is, for reports.
    fn describe(&self) -> String {
        "board".into()
    }
}

/// A `virtual-board` process and its ready line, without the rig's console reader: for tools and tests that
/// talk to the raw port (flashers, a serial board). Killed (a power loss) on drop.
pub struct BoardProcess {
    child: Option<Child>,
    ready: Value,
}

impl BoardProcess {
    /// Starts `bin --state-dir DIR ARGS...`; the board's log goes to `stderr`.
    pub fn start(
        bin: &Path,
        state_dir: &Path,
        args: &[&str],
        stderr: Stdio,
    ) -> Result<BoardProcess, BoardError> {
        if !bin.exists() {
            return Err(BoardError::BinaryMissing(bin.to_path_buf()));
        }
        let mut child = Command::new(bin)
            .arg("--state-dir")
            .arg(state_dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BoardError::Start("no stdout".into()))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let ready: Value = serde_json::from_str(&line).map_err(|_| {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(state_dir.join("board.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            BoardError::Start(format!("no ready line (got {line:?}); board log: {tail:?}"))
        })?;
        Ok(BoardProcess {
            child: Some(child),
            ready,
        })
    }

    /// The ready line: `{"serial", "http", "gpio", "pid"}`.
    pub fn ready(&self) -> &Value {
        &self.ready
    }

    /// The UART's pseudo-terminal.
    pub fn serial(&self) -> &str {
        self.ready["serial"].as_str().unwrap_or_default()
    }

    /// `host:port` of the web interface.
    pub fn http(&self) -> &str {
        self.ready["http"].as_str().unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether the process still runs (it has not died by itself).
    pub fn is_alive(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// How the process ended, if it has.
    pub fn exit_status(&mut self) -> Option<String> {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => None,
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Err(e)) => Some(e.to_string()),
            None => Some("killed by the rig".into()),
        }
    }

    /// The version the running firmware reports on `GET /api/status` (waits up to `timeout` for the web server).
    pub fn firmware_version(&self, timeout: Duration) -> Result<String, BoardError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok((200, body)) =
                crate::world::http_request(self.http(), "GET", "/api/status", "")
            {
                let v: Value = serde_json::from_str(&body)
                    .map_err(|e| BoardError::Start(format!("/api/status is not JSON: {e}")))?;
                return Ok(v["firmware_version"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string());
            }
            if Instant::now() > deadline {
                return Err(BoardError::Start(format!(
                    "no answer on http://{}/api/status within {timeout:?}",
                    self.http()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (`TERM` = the reset button, `KILL` = power loss) and waits for the process to end.
    pub fn signal(&mut self, sig: &str) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for BoardProcess {
    fn drop(&mut self) {
        self.signal("KILL");
    }
}

/// Timestamped lines a background reader appends to.
type Capture = Arc<Mutex<Vec<(Duration, String)>>>;

/// The `virtual-board` program on this machine.
pub struct VirtualBoard {
    bin: PathBuf,
    state_dir: PathBuf,
    process: Option<BoardProcess>,
    ready: Value,
    console_tx: Option<std::fs::File>,
    replies: Option<mpsc::Receiver<String>>,
    capture: Capture,
    /// Levels the firmware drove, when the rig watches the lines.
    lines: Option<Capture>,
    started: Instant,
    keep_state: bool,
}

impl VirtualBoard {
    /// Starts a board whose flash is `state_dir`, seeding `config` (a full or partial config document).
    pub fn start(
        bin: &Path,
        state_dir: &Path,
        config: Option<&Value>,
    ) -> Result<VirtualBoard, BoardError> {
        if !bin.exists() {
            return Err(BoardError::BinaryMissing(bin.to_path_buf()));
        }
        std::fs::create_dir_all(state_dir)?;
        if let Some(c) = config {
            std::fs::write(state_dir.join("seed-config.json"), c.to_string())?;
        }
        let mut board = VirtualBoard {
            bin: bin.to_path_buf(),
            state_dir: state_dir.to_path_buf(),
            process: None,
            ready: Value::Null,
            console_tx: None,
            replies: None,
            capture: Arc::default(),
            lines: None,
            started: Instant::now(),
            keep_state: std::env::var_os("HIL_KEEP_STATE").is_some(),
        };
        board.spawn(config.is_some(), false)?;
        Ok(board)
    }

    /// Starts the board program; `download` holds BOOT at reset, so the ROM loader owns the port (the rig does not
    /// open it then: the flasher will).
    fn spawn(&mut self, seed: bool, download: bool) -> Result<(), BoardError> {
        let seed_file = self.state_dir.join("seed-config.json");
        let mut args = Vec::new();
        if seed {
            let seed_file = seed_file.to_str().ok_or_else(|| {
                BoardError::Start(format!(
                    "the state dir {} is not valid UTF-8",
                    self.state_dir.display()
                ))
            })?;
            args.extend(["--config", seed_file]);
        }
        if download {
            args.push("--download");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.state_dir.join("board.log"))?;
        let process = BoardProcess::start(&self.bin, &self.state_dir, &args, log.into())?;
        let ready = process.ready().clone();
        let serial = process.serial().to_string();
        if serial.is_empty() {
            return Err(BoardError::Start("ready line without serial".into()));
        }
        if download {
            self.process = Some(process);
            self.ready = ready;
            return Ok(());
        }
        let port = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&serial)?;
        let reader = port.try_clone()?;
        let (tx, rx) = mpsc::channel();
        let capture = self.capture.clone();
        let started = self.started;
        std::thread::spawn(move || {
            let mut r = BufReader::new(reader);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                        if let Ok(mut c) = capture.lock() {
                            c.push((started.elapsed(), line.clone()));
                        }
                        if (line.starts_with("ok") || line.starts_with("err "))
                            && tx.send(line).is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
        self.process = Some(process);
        self.ready = ready;
        self.console_tx = Some(port);
        self.replies = Some(rx);
        if self.lines.is_some() {
            self.start_line_watch();
        }
        Ok(())
    }

    /// Records every level the firmware drives on its outputs from now on (and after each restart): the GPIO
    /// line events of a scenario's evidence. One connection of the board's GPIO socket, one thread.
    pub fn watch_lines(&mut self) {
        if self.lines.is_none() {
            self.lines = Some(Arc::default());
            self.start_line_watch();
        }
    }

    fn start_line_watch(&self) {
        let (Some(lines), Some(path)) = (self.lines.clone(), self.ready["gpio"].as_str()) else {
            return;
        };
        let (path, started) = (path.to_string(), self.started);
        std::thread::spawn(move || {
            let Ok(mut s) = UnixStream::connect(&path) else {
                return;
            };
            if s.write_all(b"{\"cmd\":\"watch\"}\n").is_err() {
                return;
            }
            // The first line acknowledges the watch; then one event per driven level until the board goes.
            for line in BufReader::new(s).lines().skip(1).map_while(Result::ok) {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let text = match v["duty"].as_u64() {
                    Some(d) => format!("GPIO {} driven {} (duty {d})", v["pin"], v["level"]),
                    None => format!("GPIO {} driven {}", v["pin"], v["level"]),
                };
                if let Ok(mut l) = lines.lock() {
                    l.push((started.elapsed(), text));
                }
            }
        });
    }

    /// The ready line of the running process.
    pub fn ready(&self) -> &Value {
        &self.ready
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The board program's process id (0 while powered off).
    pub fn pid(&self) -> u32 {
        self.process.as_ref().map_or(0, BoardProcess::pid)
    }

    /// Whether the board program runs (it was not powered off and has not died by itself).
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(BoardProcess::is_alive)
    }

    /// One raw request on the GPIO socket and its reply, refusals included (`{"ok":false,...}`).
    pub fn gpio_request(&self, request: &Value) -> Result<Value, BoardError> {
        let path = self.ready["gpio"].as_str().ok_or(BoardError::PoweredOff)?;
        let mut s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(format!("{request}\n").as_bytes())?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line)?;
        serde_json::from_str(&line)
            .map_err(|e| BoardError::Gpio(format!("bad reply {line:?}: {e}")))
    }

    fn signal(&mut self, sig: &str) {
        if let Some(mut process) = self.process.take() {
            process.signal(sig);
        }
        self.console_tx = None;
        self.replies = None;
    }

    fn gpio(&self, request: Value) -> Result<Value, BoardError> {
        let v = self.gpio_request(&request)?;
        if v["ok"] != true {
            return Err(BoardError::Gpio(
                v["error"].as_str().unwrap_or("refused").to_string(),
            ));
        }
        Ok(v)
    }
}

impl Board for VirtualBoard {
    fn console(&mut self, line: &str, timeout: Duration) -> Result<String, BoardError> {
        let (Some(tx), Some(rx)) = (self.console_tx.as_mut(), self.replies.as_ref()) else {
            return Err(BoardError::PoweredOff);
        };
        while rx.try_recv().is_ok() {}
        tx.write_all(format!("{line}\n").as_bytes())?;
        rx.recv_timeout(timeout)
            .map_err(|_| BoardError::ConsoleTimeout {
                line: line.to_string(),
                timeout,
                tail: self
                    .console_capture()
                    .iter()
                    .rev()
                    .take(5)
                    .map(|(_, l)| l.clone())
                    .collect(),
            })
    }

    fn console_capture(&self) -> Vec<(Duration, String)> {
        self.capture.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn reset(&mut self) -> Result<(), BoardError> {
        self.signal("TERM");
        self.spawn(false, false)
    }

    fn power_off(&mut self) -> Result<(), BoardError> {
        self.signal("KILL");
        Ok(())
    }

    fn power_on(&mut self) -> Result<(), BoardError> {
        if self.process.is_some() {
            return Ok(());
        }
        self.spawn(false, false)
    }

    fn drive_input(&mut self, pin: u8, high: bool) -> Result<(), BoardError> {
        self.gpio(json!({"cmd": "set", "pin": pin, "level": u8::from(high)}))
            .map(|_| ())
    }

    fn read_output(&mut self, pin: u8) -> Result<(bool, Option<u32>), BoardError> {
        let v = self.gpio(json!({"cmd": "get", "pin": pin}))?;
        Ok((v["level"] == 1, v["duty"].as_u64().map(|d| d as u32)))
    }

    fn flash_with(
        &mut self,
        image: &Path,
        how: &FlashHow,
    ) -> Result<crate::flasher::FlashReport, BoardError> {
        self.flash_virtual(image, how)
    }

    fn jumper(&mut self, from: u8, to: u8) -> Result<(), BoardError> {
        self.gpio(json!({"cmd": "jumper", "from": from, "to": to}))
            .map(|_| ())
    }

    fn http_base(&self) -> Option<String> {
        self.ready["http"].as_str().map(|a| format!("http://{a}"))
    }

    fn started(&self) -> Option<Instant> {
        Some(self.started)
    }

    fn line_events(&self) -> Vec<(Duration, String)> {
        self.lines
            .as_ref()
            .and_then(|l| l.lock().ok().map(|l| l.clone()))
            .unwrap_or_default()
    }

    fn state_dir(&self) -> Option<&Path> {
        Some(&self.state_dir)
    }

    fn cpu_time(&self) -> Option<Duration> {
        // utime and stime (fields 14 and 15 of /proc/PID/stat, all threads) in clock ticks: USER_HZ, 100 on Linux.
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // The command name (field 2) is in parentheses and may hold spaces: count from after it.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Duration::from_millis(ticks * 10))
    }

    fn liveness(&mut self) -> Liveness {
        match self.process.as_mut() {
            None => Liveness::PoweredOff,
            Some(p) => match p.exit_status() {
                None => Liveness::Running,
                Some(status) => Liveness::Exited(status),
            },
        }
    }

    fn describe(&self) -> String {
        format!("virtual board ({})", self.bin.display())
    }
}

/// How the rig flashes a virtual board.
#[derive(Debug, Clone, Default)]
pub struct FlashHow {
    /// ROM loader only (`--no-stub`).
    pub no_stub: bool,
    /// Skip the rig's image checks (to put a bad image on the board).
    pub force: bool,
    /// Cut the power once this many blocks were written (a power loss mid-flash).
    pub cut_power_after_blocks: Option<usize>,
    /// Partition table CSV for an ELF image.
    pub partition_table: Option<PathBuf>,
}

impl VirtualBoard {
    /// Resets the board into download mode (BOOT held), flashes `image` with espflash over its PTY, then resets it
    /// so it boots what was written. With `cut_power_after_blocks`, the board dies mid-flash and stays off.
    fn flash_virtual(
        &mut self,
        image: &Path,
        how: &FlashHow,
    ) -> Result<crate::flasher::FlashReport, BoardError> {
        use crate::flasher::{self, After, Before, FlashOptions};
        let payload = flasher::load_payload(image, how.partition_table.as_deref(), how.force)?;
        self.signal("TERM");
        self.spawn(false, true)?;
        let port = self.ready["serial"]
            .as_str()
            .ok_or_else(|| BoardError::Start("ready line without serial".into()))?;
        let opts = FlashOptions {
            port: PathBuf::from(port),
            baud: 921_600,
            before: Before::NoReset,
            after: After::NoReset,
            verify: true,
            stub: !how.no_stub,
        };
        let result = match how.cut_power_after_blocks {
            Some(at) => {
                let pid = self.process.as_ref().map_or(0, BoardProcess::pid);
                let mut cut = CutPower {
                    pid,
                    at,
                    cut: false,
                };
                let result = flasher::flash(&opts, &payload, &mut cut);
                if cut.cut {
                    self.signal("KILL");
                    return Err(BoardError::PoweredOff);
                }
                result
            }
            None => flasher::flash(&opts, &payload, &mut flasher::Quiet),
        };
        let report = result?;
        self.signal("TERM");
        self.spawn(false, false)?;
        Ok(report)
    }
}

/// Pulls the plug once enough bytes went out.
struct CutPower {
    pid: u32,
    at: usize,
    cut: bool,
}

impl espflash::target::ProgressCallbacks for CutPower {
    fn init(&mut self, _addr: u32, _total: usize) {}
    fn update(&mut self, current: usize) {
        if !self.cut && current >= self.at {
            self.cut = true;
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(self.pid.to_string())
                .status();
        }
    }
    fn verifying(&mut self) {}
    fn finish(&mut self, _skipped: bool) {}
}

impl Drop for VirtualBoard {
    fn drop(&mut self) {
        self.signal("KILL");
        if !self.keep_state {
            let _ = std::fs::remove_dir_all(&self.state_dir);
        }
    }
}

/// Finds `virtual-board` next to the running program (the cargo target dir), or fails with the build command.
pub fn default_board_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // Test binaries live in target/<profile>/deps.
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("virtual-board")
}
