//! What a run found, as the rig reports it: each scenario with its attempts, each attempt with its steps and
//! timings, and a verdict that tells a firmware failure from an infrastructure error and a flaky pass from a pass.
//! The terminal summary, the JUnit file ([`crate::junit`]) and the HTML report ([`crate::report`]) are views of it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::evidence::Evidence;

/// How a command ended; the process exit code says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything held (exit code 0). A flaky scenario that passed on a retry counts here, and is reported.
    Passed,
    /// A check failed: the firmware broke an assertion (exit code 1), whatever else happened.
    Failed,
    /// Only the rig could not do its job: a board that did not come up or answer, a failed flash, an unreachable
    /// broker (exit code 2): a run to repeat on working hardware, not a firmware bug.
    Error,
}

impl Outcome {
    /// The exit code CI sees.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Passed => 0,
            Outcome::Failed => 1,
            Outcome::Error => 2,
        }
    }

    /// Passed when `ok`, else Failed.
    pub fn from_ok(ok: bool) -> Outcome {
        if ok {
            Outcome::Passed
        } else {
            Outcome::Failed
        }
    }
}

impl From<Outcome> for std::process::ExitCode {
    fn from(o: Outcome) -> std::process::ExitCode {
        std::process::ExitCode::from(o.code())
    }
}

/// How one attempt of a scenario ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    /// An assertion on the firmware's behaviour failed.
    Failed,
    /// The infrastructure failed (board, console, flash, broker).
    Error,
    Skipped,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    Passed,
    Failed,
    Skipped,
    /// Started, no result (the scenario ended on an earlier problem, or a hook failed).
    Running,
    /// After the failing step: never started.
    NotRun,
}

/// One step of one attempt.
#[derive(Debug, Clone)]
pub struct StepRecord {
    /// `Given`, `When`, `Then`, `And`, `But`.
    pub keyword: String,
    pub text: String,
    /// Line in the feature file.
    pub line: usize,
    /// A background step.
    pub background: bool,
    /// Since the attempt started.
    pub started: Duration,
    pub duration: Duration,
    pub status: StepStatus,
    pub error: Option<String>,
}

impl StepRecord {
    /// `Then topic "x" is "1"`.
    pub fn title(&self) -> String {
        format!("{} {}", self.keyword.trim(), self.text)
    }
}

/// One run of a scenario on a fresh board.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// 1 for the first run, 2 for the first retry, ...
    pub number: usize,
    pub started_at: SystemTime,
    pub duration: Duration,
    pub verdict: Verdict,
    /// Why it failed.
    pub message: Option<String>,
    pub steps: Vec<StepRecord>,
    /// What the rig recorded, for a failed attempt.
    pub evidence: Option<Arc<Evidence>>,
    /// Where that evidence was written.
    pub evidence_dir: Option<PathBuf>,
}

impl Attempt {
    /// The step that failed, if one did.
    pub fn failed_step(&self) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.status == StepStatus::Failed)
    }
}

/// A scenario's verdict over all its attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Passed,
    /// Failed, then passed on a retry: reported, never counted as a plain pass.
    Flaky,
    Failed,
    Error,
    Skipped,
}

impl Status {
    /// Lower-case name for summaries and CSS classes.
    pub fn name(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Flaky => "flaky",
            Status::Failed => "failed",
            Status::Error => "error",
            Status::Skipped => "skipped",
        }
    }
}

/// One scenario of the run.
#[derive(Debug, Clone)]
pub struct ScenarioRecord {
    /// The feature's name (`Feature: ...`).
    pub feature: String,
    /// The feature file, relative to the repository when it is inside it.
    pub file: Option<PathBuf>,
    pub name: String,
    pub line: usize,
    pub tags: Vec<String>,
    pub attempts: Vec<Attempt>,
}

impl ScenarioRecord {
    /// The verdict: the last attempt decides; a pass after a failure is flaky.
    pub fn status(&self) -> Status {
        let Some(last) = self.attempts.last() else {
            return Status::Skipped;
        };
        match last.verdict {
            Verdict::Passed if self.attempts.len() > 1 => Status::Flaky,
            Verdict::Passed => Status::Passed,
            Verdict::Failed => Status::Failed,
            Verdict::Error => Status::Error,
            Verdict::Skipped => Status::Skipped,
        }
    }

    /// `features/x.feature:12`.
    pub fn location(&self) -> String {
        match &self.file {
            Some(f) => format!("{}:{}", f.display(), self.line),
            None => format!("{}:{}", self.feature, self.line),
        }
    }

    /// The attempts that did not pass.
    pub fn failed_attempts(&self) -> impl Iterator<Item = &Attempt> {
        self.attempts
            .iter()
            .filter(|a| matches!(a.verdict, Verdict::Failed | Verdict::Error))
    }

    /// All attempts' time.
    pub fn duration(&self) -> Duration {
        self.attempts.iter().map(|a| a.duration).sum()
    }
}

/// Counts by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub flaky: usize,
    pub failed: usize,
    pub errors: usize,
    pub skipped: usize,
}

impl Counts {
    pub fn total(&self) -> usize {
        self.passed + self.flaky + self.failed + self.errors + self.skipped
    }
}

