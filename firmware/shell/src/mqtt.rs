//! The one MQTT driver every board runs: a single long-lived task that carries out what `net_proto::session`
//! decides over any `embedded-io-async` connection (embassy-net on the ESP32-C3, tokio through adapters on the
//! virtual board), reconnects with backoff, and talks to the shell through a [`Link`] of two bounded channels.
//!
//! Flow control, the same on every board:
//! - shell -> driver: while connected the driver takes a command only when the session can keep one more
//!   unacknowledged publish, so the shell waits (back-pressure) instead of anything being dropped. The wait is
//!   bounded: a broker that stays silent while it owes a PUBACK loses the connection
//!   (`net_proto::session::RESPONSE_TIMEOUT_MS`), and while disconnected the driver takes everything (a full
//!   outbox then gives up a superseded or unretained publish first, and says so).
//! - driver -> shell: connection events are never dropped; incoming messages the shell has not taken beyond
//!   [`MQTT_EVENTS`] are dropped and counted ([`Event::Dropped`]). The driver never waits for the shell, so the
//!   two can never wait for each other.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::future::{pending, poll_fn};
use core::task::Poll;

use embassy_futures::select::{select, select4, Either, Either4};
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::channel::Channel;
use embedded_io_async::{Error as _, Read, Write};
use meter_core::engine::MqttSettings;
use net_proto::mqtt::Connect;
use net_proto::session::{Output, Session};

use crate::board::Clock;
use crate::limits::{
    MQTT_BACKOFF_FIRST_MS, MQTT_BACKOFF_MAX_MS, MQTT_COMMANDS, MQTT_CONNECT_TIMEOUT_MS,
    MQTT_EVENTS, MQTT_MAX_INFLIGHT, MQTT_MAX_PACKET, MQTT_WRITE_TIMEOUT_MS,
};

/// What the shell asks of the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// (Re)connect with these settings: a current connection is left in order first.
    Connect(MqttSettings),
    /// Leave in order and stay disconnected ([`Event::Left`] when done).
    Disconnect,
    Publish {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    },
    Subscribe(String),
}

/// What the driver tells the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A connection attempt to `host:port` starts (once per new settings).
    Connecting {
        host: String,
        port: u16,
    },
    Connected {
        session_present: bool,
    },
    /// An established connection ended; the driver reconnects.
    Lost(String),
    /// An attempt failed before the broker accepted it; the driver tries again with backoff.
    Failed(String),
    /// Left in order, or given up leaving (then the broker's will speaks): nothing more is sent.
    Left,
    Message {
        topic: String,
        payload: Vec<u8>,
    },
    /// A message larger than [`crate::limits::MQTT_MAX_PACKET`] was skipped (and acknowledged).
    TooLarge {
        topic: String,
        size: usize,
    },
    /// This many incoming messages were dropped because the shell did not take events in time.
    Dropped(u32),
    Warning(String),
}

/// The two channels between the shell and the driver.
pub struct Link<M: RawMutex> {
    pub commands: Channel<M, Command, MQTT_COMMANDS>,
    pub events: Channel<M, Event, MQTT_EVENTS>,
}

impl<M: RawMutex> Link<M> {
    pub const fn new() -> Self {
        Link {
            commands: Channel::new(),
            events: Channel::new(),
        }
    }
}

impl<M: RawMutex> Default for Link<M> {
    fn default() -> Self {
        Self::new()
    }
}

/// How a board reaches a broker.
// Single-threaded executors on every board: no `Send` bound on the future.
#[allow(async_fn_in_trait)]
pub trait Network {
    /// A connection: TCP, or TLS over TCP for `mqtts://`.
    type Conn<'a>: Read + Write
    where
        Self: 'a;
    /// Resolves and connects to `settings.host:port` (TLS when `settings.tls`); the error says why not (a board
    /// without TLS refuses `mqtts://` here).
    async fn connect<'a>(&'a mut self, settings: &MqttSettings) -> Result<Self::Conn<'a>, String>;
}

/// How one connection ended.
enum Ended {
    /// Left in order (or given up leaving); continue with these settings (none: stay disconnected).
    Left(Option<MqttSettings>),
    /// Lost; `connected` tells whether the broker had accepted it.
    Lost { why: String, connected: bool },
}

/// The driver's state across connections.
pub struct Driver<'l, M: RawMutex, C: Clock> {
    link: &'l Link<M>,
    clock: C,
    session: Session,
    settings: Option<MqttSettings>,
    /// Events not yet taken by the shell, oldest first.
    pending: VecDeque<Event>,
    dropped: u32,
}

impl<'l, M: RawMutex, C: Clock> Driver<'l, M, C> {
    /// A driver with the boards' limits.
    pub fn new(link: &'l Link<M>, clock: C) -> Self {
        Self::with_max_packet(link, clock, MQTT_MAX_PACKET)
    }

