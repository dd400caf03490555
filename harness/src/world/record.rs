//! What a scenario's [`Rig`] keeps for its evidence (GPIO line events, HTTP exchanges, browser actions, what the
//! current step expects), how it tells an infrastructure failure from a firmware one, and waits that stop as soon as
//! the answer is known instead of running out the timeout.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use super::{ctx, Rig};
use crate::board::{Board, BoardError, Liveness};
use crate::evidence::{Evidence, Expectation, GpioEntry, HttpExchange, LineSource, MqttEntry};
use crate::observer::{Observer, Seen};

/// A dead board's last messages may still be on their way to the observer.
const GRACE: Duration = Duration::from_millis(250);

/// What a board in manual mode says when a cycle is over and none is pending.
const IDLE_MANUAL: &str = "Idle - No Autostart";

/// How long after an idle board's last word the rig takes its silence as final.
const SETTLE: Duration = Duration::from_millis(300);

/// The scenario's start: the zero of every time in its evidence.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epoch(pub(crate) Instant);

impl Default for Epoch {
    fn default() -> Self {
        Epoch(Instant::now())
    }
}

/// The scenario's record (a field of the Rig).
#[derive(Debug, Default)]
pub(crate) struct Journal {
    pub(crate) epoch: Epoch,
    gpio: Vec<GpioEntry>,
    http: Vec<HttpExchange>,
    web: Vec<(Duration, String)>,
    /// The timeline of observers a later board start replaced.
    mqtt_before: Vec<MqttEntry>,
    expectation: Option<Expectation>,
    /// What failed, when the infrastructure did.
    infrastructure: Option<String>,
    /// A console line the board refused and no step has checked yet: `(line, reply)`.
    refused: Option<(String, String)>,
    /// Console lines the rig sent.
    console_sent: Vec<(Duration, String)>,
    /// What the rig did to the board or its broker (power, reset, the broker cable).
    actions: Vec<(Duration, String)>,
}

fn mqtt_entries(obs: &Observer, epoch: Instant) -> Vec<MqttEntry> {
    let offset = obs.started().saturating_duration_since(epoch);
    obs.timeline()
        .into_iter()
        .map(|l| MqttEntry {
            at: offset + l.seen.at,
            direction: l.direction,
            topic: l.topic,
            payload: l.seen.payload,
            retain: l.seen.retain,
            qos: l.seen.qos,
        })
        .collect()
}

impl Rig {
    /// Time since the scenario started.
    pub(crate) fn now(&self) -> Duration {
        self.journal.epoch.0.elapsed()
    }

    /// What the current step checks, for the report's expected-against-actual.
    pub(crate) fn expect(&mut self, what: String, topic: Option<String>, expected: String) {
        self.journal.expectation = Some(Expectation {
            at: self.now(),
            what,
            topic,
            expected,
            actual: None,
        });
    }

    /// What the current step saw instead (when no topic in the tree says it).
    pub(crate) fn saw(&mut self, actual: impl Into<String>) {
        if let Some(e) = self.journal.expectation.as_mut() {
            e.actual = Some(actual.into());
        }
    }

    /// Marks the scenario's failure as the infrastructure's; the error says so.
    pub(crate) fn infrastructure(
        &mut self,
        what: &str,
        e: impl Into<anyhow::Error>,
    ) -> anyhow::Error {
        let e = e.into();
        let text = format!("{what}: {e:#}");
        self.journal.infrastructure = Some(text.clone());
        anyhow!("infrastructure: {text}")
    }

