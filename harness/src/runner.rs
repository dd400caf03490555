//! Runs the Gherkin suite on virtual boards: one World per scenario, scenarios concurrent on one broker.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cucumber::{writer, World as _, WriterExt as _};

use crate::broker::BrokerTarget;
use crate::tags::Expr;
use crate::world::{set_context, Rig, RunContext};

/// Options of one suite run.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    pub broker: BrokerTarget,
    pub board_bin: PathBuf,
    pub root: PathBuf,
    pub features: Vec<PathBuf>,
    pub tags: Option<Expr>,
    pub junit: Option<PathBuf>,
    pub concurrency: usize,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct SuiteResult {
    pub failed: bool,
    pub wall: Duration,
}

fn tags_of(
    feature: &cucumber::gherkin::Feature,
    scenario: &cucumber::gherkin::Scenario,
) -> Vec<String> {
    feature
        .tags
        .iter()
        .chain(scenario.tags.iter())
        .cloned()
        .collect()
}

/// Runs the features; prints progress and a summary on stdout, writes JUnit when asked.
pub async fn run(opts: SuiteOptions) -> Result<SuiteResult> {
    if !opts.board_bin.exists() {
        anyhow::bail!(
            "board program {} not found: build it with `cargo build --release -p virtual-board` (or pass --board-bin)",
            opts.board_bin.display()
        );
    }
    opts.broker.check_reachable().await?;
    set_context(RunContext {
        broker: opts.broker.clone(),
        board_bin: opts.board_bin.clone(),
        root: opts.root.clone(),
        timeout: Duration::from_secs(15),
    });
    let started = Instant::now();
    let tags = opts.tags.clone();
    let filter = move |f: &cucumber::gherkin::Feature,
                       _: Option<&cucumber::gherkin::Rule>,
                       s: &cucumber::gherkin::Scenario| {
        tags.as_ref().is_none_or(|e| e.eval(&tags_of(f, s)))
    };
    let inputs = if opts.features.is_empty() {
        vec![opts.root.join("features")]
    } else {
        opts.features.clone()
    };
    let mut failed = false;
    for input in inputs {
        let cucumber = Rig::cucumber()
            .max_concurrent_scenarios(opts.concurrency)
            .fail_on_skipped();
        let writer_failed = match &opts.junit {
            Some(path) => {
                let file = std::fs::File::create(path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                let w = cucumber
                    .with_writer(
                        writer::Basic::raw(std::io::stdout(), writer::Coloring::Never, 0)
                            .summarized()
                            .tee::<Rig, _>(writer::JUnit::for_tee(file, 0))
                            .normalized(),
                    )
                    // After with_writer (it resets them): no CLI parsing, hil owns the command line.
                    .with_cli(cucumber::cli::Opts::<_, _, _, cucumber::cli::Empty>::default())
                    // An undefined step is a failure, not a skip.
                    .fail_on_skipped()
                    .filter_run(input, filter.clone())
                    .await;
                cucumber::writer::Stats::execution_has_failed(&w)
            }
            None => {
                let w = cucumber
                    .with_writer(
                        writer::Basic::raw(std::io::stdout(), writer::Coloring::Never, 0)
                            .summarized()
                            .normalized(),
                    )
                    .with_cli(cucumber::cli::Opts::<_, _, _, cucumber::cli::Empty>::default())
                    // An undefined step is a failure, not a skip.
                    .fail_on_skipped()
                    .filter_run(input, filter.clone())
                    .await;
                cucumber::writer::Stats::execution_has_failed(&w)
            }
        };
        failed |= writer_failed;
    }
    Ok(SuiteResult {
        failed,
        wall: started.elapsed(),
    })
}
