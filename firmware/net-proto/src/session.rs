//! The client side of an MQTT 3.1.1 connection, sans-IO: bytes and commands in, bytes to send and what happened out,
//! time passed in as milliseconds. A board opens a socket, sends what [`Session::open`] returns, then feeds it what
//! the socket reads and what the device wants, sends every [`Output::Send`] in order, and calls [`Session::tick`] at
//! [`Session::deadline`]. QoS 1 publishes outlive connections (resent with DUP after the next CONNACK, as a
//! persistent session promises); keepalive is kept by the client's own sending, whatever the broker sends.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::mqtt::{self, Connect, Decoder, Outbox, Packet};

/// How long a broker has to answer CONNECT (shorter when the keepalive is shorter).
pub const CONNACK_TIMEOUT_MS: u64 = 10_000;
/// How long leaving waits for the broker to acknowledge what was published before it.
pub const LEAVE_TIMEOUT_MS: u64 = 2_000;
/// How long the broker may stay silent while a PUBACK or PINGRESP is due (at most the keepalive): after that the
/// connection is taken as dead (a half-open connection sends no reset; only silence tells).
pub const RESPONSE_TIMEOUT_MS: u64 = 10_000;

/// What the board has to do, or learns, after an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Bytes for the socket, in this order.
    Send(Vec<u8>),
    /// The broker accepted the connection; publishes it had not acknowledged were sent again.
    Connected { session_present: bool },
    /// An application message (a QoS 1 one is acknowledged in a `Send` before this).
    Message { topic: String, payload: Vec<u8> },
    /// An application message longer than the session takes: skipped (and acknowledged); the connection stays.
    TooLarge { topic: String, size: usize },
    /// The connection is unusable: close the socket, reconnect later. Unacknowledged publishes are kept.
    Lost(String),
    /// Worth a log line; the connection goes on.
    Warning(String),
    /// Leaving is done (after a DISCONNECT in a `Send` before this, or, when the broker did not acknowledge in
    /// time, without one, so the broker publishes the will): close the socket, do not reconnect.
    Left,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    AwaitingConnAck { since_ms: u64 },
    Connected,
}

/// One client's session with a broker, across the TCP connections it takes.
#[derive(Debug)]
pub struct Session {
    state: State,
    decoder: Decoder,
    max_packet: usize,
    outbox: Outbox,
    keepalive_ms: u64,
    last_sent_ms: u64,
    ping_sent_ms: Option<u64>,
    /// Since when the broker owes an answer (a PUBACK or PINGRESP) and has sent nothing.
    waiting_since_ms: Option<u64>,
    subscription_id: u16,
    leaving_since_ms: Option<u64>,
}

impl Session {
    /// `max_inflight` unacknowledged publishes are kept (beyond, the oldest is given up); packets from the broker
    /// longer than `max_packet` bytes end the connection.
    pub fn new(max_inflight: usize, max_packet: usize) -> Session {
        Session {
            state: State::Closed,
            decoder: Decoder::new(max_packet),
            max_packet,
            outbox: Outbox::new(max_inflight),
            keepalive_ms: 0,
            last_sent_ms: 0,
            ping_sent_ms: None,
            waiting_since_ms: None,
            subscription_id: 0,
            leaving_since_ms: None,
        }
    }

    /// A new connection: the CONNECT packet to send first. Anything left of the previous connection is dropped but
    /// the unacknowledged publishes.
    pub fn open(&mut self, connect: &Connect<'_>, now_ms: u64) -> Vec<u8> {
        self.decoder = Decoder::new(self.max_packet);
        self.keepalive_ms = u64::from(connect.keepalive_s) * 1000;
        self.state = State::AwaitingConnAck { since_ms: now_ms };
        self.last_sent_ms = now_ms;
        self.ping_sent_ms = None;
        self.waiting_since_ms = None;
        self.leaving_since_ms = None;
        mqtt::connect(connect)
    }

    /// The socket is gone (closed, reset, timed out): nothing more is sent on it.
    pub fn closed(&mut self) {
        self.state = State::Closed;
        self.ping_sent_ms = None;
        self.waiting_since_ms = None;
    }

