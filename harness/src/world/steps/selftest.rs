//! Steps for the rig's own tests (`harness/tests/fixtures/`), never for `features/`: they make a scenario behave
//! in a way the rig must report correctly.

use cucumber::given;

use super::Step;
use crate::world::Rig;

/// Flaky on purpose: the first attempt creates the marker and fails, a retry finds it and passes.
#[given(expr = "the marker file {string} exists, or this attempt creates it and fails")]
async fn flaky_marker(_w: &mut Rig, path: String) -> Step {
    let path = std::path::PathBuf::from(path);
    if path.exists() {
        return Ok(());
    }
    std::fs::write(&path, "created by a first attempt\n")?;
    fail!(
        "{} was missing (created it; the next attempt passes)",
        path.display()
    )
}
