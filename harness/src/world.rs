//! The cucumber World and the step library. Steps read like the Gherkin; topics in steps are relative to the
//! scenario's main topic (`process/status/cycle_counter`), unless a step says "absolute".

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cucumber::{given, then, when, World};
use serde_json::{json, Value};

use crate::board::{Board, VirtualBoard};
use crate::broker::{BrokerTarget, Cable};
use crate::inventory::Inventory;
use crate::observer::{Observer, Seen};
use crate::serial_board::SerialBoard;
use crate::snapshot::{self, Placeholders};
use crate::{ha, migration};

mod flashing;

/// What every scenario of a run shares.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub broker: BrokerTarget,
    pub board_bin: PathBuf,
    /// The repository root (fixtures/, features/).
    pub root: PathBuf,
    pub timeout: Duration,
    /// A real board (`hil run --board`); None runs a virtual board per scenario.
    pub serial: Option<Inventory>,
}

static CONTEXT: OnceLock<RunContext> = OnceLock::new();

/// Sets the run's context (once, before scenarios run).
pub fn set_context(ctx: RunContext) {
    let _ = CONTEXT.set(ctx);
}

fn ctx() -> &'static RunContext {
    CONTEXT.get().expect("hil: run context not set")
}

static SCENARIOS: AtomicU32 = AtomicU32::new(0);

/// One scenario's resources: its own board, main topic, state dir, cable to the broker and observer.
#[derive(World, Default)]
#[world(init = Self::default)]
pub struct Rig {
    config: Option<Value>,
    board: Option<Box<dyn Board>>,
    observer: Option<Observer>,
    cable: Option<Cable>,
    main_topic: String,
    node: String,
    console_reply: String,
    http: (u16, String),
    browser: Option<crate::browser::Browser>,
    /// The error of the last refused flash.
    flash_error: Option<String>,
    /// Console lines before this index are forgotten ('I forget what the console showed').
    console_mark: usize,
}

impl std::fmt::Debug for Rig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rig")
            .field("main_topic", &self.main_topic)
            .field("console_reply", &self.console_reply)
            .finish()
    }
}

fn parse_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// Sets `a.b[1].c` in a JSON document, creating objects on the way.
fn set_path(doc: &mut Value, path: &str, value: Value) -> Result<()> {
    let segs: Vec<String> = path
        .replace('[', ".")
        .replace(']', "")
        .split('.')
        .map(str::to_string)
        .collect();
    let mut v = doc;
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        if let Ok(idx) = seg.parse::<usize>() {
            let arr = v
                .as_array_mut()
                .ok_or_else(|| anyhow!("'{path}': not an array at '{seg}'"))?;
            let slot = arr
                .get_mut(idx)
                .ok_or_else(|| anyhow!("'{path}': no element {idx}"))?;
            if last {
                *slot = value;
                return Ok(());
            }
            v = slot;
        } else {
            let obj = v
                .as_object_mut()
                .ok_or_else(|| anyhow!("'{path}': not an object at '{seg}'"))?;
            if last {
                obj.insert(seg.clone(), value);
                return Ok(());
            }
            v = obj.entry(seg.clone()).or_insert_with(|| json!({}));
        }
    }
    Ok(())
}

impl Drop for Rig {
    /// With HIL_CONSOLE_DIR set, each scenario's console capture is kept there (CI uploads it).
    fn drop(&mut self) {
        let (Some(dir), Some(board)) = (std::env::var_os("HIL_CONSOLE_DIR"), self.board.as_ref())
        else {
            return;
        };
        let dir = PathBuf::from(dir);
        let text: String = board
            .console_capture()
            .iter()
            .map(|(t, l)| format!("[{:>10.3}] {l}\n", t.as_secs_f64()))
            .collect();
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = std::fs::write(dir.join(format!("{}.log", self.node)), text);
        }
    }
}

impl Rig {
    fn board(&mut self) -> Result<&mut (dyn Board + 'static)> {
        self.board
            .as_deref_mut()
            .ok_or_else(|| anyhow!("no board: start one with 'Given a virtual board ...'"))
    }

    fn obs(&self) -> Result<&Observer> {
        self.observer
            .as_ref()
            .ok_or_else(|| anyhow!("no board: start one with 'Given a virtual board ...'"))
    }

    fn t(&self, rel: &str) -> String {
        format!("{}/{}", self.main_topic, rel.trim_start_matches('/'))
    }

    fn placeholders(&self) -> Placeholders {
        Placeholders {
            main_topic: self.main_topic.clone(),
            node: self.node.clone(),
        }
    }

