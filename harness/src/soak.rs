//! The soak (`hil soak`): one virtual board through many cycles with MQTT, GPIO, HTTP and console traffic and broker
//! restarts, watched for what long runs reveal: memory that grows (the process's RSS, and the firmware's own heap
//! as the console's `status` reports it, against the ESP32-C3's ~72 KiB), publishes that go missing, and cycles that
//! get slower.
//!
//! Each cycle: a GPIO ctrl (PWM duty) and a `cycle_start` over MQTT, an input pin driven through the GPIO socket and
//! `GET /api/status` over HTTP; the cycle is done when its `cycle_counter` arrives. Every tenth cycle the meter shows
//! a new reading (console `frame`). Every `sample_every` cycles: the console's `status` (heap), the process's RSS,
//! the PWM duty read back from the line. Every `restart_every` cycles the broker restarts: the board's cable drops
//! its connection and refuses new ones for a moment (any broker), or, with [`BrokerKind::Mosquitto`], a mosquitto of
//! the soak's own is killed and started again without persistence.
//!
//! The rig watches with a lean MQTT client of its own (counts and sets, no history): the scenario observer keeps
//! every message, which over 100,000 cycles would make the rig the thing that grows.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::{json, Value};

use crate::board::{Board, VirtualBoard};
use crate::broker::BrokerTarget;
use crate::cable::{Cable, Mosquitto};
use crate::observer::client_over;
use crate::quickack::Link;

/// Where the soak's broker comes from.
#[derive(Debug, Clone)]
pub enum BrokerKind {
    /// A running broker (embedded or external); restarts are the cable dropping the board's connection.
    Given(BrokerTarget),
    /// A mosquitto of the soak's own (this program), killed and restarted without persistence.
    Mosquitto(PathBuf),
}

/// How long one console line waits for its reply, and how often it is sent.
const CONSOLE_WAIT: Duration = Duration::from_secs(3);
const CONSOLE_ATTEMPTS: u32 = 3;

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub board_bin: PathBuf,
    pub broker: BrokerKind,
    pub cycles: u64,
    /// Stop earlier, after this long (the report says how far it got and extrapolates).
    pub max_duration: Option<Duration>,
    /// A pause between cycles (0: the next cycle starts as soon as the last one's counter arrived).
    pub interval: Duration,
    pub sample_every: u64,
    /// 0: never.
    pub restart_every: u64,
    /// How long the broker stays away at a restart.
    pub outage: Duration,
}

/// One sample of the board's memory and speed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    pub cycle: u64,
    pub elapsed_s: f64,
    pub rss_kib: u64,
    pub heap_internal_free: u64,
    pub heap_internal_min_free: u64,
    /// Median time per cycle (trigger to counter) since the previous sample, in ms.
    pub cycle_p50_ms: f64,
    pub cycle_p99_ms: f64,
}

/// What the soak found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SoakReport {
    pub firmware: String,
    pub broker: String,
    pub cycles_asked: u64,
    pub cycles_run: u64,
    pub elapsed_s: f64,
    pub cycles_per_s: f64,
    pub restarts: u64,
    /// Time from a restart until the board said `online` again, longest.
    pub restart_recovery_max_ms: f64,
    pub samples: Vec<Sample>,
    /// cycle_counter values between 1 and the last one the rig never received.
    pub counters_lost: u64,
    /// Cycles beyond the triggers sent (a QoS-1 cycle_start delivered again after a restart).
    pub extra_cycles: u64,
    /// process/data/0/json publishes missing against cycles run.
    pub process_data_lost: u64,
    /// GPIO ctrl messages sent that the board never echoed as a state.
    pub gpio_states_lost: u64,
    /// PWM duty read back from the line that differed from the last ctrl.
    pub gpio_line_mismatches: u64,
    /// HTTP requests that failed or were not 200.
    pub http_failures: u64,
    /// Console lines not answered `ok`.
    pub console_failures: u64,
    /// Console replies that never came (the board's UART pipe dropped them: the host read late), sent again.
    pub console_resent: u64,
}

impl SoakReport {
    fn first_after_warmup(&self) -> Option<&Sample> {
        self.samples.get(1).or(self.samples.first())
    }

