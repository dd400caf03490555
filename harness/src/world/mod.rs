//! The cucumber World: [`Rig`], one scenario's board, broker cable, observer and what the steps remember, and the
//! helpers the steps share. The steps themselves live in [`steps`], one file per domain. Topics in steps are relative
//! to the scenario's main topic (`process/status/cycle_counter`), unless a step says "absolute".

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cucumber::World;
use serde_json::{json, Value};

use crate::board::{Board, BoardError, VirtualBoard};
use crate::broker::{BrokerTarget, Cable};
use crate::inventory::Inventory;
use crate::inventory::TimeServer;
use crate::observer::{Observer, Seen};
use crate::serial_board::SerialBoard;
use crate::snapshot::Placeholders;

pub mod heap;
mod record;
mod steps;

pub use crate::http::request as http_request;

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
    /// Names the run's main topics.
    pub seed: u64,
}

static CONTEXT: OnceLock<RunContext> = OnceLock::new();

/// Sets the run's context (once, before scenarios run).
pub fn set_context(ctx: RunContext) {
    let _ = CONTEXT.set(ctx);
}

pub(crate) fn ctx() -> &'static RunContext {
    CONTEXT.get().expect("hil: run context not set")
}

static SCENARIOS: AtomicU32 = AtomicU32::new(0);

/// Firmware versions the scenarios' boards reported, and how often.
static FIRMWARE: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

/// The firmware version most of the run's boards reported (a JUnit and report property).
pub fn firmware_seen() -> Option<String> {
    let seen = FIRMWARE.lock().ok()?;
    seen.iter().max_by_key(|(_, n)| **n).map(|(v, _)| v.clone())
}

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
    /// What the scenario's evidence needs that the board and observer do not keep.
    journal: record::Journal,
    /// The scenario's network time server (virtual boards take their time from it).
    sntp: Option<crate::sntp::SntpServer>,
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

/// `a.b[1].c` -> `["a", "b", "1", "c"]`.
fn path_segments(path: &str) -> Vec<String> {
    path.replace('[', ".")
        .replace(']', "")
        .split('.')
        .map(str::to_string)
        .collect()
}

/// The value at `a.b[1].c` in a JSON document.
fn get_path<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    doc.pointer(&format!("/{}", path_segments(path).join("/")))
}