    async fn stage(&mut self, fixture: &str) -> Result<()> {
        let path = ctx().root.join("fixtures/configs").join(fixture);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("fixture {}", path.display()))?;
        let mut config: Value =
            serde_json::from_str(&text).with_context(|| format!("fixture {}", path.display()))?;
        if let Some(inv) = &ctx().serial {
            remap_pins(&mut config, inv);
        } else if self.cable.is_none() {
            // A real board reaches the broker itself; a virtual one goes through its own cable.
            self.cable = Some(Cable::start(&ctx().broker).await?);
        }
        let n = SCENARIOS.fetch_add(1, Ordering::SeqCst);
        let base = config["mqtt"]["maintopic"]
            .as_str()
            .unwrap_or("watermeter")
            .to_string();
        // Unique per scenario, same shape (flat stays flat, nested stays nested), HA-safe node id.
        self.main_topic = format!("{base}_s{}x{n}", std::process::id());
        self.node = self
            .main_topic
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let uri = match &ctx().serial {
            Some(inv) => inv.broker.clone(),
            None => self
                .cable
                .as_ref()
                .map(|c| c.uri_for(&ctx().broker))
                .unwrap_or_default(),
        };
        set_path(&mut config, "mqtt.enabled", json!(true))?;
        set_path(&mut config, "mqtt.uri", json!(uri))?;
        if let Some(tls) = &ctx().broker.tls {
            set_path(&mut config, "mqtt.tls.cacert", json!(tls.ca_pem))?;
        }
        if let (Some(u), Some(p)) = (&ctx().broker.username, &ctx().broker.password) {
            set_path(&mut config, "mqtt.authmode", json!(1))?;
            set_path(&mut config, "mqtt.username", json!(u))?;
            set_path(&mut config, "mqtt.password", json!(p))?;
        }
        set_path(&mut config, "mqtt.maintopic", json!(self.main_topic))?;
        set_path(&mut config, "mqtt.clientid", json!(self.node))?;
        self.config = Some(config);
        Ok(())
    }

    async fn start(&mut self) -> Result<()> {
        let config = self
            .config
            .clone()
            .ok_or_else(|| anyhow!("no config staged"))?;
        // A second `Given a ... board` in a scenario replaces the first: release its port and process first.
        self.board = None;
        let dir = std::env::temp_dir().join(format!("hil-{}", self.node));
        let _ = std::fs::remove_dir_all(&dir);
        let prefix = config["mqtt"]["homeassistant"]["discoveryprefix"]
            .as_str()
            .unwrap_or("homeassistant")
            .to_string();
        let filters = vec![
            format!("{}/#", self.main_topic),
            format!("{prefix}/+/{}/#", self.node),
        ];
        self.observer = Some(Observer::connect(&ctx().broker, &filters).await?);
        let bin = ctx().board_bin.clone();
        self.board = Some(match &ctx().serial {
            None => Box::new(tokio::task::block_in_place(|| {
                VirtualBoard::start(&bin, &dir, Some(&config))
            })?),
            Some(inv) => Box::new(tokio::task::block_in_place(|| {
                configure_serial(inv, &config)
            })?),
        });
        self.wait_for("device/status/connection", "online").await?;
        Ok(())
    }

    async fn wait_for(&self, rel: &str, payload: &str) -> Result<Seen> {
        self.obs()?
            .wait_for(&self.t(rel), payload, ctx().timeout)
            .await
    }

    fn counter(&self) -> u64 {
        self.obs()
            .ok()
            .and_then(|o| o.get(&self.t("process/status/cycle_counter")))
            .and_then(|s| s.payload.parse().ok())
            .unwrap_or(0)
    }

    async fn publish(&self, rel: &str, payload: &[u8]) -> Result<()> {
        self.obs()?.publish(&self.t(rel), payload, false).await
    }

    fn console(&mut self, line: &str) -> Result<String> {
        let timeout = ctx().timeout;
        let board = self.board()?;
        let reply = tokio::task::block_in_place(|| board.console(line, timeout))?;
        self.console_reply = reply.clone();
        Ok(reply)
    }

    fn frame(&mut self, sequence: &str, digits: &str, pointers: &str) -> Result<()> {
        let reply = self.console(&format!(
            "frame {sequence} digits={digits} analogs={pointers}"
        ))?;
        if !reply.starts_with("ok") {
            bail!("the board refused the frame: {reply}");
        }
        Ok(())
    }

    async fn http(&mut self, method: &str, path: &str, body: &str) -> Result<()> {
        let base = self
            .board()?
            .http_base()
            .ok_or_else(|| anyhow!("board has no HTTP endpoint"))?;
        let addr = base.trim_start_matches("http://").to_string();
        let (method, path, body) = (method.to_string(), path.to_string(), body.to_string());
        self.http = tokio::task::spawn_blocking(move || http_request(&addr, &method, &path, &body))
            .await??;
        Ok(())
    }

    /// A live subscription never sees the retain flag; a fresh one gets exactly the retained topics, flagged.
    async fn with_retain_flags(
        &self,
        mut tree: BTreeMap<String, Seen>,
    ) -> Result<BTreeMap<String, Seen>> {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let filters = vec![
            format!("{}/#", self.main_topic),
            format!("+/+/{}/#", self.node),
        ];
        let late = Observer::connect(&ctx().broker, &filters).await?;
        // Retained messages arrive right after the subscription; wait until none came for 250 ms (3 s at most).
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        let mut seen = usize::MAX;
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = late.tree().len();
            if now == seen || std::time::Instant::now() > deadline {
                break;
            }
            seen = now;
        }
        let retained = late.tree();
        late.disconnect().await;
        for (topic, seen) in tree.iter_mut() {
            seen.retain = retained
                .get(topic)
                .is_some_and(|r| r.retain && r.payload == seen.payload);
        }
        Ok(tree)
    }

    fn subtree(&self, prefix: &str) -> Result<BTreeMap<String, Seen>> {
        Ok(self
            .obs()?
            .tree()
            .into_iter()
            .filter(|(t, _)| t.starts_with(prefix))
            .collect())
    }
}

