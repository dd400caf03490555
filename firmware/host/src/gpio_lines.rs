//! GPIO lines: a Unix socket at `<state dir>/gpio.sock`, one JSON object per line each way.
//!
//! Requests:
//! - `{"cmd":"set","pin":14,"level":0}`: drive an input pin (as a wire or a button would). Reply `{"ok":true}`.
//! - `{"cmd":"get","pin":12}`: `{"ok":true,"pin":12,"mode":"output-pwm","level":1,"duty":4096}` (`duty` is null
//!   for pins without PWM).
//! - `{"cmd":"list"}`: `{"ok":true,"pins":[{...}, ...]}`.
//! - `{"cmd":"watch"}`: `{"ok":true}`, then one `{"event":"pin","pin":4,"level":1,"duty":8191}` line for every
//!   level/duty the firmware drives, until the client closes.
//! - `{"cmd":"jumper","from":12,"to":14}`: a wire from an output pin to an input pin (it stays across reboots, like
//!   a jumper on the board): the input follows the output from now on.
//!
//! Errors: `{"ok":false,"error":"..."}`; the connection stays usable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{broadcast, mpsc, oneshot};

/// What a line shows: the configured mode and the current level / duty.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub mode: String,
    pub is_input: bool,
    pub level: bool,
    pub duty: Option<u32>,
}

/// The lines of the board, shared with the socket server.
#[derive(Clone, Default)]
pub struct Lines {
    inner: Arc<Mutex<BTreeMap<u8, Line>>>,
    events: Option<broadcast::Sender<Value>>,
    /// Jumpers: output pin -> input pin.
    jumpers: Arc<Mutex<BTreeMap<u8, u8>>>,
}

/// A request to drive an input, answered by the board loop.
pub struct Drive {
    pub pin: u8,
    pub level: bool,
    pub reply: oneshot::Sender<Result<(), String>>,
}

impl Lines {
    pub fn new() -> Lines {
        let (tx, _) = broadcast::channel(1024);
        Lines {
            inner: Arc::default(),
            events: Some(tx),
            jumpers: Arc::default(),
        }
    }

    /// The input pin a jumper connects to `pin`, if any.
    pub fn jumper_from(&self, pin: u8) -> Option<u8> {
        self.jumpers.lock().ok().and_then(|j| j.get(&pin).copied())
    }

    pub fn clear(&self) {
        if let Ok(mut m) = self.inner.lock() {
            m.clear();
        }
    }

    pub fn configure(&self, pin: u8, mode: &str, is_input: bool, level: bool) {
        if let Ok(mut m) = self.inner.lock() {
            m.insert(
                pin,
                Line {
                    mode: mode.to_string(),
                    is_input,
                    level,
                    duty: None,
                },
            );
        }
    }

    /// The firmware drives a pin.
    pub fn drive(&self, pin: u8, level: bool, duty: Option<u32>) {
        if let Ok(mut m) = self.inner.lock() {
            let line = m.entry(pin).or_insert(Line {
                mode: "output".into(),
                is_input: false,
                level,
                duty,
            });
            line.level = level;
            line.duty = duty;
        }
        if let Some(tx) = &self.events {
            let _ = tx
                .send(json!({"event": "pin", "pin": pin, "level": u8::from(level), "duty": duty}));
        }
    }

    /// An input level as set from outside (recorded after the firmware accepted it).
    pub fn set_input(&self, pin: u8, level: bool) {
        if let Ok(mut m) = self.inner.lock() {
            if let Some(line) = m.get_mut(&pin) {
                line.level = level;
            }
        }
    }

    pub fn get(&self, pin: u8) -> Option<Line> {
        self.inner.lock().ok().and_then(|m| m.get(&pin).cloned())
    }

    fn describe(pin: u8, l: &Line) -> Value {
        json!({"pin": pin, "mode": l.mode, "level": u8::from(l.level), "duty": l.duty})
    }

    fn list(&self) -> Vec<Value> {
        self.inner
            .lock()
            .map(|m| m.iter().map(|(p, l)| Self::describe(*p, l)).collect())
            .unwrap_or_default()
    }
}

