//! The per-board "cable": a TCP pass-through between one virtual board and its broker that the rig can break the way
//! a Wi-Fi link breaks. Each scenario's board reaches the broker only through its own cable, so one scenario's faults
//! never touch another's board.
//!
//! What it does to the link:
//! - **down** ([`Cable::set_down`]): its connections end (FIN both ways) and new ones are closed at once, what a board
//!   sees while its broker restarts;
//! - **latency, jitter, a bandwidth cap** ([`Cable::set_link`]): every byte is held for the latency plus a random
//!   share of the jitter (never reordered: TCP stays TCP), and leaves no faster than the cap, both ways; the cable
//!   reads no further ahead than half a second of the cap, so a slow link pushes back on the sender as TCP would;
//! - **a black hole** ([`Cable::black_hole`]): from now on every byte of the connections that exist vanishes, both
//!   ways, FIN included, and nothing is reset: a half-open connection only the board's keepalive can detect. New
//!   connections pass (the access point came back; the old connection's state is gone);
//! - **mute** ([`Cable::set_mute`]): new connections are accepted and never answered (a broker that takes TCP but
//!   never sends CONNACK);
//! - **a cut in the middle of a publish** ([`Cable::cut_next_publish`]): half of the board's next PUBLISH to a
//!   matching topic goes out, then the connection ends both ways;
//! - **another broker at the other end** ([`Cable::set_upstream`]), e.g. a [`Mosquitto`] of the scenario's own,
//!   which the rig can restart for real.
//!
//! It watches the MQTT packets that pass (plain MQTT; over TLS it sees bytes only) and keeps a timeline of
//! [`CableEvent`]s: connections accepted and closed by either side, CONNECT, PINGREQ, CONNACK (with its
//! session-present flag), the faults. Steps measure the board's detection and recovery times on it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};

use crate::broker::BrokerTarget;

/// The faults of the link itself: they apply to bytes read from now on, both ways.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkFaults {
    /// Every byte is held at least this long.
    pub latency: Duration,
    /// Plus a random share of this (uniform), without reordering.
    pub jitter: Duration,
    /// At most this many bytes per second each way (None: as fast as loopback goes).
    pub bytes_per_s: Option<u64>,
}

/// What the cable saw or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CableEventKind {
    /// The board opened a connection; `muted`: the broker end will never answer it.
    Accepted { muted: bool },
    /// The board opened a connection while the cable was down: closed at once.
    Refused,
    /// The broker did not take the connection (the board's end was closed).
    NoUpstream(String),
    /// The board sent CONNECT.
    Connect,
    /// The board sent PINGREQ.
    PingReq,
    /// The broker's CONNACK reached the board.
    ConnAck { session_present: bool, code: u8 },
    /// The board's PUBLISH (`bytes` long, the whole packet) reached the broker.
    Publish { topic: String, bytes: usize },
    /// The rig turned this connection into a black hole.
    BlackHoled,
    /// The board closed its end (or reset it).
    BoardClosed,
    /// The broker closed its end (or reset it).
    BrokerClosed,
    /// The rig cut this connection after `forwarded` of the `total` bytes of a PUBLISH to `topic`.
    CutMidPublish {
        topic: String,
        forwarded: usize,
        total: usize,
    },
    /// The rig cut this connection (cable down, or cut).
    Cut,
}

/// One entry of the cable's timeline: when, on which connection (numbered from 1 in the order accepted), what.
#[derive(Debug, Clone)]
pub struct CableEvent {
    pub at: Instant,
    pub conn: u32,
    pub kind: CableEventKind,
}

/// What every connection of the cable watches: generations of the rig's cuts and black holes.
#[derive(Debug, Clone, Copy, Default)]
struct Control {
    cut: u64,
    hole: u64,
    closed: bool,
}

struct Shared {
    upstream: Mutex<BrokerTarget>,
    link: Mutex<LinkFaults>,
    down: AtomicBool,
    muted: AtomicBool,
    /// Cut the next PUBLISH whose topic contains this.
    cut_publish: Mutex<Option<String>>,
    control: watch::Sender<Control>,
    events: Mutex<Vec<CableEvent>>,
    conns: AtomicU32,
    rng: Mutex<u64>,
}

