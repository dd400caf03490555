//! The step library, one file per domain. Steps read like the Gherkin; cucumber finds them by their attributes.
//! A step returns [`Step`]: its error shows every cause (cucumber prints a step's error with `{}`, which for an
//! `anyhow::Error` is only the outermost context), and that message is what the terminal, JUnit and the report show.

/// A step's result.
pub(crate) type Step = std::result::Result<(), Failure>;

/// A failed step: the error with its whole chain of causes.
pub(crate) struct Failure(anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure(e.into())
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

/// `bail!` for steps: fails the step with a formatted message.
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err(anyhow::anyhow!($($arg)*).into())
    };
}

/// Records what the snapshot holds against what the board did, then asserts (insta fails the step).
pub(crate) fn match_snapshot(w: &mut crate::world::Rig, what: String, name: &str, text: &str) {
    let stored = crate::snapshot::stored(name).unwrap_or_else(|| "(no snapshot yet)".into());
    w.expect(what, None, stored);
    w.saw(text);
    crate::snapshot::assert_snapshot(name, text);
}

mod board;
mod cable;
mod clock;
mod console;
mod digitization;
mod faults;
mod flashing;
mod gpio;
mod home_assistant;
mod meter;
mod migration;
mod mqtt;
mod process;
mod rest;
mod selftest;
mod snapshots;
mod time;
mod web;
