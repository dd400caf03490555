//! Finding and opening the board's serial port: USB ids of the bridges an ESP32 sits behind, the one candidate
//! (or a list to pick from), pseudo-terminals (virtual boards), and the program that holds a busy port.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serialport::{SerialPortType, UsbPortInfo};

use super::FlashError;

/// USB bridges an ESP32 board is found behind: (vid, pid, name).
pub const KNOWN_BRIDGES: &[(u16, u16, &str)] = &[
    (0x303A, 0x1001, "Espressif USB-JTAG/serial"),
    (0x10C4, 0xEA60, "Silicon Labs CP210x"),
    (0x1A86, 0x7523, "WCH CH340"),
    (0x1A86, 0x55D4, "WCH CH9102"),
    (0x1A86, 0x55D3, "WCH CH343"),
    (0x0403, 0x6001, "FTDI FT232R"),
    (0x0403, 0x6010, "FTDI FT2232"),
    (0x0403, 0x6014, "FTDI FT232H"),
    (0x0403, 0x6015, "FTDI FT231X"),
];

pub(crate) fn known_list() -> String {
    KNOWN_BRIDGES
        .iter()
        .map(|(v, p, n)| format!("{n} {v:04x}:{p:04x}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn list_ports(ports: &[String]) -> String {
    ports.iter().map(|p| format!("\n  {p}")).collect()
}

/// Picks the serial port of the one ESP32 board attached (by USB id); `choose` resolves ambiguity interactively.
pub fn detect_port(choose: bool) -> Result<PathBuf, FlashError> {
    let ports = serialport::available_ports().unwrap_or_default();
    if choose && std::io::stdin().is_terminal() {
        pick_port(&ports, Some(&mut prompt))
    } else {
        pick_port(&ports, None)
    }
}

/// Asks on the terminal which of several ports to use.
fn prompt(choices: &[String]) -> Option<usize> {
    eprintln!("Several ESP32 serial ports:");
    for (i, c) in choices.iter().enumerate() {
        eprintln!("  [{}] {c}", i + 1);
    }
    eprint!("Pick one [1-{}]: ", choices.len());
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).ok()?;
    line.trim().parse::<usize>().ok()?.checked_sub(1)
}

fn describe(p: &serialport::SerialPortInfo) -> String {
    match &p.port_type {
        SerialPortType::UsbPort(u) => format!(
            "{} ({:04x}:{:04x}{})",
            p.port_name,
            u.vid,
            u.pid,
            u.product
                .as_deref()
                .map(|s| format!(" {s}"))
                .unwrap_or_default()
        ),
        _ => p.port_name.clone(),
    }
}

/// Asks which of the listed ports to use: an index into the list, or None.
pub type Chooser<'a> = &'a mut dyn FnMut(&[String]) -> Option<usize>;

/// The ESP32 port among `ports`: the one behind a known USB bridge; with several, `choose` picks (an index into
/// the list it is shown) or the caller gets the list.
pub fn pick_port(
    ports: &[serialport::SerialPortInfo],
    choose: Option<Chooser<'_>>,
) -> Result<PathBuf, FlashError> {
    let candidates: Vec<_> = ports
        .iter()
        .filter(|p| match &p.port_type {
            SerialPortType::UsbPort(u) => KNOWN_BRIDGES
                .iter()
                .any(|(v, pid, _)| *v == u.vid && *pid == u.pid),
            _ => false,
        })
        .collect();
    let listed: Vec<String> = candidates.iter().map(|p| describe(p)).collect();
    match (candidates.as_slice(), choose) {
        ([one], _) => Ok(PathBuf::from(&one.port_name)),
        ([], _) => Err(FlashError::NoPort(ports.iter().map(describe).collect())),
        (many, Some(choose)) => choose(&listed)
            .and_then(|i| many.get(i))
            .map(|p| PathBuf::from(&p.port_name))
            .ok_or(FlashError::AmbiguousPort(listed)),
        (_, None) => Err(FlashError::AmbiguousPort(listed)),
    }
}

/// Whether a port is a pseudo-terminal (a virtual board): it has no DTR/RTS lines to reset the chip with.
pub fn is_pseudo_terminal(port: &Path) -> bool {
    let resolved = std::fs::canonicalize(port).unwrap_or_else(|_| port.to_path_buf());
    resolved.starts_with("/dev/pts")
}

/// Processes other than PTY owners that hold `port` open (as "name (pid N)").
fn holders(port: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(port).map(|m| m.rdev()) else {
        return Vec::new();
    };
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for proc_dir in procs.flatten() {
        let pid = proc_dir.file_name().to_string_lossy().to_string();
        if !pid.chars().all(|c| c.is_ascii_digit()) || pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(proc_dir.path().join("fd")) else {
            continue;
        };
        let (mut holds, mut owns_pty) = (false, false);
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if link == Path::new("/dev/ptmx") || link.starts_with("/dev/pts/ptmx") {
                owns_pty = true;
            } else if std::fs::metadata(&link).is_ok_and(|m| m.rdev() == target) {
                holds = true;
            }
        }
        if holds && !owns_pty {
            let name = std::fs::read_to_string(proc_dir.path().join("comm")).unwrap_or_default();
            found.push(format!("{} (pid {pid})", name.trim()));
        }
    }
    found
}

