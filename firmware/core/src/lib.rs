//! The meter device as a sans-IO library: events in, actions out.
//!
//! Everything the device does lives here, shared by every board port (the host virtual board, the ESP32-C3):
//! the configuration ([`config`]), the v17 MQTT API topic tree ([`engine`]), control payloads ([`control`]),
//! number-sequence readout ([`readout`]) and post-processing ([`postprocess`]), GPIO ([`gpio`]), Home Assistant
//! discovery ([`discovery`]), the serial console ([`console`]) and the REST API ([`rest`]). No I/O, no clock,
//! no async runtime: the board passes the time with every event.
//!
//! # The run loop
//!
//! A board (in this project: the shared shell, `meter-shell`) owns one [`Engine`] and repeats:
//!
//! 1. Wait for whatever comes first: an input (MQTT, console, HTTP, a pin), or the engine's
//!    [`Engine::next_deadline`]. There is no fixed tick: a board sleeps until then and sends [`Event::Tick`]
//!    (a tick before the deadline does nothing; the deadline can move after any event, so ask again each time).
//! 2. Feed it: [`Engine::push_event`] (or [`Engine::http`] for a request, which answers at once).
//! 3. Carry out [`Engine::poll_action`] until it returns `None`, in order. Carrying an action out may feed the
//!    engine again, before the queue is empty (a frame for [`Action::RequestFrame`], a pin that a wire connects
//!    to an output): that is allowed, and the actions of that event come after the ones already queued. Actions
//!    are produced lazily where they are large (Home Assistant discovery configs are rendered one at a time as
//!    they are taken), so a board that takes one action, sends it, and only then takes the next never holds more
//!    than one of them in memory.
//! 4. [`Action::Reboot`] and [`Action::EnterDownloadMode`] are carried out last, after everything queued with
//!    them (the console's reply, the `offline` the engine publishes before it goes down).
//!
//! Times are unix milliseconds of the board's clock; the engine never reads a clock itself, so the same events
//! at the same times give the same actions.
//!
//! ```
//! use meter_core::engine::{Action, BoardStatus, Boot, Engine, Event, TimeStatus};
//!
//! let mut engine = Engine::new();
//! let mut now = 1_700_000_000_000u64;
//! let config = r#"{"mqtt": {"enabled": true, "uri": "mqtt://broker:1883", "maintopic": "meter"},
//!                  "operationmode": {"opmode": 1, "automaticprocessinterval": 1}}"#;
//! let boot = Boot { stored_config: Some(config.into()), ..Boot::default() };
//! engine.push_event(now, Event::Booted(boot));
//! // Processing waits for network time (the reference's process start interlock): the board has it.
//! let synced = BoardStatus { time: TimeStatus::Synchronized, ..BoardStatus::default() };
//! engine.push_event(now, Event::BoardStatus(synced));
//! let mut published = Vec::new();
//! // A stand-in for a board's loop: sleep until the deadline (here: jump the clock), then tick.
//! for _ in 0..3 {
//!     while let Some(action) = engine.poll_action() {
//!         match action {
//!             Action::Publish { topic, .. } => published.push(topic),
//!             // No camera: answer a frame request with the simulated one, while actions are still queued.
//!             Action::RequestFrame => {
//!                 let frame = engine.capture_simulated();
//!                 engine.push_event(now, Event::Frame(frame));
//!             }
//!             Action::MqttConnect(_) => engine.push_event(now, Event::MqttConnected),
//!             _ => {}
//!         }
//!     }
//!     match engine.next_deadline() {
//!         Some(at) => now = now.max(at),
//!         None => now += 60_000,
//!     }
//!     engine.push_event(now, Event::Tick);
//! }
//! assert!(published.iter().any(|t| t == "meter/device/status/connection"));
//! // Automatic mode: a cycle at once after connecting, and one a minute later.
//! assert_eq!(engine.cycle_counter(), 2);
//! ```
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod camera;
pub mod config;
pub mod console;
pub mod control;
pub mod decimal;
pub mod discovery;
pub mod engine;
pub mod gpio;
pub mod json;
pub mod postprocess;
pub mod readout;
pub mod rest;
pub mod time;
pub mod web;

pub use engine::{
    Action, BoardInfo, BoardStatus, Boot, Engine, Event, HttpRequest, HttpResponse, Level,
    MqttSettings, ProcessState,
};
