//! The MQTT codec against a real broker (the rig's embedded rumqttd, or mosquitto with MQTT_BROKER=mosquitto is not
//! needed here): CONNECT with a will, SUBSCRIBE, a QoS 1 round trip with PUBACKs both ways, PING, and the will
//! published when the connection drops without DISCONNECT.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use net_proto::mqtt::{self, Connect, Decoder, Packet, Will};

fn next(s: &mut TcpStream, d: &mut Decoder) -> Packet {
    let mut buf = [0u8; 1024];
    loop {
        if let Some(p) = d.next().expect("valid packet") {
            return p;
        }
        let n = s.read(&mut buf).expect("read from the broker");
        assert!(n > 0, "the broker closed the connection");
        d.feed(&buf[..n]);
    }
}

fn client(addr: &str, id: &str, will: Option<Will<'_>>) -> (TcpStream, Decoder) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut d = Decoder::new(64 * 1024);
    s.write_all(&mqtt::connect(&Connect {
        client_id: id,
        keepalive_s: 30,
        clean_session: true,
        will,
        username: None,
        password: None,
    }))
    .unwrap();
    assert_eq!(
        next(&mut s, &mut d),
        Packet::ConnAck {
            session_present: false,
            code: 0
        }
    );
    (s, d)
}

#[test]
fn round_trips_through_a_real_broker() {
    let target =
        harness::broker::start_embedded("127.0.0.1:0".parse().unwrap()).expect("embedded broker");
    let addr = format!("{}:{}", target.host, target.port);
    let (mut a, mut da) = client(&addr, "codec-a", None);
    a.write_all(&mqtt::subscribe(1, "codec/#", 1)).unwrap();
    assert_eq!(
        next(&mut a, &mut da),
        Packet::SubAck {
            packet_id: 1,
            codes: vec![1]
        }
    );

    a.write_all(&mqtt::publish("codec/x", b"hello", 1, false, 7))
        .unwrap();
    let mut got_ack = false;
    let mut got_msg = None;
    while !(got_ack && got_msg.is_some()) {
        match next(&mut a, &mut da) {
            Packet::PubAck(7) => got_ack = true,
            Packet::Publish(p) => {
                a.write_all(&mqtt::puback(p.packet_id.expect("QoS 1 has an id")))
                    .unwrap();
                got_msg = Some(p);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let msg = got_msg.unwrap();
    assert_eq!(
        (msg.topic.as_str(), msg.payload.as_slice(), msg.qos),
        ("codec/x", &b"hello"[..], 1)
    );

    a.write_all(&mqtt::pingreq()).unwrap();
    assert_eq!(next(&mut a, &mut da), Packet::PingResp);

    // The will goes out when a client vanishes without DISCONNECT.
    let (b, _) = client(
        &addr,
        "codec-b",
        Some(Will {
            topic: "codec/b/connection",
            payload: b"offline",
            qos: 1,
            retain: false,
        }),
    );
    drop(b);
    loop {
        if let Packet::Publish(p) = next(&mut a, &mut da) {
            if p.topic == "codec/b/connection" {
                assert_eq!(p.payload, b"offline");
                break;
            }
        }
    }
    a.write_all(&mqtt::disconnect()).unwrap();
}
