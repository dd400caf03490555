//! Steps that flash the board over its serial port (espflash through the ROM loader) and check what boots.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Result};
use cucumber::{then, when};

use super::Step;
use crate::app_image::{self, ImageSpec};
use crate::board::{BoardError, FlashHow};
use crate::world::{ctx, Rig};

/// Big enough that a flash spans many blocks (for a power cut in the middle), small enough to stay fast.
const IMAGE_SIZE: usize = 256 * 1024;

impl Rig {
    /// Writes an app image for this scenario and returns its path.
    fn image_file(&self, spec: &ImageSpec, corrupt: bool) -> Result<PathBuf> {
        let mut image = app_image::build(spec)?;
        if corrupt {
            // One flipped bit in the first segment: the checksum (and the SHA-256) no longer match.
            let at = image.len() / 2;
            image[at] ^= 0x10;
        }
        let dir = std::env::temp_dir().join(format!("hil-{}-images", self.node));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!(
            "{}-{}{}.bin",
            spec.version,
            app_image::chip_name(spec.chip_id),
            if corrupt { "-corrupt" } else { "" }
        ));
        std::fs::write(&path, image)?;
        Ok(path)
    }

    async fn flash_image(
        &mut self,
        spec: &ImageSpec,
        corrupt: bool,
        how: FlashHow,
    ) -> Result<(), BoardError> {
        let path = self
            .image_file(spec, corrupt)
            .map_err(|e| BoardError::Start(format!("cannot write the image: {e:#}")))?;
        self.flash_file(&path, &how).await
    }

    /// Flashes on a blocking thread (the board goes there and back): the other scenarios' steps go on meanwhile.
    async fn flash_file(
        &mut self,
        path: &std::path::Path,
        how: &FlashHow,
    ) -> Result<(), BoardError> {
        self.action(format!("flash {}", path.display()));
        if let Some(obs) = &self.observer {
            // What the board says from now on is about the new image.
            obs.clear();
        }
        if self.board.is_none() {
            return Err(BoardError::PoweredOff);
        }
        let (path, how) = (path.to_path_buf(), how.clone());
        self.off_task(move |b| b.flash_with(&path, &how).map(|_| ()))
            .await
            .unwrap_or_else(|| {
                Err(BoardError::Start(
                    "the rig lost the board while flashing".into(),
                ))
            })
    }
}

/// A flash that had to work: a failure to reach or drive the chip is the infrastructure's.
fn flashed_ok(w: &mut Rig, result: Result<(), BoardError>) -> Step {
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.is_infrastructure() => Err(w.infrastructure("flashing failed", e).into()),
        Err(e) => Err(e.into()),
    }
}

fn spec(version: &str) -> ImageSpec {
    let mut spec = ImageSpec::new(version);
    spec.size = IMAGE_SIZE;
    spec
}

#[when(expr = "the board is flashed with {string}")]
async fn flashed_with_file(w: &mut Rig, path: String) -> Step {
    let result = w
        .flash_file(&ctx().root.join(&path), &FlashHow::default())
        .await;
    flashed_ok(w, result)
}

#[when(expr = "the board is flashed with an app image of version {string}")]
async fn flashed(w: &mut Rig, version: String) -> Step {
    let result = w
        .flash_image(&spec(&version), false, FlashHow::default())
        .await;
    flashed_ok(w, result)
}

#[when(
    expr = "the board is flashed through the ROM loader only with an app image of version {string}"
)]
async fn flashed_no_stub(w: &mut Rig, version: String) -> Step {
    let how = FlashHow {
        no_stub: true,
        ..FlashHow::default()
    };
    let result = w.flash_image(&spec(&version), false, how).await;
    flashed_ok(w, result)
}

#[when(
    expr = "the board is flashed, checks bypassed, with a corrupted app image of version {string}"
)]
async fn flashed_corrupt(w: &mut Rig, version: String) -> Step {
    let how = FlashHow {
        force: true,
        ..FlashHow::default()
    };
    let result = w.flash_image(&spec(&version), true, how).await;
    flashed_ok(w, result)
}

#[when(expr = "the board loses power while being flashed with an app image of version {string}")]
async fn power_cut_mid_flash(w: &mut Rig, version: String) -> Step {
    let how = FlashHow {
        cut_power_after_blocks: Some(3),
        ..FlashHow::default()
    };
    match w.flash_image(&spec(&version), false, how).await {
        Err(BoardError::PoweredOff) => Ok(()),
        Ok(()) => fail!("the flash finished before the power cut: the image is too small to cut"),
        Err(e) if e.is_infrastructure() => Err(w
            .infrastructure("the flash failed before the power cut", e)
            .into()),
        Err(e) => fail!("the flash failed before the power cut: {e}"),
    }
}

#[when(expr = "I flash the board with an {word} app image of version {string}")]
async fn flash_other_chip(w: &mut Rig, chip: String, version: String) -> Step {
    let mut spec = spec(&version);
    spec.chip_id = app_image::chip_id(&chip).ok_or_else(|| anyhow!("unknown chip {chip}"))?;
    w.flash_error = match w.flash_image(&spec, false, FlashHow::default()).await {
        Ok(()) => None,
        Err(e) => Some(e.to_string()),
    };
    Ok(())
}

#[then(expr = "flashing is refused with {string}")]
async fn flash_refused(w: &mut Rig, text: String) -> Step {
    match &w.flash_error {
        Some(e) if e.contains(&text) => Ok(()),
        Some(e) => fail!("flashing was refused, but with {e:?}"),
        None => fail!("flashing was not refused"),
    }
}

#[then(expr = "the board stays offline for {int} ms")]
async fn stays_offline(w: &mut Rig, ms: u64) -> Step {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    let topic = w.t("device/status/connection");
    let obs = w.obs()?;
    if obs.history_of(&topic).iter().any(|s| s.payload == "online") {
        fail!("the board came online");
    }
    Ok(())
}

#[then("the board does not answer on the console")]
async fn console_silent(w: &mut Rig) -> Step {
    let quick = Duration::from_millis(500).min(ctx().timeout);
    let answer = w
        .on_board("the rig cannot reach the board's console", move |b| match b
            .console("status", quick)
        {
            Err(BoardError::ConsoleTimeout { .. }) => Ok(None),
            Ok(reply) => Ok(Some(reply)),
            Err(e) => Err(e),
        })
        .await?;
    if let Some(reply) = answer {
        fail!("the console answered {reply:?}: an app is running");
    }
    Ok(())
}
