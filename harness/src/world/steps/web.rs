//! Steps that drive the web interface in a real browser (`@browser`).

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cucumber::{then, when};

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
async fn open_web(w: &mut Rig) -> Result<()> {
    let base = w
        .board()?
        .http_base()
        .ok_or_else(|| anyhow!("board has no HTTP endpoint"))?;
    let browser = tokio::task::block_in_place(crate::browser::Browser::start)?;
    tokio::task::block_in_place(|| browser.open(&format!("{base}/")))?;
    w.browser = Some(browser);
    Ok(())
}

#[when(expr = "I enter {string} into {string} in the web interface")]
async fn web_enter(w: &mut Rig, text: String, path: String) -> Result<()> {
    let b = w.browser()?;
    tokio::task::block_in_place(|| b.type_into(&field_css(&path), &text))
}

#[when(expr = "I move the main topic to {string} below it in the web interface")]
async fn web_move_main(w: &mut Rig, suffix: String) -> Result<()> {
    let new = format!("{}/{suffix}", w.main_topic);
    let b = w.browser()?;
    tokio::task::block_in_place(|| b.type_into(&field_css("mqtt.maintopic"), &new))
}

#[when(expr = "I choose {string} for {string} in the web interface")]
async fn web_choose(w: &mut Rig, value: String, path: String) -> Result<()> {
    let b = w.browser()?;
    tokio::task::block_in_place(|| {
        b.click(&format!("{} option[value=\"{value}\"]", field_css(&path)))
    })
}

#[when("I save in the web interface")]
async fn web_save(w: &mut Rig) -> Result<()> {
    let b = w.browser()?;
    tokio::task::block_in_place(|| {
        b.click("#save")?;
        b.wait_text("#status", Duration::from_secs(10), |t| !t.is_empty())
            .map(|_| ())
    })
}

#[then(expr = "the web interface says {string}")]
async fn web_says(w: &mut Rig, text: String) -> Result<()> {
    let b = w.browser()?;
    tokio::task::block_in_place(|| {
        b.wait_text("#status", Duration::from_secs(10), |t| t.contains(&text))
    })
    .map(|_| ())
    .with_context(|| format!("the page never said {text:?}"))
}

#[then(expr = "the web interface shows {string} next to {string}")]
async fn web_error_next_to(w: &mut Rig, text: String, path: String) -> Result<()> {
    let b = w.browser()?;
    let css = format!("[data-error-for=\"{path}\"]");
    tokio::task::block_in_place(|| {
        b.wait_text(&css, Duration::from_secs(10), |t| t.contains(&text))
    })
    .map(|_| ())
    .with_context(|| format!("no message {text:?} next to {path}"))
}

#[then(expr = "the web interface field {string} shows the main topic")]
async fn web_field_main(w: &mut Rig, path: String) -> Result<()> {
    let b = w.browser()?;
    let v = tokio::task::block_in_place(|| b.value(&field_css(&path)))?;
    if v != w.main_topic {
        bail!("field {path} shows {v:?}, expected {:?}", w.main_topic);
    }
    Ok(())
}
