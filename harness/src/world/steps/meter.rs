//! Steps that show the meter something (digits, pointers, a failed alignment) and run cycles.

use std::time::Duration;

use cucumber::{given, when};

use super::Step;
use crate::world::{ctx, Rig};

#[given(expr = "the meter shows digits {word} and pointers {word}")]
#[when(expr = "the meter shows digits {word} and pointers {word}")]
async fn meter_digits_pointers(w: &mut Rig, digits: String, pointers: String) -> Step {
    Ok(w.frame("main", &digits, &pointers).await?)
}

#[given(expr = "the meter shows digits {word}")]
#[when(expr = "the meter shows digits {word}")]
async fn meter_digits(w: &mut Rig, digits: String) -> Step {
    Ok(w.frame("main", &digits, "").await?)
}

#[given(expr = "sequence {string} shows digits {word} and pointers {word}")]
#[when(expr = "sequence {string} shows digits {word} and pointers {word}")]
async fn seq_digits_pointers(w: &mut Rig, seq: String, digits: String, pointers: String) -> Step {
    Ok(w.frame(&seq, &digits, &pointers).await?)
}

#[given(expr = "sequence {string} shows digits {word}")]
#[when(expr = "sequence {string} shows digits {word}")]
async fn seq_digits(w: &mut Rig, seq: String, digits: String) -> Step {
    Ok(w.frame(&seq, &digits, "").await?)
}

#[when("the image alignment fails")]
async fn alignment_fails(w: &mut Rig) -> Step {
    let reply = w.console("frame main align=fail").await?;
    if !reply.starts_with("ok") {
        fail!("the board refused align=fail: {reply}");
    }
    Ok(())
}

#[given("I trigger a cycle")]
#[when("I trigger a cycle")]
async fn trigger_cycle(w: &mut Rig) -> Step {
    // A cycle ran when a new cycle_counter arrives (a redelivered QoS-1 cycle_start may add one of its own); it is
    // over when process_state leaves the cycle's states (v17 publishes the counter before the process data).
    let topic = w.t("process/status/cycle_counter");
    let states = w.t("process/status/process_state");
    let before = w.obs()?.history_of(&topic).len();
    let states_before = w.obs()?.history_of(&states).len();
    w.publish("process/ctrl/cycle_start", b"1").await?;
    let deadline = std::time::Instant::now() + ctx().timeout;
    loop {
        let counted = w.obs()?.history_of(&topic).len() > before;
        // A cycle starts with Take Image; the state after the running one (if any) is not this cycle's end.
        let over = w.obs()?.history_of(&states)[states_before..]
            .iter()
            .skip_while(|s| s.payload != IN_CYCLE_STATES[0])
            .any(|s| !IN_CYCLE_STATES.contains(&s.payload.as_str()));
        if counted && over {
            return Ok(());
        }
        if let Some(why) = w.known_outcome(Some(&topic), false) {
            fail!("cycle_start cannot have an effect: {why}");
        }
        if std::time::Instant::now() > deadline {
            if counted {
                fail!(
                    "the cycle did not end: '{states}' did not leave the cycle's states within {:?}",
                    ctx().timeout
                );
            }
            fail!(
                "cycle_start had no effect: no new '{topic}' within {:?}",
                ctx().timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The `process_state` texts of a running cycle (spec: Process Status); any other state means no cycle runs.
const IN_CYCLE_STATES: [&str; 8] = [
    "Take Image",
    "Image Alignment",
    "ROI Processing - Digit",
    "ROI Processing - Analog",
    "Post-Processing",
    "Publish to MQTT",
    "Post Process Event Handling",
    "Additional Tasks",
];

#[when(expr = "I trigger {int} cycles")]
async fn trigger_cycles(w: &mut Rig, n: u32) -> Step {
    for _ in 0..n {
        trigger_cycle(w).await?;
    }
    Ok(())
}