    /// A driver that takes packets up to `max_packet` bytes (a virtual board with the host's limits).
    pub fn with_max_packet(link: &'l Link<M>, clock: C, max_packet: usize) -> Self {
        Driver {
            link,
            clock,
            session: Session::new(MQTT_MAX_INFLIGHT, max_packet),
            settings: None,
            pending: VecDeque::new(),
            dropped: 0,
        }
    }

    /// Runs for the life of the board.
    pub async fn run<N: Network>(&mut self, net: &mut N) -> ! {
        let mut backoff = MQTT_BACKOFF_FIRST_MS;
        let mut retry_at: Option<u64> = None;
        let mut announced = false;
        loop {
            let Some(settings) = self.settings.clone() else {
                if self.wait(None).await {
                    retry_at = None;
                    backoff = MQTT_BACKOFF_FIRST_MS;
                    announced = false;
                }
                continue;
            };
            if let Some(at) = retry_at {
                if self.clock.now_ms() < at {
                    if self.wait(Some(at)).await {
                        retry_at = None;
                        backoff = MQTT_BACKOFF_FIRST_MS;
                        announced = false;
                    }
                    continue;
                }
            }
            retry_at = None;
            if !announced {
                announced = true;
                self.state(Event::Connecting {
                    host: settings.host.clone(),
                    port: settings.port,
                });
            }
            self.deliver();
            let deadline = self.clock.now_ms() + MQTT_CONNECT_TIMEOUT_MS;
            let ended = match select(net.connect(&settings), self.clock.sleep_until(deadline)).await
            {
                Either::First(Ok(conn)) => self.connection(conn, &settings).await,
                Either::First(Err(why)) => Ended::Lost {
                    why,
                    connected: false,
                },
                Either::Second(()) => Ended::Lost {
                    why: format!(
                        "no connection to {}:{} within {} s",
                        settings.host,
                        settings.port,
                        MQTT_CONNECT_TIMEOUT_MS / 1000
                    ),
                    connected: false,
                },
            };
            match ended {
                Ended::Left(next) => {
                    let stays = next.is_none();
                    self.settings = next;
                    self.state(Event::Left);
                    if !stays {
                        announced = false;
                    }
                    backoff = MQTT_BACKOFF_FIRST_MS;
                }
                Ended::Lost { why, connected } => {
                    if connected {
                        backoff = MQTT_BACKOFF_FIRST_MS;
                        self.state(Event::Lost(why));
                    } else {
                        self.state(Event::Failed(why));
                    }
                    retry_at = Some(self.clock.now_ms() + backoff);
                    backoff = (backoff * 2).min(MQTT_BACKOFF_MAX_MS);
                }
            }
        }
    }

    /// Disconnected: takes commands and delivers events until `until` (or forever). Returns true when the
    /// settings changed (connect at once).
    async fn wait(&mut self, until: Option<u64>) -> bool {
        loop {
            self.deliver();
            let link = self.link;
            let waiting = !self.pending.is_empty();
            let wake = async {
                match until {
                    Some(at) => self.clock.sleep_until(at).await,
                    None => pending().await,
                }
            };
            let command = match select4(
                link.commands.receive(),
                ready_to_send(link, waiting),
                wake,
                pending::<()>(),
            )
            .await
            {
                Either4::First(command) => command,
                Either4::Second(()) => continue,
                Either4::Third(()) | Either4::Fourth(()) => return false,
            };
            let now = self.clock.now_ms();
            match command {
                Command::Connect(settings) => {
                    // What the old session kept is for the old broker: the session is over.
                    let _ = self.session.leave(now);
                    self.settings = Some(settings);
                    return true;
                }
                Command::Disconnect => {
                    let _ = self.session.leave(now);
                    self.settings = None;
                    self.state(Event::Left);
                    return true;
                }
                Command::Publish {
                    topic,
                    payload,
                    retain,
                } => {
                    // Kept for the next connection (a persistent session's promise).
                    let out = self.session.publish(&topic, &payload, retain, now);
                    self.warnings(out);
                }
                // A device subscribes after every `Connected`.
                Command::Subscribe(_) => {}
            }
        }
    }