    /// RSS growth from the first sample after warm-up to the last, KiB.
    pub fn rss_growth_kib(&self) -> i64 {
        match (self.first_after_warmup(), self.samples.last()) {
            (Some(a), Some(b)) => b.rss_kib as i64 - a.rss_kib as i64,
            _ => 0,
        }
    }

    /// Firmware heap growth (less free) from the first sample after warm-up to the last, bytes.
    pub fn heap_growth(&self) -> i64 {
        match (self.first_after_warmup(), self.samples.last()) {
            (Some(a), Some(b)) => a.heap_internal_free as i64 - b.heap_internal_free as i64,
            _ => 0,
        }
    }

    /// Time per cycle at the end against the start, as a fraction: the mean of the windows' medians over the last
    /// tenth of the run (at least one window) against the first tenth after warm-up.
    pub fn drift(&self) -> f64 {
        let windows: Vec<f64> = self
            .samples
            .iter()
            .skip(1)
            .map(|s| s.cycle_p50_ms)
            .collect();
        let tenth = (windows.len() / 10).max(1);
        if windows.len() < 2 {
            return 0.0;
        }
        let mean = |w: &[f64]| w.iter().sum::<f64>() / w.len() as f64;
        let (first, last) = (
            mean(&windows[..tenth]),
            mean(&windows[windows.len() - tenth..]),
        );
        if first > 0.0 {
            last / first - 1.0
        } else {
            0.0
        }
    }

    pub fn lost(&self) -> u64 {
        self.counters_lost + self.process_data_lost + self.gpio_states_lost
    }
}

/// What the soak's MQTT client counted.
#[derive(Default)]
struct Counted {
    counters: BTreeSet<u64>,
    max_counter: u64,
    process_data: u64,
    gpio_states: u64,
    last_connection: String,
    /// Times `online` arrived.
    online_at: Vec<Instant>,
}

