//! MQTT 3.1.1 (protocol level 4) packets a device client needs: CONNECT with a will, SUBSCRIBE, PUBLISH at QoS 0/1
//! both ways, PUBACK, PINGREQ, DISCONNECT; an incremental decoder for what the broker sends.

use alloc::string::String;
use alloc::vec::Vec;

/// A packet from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    ConnAck {
        session_present: bool,
        code: u8,
    },
    Publish(Publish),
    PubAck(u16),
    SubAck {
        packet_id: u16,
        codes: Vec<u8>,
    },
    PingResp,
    /// A PUBLISH longer than the client takes: its body was read and discarded; what is needed to acknowledge it
    /// and to say so is kept.
    Oversized {
        topic: String,
        /// The packet's remaining length.
        size: usize,
        qos: u8,
        packet_id: Option<u16>,
    },
    /// A type a client does not expect (the packet type nibble).
    Other(u8),
}

/// An application message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    pub packet_id: Option<u16>,
}

/// A broken packet from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The remaining-length field runs over 4 bytes.
    BadLength,
    /// Longer than the client accepts.
    TooLarge(usize),
    /// A field is cut short or malformed.
    Malformed(&'static str),
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::BadLength => write!(f, "bad remaining length"),
            DecodeError::TooLarge(n) => write!(f, "packet of {n} bytes is too large"),
            DecodeError::Malformed(what) => write!(f, "malformed packet: {what}"),
        }
    }
}

/// The will message of CONNECT.
#[derive(Debug, Clone, Copy)]
pub struct Will<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub qos: u8,
    pub retain: bool,
}

/// CONNECT fields.
#[derive(Debug, Clone, Copy)]
pub struct Connect<'a> {
    pub client_id: &'a str,
    pub keepalive_s: u16,
    pub clean_session: bool,
    pub will: Option<Will<'a>>,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
}

impl<'a> Connect<'a> {
    /// What a meter device sends: a persistent session (QoS 1 messages wait for it while it is away; the reference
    /// uses a clean one, decision 45) and a retained will at QoS 0, as the reference sets it (`interface_mqtt.cpp`
    /// 310-312).
    pub fn persistent(
        client_id: &'a str,
        keepalive_s: u16,
        will_topic: &'a str,
        will_payload: &'a [u8],
        username: Option<&'a str>,
        password: Option<&'a str>,
    ) -> Connect<'a> {
        Connect {
            client_id,
            keepalive_s,
            clean_session: false,
            will: Some(Will {
                topic: will_topic,
                payload: will_payload,
                qos: 0,
                retain: true,
            }),
            username,
            password,
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn frame(first: u8, body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(first);
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    out.extend(body);
    out
}

pub fn connect(c: &Connect<'_>) -> Vec<u8> {
    let mut body = Vec::new();
    put_str(&mut body, b"MQTT");
    body.push(4);
    let mut flags = 0u8;
    if c.clean_session {
        flags |= 0x02;
    }
    if let Some(w) = &c.will {
        flags |= 0x04 | ((w.qos & 3) << 3);
        if w.retain {
            flags |= 0x20;
        }
    }
    if c.password.is_some() {
        flags |= 0x40;
    }
    if c.username.is_some() {
        flags |= 0x80;
    }
    body.push(flags);
    body.extend_from_slice(&c.keepalive_s.to_be_bytes());
    put_str(&mut body, c.client_id.as_bytes());
    if let Some(w) = &c.will {
        put_str(&mut body, w.topic.as_bytes());
        put_str(&mut body, w.payload);
    }
    if let Some(u) = c.username {
        put_str(&mut body, u.as_bytes());
    }
    if let Some(p) = c.password {
        put_str(&mut body, p.as_bytes());
    }
    frame(0x10, body)
}

/// PUBLISH; `packet_id` is required for QoS 1.
pub fn publish(topic: &str, payload: &[u8], qos: u8, retain: bool, packet_id: u16) -> Vec<u8> {
    let mut body = Vec::with_capacity(topic.len() + payload.len() + 4);
    put_str(&mut body, topic.as_bytes());
    if qos > 0 {
        body.extend_from_slice(&packet_id.to_be_bytes());
    }
    body.extend_from_slice(payload);
    frame(0x30 | ((qos & 3) << 1) | u8::from(retain), body)
}

/// A PUBLISH sent again after a reconnect: the same packet with the DUP flag.
pub fn with_dup(packet: &[u8]) -> Vec<u8> {
    let mut again = packet.to_vec();
    if let Some(first) = again.first_mut() {
        if *first >> 4 == 3 {
            *first |= 0x08;
        }
    }
    again
}

pub fn subscribe(packet_id: u16, filter: &str, qos: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&packet_id.to_be_bytes());
    put_str(&mut body, filter.as_bytes());
    body.push(qos & 3);
    frame(0x82, body)
}

pub fn puback(packet_id: u16) -> Vec<u8> {
    frame(0x40, packet_id.to_be_bytes().to_vec())
}

pub fn pingreq() -> Vec<u8> {
    frame(0xC0, Vec::new())
}

pub fn disconnect() -> Vec<u8> {
    frame(0xE0, Vec::new())
}

/// QoS 1 publishes a client keeps until the broker acknowledges them, resent with DUP after a reconnect (what a
/// persistent session promises). Bounded: beyond `max` the oldest is given up.
#[derive(Debug)]
pub struct Outbox {
    packets: alloc::collections::VecDeque<Kept>,
    next_id: u16,
    max: usize,
}

/// A publish kept until acknowledged.
#[derive(Debug)]
struct Kept {
    id: u16,
    topic: String,
    retain: bool,
    packet: Vec<u8>,
}

impl Outbox {
    pub fn new(max: usize) -> Outbox {
        Outbox {
            packets: alloc::collections::VecDeque::new(),
            next_id: 0,
            max: max.max(1),
        }
    }

