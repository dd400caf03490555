//! MQTT 3.1.1 over embassy-net TCP: `net_proto::session::Session` decides (CONNECT with the engine's LWT, client id,
//! credentials and keepalive; QoS 1 publishes kept until acknowledged; PUBACKs; pings), this task carries it out
//! and reconnects with backoff. The virtual board drives the same session, so the whole scenario suite exercises it.
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
use embassy_time::{Duration, Instant, Timer};
use embedded_io_async::Write;
use meter_core::engine::{Event, MqttSettings};
use net_proto::mqtt::Connect;
use net_proto::session::{Output, Session};

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
    let mut mqtt = Session::new(MAX_INFLIGHT, MAX_PACKET);
    let mut rx = alloc::vec![0u8; 4096];
    let mut tx = alloc::vec![0u8; 4096];
    loop {
        // Wait for settings (or new ones) while disconnected; publishes meanwhile wait in the session.
        while settings.is_none() {
            match COMMANDS.receive().await {
                Command::Connect(s) => settings = Some(s),
                Command::Publish {
                    topic,
                    payload,
                    retain,
                } => report(&mqtt.publish(&topic, &payload, retain, now_ms())),
                Command::Disconnect | Command::Subscribe(_) => {}
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
        match connection(stack, &s, &mut rx, &mut tx, &mut mqtt).await {
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

fn now_ms() -> u64 {
    Instant::now().as_millis()
}

/// Warnings go to the console; everything else a session says while disconnected is nothing to act on.
fn report(outputs: &[Output]) {
    for o in outputs {
        if let Output::Warning(w) = o {
            console::line(&format!("W (0) mqtt: {w}"));
        }
    }
}

/// A connection lost while leaving has still left: on to the next settings.
fn ended(next: &mut Option<Option<MqttSettings>>, why: String) -> Ended {
    match next.take() {
        Some(settings) => Ended::NewSettings(settings),
        None => Ended::Lost(why),
    }
}

/// One TCP connection: the session decides what to send and when; this carries it out.
async fn connection(
    stack: Stack<'static>,
    s: &MqttSettings,
    rx: &mut [u8],
    tx: &mut [u8],
    mqtt: &mut Session,
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
    // A backstop for a peer that vanished mid-write; the session's pings notice a silent broker first.
    socket.set_timeout(Some(Duration::from_secs(
        u64::from(s.keepalive_s.max(5)) * 2,
    )));
    if let Err(e) = socket.connect((addr, s.port)).await {
        return Ended::Lost(format!("cannot connect to {}:{}: {e:?}", s.host, s.port));
    }
    let connect = mqtt.open(
        &Connect::persistent(
            &s.client_id,
            s.keepalive_s,
            &s.lwt_topic,
            s.lwt_payload.as_bytes(),
            s.username.as_deref(),
            s.password.as_deref(),
        ),
        now_ms(),
    );
    if socket.write_all(&connect).await.is_err() {
        mqtt.closed();
        return Ended::Lost("connection closed during CONNECT".into());
    }
    let mut buf = [0u8; 1024];
    // Set while leaving for new settings (or none): what comes after `Output::Left`.
    let mut next: Option<Option<MqttSettings>> = None;
    loop {
        let (mut reader, mut writer) = socket.split();
        // While leaving, commands stay queued: they are for the next connection.
        let leaving = mqtt.is_leaving();
        let command = async {
            if leaving {
                core::future::pending().await
            } else {
                COMMANDS.receive().await
            }
        };
        let deadline = match mqtt.deadline() {
            Some(ms) => Timer::at(Instant::from_millis(ms)),
            None => Timer::after(Duration::from_secs(3600)),
        };
        let outputs = match select3(
            embedded_io_async::Read::read(&mut reader, &mut buf),
            command,
            deadline,
        )
        .await
        {
            Either3::First(Ok(0)) | Either3::First(Err(_)) => {
                mqtt.closed();
                return ended(&mut next, "connection lost".into());
            }
            Either3::First(Ok(n)) => mqtt.received(&buf[..n], now_ms()),
            Either3::Second(Command::Connect(new)) => {
                next = Some(Some(new));
                mqtt.leave(now_ms())
            }
            Either3::Second(Command::Disconnect) => {
                next = Some(None);
                mqtt.leave(now_ms())
            }
            Either3::Second(Command::Publish {
                topic,
                payload,
                retain,
            }) => mqtt.publish(&topic, &payload, retain, now_ms()),
            Either3::Second(Command::Subscribe(filter)) => mqtt.subscribe(&filter, now_ms()),
            Either3::Third(()) => mqtt.tick(now_ms()),
        };
        for output in outputs {
            match output {
                Output::Send(bytes) => {
                    if writer.write_all(&bytes).await.is_err() {
                        mqtt.closed();
                        return ended(&mut next, "connection lost while sending".into());
                    }
                }
                Output::Connected { .. } => {
                    console::line(&format!("I (0) mqtt: connected to {}:{}", s.host, s.port));
                    crate::EVENTS.send(Event::MqttConnected).await;
                }
                Output::Message { topic, payload } => {
                    crate::EVENTS
                        .send(Event::MqttMessage { topic, payload })
                        .await
                }
                Output::Warning(w) => console::line(&format!("W (0) mqtt: {w}")),
                Output::Lost(why) => return ended(&mut next, why),
                Output::Left => {
                    let _ = writer.flush().await;
                    return Ended::NewSettings(next.take().flatten());
                }
            }
        }
    }
}