/// A minimal HTTP/1.1 exchange: (status, body). Reads the body by Content-Length (servers may keep the
/// connection open), or to the end when there is none.
pub fn http_request(addr: &str, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut s = std::net::TcpStream::connect(addr).with_context(|| format!("HTTP {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(s);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut length: Option<usize> = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok();
            }
        }
    }
    let mut buf = Vec::new();
    match length {
        Some(n) => {
            buf.resize(n, 0);
            reader.read_exact(&mut buf)?;
        }
        None => {
            reader.read_to_end(&mut buf)?;
        }
    }
    Ok((status, String::from_utf8_lossy(&buf).into_owned()))
}

/// The pins a scenario names (the reference's ESP32-CAM numbers) moved to the board's, per the inventory.
fn remap_pins(config: &mut Value, inv: &Inventory) {
    if let Some(pins) = config["gpio"]["gpiopin"].as_array_mut() {
        for pin in pins {
            if let Some(n) = pin["gpionumber"]
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
            {
                pin["gpionumber"] = json!(inv.board_pin(n));
            }
        }
    }
}

/// Opens a real board and gives the scenario a clean one: `factory-reset` (defaults, no fallback values left by
/// earlier scenarios), then the scenario's whole config with the Wi-Fi credentials the inventory names in one
/// `config merge`, then a reset so it starts with that config.
fn configure_serial(inv: &Inventory, config: &Value) -> Result<SerialBoard> {
    let mut board = SerialBoard::open(inv.clone())?;
    let timeout = ctx().timeout;
    let reply = board.console("factory-reset", timeout)?;
    if !reply.starts_with("ok") {
        bail!("board '{}' refused factory-reset: {reply}", inv.name);
    }
    board
        .wait_alive(timeout)
        .with_context(|| format!("board '{}' after factory-reset", inv.name))?;
    let mut doc = config.clone();
    if let Some((ssid, password)) = inv.wifi().map_err(|e| anyhow!(e))? {
        set_path(&mut doc, "network.wlan.ssid", json!(ssid))?;
        set_path(&mut doc, "network.wlan.password", json!(password))?;
    }
    let reply = board.console(&format!("config merge {doc}"), timeout)?;
    if !reply.starts_with("ok") {
        bail!(
            "board '{}' refused the scenario's config: {reply}",
            inv.name
        );
    }
    board.reset()?;
    Ok(board)
}

// ---- Given ----

#[given(expr = "the config {string}")]
async fn given_config(w: &mut Rig, fixture: String) -> Result<()> {
    w.stage(&fixture).await
}

#[given(expr = "the config value {string} is {}")]
async fn given_config_value(w: &mut Rig, path: String, value: String) -> Result<()> {
    let config = w
        .config
        .as_mut()
        .ok_or_else(|| anyhow!("stage a config first: 'Given the config \"x.json\"'"))?;
    set_path(config, &path, parse_value(&value))
}

#[given("the board is started")]
async fn given_started(w: &mut Rig) -> Result<()> {
    w.start().await
}

#[given(expr = "a virtual board with config {string}")]
async fn given_board_with(w: &mut Rig, fixture: String) -> Result<()> {
    w.stage(&fixture).await?;
    w.start().await
}

#[given("a virtual board")]
async fn given_board(w: &mut Rig) -> Result<()> {
    w.stage("flat-json.json").await?;
    w.start().await
}

#[given("the device is online")]
#[then("the device is online")]
async fn device_online(w: &mut Rig) -> Result<()> {
    w.wait_for("device/status/connection", "online")
        .await
        .map(|_| ())
}

// ---- When ----

#[given(expr = "the meter shows digits {word} and pointers {word}")]
#[when(expr = "the meter shows digits {word} and pointers {word}")]
async fn meter_digits_pointers(w: &mut Rig, digits: String, pointers: String) -> Result<()> {
    w.frame("main", &digits, &pointers)
}

#[given(expr = "the meter shows digits {word}")]
#[when(expr = "the meter shows digits {word}")]
async fn meter_digits(w: &mut Rig, digits: String) -> Result<()> {
    w.frame("main", &digits, "")
}

