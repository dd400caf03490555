//! Steps that break things on purpose: the broker going away, a broker that restarts without persistence (one of
//! the scenario's own, at the far end of the board's cable), power loss.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use cucumber::{given, then, when};

use super::Step;
use crate::broker::BrokerTarget;
use crate::cable::{CableEventKind, Mosquitto, OwnBroker};
use crate::observer::Observer;
use crate::world::{ctx, Rig};

#[when(expr = "the broker goes away for {int} ms")]
async fn broker_away(w: &mut Rig, ms: u64) -> Step {
    w.action(format!("broker cable down for {ms} ms"));
    let cable = w.cable.as_ref().ok_or_else(|| anyhow!("no cable"))?;
    cable.set_down(true);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    cable.set_down(false);
    w.action("broker cable up");
    Ok(())
}

#[when("the broker restarts")]
async fn broker_restarts(w: &mut Rig) -> Step {
    broker_away(w, 500).await
}

#[when("the board loses power")]
async fn power_loss(w: &mut Rig) -> Step {
    w.action("power off");
    w.on_board("the rig cannot cut the board's power", |b| b.power_off())
        .await?;
    Ok(())
}

#[when("the board is powered on")]
async fn power_on(w: &mut Rig) -> Step {
    w.action("power on");
    w.on_board("the board did not start when powered on", |b| b.power_on())
        .await?;
    Ok(())
}

#[when(expr = "the broker goes away and I publish {string} to {string} meanwhile")]
async fn outage_publish(w: &mut Rig, payload: String, rel: String) -> Step {
    w.action("broker cable down");
    let cable = w.cable.as_ref().ok_or_else(|| anyhow!("no cable"))?;
    cable.set_down(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.publish(&rel, payload.as_bytes()).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let Some(c) = w.cable.as_ref() {
        c.set_down(false);
    }
    w.action("broker cable up");
    Ok(())
}

impl Rig {
    /// What the rig's observer subscribes to for this scenario's board.
    fn board_filters(&self) -> Vec<String> {
        let prefix = self
            .config
            .as_ref()
            .and_then(|c| c["mqtt"]["homeassistant"]["discoveryprefix"].as_str())
            .unwrap_or("homeassistant")
            .to_string();
        vec![
            format!("{}/#", self.main_topic),
            format!("{prefix}/+/{}/#", self.node),
        ]
    }

    /// Watches `target` from now on (the board's broker changed).
    async fn observe(&mut self, target: &BrokerTarget) -> Result<()> {
        let filters = self.board_filters();
        match Observer::connect(target, &filters).await {
            Ok(obs) => {
                self.replace_observer(obs);
                Ok(())
            }
            Err(e) => Err(self.infrastructure("the rig cannot watch the scenario's broker", e)),
        }
    }

    /// The board's retained tree on `target` (topic -> payload), as a new subscriber gets it.
    async fn retained_tree(&self, target: &BrokerTarget) -> Result<BTreeMap<String, String>> {
        let late = Observer::connect(target, &self.board_filters()).await?;
        // Retained messages come right after the subscription: until none came for 250 ms (3 s at most).
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut seen = usize::MAX;
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = late.tree().len();
            if now == seen || Instant::now() > deadline {
                break;
            }
            seen = now;
        }
        let tree = late
            .tree()
            .into_iter()
            .filter(|(_, s)| s.retain)
            .map(|(t, s)| (t, s.payload))
            .collect();
        late.disconnect().await;
        Ok(tree)
    }
}

/// A fresh embedded broker on a loopback port (admitting only `login` when given), started on a blocking thread
/// (the scenarios' task goes on).
async fn start_embedded_off_task(
    login: Option<(String, String)>,
) -> Result<crate::broker::BrokerTarget> {
    tokio::task::spawn_blocking(|| {
        crate::broker::start_embedded_with_login("127.0.0.1:0".parse()?, login)
    })
    .await
    .map_err(|e| anyhow::anyhow!("the embedded broker's start did not finish: {e}"))?
}