    /// Runs a board operation (blocking I/O) on a blocking thread; the board goes there and back. Cucumber polls
    /// every scenario inside one task, so an operation that blocked that task (a board's start, a flash) would
    /// stop every other scenario's steps for as long. `None`: no board, or the blocking thread itself was lost.
    /// An operation that panics comes back as an error, with the board (its console and state stay evidence).
    pub(crate) async fn off_task<T: Send + 'static>(
        &mut self,
        op: impl FnOnce(&mut dyn Board) -> Result<T, BoardError> + Send + 'static,
    ) -> Option<Result<T, BoardError>> {
        let mut board = self.board.take()?;
        let (board, result) = tokio::task::spawn_blocking(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(&mut *board)))
                .unwrap_or_else(|panic| Err(BoardError::Start(panic_text(&*panic))));
            (board, result)
        })
        .await
        .ok()?;
        self.board = Some(board);
        Some(result)
    }

    /// Runs a board operation off the scenarios' task ([`Rig::off_task`]) and classifies its failure.
    pub(crate) async fn on_board<T: Send + 'static>(
        &mut self,
        what: &str,
        op: impl FnOnce(&mut dyn Board) -> Result<T, BoardError> + Send + 'static,
    ) -> Result<T> {
        let had_board = self.board.is_some();
        let Some(result) = self.off_task(op).await else {
            return Err(if had_board {
                self.infrastructure(
                    what,
                    anyhow!("the rig lost the board (its operation panicked)"),
                )
            } else {
                anyhow!("no board: start one with 'Given a virtual board ...'")
            });
        };
        match result {
            Ok(v) => Ok(v),
            Err(e) if e.is_infrastructure() => Err(self.infrastructure(what, e)),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) fn gpio_event(&mut self, text: String) {
        let at = self.now();
        self.journal.gpio.push(GpioEntry {
            at,
            source: LineSource::Rig,
            text,
        });
    }

    /// The rig did something to the board or its broker.
    pub(crate) fn action(&mut self, text: impl Into<String>) {
        let at = self.now();
        self.journal.actions.push((at, text.into()));
    }

    /// The rig sent a console line.
    pub(crate) fn console_sent(&mut self, line: &str) {
        let at = self.now();
        self.journal.console_sent.push((at, line.to_string()));
    }

    /// When the rig last did something the board may act on: published, typed, drove a line, sent a request.
    fn last_action(&self) -> Duration {
        let published = self.observer.as_ref().and_then(|o| {
            let offset = o.started().saturating_duration_since(self.journal.epoch.0);
            o.timeline()
                .iter()
                .rev()
                .find(|l| l.direction == crate::observer::Direction::Published)
                .map(|l| offset + l.seen.at)
        });
        [
            published,
            self.journal.console_sent.last().map(|c| c.0),
            self.journal.gpio.last().map(|g| g.at),
            self.journal.http.last().map(|h| h.at),
            self.journal.actions.last().map(|a| a.0),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or_default()
    }

    /// A board in manual mode that said it is idle after the rig's last action publishes no process topic until
    /// the rig starts a cycle.
    fn idle_board(&self, topic: &str) -> Option<String> {
        let process = format!("{}/process/", self.main_topic);
        if !topic.starts_with(&process) || topic.starts_with(&format!("{process}ctrl/")) {
            return None;
        }
        let obs = self.observer.as_ref()?;
        let state = obs.get(&format!("{process}status/process_state"))?;
        let at = obs
            .started()
            .saturating_duration_since(self.journal.epoch.0)
            + state.at;
        let quiet = self.now().saturating_sub(at);
        (state.payload == IDLE_MANUAL && at > self.last_action() && quiet >= SETTLE).then(|| {
            format!(
                "the board is idle in manual mode (process_state '{IDLE_MANUAL}' since +{:.3}s, after the rig's \
                 last action), so nothing changes it until a cycle is triggered",
                at.as_secs_f64()
            )
        })
    }

    pub(crate) fn web_event(&mut self, text: String) {
        let at = self.now();
        self.journal.web.push((at, text));
    }

    pub(crate) fn http_exchange(&mut self, exchange: HttpExchange) {
        self.journal.http.push(exchange);
    }

    /// A console line the scenario typed was refused; until a step checks the reply, waits know their answer.
    pub(crate) fn console_refused(&mut self, line: &str, reply: &str) {
        self.journal.refused = reply
            .starts_with("err")
            .then(|| (line.to_string(), reply.to_string()));
    }

    /// A step looked at the console's reply.
    pub(crate) fn console_checked(&mut self) {
        self.journal.refused = None;
    }

    /// A new observer replaces the old one: keep what the old one saw.
    pub(crate) fn replace_observer(&mut self, obs: Observer) {
        if let Some(old) = self.observer.take() {
            let epoch = self.journal.epoch.0;
            self.journal.mqtt_before.extend(mqtt_entries(&old, epoch));
        }
        self.observer = Some(obs);
    }

    /// Why waiting longer cannot help, if the board already told: it is not running (powered off, or its program
    /// ended) and `topic` is not the connection topic the broker's will sets; or, in a `Then`, a console line of
    /// this scenario was refused and no step checked the refusal.
    pub(crate) fn known_outcome(&mut self, topic: Option<&str>, then: bool) -> Option<String> {
        if then {
            if let Some((line, reply)) = &self.journal.refused {
                return Some(format!(
                    "the board refused the console line {line:?} ({reply}), so this cannot come"
                ));
            }
        }
        if topic.is_some_and(|t| t.ends_with("device/status/connection")) {
            return None;
        }
        if let Some(idle) = topic.filter(|_| then).and_then(|t| self.idle_board(t)) {
            return Some(idle);
        }
        let board = self.board.as_deref_mut()?;
        match board.liveness() {
            Liveness::Running => None,
            Liveness::PoweredOff => Some("the board is powered off: it publishes nothing".into()),
            Liveness::Exited(status) => {
                let tail: Vec<String> = board
                    .console_lines()
                    .into_iter()
                    .rev()
                    .take(5)
                    .rev()
                    .collect();
                Some(format!(
                    "the board program ended ({status}); its last console lines: {tail:?}"
                ))
            }
        }
    }

    /// Waits until the absolute `topic` satisfies `ok` (the run's timeout at most), or fails at once when the
    /// answer is known ([`Rig::known_outcome`]).
    pub(crate) async fn wait_topic(
        &mut self,
        topic: &str,
        what: &str,
        then: bool,
        ok: impl Fn(&Seen) -> bool,
    ) -> Result<Seen> {
        self.wait_topic_for(topic, what, then, ctx().timeout, ok)
            .await
    }

    /// [`Rig::wait_topic`] for at most `timeout`.
    pub(crate) async fn wait_topic_for(
        &mut self,
        topic: &str,
        what: &str,
        then: bool,
        timeout: Duration,
        ok: impl Fn(&Seen) -> bool,
    ) -> Result<Seen> {
        let start = Instant::now();
        loop {
            let obs = self.obs()?;
            if let Some(s) = obs.get(topic).filter(|s| ok(s)) {
                return Ok(s);
            }
            let known = if start.elapsed() >= GRACE {
                self.known_outcome(Some(topic), then)
            } else {
                None
            };
            if known.is_some() || start.elapsed() > timeout {
                let obs = self.obs()?;
                let history: Vec<String> = obs
                    .history_of(topic)
                    .iter()
                    .map(|s| s.payload.clone())
                    .collect();
                let had = match obs.get(topic) {
                    Some(s) => format!("last payload {:?} (history {history:?})", s.payload),
                    None => {
                        let near: Vec<String> = obs.tree().keys().take(40).cloned().collect();
                        format!("it was never published; topics seen: {near:?}")
                    }
                };
                return Err(match known {
                    Some(why) => {
                        anyhow!("'{topic}' {what}: not waiting out {timeout:?}: {why}; {had}")
                    }
                    None => anyhow!("'{topic}' never {what} within {timeout:?}; {had}"),
                });
            }
            self.obs()?.changed().await;
        }
    }

    /// What the rig recorded, for the evidence of a failed step.
    pub fn evidence(&self) -> Evidence {
        let epoch = self.journal.epoch.0;
        let mut mqtt = self.journal.mqtt_before.clone();
        let (tree, firmware) = match &self.observer {
            Some(obs) => {
                mqtt.extend(mqtt_entries(obs, epoch));
                let firmware = obs
                    .get(&self.t("device/info/firmware_version"))
                    .map(|s| s.payload);
                (obs.tree(), firmware)
            }
            None => (Default::default(), None),
        };
        let mut gpio = self.journal.gpio.clone();
        let (console, board, state_dir) = match self.board.as_deref() {
            Some(b) => {
                let offset = b
                    .started()
                    .map(|s| s.saturating_duration_since(epoch))
                    .unwrap_or_default();
                gpio.extend(b.line_events().into_iter().map(|(at, text)| GpioEntry {
                    at: offset + at,
                    source: LineSource::Board,
                    text,
                }));
                gpio.sort_by_key(|g| g.at);
                let mut console: Vec<(Duration, String)> = b
                    .console_capture()
                    .into_iter()
                    .map(|(at, l)| (offset + at, l))
                    .chain(
                        self.journal
                            .console_sent
                            .iter()
                            .map(|(at, l)| (*at, format!("> {l}"))),
                    )
                    .collect();
                console.sort_by_key(|c| c.0);
                (
                    console,
                    b.describe(),
                    b.state_dir().map(|p| p.to_path_buf()),
                )
            }
            None => (Vec::new(), "no board started".into(), None),
        };
        Evidence {
            board,
            firmware,
            main_topic: self.main_topic.clone(),
            console,
            mqtt,
            gpio,
            http: self.journal.http.clone(),
            web: self.journal.web.clone(),
            actions: self.journal.actions.clone(),
            tree,
            expectation: self.journal.expectation.clone(),
            infrastructure: self.journal.infrastructure.clone(),
            state_files: state_dir
                .as_deref()
                .map(crate::evidence::read_state)
                .unwrap_or_default(),
            state_dir,
        }
    }
}

/// What a panic said, as the error of the board operation that panicked.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    let said = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    format!("the rig's board operation panicked: {said}")
}