/// A whole run.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub scenarios: Vec<ScenarioRecord>,
    /// Feature files that could not be parsed (failures: the suite itself is broken).
    pub problems: Vec<String>,
    /// The run never got to its scenarios (broker unreachable, no board program): an infrastructure error.
    pub setup_error: Option<String>,
    pub started_at: SystemTime,
    pub wall: Duration,
    /// Board, firmware version, broker, seed, ...: what a reader needs to reproduce the run.
    pub properties: Vec<(String, String)>,
    /// Where evidence folders go.
    pub evidence_root: Option<PathBuf>,
}

impl RunRecord {
    /// An empty run that started now.
    pub fn new() -> RunRecord {
        RunRecord {
            scenarios: Vec::new(),
            problems: Vec::new(),
            setup_error: None,
            started_at: SystemTime::now(),
            wall: Duration::ZERO,
            properties: Vec::new(),
            evidence_root: None,
        }
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for s in &self.scenarios {
            match s.status() {
                Status::Passed => c.passed += 1,
                Status::Flaky => c.flaky += 1,
                Status::Failed => c.failed += 1,
                Status::Error => c.errors += 1,
                Status::Skipped => c.skipped += 1,
            }
        }
        c
    }

    /// Failures win over errors: with a firmware failure, repeating the run on other hardware does not help.
    pub fn outcome(&self) -> Outcome {
        let c = self.counts();
        if c.failed > 0 || !self.problems.is_empty() {
            Outcome::Failed
        } else if c.errors > 0 || self.setup_error.is_some() {
            Outcome::Error
        } else {
            Outcome::Passed
        }
    }

    /// A property's value.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The lines the terminal shows after the run: counts, then each flaky, failed and errored scenario with
    /// why and where its evidence is.
    pub fn summary(&self) -> String {
        let c = self.counts();
        let mut out = format!(
            "hil: {} scenarios: {} passed, {} flaky, {} failed, {} errors (infrastructure), {} skipped in {:.1?}\n",
            c.total(),
            c.passed,
            c.flaky,
            c.failed,
            c.errors,
            c.skipped,
            self.wall
        );
        if let Some(e) = &self.setup_error {
            out += &format!("error (infrastructure): {e}\n");
        }
        for p in &self.problems {
            out += &format!("failed: {p}\n");
        }
        for s in &self.scenarios {
            let status = s.status();
            if matches!(status, Status::Passed | Status::Skipped) {
                continue;
            }
            let label = match status {
                Status::Flaky => "flaky",
                Status::Error => "error (infrastructure)",
                _ => "failed",
            };
            let bad = s.failed_attempts().count();
            out += &format!(
                "{label}: {} {} ({} of {} attempts failed)\n",
                s.location(),
                s.name,
                bad,
                s.attempts.len()
            );
            for a in s.failed_attempts() {
                let why = a.message.as_deref().unwrap_or("(no message)");
                let first = why.lines().next().unwrap_or_default();
                out += &format!("    attempt {}: {first}\n", a.number);
                if let Some(dir) = &a.evidence_dir {
                    out += &format!("    evidence: {}\n", dir.display());
                }
            }
        }
        out
    }
}

impl Default for RunRecord {
    fn default() -> Self {
        RunRecord::new()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn attempt(number: usize, verdict: Verdict, message: Option<&str>) -> Attempt {
        Attempt {
            number,
            started_at: SystemTime::UNIX_EPOCH,
            duration: Duration::from_millis(100),
            verdict,
            message: message.map(str::to_string),
            steps: vec![StepRecord {
                keyword: "Then ".into(),
                text: "topic \"x\" is \"1\"".into(),
                line: 3,
                background: false,
                started: Duration::ZERO,
                duration: Duration::from_millis(100),
                status: match verdict {
                    Verdict::Passed => StepStatus::Passed,
                    Verdict::Skipped => StepStatus::Skipped,
                    _ => StepStatus::Failed,
                },
                error: message.map(str::to_string),
            }],
            evidence: None,
            evidence_dir: None,
        }
    }

    pub(crate) fn scenario(name: &str, attempts: Vec<Attempt>) -> ScenarioRecord {
        ScenarioRecord {
            feature: "F".into(),
            file: Some("features/f.feature".into()),
            name: name.into(),
            line: 2,
            tags: vec![],
            attempts,
        }
    }

    #[test]
    fn verdicts_tell_flaky_from_passed_and_failures_win_over_errors() {
        let pass = scenario("p", vec![attempt(1, Verdict::Passed, None)]);
        let flaky = scenario(
            "f",
            vec![
                attempt(1, Verdict::Failed, Some("boom")),
                attempt(2, Verdict::Passed, None),
            ],
        );
        let error = scenario("e", vec![attempt(1, Verdict::Error, Some("no board"))]);
        let failed = scenario("x", vec![attempt(1, Verdict::Failed, Some("wrong"))]);
        assert_eq!(pass.status(), Status::Passed);
        assert_eq!(flaky.status(), Status::Flaky);
        let mut run = RunRecord::new();
        run.scenarios = vec![pass, flaky];
        assert_eq!(run.outcome(), Outcome::Passed);
        assert!(run
            .summary()
            .contains("flaky: features/f.feature:2 f (1 of 2 attempts failed)"));
        run.scenarios.push(error);
        assert_eq!((run.outcome(), run.outcome().code()), (Outcome::Error, 2));
        run.scenarios.push(failed);
        assert_eq!((run.outcome(), run.outcome().code()), (Outcome::Failed, 1));
        let c = run.counts();
        assert_eq!((c.passed, c.flaky, c.failed, c.errors), (1, 1, 1, 1));
    }
}
