//! [`SerialBoard`]: a real board on a serial port, as the inventory describes it. The console and its capture
//! work like the virtual board's; reset uses the inventory's strategy (RTS on USB-JTAG or a DTR/RTS bridge, or the
//! console's `reboot`); GPIO goes through host lines (Linux gpiochip) wired to board pins; flashing releases the
//! port to espflash and takes it back.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use gpiocdev::line::Value;
use serialport::SerialPort;

use crate::board::{Board, BoardError, FlashHow};
use crate::flasher::{self, After, FlashOptions, FlashReport};
use crate::inventory::{Direction, Inventory, ResetStrategy, Wire};

type Capture = Arc<Mutex<Vec<(Duration, String)>>>;

/// The port, while the rig holds it.
struct Attached {
    port: serialport::TTYPort,
    stop: Arc<AtomicBool>,
    reader: std::thread::JoinHandle<()>,
    replies: mpsc::Receiver<String>,
}

/// A real ESP32-C3 reached through its serial port and the runner's wiring.
pub struct SerialBoard {
    inventory: Inventory,
    port: PathBuf,
    attached: Option<Attached>,
    capture: Capture,
    started: Instant,
    /// Output lines the rig drives (held so they keep their level).
    driven: BTreeMap<u8, gpiocdev::Request>,
}