/// Binds the socket and serves it; input drives go to `drives`.
pub async fn serve(path: &Path, lines: Lines, drives: mpsc::Sender<Drive>) -> Result<PathBuf> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot bind GPIO socket {}", path.display()))?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let lines = lines.clone();
            let drives = drives.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut reader = BufReader::new(read).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let watch = line.contains("\"watch\"");
                    let reply = handle(&line, &lines, &drives).await;
                    if write
                        .write_all(format!("{reply}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if watch && reply["ok"] == true {
                        let Some(mut rx) = lines.events.as_ref().map(broadcast::Sender::subscribe)
                        else {
                            return;
                        };
                        while let Ok(event) = rx.recv().await {
                            if write
                                .write_all(format!("{event}\n").as_bytes())
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        return;
                    }
                }
            });
        }
    });
    Ok(path.to_path_buf())
}

fn err(message: impl Into<String>) -> Value {
    json!({"ok": false, "error": message.into()})
}

async fn handle(line: &str, lines: &Lines, drives: &mpsc::Sender<Drive>) -> Value {
    let req: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return err(format!("request is not JSON: {e}")),
    };
    let pin = req
        .get("pin")
        .and_then(Value::as_u64)
        .and_then(|p| u8::try_from(p).ok());
    match req.get("cmd").and_then(Value::as_str) {
        Some("list") => json!({"ok": true, "pins": lines.list()}),
        Some("watch") => json!({"ok": true}),
        Some("get") => {
            let Some(pin) = pin else {
                return err("\"pin\" (0..255) is required");
            };
            match lines.get(pin) {
                Some(l) => {
                    let mut v = Lines::describe(pin, &l);
                    v["ok"] = json!(true);
                    v
                }
                None => err(format!("GPIO{pin} is not configured on this board")),
            }
        }
        Some("set") => {
            let Some(pin) = pin else {
                return err("\"pin\" (0..255) is required");
            };
            let level = match req.get("level") {
                Some(Value::Number(n)) if n.as_u64() == Some(0) => false,
                Some(Value::Number(n)) if n.as_u64() == Some(1) => true,
                Some(Value::Bool(b)) => *b,
                _ => return err("\"level\" must be 0 or 1"),
            };
            match lines.get(pin) {
                None => return err(format!("GPIO{pin} is not configured on this board")),
                Some(l) if !l.is_input => {
                    return err(format!(
                        "GPIO{pin} is an {} pin driven by the firmware; only inputs can be set",
                        l.mode
                    ))
                }
                Some(_) => {}
            }
            let (reply, rx) = oneshot::channel();
            if drives.send(Drive { pin, level, reply }).await.is_err() {
                return err("the board is not running");
            }
            match rx.await {
                Ok(Ok(())) => json!({"ok": true}),
                Ok(Err(e)) => err(e),
                Err(_) => err("the board did not answer"),
            }
        }
        Some("jumper") => {
            let pin_of = |key: &str| {
                req.get(key)
                    .and_then(Value::as_u64)
                    .and_then(|p| u8::try_from(p).ok())
            };
            let (Some(from), Some(to)) = (pin_of("from"), pin_of("to")) else {
                return err("\"from\" and \"to\" (0..255) are required");
            };
            if from == to {
                return err("a jumper needs two different pins");
            }
            if let Ok(mut j) = lines.jumpers.lock() {
                j.insert(from, to);
            }
            // The input takes the output's level at once, as a wire would.
            if let (Some(out), Some(input)) = (lines.get(from), lines.get(to)) {
                if !out.is_input && input.is_input {
                    let level = out.duty.map_or(out.level, |d| d > 0);
                    let (reply, rx) = oneshot::channel();
                    if drives
                        .send(Drive {
                            pin: to,
                            level,
                            reply,
                        })
                        .await
                        .is_ok()
                    {
                        let _ = rx.await;
                    }
                }
            }
            json!({"ok": true})
        }
        Some(other) => err(format!(
            "unknown cmd '{other}' (set, get, list, watch, jumper)"
        )),
        None => err("\"cmd\" is required (set, get, list, watch, jumper)"),
    }
}
