//! A board inventory entry (`fixtures/boards/<name>.toml`): how the rig reaches one real board on a runner.
//!
//! ```toml
//! chip = "esp32c3"
//! port = "/dev/ttyACM0"            # or: usb_serial = "F4:12:FA:00:11:22" (found among the USB serial ports)
//! reset = "usb-jtag"                # usb-jtag | classic (DTR/RTS) | console (`reboot`) | none
//! broker = "mqtt://192.168.1.10:1883"
//! wifi_ssid_env = "HIL_WIFI_SSID"   # Wi-Fi credentials by environment variable NAME, never the secret itself
//! wifi_password_env = "HIL_WIFI_PASSWORD"
//! http = "192.168.1.50"             # optional: the board's web interface
//! [pin_map]                         # scenario pin (ESP32-CAM numbering) -> this board's pin
//! 12 = 4
//! [[wiring]]                        # board pin <-> a host GPIO line (Linux gpiochip)
//! board_pin = 4
//! chip = "/dev/gpiochip0"
//! line = 17
//! direction = "host-reads"          # host-reads (board output) | host-drives (board input)
//! [[loopback]]                      # a jumper between two board pins
//! from = 5
//! to = 6
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// How the rig resets the board into its app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResetStrategy {
    /// The ESP32-C3's USB-Serial-JTAG (RTS pulses the chip's reset).
    UsbJtag,
    /// A USB-UART bridge with DTR/RTS wired to EN/GPIO9 (the classic auto-reset circuit).
    Classic,
    /// The console command `reboot` (a pseudo-terminal, or a board without reset lines).
    Console,
    /// The rig cannot reset this board.
    None,
}

impl ResetStrategy {
    /// How a flasher gets this board into its ROM loader.
    pub fn before_flashing(self) -> crate::flasher::Before {
        use crate::flasher::Before;
        match self {
            ResetStrategy::UsbJtag => Before::UsbReset,
            ResetStrategy::Classic => Before::DefaultReset,
            // No reset lines: ask the firmware to restart into its ROM loader.
            ResetStrategy::Console => Before::Console,
            ResetStrategy::None => Before::NoReset,
        }
    }
}

/// Which side drives a wired line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// The board drives the pin (an output); the host reads the line.
    HostReads,
    /// The host drives the line into a board input.
    HostDrives,
}

/// One board pin wired to a host GPIO line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wire {
    pub board_pin: u8,
    pub chip: PathBuf,
    pub line: u32,
    pub direction: Direction,
}

/// A jumper between two board pins (an output looped back into an input).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Loopback {
    pub from: u8,
    pub to: u8,
}

/// One board of a runner.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    #[serde(skip)]
    pub name: String,
    pub chip: String,
    pub port: Option<PathBuf>,
    pub usb_serial: Option<String>,
    pub reset: ResetStrategy,
    pub broker: String,
    #[serde(default = "default_baud")]
    pub console_baud: u32,
    pub wifi_ssid_env: Option<String>,
    pub wifi_password_env: Option<String>,
    pub http: Option<String>,
    /// Where the board gets network time: absent, its config's server (the lab network's); `"rig"` or
    /// `"rig:<ip>"`, the rig serves SNTP on that address of this machine (127.0.0.1 when no ip) for each scenario;
    /// anything else, a `host[:port]` written to `network.time.ntp.timeserver`.
    pub timeserver: Option<String>,
    /// The board type the firmware reports in device/info/hardware (default: the ESP32-C3 firmware's).
    pub board_type: Option<String>,
    #[serde(default)]
    pub pin_map: BTreeMap<String, u8>,
    #[serde(default)]
    pub wiring: Vec<Wire>,
    #[serde(default)]
    pub loopback: Vec<Loopback>,
}

/// Where a board's network time comes from, as its inventory says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeServer {
    /// The board's config (the lab network's server).
    Config,
    /// The rig serves SNTP on this address of its machine.
    Rig(std::net::IpAddr),
    /// This `host[:port]`.
    At(String),
}

