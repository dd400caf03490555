//! A real Home Assistant on the run's broker, for the `@live-home-assistant` scenarios (issue 11 item 4b): HA
//! discovers the scenario's board and the steps read what a user of HA sees — entity states, availability, the
//! cycle start button, HA's log.
//!
//! HA itself is `ci/home-assistant/live_ha.py` run by the Python of the venv `ci/home-assistant/install.sh` makes
//! (`$METERRIG_HA_HOME/venv-2024.3.3`, default `target/home-assistant`): it seeds a config dir (the MQTT entry with
//! discovery on, a long-lived access token, the read-only `meterrig_bridge` REST views), starts `hass`, and prints a
//! JSON `ready` line with HA's URL, token and log once HA is running, connected and subscribed to discovery. The rig
//! keeps live_ha.py's stdin open (`--quit-on-eof`): when hil exits, however it exits, the pipe closes and live_ha.py
//! stops HA and removes its config dir.
//!
//! One HA ([`shared`]) serves every scenario of the group, started by the first one that needs it; each board has its
//! own main topic, hence its own HA device and unique ids. It uses its own discovery prefix ([`SHARED_PREFIX`]), so
//! it sees only the boards of these scenarios (not the hundreds of the rest of the suite) and its birth message
//! reaches only them. A scenario that restarts HA gets an HA of its own ([`LiveHa::start`] with a prefix of its
//! own): restarting the shared one would make every other scenario's entities briefly unavailable.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::broker::BrokerTarget;

/// The tag of the scenarios that need a live HA (skipped without one, unless `--require-home-assistant`).
pub const TAG: &str = "live-home-assistant";
/// The HA release `install.sh` installs (the newest on Python 3.11).
pub const VERSION: &str = "2024.3.3";
/// How to install it.
pub const INSTALL_COMMAND: &str = "ci/home-assistant/install.sh";
/// The shared HA's discovery prefix (and `<prefix>/status` its birth topic).
pub const SHARED_PREFIX: &str = "hil-ha";
/// The bridge's barrier topic: a payload published here is `seen` once HA has handled it, and so everything the
/// broker delivered to HA before it.
pub const PING_TOPIC: &str = "meterrig-bridge/ping";
/// From starting live_ha.py to its ready line (4-10 s measured; a loaded 2-core machine takes longer).
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// One HTTP request to HA.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where install.sh puts HA (`$METERRIG_HA_HOME`, else `target/home-assistant` of the repository).
pub fn home(root: &Path) -> PathBuf {
    match std::env::var_os("METERRIG_HA_HOME") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target/home-assistant"),
    }
}

/// The venv's Python.
pub fn python(root: &Path) -> PathBuf {
    home(root).join(format!("venv-{VERSION}/bin/python"))
}

fn live_ha_script(root: &Path) -> PathBuf {
    root.join("ci/home-assistant/live_ha.py")
}

/// Ok when HA can run here; else why not (for the skip message and `--require-home-assistant`).
pub fn installed(root: &Path) -> std::result::Result<(), String> {
    let py = python(root);
    let venv = py
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    if !py.is_file() {
        return Err(format!(
            "Home Assistant {VERSION} is not installed ({} missing)",
            py.display()
        ));
    }
    // install.sh writes the stamp last: a venv without it is half-installed.
    if !venv.join(".meterrig-installed").is_file() {
        return Err(format!(
            "Home Assistant {VERSION} in {} is not completely installed",
            venv.display()
        ));
    }
    let script = live_ha_script(root);
    if !script.is_file() {
        return Err(format!("{} missing", script.display()));
    }
    Ok(())
}

