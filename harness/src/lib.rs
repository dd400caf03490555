//! meterrig's rig: boards (virtual, and serial with the ESP32-C3 issue), the broker, the observer, snapshots,
//! migration-notes and Home Assistant checks, and the cucumber World + steps that scenarios in `features/` use.
//! It knows the device only through the spec, the fixtures and the snapshots: it never links firmware code.

pub mod app_image;
pub mod bench;
pub mod board;
pub mod broker;
pub mod browser;
pub mod flasher;
pub mod ha;
pub mod http;
pub mod image_size;
pub mod inventory;
pub mod migration;
pub mod monitor;
pub mod observer;
pub mod runner;
pub mod serial_board;
pub mod snapshot;
pub mod tags;
pub mod world;
