//! Snapshots of the complete topic tree after boot + one cycle, and of every Home Assistant discovery payload.
//! Review changes with `cargo insta review`.

mod common;

use common::{fixture, Bench};

fn tree_after_one_cycle(config: &str, frames: &[&str]) -> Bench {
    let mut b = Bench::online(&fixture(config));
    for f in frames {
        assert!(b.console(f).starts_with("ok"), "{f}");
    }
    b.cycle();
    b
}

#[test]
fn tree_flat_json() {
    let b = tree_after_one_cycle(
        "flat-json.json",
        &[
            "frame main digits=1.2,6.7 analogs=9.5,8.4",
            "frame gas digits=3,4,5",
        ],
    );
    insta::assert_snapshot!(b.tree_text());
}

#[test]
fn tree_nested_topics() {
    let b = tree_after_one_cycle(
        "nested-topics.json",
        &[
            "frame main digits=1,9,9.6",
            "frame hot digits=4,5.9 analogs=0.2",
        ],
    );
    insta::assert_snapshot!(b.tree_text());
}

#[test]
fn tree_ha_json_topics() {
    let b = tree_after_one_cycle(
        "ha-json-topics.json",
        &[
            "frame main digits=0,1,2,3 analogs=4.4,5.5",
            "frame second digits=7,8.3",
        ],
    );
    let text = b.tree_text();
    let without_discovery: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("homeassistant/"))
        .collect();
    insta::assert_snapshot!(without_discovery.join("\n"));
}

#[test]
fn discovery_payloads() {
    let b = Bench::online(&fixture("ha-json-topics.json"));
    let mut out = String::new();
    for (topic, msg) in b
        .tree
        .iter()
        .filter(|(t, _)| t.starts_with("homeassistant/"))
    {
        let pretty: serde_json::Value = serde_json::from_str(&msg.payload).unwrap();
        out.push_str(&format!(
            "{topic} retain={}\n{}\n\n",
            msg.retain,
            serde_json::to_string_pretty(&pretty).unwrap()
        ));
    }
    insta::assert_snapshot!(out);
}
