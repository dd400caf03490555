//! The virtual board as a process, reached like a real board: MQTT broker, PTY console, GPIO socket, HTTP,
//! signals. Runs against the embedded rumqttd (default) or Debian's mosquitto (`MQTT_BROKER=mosquitto`).

mod common;

use std::time::Duration;

use common::{config, unique, Board, Broker, Observer};
use serde_json::{json, Value};

async fn setup(extra: Value) -> (Broker, Observer, Board) {
    let broker = Broker::start().await;
    let topic = unique("vb");
    let obs = Observer::connect(&broker, "#").await;
    let board = Board::start(&topic, &config(&broker, &topic, extra));
    obs.wait_for(&board.t("/device/status/connection"), "online")
        .await;
    (broker, obs, board)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_line_names_every_endpoint() {
    let (_b, _o, board) = setup(json!({})).await;
    let ready = board.ready();
    assert!(ready["serial"].as_str().unwrap().starts_with("/dev/pts/"));
    assert!(ready["http"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(ready["gpio"].as_str().unwrap().ends_with("gpio.sock"));
    assert_eq!(ready["pid"], board.inner.pid());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_after_boot_and_after_cycle_start() {
    let (_b, obs, mut board) = setup(json!({})).await;
    obs.wait_some(&board.t("/device/info/hardware")).await;
    obs.wait_some(&board.t("/device/info/network")).await;
    obs.wait_for(&board.t("/device/gpio/relay/state"), r#"{"state":0}"#)
        .await;
    assert_eq!(
        board.console("frame main digits=1,2,3"),
        "ok queued frame for main (1 queued)"
    );
    obs.publish(&board.t("/process/ctrl/cycle_start"), "1")
        .await;
    obs.wait_for(&board.t("/process/status/cycle_counter"), "1")
        .await;
    let data: Value = serde_json::from_str(
        &obs.wait_some(&board.t("/process/data/0/json"))
            .await
            .payload,
    )
    .unwrap();
    assert_eq!(data["actual_value"], "123");
    // v17 publishes every state; a cycle in manual mode ends idle.
    obs.wait_for(
        &board.t("/process/status/process_state"),
        "Idle - No Autostart",
    )
    .await;
    for t in [
        "device_uptime",
        "wlan_rssi",
        "chip_temp",
        "heap",
        "sd_partition_free",
        "ntp_syncstatus",
    ] {
        obs.wait_some(&board.t(&format!("/device/status/{t}")))
            .await;
    }
    // A late subscriber sees the retained part of the tree with the retain flag.
    let late = Observer::connect(&_b, &format!("{}/#", board.topic)).await;
    assert!(
        late.wait_some(&board.t("/device/info/firmware_version"))
            .await
            .retain
    );
    assert!(
        late.wait_for(&board.t("/device/status/connection"), "online")
            .await
            .retain
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_fallbackvalue_is_applied_and_persisted() {
    let (_b, obs, mut board) = setup(json!({})).await;
    obs.publish(
        &board.t("/process/ctrl/set_fallbackvalue"),
        r#"{"sequence":"main","value":120}"#,
    )
    .await;
    let start = std::time::Instant::now();
    loop {
        let status = board.console("status");
        if status.contains("\"fallback_value\":\"120") {
            break;
        }
        assert!(
            start.elapsed() < common::WAIT,
            "the fallback value never became 120: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Saved in the flash: it is still there after a reset.
    board.reset();
    obs.wait_for(&board.t("/device/status/connection"), "online")
        .await;
    board.console("frame main digits=1,2,N");
    obs.publish(&board.t("/process/ctrl/cycle_start"), "go")
        .await;
    obs.wait_for(&board.t("/process/status/cycle_counter"), "1")
        .await;
    let data: Value = serde_json::from_str(
        &obs.wait_some(&board.t("/process/data/0/json"))
            .await
            .payload,
    )
    .unwrap();
    assert_eq!(
        data["actual_value"], "120",
        "N substituted from the fallback value"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpio_ctrl_drives_the_line_and_reports_state() {
    let (_b, obs, board) = setup(json!({})).await;
    obs.publish(
        &board.t("/device/gpio/gpio13/ctrl"),
        r#"{"state":1,"pwm_duty":4096}"#,
    )
    .await;
    obs.wait_for(
        &board.t("/device/gpio/gpio13/state"),
        r#"{"state":1,"pwm_duty":4096}"#,
    )
    .await;
    let line = board.gpio(json!({"cmd": "get", "pin": 13}));
    assert_eq!(
        (line["level"].clone(), line["duty"].clone()),
        (json!(1), json!(4096))
    );
    // A bad ctrl leaves the pin as it was.
    obs.publish(
        &board.t("/device/gpio/gpio13/ctrl"),
        r#"{"state":1,"pwm_duty":99999}"#,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(board.gpio(json!({"cmd": "get", "pin": 13}))["duty"], 4096);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_line_change_reaches_the_firmware() {
    let (_b, obs, board) = setup(json!({})).await;
    obs.wait_for(&board.t("/device/gpio/door/state"), r#"{"state":0}"#)
        .await;
    assert_eq!(
        board.gpio(json!({"cmd": "set", "pin": 14, "level": 1})),
        json!({"ok": true})
    );
    obs.wait_for(&board.t("/device/gpio/door/state"), r#"{"state":1}"#)
        .await;
    let refused = board.gpio(json!({"cmd": "set", "pin": 12, "level": 1}));
    assert_eq!(refused["ok"], false);
    assert!(refused["error"]
        .as_str()
        .unwrap()
        .contains("only inputs can be set"));
    assert_eq!(board.gpio(json!({"cmd": "get", "pin": 99}))["ok"], false);
    assert_eq!(board.gpio(json!({"cmd": "fly"}))["ok"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lwt_on_power_loss() {
    let (broker, obs, mut board) = setup(json!({})).await;
    board.power_off();
    obs.wait_for(&board.t("/device/status/connection"), "offline")
        .await;
    let late = Observer::connect(&broker, &board.t("/device/status/connection")).await;
    let seen = late
        .wait_for(&board.t("/device/status/connection"), "offline")
        .await;
    assert!(seen.retain, "the LWT is retained");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_then_reboot_keeps_config_and_fallbacks() {
    let (_b, obs, mut board) = setup(json!({})).await;
    board.console("frame main digits=4,5,6");
    obs.publish(&board.t("/process/ctrl/cycle_start"), "1")
        .await;
    obs.wait_for(&board.t("/process/status/cycle_counter"), "1")
        .await;
    board.reset();
    obs.wait_for(&board.t("/device/status/connection"), "online")
        .await;
    assert!(
        obs.history_of(&board.t("/device/status/connection"))
            .contains(&"offline".to_string()),
        "the reset button leaves without DISCONNECT: the will said offline"
    );
    board.console("frame main digits=4,5,N");
    obs.publish(&board.t("/process/ctrl/cycle_start"), "1")
        .await;
    obs.wait_for(&board.t("/process/status/cycle_counter"), "1")
        .await;
    let data: Value = serde_json::from_str(
        &obs.wait_some(&board.t("/process/data/0/json"))
            .await
            .payload,
    )
    .unwrap();
    assert_eq!(
        data["actual_value"], "456",
        "the fallback value survived the reboot"
    );
    let start = std::time::Instant::now();
    while obs
        .history_of(&board.t("/device/info/firmware_version"))
        .len()
        < 2
    {
        assert!(
            start.elapsed() < common::WAIT,
            "device info was not republished after the reboot"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_after_broker_loss_loses_no_control_message() {
    let (broker, obs, mut board) = setup(json!({})).await;
    board.console("frame main digits=1,1,1");
    let births = obs.history_of(&board.t("/device/status/connection")).len();
    broker.outage_begin().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let obs2;
    let observer = if broker.keeps_sessions() {
        // The broker lives on; the board's persistent session must get this QoS-1 message after it reconnects.
        obs.publish(&board.t("/process/ctrl/cycle_start"), "1")
            .await;
        broker.outage_end().await;
        &obs
    } else {
        broker.outage_end().await;
        obs2 = Observer::connect(&broker, "#").await;
        obs2.wait_for(&board.t("/device/status/connection"), "online")
            .await;
        obs2.publish(&board.t("/process/ctrl/cycle_start"), "1")
            .await;
        &obs2
    };
    observer
        .wait_for(&board.t("/process/status/cycle_counter"), "1")
        .await;
    if broker.keeps_sessions() {
        assert!(
            obs.history_of(&board.t("/device/status/connection")).len() > births,
            "birth again after reconnect"
        );
    }
    assert!(board.console("status").contains("\"mqtt_connected\":true"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_config_change_of_main_topic_moves_the_tree() {
    let (_b, obs, board) = setup(json!({})).await;
    let new_topic = format!("{}/moved", board.topic);
    let (status, body) = board.http(
        "POST",
        "/api/config",
        &json!({"mqtt": {"maintopic": new_topic}}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    obs.wait_for(&format!("{new_topic}/device/status/connection"), "online")
        .await;
    obs.wait_some(&format!("{new_topic}/device/info/hardware"))
        .await;
    obs.wait_for(&board.t("/device/status/connection"), "offline")
        .await;
    let mut board = board;
    assert_eq!(board.config_value("mqtt.maintopic"), json!(new_topic));
    obs.publish(&format!("{new_topic}/process/ctrl/cycle_start"), "1")
        .await;
    obs.wait_for(&format!("{new_topic}/process/status/cycle_counter"), "1")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_web_config_is_refused_and_nothing_changes() {
    let (_b, _obs, board) = setup(json!({})).await;
    let before = board.http("GET", "/api/config", "");
    let (status, body) = board.http("POST", "/api/config", r#"{"mqtt": {"uri": "http://nope"}}"#);
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["path"], "mqtt.uri");
    assert_eq!(board.http("GET", "/api/config", ""), before);
    let (status, _) = board.http("POST", "/api/config", "{broken");
    assert_eq!(status, 400);
    let (status, page) = board.http("GET", "/", "");
    assert_eq!(status, 200);
    assert!(page.contains("Settings &gt; Configuration"));
}

/// Raw bytes to the web port, the whole answer back.
fn raw_http(addr: &str, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    // The server may answer (and close) before it has read everything; what it said is what counts.
    let _ = s.write_all(request);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// What the web server cannot serve gets the REST API's JSON error, within the ESP32-C3's limits, and the next
/// request is served as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_http_requests_get_json_errors() {
    let (_b, _obs, board) = setup(json!({})).await;
    let addr = board.ready()["http"].as_str().unwrap().to_string();

    let answer = raw_http(&addr, b"GARBAGE\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("malformed request"),
        "{body}"
    );

    let too_big = format!(
        "POST /api/config HTTP/1.1\r\nHost: board\r\nContent-Length: {}\r\n\r\n",
        net_proto::http::MAX_BODY + 1
    );
    let answer = raw_http(&addr, too_big.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.contains("application/json"), "{answer}");

    let long_head = format!(
        "GET /{} HTTP/1.1\r\n\r\n",
        "a".repeat(net_proto::http::MAX_HEAD)
    );
    assert!(raw_http(&addr, long_head.as_bytes()).starts_with("HTTP/1.1 431 "));

    // RFC 9112: what a server must reject is rejected; lines ending in LF alone are answered, not left hanging.
    let smuggled = b"POST /api/config HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}";
    assert!(raw_http(&addr, smuggled).starts_with("HTTP/1.1 400 "));
    assert!(raw_http(&addr, b"GET / HTTP/1.1\r\nHost : b\r\n\r\n").starts_with("HTTP/1.1 400 "));
    let bare_lf = raw_http(&addr, b"GET /api/status HTTP/1.1\nHost: b\n\n");
    assert!(bare_lf.starts_with("HTTP/1.1 200 "), "{bare_lf}");

    let (status, _) = board.http("GET", "/api/status", "");
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_console_and_control_input_keeps_the_board_running() {
    let (_b, obs, mut board) = setup(json!({})).await;
    for (line, code) in [
        ("fly", "err unknown-command"),
        ("frame nope digits=1", "err unknown-sequence"),
        ("frame main digits=1,2", "err roi-count"),
        ("frame main digits=x,2,3", "err bad-value"),
        (
            "config set mqtt.maintopic \"a/#\"",
            "err invalid-config mqtt.maintopic",
        ),
        ("config get no.such.key", "err unknown-path"),
        ("status extra", "err bad-args"),
    ] {
        let reply = board.console(line);
        assert!(reply.starts_with(code), "{line}: {reply}");
    }
    for (rel, payload) in [
        ("/process/ctrl/cycle_start", ""),
        ("/process/ctrl/set_fallbackvalue", "{nope"),
        (
            "/process/ctrl/set_fallbackvalue",
            r#"{"sequence":"x","value":1}"#,
        ),
        ("/device/gpio/relay/ctrl", "[]"),
        ("/device/gpio/door/ctrl", r#"{"state":1}"#),
    ] {
        obs.publish(&board.t(rel), payload).await;
    }
    let big = "x".repeat(20_000);
    obs.publish(&board.t("/process/ctrl/set_fallbackvalue"), &big)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = board.console("status");
    assert!(status.starts_with("ok "), "{status}");
    let v: Value = serde_json::from_str(&status[3..]).unwrap();
    assert_eq!(v["cycle_counter"], 0);
    assert_eq!(v["mqtt_connected"], true);
    assert!(v["last_error"].is_string(), "{v}");
    // The heap figures are sampled for the reply: the peak of a board that took a 20 KB message and a connect.
    let total = meter_shell::limits::FIRMWARE_HEAP as u64;
    let min_free = v["heap"]["heap_internal_min_free"]
        .as_u64()
        .expect("heap figures");
    let free = v["heap"]["heap_internal_free"]
        .as_u64()
        .expect("heap figures");
    assert!(min_free < free && free < total, "{v}");
    assert!(
        total - min_free > 4096,
        "a connected board has used some heap: {v}"
    );
    assert!(board.alive());
    // Messages on different topics may arrive in any order; every refusal reaches the UART log.
    let log = board.console_lines().join("\n");
    for expected in [
        "cycle_start: empty payload ignored",
        "set_fallbackvalue: payload is not valid JSON",
        "set_fallbackvalue: no number sequence named 'x'",
        "bytes on '",
        "is larger than the device takes: skipped",
        "gpio ctrl 'relay': \"state\" must be a number (0 off, 1 on)",
    ] {
        assert!(log.contains(expected), "UART log lacks '{expected}'");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flashlight_line_is_on_while_taking_the_image() {
    let (_b, obs, board) = setup(json!({})).await;
    let mut watch =
        std::os::unix::net::UnixStream::connect(board.ready()["gpio"].as_str().unwrap()).unwrap();
    std::io::Write::write_all(&mut watch, b"{\"cmd\":\"watch\"}\n").unwrap();
    watch.set_read_timeout(Some(common::WAIT)).unwrap();
    let mut reader = std::io::BufReader::new(watch);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    assert!(line.contains("\"ok\":true"));
    obs.publish(&board.t("/process/ctrl/cycle_start"), "1")
        .await;
    let mut events = vec![];
    while events.len() < 2 {
        line.clear();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["pin"] == 4 {
            events.push(v["level"].clone());
        }
    }
    assert_eq!(events, [json!(1), json!(0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_download_enters_rom_mode() {
    let (_b, obs, mut board) = setup(json!({})).await;
    assert_eq!(board.console("download"), "ok entering download mode");
    obs.wait_for(&board.t("/device/status/connection"), "offline")
        .await;
    let start = std::time::Instant::now();
    while !board
        .console_lines()
        .iter()
        .any(|l| l == "waiting for download")
    {
        assert!(start.elapsed() < common::WAIT, "no ROM banner");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(board.http("GET", "/api/status", "").0, 503);
}

#[test]
fn bad_seed_config_fails_with_the_path() {
    let dir = std::env::temp_dir().join(unique("vb-bad"));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("c.json");
    std::fs::write(&cfg, r#"{"mqtt": {"maintopic": "a//b"}}"#).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_virtual-board"))
        .arg("--state-dir")
        .arg(&dir)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mqtt.maintopic") && err.contains("empty levels"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "no ready line");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_during_config_saves_leaves_old_or_new() {
    let broker = Broker::start().await;
    for round in 0..8u64 {
        let topic = unique("vbsave");
        let mut board = Board::start(&topic, &config(&broker, &topic, json!({})));
        let addr = board.ready()["http"].as_str().unwrap().to_string();
        let writer = std::thread::spawn(move || {
            for i in 0..200 {
                let body =
                    json!({"operationmode": {"automaticprocessinterval": format!("{}.5", i + 1)}})
                        .to_string();
                if std::net::TcpStream::connect(&addr).is_err() {
                    return;
                }
                let _ =
                    std::panic::catch_unwind(|| common::http(&addr, "POST", "/api/config", &body));
            }
        });
        tokio::time::sleep(Duration::from_millis(20 + round * 15)).await;
        board.power_off();
        let _ = writer.join();
        // The board boots from what the flash holds: the old config or a new one, never defaults.
        board.power_on();
        let interval = board.config_value("operationmode.automaticprocessinterval");
        let text = interval
            .as_str()
            .map(str::to_string)
            .unwrap_or(interval.to_string());
        assert!(
            text == "1.0" || text.ends_with(".5"),
            "round {round}: interval {interval} is neither the seeded nor a saved one"
        );
        let log = board.console_lines().join("\n");
        assert!(
            !log.contains("using defaults"),
            "round {round}: the saved config was unreadable:\n{log}"
        );
        assert_eq!(board.config_value("mqtt.maintopic"), json!(topic));
    }
}

#[test]
fn download_flag_starts_in_rom_mode() {
    let dir = std::env::temp_dir().join(unique("vb-dl"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_virtual-board"))
        .arg("--state-dir")
        .arg(&dir)
        .arg("--download")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap();
    let port = std::fs::File::open(ready["serial"].as_str().unwrap()).unwrap();
    let mut uart = std::io::BufReader::new(port);
    let start = std::time::Instant::now();
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l == "waiting for download") {
        assert!(
            start.elapsed() < common::WAIT,
            "no download banner: {seen:?}"
        );
        let mut l = String::new();
        std::io::BufRead::read_line(&mut uart, &mut l).unwrap();
        seen.push(l.trim_end().to_string());
    }
    assert!(
        seen.iter().any(|l| l.contains("boot:0x7 (DOWNLOAD")),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|l| l.contains("App version")),
        "the app does not start"
    );
    let _ = child.kill();
    let _ = child.wait();
}
