//! Steps on GPIO lines: driving inputs, reading outputs, jumpers.

use std::time::Duration;

use cucumber::{given, then, when};

use super::Step;
use crate::world::{ctx, Rig};

fn word(high: bool) -> &'static str {
    if high {
        "high"
    } else {
        "low"
    }
}

#[when(expr = "I set input GPIO {int} {word}")]
async fn set_input(w: &mut Rig, pin: u8, level: String) -> Step {
    let high = match level.as_str() {
        "high" => true,
        "low" => false,
        other => fail!("level '{other}' is neither high nor low"),
    };
    w.gpio_event(format!("drive input GPIO {pin} {level}"));
    w.on_board("the rig cannot drive the board's GPIO line", move |b| {
        b.drive_input(pin, high)
    })
    .await?;
    Ok(())
}

#[given(expr = "GPIO {int} is jumpered to GPIO {int}")]
async fn jumpered(w: &mut Rig, from: u8, to: u8) -> Step {
    w.gpio_event(format!("jumper GPIO {from} -> GPIO {to}"));
    w.on_board("the rig cannot place the jumper", move |b| {
        b.jumper(from, to)
    })
    .await?;
    Ok(())
}

#[then(expr = "GPIO {int} is {word}")]
async fn gpio_level(w: &mut Rig, pin: u8, level: String) -> Step {
    let want = level == "high";
    w.expect(format!("GPIO {pin} is {level}"), None, level.clone());
    let deadline = std::time::Instant::now() + ctx().timeout;
    loop {
        let (high, _) = w
            .on_board("the rig cannot read the board's GPIO line", move |b| {
                b.read_output(pin)
            })
            .await?;
        if high == want {
            w.gpio_event(format!("read output GPIO {pin}: {}", word(high)));
            return Ok(());
        }
        let known = w.known_outcome(None, true);
        if known.is_some() || std::time::Instant::now() > deadline {
            w.gpio_event(format!("read output GPIO {pin}: {}", word(high)));
            w.saw(word(high));
            match known {
                Some(why) => fail!("GPIO {pin} is {} and cannot change now: {why}", word(high)),
                None => fail!("GPIO {pin} stayed {}", word(high)),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[then(expr = "GPIO {int} has PWM duty {int}")]
async fn gpio_duty(w: &mut Rig, pin: u8, duty: u32) -> Step {
    w.expect(
        format!("GPIO {pin} has PWM duty {duty}"),
        None,
        duty.to_string(),
    );
    let (_, d) = w
        .on_board("the rig cannot read the board's GPIO line", move |b| {
            b.read_output(pin)
        })
        .await?;
    w.gpio_event(format!("read output GPIO {pin}: duty {d:?}"));
    if d != Some(duty) {
        w.saw(format!("{d:?}"));
        fail!("GPIO {pin} has PWM duty {d:?}, expected {duty}");
    }
    Ok(())
}

#[then(expr = "topic {string} stays {string} for {int} ms")]
async fn topic_stays(w: &mut Rig, rel: String, payload: String, ms: u64) -> Step {
    let topic = w.t(&rel);
    w.expect(
        format!("'{rel}' stays {payload:?} for {ms} ms"),
        Some(topic.clone()),
        payload.clone(),
    );
    let before = w.obs()?.history_of(&topic).len();
    tokio::time::sleep(Duration::from_millis(ms)).await;
    let history = w.obs()?.history_of(&topic);
    let current = history.last().map(|s| s.payload.clone());
    if let Some(changed) = history.iter().skip(before).find(|s| s.payload != payload) {
        w.saw(changed.payload.clone());
        fail!(
            "'{topic}' became {:?} within {ms} ms, expected it to stay {payload:?}",
            changed.payload
        );
    }
    if current.as_deref() != Some(payload.as_str()) {
        w.saw(format!("{current:?}"));
        fail!("'{topic}' is {current:?}, not {payload:?}");
    }
    Ok(())
}