impl Shared {
    fn event(&self, conn: u32, kind: CableEventKind) {
        if let Ok(mut events) = self.events.lock() {
            events.push(CableEvent {
                at: Instant::now(),
                conn,
                kind,
            });
        }
    }

    fn upstream(&self) -> Option<BrokerTarget> {
        self.upstream.lock().ok().map(|t| t.clone())
    }

    fn link(&self) -> LinkFaults {
        self.link.lock().map(|l| *l).unwrap_or_default()
    }

    /// A uniform share of `span` (xorshift: the jitter needs no better).
    fn random_share(&self, span: Duration) -> Duration {
        if span.is_zero() {
            return Duration::ZERO;
        }
        let Ok(mut s) = self.rng.lock() else {
            return Duration::ZERO;
        };
        let mut x = *s;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *s = x;
        let nanos = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(x % nanos.saturating_add(1))
    }

    /// Takes the armed cut if `topic` matches it.
    fn take_cut(&self, topic: &str) -> bool {
        let Ok(mut armed) = self.cut_publish.lock() else {
            return false;
        };
        match armed.as_deref() {
            Some(filter) if topic.contains(filter) => {
                *armed = None;
                true
            }
            _ => false,
        }
    }
}

/// A TCP pass-through between one board and the broker, with the faults of a Wi-Fi link on demand (module docs).
pub struct Cable {
    pub port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    /// The rig's last fault: when, and what.
    fault: Mutex<Option<(Instant, String)>>,
    /// A broker of the scenario's own at the other end, stopped with the cable.
    own: Mutex<Option<OwnBroker>>,
}

/// A broker the scenario runs for its board alone (so the rig may restart it), at the cable's far end.
pub struct OwnBroker {
    /// Where it listens.
    pub target: BrokerTarget,
    /// The process, when it is a mosquitto (None: an embedded broker in the rig's process, which cannot be
    /// stopped; "restarting" it starts a fresh one).
    pub mosquitto: Option<Mosquitto>,
    /// The retained tree (topic -> payload) it held before the rig restarted it.
    pub retained_before: Option<std::collections::BTreeMap<String, String>>,
}