/// Opens a serial port at 115200 baud, turning OS errors into their fixes.
pub fn open_port(port: &Path) -> Result<serialport::TTYPort, FlashError> {
    let name = port.display().to_string();
    if !port.exists() {
        return Err(FlashError::PortMissing { port: name });
    }
    let others = holders(port);
    if !others.is_empty() {
        return Err(FlashError::PortBusy {
            port: name,
            holders: others.join(", "),
        });
    }
    serialport::new(&name, 115_200)
        .timeout(Duration::from_secs(3))
        .open_native()
        .map_err(|e| {
            let text = e.to_string();
            match e.kind() {
                serialport::ErrorKind::NoDevice => FlashError::PortMissing { port: name.clone() },
                serialport::ErrorKind::Io(std::io::ErrorKind::PermissionDenied) => {
                    FlashError::PermissionDenied { port: name.clone() }
                }
                _ if text.contains("busy") => FlashError::PortBusy {
                    port: name.clone(),
                    holders: "another program".into(),
                },
                _ => FlashError::Open {
                    port: name.clone(),
                    detail: text,
                },
            }
        })
}

pub(crate) fn usb_info(port: &Path) -> UsbPortInfo {
    let name = port.display().to_string();
    serialport::available_ports()
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.port_name == name)
        .and_then(|p| match p.port_type {
            SerialPortType::UsbPort(u) => Some(u),
            _ => None,
        })
        .unwrap_or(UsbPortInfo {
            vid: 0,
            pid: 0,
            serial_number: None,
            manufacturer: None,
            product: None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serialport::SerialPortInfo;

    fn usb(name: &str, vid: u16, pid: u16) -> SerialPortInfo {
        SerialPortInfo {
            port_name: name.into(),
            port_type: SerialPortType::UsbPort(UsbPortInfo {
                vid,
                pid,
                serial_number: None,
                manufacturer: None,
                product: Some("bridge".into()),
            }),
        }
    }

    fn plain(name: &str) -> SerialPortInfo {
        SerialPortInfo {
            port_name: name.into(),
            port_type: SerialPortType::PciPort,
        }
    }

    #[test]
    fn picks_the_one_esp32_bridge_and_lists_the_rest() {
        let ports = [
            plain("/dev/ttyS0"),
            usb("/dev/ttyUSB0", 0x0403, 0x1234),
            usb("/dev/ttyACM0", 0x303A, 0x1001),
        ];
        assert_eq!(
            pick_port(&ports, None).unwrap(),
            PathBuf::from("/dev/ttyACM0")
        );
        let e = pick_port(&ports[..2], None).unwrap_err().to_string();
        assert!(
            e.contains("no ESP32 serial port found")
                && e.contains("/dev/ttyUSB0 (0403:1234 bridge)"),
            "{e}"
        );
        assert!(e.contains("Espressif USB-JTAG/serial 303a:1001"), "{e}");
    }

    #[test]
    fn several_boards_are_listed_or_picked() {
        let ports = [
            usb("/dev/ttyUSB0", 0x10C4, 0xEA60),
            usb("/dev/ttyUSB1", 0x1A86, 0x7523),
        ];
        let e = pick_port(&ports, None).unwrap_err().to_string();
        assert!(
            e.contains("pass one with --port") && e.contains("/dev/ttyUSB1 (1a86:7523 bridge)"),
            "{e}"
        );
        let mut second = |choices: &[String]| {
            assert_eq!(choices.len(), 2);
            Some(1)
        };
        assert_eq!(
            pick_port(&ports, Some(&mut second)).unwrap(),
            PathBuf::from("/dev/ttyUSB1")
        );
        let mut nonsense = |_: &[String]| Some(7);
        assert!(matches!(
            pick_port(&ports, Some(&mut nonsense)),
            Err(FlashError::AmbiguousPort(_))
        ));
    }
}
