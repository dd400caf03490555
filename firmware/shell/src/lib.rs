//! What every board runs around the core, written once: the action loop, the MQTT driver, the console, storage
//! and the queues between them, with one set of limits ([`limits`]). A board implements [`board::Board`] (its
//! hardware effects), [`board::Clock`] and [`mqtt::Network`], feeds its peripherals into the [`shell::Inbox`], and
//! runs [`shell::Shell::run`] beside [`mqtt::Driver::run`] and its UART task. The virtual board runs exactly this,
//! so the whole scenario suite exercises what the ESP32-C3 runs.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod board;
pub mod http;
pub mod limits;
pub mod log;
pub mod mqtt;
pub mod shell;
pub mod storage;
pub mod time;
pub mod uart;

pub use board::{Board, Clock};
pub use shell::{Exit, Inbox, Input, Reply, Shell};