impl Cable {
    /// Listens on a free loopback port; each connection is relayed to `target`.
    pub async fn start(target: &BrokerTarget) -> Result<Cable> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (control, _) = watch::channel(Control::default());
        let seed = u64::from(port) << 32 | u64::from(std::process::id()) | 1;
        let shared = Arc::new(Shared {
            upstream: Mutex::new(target.clone()),
            link: Mutex::new(LinkFaults::default()),
            down: AtomicBool::new(false),
            muted: AtomicBool::new(false),
            cut_publish: Mutex::new(None),
            control,
            events: Mutex::new(Vec::new()),
            conns: AtomicU32::new(0),
            rng: Mutex::new(seed),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let id = s.conns.fetch_add(1, Ordering::SeqCst) + 1;
                if s.down.load(Ordering::SeqCst) {
                    s.event(id, CableEventKind::Refused);
                    continue;
                }
                let muted = s.muted.load(Ordering::SeqCst);
                s.event(id, CableEventKind::Accepted { muted });
                tokio::spawn(connection(s.clone(), client, id, muted));
            }
        });
        Ok(Cable {
            port,
            shared,
            task,
            fault: Mutex::new(None),
            own: Mutex::new(None),
        })
    }

    /// The URI a board uses to reach the broker through this cable (TLS passes through untouched; the host name
    /// stays the broker's so its certificate still matches).
    pub fn uri_for(&self, target: &BrokerTarget) -> String {
        let host = if target.tls.is_some() {
            target.host.as_str()
        } else {
            "127.0.0.1"
        };
        format!("{}://{host}:{}", target.scheme(), self.port)
    }

    /// Down: the connections end and new ones are closed at once. Up: connections pass again.
    pub fn set_down(&self, down: bool) {
        // Remembered first: what the connections record about it comes after.
        self.remember(if down { "cable down" } else { "cable up" });
        self.shared.down.store(down, Ordering::SeqCst);
        self.shared.control.send_modify(|c| c.cut += 1);
    }

    /// Ends the current connections (FIN both ways); new ones pass.
    pub fn cut(&self) {
        self.remember("cut");
        self.shared.control.send_modify(|c| c.cut += 1);
    }

    /// Latency, jitter and a bandwidth cap for what is read from now on.
    pub fn set_link(&self, faults: LinkFaults) {
        if let Ok(mut l) = self.shared.link.lock() {
            *l = faults;
        }
        self.remember(&format!("link {faults:?}"));
    }

    pub fn link(&self) -> LinkFaults {
        self.shared.link()
    }

    /// The current connections become a black hole (module docs); returns when.
    pub fn black_hole(&self) -> Instant {
        let at = self.remember("black hole");
        self.shared.control.send_modify(|c| c.hole += 1);
        at
    }

    /// Muted: new connections are accepted and never answered.
    pub fn set_mute(&self, muted: bool) -> Instant {
        let at = self.remember(if muted { "mute" } else { "unmute" });
        self.shared.muted.store(muted, Ordering::SeqCst);
        at
    }

    /// Arms a cut of the board's next PUBLISH to a topic containing `topic`, halfway through it. Needs plain MQTT
    /// (the cable cannot see packets inside TLS).
    pub fn cut_next_publish(&self, topic: &str) -> Result<()> {
        if self.shared.upstream().is_some_and(|t| t.tls.is_some()) {
            bail!("the cable sees no MQTT packets inside TLS: a publish can be cut on plain mqtt:// only");
        }
        let mut armed = self
            .shared
            .cut_publish
            .lock()
            .map_err(|_| anyhow!("cable state poisoned"))?;
        *armed = Some(topic.to_string());
        drop(armed);
        self.remember(&format!("cut the next publish to '{topic}'"));
        Ok(())
    }

    /// Relays new connections to `target` from now on (the current ones stay where they are: [`Cable::cut`] them).
    pub fn set_upstream(&self, target: BrokerTarget) {
        if let Ok(mut t) = self.shared.upstream.lock() {
            *t = target;
        }
    }

    pub fn upstream(&self) -> Option<BrokerTarget> {
        self.shared.upstream()
    }

    /// Keeps `broker` running as long as the cable (the previous one, if any, is stopped).
    pub fn keep_own(&self, broker: OwnBroker) {
        if let Ok(mut own) = self.own.lock() {
            *own = Some(broker);
        }
    }

    /// Takes the scenario's own broker (to restart it; give it back with [`Cable::keep_own`]).
    pub fn take_own(&self) -> Option<OwnBroker> {
        self.own.lock().ok().and_then(|mut o| o.take())
    }

    /// The scenario's own broker: where it listens, and the retained tree it held before its restart.
    pub fn own(
        &self,
    ) -> Option<(
        BrokerTarget,
        Option<std::collections::BTreeMap<String, String>>,
    )> {
        let own = self.own.lock().ok()?;
        own.as_ref()
            .map(|o| (o.target.clone(), o.retained_before.clone()))
    }

    /// Everything the cable saw, in order.
    pub fn events(&self) -> Vec<CableEvent> {
        self.shared
            .events
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// The rig's last fault and when it began.
    pub fn last_fault(&self) -> Option<(Instant, String)> {
        self.fault.lock().ok().and_then(|f| f.clone())
    }

    /// Notes a fault the rig caused at the far end (a broker restart): the time recoveries are measured from.
    pub fn remember(&self, what: &str) -> Instant {
        let now = Instant::now();
        if let Ok(mut f) = self.fault.lock() {
            *f = Some((now, what.to_string()));
        }
        now
    }
}

