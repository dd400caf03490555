//! A cucumber writer that turns the run's events into [`crate::results`]: per scenario its attempts (cucumber
//! retries a failed scenario with a fresh World, so a fresh board), per attempt its steps with their times, and for
//! a failed attempt the Rig's evidence, written to the evidence folder as the attempt ends. Events of concurrent
//! scenarios interleave; they are told apart by scenario and attempt, so order does not matter.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cucumber::event::{self, Cucumber, RetryableScenario, Scenario, StepError};
use cucumber::{gherkin, parser, Event};

use crate::evidence::{slug, Evidence};
use crate::results::{Attempt, ScenarioRecord, StepRecord, StepStatus, Verdict};
use crate::world::Rig;

/// What the collector gathered, shared with the runner.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub(crate) scenarios: Vec<ScenarioRecord>,
    pub(crate) problems: Vec<String>,
    index: HashMap<Key, usize>,
    running: HashMap<(Key, usize), Running>,
}

/// A scenario: its feature file (or name), line and name (outline rows have their own line).
type Key = (String, usize, String);

#[derive(Debug)]
struct Running {
    started_at: SystemTime,
    steps: Vec<StepRecord>,
    message: Option<String>,
    evidence: Option<Arc<Evidence>>,
}

/// The writer; `Clone` shares the store.
#[derive(Debug, Clone)]
pub(crate) struct Collector {
    pub(crate) store: Arc<Mutex<Collected>>,
    /// Where evidence folders go (none: not written).
    pub(crate) evidence_root: Option<PathBuf>,
    /// The repository, so feature paths read `features/x.feature`.
    pub(crate) root: PathBuf,
}

fn since(from: SystemTime, to: SystemTime) -> Duration {
    to.duration_since(from).unwrap_or_default()
}

fn error_text(e: &StepError) -> String {
    match e {
        StepError::NotFound => "no step definition matches this text (an undefined step)".into(),
        StepError::AmbiguousMatch(m) => m.to_string(),
        StepError::Panic(info) => info
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_else(|| "the step panicked".into()),
    }
}

fn hook_text(info: &event::Info) -> String {
    info.downcast_ref::<String>()
        .cloned()
        .or_else(|| info.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "a hook failed".into())
}

impl Collector {
    /// Whether a scenario has failed or errored so far.
    pub(crate) fn any_failed(&self) -> bool {
        self.store.lock().is_ok_and(|s| {
            s.scenarios.iter().any(|r| {
                matches!(
                    r.status(),
                    crate::results::Status::Failed | crate::results::Status::Error
                )
            })
        })
    }

    fn relative(&self, path: &Path) -> PathBuf {
        let root = self
            .root
            .canonicalize()
            .unwrap_or_else(|_| self.root.clone());
        let full = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        full.strip_prefix(&root)
            .map(Path::to_path_buf)
            .unwrap_or(full)
    }

    fn scenario(
        &self,
        feature: &gherkin::Feature,
        scenario: &gherkin::Scenario,
        ev: RetryableScenario<Rig>,
        at: SystemTime,
    ) {
        let Ok(mut store) = self.store.lock() else {
            return;
        };
        let file = feature.path.as_deref().map(|p| self.relative(p));
        let key: Key = (
            file.as_ref()
                .map_or(feature.name.clone(), |f| f.display().to_string()),
            scenario.position.line,
            scenario.name.clone(),
        );
        let attempt = ev.retries.map_or(1, |r| r.current + 1);
        let slot = (key.clone(), attempt);
        match ev.event {
            Scenario::Started => {
                if !store.index.contains_key(&key) {
                    let tags = feature
                        .tags
                        .iter()
                        .chain(scenario.tags.iter())
                        .cloned()
                        .collect();
                    store.scenarios.push(ScenarioRecord {
                        feature: feature.name.clone(),
                        file,
                        name: scenario.name.clone(),
                        line: scenario.position.line,
                        tags,
                        attempts: Vec::new(),
                    });
                    let i = store.scenarios.len() - 1;
                    store.index.insert(key, i);
                }
                store.running.insert(
                    slot,
                    Running {
                        started_at: at,
                        steps: Vec::new(),
                        message: None,
                        evidence: None,
                    },
                );
            }
            Scenario::Step(step, ev) => step_event(&mut store, &slot, &step, ev, false, at),
            Scenario::Background(step, ev) => step_event(&mut store, &slot, &step, ev, true, at),
            Scenario::Hook(_, event::Hook::Failed(world, info)) => {
                if let Some(r) = store.running.get_mut(&slot) {
                    r.message.get_or_insert_with(|| hook_text(&info));
                    if r.evidence.is_none() {
                        r.evidence = world.map(|w| Arc::new(w.evidence()));
                    }
                }
            }
            Scenario::Hook(..) | Scenario::Log(_) => {}
            Scenario::Finished => {
                let Some(run) = store.running.remove(&slot) else {
                    return;
                };
                let Some(&i) = store.index.get(&slot.0) else {
                    return;
                };
                let record = self.finish(&store.scenarios[i], scenario, feature, attempt, run, at);
                store.scenarios[i].attempts.push(record);
            }
        }
    }

