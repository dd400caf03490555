//! `hil monitor`: the board's serial console with a timestamp per line; lines typed on stdin go to the board.

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serialport::SerialPort;

use crate::flasher::{self, FlashError};

/// Prints console lines as `[   12.345] text` until the port goes away (board reset or unplugged).
pub fn run(port: &Path, baud: u32, out: &mut dyn Write) -> Result<(), FlashError> {
    let mut serial = flasher::open_port(port)?;
    serial
        .set_baud_rate(baud)
        .map_err(|e| FlashError::Espflash(e.to_string()))?;
    serial
        .set_timeout(Duration::from_millis(200))
        .map_err(|e| FlashError::Espflash(e.to_string()))?;
    let mut writer = serial
        .try_clone_native()
        .map_err(|e| FlashError::Espflash(e.to_string()))?;
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if writer.write_all(format!("{line}\n").as_bytes()).is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut partial = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match serial.read(&mut buf) {
            Ok(0) => return closed(port, out),
            Ok(n) => {
                for &b in &buf[..n] {
                    if b == b'\n' {
                        let text = String::from_utf8_lossy(&partial);
                        let text = text.trim_end_matches('\r');
                        let t = started.elapsed().as_secs_f64();
                        let _ = writeln!(out, "[{t:>10.3}] {text}");
                        partial.clear();
                    } else {
                        partial.push(b);
                    }
                }
                let _ = out.flush();
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return closed(port, out),
        }
    }
}

fn closed(port: &Path, out: &mut dyn Write) -> Result<(), FlashError> {
    let _ = writeln!(
        out,
        "-- {} closed (board reset or unplugged)",
        port.display()
    );
    Ok(())
}