#[given(expr = "sequence {string} shows digits {word} and pointers {word}")]
#[when(expr = "sequence {string} shows digits {word} and pointers {word}")]
async fn seq_digits_pointers(
    w: &mut Rig,
    seq: String,
    digits: String,
    pointers: String,
) -> Result<()> {
    w.frame(&seq, &digits, &pointers)
}

#[given(expr = "sequence {string} shows digits {word}")]
#[when(expr = "sequence {string} shows digits {word}")]
async fn seq_digits(w: &mut Rig, seq: String, digits: String) -> Result<()> {
    w.frame(&seq, &digits, "")
}

#[when("the image alignment fails")]
async fn alignment_fails(w: &mut Rig) -> Result<()> {
    let reply = w.console("frame main align=fail")?;
    if !reply.starts_with("ok") {
        bail!("the board refused align=fail: {reply}");
    }
    Ok(())
}

#[given("I trigger a cycle")]
#[when("I trigger a cycle")]
async fn trigger_cycle(w: &mut Rig) -> Result<()> {
    // A cycle ran when a new cycle_counter arrives (a redelivered QoS-1 cycle_start may add one of its own).
    let topic = w.t("process/status/cycle_counter");
    let before = w.obs()?.history_of(&topic).len();
    w.publish("process/ctrl/cycle_start", b"1").await?;
    let deadline = std::time::Instant::now() + ctx().timeout;
    while w.obs()?.history_of(&topic).len() <= before {
        if std::time::Instant::now() > deadline {
            bail!(
                "cycle_start had no effect: no new '{topic}' within {:?}",
                ctx().timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[when(expr = "I trigger {int} cycles")]
async fn trigger_cycles(w: &mut Rig, n: u32) -> Result<()> {
    for _ in 0..n {
        trigger_cycle(w).await?;
    }
    Ok(())
}

#[when(expr = "I publish {string} to {string}")]
async fn publish_to(w: &mut Rig, payload: String, rel: String) -> Result<()> {
    w.publish(&rel, payload.as_bytes()).await
}

#[when(expr = "I publish {string} to the absolute topic {string}")]
async fn publish_abs(w: &mut Rig, payload: String, topic: String) -> Result<()> {
    w.obs()?.publish(&topic, payload.as_bytes(), false).await
}

#[when(expr = "I publish an empty payload to {string}")]
async fn publish_empty(w: &mut Rig, rel: String) -> Result<()> {
    w.publish(&rel, b"").await
}

#[when(expr = "I publish {int} bytes to {string}")]
async fn publish_bytes(w: &mut Rig, n: usize, rel: String) -> Result<()> {
    w.publish(&rel, &vec![b'x'; n]).await
}

#[when(expr = "I set input GPIO {int} {word}")]
async fn set_input(w: &mut Rig, pin: u8, level: String) -> Result<()> {
    let high = match level.as_str() {
        "high" => true,
        "low" => false,
        other => bail!("level '{other}' is neither high nor low"),
    };
    let board = w.board()?;
    tokio::task::block_in_place(|| board.drive_input(pin, high)).map_err(Into::into)
}

#[when(expr = "the broker goes away for {int} ms")]
async fn broker_away(w: &mut Rig, ms: u64) -> Result<()> {
    let cable = w.cable.as_ref().ok_or_else(|| anyhow!("no cable"))?;
    cable.set_down(true);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    cable.set_down(false);
    Ok(())
}

#[when("the broker restarts")]
async fn broker_restarts(w: &mut Rig) -> Result<()> {
    broker_away(w, 500).await
}

#[when("the board loses power")]
async fn power_loss(w: &mut Rig) -> Result<()> {
    let board = w.board()?;
    tokio::task::block_in_place(|| board.power_off()).map_err(Into::into)
}

#[when("the board is powered on")]
async fn power_on(w: &mut Rig) -> Result<()> {
    let board = w.board()?;
    tokio::task::block_in_place(|| board.power_on())?;
    Ok(())
}

#[given(expr = "GPIO {int} is jumpered to GPIO {int}")]
async fn jumpered(w: &mut Rig, from: u8, to: u8) -> Result<()> {
    let board = w.board()?;
    tokio::task::block_in_place(|| board.jumper(from, to))?;
    Ok(())
}

#[when("the board is reset")]
async fn reset(w: &mut Rig) -> Result<()> {
    let board = w.board()?;
    tokio::task::block_in_place(|| board.reset())?;
    Ok(())
}

#[when(expr = "I change {string} to {} via the REST API")]
async fn rest_change(w: &mut Rig, path: String, value: String) -> Result<()> {
    let mut patch = json!({});
    set_path(&mut patch, &path, parse_value(&value))?;
    w.http("POST", "/api/config", &patch.to_string()).await
}

#[when(expr = "I post {string} to the REST config")]
async fn rest_post(w: &mut Rig, body: String) -> Result<()> {
    w.http("POST", "/api/config", &body).await
}

#[when(expr = "I request {string} via HTTP")]
async fn http_get(w: &mut Rig, path: String) -> Result<()> {
    w.http("GET", &path, "").await
}

#[when(expr = "I type {string} on the console")]
async fn type_console(w: &mut Rig, line: String) -> Result<()> {
    w.console(&line).map(|_| ())
}

#[when(expr = "I wait {int} ms")]
async fn wait_ms(_w: &mut Rig, ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[when("I forget what was published")]
async fn forget(w: &mut Rig) -> Result<()> {
    w.obs()?.clear();
    Ok(())
}

// ---- Then ----

#[then(expr = "topic {string} is {string}")]
async fn topic_is(w: &mut Rig, rel: String, payload: String) -> Result<()> {
    w.wait_for(&rel, &payload).await.map(|_| ())
}

async fn retained_check(w: &Rig, rel: &str, payload: &str, want: bool) -> Result<()> {
    w.wait_for(rel, payload).await?;
    // Only a fresh subscriber sees the retain flag. The device re-asserts its birth 2 s after connecting, so a
    // retained value may settle within 3 s (a late LWT of the previous connection); judge it after that window.
    let topic = w.t(rel);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let late = Observer::connect(&ctx().broker, std::slice::from_ref(&topic)).await?;
        let got = late
            .wait_for(&topic, payload, Duration::from_millis(500))
            .await;
        late.disconnect().await;
        let retained = got.as_ref().is_ok_and(|s| s.retain);
        match (want, retained) {
            (true, true) | (false, false) => return Ok(()),
            _ if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            (true, false) => {
                bail!("'{topic}' = '{payload}' is not retained (a new subscriber does not get it)")
            }
            (false, true) => bail!("'{topic}' = '{payload}' is retained but should not be"),
        }
    }
}

#[then(expr = "topic {string} is {string} and retained")]
async fn topic_retained(w: &mut Rig, rel: String, payload: String) -> Result<()> {
    retained_check(w, &rel, &payload, true).await
}

#[then(expr = "topic {string} is {string} and not retained")]
async fn topic_not_retained(w: &mut Rig, rel: String, payload: String) -> Result<()> {
    retained_check(w, &rel, &payload, false).await
}

#[then(expr = "topic {string} is published")]
async fn topic_published(w: &mut Rig, rel: String) -> Result<()> {
    w.obs()?
        .wait_published(&w.t(&rel), ctx().timeout)
        .await
        .map(|_| ())
}

#[then(expr = "topic {string} is not published")]
async fn topic_not_published(w: &mut Rig, rel: String) -> Result<()> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    match w.obs()?.get(&w.t(&rel)) {
        Some(s) => bail!("'{}' was published: {:?}", w.t(&rel), s.payload),
        None => Ok(()),
    }
}

fn json_at(w: &Rig, rel: &str) -> Result<Value> {
    let seen = w
        .obs()?
        .get(&w.t(rel))
        .ok_or_else(|| anyhow!("'{}' was never published", w.t(rel)))?;
    serde_json::from_str(&seen.payload)
        .with_context(|| format!("'{}' is not JSON: {:?}", w.t(rel), seen.payload))
}

fn json_field_of(payload: &str, field: &str) -> Option<String> {
    let v: Value = serde_json::from_str(payload).ok()?;
    // Dotted paths reach into objects: "board.chip_model".
    match field.split('.').try_fold(&v, |cur, key| cur.get(key))? {
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[then(expr = "the JSON at {string} has {string} = {string}")]
async fn json_field(w: &mut Rig, rel: String, field: String, expected: String) -> Result<()> {
    let what = format!("had {field} = {expected:?}");
    w.obs()?
        .wait_until(&w.t(&rel), ctx().timeout, &what, |s| {
            json_field_of(&s.payload, &field).as_deref() == Some(expected.as_str())
        })
        .await
        .map(|_| ())
}

#[then(expr = "the JSON at {string} has {string} starting with {string}")]
async fn json_field_prefix(w: &mut Rig, rel: String, field: String, prefix: String) -> Result<()> {
    w.obs()?.wait_published(&w.t(&rel), ctx().timeout).await?;
    let v = json_at(w, &rel)?;
    let actual = v.get(&field).and_then(Value::as_str).unwrap_or_default();
    if !actual.starts_with(&prefix) {
        bail!(
            "'{}' has {field} = {actual:?}, expected it to start with {prefix:?}",
            w.t(&rel)
        );
    }
    Ok(())
}

#[then(expr = "the JSON at {string} matches snapshot {string}")]
async fn json_snapshot(w: &mut Rig, rel: String, name: String) -> Result<()> {
    w.obs()?.wait_published(&w.t(&rel), ctx().timeout).await?;
    let seen = w.obs()?.get(&w.t(&rel)).unwrap_or_else(|| unreachable!());
    let mut v: Value = serde_json::from_str(&seen.payload)?;
    snapshot::redact_json(&mut v);
    let text = serde_json::to_string_pretty(&v)?;
    snapshot::assert_snapshot(&name, &w.placeholders().apply(&text));
    Ok(())
}

#[then(expr = "the topic tree matches snapshot {string}")]
async fn tree_snapshot(w: &mut Rig, name: String) -> Result<()> {
    let tree = w.with_retain_flags(w.obs()?.tree()).await?;
    snapshot::assert_snapshot(&name, &snapshot::tree_text(&tree, &w.placeholders()));
    Ok(())
}

#[then(expr = "the topic tree under {string} matches snapshot {string}")]
async fn subtree_snapshot(w: &mut Rig, rel: String, name: String) -> Result<()> {
    let tree = w.with_retain_flags(w.subtree(&w.t(&rel))?).await?;
    snapshot::assert_snapshot(&name, &snapshot::tree_text(&tree, &w.placeholders()));
    Ok(())
}

#[then(expr = "the console reply is {string}")]
async fn console_reply_is(w: &mut Rig, expected: String) -> Result<()> {
    if w.console_reply != expected {
        bail!(
            "console replied {:?}, expected {expected:?}",
            w.console_reply
        );
    }
    Ok(())
}

#[then(expr = "the console reply starts with {string}")]
async fn console_reply_starts(w: &mut Rig, prefix: String) -> Result<()> {
    if !w.console_reply.starts_with(&prefix) {
        bail!(
            "console replied {:?}, expected it to start with {prefix:?}",
            w.console_reply
        );
    }
    Ok(())
}

#[then(expr = "the console shows an error containing {string}")]
async fn console_error(w: &mut Rig, text: String) -> Result<()> {
    let deadline = std::time::Instant::now() + ctx().timeout;
    loop {
        if w.console_reply.starts_with("err ") && w.console_reply.contains(&text) {
            return Ok(());
        }
        let log = w.board()?.console_capture();
        let hit = log
            .iter()
            .any(|(_, l)| (l.starts_with("W (") || l.starts_with("E (")) && l.contains(&text));
        if hit {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            let tail: Vec<String> = log.iter().rev().take(8).map(|(_, l)| l.clone()).collect();
            bail!(
                "no console error containing {text:?}; last reply {:?}; last lines {tail:?}",
                w.console_reply
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[then(expr = "the console log contains {string}")]
async fn console_log_contains(w: &mut Rig, text: String) -> Result<()> {
    let deadline = std::time::Instant::now() + ctx().timeout;
    loop {
        if w.board()?
            .console_capture()
            .iter()
            .any(|(_, l)| l.contains(&text))
        {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("the console never showed {text:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[when("I forget what the console showed")]
async fn forget_console(w: &mut Rig) -> Result<()> {
    w.console_mark = w.board()?.console_capture().len();
    Ok(())
}

#[then(expr = "the console log does not contain {string}")]
async fn console_log_lacks(w: &mut Rig, text: String) -> Result<()> {
    let mark = w.console_mark;
    if let Some((_, line)) = w
        .board()?
        .console_capture()
        .into_iter()
        .skip(mark)
        .find(|(_, l)| l.contains(&text))
    {
        bail!("the console showed {text:?}: {line:?}");
    }
    Ok(())
}

#[then(expr = "GPIO {int} is {word}")]
async fn gpio_level(w: &mut Rig, pin: u8, level: String) -> Result<()> {
    let want = level == "high";
    let deadline = std::time::Instant::now() + ctx().timeout;
    loop {
        let board = w.board()?;
        let (high, _) = tokio::task::block_in_place(|| board.read_output(pin))?;
        if high == want {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("GPIO {pin} stayed {}", if high { "high" } else { "low" });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[then(expr = "GPIO {int} has PWM duty {int}")]
async fn gpio_duty(w: &mut Rig, pin: u8, duty: u32) -> Result<()> {
    let board = w.board()?;
    let (_, d) = tokio::task::block_in_place(|| board.read_output(pin))?;
    if d != Some(duty) {
        bail!("GPIO {pin} has PWM duty {d:?}, expected {duty}");
    }
    Ok(())
}

#[then(expr = "the REST reply status is {int}")]
async fn rest_status(w: &mut Rig, status: u16) -> Result<()> {
    if w.http.0 != status {
        bail!(
            "HTTP status {} (body {}), expected {status}",
            w.http.0,
            w.http.1
        );
    }
    Ok(())
}

#[then(expr = "the REST reply contains {string}")]
async fn rest_contains(w: &mut Rig, text: String) -> Result<()> {
    if !w.http.1.contains(&text) {
        bail!("HTTP body {:?} does not contain {text:?}", w.http.1);
    }
    Ok(())
}

#[then("the board is still running")]
async fn still_running(w: &mut Rig) -> Result<()> {
    let reply = w.console("status")?;
    if !reply.starts_with("ok {") {
        bail!("status replied {reply:?}");
    }
    Ok(())
}

#[then(expr = "the board config has {string} = {}")]
async fn board_config(w: &mut Rig, path: String, value: String) -> Result<()> {
    let reply = w.console(&format!("config get {path}"))?;
    let got = reply
        .strip_prefix("ok ")
        .ok_or_else(|| anyhow!("config get {path}: {reply}"))?;
    let (got, want): (Value, Value) = (serde_json::from_str(got)?, parse_value(&value));
    if got != want {
        bail!("config {path} is {got}, expected {want}");
    }
    Ok(())
}

#[then("the migration notes hold for this device")]
async fn migration_holds(w: &mut Rig) -> Result<()> {
    let rows = migration::parse(&std::fs::read_to_string(
        ctx().root.join("fixtures/migration/v16-v17.toml"),
    )?)?;
    let tree = w.obs()?.tree();
    let device = migration::Device::from_tree(&w.main_topic, &tree);
    let (table, ok) = migration::table(&migration::verify(&rows, &tree, &device));
    if !ok {
        bail!("migration notes do not hold:\n{table}");
    }
    Ok(())
}

#[then("the Home Assistant discovery is consistent")]
async fn ha_consistent(w: &mut Rig) -> Result<()> {
    // A cycle's publishes arrive one after another: the last state topics may still be on their way.
    let deadline = std::time::Instant::now() + ctx().timeout;
    let report = loop {
        let report = ha::check(&w.obs()?.tree(), "homeassistant");
        if (report.configs > 0 && report.problems.is_empty())
            || std::time::Instant::now() > deadline
        {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if report.configs == 0 {
        bail!("no discovery configs were published under homeassistant/");
    }
    if !report.problems.is_empty() {
        let lines: Vec<String> = report
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.config_topic, p.message))
            .collect();
        bail!("{} discovery problems:\n{}", lines.len(), lines.join("\n"));
    }
    for (config, cmd, press) in report.commands {
        let next = w.counter() + 1;
        w.obs()?.publish(&cmd, press.as_bytes(), false).await?;
        w.wait_for("process/status/cycle_counter", &next.to_string())
            .await
            .with_context(|| format!("{config}: pressing {cmd} had no effect"))?;
    }
    Ok(())
}

// ---- more steps ----

#[when(expr = "I move the main topic to {string} below it")]
async fn move_main(w: &mut Rig, suffix: String) -> Result<()> {
    let new = format!("{}/{}", w.main_topic, suffix);
    w.http(
        "POST",
        "/api/config",
        &json!({"mqtt": {"maintopic": new}}).to_string(),
    )
    .await?;
    if w.http.0 != 200 {
        bail!(
            "moving the main topic was refused: {} {}",
            w.http.0,
            w.http.1
        );
    }
    Ok(())
}

#[when(expr = "the broker goes away and I publish {string} to {string} meanwhile")]
async fn outage_publish(w: &mut Rig, payload: String, rel: String) -> Result<()> {
    let cable = w.cable.as_ref().ok_or_else(|| anyhow!("no cable"))?;
    cable.set_down(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.publish(&rel, payload.as_bytes()).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let Some(c) = w.cable.as_ref() {
        c.set_down(false);
    }
    Ok(())
}

#[then(expr = "the console reply contains {string}")]
async fn console_reply_contains(w: &mut Rig, text: String) -> Result<()> {
    if !w.console_reply.contains(&text) {
        bail!(
            "console replied {:?}, expected it to contain {text:?}",
            w.console_reply
        );
    }
    Ok(())
}

#[then(expr = "the REST reply does not contain {string}")]
async fn rest_not_contains(w: &mut Rig, text: String) -> Result<()> {
    if w.http.1.contains(&text) {
        bail!("HTTP body contains {text:?}: {}", w.http.1);
    }
    Ok(())
}

#[then(expr = "the JSON at {string} has {string} ending with {string}")]
async fn json_field_suffix(w: &mut Rig, rel: String, field: String, suffix: String) -> Result<()> {
    w.obs()?.wait_published(&w.t(&rel), ctx().timeout).await?;
    let v = json_at(w, &rel)?;
    let actual = v.get(&field).and_then(Value::as_str).unwrap_or_default();
    if !actual.ends_with(&suffix) {
        bail!(
            "'{}' has {field} = {actual:?}, expected it to end with {suffix:?}",
            w.t(&rel)
        );
    }
    Ok(())
}

#[then(expr = "the history of {string} contains {string}")]
async fn history_contains(w: &mut Rig, rel: String, payload: String) -> Result<()> {
    let deadline = std::time::Instant::now() + ctx().timeout;
    loop {
        let history = w.obs()?.history_of(&w.t(&rel));
        if history.iter().any(|s| s.payload == payload) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            let seen: Vec<String> = history.iter().map(|s| s.payload.clone()).collect();
            bail!(
                "'{}' never carried {payload:?}; history {seen:?}",
                w.t(&rel)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn discovery_topic(w: &Rig, which: &str) -> Result<String> {
    let (component, object) = which
        .split_once('/')
        .ok_or_else(|| anyhow!("'{which}': expected component/object"))?;
    Ok(format!(
        "homeassistant/{component}/{}/{object}/config",
        w.node
    ))
}

#[then(expr = "the discovery config {string} is published")]
async fn discovery_published(w: &mut Rig, which: String) -> Result<()> {
    let topic = discovery_topic(w, &which)?;
    w.obs()?
        .wait_published(&topic, ctx().timeout)
        .await
        .map(|_| ())
}

#[then(expr = "the discovery config {string} matches snapshot {string}")]
async fn discovery_snapshot(w: &mut Rig, which: String, name: String) -> Result<()> {
    let topic = discovery_topic(w, &which)?;
    let seen = w.obs()?.wait_published(&topic, ctx().timeout).await?;
    let mut v: Value = serde_json::from_str(&seen.payload)?;
    snapshot::redact_json(&mut v);
    snapshot::assert_snapshot(
        &name,
        &w.placeholders().apply(&serde_json::to_string_pretty(&v)?),
    );
    Ok(())
}

#[then(expr = "the discovery configs match snapshot {string}")]
async fn discovery_all_snapshot(w: &mut Rig, name: String) -> Result<()> {
    w.obs()?
        .wait_published(&discovery_topic(w, "button/cycle_start")?, ctx().timeout)
        .await?;
    let tree = w.with_retain_flags(w.subtree("homeassistant/")?).await?;
    snapshot::assert_snapshot(&name, &snapshot::tree_text(&tree, &w.placeholders()));
    Ok(())
}

#[then("no discovery config is published")]
async fn no_discovery(w: &mut Rig) -> Result<()> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tree = w.subtree("homeassistant/")?;
    if let Some(t) = tree.keys().next() {
        bail!("discovery config {t} was published although discovery is off");
    }
    Ok(())
}

// ---- the web interface in a real browser (@browser) ----

impl Rig {
    fn browser(&self) -> Result<&crate::browser::Browser> {
        self.browser
            .as_ref()
            .ok_or_else(|| anyhow!("open the web interface first: 'When I open the web interface'"))
    }
}

fn field_css(path: &str) -> String {
    format!("[name=\"{path}\"]")
}

#[when("I open the web interface")]
async fn open_web(w: &mut Rig) -> Result<()> {
    let base = w
        .board()?
        .http_base()
        .ok_or_else(|| anyhow!("board has no HTTP endpoint"))?;
    let browser = tokio::task::block_in_place(crate::browser::Browser::start)?;
    tokio::task::block_in_place(|| browser.open(&format!("{base}/")))?;
    w.browser = Some(browser);
    Ok(())
}

#[when(expr = "I enter {string} into {string} in the web interface")]
async fn web_enter(w: &mut Rig, text: String, path: String) -> Result<()> {
    let b = w.browser()?;
    tokio::task::block_in_place(|| b.type_into(&field_css(&path), &text))
}

#[when(expr = "I move the main topic to {string} below it in the web interface")]
async fn web_move_main(w: &mut Rig, suffix: String) -> Result<()> {
    let new = format!("{}/{suffix}", w.main_topic);
    let b = w.browser()?;
    tokio::task::block_in_place(|| b.type_into(&field_css("mqtt.maintopic"), &new))
}

#[when(expr = "I choose {string} for {string} in the web interface")]
async fn web_choose(w: &mut Rig, value: String, path: String) -> Result<()> {
    let b = w.browser()?;
    tokio::task::block_in_place(|| {
        b.click(&format!("{} option[value=\"{value}\"]", field_css(&path)))
    })
}

#[when("I save in the web interface")]
async fn web_save(w: &mut Rig) -> Result<()> {
    let b = w.browser()?;
    tokio::task::block_in_place(|| {
        b.click("#save")?;
        b.wait_text("#status", Duration::from_secs(10), |t| !t.is_empty())
            .map(|_| ())
    })
}

#[then(expr = "the web interface says {string}")]
async fn web_says(w: &mut Rig, text: String) -> Result<()> {
    let b = w.browser()?;
    tokio::task::block_in_place(|| {
        b.wait_text("#status", Duration::from_secs(10), |t| t.contains(&text))
    })
    .map(|_| ())
    .with_context(|| format!("the page never said {text:?}"))
}

#[then(expr = "the web interface shows {string} next to {string}")]
async fn web_error_next_to(w: &mut Rig, text: String, path: String) -> Result<()> {
    let b = w.browser()?;
    let css = format!("[data-error-for=\"{path}\"]");
    tokio::task::block_in_place(|| {
        b.wait_text(&css, Duration::from_secs(10), |t| t.contains(&text))
    })
    .map(|_| ())
    .with_context(|| format!("no message {text:?} next to {path}"))
}

#[then(expr = "the web interface field {string} shows the main topic")]
async fn web_field_main(w: &mut Rig, path: String) -> Result<()> {
    let b = w.browser()?;
    let v = tokio::task::block_in_place(|| b.value(&field_css(&path)))?;
    if v != w.main_topic {
        bail!("field {path} shows {v:?}, expected {:?}", w.main_topic);
    }
    Ok(())
}