impl Drop for Cable {
    fn drop(&mut self) {
        self.task.abort();
        self.shared.control.send_modify(|c| c.closed = true);
    }
}

/// One board connection, relayed (or swallowed when muted) until either side or the rig ends it.
async fn connection(shared: Arc<Shared>, client: TcpStream, id: u32, muted: bool) {
    let _ = client.set_nodelay(true);
    let mut control = shared.control.subscribe();
    let born = *control.borrow_and_update();
    if born.closed {
        return;
    }
    // Ends when the rig cuts this connection or drops the cable; marks it black-holed when told.
    let hole = Arc::new(AtomicBool::new(false));
    let watch = {
        let (shared, hole) = (shared.clone(), hole.clone());
        async move {
            while control.changed().await.is_ok() {
                let now = *control.borrow_and_update();
                if now.closed {
                    return;
                }
                if now.cut != born.cut {
                    shared.event(id, CableEventKind::Cut);
                    return;
                }
                if now.hole != born.hole && !hole.swap(true, Ordering::SeqCst) {
                    shared.event(id, CableEventKind::BlackHoled);
                }
            }
        }
    };
    if muted {
        tokio::select! {
            _ = swallow(&shared, client, id) => {}
            _ = watch => {}
        }
        return;
    }
    let Some(upstream) = shared.upstream() else {
        return;
    };
    let server = match crate::quickack::connect(&upstream).await {
        Ok(s) => s,
        Err(e) => {
            shared.event(id, CableEventKind::NoUpstream(e.to_string()));
            return;
        }
    };
    let frame = upstream.tls.is_none();
    let end = Arc::new(Notify::new());
    let (board_rx, board_tx) = client.into_split();
    let (broker_rx, broker_tx) = tokio::io::split(server);
    let ends = Ends {
        shared: shared.clone(),
        id,
        hole,
        end: end.clone(),
        frame,
    };
    let up = pump(&ends, board_rx, broker_tx, Way::Up);
    let down = pump(&ends, broker_rx, board_tx, Way::Down);
    tokio::select! {
        _ = futures::future::join(up, down) => {}
        _ = watch => {}
        _ = end.notified() => {}
    }
}

/// A muted connection: takes what the board sends and never answers, until the board gives up.
async fn swallow(shared: &Shared, mut client: TcpStream, id: u32) {
    let mut framer = Framer::default();
    let mut buf = [0u8; 1024];
    loop {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                for packet in framer.push(&buf[..n]) {
                    if packet.kind == CONNECT {
                        shared.event(id, CableEventKind::Connect);
                    }
                }
            }
        }
    }
    shared.event(id, CableEventKind::BoardClosed);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Board to broker.
    Up,
    /// Broker to board.
    Down,
}

/// What both directions of a connection share.
struct Ends {
    shared: Arc<Shared>,
    id: u32,
    hole: Arc<AtomicBool>,
    end: Arc<Notify>,
    frame: bool,
}

/// What the writer does at `due`.
enum What {
    Bytes(Vec<u8>),
    /// The reader's side closed: pass the FIN on.
    Eof,
    /// The rig cuts the connection here.
    End,
}

struct Delivery {
    due: Instant,
    what: What,
    /// Recorded once delivered.
    events: Vec<CableEventKind>,
}

/// When bytes leave, under the link's faults: after the cap let them through, plus latency and jitter, never
/// before the bytes ahead of them.
#[derive(Debug)]
struct Pacer {
    sent_until: Instant,
    last_due: Instant,
}

impl Pacer {
    fn new() -> Pacer {
        let now = Instant::now();
        Pacer {
            sent_until: now,
            last_due: now,
        }
    }

    fn due(&mut self, now: Instant, len: usize, link: &LinkFaults, jitter: Duration) -> Instant {
        let sent = match link.bytes_per_s {
            Some(rate) if rate > 0 => {
                let start = self.sent_until.max(now);
                let end = start + Duration::from_secs_f64(len as f64 / rate as f64);
                self.sent_until = end;
                end
            }
            _ => now,
        };
        let due = (sent + link.latency + jitter).max(self.last_due);
        self.last_due = due;
        due
    }

