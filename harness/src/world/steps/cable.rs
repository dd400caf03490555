//! Steps that break the board's link to the broker the way Wi-Fi breaks it (the scenario's [`crate::cable::Cable`]):
//! latency and jitter, a bandwidth cap, a black hole, a broker that never sends CONNACK, a cut in the middle of a
//! publish; and steps that time the board's detection and recovery against the keepalive it uses (`mqtt.keepalive`).
//!
//! Every time measured is kept in the scenario's evidence (its actions) and, with `HIL_FAULT_TIMES=FILE`, appended to
//! FILE as one JSON line per figure.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use cucumber::{given, then, when};
use serde_json::json;

use super::Step;
use crate::cable::{Cable, CableEvent, CableEventKind, LinkFaults};
use crate::world::{ctx, Rig};

/// What a loaded machine may add to a deadline the board keeps: its timers fire on time, the rig sees the effect a
/// little later.
const SLACK: Duration = Duration::from_millis(500);

/// Below a protocol timeout by this much is too early to be that timeout.
const EARLY: Duration = Duration::from_millis(250);

/// The firmware's ceiling on its CONNACK and PINGRESP / PUBACK waits (net-proto `CONNACK_TIMEOUT_MS`,
/// `RESPONSE_TIMEOUT_MS`): the wait is the keepalive, at most this.
const WAIT_CEILING: Duration = Duration::from_secs(10);

impl Rig {
    pub(super) fn cable(&self) -> Result<&Cable> {
        self.cable.as_ref().ok_or_else(|| {
            anyhow!("no cable: only a virtual board reaches its broker through the rig's cable (tag the scenario @virtual-only)")
        })
    }

    /// The keepalive the board was configured with (`mqtt.keepalive`, 120 s by default).
    fn keepalive(&self) -> Duration {
        let s = self
            .config
            .as_ref()
            .and_then(|c| c["mqtt"]["keepalive"].as_u64())
            .unwrap_or(120);
        Duration::from_secs(s)
    }

    /// How long the board waits for a CONNACK, or for a PINGRESP / PUBACK it is owed.
    fn protocol_wait(&self) -> Duration {
        self.keepalive().min(WAIT_CEILING)
    }

    /// A measured time: into the evidence, and into `HIL_FAULT_TIMES` when set.
    pub(super) fn figure(&mut self, name: &str, took: Duration, bound: Duration) {
        let (value, bound) = (took.as_secs_f64() * 1000.0, bound.as_secs_f64() * 1000.0);
        self.figure_in(name, value, bound, "ms");
    }

    /// A measured figure in `unit`: into the evidence, and into `HIL_FAULT_TIMES` when set.
    fn figure_in(&mut self, name: &str, value: f64, bound: f64, unit: &str) {
        let keepalive = self.keepalive();
        self.action(format!(
            "{name}: {value:.1} {unit} (bound {bound:.1} {unit}, keepalive {keepalive:?})"
        ));
        let Some(path) = std::env::var_os("HIL_FAULT_TIMES") else {
            return;
        };
        let line = json!({
            "scenario_topic": self.main_topic,
            "figure": name,
            "value": value,
            "bound": bound,
            "unit": unit,
            "keepalive_s": keepalive.as_secs(),
        });
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }

    /// When the fault the rig caused last began: a cut publish counts from the cut, not from arming it.
    pub(super) fn fault_began(&self) -> Result<(Instant, String)> {
        let cable = self.cable()?;
        let (at, what) = cable
            .last_fault()
            .ok_or_else(|| anyhow!("the rig has not broken the link yet"))?;
        if what.starts_with("cut the next publish") {
            let cut = cable
                .events()
                .into_iter()
                .find(|e| e.at >= at && matches!(e.kind, CableEventKind::CutMidPublish { .. }))
                .ok_or_else(|| {
                    anyhow!("the armed cut has not happened: no publish to cut went by")
                })?;
            return Ok((cut.at, what));
        }
        Ok((at, what))
    }