/// How many scenarios of the feature files under `inputs` carry `@tag` (on the feature, a rule or the scenario).
pub fn count_scenarios(inputs: &[PathBuf], tag: &str) -> usize {
    fn files(path: &Path, out: &mut Vec<PathBuf>) {
        if path.is_dir() {
            for e in std::fs::read_dir(path).into_iter().flatten().flatten() {
                files(&e.path(), out);
            }
        } else if path.extension().is_some_and(|x| x == "feature") {
            out.push(path.to_path_buf());
        }
    }
    let mut list = Vec::new();
    for p in inputs {
        files(p, &mut list);
    }
    let want = format!("@{tag}");
    let mut n = 0;
    for f in list {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let mut pending = false; // tags read since the last keyword line
        let mut inherited = false; // the feature (or rule) has the tag
        for line in text.lines().map(str::trim) {
            if line.starts_with('@') {
                pending |= line.split_whitespace().any(|t| t == want);
            } else if line.starts_with("Feature:") || line.starts_with("Rule:") {
                inherited |= pending;
                pending = false;
            } else if line.starts_with("Scenario") {
                n += usize::from(inherited || pending);
                pending = false;
            } else if !line.is_empty() && !line.starts_with('#') {
                pending &= line.starts_with('@');
            }
        }
    }
    n
}

/// One record of HA's log: `YYYY-MM-DD HH:MM:SS.mmm LEVEL (thread) [logger] message`, with its continuation lines
/// (a traceback) in `message`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub time: String,
    pub level: String,
    pub logger: String,
    pub message: String,
}

impl LogRecord {
    /// The record's first line and, for a traceback, its last (the exception).
    pub fn short(&self) -> String {
        let mut lines = self.message.lines().filter(|l| !l.trim().is_empty());
        let first = lines.next().unwrap_or_default();
        let head = format!("{} {} [{}] {first}", self.time, self.level, self.logger);
        match lines.next_back() {
            Some(last) => format!("{head} ... {}", last.trim()),
            None => head,
        }
    }
}

impl std::fmt::Display for LogRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} [{}] {}",
            self.time, self.level, self.logger, self.message
        )
    }
}

fn record_start(line: &str) -> Option<LogRecord> {
    let b = line.as_bytes();
    let shape = b.len() > 24
        && b.iter().take(23).enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            _ => c.is_ascii_digit(),
        })
        && b[23] == b' ';
    if !shape {
        return None;
    }
    let rest = &line[24..];
    let (level, rest) = rest.split_once(' ')?;
    if !["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"].contains(&level) {
        return None;
    }
    let rest = rest.strip_prefix('(')?;
    let (_thread, rest) = rest.split_once(") [")?;
    let (logger, message) = rest.split_once("] ")?;
    Some(LogRecord {
        time: line[..23].to_string(),
        level: level.to_string(),
        logger: logger.to_string(),
        message: message.to_string(),
    })
}

/// HA's log text -> records (as `ha_common.parse_log` reads it); live_ha.py's `==== live_ha:` lines are skipped.
pub fn parse_log(text: &str) -> Vec<LogRecord> {
    let mut out: Vec<LogRecord> = Vec::new();
    for line in text.lines() {
        if let Some(r) = record_start(line) {
            out.push(r);
        } else if line.starts_with("==== live_ha:") {
            continue;
        } else if let Some(last) = out.last_mut() {
            last.message.push('\n');
            last.message.push_str(line);
        }
    }
    out
}

