//! MQTT 3.1.1 over embassy-net TCP with `net_proto::mqtt`: the engine's MqttConnect settings (LWT, client id,
//! credentials, keepalive), QoS 1 publishes and subscriptions, PUBACKs, pings, reconnect with backoff.
//! `mqtts://` needs TLS, which this port does not have yet: it says so on the console instead of connecting.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use embassy_executor::Spawner;
use embassy_futures::select::{select3, Either3};
use embassy_net::tcp::TcpSocket;
use embassy_net::Stack;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use embassy_time::{Duration, Timer};
use embedded_io_async::Write;
use meter_core::engine::{Event, MqttSettings};
use net_proto::mqtt::{self, Connect, Decoder, Outbox, Packet, Will};

use crate::console;

/// What the engine asks of the MQTT connection.
pub enum Command {
    Connect(MqttSettings),
    Disconnect,
    Publish {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    },
    Subscribe(String),
}

static COMMANDS: Channel<CriticalSectionRawMutex, Command, 48> = Channel::new();
const MAX_PACKET: usize = 16 * 1024;
/// QoS 1 publishes kept until the broker acknowledges them (the oldest is given up beyond this).
const MAX_INFLIGHT: usize = 64;

/// Queues a command; publishes are dropped (and said so) when the queue is full, never blocking the engine.
pub fn send(cmd: Command) {
    if COMMANDS.try_send(cmd).is_err() {
        console::line("W (0) mqtt: send queue full, message dropped");
    }
}

pub fn start(spawner: &Spawner, stack: Stack<'static>) {
    spawner.spawn(client(stack).expect("task slot"));
}