    /// Waits (the run's timeout at most) for an event of the cable that `pick` takes.
    async fn cable_event(
        &mut self,
        what: &str,
        pick: impl Fn(&[CableEvent]) -> Option<CableEvent>,
    ) -> Result<CableEvent> {
        let deadline = Instant::now() + ctx().timeout;
        loop {
            let events = self.cable()?.events();
            if let Some(e) = pick(&events) {
                return Ok(e);
            }
            if let Some(why) = self.known_outcome(None, false) {
                anyhow::bail!(
                    "{what} cannot happen: {why}; the cable saw {}",
                    timeline(&events)
                );
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "{what} did not happen within {:?}; the cable saw {}",
                    ctx().timeout,
                    timeline(&events)
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The cable's events, short, for a failure message.
fn timeline(events: &[CableEvent]) -> String {
    let Some(first) = events.first() else {
        return "nothing".into();
    };
    let items: Vec<String> = events
        .iter()
        .rev()
        .take(30)
        .rev()
        .map(|e| {
            format!(
                "+{:.2}s #{} {:?}",
                e.at.duration_since(first.at).as_secs_f64(),
                e.conn,
                e.kind
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

#[given(expr = "the link adds {int} ms latency and {int} ms jitter")]
#[when(expr = "the link adds {int} ms latency and {int} ms jitter")]
async fn add_latency(w: &mut Rig, latency: u64, jitter: u64) -> Step {
    let cable = w.cable()?;
    let link = LinkFaults {
        latency: Duration::from_millis(latency),
        jitter: Duration::from_millis(jitter),
        ..cable.link()
    };
    cable.set_link(link);
    w.action(format!("link: {latency} ms latency, {jitter} ms jitter"));
    Ok(())
}

#[given(expr = "the link carries at most {int} bytes per second")]
#[when(expr = "the link carries at most {int} bytes per second")]
async fn cap_bandwidth(w: &mut Rig, rate: u64) -> Step {
    if rate == 0 {
        fail!("a link of 0 bytes per second is a black hole: say so");
    }
    let cable = w.cable()?;
    let link = LinkFaults {
        bytes_per_s: Some(rate),
        ..cable.link()
    };
    cable.set_link(link);
    w.action(format!("link: at most {rate} bytes/s"));
    Ok(())
}

#[when("the link is healthy again")]
async fn healthy(w: &mut Rig) -> Step {
    let cable = w.cable()?;
    cable.set_link(LinkFaults::default());
    cable.set_mute(false);
    w.action("link healthy");
    Ok(())
}

#[when("the link becomes a black hole")]
async fn black_hole(w: &mut Rig) -> Step {
    w.cable()?.black_hole();
    w.action("link: black hole (the connection's bytes vanish, no FIN, no RST)");
    Ok(())
}

#[when("the broker stops answering CONNECT")]
async fn mute(w: &mut Rig) -> Step {
    let cable = w.cable()?;
    cable.set_mute(true);
    // The current connection ends (the broker restarted into its stuck state); the board comes back to it.
    cable.cut();
    w.action("broker end: takes TCP, never sends CONNACK; current connection cut");
    Ok(())
}

#[when("the broker answers CONNECT again")]
async fn unmute(w: &mut Rig) -> Step {
    w.cable()?.set_mute(false);
    w.action("broker end: answers CONNECT again");
    Ok(())
}

#[when(expr = "the link cuts the board's next publish to {string} in the middle")]
async fn arm_cut(w: &mut Rig, rel: String) -> Step {
    let topic = w.t(&rel);
    w.cable()?.cut_next_publish(&topic)?;
    w.action(format!("link: cut the next publish to '{topic}' halfway"));
    Ok(())
}

#[then(expr = "the link cut a publish to {string} in the middle")]
async fn was_cut(w: &mut Rig, rel: String) -> Step {
    let topic = w.t(&rel);
    w.expect(
        format!("the link cut a publish to '{rel}' in the middle"),
        None,
        "a PUBLISH cut after part of its bytes".into(),
    );
    let e = w
        .cable_event("the cut", |events| {
            events
                .iter()
                .find(|e| matches!(&e.kind, CableEventKind::CutMidPublish { topic: t, .. } if *t == topic))
                .cloned()
        })
        .await?;
    if let CableEventKind::CutMidPublish {
        forwarded, total, ..
    } = e.kind
    {
        w.saw(format!("{forwarded} of {total} bytes went out"));
        if forwarded == 0 || forwarded >= total {
            fail!("the cut was not in the middle: {forwarded} of {total} bytes went out");
        }
    }
    Ok(())
}

#[then(regex = r"^the board detects the dead connection within (\d+(?:\.\d+)?) keepalives?$")]
async fn detects_dead(w: &mut Rig, keepalives: f64) -> Step {
    let (fault, what) = w.fault_began()?;
    let bound = w.keepalive().mul_f64(keepalives) + SLACK;
    let earliest = w.protocol_wait().saturating_sub(EARLY);
    w.expect(
        format!(
            "after '{what}', the board closes the dead connection within {keepalives} keepalives"
        ),
        None,
        format!("between {earliest:.2?} and {bound:.2?}"),
    );
    // The dead connection is the one the black hole took; the board's end closing is the board giving up on it.
    let closed = w
        .cable_event("the board closing the dead connection", |events| {
            let holed: Vec<u32> = events
                .iter()
                .filter(|e| e.kind == CableEventKind::BlackHoled && e.at >= fault)
                .map(|e| e.conn)
                .collect();
            events
                .iter()
                .find(|e| e.kind == CableEventKind::BoardClosed && holed.contains(&e.conn))
                .cloned()
        })
        .await?;
    let took = closed.at.duration_since(fault);
    w.saw(format!("{took:.2?}"));
    w.figure("black hole: detected", took, bound);
    if took > bound {
        fail!("the board held the dead connection for {took:.2?}, more than {keepalives} keepalives ({bound:.2?} with slack)");
    }
    if took < earliest {
        fail!(
            "the board dropped the connection after {took:.2?}, before its PINGRESP wait ({:?}) could have run out: \
             not its keepalive that told it",
            w.protocol_wait()
        );
    }
    Ok(())
}

#[then(regex = r"^the board gives up waiting for CONNACK within (\d+(?:\.\d+)?) keepalives?$")]
async fn gives_up_connack(w: &mut Rig, keepalives: f64) -> Step {
    let bound = w.keepalive().mul_f64(keepalives) + SLACK;
    let earliest = w.protocol_wait().saturating_sub(EARLY);
    w.expect(
        format!("the board closes a connection without CONNACK within {keepalives} keepalives, and tries again"),
        None,
        format!("between {earliest:.2?} and {bound:.2?}, then a new CONNECT"),
    );
    // The first muted connection the board sent CONNECT on, until it closes it; then its next attempt.
    let connect = w
        .cable_event("a CONNECT to the mute broker", |events| {
            let muted: Vec<u32> = events
                .iter()
                .filter(|e| e.kind == CableEventKind::Accepted { muted: true })
                .map(|e| e.conn)
                .collect();
            events
                .iter()
                .find(|e| e.kind == CableEventKind::Connect && muted.contains(&e.conn))
                .cloned()
        })
        .await?;
    let closed = w
        .cable_event("the board giving up the CONNECT", |events| {
            events
                .iter()
                .find(|e| e.kind == CableEventKind::BoardClosed && e.conn == connect.conn)
                .cloned()
        })
        .await?;
    let took = closed.at.duration_since(connect.at);
    w.saw(format!("{took:.2?}"));
    w.figure("no CONNACK: gave up", took, bound);
    if took > bound {
        fail!("the board waited {took:.2?} for a CONNACK, more than {keepalives} keepalives ({bound:.2?} with slack)");
    }
    if took < earliest {
        fail!(
            "the board gave up after {took:.2?}, before its CONNACK wait ({:?}): not the wait that ended it",
            w.protocol_wait()
        );
    }
    let again = w
        .cable_event("a new attempt after giving up", |events| {
            events
                .iter()
                .find(|e| e.kind == CableEventKind::Connect && e.conn > connect.conn)
                .cloned()
        })
        .await?;
    let pause = again.at.duration_since(closed.at);
    w.figure(
        "no CONNACK: next attempt after",
        pause,
        Duration::from_secs(5),
    );
    Ok(())
}

#[then(regex = r"^the board is back online within (\d+(?:\.\d+)?) keepalives? of the fault$")]
async fn back_online(w: &mut Rig, keepalives: f64) -> Step {
    let (fault, what) = w.fault_began()?;
    let bound = w.keepalive().mul_f64(keepalives) + SLACK;
    w.expect(
        format!("after '{what}', the board is connected again and says online within {keepalives} keepalives"),
        Some(w.t("device/status/connection")),
        format!("CONNACK and 'online' within {bound:.2?}"),
    );
    let connack = w
        .cable_event("a CONNACK after the fault", |events| {
            events
                .iter()
                .find(|e| {
                    e.at >= fault && matches!(e.kind, CableEventKind::ConnAck { code: 0, .. })
                })
                .cloned()
        })
        .await?;
    // And the device says so on the broker, after the fault.
    let topic = w.t("device/status/connection");
    let started = w.obs()?.started();
    let deadline = Instant::now() + ctx().timeout;
    let online = loop {
        let seen = w
            .obs()?
            .history_of(&topic)
            .into_iter()
            .map(|s| (started + s.at, s.payload))
            .find(|(at, p)| *at >= fault && p == "online");
        if let Some((at, _)) = seen {
            break at;
        }
        if Instant::now() > deadline {
            fail!(
                "'{topic}' did not say online after the fault within {:?}",
                ctx().timeout
            );
        }
        w.obs()?.changed().await;
    };
    let took = connack.at.max(online).duration_since(fault);
    w.saw(format!("{took:.2?}"));
    w.figure(&format!("{what}: back online"), took, bound);
    if took > bound {
        fail!(
            "the board was back after {took:.2?} (CONNACK +{:.2?}, online +{:.2?}), more than {keepalives} keepalives \
             ({bound:.2?} with slack)",
            connack.at.duration_since(fault),
            online.duration_since(fault)
        );
    }
    Ok(())
}

#[then("the board never lost its connection")]
async fn kept_connection(w: &mut Rig) -> Step {
    w.expect(
        "the board kept the one connection it opened".into(),
        None,
        "1 connection, never closed".into(),
    );
    let events = w.cable()?.events();
    let accepted = events
        .iter()
        .filter(|e| matches!(e.kind, CableEventKind::Accepted { .. }))
        .count();
    let closed = events.iter().any(|e| {
        matches!(
            e.kind,
            CableEventKind::BoardClosed | CableEventKind::BrokerClosed | CableEventKind::Cut
        )
    });
    if accepted != 1 || closed {
        w.saw(timeline(&events));
        fail!(
            "the board opened {accepted} connection(s){}: {}",
            if closed { " and one closed" } else { "" },
            timeline(&events)
        );
    }
    Ok(())
}

#[then(expr = "a cycle round trip takes between {int} and {int} ms")]
async fn cycle_round_trip(w: &mut Rig, low: u64, high: u64) -> Step {
    let topic = w.t("process/status/cycle_counter");
    w.expect(
        "cycle_start -> cycle_counter through the link".into(),
        Some(topic.clone()),
        format!("{low}..={high} ms"),
    );
    let before = w.obs()?.history_of(&topic).len();
    let t = Instant::now();
    w.publish("process/ctrl/cycle_start", b"1").await?;
    let deadline = t + ctx().timeout;
    while w.obs()?.history_of(&topic).len() <= before {
        if Instant::now() > deadline {
            fail!(
                "cycle_start had no effect: no new '{topic}' within {:?}",
                ctx().timeout
            );
        }
        if let Some(why) = w.known_outcome(Some(&topic), false) {
            fail!("cycle_start cannot have an effect: {why}");
        }
        w.obs()?.changed().await;
    }
    let took = t.elapsed();
    w.saw(format!("{} ms", took.as_millis()));
    w.figure("cycle round trip", took, Duration::from_millis(high));
    let ms = took.as_millis() as u64;
    if !(low..=high).contains(&ms) {
        fail!("a cycle round trip took {ms} ms, expected {low}..={high} ms");
    }
    Ok(())
}

#[then(expr = "the board's publishes crossed the link at no more than {int} bytes per second")]
async fn publish_rate(w: &mut Rig, rate: u64) -> Step {
    w.expect(
        "the cap held the board's publishes back".into(),
        None,
        format!("<= {rate} bytes/s over at least 1 s"),
    );
    let events = w.cable()?.events();
    let sent: Vec<(Instant, usize)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            CableEventKind::Publish { bytes, .. } => Some((e.at, *bytes)),
            _ => None,
        })
        .collect();
    let (Some(first), Some(last)) = (sent.first(), sent.last()) else {
        fail!("the board published nothing through the link");
    };
    let span = last.0.duration_since(first.0);
    // The first publish's bytes went out before its delivery: count what came after it.
    let bytes: usize = sent.iter().skip(1).map(|(_, b)| b).sum();
    if span < Duration::from_secs(1) {
        w.saw(format!("{bytes} bytes in {span:.2?}"));
        fail!("{bytes} bytes in {span:.2?}: too little traffic to tell a cap (or no cap: they were not held back)");
    }
    let measured = bytes as f64 / span.as_secs_f64();
    w.saw(format!(
        "{measured:.0} bytes/s ({bytes} bytes in {span:.2?})"
    ));
    w.figure_in("capped publishes", measured, rate as f64, "bytes/s");
    // 5% for timer granularity.
    if measured > rate as f64 * 1.05 {
        fail!("the board's publishes crossed at {measured:.0} bytes/s, over the cap of {rate}");
    }
    Ok(())
}