    /// Leaves in order: once the broker has acknowledged every publish (a retained `offline` among them), the
    /// DISCONNECT (the broker then drops the will), then [`Output::Left`]. A broker that does not acknowledge within
    /// [`LEAVE_TIMEOUT_MS`] is left without DISCONNECT, so its will tells the truth. What is still unacknowledged
    /// then is given up: the session is over.
    pub fn leave(&mut self, now_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        if self.state == State::Closed {
            self.left(&mut out);
        } else if self.leaving_since_ms.is_none() {
            self.leaving_since_ms = Some(now_ms);
            self.leave_when_acknowledged(now_ms, &mut out);
        }
        out
    }

    fn leave_when_acknowledged(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        if self.leaving_since_ms.is_some()
            && self.state == State::Connected
            && self.outbox.is_empty()
        {
            self.sent(mqtt::disconnect(), now_ms, out);
            self.left(out);
        }
    }

    fn left(&mut self, out: &mut Vec<Output>) {
        self.closed();
        self.leaving_since_ms = None;
        self.outbox.clear();
        out.push(Output::Left);
    }

    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Publishes kept until the broker acknowledges them.
    pub fn unacknowledged(&self) -> usize {
        self.outbox.len()
    }

    /// Whether [`Session::publish`] can take another message without giving one up.
    pub fn has_room(&self) -> bool {
        self.outbox.has_room()
    }

    /// Bytes read from the socket.
    pub fn received(&mut self, bytes: &[u8], now_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        if self.state == State::Closed {
            return out;
        }
        self.decoder.feed(bytes);
        loop {
            match self.decoder.next() {
                Ok(Some(packet)) => {
                    self.packet(packet, now_ms, &mut out);
                    if self.state == State::Closed {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.lost(format!("bad packet from the broker: {e}"), &mut out);
                    break;
                }
            }
        }
        // The broker is alive: what it still owes is owed from now.
        if self.state == State::Connected {
            self.waiting_since_ms = self.owed().then_some(now_ms);
        }
        out
    }

    /// Whether the broker owes an answer: an unacknowledged publish or an unanswered ping.
    fn owed(&self) -> bool {
        !self.outbox.is_empty() || self.ping_sent_ms.is_some()
    }

    /// How long the broker may stay silent while it owes an answer.
    fn response_timeout_ms(&self) -> u64 {
        match self.keepalive_ms {
            0 => RESPONSE_TIMEOUT_MS,
            k => k.min(RESPONSE_TIMEOUT_MS),
        }
    }

    fn packet(&mut self, packet: Packet, now_ms: u64, out: &mut Vec<Output>) {
        match (packet, self.state) {
            (
                Packet::ConnAck {
                    code: 0,
                    session_present,
                },
                State::AwaitingConnAck { .. },
            ) => {
                self.state = State::Connected;
                // A connection being left is not the device's connection any more.
                if self.leaving_since_ms.is_none() {
                    out.push(Output::Connected { session_present });
                }
                let resend: Vec<u8> = self.outbox.resend().flatten().collect();
                if !resend.is_empty() {
                    self.sent(resend, now_ms, out);
                }
                self.leave_when_acknowledged(now_ms, out);
            }
            (Packet::ConnAck { code, .. }, State::AwaitingConnAck { .. }) => self.lost(
                format!(
                    "the broker refused the connection: CONNACK {code} ({})",
                    refusal(code)
                ),
                out,
            ),
            (Packet::ConnAck { .. }, _) => self.lost("a second CONNACK".into(), out),
            (_, State::AwaitingConnAck { .. }) => {
                self.lost("the broker sent a packet before CONNACK".into(), out)
            }
            (Packet::PubAck(id), _) => {
                self.outbox.acked(id);
                self.leave_when_acknowledged(now_ms, out);
            }
            (Packet::PingResp, _) => self.ping_sent_ms = None,
            (Packet::Publish(p), _) if p.qos > 1 => self.lost(
                format!(
                    "a QoS {} PUBLISH on {} (subscribed at QoS 1)",
                    p.qos, p.topic
                ),
                out,
            ),
            (Packet::Publish(p), _) => {
                if let Some(id) = p.packet_id {
                    self.sent(mqtt::puback(id), now_ms, out);
                }
                out.push(Output::Message {
                    topic: p.topic,
                    payload: p.payload,
                });
            }
            (Packet::Oversized { qos, .. }, _) if qos > 1 => {
                self.lost(format!("a QoS {qos} PUBLISH (subscribed at QoS 1)"), out)
            }
            (
                Packet::Oversized {
                    topic,
                    size,
                    packet_id,
                    ..
                },
                _,
            ) => {
                // Acknowledged: a QoS 1 message refused for good must not come back on every reconnect.
                if let Some(id) = packet_id {
                    self.sent(mqtt::puback(id), now_ms, out);
                }
                out.push(Output::TooLarge { topic, size });
            }
            (Packet::SubAck { packet_id, codes }, _) => {
                if codes.contains(&0x80) {
                    out.push(Output::Warning(format!(
                        "the broker refused subscription {packet_id}"
                    )));
                }
            }
            (Packet::Other(kind), _) => self.lost(
                format!("unexpected packet type {kind} from the broker"),
                out,
            ),
        }
    }

    /// A QoS 1 publish: sent now when connected, else after the next CONNACK; kept until acknowledged.
    pub fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        retain: bool,
        now_ms: u64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        let (packet, dropped) = self.outbox.publish(topic, payload, retain);
        if let Some(id) = dropped {
            out.push(Output::Warning(format!(
                "too many unacknowledged publishes: message {id} is given up"
            )));
        }
        if self.state == State::Connected {
            self.sent(packet, now_ms, &mut out);
        }
        out
    }

