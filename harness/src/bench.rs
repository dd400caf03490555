//! `hil bench`: round trips through a virtual board and how the rig scales with boards at once.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::json;

use crate::board::VirtualBoard;
use crate::broker::BrokerTarget;
use crate::observer::Observer;

fn config(broker: &BrokerTarget, topic: &str) -> serde_json::Value {
    let mut mqtt = broker.board_settings(&broker.uri());
    mqtt.insert("enabled".into(), json!(true));
    mqtt.insert("maintopic".into(), json!(topic));
    // Client ids without '/': rumqttd 0.20 (the embedded broker) panics on them and then refuses everyone.
    mqtt.insert("clientid".into(), json!(topic.replace('/', "-")));
    json!({
        "operationmode": {"opmode": 0},
        "digit": {"sequence": [{"sequenceid": 0, "roi": [{"name": "d1"}, {"name": "d2"}]}]},
        "analog": {"sequence": [{"sequenceid": 0, "roi": []}]},
        "mqtt": mqtt,
        "gpio": {"customizationenabled": true,
                 "gpiopin": [{"gpionumber": 13, "pinenabled": true, "pinmode": "output-pwm", "exposetomqtt": true}]},
        "network": {"time": {"timezone": "UTC0"}}
    })
}

/// The broker alone: the rig publishes to a topic it subscribes to, `n` times, one at a time.
pub async fn broker_echo(broker: &BrokerTarget, n: usize) -> Result<Vec<Duration>> {
    let topic = format!("hilbench{}/echo", std::process::id());
    let obs = Observer::connect(broker, std::slice::from_ref(&topic)).await?;
    let mut samples = Vec::with_capacity(n);
    for i in 1..=n {
        let t = Instant::now();
        obs.publish(&topic, i.to_string().as_bytes(), false).await?;
        wait_count(&obs, &topic, i).await?;
        samples.push(t.elapsed());
    }
    obs.disconnect().await;
    Ok(samples)
}

/// What makes round trips slow, when they are: a GPIO round trip (ctrl -> state) passes the broker twice, so when
/// three echoes take as long as one, the broker is the cause. None when round trips are fast.
pub fn diagnose(
    echo: (Duration, Duration, Duration),
    round_trip: (Duration, Duration, Duration),
) -> Option<String> {
    let (echo_p50, trip_p50) = (echo.0, round_trip.0);
    if trip_p50 < Duration::from_millis(10) {
        return None;
    }
    if echo_p50 * 3 >= trip_p50 {
        let stall = (35..=50).contains(&echo_p50.as_millis());
        Some(format!(
            "note: the broker is the cause: it takes {echo_p50:.2?} to echo one message without a board (a round \
             trip is {trip_p50:.2?}). {}",
            if stall {
                "~40 ms is a Nagle / delayed-ACK stall: the rig's and the virtual board's sockets acknowledge at \
                 once, so the broker waits on something else (mosquitto: `set_tcp_nodelay true`; check for a proxy \
                 in between)"
            } else {
                "Check the network between the rig and the broker, and the broker's load"
            }
        ))
    } else {
        Some(format!(
            "note: the broker echoes in {echo_p50:.2?}, the board's round trip takes {trip_p50:.2?}: the time goes \
             to the board (its connection or the firmware), not the broker"
        ))
    }
}

/// p50 / p99 / max of samples (zero when there are none).
pub fn summary(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort();
    if samples.is_empty() {
        return (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    }
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99), samples[samples.len() - 1])
}

fn start_board(bin: &Path, broker: &BrokerTarget, topic: &str) -> Result<VirtualBoard> {
    let dir = std::env::temp_dir().join(format!("hil-bench-{topic}"));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(VirtualBoard::start(
        bin,
        &dir,
        Some(&config(broker, topic)),
    )?)
}

async fn wait_count(obs: &Observer, topic: &str, count: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while obs.history_of(topic).len() < count {
        if Instant::now() > deadline {
            bail!(
                "{topic}: {} publications, expected {count}",
                obs.history_of(topic).len()
            );
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    Ok(())
}

/// Round trips on one board: (cycle_start -> cycle_counter, gpio ctrl -> state), `n` each.
pub async fn round_trips(
    bin: &Path,
    broker: &BrokerTarget,
    n: usize,
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let topic = format!("hilbench{}", std::process::id());
    let obs = Observer::connect(broker, &[format!("{topic}/#")]).await?;
    let _board = tokio::task::block_in_place(|| start_board(bin, broker, &topic))?;
    obs.wait_for(
        &format!("{topic}/device/status/connection"),
        "online",
        Duration::from_secs(15),
    )
    .await?;
    let counter = format!("{topic}/process/status/cycle_counter");
    let mut cycles = Vec::with_capacity(n);
    for i in 1..=n {
        let t = Instant::now();
        obs.publish(&format!("{topic}/process/ctrl/cycle_start"), b"1", false)
            .await?;
        wait_count(&obs, &counter, i).await?;
        cycles.push(t.elapsed());
    }
    let state = format!("{topic}/device/gpio/gpio13/state");
    let base = obs.history_of(&state).len();
    let mut gpio = Vec::with_capacity(n);
    for i in 1..=n {
        let payload = format!(r#"{{"state":1,"pwm_duty":{}}}"#, i % 8000 + 1);
        let t = Instant::now();
        obs.publish(
            &format!("{topic}/device/gpio/gpio13/ctrl"),
            payload.as_bytes(),
            false,
        )
        .await?;
        wait_count(&obs, &state, base + i).await?;
        gpio.push(t.elapsed());
    }
    Ok((cycles, gpio))
}

/// `boards` boards at once: time to all online, then one cycle on each, all at once.
pub async fn scaling(
    bin: &Path,
    broker: &BrokerTarget,
    boards: usize,
) -> Result<(Duration, Duration)> {
    let prefix = format!("hilscale{}b{boards}", std::process::id());
    let obs = Observer::connect(broker, &[format!("{prefix}/#")]).await?;
    let t = Instant::now();
    let mut running = Vec::new();
    for i in 0..boards {
        let topic = format!("{prefix}/m{i}");
        running.push(tokio::task::block_in_place(|| {
            start_board(bin, broker, &topic)
        })?);
    }
    for i in 0..boards {
        obs.wait_for(
            &format!("{prefix}/m{i}/device/status/connection"),
            "online",
            Duration::from_secs(60),
        )
        .await?;
    }
    let online = t.elapsed();
    let t = Instant::now();
    for i in 0..boards {
        obs.publish(
            &format!("{prefix}/m{i}/process/ctrl/cycle_start"),
            b"1",
            false,
        )
        .await?;
    }
    for i in 0..boards {
        obs.wait_for(
            &format!("{prefix}/m{i}/process/status/cycle_counter"),
            "1",
            Duration::from_secs(60),
        )
        .await?;
    }
    let cycle = t.elapsed();
    drop(running);
    Ok((online, cycle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(p50: u64) -> (Duration, Duration, Duration) {
        let d = Duration::from_millis(p50);
        (d, d, d)
    }

    #[test]
    fn the_broker_is_named_only_when_it_is_the_cause() {
        assert_eq!(diagnose(ms(1), ms(2)), None);
        let stall = diagnose(ms(44), ms(88)).unwrap();
        assert!(
            stall.contains("the broker is the cause") && stall.contains("set_tcp_nodelay"),
            "{stall}"
        );
        let board = diagnose(ms(1), ms(44)).unwrap();
        assert!(board.contains("not the broker"), "{board}");
        assert_eq!(
            summary(vec![]),
            (Duration::ZERO, Duration::ZERO, Duration::ZERO)
        );
    }
}
