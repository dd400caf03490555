//! The board's MQTT connection: `net_proto::session::Session`, the same sans-IO MQTT 3.1.1 client the ESP32-C3 runs,
//! driven over tokio TCP (TLS with rustls for `mqtts://`): LWT `offline` retained, QoS 1 kept until acknowledged and
//! resent after a reconnect, persistent session, keepalive pings, reconnect with backoff after broker loss. Events
//! carry the connection's generation so a replaced connection goes quiet.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use meter_core::MqttSettings;
use net_proto::mqtt::Connect;
use net_proto::session::{Output, Session, LEAVE_TIMEOUT_MS};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

/// Publishes kept until acknowledged (the engine's output during a long broker outage fits).
const MAX_INFLIGHT: usize = 4096;
/// Oversized control payloads must reach the firmware to be refused there, not kill the connection.
const MAX_PACKET: usize = 1024 * 1024 + 1024;
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A backstop: the session itself gives up leaving after `LEAVE_TIMEOUT_MS`.
const RETIRE_WITHIN: Duration = Duration::from_millis(LEAVE_TIMEOUT_MS + 1000);

/// What the connection reports to the board loop.
#[derive(Debug)]
pub enum MqttEvent {
    Connected(u64),
    Disconnected(u64, String),
    Message(u64, String, Vec<u8>),
}

enum Command {
    Publish {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    },
    Subscribe(String),
    /// Once what was published is acknowledged, DISCONNECT (no LWT), and stop.
    Leave,
}

/// A live connection: the queue to the task driving it.
pub struct Connection {
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
}

impl Connection {
    /// Drops the connection at once, without DISCONNECT: the broker publishes the LWT (power loss / reset).
    pub fn cut(self) {
        self.task.abort();
    }