/// A lean MQTT client: subscribes to the soak's topics and counts.
struct Watcher {
    client: AsyncClient,
    counted: Arc<Mutex<Counted>>,
    notify: Arc<tokio::sync::Notify>,
    _link: Link,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    async fn connect(broker: &BrokerTarget, topic: &str) -> Result<Watcher> {
        let link = Link::start(broker).await?;
        let (client, mut eventloop) = client_over(
            &link,
            broker,
            format!("hil-soak-{}", std::process::id()),
            1024 * 1024,
        );
        let counted: Arc<Mutex<Counted>> = Arc::default();
        let notify = Arc::new(tokio::sync::Notify::new());
        let filters = [
            format!("{topic}/process/status/cycle_counter"),
            format!("{topic}/process/data/0/json"),
            format!("{topic}/device/gpio/gpio13/state"),
            format!("{topic}/device/status/connection"),
        ];
        let (c, n, sub) = (counted.clone(), notify.clone(), client.clone());
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        let mut ready_tx = Some(ready_tx);
        let mut acks = 0;
        let topic = topic.to_string();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for f in &filters {
                            let _ = sub.try_subscribe(f.clone(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        acks += 1;
                        if acks >= filters.len() {
                            if let Some(tx) = ready_tx.take() {
                                let _ = tx.send(());
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let rel = p.topic.strip_prefix(&topic).unwrap_or(&p.topic);
                        let payload = String::from_utf8_lossy(&p.payload);
                        if let Ok(mut c) = c.lock() {
                            match rel {
                                "/process/status/cycle_counter" => {
                                    if let Ok(v) = payload.parse::<u64>() {
                                        c.counters.insert(v);
                                        c.max_counter = c.max_counter.max(v);
                                    }
                                }
                                "/process/data/0/json" => c.process_data += 1,
                                "/device/gpio/gpio13/state" => c.gpio_states += 1,
                                "/device/status/connection" => {
                                    if payload == "online" {
                                        c.online_at.push(Instant::now());
                                    }
                                    c.last_connection = payload.into_owned();
                                }
                                _ => {}
                            }
                        }
                        n.notify_waiters();
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .map_err(|_| {
                anyhow!(
                    "the soak's MQTT client got no SUBACK from {} within 10 s",
                    broker.uri()
                )
            })?
            .map_err(|_| anyhow!("the soak's MQTT client stopped"))?;
        Ok(Watcher {
            client,
            counted,
            notify,
            _link: link,
            task,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Counted) -> T) -> Result<T> {
        let c = self
            .counted
            .lock()
            .map_err(|_| anyhow!("the soak's counters are poisoned"))?;
        Ok(f(&c))
    }

    /// Waits until `ok` holds (or `timeout` passes: false).
    async fn wait(&self, timeout: Duration, ok: impl Fn(&Counted) -> bool) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            if self.with(&ok)? {
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
        }
    }

    async fn publish(&self, topic: &str, payload: &[u8]) -> Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.to_vec())
            .await
            .context("the soak's MQTT client cannot publish")
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn board_config(broker: &BrokerTarget, board_uri: &str, topic: &str) -> Value {
    let mut mqtt = broker.board_settings(board_uri);
    mqtt.insert("enabled".into(), json!(true));
    mqtt.insert("maintopic".into(), json!(topic));
    mqtt.insert("clientid".into(), json!(topic));
    mqtt.insert("retainprocessdata".into(), json!(true));
    mqtt.insert("keepalive".into(), json!(10));
    json!({
        "operationmode": {"opmode": 0},
        "numbersequences": {"sequence": [{"sequenceid": 0, "sequencename": "main"}]},
        "digit": {"sequence": [{"sequenceid": 0, "roi": [{"name": "d1"}, {"name": "d2"}]}]},
        "analog": {"sequence": [{"sequenceid": 0, "roi": []}]},
        "postprocessing": {"sequence": [{"sequenceid": 0, "maxratechecktype": 0}]},
        "mqtt": mqtt,
        "gpio": {"customizationenabled": true, "gpiopin": [
            {"gpionumber": 12, "pinenabled": true, "pinname": "relay", "pinmode": "output", "exposetomqtt": true},
            {"gpionumber": 13, "pinenabled": true, "pinmode": "output-pwm", "pwmfrequency": 5000, "exposetomqtt": true},
            {"gpionumber": 14, "pinenabled": true, "pinname": "door", "pinmode": "input-pullup", "exposetomqtt": true}
        ]},
        "network": {"time": {"timezone": "UTC0"}}
    })
}

/// The board process's resident set, KiB (Linux).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// The soak's broker: given, or a mosquitto of its own.
struct SoakBroker {
    target: BrokerTarget,
    own: Option<Mosquitto>,
}

impl SoakBroker {
    async fn start(kind: &BrokerKind, dir: &Path) -> Result<SoakBroker> {
        match kind {
            BrokerKind::Given(t) => Ok(SoakBroker {
                target: t.clone(),
                own: None,
            }),
            BrokerKind::Mosquitto(bin) => {
                let m = Mosquitto::start(bin, &dir.join("mosquitto")).await?;
                Ok(SoakBroker {
                    target: m.target(),
                    own: Some(m),
                })
            }
        }
    }
}

/// Runs the soak; `progress` gets each sample as it is taken.
pub async fn run(opts: &SoakOptions, mut progress: impl FnMut(&Sample)) -> Result<SoakReport> {
    let topic = format!("hilsoak{}", std::process::id());
    let dir = std::env::temp_dir().join(format!("hil-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut broker = SoakBroker::start(&opts.broker, &dir).await?;
    broker.target.check_reachable().await?;
    let cable = Cable::start(&broker.target).await?;
    let watcher = Watcher::connect(&broker.target, &topic).await?;
    let config = board_config(&broker.target, &cable.uri_for(&broker.target), &topic);
    let mut board = tokio::task::block_in_place(|| {
        VirtualBoard::start(&opts.board_bin, &dir.join("board"), Some(&config))
    })?;
    if !watcher
        .wait(Duration::from_secs(15), |c| c.last_connection == "online")
        .await?
    {
        bail!("the board did not come online within 15 s");
    }
    let timeout = Duration::from_secs(15);
    // The console shares the board's UART pipe with its log, and the pipe drops whole lines when the host reads
    // late (a loaded machine): a reply can be among them. Each command here may be sent again; how often is reported.
    let resent = std::cell::Cell::new(0u64);
    let console = |board: &mut VirtualBoard, line: &str| -> Result<String> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match tokio::task::block_in_place(|| board.console(line, CONSOLE_WAIT)) {
                Err(crate::board::BoardError::ConsoleTimeout { .. })
                    if attempt < CONSOLE_ATTEMPTS =>
                {
                    resent.set(resent.get() + 1)
                }
                other => return Ok(other?),
            }
        }
    };
    let status = console(&mut board, "status")?;
    let status: Value = serde_json::from_str(status.strip_prefix("ok ").unwrap_or(&status))
        .with_context(|| format!("console status is not `ok {{json}}`: {status:?}"))?;
    let firmware = status["firmware_version"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    let http = board
        .http_base()
        .ok_or_else(|| anyhow!("the board has no HTTP address"))?
        .trim_start_matches("http://")
        .to_string();

    let started = Instant::now();
    let mut report = SoakReport {
        firmware,
        broker: match &opts.broker {
            BrokerKind::Given(t) => t.describe(),
            BrokerKind::Mosquitto(bin) => {
                format!("{} (its own, {})", broker.target.uri(), bin.display())
            }
        },
        cycles_asked: opts.cycles,
        cycles_run: 0,
        elapsed_s: 0.0,
        cycles_per_s: 0.0,
        restarts: 0,
        restart_recovery_max_ms: 0.0,
        samples: Vec::new(),
        counters_lost: 0,
        extra_cycles: 0,
        process_data_lost: 0,
        gpio_states_lost: 0,
        gpio_line_mismatches: 0,
        http_failures: 0,
        console_failures: 0,
        console_resent: 0,
    };
    let mut window: Vec<Duration> = Vec::new();
    let mut sample = |board: &mut VirtualBoard,
                      cycle: u64,
                      window: &mut Vec<Duration>,
                      report: &mut SoakReport|
     -> Result<()> {
        let reply = console(board, "status")?;
        let v: Value = serde_json::from_str(reply.strip_prefix("ok ").unwrap_or(&reply))
            .with_context(|| format!("console status is not `ok {{json}}`: {reply:?}"))?;
        window.sort();
        let s = Sample {
            cycle,
            elapsed_s: started.elapsed().as_secs_f64(),
            rss_kib: rss_kib(board.pid()),
            heap_internal_free: v["heap"]["heap_internal_free"].as_u64().unwrap_or(0),
            heap_internal_min_free: v["heap"]["heap_internal_min_free"].as_u64().unwrap_or(0),
            cycle_p50_ms: percentile(window, 0.5),
            cycle_p99_ms: percentile(window, 0.99),
        };
        window.clear();
        progress(&s);
        report.samples.push(s);
        Ok(())
    };
    sample(&mut board, 0, &mut window, &mut report)?;

    let ctrl = format!("{topic}/device/gpio/gpio13/ctrl");
    let start_topic = format!("{topic}/process/ctrl/cycle_start");
    let mut triggers = 0u64;
    for n in 1..=opts.cycles {
        if opts.max_duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        if n % 10 == 1 {
            let reading = (n / 10) % 100;
            let reply = console(
                &mut board,
                &format!("frame main digits={},{}", reading / 10, reading % 10),
            )?;
            if !reply.starts_with("ok") {
                report.console_failures += 1;
            }
        }
        let t = Instant::now();
        let target = watcher.with(|c| c.max_counter)? + 1;
        let duty = (n % 8000) as u32 + 1;
        watcher
            .publish(
                &ctrl,
                format!(r#"{{"state":1,"pwm_duty":{duty}}}"#).as_bytes(),
            )
            .await?;
        watcher.publish(&start_topic, b"1").await?;
        triggers += 1;
        let level = n % 2 == 0;
        let (gpio, get) = tokio::task::block_in_place(|| {
            (
                board.drive_input(14, level),
                crate::http::request(&http, "GET", "/api/status", ""),
            )
        });
        gpio?;
        if !matches!(get, Ok((200, _))) {
            report.http_failures += 1;
        }
        if !watcher.wait(timeout, |c| c.max_counter >= target).await? {
            bail!(
                "cycle {n}: no cycle_counter {target} within {timeout:?} (the board's last: {})",
                watcher.with(|c| c.max_counter)?
            );
        }
        window.push(t.elapsed());
        report.cycles_run = n;
        if n % opts.sample_every == 0 {
            let (level, read) = tokio::task::block_in_place(|| board.read_output(13))?;
            if !level || read != Some(duty) {
                // The ctrl may still be on its way: give it the state echo first, then read again.
                let sent = n;
                watcher.wait(timeout, |c| c.gpio_states >= sent).await?;
                let (level, read) = tokio::task::block_in_place(|| board.read_output(13))?;
                if !level || read != Some(duty) {
                    report.gpio_line_mismatches += 1;
                }
            }
            sample(&mut board, n, &mut window, &mut report)?;
        }
        if opts.restart_every > 0 && n % opts.restart_every == 0 {
            // What the last cycle published arrives first: a mosquitto restart also drops the rig's subscription,
            // and what the board sends before the rig has subscribed again would count as lost.
            let sent = triggers;
            watcher
                .wait(timeout, |c| {
                    c.gpio_states >= sent && c.process_data >= c.max_counter
                })
                .await?;
            let onlines = watcher.with(|c| c.online_at.len())?;
            let t = Instant::now();
            match broker.own.as_mut() {
                Some(m) => m.restart().await?,
                None => {
                    cable.set_down(true);
                    tokio::time::sleep(opts.outage).await;
                    cable.set_down(false);
                }
            }
            report.restarts += 1;
            if !watcher
                .wait(Duration::from_secs(30), |c| {
                    c.online_at.len() > onlines && c.last_connection == "online"
                })
                .await?
            {
                bail!(
                    "the board did not come back online within 30 s of broker restart {}",
                    report.restarts
                );
            }
            let back = watcher.with(|c| c.online_at.last().map(|at| at.duration_since(t)))?;
            if let Some(back) = back {
                report.restart_recovery_max_ms = report
                    .restart_recovery_max_ms
                    .max(back.as_secs_f64() * 1000.0);
            }
        }
        if !opts.interval.is_zero() {
            tokio::time::sleep(opts.interval).await;
        }
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    report.cycles_per_s = report.cycles_run as f64 / report.elapsed_s.max(1e-9);
    if report.samples.last().map(|s| s.cycle) != Some(report.cycles_run) {
        sample(&mut board, report.cycles_run, &mut window, &mut report)?;
    }
    // Late publishes settle, then the count.
    let ran = report.cycles_run;
    watcher
        .wait(Duration::from_secs(5), |c| {
            c.gpio_states >= ran && c.process_data >= c.max_counter
        })
        .await?;
    let (lost, max, data, states) = watcher.with(|c| {
        let lost = (1..=c.max_counter)
            .filter(|v| !c.counters.contains(v))
            .count() as u64;
        (lost, c.max_counter, c.process_data, c.gpio_states)
    })?;
    report.console_resent = resent.get();
    report.counters_lost = lost;
    report.extra_cycles = max.saturating_sub(triggers);
    report.process_data_lost = max.saturating_sub(data);
    report.gpio_states_lost = triggers.saturating_sub(states);
    drop(board);
    drop(watcher);
    drop(cable);
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(cycle: u64, rss: u64, free: u64, p50: f64) -> Sample {
        Sample {
            cycle,
            elapsed_s: 0.0,
            rss_kib: rss,
            heap_internal_free: free,
            heap_internal_min_free: free,
            cycle_p50_ms: p50,
            cycle_p99_ms: p50,
        }
    }

    #[test]
    fn growth_and_drift_count_from_after_warm_up() {
        let mut r = SoakReport {
            firmware: String::new(),
            broker: String::new(),
            cycles_asked: 0,
            cycles_run: 0,
            elapsed_s: 0.0,
            cycles_per_s: 0.0,
            restarts: 0,
            restart_recovery_max_ms: 0.0,
            samples: vec![
                sample(0, 1000, 60_000, 0.0),
                sample(1000, 1500, 59_000, 4.0),
                sample(2000, 1510, 59_000, 5.0),
                sample(3000, 1520, 58_900, 6.0),
            ],
            counters_lost: 1,
            extra_cycles: 0,
            process_data_lost: 2,
            gpio_states_lost: 0,
            gpio_line_mismatches: 0,
            http_failures: 0,
            console_failures: 0,
            console_resent: 0,
        };
        assert_eq!(r.rss_growth_kib(), 20, "the first sample is before warm-up");
        assert_eq!(r.heap_growth(), 100);
        // The first window after warm-up against the last (three windows: a tenth is one).
        assert!((r.drift() - 0.5).abs() < 1e-9, "{}", r.drift());
        assert_eq!(r.lost(), 3);
        r.samples.truncate(1);
        assert_eq!((r.rss_growth_kib(), r.heap_growth()), (0, 0));
    }
}