    /// Whether another publish fits without giving one up.
    pub fn has_room(&self) -> bool {
        self.packets.len() < self.max
    }

    /// A QoS 1 PUBLISH with the next packet id (never 0), kept until acknowledged. Returns the packet and the id
    /// of a message given up to make room, if any: an older one on the same topic (this one supersedes it, as a
    /// retained value would), else the oldest that is not retained, else the oldest.
    pub fn publish(&mut self, topic: &str, payload: &[u8], retain: bool) -> (Vec<u8>, Option<u16>) {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let packet = publish(topic, payload, 1, retain, self.next_id);
        let dropped = if self.packets.len() >= self.max {
            let victim = self
                .packets
                .iter()
                .position(|k| k.topic == topic)
                .or_else(|| self.packets.iter().position(|k| !k.retain))
                .unwrap_or(0);
            self.packets.remove(victim).map(|k| k.id)
        } else {
            None
        };
        self.packets.push_back(Kept {
            id: self.next_id,
            topic: String::from(topic),
            retain,
            packet: packet.clone(),
        });
        (packet, dropped)
    }

    /// The broker's PUBACK.
    pub fn acked(&mut self, packet_id: u16) {
        self.packets.retain(|k| k.id != packet_id);
    }

    /// What to send again on a new connection, oldest first, flagged DUP.
    pub fn resend(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.packets.iter().map(|k| with_dup(&k.packet))
    }

    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Gives up every kept publish (the session is over).
    pub fn clear(&mut self) {
        self.packets.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }
}

/// Reassembles packets from TCP reads.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    max_packet: usize,
    skipping: Option<Skip>,
}

/// An oversized PUBLISH being read past: its fixed header, the start of its body (topic and packet id), and how
/// many body bytes are still to come.
#[derive(Debug)]
struct Skip {
    first: u8,
    size: usize,
    left: usize,
    head: Vec<u8>,
}

/// Of an oversized PUBLISH, this much of the body is kept: the topic (the device's own topics are far shorter)
/// and the packet id.
const SKIP_HEAD: usize = 1024;

impl Decoder {
    pub fn new(max_packet: usize) -> Decoder {
        Decoder {
            buf: Vec::new(),
            max_packet,
            skipping: None,
        }
    }