/// A broker for this scenario's board alone: an embedded rumqttd, or a mosquitto process.
async fn own_broker(kind: &str, dir: &std::path::Path) -> Result<OwnBroker> {
    match kind {
        "embedded" => {
            let target = start_embedded_off_task(None).await?;
            Ok(OwnBroker {
                target,
                mosquitto: None,
                retained_before: None,
            })
        }
        "mosquitto" => {
            let bin = Mosquitto::find().ok_or_else(|| {
                anyhow!(
                    "mosquitto is not installed (apt-get install mosquitto): the rig needs it to restart a mosquitto \
                     without persistence"
                )
            })?;
            let m = Mosquitto::start(&bin, dir).await?;
            Ok(OwnBroker {
                target: m.target(),
                mosquitto: Some(m),
                retained_before: None,
            })
        }
        other => anyhow::bail!("no such broker '{other}': embedded or mosquitto"),
    }
}

#[given(expr = "the board reaches its own {word} broker")]
async fn reaches_own_broker(w: &mut Rig, kind: String) -> Step {
    plain_run_broker(w)?;
    let dir = std::env::temp_dir().join(format!("hil-{}-broker", w.node));
    let own = match own_broker(&kind, &dir).await {
        Ok(own) => own,
        Err(e) => {
            return Err(w
                .infrastructure("the scenario's own broker did not start", e)
                .into())
        }
    };
    lead_cable_to(w, own, &kind).await?;
    w.wait_for("device/status/connection", "online").await?;
    Ok(())
}

#[given(
    expr = "the board reaches its own embedded broker that admits only {string} with password {string}"
)]
async fn reaches_own_broker_with_login(w: &mut Rig, user: String, password: String) -> Step {
    plain_run_broker(w)?;
    let target = match start_embedded_off_task(Some((user.clone(), password.clone()))).await {
        Ok(target) => target,
        Err(e) => {
            return Err(w
                .infrastructure("the scenario's own broker did not start", e)
                .into())
        }
    };
    let own = OwnBroker {
        target,
        mosquitto: None,
        retained_before: None,
    };
    lead_cable_to(w, own, "embedded (with a login)").await?;
    // The board learns the login the way a user gives it: through the REST API.
    let body = serde_json::json!({"mqtt": {"authmode": 1, "username": user, "password": password}});
    w.http("POST", "/api/config", &body.to_string()).await?;
    if w.http.0 != 200 {
        fail!(
            "the board refused its broker's login: {} {}",
            w.http.0,
            w.http.1
        );
    }
    w.wait_for("device/status/connection", "online").await?;
    Ok(())
}

/// A broker of the scenario's own speaks plain MQTT: a run on a TLS broker configured its boards for TLS.
fn plain_run_broker(w: &mut Rig) -> Step {
    if ctx().broker.tls.is_some() {
        return Err(w
            .infrastructure(
                "a broker of the scenario's own",
                anyhow!(
                    "it speaks plain MQTT, and the board was configured for the run's TLS broker"
                ),
            )
            .into());
    }
    Ok(())
}

/// The board's cable leads to `own` from now on, and the rig watches it there.
async fn lead_cable_to(w: &mut Rig, own: OwnBroker, kind: &str) -> Step {
    let target = own.target.clone();
    let cable = w.cable()?;
    cable.set_upstream(target.clone());
    cable.keep_own(own);
    // The board's connection to the run's broker ends; it comes back to the new one (a broker with no state).
    cable.cut();
    w.action(format!(
        "the board's cable now leads to its own {kind} broker at {}",
        target.uri()
    ));
    w.observe(&target).await?;
    Ok(())
}

#[when("the broker restarts without persistence")]
async fn restarts_without_persistence(w: &mut Rig) -> Step {
    let Some(mut own) = w.cable()?.take_own() else {
        fail!("no broker of the scenario's own to restart: 'Given the board reaches its own embedded broker' first");
    };
    let before = w.retained_tree(&own.target).await;
    let before = match before {
        Ok(tree) => tree,
        Err(e) => {
            w.cable()?.keep_own(own);
            return Err(w
                .infrastructure("the rig cannot read the broker's retained tree", e)
                .into());
        }
    };
    own.retained_before = Some(before);
    // Recoveries count from here: the broker goes away now.
    w.cable()?
        .remember("the broker restarted without persistence");
    let restarted = match own.mosquitto.as_mut() {
        // A real restart: killed, started again on its port, empty.
        Some(m) => m.restart().await.map(|()| own.target.clone()),
        // rumqttd cannot be stopped in-process: a fresh one takes its place behind the cable.
        None => start_embedded_off_task(None).await,
    };
    let target = match restarted {
        Ok(t) => t,
        Err(e) => {
            w.cable()?.keep_own(own);
            return Err(w.infrastructure("the broker did not come back", e).into());
        }
    };
    own.target = target.clone();
    let embedded = own.mosquitto.is_none();
    let cable = w.cable()?;
    cable.set_upstream(target.clone());
    cable.keep_own(own);
    if embedded {
        // The old instance still holds the board's connection: end it (a killed mosquitto ended it itself).
        cable.cut();
    }
    w.action(format!(
        "the broker restarted without persistence ({})",
        target.uri()
    ));
    w.observe(&target).await?;
    Ok(())
}

