//! meterrig's rig: boards (virtual, and real ESP32-C3s on a serial port), the broker, the observer, snapshots,
//! migration-notes and Home Assistant checks, the cucumber World + steps that scenarios in `features/` use, and what
//! a run reports (results, evidence, JUnit, an HTML page). The `hil` command line is [`cli`].
//! It knows the device only through the spec, the fixtures and the snapshots: it never links firmware code.

pub mod app_image;
pub mod bench;
pub mod board;
pub mod broker;
pub mod browser;
pub mod cable;
pub mod cli;
pub mod evidence;
pub mod flasher;
pub mod ha;
pub mod home_assistant;
pub mod http;
pub mod image_size;
pub mod inventory;
pub mod junit;
pub mod migration;
pub mod monitor;
pub mod observer;
pub mod quickack;
pub mod report;
pub mod results;
pub mod runner;
pub mod serial_board;
pub mod snapshot;
pub mod sntp;
pub mod soak;
pub mod tags;
pub mod world;
