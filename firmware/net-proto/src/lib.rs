//! Wire codecs the ESP32-C3 port needs and no suitable `no_std` crate provides for MQTT v3.1.1: bytes in, values
//! out, no I/O. The host runs their tests; the firmware drives them over embassy-net sockets.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod http;
pub mod mqtt;
pub mod session;