    /// The attempt's record; a failed one gets its evidence folder.
    fn finish(
        &self,
        scenario: &ScenarioRecord,
        gherkin_scenario: &gherkin::Scenario,
        feature: &gherkin::Feature,
        number: usize,
        mut run: Running,
        at: SystemTime,
    ) -> Attempt {
        let failed = run.message.is_some()
            || run
                .steps
                .iter()
                .any(|s| matches!(s.status, StepStatus::Failed | StepStatus::Running));
        // The steps after the failing one never ran: list them so the report shows the whole scenario.
        let background = feature.background.as_ref().map_or(0, |b| b.steps.len());
        let ran = run.steps.iter().filter(|s| !s.background).count();
        if run.steps.len() >= background {
            for step in gherkin_scenario.steps.iter().skip(ran) {
                run.steps.push(StepRecord {
                    keyword: step.keyword.clone(),
                    text: step.value.clone(),
                    line: step.position.line,
                    background: false,
                    started: Duration::ZERO,
                    duration: Duration::ZERO,
                    status: StepStatus::NotRun,
                    error: None,
                });
            }
        }
        let message = run.message.clone().or_else(|| {
            run.steps
                .iter()
                .find(|s| s.status == StepStatus::Failed)
                .and_then(|s| s.error.clone())
        });
        let skipped = !failed && run.steps.iter().any(|s| s.status == StepStatus::Skipped);
        let verdict = if failed {
            match run
                .evidence
                .as_ref()
                .and_then(|e| e.infrastructure.as_ref())
            {
                Some(_) => Verdict::Error,
                None => Verdict::Failed,
            }
        } else if skipped {
            Verdict::Skipped
        } else {
            Verdict::Passed
        };
        let mut attempt = Attempt {
            number,
            started_at: run.started_at,
            duration: since(run.started_at, at),
            verdict,
            message: if failed { message } else { None },
            steps: run.steps,
            evidence: if failed { run.evidence } else { None },
            evidence_dir: None,
        };
        if let (true, Some(root), Some(ev)) =
            (failed, &self.evidence_root, attempt.evidence.clone())
        {
            let stem = scenario
                .file
                .as_ref()
                .and_then(|f| f.file_stem())
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| slug(&scenario.feature));
            let dir = root
                .join(format!(
                    "{stem}-L{}-{}",
                    scenario.line,
                    slug(&scenario.name)
                ))
                .join(format!("attempt-{number}"));
            match ev.write(&dir, scenario, &attempt) {
                Ok(_) => attempt.evidence_dir = Some(dir),
                Err(e) => eprintln!("hil: cannot write evidence to {}: {e}", dir.display()),
            }
        }
        // The state files are on disk now; the report does not need them in memory.
        if let Some(ev) = attempt.evidence.take() {
            let mut ev = Arc::unwrap_or_clone(ev);
            ev.state_files = Vec::new();
            attempt.evidence = Some(Arc::new(ev));
        }
        attempt
    }
}

fn step_event(
    store: &mut Collected,
    slot: &(Key, usize),
    step: &gherkin::Step,
    ev: event::Step<Rig>,
    background: bool,
    at: SystemTime,
) {
    let Some(run) = store.running.get_mut(slot) else {
        return;
    };
    let started = since(run.started_at, at);
    if let event::Step::Started = ev {
        run.steps.push(StepRecord {
            keyword: step.keyword.clone(),
            text: step.value.clone(),
            line: step.position.line,
            background,
            started,
            duration: Duration::ZERO,
            status: StepStatus::Running,
            error: None,
        });
        return;
    }
    let Some(record) = run
        .steps
        .iter_mut()
        .rev()
        .find(|s| s.line == step.position.line && s.status == StepStatus::Running)
    else {
        return;
    };
    record.duration = started.saturating_sub(record.started);
    match ev {
        event::Step::Started => {}
        event::Step::Passed(..) => record.status = StepStatus::Passed,
        event::Step::Skipped => record.status = StepStatus::Skipped,
        event::Step::Failed(_, _, world, err) => {
            record.status = StepStatus::Failed;
            record.error = Some(error_text(&err));
            if run.evidence.is_none() {
                run.evidence = world.map(|w| Arc::new(w.evidence()));
            }
        }
    }
}

impl cucumber::Writer<Rig> for Collector {
    type Cli = cucumber::cli::Empty;

    async fn handle_event(&mut self, ev: parser::Result<Event<Cucumber<Rig>>>, _cli: &Self::Cli) {
        match ev {
            Err(e) => {
                if let Ok(mut store) = self.store.lock() {
                    store.problems.push(e.to_string());
                }
            }
            Ok(ev) => {
                let at = ev.at;
                match ev.value {
                    Cucumber::Feature(f, event::Feature::Scenario(s, ev))
                    | Cucumber::Feature(f, event::Feature::Rule(_, event::Rule::Scenario(s, ev))) =>
                    {
                        self.scenario(&f, &s, ev, at);
                    }
                    _ => {}
                }
            }
        }
    }
}

// The collector keys every event by scenario and attempt, so it takes them in any order.
impl cucumber::writer::Normalized for Collector {}
