//! Virtual-board latencies, printed as figures (not a timed test):
//! boot-to-online, cycle_start -> cycle_counter and gpio ctrl -> state round trips (median, p99).
//! `cargo bench -p virtual-board --bench roundtrip` (embedded rumqttd; `MQTT_BROKER=mosquitto` for mosquitto).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{config, unique, Board, Broker, Observer};
use serde_json::json;

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{name:<40} n={:<5} median={:>8.2?} p99={:>8.2?} max={:>8.2?}",
        samples.len(),
        pick(0.5),
        pick(0.99),
        samples[samples.len() - 1]
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let broker = Broker::start().await;
        let obs = Observer::connect(&broker, "#").await;

        let mut boots = Vec::new();
        for _ in 0..20 {
            let topic = unique("bench");
            let started = Instant::now();
            let board = Board::start(&topic, &config(&broker, &topic, json!({})));
            obs.wait_for(&board.t("/device/status/connection"), "online")
                .await;
            boots.push(started.elapsed());
        }
        summary("boot (spawn) -> online", boots);

        let topic = unique("bench");
        let board = Board::start(&topic, &config(&broker, &topic, json!({})));
        obs.wait_for(&board.t("/device/status/connection"), "online")
            .await;
        let mut cycles = Vec::new();
        for n in 1..=1000 {
            let started = Instant::now();
            obs.publish(&board.t("/process/ctrl/cycle_start"), "1")
                .await;
            obs.wait_for(&board.t("/process/status/cycle_counter"), &n.to_string())
                .await;
            cycles.push(started.elapsed());
        }
        summary("cycle_start -> cycle_counter", cycles);

        let mut gpio = Vec::new();
        for n in 0..1000u32 {
            let duty = n % 8000 + 1;
            let payload = format!(r#"{{"state":1,"pwm_duty":{duty}}}"#);
            let started = Instant::now();
            obs.publish(&board.t("/device/gpio/gpio13/ctrl"), &payload)
                .await;
            obs.wait_for(&board.t("/device/gpio/gpio13/state"), &payload)
                .await;
            gpio.push(started.elapsed());
        }
        summary("gpio ctrl -> state", gpio);
    });
}
