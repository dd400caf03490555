//! Test bench for the virtual board: a broker (the rig's embedded rumqttd behind a cuttable TCP cable, or Debian's
//! mosquitto with `MQTT_BROKER=mosquitto`), the board as a process, its PTY console, its GPIO socket, an observer.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const WAIT: Duration = Duration::from_secs(15);

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A unique name for this test's board, topic and state dir.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

// ---- broker ----
// The embedded broker, the cable and the observer are the rig's own (harness): one implementation for both.

enum Kind {
    /// rumqttd in-process; boards reach it through `cable`, observers directly.
    Embedded { cable: Box<harness::broker::Cable> },
    /// mosquitto as a child process on `port` (a real restart kills and starts it again).
    Mosquitto {
        child: Mutex<Option<Child>>,
        port: u16,
        conf: PathBuf,
    },
}

pub struct Broker {
    kind: Kind,
    /// Where boards connect.
    pub port: u16,
    /// Where observers connect: straight to the broker, so an outage only cuts the boards off.
    pub direct: harness::broker::BrokerTarget,
}

impl Broker {
    pub async fn start() -> Broker {
        if std::env::var("MQTT_BROKER").as_deref() == Ok("mosquitto") {
            let port = harness::broker::free_port().expect("free port");
            let conf = std::env::temp_dir().join(format!("mosq-{port}.conf"));
            let text = format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n");
            std::fs::write(&conf, text).unwrap();
            let child = spawn_mosquitto(&conf);
            wait_port(port).await;
            let direct =
                harness::broker::BrokerTarget::parse(&format!("mqtt://127.0.0.1:{port}")).unwrap();
            return Broker {
                kind: Kind::Mosquitto {
                    child: Mutex::new(Some(child)),
                    port,
                    conf,
                },
                port,
                direct,
            };
        }
        let direct = harness::broker::start_embedded("127.0.0.1:0".parse().unwrap())
            .expect("embedded broker");
        let cable = harness::broker::Cable::start(&direct).await.expect("cable");
        let port = cable.port;
        Broker {
            kind: Kind::Embedded {
                cable: Box::new(cable),
            },
            port,
            direct,
        }
    }

