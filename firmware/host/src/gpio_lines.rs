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
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use meter_shell::limits::GPIO_CONNECTIONS;
use meter_shell::{Inbox, Input};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{broadcast, Semaphore};

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
    /// Why the firmware cannot take an input now (download mode, boot loop), if so.
    away: Arc<Mutex<Option<&'static str>>>,
}

impl Lines {
    pub fn new() -> Lines {
        let (tx, _) = broadcast::channel(1024);
        Lines {
            inner: Arc::default(),
            events: Some(tx),
            jumpers: Arc::default(),
            away: Arc::default(),
        }
    }

    /// Whether the firmware runs (and takes inputs), or why not.
    pub fn set_away(&self, why: Option<&'static str>) {
        if let Ok(mut away) = self.away.lock() {
            *away = why;
        }
    }

    fn away(&self) -> Option<&'static str> {
        self.away.lock().ok().and_then(|a| *a)
    }

    /// After the firmware drove `from`: the input a jumper carries it to, with the level that input now reads.
    pub fn jumpered(&self, from: u8) -> Option<(u8, bool)> {
        let to = self.jumpers.lock().ok()?.get(&from).copied()?;
        let out = self.get(from)?;
        if !self.get(to)?.is_input {
            return None;
        }
        let level = out.duty.map_or(out.level, |d| d > 0);
        self.set_input(to, level);
        Some((to, level))
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

/// Binds the socket and serves it; input changes go to the firmware's inbox.
pub async fn serve(
    path: &Path,
    lines: Lines,
    inbox: Arc<Inbox<CriticalSectionRawMutex>>,
) -> Result<PathBuf> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot bind GPIO socket {}", path.display()))?;
    let slots = Arc::new(Semaphore::new(GPIO_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let lines = lines.clone();
            let drives = inbox.clone();
            tokio::spawn(async move {
                let _slot = slot;
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

async fn handle(line: &str, lines: &Lines, inbox: &Inbox<CriticalSectionRawMutex>) -> Value {
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
            if let Some(why) = lines.away() {
                return err(why);
            }
            lines.set_input(pin, level);
            inbox.send(Input::Pin { pin, level }).await;
            json!({"ok": true})
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
                    if lines.away().is_none() {
                        lines.set_input(to, level);
                        inbox.send(Input::Pin { pin: to, level }).await;
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