#[then("the board started a new session on the restarted broker")]
async fn new_session(w: &mut Rig) -> Step {
    let (fault, _) = w.fault_began()?;
    w.expect(
        "the broker lost the board's session: its CONNACK says session present 0".into(),
        None,
        "CONNACK session_present=0".into(),
    );
    let deadline = Instant::now() + ctx().timeout;
    loop {
        let connack = w.cable()?.events().into_iter().find_map(|e| match e.kind {
            CableEventKind::ConnAck {
                session_present,
                code: 0,
            } if e.at >= fault => Some(session_present),
            _ => None,
        });
        match connack {
            Some(false) => return Ok(()),
            Some(true) => {
                w.saw("session present 1");
                fail!(
                    "the restarted broker still had the board's session: it did not lose its state"
                );
            }
            None if Instant::now() > deadline => {
                fail!(
                    "no CONNACK reached the board within {:?} of the restart",
                    ctx().timeout
                )
            }
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[then(expr = "the whole retained tree is back within {int} s")]
async fn retained_tree_back(w: &mut Rig, secs: u64) -> Step {
    let (fault, _) = w.fault_began()?;
    let Some((target, Some(before))) = w.cable()?.own() else {
        fail!("the rig did not restart a broker of the scenario's own: 'When the broker restarts without persistence'");
    };
    w.expect(
        format!(
            "the {} retained topics of before the restart are back, each as it was",
            before.len()
        ),
        None,
        format!("{} retained topics", before.len()),
    );
    // A tree worth comparing: the birth, device info, discovery configs and retained process data.
    let main = w.main_topic.clone();
    let has = |rel: &str| {
        before
            .keys()
            .any(|t| t.starts_with(&format!("{main}/{rel}")))
    };
    let discovery = before
        .keys()
        .filter(|t| !t.starts_with(&format!("{main}/")))
        .count();
    let kinds = [
        ("device/status/connection", has("device/status/connection")),
        ("device/info/", has("device/info/")),
        ("process/data/", has("process/data/")),
        ("discovery configs", discovery > 0),
    ];
    let missing: Vec<&str> = kinds
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(k, _)| *k)
        .collect();
    if !missing.is_empty() {
        fail!(
            "before the restart the broker held no retained {missing:?} of this board (a scenario with discovery and \
             retained process data, after a cycle, is needed): {:?}",
            before.keys().collect::<Vec<_>>()
        );
    }
    let deadline = fault + Duration::from_secs(secs);
    loop {
        let now = w.retained_tree(&target).await?;
        let lost: Vec<&String> = before.keys().filter(|t| !now.contains_key(*t)).collect();
        let changed: Vec<String> = before
            .iter()
            .filter_map(|(t, p)| match now.get(t) {
                Some(q) if q != p => Some(format!("{t}: {p:?} -> {q:?}")),
                _ => None,
            })
            .collect();
        if lost.is_empty() && changed.is_empty() {
            let took = fault.elapsed();
            w.saw(format!("{} retained topics", now.len()));
            let info = before
                .keys()
                .filter(|t| t.starts_with(&format!("{main}/device/info/")))
                .count();
            let data = before
                .keys()
                .filter(|t| t.starts_with(&format!("{main}/process/data/")))
                .count();
            w.figure(
                &format!(
                    "broker state loss: {} retained topics back (device info {info}, discovery {discovery}, \
                     process data {data}, other {})",
                    before.len(),
                    before.len() - info - discovery - data
                ),
                took,
                Duration::from_secs(secs),
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            w.saw(format!("lost {lost:?}; changed {changed:?}"));
            fail!(
                "{secs} s after the restart, {} of {} retained topics are not back ({lost:?}) and {} differ ({changed:?})",
                lost.len(),
                before.len(),
                changed.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