impl Inventory {
    /// The board's time source; a `rig:<ip>` that is no IP address is an error naming the field.
    pub fn time_server(&self) -> Result<TimeServer, InventoryError> {
        let invalid = |message: String| InventoryError::Invalid {
            path: format!("{} (timeserver)", self.name),
            message,
        };
        Ok(match self.timeserver.as_deref().map(str::trim) {
            None => TimeServer::Config,
            Some("") => return Err(invalid("empty: leave it out to use the board's config".into())),
            Some("rig") => TimeServer::Rig(std::net::Ipv4Addr::LOCALHOST.into()),
            Some(rig) if rig.starts_with("rig:") => TimeServer::Rig(rig[4..].parse().map_err(|_| {
                invalid(format!(
                    "'{rig}': after 'rig:' comes an IP address of this machine the board reaches (e.g. rig:192.168.1.10)"
                ))
            })?),
            Some(host) => TimeServer::At(host.to_string()),
        })
    }
}

/// The ESP32-C3 pins the firmware drives (firmware/esp32c3's pin table: the rest are flash, USB or strapping).
const C3_USER_PINS: [u8; 11] = [0, 1, 2, 3, 4, 5, 6, 7, 10, 20, 21];

fn default_baud() -> u32 {
    115_200
}

/// Why an inventory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("no board '{name}': {path} does not exist (boards: {known})")]
    Unknown {
        name: String,
        path: String,
        known: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl Inventory {
    /// Loads `<root>/fixtures/boards/<name>.toml`, or the file itself when `name` is a path to a `.toml`.
    pub fn load(root: &Path, name: &str) -> Result<Inventory, InventoryError> {
        let dir = root.join("fixtures/boards");
        let (path, name) = if name.ends_with(".toml") {
            let path = PathBuf::from(name);
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            (path, stem)
        } else {
            (dir.join(format!("{name}.toml")), name.to_string())
        };
        let name = name.as_str();
        let text = std::fs::read_to_string(&path).map_err(|_| InventoryError::Unknown {
            name: name.to_string(),
            path: path.display().to_string(),
            known: known_boards(&dir).join(", "),
        })?;
        Inventory::parse(name, &text).map_err(|message| InventoryError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses and checks an entry.
    pub fn parse(name: &str, text: &str) -> Result<Inventory, String> {
        let mut inv: Inventory = toml::from_str(text).map_err(|e| e.to_string())?;
        inv.name = name.to_string();
        if inv.chip != "esp32c3" {
            return Err(format!(
                "chip '{}': only esp32c3 boards are supported (Xtensa chips need a toolchain this rig does not build)",
                inv.chip
            ));
        }
        if inv.port.is_none() && inv.usb_serial.is_none() {
            return Err("give `port` or `usb_serial`".into());
        }
        for from in inv.pin_map.keys() {
            from.parse::<u8>()
                .map_err(|_| format!("pin_map key '{from}' is not a pin number"))?;
        }
        for w in &inv.wiring {
            if inv
                .wiring
                .iter()
                .filter(|o| o.board_pin == w.board_pin)
                .count()
                > 1
            {
                return Err(format!("board pin {} is wired twice", w.board_pin));
            }
        }
        inv.time_server().map_err(|e| match e {
            InventoryError::Invalid { message, .. } => format!("timeserver {message}"),
            other => other.to_string(),
        })?;
        Ok(inv)
    }

    /// The board pin a scenario's pin number means on this board.
    pub fn board_pin(&self, scenario_pin: u8) -> u8 {
        self.pin_map
            .get(&scenario_pin.to_string())
            .copied()
            .unwrap_or(scenario_pin)
    }

    /// Moves the pins a config names (the reference's ESP32-CAM numbers, as scenarios use them) to this board's
    /// per `[pin_map]`. Refused, with the fix: a pin that lands on one of the C3's flash pins (GPIO 12-17, not the
    /// user's), and two pins that land on the same board pin.
    pub fn remap_pins(&self, config: &mut serde_json::Value) -> Result<(), String> {
        let Some(pins) = config["gpio"]["gpiopin"].as_array_mut() else {
            return Ok(());
        };
        let mut taken: BTreeMap<u8, u8> = BTreeMap::new();
        for pin in pins {
            let Some(n) = pin["gpionumber"]
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
            else {
                continue;
            };
            let board_pin = self.board_pin(n);
            if !C3_USER_PINS.contains(&board_pin) {
                return Err(format!(
                    "inventory '{}': the config's GPIO{n} is GPIO{board_pin} on this board, which an ESP32-C3 does not \
                     give the firmware (it uses GPIO 0-7, 10, 20, 21; 12-17 are the flash): add `{n} = <one of them>` \
                     to its [pin_map]",
                    self.name
                ));
            }
            if let Some(other) = taken.insert(board_pin, n) {
                return Err(format!(
                    "inventory '{}': the config's GPIO{other} and GPIO{n} both land on board GPIO{board_pin}: map one \
                     of them elsewhere in its [pin_map]",
                    self.name
                ));
            }
            pin["gpionumber"] = serde_json::json!(board_pin);
        }
        Ok(())
    }

    /// The board type its firmware reports.
    pub fn board_type(&self) -> &str {
        self.board_type.as_deref().unwrap_or("ESP32-C3")
    }

    /// The board's IPv4 address, when `http` names it by address.
    pub fn ip(&self) -> Option<std::net::Ipv4Addr> {
        let http = self.http.as_deref()?;
        let host = http
            .trim_start_matches("http://")
            .split(['/', ':'])
            .next()?;
        host.parse().ok()
    }

    /// A topic (relative to the main topic) as this board publishes it: an unnamed pin's topic carries its number
    /// (`device/gpio/gpio13/state`), which the pin map changes.
    pub fn board_topic(&self, rel: &str) -> String {
        let Some(rest) = rel.strip_prefix("device/gpio/gpio") else {
            return rel.to_string();
        };
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        match rest[..digits].parse::<u8>() {
            Ok(n) if rest[digits..].is_empty() || rest[digits..].starts_with('/') => {
                format!("device/gpio/gpio{}{}", self.board_pin(n), &rest[digits..])
            }
            _ => rel.to_string(),
        }
    }

    /// The host line wired to a board pin in the given direction.
    pub fn wire(&self, board_pin: u8, direction: Direction) -> Option<&Wire> {
        self.wiring
            .iter()
            .find(|w| w.board_pin == board_pin && w.direction == direction)
    }

    /// Whether scenarios that drive and read pins can run here.
    pub fn has_wiring(&self) -> bool {
        !self.wiring.is_empty()
    }

    /// A Wi-Fi credential from the environment variable the entry names.
    pub fn wifi(&self) -> Result<Option<(String, String)>, String> {
        let Some(ssid_var) = &self.wifi_ssid_env else {
            return Ok(None);
        };
        let ssid = std::env::var(ssid_var).map_err(|_| {
            format!("the inventory names ${ssid_var} for the Wi-Fi SSID, but it is not set")
        })?;
        let password = match &self.wifi_password_env {
            Some(var) => std::env::var(var).map_err(|_| {
                format!("the inventory names ${var} for the Wi-Fi password, but it is not set")
            })?,
            None => String::new(),
        };
        Ok(Some((ssid, password)))
    }

    /// The serial port: `port`, or the USB serial port whose serial number matches.
    pub fn resolve_port(&self) -> Result<PathBuf, String> {
        if let Some(p) = &self.port {
            return Ok(p.clone());
        }
        let wanted = self.usb_serial.as_deref().unwrap_or_default();
        serialport::available_ports()
            .unwrap_or_default()
            .into_iter()
            .find(|p| match &p.port_type {
                serialport::SerialPortType::UsbPort(u) => {
                    u.serial_number.as_deref() == Some(wanted)
                }
                _ => false,
            })
            .map(|p| PathBuf::from(p.port_name))
            .ok_or_else(|| {
                format!(
                    "no USB serial port with serial number {wanted} (is board '{}' plugged in?)",
                    self.name
                )
            })
    }
}

fn known_boards(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let p = e.path();
                    if p.extension()? != "toml" {
                        return None;
                    }
                    Some(p.file_stem()?.to_string_lossy().into_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
        chip = "esp32c3"
        port = "/dev/ttyACM0"
        reset = "usb-jtag"
        broker = "mqtt://192.168.1.10:1883"
        wifi_ssid_env = "HIL_TEST_SSID_NOT_SET"
        [pin_map]
        12 = 4
        [[wiring]]
        board_pin = 4
        chip = "/dev/gpiochip0"
        line = 17
        direction = "host-reads"
        [[loopback]]
        from = 5
        to = 6
    "#;

    #[test]
    fn time_server_says_who_serves_network_time() {
        let with = |line: &str| Inventory::parse("desk", &format!("{FULL_HEAD}{line}\n"));
        assert_eq!(with("").unwrap().time_server().unwrap(), TimeServer::Config);
        assert_eq!(
            with("timeserver = \"rig\"").unwrap().time_server().unwrap(),
            TimeServer::Rig("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            with("timeserver = \"rig:192.168.1.10\"")
                .unwrap()
                .time_server()
                .unwrap(),
            TimeServer::Rig("192.168.1.10".parse().unwrap())
        );
        assert_eq!(
            with("timeserver = \"ntp.lab:123\"")
                .unwrap()
                .time_server()
                .unwrap(),
            TimeServer::At("ntp.lab:123".into())
        );
        let err = with("timeserver = \"rig:lab\"").unwrap_err();
        assert!(
            err.contains("timeserver") && err.contains("rig:192.168.1.10"),
            "{err}"
        );
        assert!(with("timeserver = \"\"")
            .unwrap_err()
            .contains("leave it out"));
    }

    #[test]
    fn board_values_come_from_the_entry() {
        let inv = Inventory::parse(
            "desk",
            &format!("{FULL_HEAD}http = \"http://192.168.1.50:80/\"\n"),
        )
        .unwrap();
        assert_eq!(inv.ip(), Some("192.168.1.50".parse().unwrap()));
        assert_eq!(inv.board_type(), "ESP32-C3");
        let named = Inventory::parse(
            "desk",
            &format!("{FULL_HEAD}http = \"meter.lan\"\nboard_type = \"X\"\n"),
        )
        .unwrap();
        assert_eq!(named.ip(), None);
        assert_eq!(named.board_type(), "X");
    }

    const FULL_HEAD: &str = "chip = \"esp32c3\"\nport = \"/dev/ttyACM0\"\nreset = \"usb-jtag\"\nbroker = \"mqtt://h:1883\"\n";

    #[test]
    fn parses_a_full_entry() {
        let inv = Inventory::parse("desk", FULL).unwrap();
        assert_eq!(inv.reset, ResetStrategy::UsbJtag);
        assert_eq!(inv.board_pin(12), 4);
        assert_eq!(inv.board_pin(13), 13);
        assert_eq!(inv.wire(4, Direction::HostReads).map(|w| w.line), Some(17));
        assert!(inv.wire(4, Direction::HostDrives).is_none());
        assert!(inv.has_wiring());
        assert_eq!(inv.loopback, vec![Loopback { from: 5, to: 6 }]);
        let e = inv.wifi().unwrap_err();
        assert!(e.contains("$HIL_TEST_SSID_NOT_SET"), "{e}");
    }

    #[test]
    fn refuses_what_cannot_work() {
        let e = Inventory::parse("x", &FULL.replace("esp32c3", "esp32s3")).unwrap_err();
        assert!(e.contains("only esp32c3"), "{e}");
        let e = Inventory::parse("x", &FULL.replace("port = \"/dev/ttyACM0\"", "")).unwrap_err();
        assert!(e.contains("`port` or `usb_serial`"), "{e}");
        let e = Inventory::parse("x", &FULL.replace("usb-jtag", "magic")).unwrap_err();
        assert!(e.contains("unknown variant"), "{e}");
        let e = Inventory::parse("x", &format!("{FULL}\nbogus = 1")).unwrap_err();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn unknown_boards_list_the_known_ones() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let e = Inventory::load(&root, "no-such-board")
            .unwrap_err()
            .to_string();
        assert!(e.contains("example-esp32c3"), "{e}");
        let example = Inventory::load(&root, "example-esp32c3").unwrap();
        assert_eq!(example.chip, "esp32c3");
    }
}
