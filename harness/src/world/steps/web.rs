//! Steps that drive the web interface in a real browser (`@browser`): async, so a page that takes its time holds up
//! its own scenario only, not the others running with it.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use cucumber::{then, when};

use super::Step;
use crate::world::Rig;

impl Rig {
    fn browser(&self) -> Result<&crate::browser::Browser> {
        self.browser
            .as_ref()
            .ok_or_else(|| anyhow!("open the web interface first: 'When I open the web interface'"))
    }
}

fn field_css(path: &str) -> String {
    format!("[name=\"{path}\"]")
}

#[when("I open the web interface")]
async fn open_web(w: &mut Rig) -> Step {
    let base = w
        .board()?
        .http_base()
        .ok_or_else(|| anyhow!("board has no HTTP endpoint"))?;
    let browser = match crate::browser::Browser::start().await {
        Ok(b) => b,
        Err(e) => return Err(w.infrastructure("the browser did not start", e).into()),
    };
    w.web_event(format!("open {base}/"));
    browser.open(&format!("{base}/")).await?;
    w.browser = Some(browser);
    Ok(())
}

#[when(expr = "I enter {string} into {string} in the web interface")]
async fn web_enter(w: &mut Rig, text: String, path: String) -> Step {
    w.web_event(format!("type {text:?} into {path}"));
    let b = w.browser()?;
    Ok(b.type_into(&field_css(&path), &text).await?)
}

#[when(expr = "I move the main topic to {string} below it in the web interface")]
async fn web_move_main(w: &mut Rig, suffix: String) -> Step {
    let new = format!("{}/{suffix}", w.main_topic);
    w.web_event(format!("type {new:?} into mqtt.maintopic"));
    let b = w.browser()?;
    Ok(b.type_into(&field_css("mqtt.maintopic"), &new).await?)
}

#[when(expr = "I choose {string} for {string} in the web interface")]
async fn web_choose(w: &mut Rig, value: String, path: String) -> Step {
    w.web_event(format!("choose {value:?} for {path}"));
    let b = w.browser()?;
    Ok(
        b.click(&format!("{} option[value=\"{value}\"]", field_css(&path)))
            .await?,
    )
}

#[when("I save in the web interface")]
async fn web_save(w: &mut Rig) -> Step {
    w.web_event("click #save".into());
    let b = w.browser()?;
    b.click("#save").await?;
    let status = b
        .wait_text("#status", Duration::from_secs(10), |t| !t.is_empty())
        .await?;
    w.web_event(format!("#status reads {status:?}"));
    Ok(())
}

#[then(expr = "the web interface says {string}")]
async fn web_says(w: &mut Rig, text: String) -> Step {
    w.expect(
        format!("the web interface says {text:?}"),
        None,
        text.clone(),
    );
    let b = w.browser()?;
    let result = b
        .wait_text("#status", Duration::from_secs(10), |t| t.contains(&text))
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) => {
            w.saw(format!("{e:#}"));
            Err(e.context(format!("the page never said {text:?}")).into())
        }
    }
}

#[then(expr = "the web interface shows {string} next to {string}")]
async fn web_error_next_to(w: &mut Rig, text: String, path: String) -> Step {
    w.expect(
        format!("the web interface shows {text:?} next to {path}"),
        None,
        text.clone(),
    );
    let b = w.browser()?;
    let css = format!("[data-error-for=\"{path}\"]");
    b.wait_text(&css, Duration::from_secs(10), |t| t.contains(&text))
        .await
        .with_context(|| format!("no message {text:?} next to {path}"))?;
    Ok(())
}

#[then(expr = "the web interface field {string} shows the main topic")]
async fn web_field_main(w: &mut Rig, path: String) -> Step {
    let topic = w.main_topic.clone();
    w.expect(
        format!("the web interface field {path} shows the main topic"),
        None,
        topic.clone(),
    );
    let b = w.browser()?;
    let v = b.value(&field_css(&path)).await?;
    if v != topic {
        w.saw(v.clone());
        fail!("field {path} shows {v:?}, expected {topic:?}");
    }
    Ok(())
}
