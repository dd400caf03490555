//! The MQTT codec against a real broker (the rig's embedded rumqttd, or mosquitto with MQTT_BROKER=mosquitto is not
//! needed here): CONNECT with a will, SUBSCRIBE, a QoS 1 round trip with PUBACKs both ways, PING, and the will
//! published when the connection drops without DISCONNECT.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use net_proto::mqtt::{self, Connect, Decoder, Packet, Will};
use net_proto::session::{Output, Session};

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

/// A [`Session`] driven over a std socket, as a board drives it over its own.
struct Device {
    socket: TcpStream,
    session: Session,
    epoch: std::time::Instant,
}

impl Device {
    fn connect(addr: &str, keepalive_s: u16) -> Device {
        let socket = TcpStream::connect(addr).expect("connect");
        let mut device = Device {
            socket,
            session: Session::new(16, 64 * 1024),
            epoch: std::time::Instant::now(),
        };
        let now = device.now();
        let connect = device.session.open(
            &Connect {
                client_id: "session-device",
                keepalive_s,
                clean_session: true,
                will: None,
                username: None,
                password: None,
            },
            now,
        );
        device.socket.write_all(&connect).unwrap();
        device
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Runs the session for `span`; returns everything but the bytes it sent.
    fn run(&mut self, span: Duration) -> Vec<Output> {
        let end = std::time::Instant::now() + span;
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while std::time::Instant::now() < end {
            let wait = self
                .session
                .deadline()
                .map(|d| Duration::from_millis(d.saturating_sub(self.now())))
                .unwrap_or(Duration::from_millis(100))
                .clamp(Duration::from_millis(1), Duration::from_millis(100));
            self.socket.set_read_timeout(Some(wait)).unwrap();
            let out = match self.socket.read(&mut buf) {
                Ok(0) => {
                    self.session.closed();
                    vec![Output::Lost("the broker closed the connection".into())]
                }
                Ok(n) => self.session.received(&buf[..n], self.now()),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    Vec::new()
                }
                Err(e) => panic!("read: {e}"),
            };
            let now = self.now();
            for o in out.into_iter().chain(self.session.tick(now)) {
                match o {
                    Output::Send(bytes) => self.socket.write_all(&bytes).unwrap(),
                    Output::Lost(why) => {
                        seen.push(Output::Lost(why));
                        return seen;
                    }
                    other => seen.push(other),
                }
            }
        }
        seen
    }
}

/// Debian's mosquitto on a free port, killed on drop; `None` where it is not installed (`.ci/run` installs it).
struct Mosquitto(std::process::Child, String);

impl Mosquitto {
    fn start() -> Option<Mosquitto> {
        let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let port = harness::broker::free_port().expect("free port");
        let conf = std::env::temp_dir().join(format!("net-proto-mosquitto-{port}.conf"));
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .expect("write mosquitto.conf");
        let child = std::process::Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn mosquitto");
        let addr = format!("127.0.0.1:{port}");
        let start = std::time::Instant::now();
        while TcpStream::connect(&addr).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "mosquitto did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Mosquitto(child, addr))
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// mosquitto drops a client that sends nothing for 1.5 keepalives, however much it sends to the client: the session
/// pings on its own schedule, so a device that only listens stays connected. (rumqttd restarts its keepalive timer
/// whenever it writes to the client, so only mosquitto can catch a client that forgets to ping; without mosquitto
/// the test runs against the embedded broker and says so.)
#[test]
fn a_listening_session_keeps_its_connection_through_the_keepalive() {
    let mosquitto = Mosquitto::start();
    let embedded;
    let addr = match &mosquitto {
        Some(m) => m.1.clone(),
        None => {
            eprintln!("mosquitto is not installed: the embedded broker does not enforce keepalive");
            embedded = harness::broker::start_embedded("127.0.0.1:0".parse().unwrap())
                .expect("embedded broker");
            format!("{}:{}", embedded.host, embedded.port)
        }
    };
    let mut device = Device::connect(&addr, 1);
    let seen = device.run(Duration::from_millis(300));
    assert_eq!(
        seen,
        vec![Output::Connected {
            session_present: false
        }]
    );
    let now = device.now();
    for o in device.session.subscribe("session/#", now) {
        if let Output::Send(bytes) = o {
            device.socket.write_all(&bytes).unwrap();
        }
    }
    assert!(device.run(Duration::from_millis(200)).is_empty());

    let (mut publisher, _) = client(&addr, "session-publisher", None);
    let mut received = 0;
    // mosquitto checks keepalives every few seconds: 7 s is well past 1.5 keepalives.
    for i in 0..70 {
        publisher
            .write_all(&mqtt::publish(
                "session/ctrl",
                format!("{i}").as_bytes(),
                0,
                false,
                0,
            ))
            .unwrap();
        for o in device.run(Duration::from_millis(100)) {
            match o {
                Output::Message { .. } => received += 1,
                other => panic!("after {received} messages (keepalive 1 s): {other:?}"),
            }
        }
    }
    assert!(received >= 69, "{received} of 70 messages");
    assert!(device.session.is_connected());
}