    /// How far the cap is behind: the reader waits while it is more than half a second.
    fn backlog(&self, now: Instant) -> Duration {
        self.sent_until.saturating_duration_since(now)
    }
}

/// Pieces the pacer times one by one (a large packet trickles through a slow link).
const PIECE: usize = 1024;
const MAX_BACKLOG: Duration = Duration::from_millis(500);

/// One direction: a reader that times what it reads and a writer that delivers it when due.
async fn pump<R, W>(ends: &Ends, mut from: R, mut to: W, way: Way)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
    let reader = async {
        let mut framer = Framer::default();
        let mut pacer = Pacer::new();
        let mut buf = vec![0u8; PIECE];
        loop {
            let backlog = pacer.backlog(Instant::now());
            if backlog > MAX_BACKLOG {
                tokio::time::sleep(backlog - MAX_BACKLOG).await;
            }
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => 0,
                Ok(n) => n,
            };
            let now = Instant::now();
            let link = ends.shared.link();
            let send = |bytes: &[u8], events: Vec<CableEventKind>, pacer: &mut Pacer| {
                let mut events = Some(events);
                for piece in bytes.chunks(PIECE) {
                    let jitter = ends.shared.random_share(link.jitter);
                    let due = pacer.due(now, piece.len(), &link, jitter);
                    let _ = tx.send(Delivery {
                        due,
                        what: What::Bytes(piece.to_vec()),
                        events: events.take().unwrap_or_default(),
                    });
                }
            };
            if n == 0 {
                // What is left of a packet goes as it is, then the FIN.
                let rest = framer.take_rest();
                if !rest.is_empty() && !ends.hole.load(Ordering::SeqCst) {
                    send(&rest, Vec::new(), &mut pacer);
                }
                let closed = match way {
                    Way::Up => CableEventKind::BoardClosed,
                    Way::Down => CableEventKind::BrokerClosed,
                };
                ends.shared.event(ends.id, closed);
                let due = pacer.due(now, 0, &link, Duration::ZERO);
                let _ = tx.send(Delivery {
                    due,
                    what: What::Eof,
                    events: Vec::new(),
                });
                return;
            }
            if ends.hole.load(Ordering::SeqCst) {
                // Vanished.
                continue;
            }
            if !ends.frame {
                send(&buf[..n], Vec::new(), &mut pacer);
                continue;
            }
            match way {
                // Whole packets only, so one can be cut in the middle.
                Way::Up => {
                    for packet in framer.push(&buf[..n]) {
                        let mut events = Vec::new();
                        match packet.kind {
                            CONNECT => events.push(CableEventKind::Connect),
                            PINGREQ => events.push(CableEventKind::PingReq),
                            PUBLISH => {
                                let topic = packet.topic().unwrap_or_default();
                                if ends.shared.take_cut(&topic) {
                                    let total = packet.bytes.len();
                                    let forwarded = (total / 2).max(1);
                                    send(&packet.bytes[..forwarded], Vec::new(), &mut pacer);
                                    let due = pacer.due(now, 0, &link, Duration::ZERO);
                                    let _ = tx.send(Delivery {
                                        due,
                                        what: What::End,
                                        events: vec![CableEventKind::CutMidPublish {
                                            topic,
                                            forwarded,
                                            total,
                                        }],
                                    });
                                    return;
                                }
                                events.push(CableEventKind::Publish {
                                    topic,
                                    bytes: packet.bytes.len(),
                                });
                            }
                            _ => {}
                        }
                        send(&packet.bytes, events, &mut pacer);
                    }
                }
                // As it comes; the packets are only watched.
                Way::Down => {
                    let events = framer
                        .push(&buf[..n])
                        .iter()
                        .filter_map(|p| match p.kind {
                            CONNACK if p.bytes.len() >= 4 => Some(CableEventKind::ConnAck {
                                session_present: p.bytes[2] & 1 == 1,
                                code: p.bytes[3],
                            }),
                            _ => None,
                        })
                        .collect();
                    send(&buf[..n], events, &mut pacer);
                }
            }
        }
    };
    let writer = async {
        while let Some(d) = rx.recv().await {
            tokio::time::sleep_until(d.due.into()).await;
            if ends.hole.load(Ordering::SeqCst) {
                // Nothing arrives, not even a FIN: only the reader ending ends this side.
                continue;
            }
            match d.what {
                What::Bytes(bytes) => {
                    if to.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                What::Eof => {
                    let _ = to.shutdown().await;
                    return;
                }
                What::End => {
                    let _ = to.flush().await;
                    for e in d.events {
                        ends.shared.event(ends.id, e);
                    }
                    ends.end.notify_one();
                    return;
                }
            }
            for e in d.events {
                ends.shared.event(ends.id, e);
            }
        }
    };
    futures::future::join(reader, writer).await;
}

