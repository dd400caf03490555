//! Wire codecs the boards need and no suitable `no_std` crate provides (MQTT v3.1.1, HTTP/1.1, SNTP): bytes in, values
//! out, no I/O. The host runs their tests; the firmware drives them over embassy-net sockets.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod http;
pub mod mqtt;
pub mod session;
pub mod sntp;
