//! The observer: subscribes at QoS 1 and records every publish (topic, payload, retain, QoS, arrival time) as a
//! topic tree and a per-topic history, plus a timeline of everything it received and published (the evidence of a
//! failed scenario). Waits fail with what arrived instead. It reaches the broker through a [`Link`], so a broker
//! without TCP_NODELAY never waits for its ACKs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS};

use crate::broker::BrokerTarget;
use crate::quickack::Link;

/// One recorded publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub payload: String,
    pub retain: bool,
    pub qos: u8,
    pub at: Duration,
}

impl Seen {
    /// A publish as a live subscriber records it (QoS 1, not retained, at time zero): for checks and tests.
    pub fn live(payload: &str) -> Seen {
        Seen {
            payload: payload.to_string(),
            retain: false,
            qos: 1,
            at: Duration::ZERO,
        }
    }
}

/// Which way a message went, seen from the rig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The broker delivered it to the observer.
    Received,
    /// The rig published it.
    Published,
}

/// One entry of the observer's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub topic: String,
    pub seen: Seen,
    pub direction: Direction,
}

#[derive(Default)]
struct Record {
    tree: BTreeMap<String, Seen>,
    history: Vec<(String, Seen)>,
    /// Everything, never forgotten by [`Observer::clear`].
    timeline: Vec<Logged>,
}

/// A recording MQTT client.
pub struct Observer {
    client: AsyncClient,
    record: Arc<Mutex<Record>>,
    notify: Arc<tokio::sync::Notify>,
    started: Instant,
    _link: Link,
}

static CLIENTS: AtomicU32 = AtomicU32::new(0);

