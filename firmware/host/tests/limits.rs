//! The board's bounded queues, with the ESP32-C3's limits (the virtual board runs the same shell): a console nobody
//! reads never stops the firmware, and a connect that publishes more than the MQTT queues hold loses nothing.

mod common;

use std::time::{Duration, Instant};

use common::{config, unique, Broker, Observer, WAIT};
use harness::board::BoardProcess;
use serde_json::{json, Value};

/// Nobody opens the serial port: the firmware prints far more than a UART buffer holds, and keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_board_whose_console_nobody_reads_keeps_cycling() {
    let broker = Broker::start().await;
    let topic = unique("vbunread");
    let obs = Observer::connect(&broker, &format!("{topic}/#")).await;
    let dir = std::env::temp_dir().join(format!("vb-{topic}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let seed = dir.join("seed.json");
    std::fs::write(&seed, config(&broker, &topic, json!({})).to_string()).unwrap();
    let mut board = BoardProcess::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_virtual-board")),
        &dir,
        &["--config", seed.to_str().unwrap()],
        std::process::Stdio::null(),
    )
    .expect("board starts");
    obs.wait_for(&format!("{topic}/device/status/connection"), "online")
        .await;
    let counter = format!("{topic}/process/status/cycle_counter");
    // Every cycle logs several lines: 1000 cycles print ~400 KB, a hundred times what the UART buffers.
    for n in 1..=1000u32 {
        obs.publish(&format!("{topic}/process/ctrl/cycle_start"), "1")
            .await;
        obs.wait_for(&counter, &n.to_string()).await;
    }
    let (status, body) = common::http(board.http(), "GET", "/api/status", "");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["cycle_counter"], 1000);
    // The reset button still works.
    let start = Instant::now();
    board.signal("TERM");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "SIGTERM took {:?}",
        start.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Four sequences, eight exposed pins and Home Assistant discovery: the connect publishes far more than the MQTT
/// driver's queue and in-flight window hold; the shell waits instead of dropping, so every retained message of the
/// tree reaches the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_larger_than_the_mqtt_queues_loses_no_publish() {
    let broker = Broker::start().await;
    let topic = unique("vbburst");
    let sequences: Vec<Value> = (0..4)
        .map(|i| json!({"sequenceid": i, "sequencename": format!("meter{i}")}))
        .collect();
    let digits: Vec<Value> = (0..4)
        .map(|i| json!({"sequenceid": i, "roi": [{"name": format!("d{i}a")}, {"name": format!("d{i}b")}]}))
        .collect();
    let analogs: Vec<Value> = (0..4)
        .map(|i| json!({"sequenceid": i, "roi": []}))
        .collect();
    let post: Vec<Value> = (0..4)
        .map(|i| json!({"sequenceid": i, "maxratechecktype": 0}))
        .collect();
    let pins: Vec<Value> = [0u8, 1, 2, 3, 5, 6, 7, 10]
        .iter()
        .map(|&n| json!({"gpionumber": n, "pinenabled": true, "pinname": format!("out{n}"), "pinmode": "output", "exposetomqtt": true}))
        .collect();
    let extra = json!({
        "numbersequences": {"sequence": sequences},
        "digit": {"sequence": digits},
        "analog": {"sequence": analogs},
        "postprocessing": {"sequence": post},
        "gpio": {"customizationenabled": true, "gpiopin": pins},
        "mqtt": {"homeassistant": {"discoveryenabled": true, "retaindiscovery": true}},
    });
    let cfg = config(&broker, &topic, extra);
    // Watch everything from before the board connects.
    let obs = Observer::connect(&broker, "#").await;
    let mut board = common::Board::start(&topic, &cfg);
    obs.wait_for(&board.t("/device/status/connection"), "online")
        .await;

    let (_, parsed) = meter_core::config::Config::from_partial(&cfg).unwrap();
    let discovery: Vec<String> = meter_core::discovery::discovery_messages(
        &parsed,
        &meter_core::discovery::DeviceFacts::default(),
    )
    .into_iter()
    .map(|(topic, _)| topic)
    .collect();
    let mut expected = discovery.clone();
    for n in [0u8, 1, 2, 3, 5, 6, 7, 10] {
        expected.push(board.t(&format!("/device/gpio/out{n}/state")));
    }
    for info in ["hardware", "network", "firmware_version"] {
        expected.push(board.t(&format!("/device/info/{info}")));
    }
    assert!(
        expected.len() > 2 * meter_shell::limits::MQTT_MAX_INFLIGHT,
        "the burst ({}) must exceed what the queues hold",
        expected.len()
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = obs.topics();
        let missing: Vec<&String> = expected.iter().filter(|t| !seen.contains(t)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} publishes of the connect never arrived: {missing:?}",
            missing.len(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = board.console_lines().join("\n");
    assert!(!log.contains("given up"), "nothing was given up:\n{log}");
    assert!(board.console("status").contains("\"mqtt_connected\":true"));
}