    /// Subscribes at QoS 1 when connected. Not queued otherwise: a device subscribes after every `Connected`.
    pub fn subscribe(&mut self, filter: &str, now_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        if self.state == State::Connected {
            self.subscription_id = self.subscription_id.wrapping_add(1).max(1);
            self.sent(
                mqtt::subscribe(self.subscription_id, filter, 1),
                now_ms,
                &mut out,
            );
        }
        out
    }

    /// Time has passed: a PINGREQ when the client has been quiet for half the keepalive, or the connection is lost
    /// when the broker leaves CONNECT or PINGREQ unanswered.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        if let Some(since) = self.leaving_since_ms {
            if now_ms.saturating_sub(since) >= LEAVE_TIMEOUT_MS {
                self.left(&mut out);
                return out;
            }
        }
        match self.state {
            State::Closed => {}
            State::AwaitingConnAck { since_ms } => {
                let limit = self.connack_timeout_ms();
                if now_ms.saturating_sub(since_ms) >= limit {
                    self.lost(format!("no CONNACK within {} s", limit / 1000), &mut out);
                }
            }
            State::Connected => {
                if let Some(since) = self.waiting_since_ms {
                    let limit = self.response_timeout_ms();
                    if now_ms.saturating_sub(since) >= limit {
                        let what = if self.ping_sent_ms.is_some() {
                            "PINGRESP"
                        } else {
                            "PUBACK"
                        };
                        self.lost(
                            format!(
                                "no {what} within {} s: the broker sent nothing (a dead connection)",
                                limit / 1000
                            ),
                            &mut out,
                        );
                        return out;
                    }
                }
                if self.keepalive_ms > 0
                    && self.ping_sent_ms.is_none()
                    && now_ms.saturating_sub(self.last_sent_ms) >= self.keepalive_ms / 2
                {
                    self.ping_sent_ms = Some(now_ms);
                    self.sent(mqtt::pingreq(), now_ms, &mut out);
                }
            }
        }
        out
    }

    /// When [`Session::tick`] has something to do next (milliseconds, same clock), if ever.
    pub fn deadline(&self) -> Option<u64> {
        let leave_by = self.leaving_since_ms.map(|since| since + LEAVE_TIMEOUT_MS);
        let next = self.protocol_deadline();
        match (leave_by, next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn protocol_deadline(&self) -> Option<u64> {
        match self.state {
            State::Closed => None,
            State::AwaitingConnAck { since_ms } => Some(since_ms + self.connack_timeout_ms()),
            State::Connected => {
                let answer_by = self
                    .waiting_since_ms
                    .map(|since| since + self.response_timeout_ms());
                let ping_at = (self.keepalive_ms > 0 && self.ping_sent_ms.is_none())
                    .then(|| self.last_sent_ms + self.keepalive_ms / 2);
                match (answer_by, ping_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
        }
    }

    fn connack_timeout_ms(&self) -> u64 {
        match self.keepalive_ms {
            0 => CONNACK_TIMEOUT_MS,
            k => k.min(CONNACK_TIMEOUT_MS),
        }
    }

    fn sent(&mut self, bytes: Vec<u8>, now_ms: u64, out: &mut Vec<Output>) {
        self.last_sent_ms = now_ms;
        if self.waiting_since_ms.is_none() && self.state == State::Connected && self.owed() {
            self.waiting_since_ms = Some(now_ms);
        }
        out.push(Output::Send(bytes));
    }

    fn lost(&mut self, why: String, out: &mut Vec<Output>) {
        // Lost while leaving is left: without DISCONNECT, so the broker's will says what happened.
        if self.leaving_since_ms.is_some() {
            self.left(out);
        } else {
            self.closed();
            out.push(Output::Lost(why));
        }
    }

    /// True between [`Session::leave`] and [`Output::Left`]: a board sends nothing new on this connection.
    pub fn is_leaving(&self) -> bool {
        self.leaving_since_ms.is_some()
    }
}

/// CONNACK return codes of MQTT 3.1.1 (3.2.2.3).
fn refusal(code: u8) -> &'static str {
    match code {
        1 => "unacceptable protocol version",
        2 => "client identifier rejected",
        3 => "server unavailable",
        4 => "bad user name or password",
        5 => "not authorized",
        _ => "unknown code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::Will;
    use alloc::vec;

    const CONNACK: [u8; 4] = [0x20, 2, 0, 0];
    const PINGRESP: [u8; 2] = [0xD0, 0];

    fn connect(keepalive_s: u16) -> Connect<'static> {
        Connect {
            client_id: "meter",
            keepalive_s,
            clean_session: false,
            will: Some(Will {
                topic: "meter/connection",
                payload: b"offline",
                qos: 1,
                retain: true,
            }),
            username: None,
            password: None,
        }
    }

    fn sends(out: &[Output]) -> Vec<Vec<u8>> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send(b) => Some(b.clone()),
                _ => None,
            })
            .collect()
    }

    fn connected(keepalive_s: u16) -> Session {
        let mut s = Session::new(8, 4096);
        let _ = s.open(&connect(keepalive_s), 0);
        let out = s.received(&CONNACK, 0);
        assert_eq!(
            out,
            vec![Output::Connected {
                session_present: false
            }]
        );
        s
    }

    #[test]
    fn publishes_wait_for_the_connack_and_are_resent_with_dup_after_a_reconnect() {
        let mut s = Session::new(8, 4096);
        let first = s.open(&connect(30), 0);
        assert_eq!(first[0], 0x10, "CONNECT first");
        assert!(
            sends(&s.publish("t/a", b"1", true, 5)).is_empty(),
            "not before CONNACK"
        );
        let out = s.received(&CONNACK, 10);
        assert_eq!(
            out[0],
            Output::Connected {
                session_present: false
            }
        );
        assert_eq!(
            sends(&out),
            vec![mqtt::with_dup(&mqtt::publish("t/a", b"1", 1, true, 1))]
        );

        // Lost before the PUBACK: it goes again, with DUP, on the next connection.
        s.closed();
        assert!(sends(&s.publish("t/b", b"2", false, 20)).is_empty());
        let _ = s.open(&connect(30), 30);
        let out = s.received(&[0x20, 2, 1, 0], 40);
        assert_eq!(
            out[0],
            Output::Connected {
                session_present: true
            }
        );
        let resent = sends(&out).concat();
        let expected = [
            mqtt::with_dup(&mqtt::publish("t/a", b"1", 1, true, 1)),
            mqtt::with_dup(&mqtt::publish("t/b", b"2", 1, false, 2)),
        ]
        .concat();
        assert_eq!(resent, expected);

        let _ = s.received(&[0x40, 2, 0, 1, 0x40, 2, 0, 2], 50);
        assert_eq!(s.unacknowledged(), 0);
    }

    #[test]
    fn keepalive_pings_even_while_the_broker_keeps_sending() {
        let mut s = connected(10);
        assert_eq!(s.deadline(), Some(5_000));
        // The broker sends every second; the client itself sends nothing.
        let message = mqtt::publish("meter/ctrl", b"x", 0, false, 0);
        for t in 1..5 {
            assert!(sends(&s.received(&message, t * 1000)).is_empty());
            assert!(s.tick(t * 1000).is_empty());
        }
        let out = s.tick(5_000);
        assert_eq!(sends(&out), vec![mqtt::pingreq()]);
        assert_eq!(
            s.deadline(),
            Some(15_000),
            "waits a keepalive for the PINGRESP"
        );
        assert!(s.tick(9_000).is_empty(), "one PINGREQ at a time");
        let _ = s.received(&PINGRESP, 9_500);
        assert_eq!(
            s.deadline(),
            Some(10_000),
            "next ping half a keepalive after the last send"
        );
    }

    #[test]
    fn sending_counts_as_keepalive() {
        let mut s = connected(10);
        let _ = s.publish("t", b"v", false, 4_000);
        assert!(s.tick(5_000).is_empty());
        assert_eq!(s.deadline(), Some(9_000));
    }

    #[test]
    fn an_unanswered_ping_loses_the_connection() {
        let mut s = connected(4);
        assert_eq!(sends(&s.tick(2_000)), vec![mqtt::pingreq()]);
        let out = s.tick(6_000);
        assert!(
            matches!(&out[..], [Output::Lost(why)] if why.contains("PINGRESP")),
            "{out:?}"
        );
        assert!(!s.is_connected());
        assert_eq!(s.deadline(), None);
    }

    #[test]
    fn an_unanswered_connect_and_a_refusal_lose_the_connection() {
        let mut s = Session::new(8, 4096);
        let _ = s.open(&connect(30), 1_000);
        assert_eq!(s.deadline(), Some(1_000 + CONNACK_TIMEOUT_MS));
        assert!(s.tick(CONNACK_TIMEOUT_MS).is_empty());
        assert!(
            matches!(&s.tick(1_000 + CONNACK_TIMEOUT_MS)[..], [Output::Lost(why)] if why.contains("no CONNACK"))
        );
        let _ = s.open(&connect(3), 0);
        assert_eq!(s.deadline(), Some(3_000), "a short keepalive waits less");

        let _ = s.open(&connect(5), 0);
        assert_eq!(
            s.deadline(),
            Some(5_000),
            "keepalive 5 s: CONNACK within 5 s"
        );
        let out = s.received(&[0x20, 2, 0, 5], 10);
        assert!(
            matches!(&out[..], [Output::Lost(why)] if why.contains("CONNACK 5 (not authorized)")),
            "{out:?}"
        );
    }

    #[test]
    fn a_broker_silent_while_it_owes_a_puback_loses_the_connection() {
        let mut s = connected(120);
        let _ = s.publish("t", b"1", false, 1_000);
        assert_eq!(s.deadline(), Some(1_000 + RESPONSE_TIMEOUT_MS));
        // Anything the broker sends shows it is alive: the wait starts again.
        let _ = s.received(&PINGRESP, 5_000);
        assert_eq!(s.deadline(), Some(5_000 + RESPONSE_TIMEOUT_MS));
        assert!(s.tick(5_000 + RESPONSE_TIMEOUT_MS - 1).is_empty());
        let out = s.tick(5_000 + RESPONSE_TIMEOUT_MS);
        assert!(
            matches!(&out[..], [Output::Lost(why)] if why.contains("no PUBACK")),
            "{out:?}"
        );
        assert_eq!(s.unacknowledged(), 1, "kept for the next connection");
    }

    #[test]
    fn an_acknowledged_session_waits_for_nothing() {
        let mut s = connected(120);
        let _ = s.publish("t", b"1", false, 1_000);
        let _ = s.received(&[0x40, 2, 0, 1], 1_100);
        assert_eq!(s.deadline(), Some(1_000 + 60_000), "only the next ping");
    }

    #[test]
    fn an_oversized_message_is_acknowledged_and_reported_and_the_connection_stays() {
        let mut s = Session::new(8, 1024);
        let _ = s.open(&connect(30), 0);
        let _ = s.received(&CONNACK, 0);
        let big = mqtt::publish("meter/ctrl/set_fallbackvalue", &[b'x'; 20_000], 1, false, 9);
        let mut out = Vec::new();
        for piece in big.chunks(1000) {
            out.extend(s.received(piece, 1));
        }
        assert_eq!(
            out,
            vec![
                Output::Send(mqtt::puback(9)),
                Output::TooLarge {
                    topic: "meter/ctrl/set_fallbackvalue".into(),
                    size: big.len() - 4
                }
            ]
        );
        assert!(s.is_connected());
    }

    #[test]
    fn incoming_qos1_is_acknowledged_before_it_is_delivered() {
        let mut s = connected(30);
        let mut bytes = mqtt::publish("meter/ctrl/cycle_start", b"{}", 1, false, 7);
        let split = bytes.split_off(3);
        assert!(s.received(&bytes, 1).is_empty(), "half a packet");
        let out = s.received(&split, 2);
        assert_eq!(
            out,
            vec![
                Output::Send(mqtt::puback(7)),
                Output::Message {
                    topic: "meter/ctrl/cycle_start".into(),
                    payload: b"{}".to_vec()
                }
            ]
        );
    }

    #[test]
    fn protocol_violations_lose_the_connection() {
        let mut s = Session::new(8, 4096);
        let _ = s.open(&connect(30), 0);
        assert!(
            matches!(&s.received(&PINGRESP, 1)[..], [Output::Lost(why)] if why.contains("before CONNACK"))
        );

        let mut s = connected(30);
        assert!(matches!(&s.received(&CONNACK, 1)[..], [Output::Lost(_)]));

        let mut s = connected(30);
        let qos2 = mqtt::publish("t", b"x", 2, false, 3);
        assert!(matches!(&s.received(&qos2, 1)[..], [Output::Lost(why)] if why.contains("QoS 2")));

        let mut s = connected(30);
        let out = s.received(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], 1);
        assert!(
            matches!(&out[..], [Output::Lost(why)] if why.contains("bad packet")),
            "{out:?}"
        );
        assert!(s.received(&CONNACK, 2).is_empty(), "nothing after the loss");
    }

    #[test]
    fn subscriptions_are_sent_only_when_connected_and_refusals_are_reported() {
        let mut s = Session::new(8, 4096);
        assert!(s.subscribe("meter/ctrl/#", 0).is_empty());
        let _ = s.open(&connect(30), 0);
        assert!(s.subscribe("meter/ctrl/#", 0).is_empty());
        let _ = s.received(&CONNACK, 1);
        assert_eq!(
            sends(&s.subscribe("meter/ctrl/#", 2)),
            vec![mqtt::subscribe(1, "meter/ctrl/#", 1)]
        );
        let out = s.received(&[0x90, 3, 0, 1, 0x80], 3);
        assert!(matches!(&out[..], [Output::Warning(w)] if w.contains("refused subscription 1")));
        assert!(s.is_connected());
    }

    #[test]
    fn a_full_outbox_gives_up_a_superseded_or_unretained_message_first_and_says_so() {
        let mut s = Session::new(3, 4096);
        let _ = s.publish("state", b"1", true, 0);
        let _ = s.publish("status", b"a", false, 0);
        let _ = s.publish("info", b"x", true, 0);
        assert!(!s.has_room());
        // A newer value of a kept topic supersedes it.
        let out = s.publish("state", b"2", true, 0);
        assert!(matches!(&out[..], [Output::Warning(w)] if w.contains("message 1 is given up")));
        // Otherwise the oldest message that is not retained goes.
        let out = s.publish("other", b"y", true, 0);
        assert!(matches!(&out[..], [Output::Warning(w)] if w.contains("message 2 is given up")));
        assert_eq!(s.unacknowledged(), 3);
        let _ = s.open(&connect(30), 1);
        let resent: Vec<Vec<u8>> = sends(&s.received(&CONNACK, 2));
        assert_eq!(
            resent.concat(),
            [
                mqtt::with_dup(&mqtt::publish("info", b"x", 1, true, 3)),
                mqtt::with_dup(&mqtt::publish("state", b"2", 1, true, 4)),
                mqtt::with_dup(&mqtt::publish("other", b"y", 1, true, 5)),
            ]
            .concat(),
            "the retained values that matter survive"
        );
    }

    #[test]
    fn leaving_waits_for_the_acknowledgements_then_disconnects() {
        let mut s = connected(30);
        let offline = mqtt::publish("meter/connection", b"offline", 1, true, 1);
        assert_eq!(
            sends(&s.publish("meter/connection", b"offline", true, 10)),
            vec![offline]
        );
        assert!(s.leave(11).is_empty(), "not before the PUBACK");
        assert!(s.is_leaving());
        assert_eq!(s.deadline(), Some(11 + LEAVE_TIMEOUT_MS));
        let out = s.received(&[0x40, 2, 0, 1], 20);
        assert_eq!(out, vec![Output::Send(mqtt::disconnect()), Output::Left]);
        assert!(!s.is_connected() && !s.is_leaving());
        assert_eq!(s.deadline(), None);
    }

    #[test]
    fn leaving_an_idle_or_closed_session_is_immediate() {
        let mut s = connected(30);
        assert_eq!(
            s.leave(5),
            vec![Output::Send(mqtt::disconnect()), Output::Left]
        );
        assert_eq!(s.leave(6), vec![Output::Left], "closed: nothing to send");
    }

    #[test]
    fn leaving_before_the_connack_sends_what_was_queued_first() {
        let mut s = Session::new(8, 4096);
        let _ = s.open(&connect(30), 0);
        assert!(s.publish("t", b"offline", true, 1).is_empty());
        assert!(s.leave(2).is_empty());
        let out = s.received(&CONNACK, 3);
        assert_eq!(
            out,
            vec![Output::Send(mqtt::with_dup(&mqtt::publish(
                "t", b"offline", 1, true, 1
            )))],
            "no Connected for a connection being left"
        );
        let out = s.received(&[0x40, 2, 0, 1], 4);
        assert_eq!(out, vec![Output::Send(mqtt::disconnect()), Output::Left]);
    }

    #[test]
    fn a_connection_lost_while_leaving_has_left() {
        let mut s = connected(30);
        let _ = s.publish("t", b"offline", true, 0);
        assert!(s.leave(1).is_empty());
        assert_eq!(
            s.received(&CONNACK, 2),
            vec![Output::Left],
            "a protocol error ends the leave"
        );
        assert!(!s.is_leaving());
    }

    #[test]
    fn a_broker_that_does_not_acknowledge_is_left_without_disconnect() {
        let mut s = connected(30);
        let _ = s.publish("t", b"offline", true, 0);
        assert!(s.leave(100).is_empty());
        assert!(s.tick(100 + LEAVE_TIMEOUT_MS - 1).is_empty());
        assert_eq!(
            s.tick(100 + LEAVE_TIMEOUT_MS),
            vec![Output::Left],
            "no DISCONNECT: the will goes out"
        );
        assert_eq!(s.unacknowledged(), 0, "the session is over");
    }
}