    /// Adds bytes; call [`Decoder::next`] until it returns `Ok(None)`.
    pub fn feed(&mut self, bytes: &[u8]) {
        if let Some(skip) = self.skipping.as_mut() {
            // Bytes of the oversized packet are not held: only its head, the rest is counted off.
            let take = bytes.len().min(skip.left);
            let keep = take.min(SKIP_HEAD.saturating_sub(skip.head.len()));
            skip.head.extend_from_slice(&bytes[..keep]);
            skip.left -= take;
            self.buf.extend_from_slice(&bytes[take..]);
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The next complete packet, if there is one.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Packet>, DecodeError> {
        if let Some(skip) = self.skipping.take() {
            if skip.left > 0 {
                self.skipping = Some(skip);
                return Ok(None);
            }
            return oversized(&skip).map(Some);
        }
        let Some((len, header)) = remaining_length(&self.buf)? else {
            return Ok(None);
        };
        if len > self.max_packet {
            // Only an application message may be skipped; anything else that large is a broken broker.
            if self.buf[0] >> 4 != 3 {
                return Err(DecodeError::TooLarge(len));
            }
            let first = self.buf[0];
            let rest = self.buf.split_off(header);
            self.buf.clear();
            self.skipping = Some(Skip {
                first,
                size: len,
                left: len,
                head: Vec::new(),
            });
            self.feed(&rest);
            return self.next();
        }
        if self.buf.len() < header + len {
            return Ok(None);
        }
        let first = self.buf[0];
        let body: Vec<u8> = self.buf[header..header + len].to_vec();
        self.buf.drain(..header + len);
        decode(first, &body).map(Some)
    }
}

/// What is known of a skipped PUBLISH once all of it has gone by.
fn oversized(skip: &Skip) -> Result<Packet, DecodeError> {
    let qos = (skip.first >> 1) & 3;
    let head = &skip.head;
    let topic_len = usize::from(u16_at(head, 0)?);
    let topic = head.get(2..2 + topic_len).ok_or(DecodeError::Malformed(
        "topic of an oversized message is too long",
    ))?;
    let topic =
        core::str::from_utf8(topic).map_err(|_| DecodeError::Malformed("topic is not UTF-8"))?;
    let packet_id = if qos > 0 {
        Some(u16_at(head, 2 + topic_len)?)
    } else {
        None
    };
    Ok(Packet::Oversized {
        topic: String::from(topic),
        size: skip.size,
        qos,
        packet_id,
    })
}

fn remaining_length(buf: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut len = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        len += usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((len, 2 + i)));
        }
    }
    Err(DecodeError::BadLength)
}

fn u16_at(body: &[u8], at: usize) -> Result<u16, DecodeError> {
    body.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(DecodeError::Malformed("short packet"))
}

