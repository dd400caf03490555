//! Steps that give a number sequence its meter (how many digit and pointer ROIs it reads), show it readings with
//! either list empty, and walk the spec's digitization examples (`fixtures/digitization-examples.toml`) as the rig
//! reads the file: each example sets the board up, shows its ROI results and names the value it must read.

use anyhow::{anyhow, Context, Result};
use cucumber::{given, then, when};
use serde::Deserialize;
use serde_json::{json, Value};

use super::Step;
use crate::world::{ctx, set_path, Rig};

/// One worked example of the spec's file.
#[derive(Debug, Deserialize)]
struct Example {
    digits: Vec<f64>,
    analogs: Vec<f64>,
    model: String,
    extended_resolution: bool,
    decimal_shift: i32,
    check_digit_increase_consistency: bool,
    analog_digit_sync_value: f64,
    expected: String,
}

#[derive(Debug, Deserialize)]
struct Examples {
    case: Vec<Example>,
}

/// Example `n` (1-based, in file order) of a file under the repository.
fn example(file: &str, n: usize) -> Result<Example> {
    let path = ctx().root.join(file);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut all: Examples = toml::from_str(&text)
        .with_context(|| format!("{} is not a list of [[case]]", path.display()))?;
    let count = all.case.len();
    if n == 0 || n > count {
        anyhow::bail!("{file} has {count} examples, not {n}");
    }
    Ok(all.case.swap_remove(n - 1))
}