impl SerialBoard {
    /// Opens the board's port and starts capturing its console.
    pub fn open(inventory: Inventory) -> Result<SerialBoard, BoardError> {
        let port = inventory.resolve_port().map_err(BoardError::Start)?;
        let mut board = SerialBoard {
            inventory,
            port,
            attached: None,
            capture: Arc::default(),
            started: Instant::now(),
            driven: BTreeMap::new(),
        };
        board.attach()?;
        Ok(board)
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    fn attach(&mut self) -> Result<(), BoardError> {
        if self.attached.is_some() {
            return Ok(());
        }
        let mut port = flasher::open_port(&self.port)?;
        port.set_baud_rate(self.inventory.console_baud)
            .map_err(|e| BoardError::Start(format!("{}: {e}", self.port.display())))?;
        let mut reading = port
            .try_clone_native()
            .map_err(|e| BoardError::Start(format!("{}: {e}", self.port.display())))?;
        reading
            .set_timeout(Duration::from_millis(50))
            .map_err(|e| BoardError::Start(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, replies) = mpsc::channel();
        let (capture, started, halt) = (self.capture.clone(), self.started, stop.clone());
        let reader = std::thread::spawn(move || {
            let mut partial = Vec::new();
            let mut buf = [0u8; 1024];
            while !halt.load(Ordering::Relaxed) {
                match reading.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        for &b in &buf[..n] {
                            if b != b'\n' {
                                partial.push(b);
                                continue;
                            }
                            let line = String::from_utf8_lossy(&partial).trim_end().to_string();
                            partial.clear();
                            if let Ok(mut c) = capture.lock() {
                                c.push((started.elapsed(), line.clone()));
                            }
                            if line.starts_with("ok") || line.starts_with("err ") {
                                let _ = tx.send(line);
                            }
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => return,
                }
            }
        });
        self.attached = Some(Attached {
            port,
            stop,
            reader,
            replies,
        });
        Ok(())
    }

    /// Releases the port (for espflash).
    fn detach(&mut self) {
        if let Some(a) = self.attached.take() {
            a.stop.store(true, Ordering::Relaxed);
            let _ = a.reader.join();
        }
    }

    /// Pulses EN through RTS (DTR released, so GPIO9 stays high and the app boots).
    fn pulse_en(&mut self) -> Result<(), BoardError> {
        let port_name = self.port.display().to_string();
        let a = self.attached.as_mut().ok_or(BoardError::PoweredOff)?;
        let fail = |e: serialport::Error| {
            BoardError::Start(format!(
                "cannot pulse RTS on {port_name} ({e}); a port without modem lines needs reset = \"console\" in the inventory"
            ))
        };
        a.port.write_data_terminal_ready(false).map_err(fail)?;
        a.port.write_request_to_send(true).map_err(fail)?;
        std::thread::sleep(Duration::from_millis(100));
        a.port.write_request_to_send(false).map_err(fail)?;
        Ok(())
    }

    /// Waits until the console answers `status` (the firmware is up).
    pub fn wait_alive(&mut self, timeout: Duration) -> Result<(), BoardError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.console("status", Duration::from_millis(500)) {
                Ok(reply) if reply.starts_with("ok") => return Ok(()),
                Ok(_) | Err(BoardError::ConsoleTimeout { .. }) if Instant::now() < deadline => {}
                Ok(reply) => {
                    return Err(BoardError::Start(format!(
                        "the board answers {reply:?} after a reset"
                    )))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The host line wired to scenario pin `pin` in this direction, and the board pin it maps to.
    fn wire(&self, pin: u8, direction: Direction) -> Result<(u8, Wire), BoardError> {
        let board_pin = self.inventory.board_pin(pin);
        let verb = match direction {
            Direction::HostDrives => "drives",
            Direction::HostReads => "reads",
        };
        let wire = self
            .inventory
            .wire(board_pin, direction)
            .cloned()
            .ok_or_else(|| {
                BoardError::Gpio(format!(
                "no host line {verb} board pin {board_pin} (scenario GPIO {pin}) in inventory '{}'",
                self.inventory.name
            ))
            })?;
        Ok((board_pin, wire))
    }

    fn request(
        &self,
        chip: &Path,
        line: u32,
        output: Option<bool>,
    ) -> Result<gpiocdev::Request, BoardError> {
        let mut builder = gpiocdev::Request::builder();
        builder
            .on_chip(chip)
            .with_line(line)
            .with_consumer("meterrig-hil");
        match output {
            Some(high) => builder.as_output(if high { Value::Active } else { Value::Inactive }),
            None => builder.as_input(),
        };
        builder
            .request()
            .map_err(|e| BoardError::Gpio(format!("{} line {line}: {e}", chip.display())))
    }
}

impl Board for SerialBoard {
    fn console(&mut self, line: &str, timeout: Duration) -> Result<String, BoardError> {
        let a = self.attached.as_mut().ok_or(BoardError::PoweredOff)?;
        while a.replies.try_recv().is_ok() {}
        a.port.write_all(format!("{line}\n").as_bytes())?;
        a.replies
            .recv_timeout(timeout)
            .map_err(|_| BoardError::ConsoleTimeout {
                line: line.to_string(),
                timeout,
                tail: self
                    .capture
                    .lock()
                    .map(|c| c.iter().rev().take(5).map(|(_, l)| l.clone()).collect())
                    .unwrap_or_default(),
            })
    }

    fn console_capture(&self) -> Vec<(Duration, String)> {
        self.capture.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Resets and returns once the firmware answers on the console again (as the virtual board's reset does).
    fn reset(&mut self) -> Result<(), BoardError> {
        match self.inventory.reset {
            ResetStrategy::UsbJtag | ResetStrategy::Classic => self.pulse_en()?,
            ResetStrategy::Console => {
                let reply = self.console("reboot", Duration::from_secs(5))?;
                if !reply.starts_with("ok") {
                    return Err(BoardError::Start(format!("`reboot` refused: {reply}")));
                }
            }
            ResetStrategy::None => {
                return Err(BoardError::Unsupported(
                    "reset (the inventory says reset = \"none\")",
                ))
            }
        }
        self.wait_alive(Duration::from_secs(30))
    }

    fn power_off(&mut self) -> Result<(), BoardError> {
        Err(BoardError::Unsupported(
            "power switching (a real board needs a relay the inventory does not describe)",
        ))
    }

    fn power_on(&mut self) -> Result<(), BoardError> {
        Err(BoardError::Unsupported(
            "power switching (a real board needs a relay the inventory does not describe)",
        ))
    }

    fn drive_input(&mut self, pin: u8, high: bool) -> Result<(), BoardError> {
        let (board_pin, wire) = self.wire(pin, Direction::HostDrives)?;
        if let Some(req) = self.driven.get(&board_pin) {
            let value = if high { Value::Active } else { Value::Inactive };
            return req
                .set_value(wire.line, value)
                .map_err(|e| BoardError::Gpio(e.to_string()));
        }
        let req = self.request(&wire.chip, wire.line, Some(high))?;
        self.driven.insert(board_pin, req);
        Ok(())
    }

    fn read_output(&mut self, pin: u8) -> Result<(bool, Option<u32>), BoardError> {
        let (_, wire) = self.wire(pin, Direction::HostReads)?;
        let req = self.request(&wire.chip, wire.line, None)?;
        let value = req
            .value(wire.line)
            .map_err(|e| BoardError::Gpio(e.to_string()))?;
        // A GPIO line sees levels, not PWM duty.
        Ok((value == Value::Active, None))
    }

    fn jumper(&mut self, from: u8, to: u8) -> Result<(), BoardError> {
        let (a, b) = (self.inventory.board_pin(from), self.inventory.board_pin(to));
        if self
            .inventory
            .loopback
            .iter()
            .any(|l| l.from == a && l.to == b)
        {
            Ok(())
        } else {
            Err(BoardError::Gpio(format!(
                "no jumper from board pin {a} to {b} (scenario GPIO {from} -> {to}) in inventory '{}'",
                self.inventory.name
            )))
        }
    }

    fn flash_with(&mut self, image: &Path, how: &FlashHow) -> Result<FlashReport, BoardError> {
        if how.cut_power_after_blocks.is_some() {
            return Err(BoardError::Unsupported(
                "a power cut (a real board needs a relay the inventory does not describe)",
            ));
        }
        let payload = flasher::load_payload(image, how.partition_table.as_deref(), how.force)?;
        self.detach();
        let opts = FlashOptions {
            port: self.port.clone(),
            baud: 921_600,
            before: self.inventory.reset.before_flashing(),
            after: After::HardReset,
            verify: true,
            stub: !how.no_stub,
        };
        let result = flasher::flash(&opts, &payload, &mut flasher::Quiet);
        self.attach()?;
        Ok(result?)
    }

    fn http_base(&self) -> Option<String> {
        self.inventory.http.as_ref().map(|h| format!("http://{h}"))
    }

    fn started(&self) -> Option<Instant> {
        Some(self.started)
    }

    fn describe(&self) -> String {
        format!("{} on {}", self.inventory.name, self.port.display())
    }
}

impl Drop for SerialBoard {
    fn drop(&mut self) {
        self.detach();
    }
}
