//! The MQTT client session fed what a broker might send, interleaved with the device's publishes, subscriptions,
//! time and socket events. Input: two bytes of limits, then ops (see `Op` below; seeds in fuzz/corpus).
#![no_main]

use libfuzzer_sys::fuzz_target;
use net_proto::mqtt::{Connect, Will};
use net_proto::session::{Output, Session};

/// Reads the input as a board's life with a session.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    /// A length byte and that many bytes (fewer at the end of the input).
    fn bytes(&mut self) -> &'a [u8] {
        let n = usize::from(self.byte().unwrap_or(0)).min(self.0.len());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        b
    }
}

/// Whole packets (a resend after CONNACK goes in one `Send`): each remaining length says exactly how long it is.
fn check_packets(mut bytes: &[u8]) {
    assert!(!bytes.is_empty(), "an empty send");
    while !bytes.is_empty() {
        let mut len = 0usize;
        let mut header = 0;
        for i in 0..4 {
            let b = *bytes.get(1 + i).expect("a packet cut in its length");
            len |= usize::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                header = 2 + i;
                break;
            }
        }
        assert!(header > 0, "remaining length over 4 bytes: {bytes:02x?}");
        assert!(
            bytes.len() >= header + len,
            "a packet sent is cut: {bytes:02x?}"
        );
        bytes = &bytes[header + len..];
    }
}

fn check(out: &[Output], may_send: bool) {
    let mut over = false;
    for o in out {
        match o {
            Output::Send(b) => {
                assert!(may_send, "sent while not connected: {out:?}");
                assert!(!over, "sent after the connection ended: {out:?}");
                check_packets(b);
            }
            Output::Lost(_) | Output::Left => over = true,
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let max_inflight = usize::from(input.byte().unwrap_or(8) % 16);
    let max_packet = usize::from(input.byte().unwrap_or(64)) * 16;
    let mut s = Session::new(max_inflight, max_packet);
    let mut now: u64 = 1_000_000;
    let mut ops = 0;
    while let Some(op) = input.byte() {
        ops += 1;
        if ops > 256 {
            break;
        }
        let connected = s.is_connected();
        match op % 8 {
            0 => {
                let leaving = s.is_leaving();
                let out = s.received(input.bytes(), now);
                let connack = out.iter().any(|o| matches!(o, Output::Connected { .. }));
                check(&out, connected || connack || leaving);
            }
            1 => {
                // Time passes; a tick before the deadline has nothing to do.
                let step = u64::from(input.byte().unwrap_or(0)) * 100;
                now += step;
                let due = s.deadline().is_some_and(|d| now >= d);
                let out = s.tick(now);
                check(&out, connected);
                if !due {
                    assert!(out.is_empty(), "a tick before the deadline did {out:?}");
                }
            }
            2 => {
                // A board sleeps until the deadline and ticks: the deadline must move on (no busy loop).
                if let Some(d) = s.deadline() {
                    now = now.max(d);
                    let out = s.tick(now);
                    check(&out, connected);
                    if let Some(next) = s.deadline() {
                        assert!(next > now, "deadline {next} not after the tick at {now}");
                    }
                }
            }
            3 => {
                let topic = String::from_utf8_lossy(input.bytes()).into_owned();
                let payload = input.bytes();
                let out = s.publish(&topic, payload, op & 0x80 != 0, now);
                check(&out, connected);
                assert!(s.unacknowledged() <= max_inflight.max(1));
            }
            4 => {
                let filter = String::from_utf8_lossy(input.bytes()).into_owned();
                let out = s.subscribe(&filter, now);
                check(&out, connected);
            }
            5 => s.closed(),
            6 => {
                let keepalive_s = u16::from(input.byte().unwrap_or(0) % 8) * 5;
                let connect = Connect {
                    client_id: "meter",
                    keepalive_s,
                    clean_session: false,
                    will: Some(Will {
                        topic: "meter/connection",
                        payload: b"offline",
                        qos: 0,
                        retain: true,
                    }),
                    username: (op & 0x80 != 0).then_some("user"),
                    password: (op & 0x40 != 0).then_some("secret"),
                };
                check_packets(&s.open(&connect, now));
            }
            _ => {
                let out = s.leave(now);
                check(&out, connected);
            }
        }
    }
});
