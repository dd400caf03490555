//! The board's MQTT connection (v3.1.1, rumqttc): LWT `offline` retained, QoS 1, persistent session, reconnect with
//! backoff after broker loss. Events carry the connection's generation so a replaced connection goes quiet.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use meter_core::MqttSettings;
use rumqttc::{
    AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration, Transport,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What the connection reports to the board loop.
#[derive(Debug)]
pub enum MqttEvent {
    Connected(u64),
    Disconnected(u64, String),
    Message(u64, String, Vec<u8>),
}

/// A live connection: the client to publish with and the task driving it.
pub struct Connection {
    pub client: AsyncClient,
    task: JoinHandle<()>,
}

impl Connection {
    /// Drops the connection at once, without DISCONNECT: the broker publishes the LWT (power loss / reset).
    pub fn cut(self) {
        self.task.abort();
    }

    /// Leaves in order: queued publishes go out, then DISCONNECT (no LWT); cut after 2 s at the latest. The
    /// returned handle ends when the connection is gone: a successor with the same client id waits for it, so the
    /// broker never sees the two sessions overlap (a takeover there can cost the new one its subscriptions).
    pub fn retire(self) -> JoinHandle<()> {
        let _ = self.client.try_disconnect();
        let mut task = self.task;
        tokio::spawn(async move {
            if tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        })
    }

    pub fn publish(&self, topic: String, payload: String, retain: bool) -> Result<()> {
        self.client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload.into_bytes())
            .map_err(|e| anyhow!("{e}"))
    }

    pub fn subscribe(&self, filter: String) -> Result<()> {
        self.client
            .try_subscribe(filter, QoS::AtLeastOnce)
            .map_err(|e| anyhow!("{e}"))
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
/// `events`. Publishes made meanwhile wait in the client's queue.
pub fn connect(
    s: &MqttSettings,
    generation: u64,
    events: mpsc::Sender<MqttEvent>,
    predecessor: Option<JoinHandle<()>>,
) -> Result<Connection> {
    let mut options = MqttOptions::new(s.client_id.clone(), s.host.clone(), s.port);
    options.set_keep_alive(Duration::from_secs(u64::from(s.keepalive_s.max(5))));
    options.set_last_will(LastWill::new(
        s.lwt_topic.clone(),
        s.lwt_payload,
        QoS::AtLeastOnce,
        true,
    ));
    options.set_clean_session(false);
    // Oversized control payloads must reach the firmware to be refused there, not kill the connection.
    options.set_max_packet_size(1024 * 1024, 1024 * 1024);
    if let (Some(user), password) = (&s.username, &s.password) {
        options.set_credentials(user.clone(), password.clone().unwrap_or_default());
    }
    if s.tls {
        let config = tls_config(s)?;
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(config),
        )));
    }
    let (client, mut eventloop) = AsyncClient::new(options, 4096);
    // Small control messages must not wait for Nagle + delayed ACK (~40 ms each way on loopback).
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let task = tokio::spawn(async move {
        if let Some(previous) = predecessor {
            let _ = previous.await;
        }
        let mut backoff = Duration::from_millis(100);
        let mut connected = false;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    backoff = Duration::from_millis(100);
                    if events.send(MqttEvent::Connected(generation)).await.is_err() {
                        return;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if events
                        .send(MqttEvent::Message(generation, p.topic, p.payload.to_vec()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                // Retired: DISCONNECT is on the wire; do not reconnect.
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(e) => {
                    if connected {
                        connected = false;
                        if events
                            .send(MqttEvent::Disconnected(generation, e.to_string()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    } else {
                        let _ = events
                            .send(MqttEvent::Disconnected(generation, e.to_string()))
                            .await;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    });
    Ok(Connection { client, task })
}