const CONNECT: u8 = 1;
const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const PINGREQ: u8 = 12;

/// One whole MQTT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Packet {
    kind: u8,
    /// Where the variable header starts.
    body: usize,
    bytes: Vec<u8>,
}

impl Packet {
    /// A PUBLISH's topic.
    fn topic(&self) -> Option<String> {
        let b = self.bytes.get(self.body..)?;
        let len = usize::from(u16::from_be_bytes([*b.first()?, *b.get(1)?]));
        let topic = b.get(2..2 + len)?;
        Some(String::from_utf8_lossy(topic).into_owned())
    }
}

/// MQTT packets out of a byte stream. Bytes that are not MQTT (a bad length) are passed on as they are, from then on.
#[derive(Debug, Default)]
struct Framer {
    buf: Vec<u8>,
    raw: bool,
}

impl Framer {
    /// The packets these bytes complete (in raw mode, every byte as one "packet" of kind 0).
    fn push(&mut self, bytes: &[u8]) -> Vec<Packet> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            if self.raw {
                if !self.buf.is_empty() {
                    out.push(Packet {
                        kind: 0,
                        body: 0,
                        bytes: std::mem::take(&mut self.buf),
                    });
                }
                return out;
            }
            match packet_length(&self.buf) {
                Length::Need => return out,
                Length::Bad => self.raw = true,
                Length::Whole { header, total } => {
                    let rest = self.buf.split_off(total);
                    let bytes = std::mem::replace(&mut self.buf, rest);
                    out.push(Packet {
                        kind: bytes[0] >> 4,
                        body: header,
                        bytes,
                    });
                }
            }
        }
    }

    /// The bytes of a packet not yet complete.
    fn take_rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

enum Length {
    Need,
    Bad,
    /// `header`: fixed header length; `total`: the whole packet's.
    Whole {
        header: usize,
        total: usize,
    },
}

/// The length of the packet at the start of `buf`, if it is all there.
fn packet_length(buf: &[u8]) -> Length {
    let mut remaining = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Length::Need;
        };
        remaining |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            let header = 2 + i;
            let total = header + remaining;
            return if buf.len() >= total {
                Length::Whole { header, total }
            } else {
                Length::Need
            };
        }
    }
    Length::Bad
}

/// Debian's mosquitto, run by the rig for one scenario (no persistence, anonymous, loopback), so the rig can kill
/// and restart it: a broker that loses its state. Killed when dropped.
pub struct Mosquitto {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<std::process::Child>,
}

