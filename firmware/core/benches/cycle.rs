//! One full cycle: evaluate + post-process + serialize all topics, two sequences, HA discovery on.

use criterion::{criterion_group, criterion_main, Criterion};
use meter_core::engine::{Action, BoardInfo, Boot, Engine, Event};

fn config() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/configs/ha-json-topics.json"
    ))
    .expect("fixture")
}

fn cycle(c: &mut Criterion) {
    let mut engine = Engine::new();
    let mut now = 1_706_889_564_000u64;
    engine.handle(
        now,
        Event::Booted(Boot {
            info: BoardInfo::default(),
            stored_config: Some(config()),
            stored_fallbacks: None,
        }),
    );
    engine.handle(now, Event::MqttConnected);
    let mut digit = 0u32;
    c.bench_function("full cycle, 2 sequences (ha-json-topics)", |b| {
        b.iter(|| {
            digit = (digit + 1) % 10;
            now += 60_000;
            let line = format!("frame main digits=0,1,2,{digit} analogs=4.4,5.5");
            engine.handle(now, Event::ConsoleLine(line));
            let actions = engine.handle(
                now,
                Event::MqttMessage {
                    topic: "home/utility/watermeter/process/ctrl/cycle_start".into(),
                    payload: b"1".to_vec(),
                },
            );
            assert!(actions.contains(&Action::RequestFrame));
            let frame = engine.capture_simulated();
            let out = engine.handle(now + 1000, Event::Frame(frame));
            criterion::black_box(out.len())
        })
    });
}

criterion_group!(benches, cycle);
criterion_main!(benches);