    /// Leaves in order: queued publishes go out and are acknowledged, then DISCONNECT (no LWT); without the
    /// acknowledgements within `LEAVE_TIMEOUT_MS` the connection closes without DISCONNECT (the broker publishes
    /// the LWT). The returned handle ends when the connection is gone: a successor with the same client id waits
    /// for it, so the broker never sees the two sessions overlap (a takeover can cost the new one its subscriptions).
    pub fn retire(self) -> JoinHandle<()> {
        let _ = self.commands.send(Command::Leave);
        let mut task = self.task;
        tokio::spawn(async move {
            if tokio::time::timeout(RETIRE_WITHIN, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        })
    }

    pub fn publish(&self, topic: String, payload: String, retain: bool) -> Result<()> {
        self.commands
            .send(Command::Publish {
                topic,
                payload: payload.into_bytes(),
                retain,
            })
            .map_err(|_| anyhow!("the MQTT connection task has ended"))
    }

    pub fn subscribe(&self, filter: String) -> Result<()> {
        self.commands
            .send(Command::Subscribe(filter))
            .map_err(|_| anyhow!("the MQTT connection task has ended"))
    }
}

fn tls_config(s: &MqttSettings) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    if s.ca_cert.trim().is_empty() {
        anyhow::bail!("mqtts:// needs a CA certificate in mqtt.tls.cacert (PEM)");
    }
    for cert in rustls_pemfile::certs(&mut s.ca_cert.as_bytes()) {
        roots
            .add(cert.context("mqtt.tls.cacert is not valid PEM")?)
            .context("mqtt.tls.cacert rejected")?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS setup")?
        .with_root_certificates(roots);
    if s.client_cert.trim().is_empty() {
        return Ok(builder.with_no_client_auth());
    }
    let certs: Vec<_> = rustls_pemfile::certs(&mut s.client_cert.as_bytes())
        .collect::<Result<_, _>>()
        .context("mqtt.tls.clientcert is not valid PEM")?;
    let key = rustls_pemfile::private_key(&mut s.client_key.as_bytes())
        .context("mqtt.tls.clientkey is not valid PEM")?
        .ok_or_else(|| anyhow!("mqtt.tls.clientkey holds no private key"))?;
    builder
        .with_client_auth_cert(certs, key)
        .context("client certificate rejected")
}

/// Starts a connection with these settings, once `predecessor` (a retiring connection) is gone; events go to
/// `events`. Publishes made meanwhile wait in the session.
pub fn connect(
    s: &MqttSettings,
    generation: u64,
    events: mpsc::Sender<MqttEvent>,
    predecessor: Option<JoinHandle<()>>,
) -> Result<Connection> {
    let tls = match s.tls {
        true => Some(TlsConnector::from(Arc::new(tls_config(s)?))),
        false => None,
    };
    let (commands, queue) = mpsc::unbounded_channel();
    let driver = Driver {
        settings: s.clone(),
        tls,
        generation,
        events,
        queue,
        session: Session::new(MAX_INFLIGHT, MAX_PACKET),
        epoch: Instant::now(),
        was_connected: false,
    };
    let task = tokio::spawn(async move {
        if let Some(previous) = predecessor {
            let _ = previous.await;
        }
        driver.run().await
    });
    Ok(Connection { commands, task })
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Why one TCP connection ended.
enum Ended {
    /// DISCONNECT sent (or the board let go of the connection): do not reconnect.
    Left,
    Lost(String),
}

/// Carries out what the session decides, one TCP connection after another.
struct Driver {
    settings: MqttSettings,
    tls: Option<TlsConnector>,
    generation: u64,
    events: mpsc::Sender<MqttEvent>,
    queue: mpsc::UnboundedReceiver<Command>,
    session: Session,
    epoch: Instant,
    was_connected: bool,
}

impl Driver {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    async fn run(mut self) {
        let mut backoff = BACKOFF_FIRST;
        loop {
            match self.connection().await {
                Ended::Left => return,
                // The socket went while leaving: left, without DISCONNECT (the broker sends the will).
                Ended::Lost(_) if self.session.is_leaving() => return,
                Ended::Lost(why) => {
                    // A connection that got as far as CONNACK starts the backoff over.
                    if std::mem::take(&mut self.was_connected) {
                        backoff = BACKOFF_FIRST;
                    }
                    self.session.closed();
                    let event = MqttEvent::Disconnected(self.generation, why);
                    if self.events.send(event).await.is_err() {
                        return;
                    }
                    // Publishes keep queueing in the session while it waits.
                    let until = Instant::now() + backoff;
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep_until(until) => break,
                            cmd = self.queue.recv() => match cmd {
                                None | Some(Command::Leave) => return,
                                Some(cmd) => { let _ = self.command(cmd); }
                            },
                        }
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    async fn open(&self) -> Result<Box<dyn Stream>> {
        let s = &self.settings;
        let tcp = TcpStream::connect((s.host.as_str(), s.port))
            .await
            .with_context(|| format!("cannot connect to {}:{}", s.host, s.port))?;
        // Small control messages must not wait for Nagle + delayed ACK (~40 ms each way on loopback).
        tcp.set_nodelay(true).context("TCP_NODELAY")?;
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(s.host.clone())
                    .with_context(|| format!("'{}' is not a valid TLS server name", s.host))?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .with_context(|| format!("TLS handshake with {}:{}", s.host, s.port))?;
                Ok(Box::new(stream))
            }
        }
    }

    /// One connection, from TCP connect to its end.
    async fn connection(&mut self) -> Ended {
        let mut stream = match self.open().await {
            Ok(stream) => stream,
            Err(e) => return Ended::Lost(format!("{e:#}")),
        };
        let now = self.now();
        let s = &self.settings;
        let connect = self.session.open(
            &Connect::persistent(
                &s.client_id,
                s.keepalive_s,
                &s.lwt_topic,
                s.lwt_payload.as_bytes(),
                s.username.as_deref(),
                s.password.as_deref(),
            ),
            now,
        );
        if let Err(e) = send(&mut stream, &connect).await {
            return Ended::Lost(format!("connection lost during CONNECT: {e}"));
        }
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let deadline = match self.session.deadline() {
                Some(ms) => self.epoch + Duration::from_millis(ms),
                None => Instant::now() + Duration::from_secs(3600),
            };
            let outputs = tokio::select! {
                read = stream.read(&mut buf) => match read {
                    Ok(0) => return Ended::Lost("the broker closed the connection".into()),
                    Err(e) => return Ended::Lost(format!("connection lost: {e}")),
                    Ok(n) => self.session.received(&buf[..n], self.now()),
                },
                // Leaving: nothing new goes out, the retiring handle is gone anyway.
                cmd = self.queue.recv(), if !self.session.is_leaving() => match cmd {
                    // The board let go of the connection without retiring it: a cut.
                    None => return Ended::Left,
                    Some(cmd) => self.command(cmd),
                },
                _ = tokio::time::sleep_until(deadline) => self.session.tick(self.now()),
            };
            let mut written = false;
            for output in outputs {
                match output {
                    Output::Send(bytes) => {
                        if let Err(e) = stream.write_all(&bytes).await {
                            return Ended::Lost(format!("connection lost while sending: {e}"));
                        }
                        written = true;
                    }
                    Output::Connected { .. } => {
                        self.was_connected = true;
                        if self
                            .events
                            .send(MqttEvent::Connected(self.generation))
                            .await
                            .is_err()
                        {
                            return Ended::Left;
                        }
                    }
                    Output::Message { topic, payload } => {
                        let event = MqttEvent::Message(self.generation, topic, payload);
                        if self.events.send(event).await.is_err() {
                            return Ended::Left;
                        }
                    }
                    Output::Warning(w) => eprintln!("MQTT: {w}"),
                    Output::Lost(why) => return Ended::Lost(why),
                    Output::Left => {
                        let _ = stream.flush().await;
                        let _ = stream.shutdown().await;
                        return Ended::Left;
                    }
                }
            }
            // TLS buffers what is written until flushed.
            if written {
                if let Err(e) = stream.flush().await {
                    return Ended::Lost(format!("connection lost while sending: {e}"));
                }
            }
        }
    }

    fn command(&mut self, cmd: Command) -> Vec<Output> {
        let now = self.now();
        match cmd {
            Command::Publish {
                topic,
                payload,
                retain,
            } => self.session.publish(&topic, &payload, retain, now),
            Command::Subscribe(filter) => self.session.subscribe(&filter, now),
            Command::Leave => self.session.leave(now),
        }
    }
}

async fn send(stream: &mut Box<dyn Stream>, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}
