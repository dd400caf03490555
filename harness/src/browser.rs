//! A headless Chromium driven through WebDriver (Debian's `chromium` + `chromium-driver`): just what the web
//! interface scenarios need — open a page, type, select, click, read text.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::broker::free_port;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// True when both the browser and its driver are installed.
pub fn installed() -> bool {
    Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()
}

/// One browser session with its own chromedriver and profile.
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
    profile: std::path::PathBuf,
}

fn call(addr: &str, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, reply) = crate::world::http_request(addr, method, path, &text)?;
    let v: Value = serde_json::from_str(&reply)
        .with_context(|| format!("WebDriver {method} {path}: {reply}"))?;
    if status != 200 {
        bail!(
            "WebDriver {method} {path}: {}",
            v["value"]["message"].as_str().unwrap_or(&reply)
        );
    }
    Ok(v["value"].clone())
}

impl Browser {
    pub fn start() -> Result<Browser> {
        if !installed() {
            bail!("no browser: install it with `apt-get install -y chromium chromium-driver`");
        }
        let port = free_port()?;
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start chromedriver")?;
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&addr).is_err() {
            if Instant::now() > deadline {
                bail!("chromedriver did not listen on {addr}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let profile = std::env::temp_dir().join(format!("hil-chromium-{port}"));
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM,
            // The flags this machine needs: no sandbox as root, and no background traffic to the internet.
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", format!("--user-data-dir={}", profile.display())]}}}});
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            profile,
        };
        let v = call(&browser.addr, "POST", "/session", Some(caps))?;
        browser.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no WebDriver session: {v}"))?
            .to_string();
        Ok(browser)
    }

    fn s(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub fn open(&self, url: &str) -> Result<()> {
        call(
            &self.addr,
            "POST",
            &self.s("/url"),
            Some(json!({"url": url})),
        )
        .map(|_| ())
    }

    fn find(&self, css: &str) -> Result<String> {
        let v = call(
            &self.addr,
            "POST",
            &self.s("/element"),
            Some(json!({"using": "css selector", "value": css})),
        )
        .with_context(|| format!("no element '{css}' on the page"))?;
        v[ELEMENT]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no element '{css}'"))
    }

    pub fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let e = self.find(css)?;
        call(
            &self.addr,
            "POST",
            &self.s(&format!("/element/{e}/clear")),
            Some(json!({})),
        )?;
        call(
            &self.addr,
            "POST",
            &self.s(&format!("/element/{e}/value")),
            Some(json!({"text": text})),
        )
        .map(|_| ())
    }

    pub fn click(&self, css: &str) -> Result<()> {
        let e = self.find(css)?;
        call(
            &self.addr,
            "POST",
            &self.s(&format!("/element/{e}/click")),
            Some(json!({})),
        )
        .map(|_| ())
    }

    pub fn text(&self, css: &str) -> Result<String> {
        let e = self.find(css)?;
        Ok(call(
            &self.addr,
            "GET",
            &self.s(&format!("/element/{e}/text")),
            None,
        )?
        .as_str()
        .unwrap_or_default()
        .to_string())
    }

    pub fn value(&self, css: &str) -> Result<String> {
        let e = self.find(css)?;
        let v = call(
            &self.addr,
            "GET",
            &self.s(&format!("/element/{e}/property/value")),
            None,
        )?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Waits until the element's text satisfies `ok`; returns the text.
    pub fn wait_text(
        &self,
        css: &str,
        timeout: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.text(css)?;
            if ok(&t) {
                return Ok(t);
            }
            if Instant::now() > deadline {
                bail!("'{css}' reads {t:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = call(&self.addr, "DELETE", &self.s(""), None);
        }
        // Closing the session lets chromedriver end the browser; then chromedriver itself goes.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