/// A live Home Assistant (live_ha.py and the `hass` it runs).
pub struct LiveHa {
    pub url: String,
    port: u16,
    token: String,
    /// HA's console output, appended across restarts.
    pub log: PathBuf,
    pub version: String,
    pub prefix: String,
    /// Start to ready of the first start.
    pub startup: Duration,
    starts: AtomicU64,
    stdin: Mutex<Option<ChildStdin>>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Value>>,
    child: Mutex<Child>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl std::fmt::Debug for LiveHa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveHa")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl LiveHa {
    /// Starts HA on `broker` with discovery under `prefix`; returns once HA is ready (MQTT connected, discovery
    /// subscribed, its birth message sent).
    pub async fn start(root: &Path, broker: &BrokerTarget, prefix: &str) -> Result<LiveHa> {
        installed(root).map_err(|why| anyhow!("{why}: install it with `{INSTALL_COMMAND}`"))?;
        if broker.tls.is_some() {
            bail!("the live Home Assistant scenarios need a plain mqtt:// broker (live_ha.py has no TLS options)");
        }
        let mut cmd = Command::new(python(root));
        cmd.arg(live_ha_script(root))
            .arg("--broker")
            .arg(format!("{}:{}", broker.host, broker.port))
            .args(["--prefix", prefix, "--quit-on-eof"])
            .arg("--ready-timeout")
            .arg(READY_TIMEOUT.as_secs().to_string());
        if let Some(u) = &broker.username {
            cmd.args(["--username", u]);
        }
        if let Some(p) = &broker.password {
            cmd.args(["--password", p]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", python(root).display()))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no pipe from live_ha.py"))?;
        // live_ha.py's notes (and a Python traceback): the last lines, for the error when HA does not start.
        let stderr: Arc<Mutex<VecDeque<String>>> = Arc::default();
        if let Some(from) = child.stderr.take() {
            let keep = stderr.clone();
            std::thread::Builder::new()
                .name("live-ha-stderr".into())
                .spawn(move || {
                    for line in BufReader::new(from).lines() {
                        let Ok(line) = line else { break };
                        if let Ok(mut k) = keep.lock() {
                            if k.len() == 40 {
                                k.pop_front();
                            }
                            k.push_back(line);
                        }
                    }
                })?;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("live-ha-events".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                }
            })?;
        let mut ha = LiveHa {
            url: String::new(),
            port: 0,
            token: String::new(),
            log: PathBuf::new(),
            version: String::new(),
            prefix: prefix.to_string(),
            startup: Duration::ZERO,
            starts: AtomicU64::new(0),
            stdin: Mutex::new(stdin),
            events: tokio::sync::Mutex::new(rx),
            child: Mutex::new(child),
            stderr,
        };
        let ready = ha.wait_ready().await?;
        ha.url = ready["url"].as_str().unwrap_or_default().to_string();
        ha.port = ha
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| anyhow!("live_ha.py's ready line has no usable url: {ready}"))?;
        ha.token = ready["token"].as_str().unwrap_or_default().to_string();
        ha.log = PathBuf::from(ready["log"].as_str().unwrap_or_default());
        ha.version = ready["ha_version"].as_str().unwrap_or_default().to_string();
        ha.startup = Duration::from_secs_f64(ready["startup_seconds"].as_f64().unwrap_or(0.0));
        Ok(ha)
    }

    /// The next `ready` event; an `exited` / `error` event or a closed pipe is an error with the log's tail.
    async fn wait_ready(&self) -> Result<Value> {
        let mut events = self.events.lock().await;
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT + Duration::from_secs(30);
        loop {
            let ev = tokio::time::timeout_at(deadline, events.recv()).await;
            match ev {
                Ok(Some(v)) if v["event"] == "ready" => {
                    self.starts
                        .store(v["start"].as_u64().unwrap_or_default(), Ordering::SeqCst);
                    return Ok(v);
                }
                Ok(Some(v)) if v["event"] == "exited" || v["event"] == "error" => {
                    let log = v["log"].as_str().map(PathBuf::from);
                    bail!(
                        "Home Assistant did not start: {v}\n{}",
                        log.map(|l| tail(&l, 30)).unwrap_or_default()
                    );
                }
                Ok(Some(_)) => {}
                Ok(None) => bail!(
                    "live_ha.py ended before Home Assistant was ready:\n{}",
                    self.stderr_tail()
                ),
                Err(_) => bail!(
                    "Home Assistant was not ready within {} s:\n{}",
                    READY_TIMEOUT.as_secs() + 30,
                    self.stderr_tail()
                ),
            }
        }
    }

    fn stderr_tail(&self) -> String {
        self.stderr
            .lock()
            .map(|k| k.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    fn command(&self, line: &str) -> Result<()> {
        let mut stdin = self
            .stdin
            .lock()
            .map_err(|_| anyhow!("live_ha.py's pipe is poisoned"))?;
        let pipe = stdin
            .as_mut()
            .ok_or_else(|| anyhow!("live_ha.py's stdin is closed"))?;
        pipe.write_all(format!("{line}\n").as_bytes())?;
        pipe.flush()?;
        Ok(())
    }

    /// Stops HA cleanly and starts it again (its config dir, registries and token stay); returns start to ready.
    pub async fn restart(&self) -> Result<Duration> {
        let t = Instant::now();
        self.command("restart")?;
        self.wait_ready().await?;
        Ok(t.elapsed())
    }

    /// How many times HA was started.
    pub fn starts(&self) -> u64 {
        self.starts.load(Ordering::SeqCst)
    }

    /// One request to HA's HTTP API with the token: (status, body).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String)> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let exchange = async {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nAccept: application/json\r\nConnection: close\r\n\
                 Content-Length: {}\r\n\r\n",
                self.port,
                self.token,
                body.len()
            );
            s.write_all(head.as_bytes()).await?;
            s.write_all(body.as_bytes()).await?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await?;
            anyhow::Ok(buf)
        };
        let raw = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| anyhow!("Home Assistant did not answer {method} {path} in time"))?
            .with_context(|| format!("{method} {} {path}", self.url))?;
        parse_response(&raw).with_context(|| format!("{method} {} {path}", self.url))
    }

    async fn get_json(&self, path: &str) -> Result<Value> {
        let (status, body) = self.request("GET", path, None).await?;
        if status != 200 {
            bail!("GET {path}: HTTP {status}: {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("GET {path}: not JSON"))
    }

    /// Every MQTT entity HA has: state, attributes, unique id, device (the bridge's view).
    pub async fn entities(&self) -> Result<Vec<Value>> {
        match self
            .get_json("/api/meterrig/entities?platform=mqtt&include_disabled=1")
            .await?
        {
            Value::Array(list) => Ok(list),
            other => bail!("/api/meterrig/entities: expected a list, got {other}"),
        }
    }

    /// Calls an HA service (`domain.service`) with `data`, as the UI does.
    pub async fn call_service(&self, service: &str, data: &Value) -> Result<()> {
        let (domain, name) = service
            .split_once('.')
            .ok_or_else(|| anyhow!("'{service}': expected domain.service"))?;
        let path = format!("/api/services/{domain}/{name}");
        let (status, body) = self.request("POST", &path, Some(data)).await?;
        if status != 200 {
            bail!("POST {path} {data}: HTTP {status}: {body}");
        }
        Ok(())
    }

    /// Whether HA has handled a message with payload `token` on [`PING_TOPIC`].
    pub async fn ping_seen(&self, token: &str) -> Result<bool> {
        let v = self
            .get_json(&format!("/api/meterrig/ping?token={token}"))
            .await?;
        Ok(v["seen"] == true)
    }

    /// The log's size now: records after it are what happened since.
    pub fn log_mark(&self) -> u64 {
        std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// The log's records written after `mark`.
    pub fn records_since(&self, mark: u64) -> Result<Vec<LogRecord>> {
        let mut f = std::fs::File::open(&self.log)
            .with_context(|| format!("HA's log {}", self.log.display()))?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        let from = usize::try_from(mark).unwrap_or(0).min(bytes.len());
        Ok(parse_log(&String::from_utf8_lossy(&bytes[from..])))
    }
}

impl Drop for LiveHa {
    /// live_ha.py stops HA when its stdin closes.
    fn drop(&mut self) {
        if let Ok(mut stdin) = self.stdin.lock() {
            stdin.take();
        }
        if let Ok(mut child) = self.child.lock() {
            // Reaped in the background: stopping HA takes seconds.
            let _ = child.try_wait();
        }
    }
}

/// An HTTP/1.1 response -> (status, body); a chunked body is decoded.
fn parse_response(raw: &[u8]) -> Result<(u16, String)> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no complete HTTP response ({} bytes)", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("no HTTP status line"))?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| anyhow!("truncated chunked body"))?;
            let size_text = String::from_utf8_lossy(&rest[..nl]);
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| anyhow!("bad chunk size {size_text:?}"))?;
            rest = &rest[nl + 2..];
            if size == 0 {
                break;
            }
            if rest.len() < size {
                bail!("truncated chunk");
            }
            out.extend_from_slice(&rest[..size]);
            rest = rest.get(size + 2..).unwrap_or_default();
        }
        body = out;
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The HA every scenario of the group shares, started by the first that asks; a failed start is remembered (each
/// later scenario fails with its reason instead of waiting for another start).
pub async fn shared(root: &Path, broker: &BrokerTarget) -> Result<Arc<LiveHa>> {
    static SHARED: tokio::sync::OnceCell<std::result::Result<Arc<LiveHa>, String>> =
        tokio::sync::OnceCell::const_new();
    let got = SHARED
        .get_or_init(|| async {
            let t = Instant::now();
            match LiveHa::start(root, broker, SHARED_PREFIX).await {
                Ok(ha) => {
                    println!(
                        "Home Assistant {} on the broker (prefix {SHARED_PREFIX}), ready in {:.1?}",
                        ha.version,
                        t.elapsed()
                    );
                    Ok(Arc::new(ha))
                }
                Err(e) => Err(format!("{e:#}")),
            }
        })
        .await;
    got.clone().map_err(|e| anyhow!(e))
}

/// A scenario's HA and where its part of HA's log starts, by the scenario's node id.
#[derive(Clone)]
pub struct Attached {
    pub ha: Arc<LiveHa>,
    /// The size of HA's log when the board started.
    pub log_mark: u64,
    /// An HA of the scenario's own (it may restart it).
    pub own: bool,
}

static ATTACHED: Mutex<Option<HashMap<String, Attached>>> = Mutex::new(None);

/// Remembers the HA a scenario's board (node id) talks to.
pub fn attach(node: &str, ha: Arc<LiveHa>, log_mark: u64, own: bool) {
    if let Ok(mut map) = ATTACHED.lock() {
        map.get_or_insert_with(HashMap::new)
            .insert(node.to_string(), Attached { ha, log_mark, own });
    }
}

/// The HA of a scenario's board.
pub fn attached(node: &str) -> Option<Attached> {
    ATTACHED.lock().ok()?.as_ref()?.get(node).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_records_with_continuation_lines() {
        let text = "==== live_ha: start #1 at 2024-01-01T00:00:00Z ====\n\
            2024-03-20 10:00:00.123 INFO (MainThread) [homeassistant.core] Starting\n\
            2024-03-20 10:00:01.456 ERROR (MainThread) [homeassistant.components.mqtt.models] Exception raised\n\
            Traceback (most recent call last):\n  ValueError: x\n\
            2024-03-20 10:00:02.000 WARNING (SyncWorker_0) [homeassistant.components.sensor] odd unit\n";
        let r = parse_log(text);
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].level, "ERROR");
        assert_eq!(r[1].logger, "homeassistant.components.mqtt.models");
        assert!(r[1].message.ends_with("ValueError: x"));
        assert_eq!(r[2].level, "WARNING");
        assert_eq!(r[2].message, "odd unit");
        assert!(parse_log("2024-03-20 nonsense\n").is_empty());
    }

    #[test]
    fn responses_plain_and_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]";
        assert_eq!(parse_response(plain).unwrap(), (200, "[]".to_string()));
        let chunked =
            b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), (401, "abcde".to_string()));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }

    #[test]
    fn scenarios_counted_by_tag() {
        let dir = std::env::temp_dir().join(format!("hil-ha-count-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("a.feature"),
            "@x @live-home-assistant\nFeature: a\n  Background:\n    Given b\n  Scenario: one\n  @virtual-only\n  Scenario: two\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("b.feature"),
            "@home-assistant\nFeature: b\n  @live-home-assistant\n  Scenario: one\n    Given x\n  Scenario: two\n",
        )
        .unwrap();
        assert_eq!(count_scenarios(std::slice::from_ref(&dir), TAG), 3);
        assert_eq!(
            count_scenarios(&[dir.join("b.feature")], "home-assistant"),
            2
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