/// A reading as the console's `frame` command takes it: `1.2,6.7`; a class-11 digit is a whole number.
fn list(values: &[f64], whole: bool) -> String {
    values
        .iter()
        .map(|v| {
            if whole {
                format!("{}", v.round())
            } else {
                format!("{v}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl Rig {
    /// The staged config's index of the sequence named `name` in `section` ("digit", "analog", "postprocessing"),
    /// the entry added when the section has none for it.
    fn sequence_entry<'a>(
        config: &'a mut Value,
        section: &str,
        name: &str,
    ) -> Result<&'a mut Value> {
        let id = config["numbersequences"]["sequence"]
            .as_array()
            .and_then(|seqs| {
                seqs.iter()
                    .find(|s| s["sequencename"] == name)
                    .and_then(|s| s["sequenceid"].as_i64())
            })
            .ok_or_else(|| anyhow!("the config has no number sequence named {name:?}"))?;
        if config[section]["sequence"].as_array().is_none() {
            set_path(config, &format!("{section}.sequence"), json!([]))?;
        }
        let entries = config[section]["sequence"]
            .as_array_mut()
            .ok_or_else(|| anyhow!("{section}.sequence is not a list"))?;
        let at = match entries.iter().position(|e| e["sequenceid"] == id) {
            Some(at) => at,
            None => {
                entries.push(json!({"sequenceid": id}));
                entries.len() - 1
            }
        };
        Ok(&mut entries[at])
    }

    /// Gives the staged config's sequence `name` as many digit and pointer ROIs as asked.
    fn shape_sequence(&mut self, name: &str, digits: usize, pointers: usize) -> Result<()> {
        let config = self
            .config
            .as_mut()
            .ok_or_else(|| anyhow!("stage a config first: 'Given the config \"x.json\"'"))?;
        for (section, count, prefix) in [("digit", digits, "dig"), ("analog", pointers, "ana")] {
            let rois: Vec<Value> = (1..=count)
                .map(|i| json!({"name": format!("{prefix}{i}")}))
                .collect();
            Rig::sequence_entry(config, section, name)?["roi"] = Value::Array(rois);
        }
        Ok(())
    }

    /// Sets a post-processing key of the staged config's sequence `name`.
    fn post_setting(&mut self, name: &str, key: &str, value: Value) -> Result<()> {
        let config = self
            .config
            .as_mut()
            .ok_or_else(|| anyhow!("stage a config first: 'Given the config \"x.json\"'"))?;
        Rig::sequence_entry(config, "postprocessing", name)?[key] = value;
        Ok(())
    }
}

#[given(expr = "sequence {string} has {int} digit(s) and {int} pointer(s)")]
async fn sequence_shape(w: &mut Rig, name: String, digits: usize, pointers: usize) -> Step {
    Ok(w.shape_sequence(&name, digits, pointers)?)
}

#[given(expr = "sequence {string} has post-processing {string} = {}")]
async fn sequence_post(w: &mut Rig, name: String, key: String, value: String) -> Step {
    let value = serde_json::from_str(&value).unwrap_or(Value::String(value));
    Ok(w.post_setting(&name, &key, value)?)
}

#[given(expr = "sequence {string} reads digits {string} and pointers {string}")]
#[when(expr = "sequence {string} reads digits {string} and pointers {string}")]
async fn sequence_reads(w: &mut Rig, name: String, digits: String, pointers: String) -> Step {
    Ok(w.frame(&name, &digits, &pointers).await?)
}

#[given(expr = "a virtual board set up for example {int} of {string}")]
async fn example_board(w: &mut Rig, n: usize, file: String) -> Step {
    let ex = example(&file, n)?;
    w.stage("flat-json.json").await?;
    w.shape_sequence("main", ex.digits.len(), ex.analogs.len())?;
    let cnn = if ex.model == "class11" {
        "class11"
    } else {
        "class100"
    };
    let config = w
        .config
        .as_mut()
        .ok_or_else(|| anyhow!("no staged config"))?;
    set_path(config, "digit.cnntype", json!(cnn))?;
    for (key, value) in [
        ("extendedresolution", json!(ex.extended_resolution)),
        ("decimalshift", json!(ex.decimal_shift)),
        (
            "checkdigitincreaseconsistency",
            json!(ex.check_digit_increase_consistency),
        ),
        (
            "analogdigitsyncvalue",
            json!(ex.analog_digit_sync_value.to_string()),
        ),
        // One cycle, no valid fallback value, max-rate check off (the file's premise).
        ("maxratechecktype", json!(0)),
    ] {
        w.post_setting("main", key, value)?;
    }
    Ok(w.start().await?)
}

#[when(expr = "the meter shows the ROI results of example {int} of {string}")]
async fn example_reading(w: &mut Rig, n: usize, file: String) -> Step {
    let ex = example(&file, n)?;
    let whole = ex.model == "class11";
    Ok(
        w.frame("main", &list(&ex.digits, whole), &list(&ex.analogs, false))
            .await?,
    )
}

#[then(expr = "the actual value is the expected value of example {int} of {string}")]
async fn example_value(w: &mut Rig, n: usize, file: String) -> Step {
    let ex = example(&file, n)?;
    let topic = w.t("process/data/0/json");
    w.expect(
        format!("example {n} of {file} reads {:?}", ex.expected),
        Some(topic.clone()),
        format!("actual_value = {}", ex.expected),
    );
    let expected = ex.expected.clone();
    let what = format!("had actual_value = {expected:?}");
    wait_json(w, &topic, &what, |v| v["actual_value"] == expected.as_str()).await
}

/// The number at `key`, printed as a JSON number or as a string (the reference prints most values as strings).
fn number_at(v: &Value, key: &str) -> Option<f64> {
    match &v[key] {
        Value::String(s) => s.parse().ok(),
        other => other.as_f64(),
    }
}

/// Waits until the JSON at `topic` satisfies `accept`; on failure the step's report shows the last payload seen.
async fn wait_json(w: &mut Rig, topic: &str, what: &str, accept: impl Fn(&Value) -> bool) -> Step {
    let result = w
        .wait_topic(topic, what, true, |s| {
            serde_json::from_str::<Value>(&s.payload)
                .ok()
                .is_some_and(|v| accept(&v))
        })
        .await;
    if result.is_err() {
        if let Some(seen) = w.obs()?.get(topic) {
            w.saw(seen.payload);
        }
    }
    result?;
    Ok(())
}

#[then(expr = "the JSON at {string} has {string} as a number from {float} to {float}")]
async fn json_number_between(w: &mut Rig, rel: String, field: String, low: f64, high: f64) -> Step {
    let topic = w.t(&rel);
    w.expect(
        format!("the JSON at '{rel}' has {field} from {low} to {high}"),
        Some(topic.clone()),
        format!("{low} <= {field} <= {high}"),
    );
    let what = format!("had {field} from {low} to {high}");
    wait_json(w, &topic, &what, |v| {
        number_at(v, &field).is_some_and(|n| (low..=high).contains(&n))
    })
    .await
}

#[then(expr = "the JSON at {string} has {string} = {int} times {string}")]
async fn json_number_times(
    w: &mut Rig,
    rel: String,
    field: String,
    factor: u32,
    base: String,
) -> Step {
    let topic = w.t(&rel);
    w.expect(
        format!("the JSON at '{rel}' has {field} = {factor} x {base}"),
        Some(topic.clone()),
        format!("{field} = {factor} x {base}, a non-zero rate"),
    );
    let factor = f64::from(factor);
    let what = format!("had {field} = {factor} x {base}");
    wait_json(w, &topic, &what, |v| {
        match (number_at(v, &field), number_at(v, &base)) {
            // Both printed rounded: half a unit of the 3rd decimal of the base, scaled, and of the 2nd.
            (Some(got), Some(b)) if b != 0.0 => (got - factor * b).abs() <= factor * 5e-4 + 5e-3,
            _ => false,
        }
    })
    .await
}
