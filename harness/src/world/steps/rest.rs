//! Steps on the REST API of the web interface.

use anyhow::{anyhow, Context};
use cucumber::gherkin::Step as GherkinStep;
use cucumber::{then, when};
use serde_json::{json, Value};

use super::Step;
use crate::world::{get_path, parse_value, set_path, Rig};

#[when(expr = "I change {string} to {} via the REST API")]
async fn rest_change(w: &mut Rig, path: String, value: String) -> Step {
    let mut patch = json!({});
    set_path(&mut patch, &path, parse_value(&value))?;
    Ok(w.http("POST", "/api/config", &patch.to_string()).await?)
}

#[when(expr = "I post {string} to the REST config")]
async fn rest_post(w: &mut Rig, body: String) -> Step {
    Ok(w.http("POST", "/api/config", &body).await?)
}

#[when(expr = "I request {string} via HTTP")]
async fn http_get(w: &mut Rig, path: String) -> Step {
    Ok(w.http("GET", &path, "").await?)
}

#[when(expr = "I move the main topic to {string} below it")]
async fn move_main(w: &mut Rig, suffix: String) -> Step {
    let new = format!("{}/{}", w.main_topic, suffix);
    let body = json!({"mqtt": {"maintopic": new}}).to_string();
    w.http("POST", "/api/config", &body).await?;
    if w.http.0 != 200 {
        fail!(
            "moving the main topic was refused: {} {}",
            w.http.0,
            w.http.1
        );
    }
    Ok(())
}

#[then(expr = "the REST reply status is {int}")]
async fn rest_status(w: &mut Rig, status: u16) -> Step {
    w.expect(
        format!("the REST reply status is {status}"),
        None,
        status.to_string(),
    );
    if w.http.0 != status {
        w.saw(format!("{} {}", w.http.0, w.http.1));
        fail!(
            "HTTP status {} (body {}), expected {status}",
            w.http.0,
            w.http.1
        );
    }
    Ok(())
}

#[then(expr = "the REST reply contains {string}")]
async fn rest_contains(w: &mut Rig, text: String) -> Step {
    w.expect(
        format!("the REST reply contains {text:?}"),
        None,
        text.clone(),
    );
    if !w.http.1.contains(&text) {
        w.saw(w.http.1.clone());
        fail!("HTTP body {:?} does not contain {text:?}", w.http.1);
    }
    Ok(())
}

#[then(expr = "the REST reply does not contain {string}")]
async fn rest_not_contains(w: &mut Rig, text: String) -> Step {
    w.expect(
        format!("the REST reply does not contain {text:?}"),
        None,
        text.clone(),
    );
    if w.http.1.contains(&text) {
        w.saw(w.http.1.clone());
        fail!("HTTP body contains {text:?}: {}", w.http.1);
    }
    Ok(())
}

/// The config the web page (`GET /`) hands its form: `const CONFIG = {...};</script>`.
async fn page_config(w: &mut Rig) -> anyhow::Result<Value> {
    w.http("GET", "/", "").await?;
    if w.http.0 != 200 {
        anyhow::bail!("GET / answered {} {}", w.http.0, w.http.1);
    }
    let data = w
        .http
        .1
        .split_once("const CONFIG = ")
        .and_then(|(_, rest)| rest.split_once(";</script>"))
        .map(|(data, _)| data)
        .ok_or_else(|| anyhow!("the page has no `const CONFIG = ...;</script>`"))?;
    serde_json::from_str(data).context("the page's CONFIG is not JSON")
}

#[then(expr = "the configuration page shows {string} = {}")]
async fn page_shows(w: &mut Rig, path: String, value: String) -> Step {
    let want = parse_value(&value);
    w.expect(
        format!("the configuration page shows {path} = {want}"),
        None,
        want.to_string(),
    );
    let config = page_config(w).await?;
    let got = get_path(&config, &path).cloned().unwrap_or(Value::Null);
    w.saw(got.to_string());
    if got != want {
        fail!("the page's CONFIG has {path} = {got}, expected {want}");
    }
    Ok(())
}

#[when("I post the configuration page's document to the REST config")]
async fn post_page_back(w: &mut Rig) -> Step {
    // What a client that saves the whole form sends: secrets as the page shows them, redacted.
    let config = page_config(w).await?;
    Ok(w.http("POST", "/api/config", &config.to_string()).await?)
}

/// The rows of a step's table after its first, which names the columns (`columns` says which, for the error).
fn table_rows<'a>(step: &'a GherkinStep, columns: &str) -> anyhow::Result<&'a [Vec<String>]> {
    let rows = &step
        .table
        .as_ref()
        .ok_or_else(|| anyhow!("the step needs a table {columns}"))?
        .rows;
    Ok(rows.get(1..).unwrap_or_default())
}

/// Fails the step with every row that went wrong, if any did.
fn report_rows(w: &mut Rig, wrong: &[String], rows: usize, what: &str) -> Step {
    if !wrong.is_empty() {
        w.saw(wrong.join("\n"));
        fail!(
            "{} of {rows} bodies {what}:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }
    Ok(())
}

#[when("I post each body to the REST config, it is refused with the path of its bad key:")]
async fn post_each_refused(w: &mut Rig, step: &GherkinStep) -> Step {
    let rows = table_rows(step, "| body | path |")?;
    let config_now = |w: &Rig| -> anyhow::Result<Value> {
        serde_json::from_str(&w.http.1).context("GET /api/config is not JSON")
    };
    w.http("GET", "/api/config", "").await?;
    let before = config_now(w)?;
    let mut wrong = Vec::new();
    for row in rows {
        let [body, path] = row.as_slice() else {
            fail!("each row needs a body and a path: {row:?}");
        };
        w.http("POST", "/api/config", body).await?;
        let refused: Option<Value> = serde_json::from_str(&w.http.1).ok();
        let got = refused.as_ref().and_then(|v| v["path"].as_str());
        if w.http.0 != 400 || got != Some(path.as_str()) {
            wrong.push(format!(
                "{body} -> {} {} (expected 400 at {path})",
                w.http.0, w.http.1
            ));
        }
    }
    w.http("GET", "/api/config", "").await?;
    if config_now(w)? != before {
        wrong.push(format!(
            "the config changed: {} became {}",
            before, w.http.1
        ));
    }
    w.expect(
        "every body refused with the path of its bad key".into(),
        None,
        format!("{} refusals", rows.len()),
    );
    report_rows(w, &wrong, rows.len(), "were not refused as expected")
}

#[when("I post each body to the REST config, it is taken:")]
async fn post_each_taken(w: &mut Rig, step: &GherkinStep) -> Step {
    let rows = table_rows(step, "| body |")?;
    let mut wrong = Vec::new();
    for row in rows {
        let Some(body) = row.first() else {
            fail!("each row needs a body");
        };
        w.http("POST", "/api/config", body).await?;
        if w.http.0 != 200 {
            wrong.push(format!("{body} -> {} {}", w.http.0, w.http.1));
        }
    }
    w.expect(
        "every body taken".into(),
        None,
        format!("{} times 200", rows.len()),
    );
    report_rows(w, &wrong, rows.len(), "were refused")
}
