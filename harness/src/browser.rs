//! A headless Chromium driven over the Chrome DevTools Protocol: just what the web interface scenarios need — open a
//! page, type, select, click, read text.
//!
//! One Chromium serves the whole run (started ahead by [`prewarm`] or by the first scenario that opens a page, ended by
//! [`shutdown`] or when hil exits: it talks to the rig over `--remote-debugging-pipe` and quits when the pipe closes).
//! Each scenario gets its own page with its own DevTools session, so browser scenarios run concurrently with each
//! other and with the rest of the suite; a page costs ~50 ms where a browser took seconds (a browser context per
//! page costs ~0.4 s more, a renderer each, and buys nothing here: every board is its own origin, the page's origin
//! is cleared of stored data before it opens and the HTTP cache is off, so a port a later board reuses starts clean).
//!
//! The page is driven the way WebDriver drives it: typing sends key events to the focused field, a click is a real
//! mouse press and release at the element's centre (after scrolling it into view, refused when the element has no
//! size or another element covers that point), and choosing an `<option>` selects it and fires `input` and `change`
//! on its `<select>` (what WebDriver's Element Click does for options).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use tokio::sync::oneshot;

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long one DevTools command may take (WebDriver's script timeout).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a page may take to load.
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// True when the browser is installed.
pub fn installed() -> bool {
    Path::new(CHROMIUM).exists()
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// The run's Chromium and the DevTools pipe to it.
struct Chromium {
    child: Mutex<Child>,
    to: Mutex<ChildStdin>,
    pending: Pending,
    next_id: AtomicU64,
    alive: Arc<AtomicBool>,
    profile: PathBuf,
}

impl Chromium {
    async fn start() -> Result<Chromium> {
        if !installed() {
            bail!("no browser: install it with `apt-get install -y chromium`");
        }
        static STARTS: AtomicU64 = AtomicU64::new(0);
        let profile = std::env::temp_dir().join(format!(
            "hil-chromium-{}-{}",
            std::process::id(),
            STARTS.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&profile);
        // The DevTools pipe is the browser's fd 3 (what it reads) and fd 4 (what it writes): the shell puts our
        // stdin/stdout pipes there and execs the browser (so the child is the browser itself).
        let flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--disable-default-apps",
            "--disable-breakpad",
            "--no-default-browser-check",
            "--mute-audio",
            "--password-store=basic",
            "--remote-debugging-pipe",
        ]
        .join(" ");
        let script = format!(
            "exec {CHROMIUM} {flags} --user-data-dir=\"$1\" about:blank 3<&0 4>&1 0</dev/null 1>/dev/null 2>/dev/null"
        );
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&profile)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start chromium")?;
        let to = child
            .stdin
            .take()
            .ok_or_else(|| anyhow!("no pipe to chromium"))?;
        let from = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no pipe from chromium"))?;
        let pending: Pending = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        {
            let (pending, alive) = (pending.clone(), alive.clone());
            std::thread::Builder::new()
                .name("chromium-devtools".into())
                .spawn(move || {
                    let mut from = BufReader::new(from);
                    let mut buf = Vec::new();
                    loop {
                        buf.clear();
                        match from.read_until(0, &mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                        if buf.last() == Some(&0) {
                            buf.pop();
                        }
                        let Ok(msg) = serde_json::from_slice::<Value>(&buf) else {
                            continue;
                        };
                        // Events (no id) are not needed: the steps poll the page.
                        let Some(id) = msg["id"].as_u64() else {
                            continue;
                        };
                        let waiter = pending.lock().ok().and_then(|mut p| p.remove(&id));
                        if let Some(tx) = waiter {
                            let _ = tx.send(msg);
                        }
                    }
                    alive.store(false, Ordering::SeqCst);
                    // Waiters see their sender dropped: the browser went away.
                    if let Ok(mut p) = pending.lock() {
                        p.clear();
                    }
                })
                .context("cannot start the DevTools reader")?;
        }
        let chromium = Chromium {
            child: Mutex::new(child),
            to: Mutex::new(to),
            pending,
            next_id: AtomicU64::new(1),
            alive,
            profile,
        };
        chromium
            .call(None, "Browser.getVersion", json!({}))
            .await
            .context("chromium did not answer on its DevTools pipe")?;
        Ok(chromium)
    }

    fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Writes one command; its answer goes to `reply` (none: not awaited).
    fn send(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
        reply: Option<oneshot::Sender<Value>>,
    ) -> Result<u64> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        if let Some(tx) = reply {
            self.pending
                .lock()
                .map_err(|_| anyhow!("DevTools state poisoned"))?
                .insert(id, tx);
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(0);
        // A few hundred bytes into a pipe the browser reads at once: this does not block.
        let sent = self
            .to
            .lock()
            .map_err(|_| anyhow!("DevTools pipe poisoned"))?
            .write_all(&bytes);
        if let Err(e) = sent {
            self.forget(id);
            bail!("DevTools {method}: the browser is gone ({e})");
        }
        Ok(id)
    }

    /// Sends one DevTools command (to the browser, or to a page's session) and waits for its result.
    async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Result<Value> {
        let (tx, rx) = oneshot::channel();
        let id = self.send(session, method, params, Some(tx))?;
        let reply = match tokio::time::timeout(COMMAND_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            Err(_) => {
                self.forget(id);
                bail!("DevTools {method}: no answer within {COMMAND_TIMEOUT:?}");
            }
            Ok(Err(_)) => bail!("DevTools {method}: the browser exited"),
        };
        if let Some(err) = reply.get("error") {
            bail!(
                "DevTools {method}: {}",
                err["message"].as_str().unwrap_or(&err.to_string())
            );
        }
        Ok(reply["result"].clone())
    }

    fn forget(&self, id: u64) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&id);
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.send(None, "Browser.close", json!({}), None);
        if let Ok(mut child) = self.child.lock() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The run's browser, started by the first page (the others wait for it).
static SHARED: tokio::sync::Mutex<Option<Arc<Chromium>>> = tokio::sync::Mutex::const_new(None);

async fn shared() -> Result<Arc<Chromium>> {
    let mut slot = SHARED.lock().await;
    if let Some(c) = slot.as_ref().filter(|c| c.alive()) {
        return Ok(c.clone());
    }
    let c = Arc::new(Chromium::start().await?);
    *slot = Some(c.clone());
    Ok(c)
}

/// Starts the run's browser in the background, so the first page does not wait for it.
pub fn prewarm() {
    if installed() {
        tokio::spawn(async {
            let _ = shared().await;
        });
    }
}

/// Ends the run's browser (pages still open keep it until they close).
pub async fn shutdown() {
    let taken = SHARED.lock().await.take();
    if let Some(c) = taken {
        // Its drop waits for the process.
        let _ = tokio::task::spawn_blocking(move || drop(c)).await;
    }
}

/// One scenario's page in the run's Chromium.
pub struct Browser {
    chromium: Arc<Chromium>,
    target: String,
    session: String,
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    Some(format!("{scheme}://{host}"))
}

/// A JavaScript string literal.
fn js(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// What `on_element` runs to click: an `<option>` is chosen in its `<select>` (WebDriver's Element Click for
/// options), anything else is scrolled into view and its centre returned, refused when it has no size or another
/// element covers that point.
const CLICK_JS: &str = "if (e.tagName === 'OPTION') { const s = e.closest('select'); \
    if (!s || s.disabled || e.disabled) throw new Error('element not interactable'); \
    s.focus(); if (!e.selected) { e.selected = true; \
      s.dispatchEvent(new Event('input', {bubbles: true})); \
      s.dispatchEvent(new Event('change', {bubbles: true})); } \
    return null; } \
  e.scrollIntoView({block: 'center', inline: 'center'}); \
  const r = e.getBoundingClientRect(); \
  if (r.width === 0 || r.height === 0) throw new Error('element not interactable (no size)'); \
  const x = r.left + r.width / 2, y = r.top + r.height / 2; \
  const top = document.elementFromPoint(x, y); \
  if (top !== e && !e.contains(top)) \
    throw new Error('element click intercepted by ' + (top ? top.outerHTML.slice(0, 80) : 'nothing')); \
  return [x, y];";

/// What `on_element` runs before typing: WebDriver's Element Clear, then the focus keys go to.
const CLEAR_JS: &str =
    "if (e.disabled || e.readOnly) throw new Error('element not interactable: ' + e.name); \
  e.scrollIntoView({block: 'center'}); e.focus(); \
  if (e.value !== '') { e.value = ''; \
    e.dispatchEvent(new Event('input', {bubbles: true})); \
    e.dispatchEvent(new Event('change', {bubbles: true})); } \
  if (document.activeElement !== e) throw new Error('element not focusable');";

impl Browser {
    /// A fresh page.
    pub async fn start() -> Result<Browser> {
        let chromium = shared().await?;
        let target = chromium
            .call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await?["targetId"]
            .as_str()
            .ok_or_else(|| anyhow!("no page"))?
            .to_string();
        let mut browser = Browser {
            chromium,
            target,
            session: String::new(),
        };
        let attached = browser
            .chromium
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": browser.target, "flatten": true}),
            )
            .await?;
        browser.session = attached["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no DevTools session for the page"))?
            .to_string();
        // Every page acts as the focused one (pages of concurrent scenarios each get their key events).
        browser
            .page(
                "Emulation.setFocusEmulationEnabled",
                json!({"enabled": true}),
            )
            .await?;
        browser.page("Network.enable", json!({})).await?;
        browser
            .page("Network.setCacheDisabled", json!({"cacheDisabled": true}))
            .await?;
        Ok(browser)
    }

    async fn page(&self, method: &str, params: Value) -> Result<Value> {
        self.chromium
            .call(Some(&self.session), method, params)
            .await
    }

    /// Evaluates an expression in the page; a thrown error is an error.
    async fn eval(&self, expression: &str) -> Result<Value> {
        let params = json!({"expression": expression, "returnByValue": true, "awaitPromise": true});
        let r = self.page("Runtime.evaluate", params).await?;
        if let Some(ex) = r.get("exceptionDetails") {
            let text = ex["exception"]["description"]
                .as_str()
                .or_else(|| ex["text"].as_str())
                .unwrap_or("exception");
            // "Error: no element 'x'\n    at ..." -> "no element 'x'"
            let first = text.lines().next().unwrap_or(text);
            bail!("{}", first.trim_start_matches("Error: "));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Runs `body` (a function body) with `e` bound to the element `css` selects; no such element is an error.
    async fn on_element(&self, css: &str, body: &str) -> Result<Value> {
        let sel = js(css);
        self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); \
             if (!e) throw new Error(\"no element '\" + {sel} + \"' on the page\"); {body} }})()"
        ))
        .await
    }

    /// Opens `url` and waits until the new document has loaded (as WebDriver's navigation does).
    pub async fn open(&self, url: &str) -> Result<()> {
        // What an earlier page of this origin (a board on the same port) stored is gone (cookies are per host, not
        // per origin, and no page uses them: they stay).
        if let Some(origin) = origin(url).filter(|o| o.starts_with("http")) {
            let types = "local_storage,indexeddb,cache_storage,service_workers,file_systems,websql";
            let clear = json!({"origin": origin, "storageTypes": types});
            self.page("Storage.clearDataForOrigin", clear).await?;
        }
        // The old document carries a mark the new one does not.
        self.eval("window.__hilOld = true").await?;
        let r = self.page("Page.navigate", json!({"url": url})).await?;
        if let Some(e) = r["errorText"].as_str().filter(|e| !e.is_empty()) {
            bail!("cannot open {url}: {e}");
        }
        let deadline = Instant::now() + LOAD_TIMEOUT;
        let loaded = "window.__hilOld ? 'navigating' : document.readyState";
        loop {
            // No document answers while the new one commits.
            let state = self.eval(loaded).await.unwrap_or_default();
            if state == "complete" {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{url} did not load within {LOAD_TIMEOUT:?} (document {state})");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Clears a field and types `text` into it, key by key.
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        self.on_element(css, CLEAR_JS)
            .await
            .with_context(|| format!("cannot type into '{css}'"))?;
        // Every key's events at once, then their answers: a page session handles its commands in order, so this
        // is typing as WebDriver's one Element Send Keys command does it, in one round trip instead of two per key.
        let mut answers = Vec::new();
        for c in text.chars() {
            let key = c.to_string();
            for event in [
                json!({"type": "keyDown", "key": key, "text": key, "unmodifiedText": key}),
                json!({"type": "keyUp", "key": key}),
            ] {
                let (tx, rx) = oneshot::channel();
                self.chromium.send(
                    Some(&self.session),
                    "Input.dispatchKeyEvent",
                    event,
                    Some(tx),
                )?;
                answers.push(rx);
            }
        }
        for rx in answers {
            let reply = tokio::time::timeout(COMMAND_TIMEOUT, rx)
                .await
                .map_err(|_| anyhow!("typing into '{css}': no answer within {COMMAND_TIMEOUT:?}"))?
                .map_err(|_| anyhow!("typing into '{css}': the browser exited"))?;
            if let Some(err) = reply.get("error") {
                bail!("typing into '{css}': {err}");
            }
        }
        Ok(())
    }

    /// Clicks an element: a mouse press and release at its centre; an `<option>` is chosen in its `<select>`.
    pub async fn click(&self, css: &str) -> Result<()> {
        let at = self
            .on_element(css, CLICK_JS)
            .await
            .with_context(|| format!("cannot click '{css}'"))?;
        let Some([x, y]) = at
            .as_array()
            .and_then(|a| Some([a.first()?.as_f64()?, a.get(1)?.as_f64()?]))
        else {
            return Ok(());
        };
        let moved = json!({"type": "mouseMoved", "x": x, "y": y});
        self.page("Input.dispatchMouseEvent", moved).await?;
        for kind in ["mousePressed", "mouseReleased"] {
            let press = json!({"type": kind, "x": x, "y": y, "button": "left", "buttons": 1, "clickCount": 1});
            self.page("Input.dispatchMouseEvent", press).await?;
        }
        Ok(())
    }

    /// The element's rendered text.
    pub async fn text(&self, css: &str) -> Result<String> {
        let v = self.on_element(css, "return e.innerText;").await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The element's `value` property.
    pub async fn value(&self, css: &str) -> Result<String> {
        let v = self.on_element(css, "return e.value;").await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Waits until the element's text satisfies `ok`; returns the text.
    pub async fn wait_text(
        &self,
        css: &str,
        timeout: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.text(css).await?;
            if ok(&t) {
                return Ok(t);
            }
            if Instant::now() > deadline {
                bail!("'{css}' reads {t:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Not awaited: a drop cannot wait.
        let _ = self.chromium.send(
            None,
            "Target.closeTarget",
            json!({"targetId": self.target}),
            None,
        );
    }
}
