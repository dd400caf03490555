//! `hil bench` end to end: round trips and scaling on the embedded broker; round trips on Debian's mosquitto in its
//! default config (no TCP_NODELAY), where the rig's and the board's sockets must not wait for delayed ACKs; and a
//! slow broker named as the cause.

mod common;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(port: u16) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The p50 of a figure line: `name   n=.. p50=1.23ms p99=...`.
fn p50(text: &str, name: &str) -> Duration {
    let line = text
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no '{name}' in:\n{text}"));
    let value = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("p50="))
        .unwrap_or_else(|| panic!("no p50 in {line}"));
    let (number, unit) =
        value.split_at(value.find(|c: char| c.is_alphabetic() || c == 'µ').unwrap());
    let n: f64 = number.parse().unwrap();
    Duration::from_secs_f64(match unit {
        "s" => n,
        "ms" => n / 1e3,
        "µs" => n / 1e6,
        "ns" => n / 1e9,
        other => panic!("unit {other} in {line}"),
    })
}

#[test]
fn bench_runs_its_round_trips_and_scaling_on_the_embedded_broker() {
    let bin = common::board_bin();
    let out = Command::new(env!("CARGO_BIN_EXE_hil"))
        .args(["bench", "--n", "3", "--board-bin"])
        .arg(&bin)
        .output()
        .expect("run hil bench");
    let text = common::text(&out);
    assert!(out.status.success(), "{text}");
    for line in [
        "broker echo (no board)         n=3",
        "cycle_start -> cycle_counter   n=3",
        "gpio ctrl -> state             n=3",
        " 1 boards at once: all online in",
        " 8 boards at once: all online in",
        "32 boards at once: all online in",
    ] {
        assert!(text.contains(line), "no '{line}' in:\n{text}");
    }
    // rumqttd panics on client ids with '/' (the bench once used its topics as client ids).
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn round_trips_on_a_default_config_mosquitto_do_not_wait_for_delayed_acks() {
    let bin = common::board_bin();
    let port = harness::broker::free_port().unwrap();
    let dir = std::env::temp_dir().join(format!("hil-bench-mosq-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Debian's defaults: no set_tcp_nodelay.
    std::fs::write(
        dir.join("m.conf"),
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .unwrap();
    let _mosquitto = Kill(
        Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(dir.join("m.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Debian's mosquitto"),
    );
    wait_listening(port);
    let out = Command::new(env!("CARGO_BIN_EXE_hil"))
        .args(["bench", "--n", "40", "--scaling", "1", "--broker"])
        .arg(format!("mqtt://127.0.0.1:{port}"))
        .arg("--board-bin")
        .arg(&bin)
        .output()
        .expect("run hil bench");
    let text = common::text(&out);
    assert!(out.status.success(), "{text}");
    // A delayed-ACK stall is ~40 ms per round trip; without it a round trip takes a few ms.
    for name in [
        "broker echo",
        "cycle_start -> cycle_counter",
        "gpio ctrl -> state",
    ] {
        let p = p50(&text, name);
        assert!(p < Duration::from_millis(15), "{name}: p50 {p:?}\n{text}");
    }
    assert!(!text.contains("the broker is the cause"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// How far away the slow broker is, each way.
const SLOW_BROKER_MS: u64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_broker_is_named_as_the_cause() {
    let bin = common::board_bin();
    let broker = harness::broker::start_embedded("127.0.0.1:0".parse().unwrap()).unwrap();
    // A broker 100 ms away each way: everything it forwards is late. The verdict needs 2 x latency >= the board's
    // own time per round trip; at 25 ms a loaded CI machine (8 boards of the test beside it) made the board the
    // slower part.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let upstream = (broker.host.clone(), broker.port);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::join!(slow_copy(cr, sw), slow_copy(sr, cw));
            });
        }
    });
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_hil"))
            .args(["bench", "--n", "5", "--scaling", "1", "--broker"])
            .arg(format!("mqtt://127.0.0.1:{port}"))
            .arg("--board-bin")
            .arg(&bin)
            .output()
            .expect("run hil bench")
    })
    .await
    .unwrap();
    let text = common::text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("note: the broker is the cause"), "{text}");
}

async fn slow_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Latency, not a narrow pipe: every chunk leaves SLOW_BROKER_MS after it came, whatever came before it.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0
                || tx
                    .send((tokio::time::Instant::now(), buf[..n].to_vec()))
                    .is_err()
            {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at + Duration::from_millis(SLOW_BROKER_MS)).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(reader, writer);
}