#[embassy_executor::task]
async fn client(stack: Stack<'static>) {
    let mut settings: Option<MqttSettings> = None;
    let mut backoff = Duration::from_millis(100);
    let mut inflight = Outbox::new(MAX_INFLIGHT);
    let mut rx = alloc::vec![0u8; 4096];
    let mut tx = alloc::vec![0u8; 4096];
    loop {
        // Wait for settings (or new ones) while disconnected.
        while settings.is_none() {
            if let Command::Connect(s) = COMMANDS.receive().await {
                settings = Some(s);
            }
        }
        let Some(s) = settings.clone() else { continue };
        if s.tls {
            console::line(
                "E (0) mqtt: mqtts:// is not supported on the ESP32-C3 port yet; use mqtt://",
            );
            settings = None;
            continue;
        }
        match session(stack, &s, &mut rx, &mut tx, &mut inflight).await {
            Ended::NewSettings(next) => {
                settings = next;
                backoff = Duration::from_millis(100);
            }
            Ended::Lost(why) => {
                console::line(&format!(
                    "W (0) mqtt: {why}; retrying in {} ms",
                    backoff.as_millis()
                ));
                crate::EVENTS.send(Event::MqttDisconnected).await;
                Timer::after(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

enum Ended {
    NewSettings(Option<MqttSettings>),
    Lost(String),
}

async fn session(
    stack: Stack<'static>,
    s: &MqttSettings,
    rx: &mut [u8],
    tx: &mut [u8],
    inflight: &mut Outbox,
) -> Ended {
    let addr = match stack
        .dns_query(&s.host, embassy_net::dns::DnsQueryType::A)
        .await
    {
        Ok(addrs) if !addrs.is_empty() => addrs[0],
        _ => match s.host.parse() {
            Ok(ip) => ip,
            Err(_) => return Ended::Lost(format!("cannot resolve '{}'", s.host)),
        },
    };
    let mut socket = TcpSocket::new(stack, rx, tx);
    socket.set_timeout(Some(Duration::from_secs(
        u64::from(s.keepalive_s.max(5)) * 3 / 2,
    )));
    if let Err(e) = socket.connect((addr, s.port)).await {
        return Ended::Lost(format!("cannot connect to {}:{}: {e:?}", s.host, s.port));
    }
    let connect = mqtt::connect(&Connect {
        client_id: &s.client_id,
        keepalive_s: s.keepalive_s,
        clean_session: false,
        will: Some(Will {
            topic: &s.lwt_topic,
            payload: s.lwt_payload.as_bytes(),
            qos: 1,
            retain: true,
        }),
        username: s.username.as_deref(),
        password: s.password.as_deref(),
    });
    if socket.write_all(&connect).await.is_err() {
        return Ended::Lost("connection closed during CONNECT".into());
    }
    let mut decoder = Decoder::new(MAX_PACKET);
    let mut buf = [0u8; 1024];
    let mut subscription_id: u16 = 0;
    let mut connected = false;
    let ping_every = Duration::from_secs(u64::from(s.keepalive_s.max(5)) / 2);
    loop {
        let (mut reader, mut writer) = socket.split();
        let event = select3(
            embedded_io_async::Read::read(&mut reader, &mut buf),
            COMMANDS.receive(),
            Timer::after(ping_every),
        )
        .await;
        match event {
            Either3::First(Ok(0)) | Either3::First(Err(_)) => {
                return Ended::Lost("connection lost".into());
            }
            Either3::First(Ok(n)) => {
                decoder.feed(&buf[..n]);
                loop {
                    match decoder.next() {
                        Ok(Some(Packet::ConnAck { code: 0, .. })) => {
                            connected = true;
                            console::line(&format!(
                                "I (0) mqtt: connected to {}:{}",
                                s.host, s.port
                            ));
                            for packet in inflight.resend() {
                                if writer.write_all(&packet).await.is_err() {
                                    return Ended::Lost("connection lost while resending".into());
                                }
                            }
                            crate::EVENTS.send(Event::MqttConnected).await;
                        }
                        Ok(Some(Packet::PubAck(id))) => inflight.acked(id),
                        Ok(Some(Packet::ConnAck { code, .. })) => {
                            return Ended::Lost(format!(
                                "broker refused the connection (CONNACK {code})"
                            ));
                        }
                        Ok(Some(Packet::Publish(p))) => {
                            if let Some(id) = p.packet_id {
                                let _ = writer.write_all(&mqtt::puback(id)).await;
                            }
                            crate::EVENTS
                                .send(Event::MqttMessage {
                                    topic: p.topic,
                                    payload: p.payload,
                                })
                                .await;
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(e) => return Ended::Lost(format!("bad packet from the broker: {e}")),
                    }
                }
            }
            Either3::Second(cmd) => {
                let bytes = match cmd {
                    Command::Connect(new) => {
                        let _ = writer.write_all(&mqtt::disconnect()).await;
                        return Ended::NewSettings(Some(new));
                    }
                    Command::Disconnect => {
                        let _ = writer.write_all(&mqtt::disconnect()).await;
                        return Ended::NewSettings(None);
                    }
                    Command::Publish {
                        topic,
                        payload,
                        retain,
                    } => {
                        // Kept until acknowledged; sent now if connected, else after CONNACK.
                        let (packet, dropped) = inflight.publish(&topic, &payload, retain);
                        if dropped.is_some() {
                            console::line("W (0) mqtt: too many unacknowledged messages, the oldest is given up");
                        }
                        if !connected {
                            continue;
                        }
                        packet
                    }
                    // The engine subscribes again on every MqttConnected.
                    Command::Subscribe(_) if !connected => continue,
                    Command::Subscribe(filter) => {
                        subscription_id = subscription_id.wrapping_add(1).max(1);
                        mqtt::subscribe(subscription_id, &filter, 1)
                    }
                };
                if writer.write_all(&bytes).await.is_err() {
                    return Ended::Lost("connection lost while sending".into());
                }
            }
            Either3::Third(()) => {
                if writer.write_all(&mqtt::pingreq()).await.is_err() {
                    return Ended::Lost("connection lost (ping)".into());
                }
            }
        }
    }
}