    pub fn uri(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// True when a message published during an outage still reaches a persistent session afterwards.
    pub fn keeps_sessions(&self) -> bool {
        matches!(self.kind, Kind::Embedded { .. })
    }

    /// Takes the broker away (mosquitto: stopped; embedded: every board connection cut and new ones refused).
    pub async fn outage_begin(&self) {
        match &self.kind {
            Kind::Embedded { cable } => cable.set_down(true),
            Kind::Mosquitto { child, .. } => {
                if let Some(mut c) = child.lock().unwrap().take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
    }

    pub async fn outage_end(&self) {
        match &self.kind {
            Kind::Embedded { cable } => cable.set_down(false),
            Kind::Mosquitto { child, port, conf } => {
                *child.lock().unwrap() = Some(spawn_mosquitto(conf));
                wait_port(*port).await;
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Kind::Mosquitto { child, .. } = &self.kind {
            if let Some(mut c) = child.lock().unwrap().take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn spawn_mosquitto(conf: &PathBuf) -> Child {
    let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    Command::new(
        bin.expect(
            "MQTT_BROKER=mosquitto but mosquitto is not installed (apt-get install mosquitto)",
        ),
    )
    .arg("-c")
    .arg(conf)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn mosquitto")
}

async fn wait_port(port: u16) {
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < WAIT,
            "broker on port {port} did not come up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- observer: the rig's, with the panicking conveniences these tests use ----

pub use harness::observer::Seen;

pub struct Observer(harness::observer::Observer);

impl Observer {
    pub async fn connect(broker: &Broker, filter: &str) -> Observer {
        Observer(
            harness::observer::Observer::connect(&broker.direct, &[filter.to_string()])
                .await
                .expect("observer"),
        )
    }

    pub fn get(&self, topic: &str) -> Option<Seen> {
        self.0.get(topic)
    }

    pub fn topics(&self) -> Vec<String> {
        self.0.tree().into_keys().collect()
    }

    pub fn history_of(&self, topic: &str) -> Vec<String> {
        self.0
            .history_of(topic)
            .into_iter()
            .map(|s| s.payload)
            .collect()
    }

    /// Waits until `topic` carries `payload`; the failure says what the topic had instead.
    pub async fn wait_for(&self, topic: &str, payload: &str) -> Seen {
        self.0
            .wait_for(topic, payload, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn wait_some(&self, topic: &str) -> Seen {
        self.0
            .wait_published(topic, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn publish(&self, topic: &str, payload: &str) {
        self.0
            .publish(topic, payload.as_bytes(), false)
            .await
            .unwrap();
    }
}

// ---- the board: the rig's VirtualBoard (one implementation of the board process for rig and tests) ----

pub use harness::board::Board as _;

pub struct Board {
    pub inner: harness::board::VirtualBoard,
    pub topic: String,
}

/// A config for a board on `broker` with main topic `topic`, merged with `extra`.
pub fn config(broker: &Broker, topic: &str, extra: Value) -> Value {
    let mut base = json!({
        "operationmode": {"opmode": 0},
        "digit": {"sequence": [{"sequenceid": 0, "roi": [{"name": "d1"}, {"name": "d2"}, {"name": "d3"}]}]},
        "analog": {"sequence": [{"sequenceid": 0, "roi": []}]},
        "postprocessing": {"sequence": [{"sequenceid": 0, "extendedresolution": false, "maxratechecktype": 0}]},
        "mqtt": {"enabled": true, "uri": broker.uri(), "maintopic": topic, "clientid": topic},
        "gpio": {"customizationenabled": true, "gpiopin": [
            {"gpionumber": 12, "pinenabled": true, "pinname": "relay", "pinmode": "output", "exposetomqtt": true},
            {"gpionumber": 13, "pinenabled": true, "pinmode": "output-pwm", "pwmfrequency": 5000, "exposetomqtt": true},
            {"gpionumber": 14, "pinenabled": true, "pinname": "door", "pinmode": "input", "inputdebouncetime": 0, "exposetomqtt": true},
            {"gpionumber": 4, "pinenabled": true, "pinname": "flash", "pinmode": "flashlight-default"}
        ]},
        "network": {"time": {"timezone": "UTC0"}}
    });
    meter_core::config::merge(&mut base, extra);
    base
}

impl Board {
    /// Starts a board on a fresh state dir with this config.
    pub fn start(topic: &str, config: &Value) -> Board {
        let state_dir = std::env::temp_dir().join(format!("vb-{topic}"));
        let _ = std::fs::remove_dir_all(&state_dir);
        let inner = harness::board::VirtualBoard::start(
            std::path::Path::new(env!("CARGO_BIN_EXE_virtual-board")),
            &state_dir,
            Some(config),
        )
        .unwrap_or_else(|e| panic!("board did not start: {e}"));
        Board {
            inner,
            topic: topic.to_string(),
        }
    }

    pub fn ready(&self) -> &Value {
        self.inner.ready()
    }

    /// Sends a console line and returns the `ok ...` / `err ...` reply.
    pub fn console(&mut self, line: &str) -> String {
        harness::board::Board::console(&mut self.inner, line, WAIT)
            .unwrap_or_else(|e| panic!("console '{line}': {e}"))
    }

    /// Everything the board printed so far.
    pub fn console_lines(&self) -> Vec<String> {
        harness::board::Board::console_lines(&self.inner)
    }

    pub fn http(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        http(self.ready()["http"].as_str().unwrap(), method, path, body)
    }

    /// One request on the GPIO socket, refusals included.
    pub fn gpio(&self, request: Value) -> Value {
        self.inner.gpio_request(&request).expect("GPIO socket")
    }

    /// A power loss (SIGKILL): no DISCONNECT, the broker publishes the will.
    pub fn power_off(&mut self) {
        harness::board::Board::power_off(&mut self.inner).unwrap();
    }

    pub fn power_on(&mut self) {
        harness::board::Board::power_on(&mut self.inner).unwrap();
    }

    /// The reset button (SIGTERM), then the board boots again from its flash.
    pub fn reset(&mut self) {
        harness::board::Board::reset(&mut self.inner).unwrap();
    }

    pub fn alive(&mut self) -> bool {
        self.inner.is_running()
    }

    pub fn t(&self, rel: &str) -> String {
        format!("{}{rel}", self.topic)
    }

    /// The config value at `path` as the board reports it (`config get`).
    pub fn config_value(&mut self, path: &str) -> Value {
        let reply = self.console(&format!("config get {path}"));
        let json = reply
            .strip_prefix("ok ")
            .unwrap_or_else(|| panic!("config get {path}: {reply}"));
        serde_json::from_str(json).unwrap()
    }
}

/// One HTTP/1.1 exchange with the board: (status, body).
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    harness::world::http_request(addr, method, path, body).expect("HTTP request")
}
