//! The meter device as a sans-IO library: events in, actions out.
//!
//! Everything the device does lives here, shared by every board port (the host virtual board, the ESP32-C3):
//! the configuration ([`config`]), the v17 MQTT API topic tree ([`engine`]), control payloads ([`control`]),
//! number-sequence readout ([`readout`]) and post-processing ([`postprocess`]), GPIO ([`gpio`]), Home Assistant
//! discovery ([`discovery`]), the serial console ([`console`]) and the REST API ([`rest`]). No I/O, no clock,
//! no async runtime: the board passes the time with every event.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod camera;
pub mod config;
pub mod console;
pub mod control;
pub mod discovery;
pub mod engine;
pub mod gpio;
pub mod postprocess;
pub mod readout;
pub mod rest;
pub mod time;
pub mod web;

pub use engine::{
    Action, BoardInfo, BoardStatus, Boot, Engine, Event, HttpRequest, HttpResponse, Level,
    MqttSettings,
};