impl Mosquitto {
    /// The mosquitto program: `/usr/sbin/mosquitto` (Debian), else `mosquitto` on PATH.
    pub fn find() -> Option<PathBuf> {
        let debian = PathBuf::from("/usr/sbin/mosquitto");
        if debian.exists() {
            return Some(debian);
        }
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("mosquitto"))
                .find(|p| p.exists())
        })
    }

    /// Starts `bin` on a free loopback port, with its config and log in `dir`.
    pub async fn start(bin: &Path, dir: &Path) -> Result<Mosquitto> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut m = Mosquitto {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            port: crate::broker::free_port()?,
            child: None,
        };
        m.spawn().await?;
        Ok(m)
    }

    /// Where it listens.
    pub fn target(&self) -> BrokerTarget {
        BrokerTarget {
            host: "127.0.0.1".into(),
            port: self.port,
            username: None,
            password: None,
            tls: None,
        }
    }

    /// Kills it (SIGKILL: nothing saved, as with `persistence false` there is nothing to save) and starts it again
    /// on the same port: every retained message, session and subscription is gone.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn().await
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn spawn(&mut self) -> Result<()> {
        let conf = self.dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n",
                self.port
            ),
        )
        .with_context(|| format!("cannot write {}", conf.display()))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("mosquitto.log"))?;
        let child = std::process::Command::new(&self.bin)
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                let log =
                    std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default();
                bail!("mosquitto ended ({status}): {}", log.trim());
            }
            if Instant::now() > deadline {
                bail!(
                    "mosquitto did not listen on 127.0.0.1:{} within 5 s",
                    self.port
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn publish(topic: &str, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x30, 0];
        let body = 2 + topic.len() + payload.len();
        p[1] = body as u8;
        p.extend_from_slice(&(topic.len() as u16).to_be_bytes());
        p.extend_from_slice(topic.as_bytes());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn framer_finds_packets_across_reads() {
        let mut f = Framer::default();
        let a = publish("m/x", b"hello");
        let mut stream = a.clone();
        stream.extend_from_slice(&[0xC0, 0x00]); // PINGREQ
        let (one, two) = stream.split_at(4);
        assert!(f.push(one).is_empty());
        let packets = f.push(two);
        assert_eq!(packets.len(), 2);
        assert_eq!(packets[0].bytes, a);
        assert_eq!(packets[0].topic().as_deref(), Some("m/x"));
        assert_eq!(packets[1].kind, PINGREQ);
        // A long remaining length in several bytes.
        let big = publish_long("t", 300);
        let packets = f.push(&big);
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0].bytes.len(), big.len());
        // Not MQTT: passed on as it is.
        let mut junk = Framer::default();
        let out = junk.push(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes.len(), 7);
    }

    fn publish_long(topic: &str, n: usize) -> Vec<u8> {
        let body = 2 + topic.len() + n;
        let mut p = vec![0x30, (body as u8 & 0x7F) | 0x80, (body >> 7) as u8];
        p.extend_from_slice(&(topic.len() as u16).to_be_bytes());
        p.extend_from_slice(topic.as_bytes());
        p.extend(std::iter::repeat_n(b'x', n));
        p
    }

    #[test]
    fn the_pacer_keeps_order_and_the_cap() {
        let mut p = Pacer::new();
        let now = Instant::now();
        let link = LinkFaults {
            latency: Duration::from_millis(100),
            jitter: Duration::ZERO,
            bytes_per_s: Some(1000),
        };
        let first = p.due(now, 500, &link, Duration::from_millis(80));
        let second = p.due(now, 500, &link, Duration::ZERO);
        // 0.5 s on the wire + 100 ms + 80 ms jitter; the second after it (1 s on the wire + 100 ms), never before.
        assert_eq!(first - now, Duration::from_millis(680));
        assert_eq!(second - now, Duration::from_millis(1100));
        assert_eq!(p.backlog(now), Duration::from_secs(1));
        let third = p.due(now, 0, &LinkFaults::default(), Duration::ZERO);
        assert_eq!(third, second, "never before what is ahead of it");
    }

    /// A listener that echoes: a broker stand-in.
    async fn echo() -> BrokerTarget {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        BrokerTarget {
            host: "127.0.0.1".into(),
            port,
            username: None,
            password: None,
            tls: None,
        }
    }

    async fn round_trip(s: &mut TcpStream, bytes: &[u8]) -> Duration {
        let t = Instant::now();
        s.write_all(bytes).await.unwrap();
        let mut back = vec![0u8; bytes.len()];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(back, bytes);
        t.elapsed()
    }

    #[tokio::test]
    async fn latency_delays_each_way_and_a_black_hole_swallows_without_a_reset() {
        let target = echo().await;
        let cable = Cable::start(&target).await.unwrap();
        let mut s = TcpStream::connect(("127.0.0.1", cable.port)).await.unwrap();
        let fast = round_trip(&mut s, &publish("a", b"1")).await;
        assert!(fast < Duration::from_millis(50), "{fast:?}");
        cable.set_link(LinkFaults {
            latency: Duration::from_millis(60),
            ..LinkFaults::default()
        });
        let slow = round_trip(&mut s, &publish("a", b"2")).await;
        assert!(slow >= Duration::from_millis(120), "both ways: {slow:?}");
        cable.set_link(LinkFaults::default());

        cable.black_hole();
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.write_all(&publish("a", b"3")).await.unwrap();
        let mut b = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(300), s.read(&mut b)).await;
        assert!(
            read.is_err(),
            "nothing comes back, not even a FIN: {read:?}"
        );
        // A new connection passes.
        let mut fresh = TcpStream::connect(("127.0.0.1", cable.port)).await.unwrap();
        round_trip(&mut fresh, &publish("a", b"4")).await;
        let kinds: Vec<CableEventKind> = cable.events().into_iter().map(|e| e.kind).collect();
        assert!(kinds.contains(&CableEventKind::BlackHoled), "{kinds:?}");
    }

    #[tokio::test]
    async fn a_cap_holds_the_rate() {
        let target = echo().await;
        let cable = Cable::start(&target).await.unwrap();
        cable.set_link(LinkFaults {
            bytes_per_s: Some(20_000),
            ..LinkFaults::default()
        });
        let mut s = TcpStream::connect(("127.0.0.1", cable.port)).await.unwrap();
        // 10 kB up and back at 20 kB/s each way, pipelined: about half a second, not a millisecond.
        let took = round_trip(&mut s, &publish_long("t", 10_000)).await;
        assert!(took >= Duration::from_millis(450), "{took:?}");
        assert!(took < Duration::from_millis(2000), "{took:?}");
    }

    #[tokio::test]
    async fn a_cut_publish_arrives_half_and_the_connection_ends() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let target = BrokerTarget {
            host: "127.0.0.1".into(),
            port,
            username: None,
            password: None,
            tls: None,
        };
        let cable = Cable::start(&target).await.unwrap();
        cable.cut_next_publish("data").unwrap();
        let mut board = TcpStream::connect(("127.0.0.1", cable.port)).await.unwrap();
        let (mut broker, _) = l.accept().await.unwrap();
        let before = publish("m/status", b"ok");
        let cut = publish("m/data", b"0123456789abcdef");
        let mut both = before.clone();
        both.extend_from_slice(&cut);
        board.write_all(&both).await.unwrap();
        let mut got = Vec::new();
        broker.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), before.len() + cut.len() / 2, "{got:?}");
        assert_eq!(&got[..before.len()], &before[..]);
        let mut b = [0u8; 1];
        assert_eq!(
            board.read(&mut b).await.unwrap_or(0),
            0,
            "the board sees the end"
        );
        assert!(cable.events().iter().any(|e| matches!(
            &e.kind,
            CableEventKind::CutMidPublish { topic, .. } if topic == "m/data"
        )));
    }

    #[tokio::test]
    async fn muted_connections_are_taken_and_never_answered() {
        let target = echo().await;
        let cable = Cable::start(&target).await.unwrap();
        cable.set_mute(true);
        let mut s = TcpStream::connect(("127.0.0.1", cable.port)).await.unwrap();
        s.write_all(&[0x10, 0x00]).await.unwrap();
        let mut b = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(200), s.read(&mut b)).await;
        assert!(read.is_err(), "{read:?}");
        drop(s);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let kinds: Vec<CableEventKind> = cable.events().into_iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![
                CableEventKind::Accepted { muted: true },
                CableEventKind::Connect,
                CableEventKind::BoardClosed
            ]
        );
    }
}