/// An MQTT client (not yet connected: its event loop connects when polled) that reaches `broker` over `link`, with
/// the broker's credentials, packets up to `max_packet` bytes and no Nagle delay.
pub fn client_over(
    link: &Link,
    broker: &BrokerTarget,
    id: String,
    max_packet: usize,
) -> (AsyncClient, EventLoop) {
    let mut opts = MqttOptions::new(id, "127.0.0.1", link.port());
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(max_packet, max_packet);
    if let (Some(u), Some(p)) = (&broker.username, &broker.password) {
        opts.set_credentials(u.clone(), p.clone());
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    (client, eventloop)
}

impl Observer {
    /// Connects and subscribes to every filter; returns once the broker acknowledged the subscriptions.
    pub async fn connect(broker: &BrokerTarget, filters: &[String]) -> Result<Observer> {
        let id = format!(
            "hil-obs-{}-{}",
            std::process::id(),
            CLIENTS.fetch_add(1, Ordering::SeqCst)
        );
        let link = Link::start(broker).await?;
        let (client, mut eventloop) = client_over(&link, broker, id, 4 * 1024 * 1024);
        let record: Arc<Mutex<Record>> = Arc::default();
        let notify = Arc::new(tokio::sync::Notify::new());
        let started = Instant::now();
        let (r, n, c, f) = (
            record.clone(),
            notify.clone(),
            client.clone(),
            filters.to_vec(),
        );
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let mut ready_tx = Some(ready_tx);
        let mut acks = 0usize;
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for filter in &f {
                            let _ = c.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        acks += 1;
                        if acks >= f.len() {
                            if let Some(tx) = ready_tx.take() {
                                let _ = tx.send(Ok(()));
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let seen = Seen {
                            payload: String::from_utf8_lossy(&p.payload).into_owned(),
                            retain: p.retain,
                            qos: p.qos as u8,
                            at: started.elapsed(),
                        };
                        if let Ok(mut rec) = r.lock() {
                            // A live repeat of a value the broker holds retained is still retained there.
                            let mut seen = seen;
                            if let Some(prev) = rec.tree.get(&p.topic) {
                                seen.retain |= prev.retain && prev.payload == seen.payload;
                            }
                            rec.tree.insert(p.topic.clone(), seen.clone());
                            rec.history.push((p.topic.clone(), seen.clone()));
                            rec.timeline.push(Logged {
                                topic: p.topic,
                                seen,
                                direction: Direction::Received,
                            });
                        }
                        n.notify_waiters();
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(Err(e.to_string()));
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        let why = |e: String| match link.last_error() {
            Some(cause) => format!("{e}: {cause}"),
            None => e,
        };
        match tokio::time::timeout(Duration::from_secs(10), ready_rx).await {
            Ok(Ok(Ok(()))) => Ok(Observer {
                client,
                record,
                notify,
                started,
                _link: link,
            }),
            Ok(Ok(Err(e))) => bail!("observer cannot connect to {}: {}", broker.uri(), why(e)),
            _ => bail!(
                "observer: no subscription acknowledgement from {} within 10 s{}",
                broker.uri(),
                link.last_error()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
        }
    }

    pub fn get(&self, topic: &str) -> Option<Seen> {
        self.record.lock().ok()?.tree.get(topic).cloned()
    }

    /// The recorded tree (last publish per topic).
    pub fn tree(&self) -> BTreeMap<String, Seen> {
        self.record
            .lock()
            .map(|r| r.tree.clone())
            .unwrap_or_default()
    }

    pub fn history_of(&self, topic: &str) -> Vec<Seen> {
        self.record
            .lock()
            .map(|r| {
                r.history
                    .iter()
                    .filter(|(t, _)| t == topic)
                    .map(|(_, s)| s.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Forgets the tree and the history recorded so far (the timeline stays: it is the evidence).
    pub fn clear(&self) {
        if let Ok(mut r) = self.record.lock() {
            r.tree.clear();
            r.history.clear();
        }
    }

    /// Returns when something arrives (25 ms at most).
    pub async fn changed(&self) {
        let _ = tokio::time::timeout(Duration::from_millis(25), self.notify.notified()).await;
    }

    /// Polls `topic`'s history until `check` finds what it looks for in it (`Some`), for at most `timeout`; on
    /// timeout, the history it had.
    pub async fn wait_history<T>(
        &self,
        topic: &str,
        timeout: Duration,
        mut check: impl FnMut(&[Seen]) -> Option<T>,
    ) -> std::result::Result<T, Vec<Seen>> {
        let start = Instant::now();
        loop {
            let history = self.history_of(topic);
            if let Some(found) = check(&history) {
                return Ok(found);
            }
            if start.elapsed() > timeout {
                return Err(history);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `topic` satisfies `ok`; the error names what the topic had instead.
    pub async fn wait_until(
        &self,
        topic: &str,
        timeout: Duration,
        what: &str,
        ok: impl Fn(&Seen) -> bool,
    ) -> Result<Seen> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.get(topic) {
                if ok(&s) {
                    return Ok(s);
                }
            }
            if start.elapsed() > timeout {
                let history: Vec<String> = self
                    .history_of(topic)
                    .iter()
                    .map(|s| s.payload.clone())
                    .collect();
                match self.get(topic) {
                    Some(s) => bail!(
                        "'{topic}' never {what} within {timeout:?}; last payload {:?} (history {history:?})",
                        s.payload
                    ),
                    None => {
                        let near: Vec<String> = self.tree().keys().take(40).cloned().collect();
                        bail!("'{topic}' was never published within {timeout:?}; topics seen: {near:?}")
                    }
                }
            }
            self.changed().await;
        }
    }

    pub async fn wait_for(&self, topic: &str, payload: &str, timeout: Duration) -> Result<Seen> {
        self.wait_until(topic, timeout, &format!("read {payload:?}"), |s| {
            s.payload == payload
        })
        .await
    }

    pub async fn wait_published(&self, topic: &str, timeout: Duration) -> Result<Seen> {
        self.wait_until(topic, timeout, "was published", |_| true)
            .await
    }

    pub async fn publish(&self, topic: &str, payload: &[u8], retain: bool) -> Result<()> {
        if let Ok(mut rec) = self.record.lock() {
            rec.timeline.push(Logged {
                topic: topic.to_string(),
                seen: Seen {
                    payload: String::from_utf8_lossy(payload).into_owned(),
                    retain,
                    qos: 1,
                    at: self.started.elapsed(),
                },
                direction: Direction::Published,
            });
        }
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.to_vec())
            .await?;
        Ok(())
    }

    /// When the observer started: the zero of every [`Seen::at`].
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Everything received and published so far, in order (not forgotten by [`Observer::clear`]).
    pub fn timeline(&self) -> Vec<Logged> {
        self.record
            .lock()
            .map(|r| r.timeline.clone())
            .unwrap_or_default()
    }

    pub async fn disconnect(&self) {
        let _ = self.client.disconnect().await;
    }
}
