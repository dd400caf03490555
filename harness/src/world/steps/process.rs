//! Steps on the process as v17 publishes it: the states a cycle goes through, figures in a range.

use anyhow::anyhow;
use cucumber::gherkin::Step as GherkinStep;
use cucumber::then;
use serde_json::Value;

use super::Step;
use crate::world::{ctx, Rig};

/// Whether `history` holds `expected` as consecutive values.
fn holds_in_order(history: &[String], expected: &[String]) -> bool {
    !expected.is_empty()
        && history
            .windows(expected.len())
            .any(|window| window == expected)
}

#[then(expr = "topic {string} went through, in this order:")]
async fn went_through(w: &mut Rig, step: &GherkinStep, rel: String) -> Step {
    let expected: Vec<String> = step
        .table
        .as_ref()
        .ok_or_else(|| anyhow!("the step needs a table of values, one per row"))?
        .rows
        .iter()
        .filter_map(|row| row.first().cloned())
        .collect();
    let topic = w.t(&rel);
    let payloads = |h: &[crate::observer::Seen]| -> Vec<String> {
        h.iter().map(|s| s.payload.clone()).collect()
    };
    let went = w
        .obs()?
        .wait_history(&topic, ctx().timeout, |h| {
            holds_in_order(&payloads(h), &expected).then_some(())
        })
        .await;
    if let Err(history) = went {
        let history = payloads(&history);
        fail!("'{topic}' never went through {expected:?}; it carried {history:?}");
    }
    Ok(())
}

#[then(expr = "the JSON at {string} has {string} between {int} and {int}")]
async fn json_between(w: &mut Rig, rel: String, field: String, low: i64, high: i64) -> Step {
    let topic = w.t(&rel);
    let seen = w
        .obs()?
        .wait_until(&topic, ctx().timeout, &format!("had {field}"), |s| {
            serde_json::from_str::<Value>(&s.payload)
                .ok()
                .is_some_and(|v| v.get(&field).is_some())
        })
        .await?;
    let v: Value = serde_json::from_str(&seen.payload)?;
    match v[&field].as_i64() {
        Some(n) if (low..=high).contains(&n) => Ok(()),
        _ => fail!(
            "'{topic}' has {field} = {}, expected a whole number {low}..{high}",
            v[&field]
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sequence_is_found_only_whole_and_in_order() {
        let h: Vec<String> = ["Idle", "Take Image", "Image Alignment", "Idle"]
            .map(String::from)
            .to_vec();
        let want = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(holds_in_order(
            &h,
            &want(&["Take Image", "Image Alignment"])
        ));
        assert!(!holds_in_order(
            &h,
            &want(&["Image Alignment", "Take Image"])
        ));
        assert!(!holds_in_order(&h, &want(&["Take Image", "Idle"])));
        assert!(!holds_in_order(&h, &[]));
    }
}