/// Sets `a.b[1].c` in a JSON document, creating objects on the way.
fn set_path(doc: &mut Value, path: &str, value: Value) -> Result<()> {
    let segs = path_segments(path);
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
        let firmware = self.observer.as_ref().and_then(|o| {
            o.get(&self.t("device/info/firmware_version"))
                .map(|s| s.payload)
        });
        if let (Some(v), Ok(mut seen)) = (firmware, FIRMWARE.lock()) {
            *seen.entry(v).or_default() += 1;
        }
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
        let rel = rel.trim_start_matches('/');
        let rel = match &ctx().serial {
            Some(inv) => inv.board_topic(rel),
            None => rel.to_string(),
        };
        format!("{}/{rel}", self.main_topic)
    }

    fn placeholders(&self) -> Placeholders {
        Placeholders {
            main_topic: self.main_topic.clone(),
            node: self.node.clone(),
            board: match &ctx().serial {
                Some(inv) => inv.board_type().to_string(),
                None => VIRTUAL_BOARD_TYPE.to_string(),
            },
        }
    }

    /// The IPv4 address the board reports, when the rig knows it: a virtual board's loopback, or the address in a
    /// real board's inventory (`http`). None: only its shape can be checked.
    pub(crate) fn board_ip(&self) -> Option<String> {
        match &ctx().serial {
            None => Some("127.0.0.1".into()),
            Some(inv) => inv.ip().map(|ip| ip.to_string()),
        }
    }

    async fn stage(&mut self, fixture: &str) -> Result<()> {
        let path = ctx().root.join("fixtures/configs").join(fixture);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("fixture {}", path.display()))?;
        let mut config: Value =
            serde_json::from_str(&text).with_context(|| format!("fixture {}", path.display()))?;
        if let Some(inv) = &ctx().serial {
            inv.remap_pins(&mut config).map_err(|e| anyhow!(e))?;
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
        self.main_topic = format!("{base}_s{}x{n}", ctx().seed);
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
        // The rig's broker options (credentials, CA, client certificate) reach the board too.
        for (key, value) in ctx().broker.board_settings(&uri) {
            if let Value::Object(fields) = value {
                for (field, v) in fields {
                    set_path(&mut config, &format!("mqtt.{key}.{field}"), v)?;
                }
            } else {
                set_path(&mut config, &format!("mqtt.{key}"), value)?;
            }
        }
        set_path(&mut config, "mqtt.maintopic", json!(self.main_topic))?;
        set_path(&mut config, "mqtt.clientid", json!(self.node))?;
        // A virtual board has no time until network time gives it some: the rig serves it. A board from an
        // inventory uses what its `timeserver` says (the lab network's server unless told otherwise).
        let serve = match &ctx().serial {
            None => Some(std::net::Ipv4Addr::LOCALHOST.into()),
            Some(inv) => match inv.time_server()? {
                TimeServer::Config => None,
                TimeServer::Rig(ip) => Some(ip),
                TimeServer::At(host) => {
                    set_path(&mut config, "network.time.ntp.timeserver", json!(host))?;
                    None
                }
            },
        };
        if let Some(ip) = serve {
            let sntp = crate::sntp::SntpServer::start_on(ip)?;
            set_path(
                &mut config,
                "network.time.ntp.timeserver",
                json!(sntp.address()),
            )?;
            self.sntp = Some(sntp);
        }
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
        let obs = match Observer::connect(&ctx().broker, &filters).await {
            Ok(obs) => obs,
            Err(e) => return Err(self.infrastructure("the rig cannot watch the broker", e)),
        };
        self.replace_observer(obs);
        let bin = ctx().board_bin.clone();
        let board: Result<Box<dyn Board>> = match &ctx().serial {
            None => match tokio::task::spawn_blocking({
                let config = config.clone();
                move || VirtualBoard::start(&bin, &dir, Some(&config))
            })
            .await
            {
                Ok(started) => started,
                Err(e) => Err(BoardError::Start(format!(
                    "the board's start did not finish: {e}"
                ))),
            }
            .map(|mut b| {
                b.watch_lines();
                Box::new(b) as Box<dyn Board>
            })
            .map_err(Into::into),
            Some(inv) => tokio::task::block_in_place(|| configure_serial(inv, &config))
                .map(|b| Box::new(b) as Box<dyn Board>),
        };
        match board {
            Ok(b) => self.board = Some(b),
            Err(e) => return Err(self.infrastructure("the board did not start", e)),
        }
        if let Err(e) = self.wait_for("device/status/connection", "online").await {
            return Err(self.infrastructure("the board did not come online", e));
        }
        // A cycle before the first sync is stamped 1970, and a rate counts from then (decision 52): a started board
        // has the rig's time before the scenario goes on, unless the scenario keeps the time from it.
        let syncs = config["network"]["time"]["ntp"]["timesyncenabled"] != false;
        if syncs && self.sntp.as_ref().is_some_and(|s| s.answers_at_once()) {
            self.wait_for_time_sync().await?;
        }
        Ok(())
    }

    /// The console's `status` reply, as JSON.
    async fn console_status(&mut self) -> Result<Value> {
        let reply = self.console("status").await?;
        serde_json::from_str(reply.trim_start_matches("ok").trim())
            .with_context(|| format!("`status` answered {reply}"))
    }

    /// Polls the console's `status` until the board says its time is synchronized.
    async fn wait_for_time_sync(&mut self) -> Result<()> {
        let deadline = std::time::Instant::now() + ctx().timeout;
        loop {
            let status = self.console_status().await?;
            if status["time_sync"] == "Synchronized" {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "the board did not take the rig's time: `status` says time_sync {}",
                    status["time_sync"]
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for a topic (relative to the main topic) to read `payload`.
    async fn wait_for(&mut self, rel: &str, payload: &str) -> Result<Seen> {
        let topic = self.t(rel);
        self.wait_topic(&topic, &format!("read {payload:?}"), false, |s| {
            s.payload == payload
        })
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

    async fn console(&mut self, line: &str) -> Result<String> {
        let timeout = ctx().timeout;
        self.console_sent(line);
        let line = line.to_string();
        let reply = self
            .on_board("the board did not answer its console", move |b| {
                b.console(&line, timeout)
            })
            .await?;
        self.console_reply = reply.clone();
        Ok(reply)
    }

    async fn frame(&mut self, sequence: &str, digits: &str, pointers: &str) -> Result<()> {
        let reply = self
            .console(&format!(
                "frame {sequence} digits={digits} analogs={pointers}"
            ))
            .await?;
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
        let (at, took) = (self.now(), std::time::Instant::now());
        let (m, p, b) = (method.to_string(), path.to_string(), body.to_string());
        let result = tokio::task::spawn_blocking(move || http_request(&addr, &m, &p, &b)).await?;
        let (status, response) = match &result {
            Ok((status, text)) => (*status, text.clone()),
            Err(e) => (0, format!("{e:#}")),
        };
        self.http_exchange(crate::evidence::HttpExchange {
            at,
            method: method.to_string(),
            path: path.to_string(),
            request: body.to_string(),
            status,
            response,
            took: took.elapsed(),
        });
        self.http = result?;
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

/// What a virtual board reports as its board type (device/info/hardware).
const VIRTUAL_BOARD_TYPE: &str = "Virtual Board";

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