    /// One connection, from CONNECT to its end.
    async fn connection<T: Read + Write>(&mut self, mut conn: T, s: &MqttSettings) -> Ended {
        let now = self.clock.now_ms();
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
        if let Err(why) = write_all(&mut conn, &self.clock, &connect).await {
            self.session.closed();
            return Ended::Lost {
                why: format!("connection lost during CONNECT: {why}"),
                connected: false,
            };
        }
        let mut connected = false;
        // Set once leaving: the settings that come after.
        let mut next: Option<Option<MqttSettings>> = None;
        let mut buf = [0u8; 512];
        loop {
            self.deliver();
            let link = self.link;
            let take = !self.session.is_leaving() && self.session.has_room();
            let waiting = !self.pending.is_empty();
            let deadline = self.session.deadline();
            let clock = &self.clock;
            let wake = async {
                match deadline {
                    Some(at) => clock.sleep_until(at).await,
                    None => pending().await,
                }
            };
            let command = async {
                if take {
                    link.commands.receive().await
                } else {
                    pending().await
                }
            };
            let outputs = match select4(
                conn.read(&mut buf),
                command,
                ready_to_send(link, waiting),
                wake,
            )
            .await
            {
                Either4::First(Ok(0)) => {
                    self.session.closed();
                    return ended(next, "the broker closed the connection".into(), connected);
                }
                Either4::First(Err(e)) => {
                    self.session.closed();
                    return ended(next, format!("connection lost: {:?}", e.kind()), connected);
                }
                Either4::First(Ok(n)) => self.session.received(&buf[..n], self.clock.now_ms()),
                Either4::Second(command) => {
                    let now = self.clock.now_ms();
                    match command {
                        Command::Connect(new) => {
                            next = Some(Some(new));
                            self.session.leave(now)
                        }
                        Command::Disconnect => {
                            next = Some(None);
                            self.session.leave(now)
                        }
                        Command::Publish {
                            topic,
                            payload,
                            retain,
                        } => self.session.publish(&topic, &payload, retain, now),
                        Command::Subscribe(filter) => self.session.subscribe(&filter, now),
                    }
                }
                Either4::Third(()) => continue,
                Either4::Fourth(()) => self.session.tick(self.clock.now_ms()),
            };
            for output in outputs {
                match output {
                    Output::Send(bytes) => {
                        if let Err(why) = write_all(&mut conn, &self.clock, &bytes).await {
                            self.session.closed();
                            return ended(next, why, connected);
                        }
                    }
                    Output::Connected { session_present } => {
                        connected = true;
                        self.state(Event::Connected { session_present });
                    }
                    Output::Message { topic, payload } => {
                        self.message(Event::Message { topic, payload })
                    }
                    Output::TooLarge { topic, size } => {
                        self.message(Event::TooLarge { topic, size })
                    }
                    Output::Warning(w) => self.message(Event::Warning(w)),
                    Output::Lost(why) => return ended(next, why, connected),
                    Output::Left => {
                        let _ = conn.flush().await;
                        return Ended::Left(next.unwrap_or(None));
                    }
                }
            }
        }
    }

    fn warnings(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            if let Output::Warning(w) = output {
                self.message(Event::Warning(w));
            }
        }
    }

    /// A connection event: never dropped (there are few; each one matters).
    fn state(&mut self, event: Event) {
        self.pending.push_back(event);
        self.deliver();
    }

    /// An incoming message (or a warning): dropped and counted when the shell is this far behind.
    fn message(&mut self, event: Event) {
        if self.pending.len() >= MQTT_EVENTS {
            self.dropped += 1;
        } else {
            self.pending.push_back(event);
        }
        self.deliver();
    }

    /// Hands the shell what it has room for, in order.
    fn deliver(&mut self) {
        while let Some(event) = self.pending.pop_front() {
            if let Err(embassy_sync::channel::TrySendError::Full(event)) =
                self.link.events.try_send(event)
            {
                self.pending.push_front(event);
                return;
            }
        }
        if self.dropped > 0
            && self
                .link
                .events
                .try_send(Event::Dropped(self.dropped))
                .is_ok()
        {
            self.dropped = 0;
        }
    }
}

/// Ready when the shell can take an event and there is one to give.
async fn ready_to_send<M: RawMutex>(link: &Link<M>, waiting: bool) {
    if !waiting {
        return pending().await;
    }
    poll_fn(|cx| match link.events.poll_ready_to_send(cx) {
        Poll::Ready(()) => Poll::Ready(()),
        Poll::Pending => Poll::Pending,
    })
    .await
}

/// A connection ended without `Left`: when it was being left, it has left (the broker's will tells the truth).
fn ended(next: Option<Option<MqttSettings>>, why: String, connected: bool) -> Ended {
    match next {
        Some(settings) => Ended::Left(settings),
        None => Ended::Lost { why, connected },
    }
}

/// Writes everything, or says why not: an error, or a write that does not complete in time (a dead peer).
async fn write_all<T: Write, C: Clock>(
    conn: &mut T,
    clock: &C,
    bytes: &[u8],
) -> Result<(), String> {
    let deadline = clock.now_ms() + MQTT_WRITE_TIMEOUT_MS;
    let write = async {
        conn.write_all(bytes).await?;
        conn.flush().await
    };
    match select(write, clock.sleep_until(deadline)).await {
        Either::First(Ok(())) => Ok(()),
        Either::First(Err(e)) => Err(format!("connection lost while sending: {:?}", e.kind())),
        Either::Second(()) => Err(format!(
            "a write did not complete within {} s",
            MQTT_WRITE_TIMEOUT_MS / 1000
        )),
    }
}