fn decode(first: u8, body: &[u8]) -> Result<Packet, DecodeError> {
    match first >> 4 {
        2 => Ok(Packet::ConnAck {
            session_present: body.first().is_some_and(|b| b & 1 == 1),
            code: *body.get(1).ok_or(DecodeError::Malformed("short CONNACK"))?,
        }),
        3 => {
            let qos = (first >> 1) & 3;
            let topic_len = usize::from(u16_at(body, 0)?);
            let topic = body
                .get(2..2 + topic_len)
                .ok_or(DecodeError::Malformed("topic runs past the packet"))?;
            let topic = core::str::from_utf8(topic)
                .map_err(|_| DecodeError::Malformed("topic is not UTF-8"))?;
            let mut at = 2 + topic_len;
            let packet_id = if qos > 0 {
                let id = u16_at(body, at)?;
                at += 2;
                Some(id)
            } else {
                None
            };
            Ok(Packet::Publish(Publish {
                topic: String::from(topic),
                payload: body[at..].to_vec(),
                qos,
                retain: first & 1 == 1,
                dup: first & 8 == 8,
                packet_id,
            }))
        }
        4 => Ok(Packet::PubAck(u16_at(body, 0)?)),
        9 => Ok(Packet::SubAck {
            packet_id: u16_at(body, 0)?,
            codes: body[2..].to_vec(),
        }),
        13 => Ok(Packet::PingResp),
        other => Ok(Packet::Other(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn connect_with_will_and_credentials_matches_the_spec_layout() {
        let bytes = connect(&Connect {
            client_id: "m1",
            keepalive_s: 60,
            clean_session: false,
            will: Some(Will {
                topic: "w/connection",
                payload: b"offline",
                qos: 1,
                retain: true,
            }),
            username: Some("u"),
            password: Some("p"),
        });
        assert_eq!(bytes[0], 0x10);
        assert_eq!(usize::from(bytes[1]), bytes.len() - 2);
        assert_eq!(&bytes[2..10], b"\x00\x04MQTT\x04\xEC"[..8].as_ref());
        // flags: user, password, will retain, will QoS 1, will flag; clean session off.
        assert_eq!(bytes[9], 0x80 | 0x40 | 0x20 | 0x08 | 0x04);
        assert_eq!(&bytes[10..12], &[0, 60]);
    }

    #[test]
    fn decodes_split_packets_and_long_lengths() {
        let big = vec![7u8; 300];
        let mut wire = publish("a/b", &big, 1, true, 0x1234);
        assert_eq!(
            &wire[1..3],
            &[0xB3, 0x02],
            "300+7 = 307 in two length bytes"
        );
        wire.extend(puback(9));
        wire.extend([0x90, 3, 0, 5, 1]);
        wire.extend([0xD0, 0]);
        let mut d = Decoder::new(4096);
        let mut got = vec![];
        for chunk in wire.chunks(5) {
            d.feed(chunk);
            while let Some(p) = d.next().unwrap() {
                got.push(p);
            }
        }
        assert_eq!(
            got[0],
            Packet::Publish(Publish {
                topic: "a/b".into(),
                payload: big,
                qos: 1,
                retain: true,
                dup: false,
                packet_id: Some(0x1234)
            })
        );
        assert_eq!(got[1], Packet::PubAck(9));
        assert_eq!(
            got[2],
            Packet::SubAck {
                packet_id: 5,
                codes: vec![1]
            }
        );
        assert_eq!(got[3], Packet::PingResp);
    }

    #[test]
    fn a_resent_publish_carries_dup_and_nothing_else_changes() {
        let first = publish("t", b"x", 1, true, 5);
        let again = with_dup(&first);
        assert_eq!(again[0], first[0] | 0x08);
        assert_eq!(again[1..], first[1..]);
        let mut d = Decoder::new(64);
        d.feed(&again);
        assert!(matches!(
            d.next(),
            Ok(Some(Packet::Publish(Publish {
                dup: true,
                packet_id: Some(5),
                ..
            })))
        ));
        assert_eq!(
            with_dup(&pingreq()),
            pingreq(),
            "only PUBLISH has a DUP flag"
        );
    }

    #[test]
    fn the_outbox_keeps_what_is_unacknowledged_and_resends_it_flagged() {
        let mut out = Outbox::new(2);
        let (p1, none) = out.publish("a", b"1", true);
        assert_eq!(none, None);
        let (_, _) = out.publish("b", b"2", false);
        out.acked(1);
        assert_eq!(out.len(), 1);
        let (_, dropped) = out.publish("c", b"3", false);
        assert_eq!(dropped, None, "two fit");
        let (_, dropped) = out.publish("d", b"4", false);
        assert_eq!(dropped, Some(2), "the oldest gives way");
        let again: Vec<Vec<u8>> = out.resend().collect();
        assert_eq!(again.len(), 2);
        let mut d = Decoder::new(64);
        for p in &again {
            d.feed(p);
        }
        let topics: Vec<(String, bool, Option<u16>)> =
            core::iter::from_fn(|| d.next().ok().flatten())
                .map(|p| match p {
                    Packet::Publish(p) => (p.topic, p.dup, p.packet_id),
                    other => panic!("{other:?}"),
                })
                .collect();
        assert_eq!(
            topics,
            alloc::vec![("c".into(), true, Some(3)), ("d".into(), true, Some(4))]
        );
        assert_eq!(p1[0] & 0x08, 0, "the first send is not DUP");
    }

    #[test]
    fn outbox_ids_skip_zero_when_they_wrap() {
        let mut out = Outbox::new(4);
        out.next_id = u16::MAX - 1;
        let ids: Vec<u16> = (0..3)
            .map(|_| {
                let (p, _) = out.publish("t", b"", false);
                u16::from_be_bytes([p[5], p[6]])
            })
            .collect();
        assert_eq!(ids, alloc::vec![u16::MAX, 1, 2]);
    }

    #[test]
    fn skips_an_oversized_publish_and_keeps_what_acknowledging_it_needs() {
        let big = publish("meter/ctrl", &[7; 5000], 1, false, 42);
        let after = publish("meter/next", b"ok", 0, false, 0);
        // Fed in small pieces, with the next packet right behind it.
        let mut d = Decoder::new(100);
        let stream: Vec<u8> = [big.clone(), after].concat();
        let mut packets = Vec::new();
        for piece in stream.chunks(7) {
            d.feed(piece);
            while let Some(p) = d.next().unwrap() {
                packets.push(p);
            }
            assert!(d.buf.len() <= 100 + 8, "never holds the big body");
        }
        assert_eq!(
            packets[0],
            Packet::Oversized {
                topic: "meter/ctrl".into(),
                size: big.len() - 3,
                qos: 1,
                packet_id: Some(42)
            }
        );
        assert!(matches!(&packets[1], Packet::Publish(p) if p.topic == "meter/next"));
        assert_eq!(packets.len(), 2);
    }

    #[test]
    fn refuses_oversized_packets_that_are_not_messages_and_malformed_ones() {
        let mut d = Decoder::new(100);
        d.feed(&subscribe(1, &"x".repeat(200), 1));
        assert_eq!(d.next(), Err(DecodeError::TooLarge(205)));
        let mut d = Decoder::new(100);
        d.feed(&[0x30, 5, 0, 9, b'a', b'b', b'c']);
        assert!(matches!(d.next(), Err(DecodeError::Malformed(_))));
        let mut d = Decoder::new(100);
        d.feed(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
        assert_eq!(d.next(), Err(DecodeError::BadLength));
    }
}
