//! Runs the Gherkin suite: one World per scenario, on virtual boards (concurrent, one broker) or on one real board
//! from the inventory (one scenario at a time); `--shard i/n` splits a suite over several runners. A failed scenario
//! is retried on a fresh board (`--retries N`); what happened is collected ([`collector`]) into a
//! [`RunRecord`]: the terminal summary, the evidence folders, the JUnit file and the HTML report come from it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cucumber::{writer, World as _, WriterExt as _};

use crate::broker::BrokerTarget;
use crate::inventory::Inventory;
use crate::results::{Outcome, RunRecord};
use crate::tags::Expr;
use crate::world::{set_context, Rig, RunContext};

mod collector;
mod order;

/// Options of one suite run.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    pub broker: BrokerTarget,
    pub board_bin: PathBuf,
    pub root: PathBuf,
    pub features: Vec<PathBuf>,
    pub tags: Option<Expr>,
    /// Write JUnit XML here.
    pub junit: Option<PathBuf>,
    /// Write the HTML report here.
    pub report: Option<PathBuf>,
    /// Evidence folders of failed scenarios go here (none: not written).
    pub evidence: Option<PathBuf>,
    /// Reruns of a failed scenario, each on a fresh board.
    pub retries: usize,
    pub concurrency: usize,
    /// A real board instead of virtual ones.
    pub board: Option<Inventory>,
    pub shard: Option<Shard>,
    /// Names this run's main topics (`<base>_s<seed>x<n>`): the same seed gives the same topics.
    pub seed: u64,
    /// Stop scheduling scenarios after the first failure (running ones finish).
    pub fail_fast: bool,
    /// How long a step waits for what it expects (None: 15 s on virtual boards, 60 s on a real one).
    pub step_timeout: Option<Duration>,
}

impl SuiteOptions {
    /// The whole suite on virtual boards, no reports, no retries.
    pub fn new(broker: BrokerTarget, board_bin: PathBuf, root: PathBuf) -> SuiteOptions {
        SuiteOptions {
            broker,
            board_bin,
            root,
            features: Vec::new(),
            tags: None,
            junit: None,
            report: None,
            evidence: None,
            retries: 0,
            concurrency: 16,
            board: None,
            shard: None,
            seed: u64::from(std::process::id()),
            fail_fast: false,
            step_timeout: None,
        }
    }
}

/// Runner `index` (1-based) of `count` takes the scenarios whose stable hash falls to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}': a shard is i/n, e.g. 2/3"))?;
        let (index, count): (u64, u64) = (
            i.trim()
                .parse()
                .map_err(|_| format!("'{i}' is not a number"))?,
            n.trim()
                .parse()
                .map_err(|_| format!("'{n}' is not a number"))?,
        );
        if count == 0 || index == 0 || index > count {
            return Err(format!("'{s}': need 1 <= i <= n"));
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether this shard runs the scenario. FNV-1a of "feature/scenario": the same on every runner and toolchain.
    pub fn takes(&self, feature: &str, scenario: &str) -> bool {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in feature.bytes().chain([b'/']).chain(scenario.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h % self.count == self.index - 1
    }
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct SuiteResult {
    pub wall: Duration,
    pub record: RunRecord,
}

impl SuiteResult {
    /// What the exit code says.
    pub fn outcome(&self) -> Outcome {
        self.record.outcome()
    }
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

/// What a reader of the report needs to reproduce the run.
fn properties(opts: &SuiteOptions) -> Vec<(String, String)> {
    let board = match &opts.board {
        Some(inv) => format!(
            "{} ({})",
            inv.name,
            inv.port
                .as_ref()
                .map_or("by USB serial number".into(), |p| p.display().to_string())
        ),
        None => format!("virtual ({})", opts.board_bin.display()),
    };
    let mut p = vec![
        ("board".to_string(), board),
        ("broker".to_string(), opts.broker.describe()),
        ("seed".to_string(), opts.seed.to_string()),
        ("retries".to_string(), opts.retries.to_string()),
        ("hil".to_string(), env!("CARGO_PKG_VERSION").to_string()),
    ];
    if let Some(sh) = opts.shard {
        p.push(("shard".into(), format!("{}/{}", sh.index, sh.count)));
    }
    p
}

/// Empties an evidence folder the rig made before (it carries a marker), so it shows this run only.
fn prepare_evidence(dir: &Path) -> Result<()> {
    let marker = dir.join(".hil-evidence");
    if marker.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot empty {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        &marker,
        "evidence of failed hil scenarios; emptied at the start of each run\n",
    )
    .with_context(|| format!("cannot write {}", marker.display()))?;
    Ok(())
}

/// Whether a feature the run reads is tagged `@browser` (on the feature or a scenario) and the tag expression may
/// take it. A guess (the expression is judged on that tag alone): it only decides whether to start the browser early.
fn wants_browser(inputs: &[PathBuf], tags: Option<&Expr>) -> bool {
    fn tagged(path: &Path) -> bool {
        if path.is_dir() {
            std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| tagged(&e.path()))
        } else {
            path.extension().is_some_and(|x| x == "feature")
                && std::fs::read_to_string(path).is_ok_and(|t| t.contains("@browser"))
        }
    }
    crate::browser::installed()
        && tags.is_none_or(|e| e.eval(&["browser".to_string()]))
        && inputs.iter().any(|p| tagged(p))
}

/// What must hold before any scenario runs: the board program exists and the broker answers.
async fn setup(opts: &SuiteOptions) -> Result<()> {
    if opts.board.is_none() && !opts.board_bin.exists() {
        anyhow::bail!(
            "board program {} not found: build it with `cargo build --release -p virtual-board` (or pass --board-bin)",
            opts.board_bin.display()
        );
    }
    opts.broker.check_reachable().await
}

/// Writes the JUnit file and the HTML report the options ask for.
fn write_reports(opts: &SuiteOptions, record: &RunRecord) -> Result<()> {
    if let Some(path) = &opts.junit {
        std::fs::write(path, crate::junit::xml(record))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("junit: {}", path.display());
    }
    if let Some(path) = &opts.report {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::write(path, crate::report::html(record, dir))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("report: {}", path.display());
    }
    Ok(())
}

/// Runs the features; prints progress and a summary on stdout, writes evidence, JUnit and the report when asked.
/// A run that cannot start (no board program, no broker) is a result too: an infrastructure error.
pub async fn run(opts: SuiteOptions) -> Result<SuiteResult> {
    let started = Instant::now();
    let mut record = RunRecord::new();
    record.properties = properties(&opts);
    if let Err(e) = setup(&opts).await {
        record.setup_error = Some(format!("{e:#}"));
        record.wall = started.elapsed();
        write_reports(&opts, &record)?;
        return Ok(SuiteResult {
            wall: record.wall,
            record,
        });
    }
    if let Some(dir) = &opts.evidence {
        prepare_evidence(dir)?;
        record.evidence_root = Some(dir.clone());
    }
    set_context(RunContext {
        broker: opts.broker.clone(),
        board_bin: opts.board_bin.clone(),
        root: opts.root.clone(),
        timeout: opts
            .step_timeout
            .unwrap_or(Duration::from_secs(if opts.board.is_some() {
                60
            } else {
                15
            })),
        serial: opts.board.clone(),
        seed: opts.seed,
    });
    let tags = opts.tags.clone();
    let shard = opts.shard;
    let filter = move |f: &cucumber::gherkin::Feature,
                       _: Option<&cucumber::gherkin::Rule>,
                       s: &cucumber::gherkin::Scenario| {
        tags.as_ref().is_none_or(|e| e.eval(&tags_of(f, s)))
            && shard.is_none_or(|sh| sh.takes(&f.name, &s.name))
    };
    // One real board runs one scenario at a time.
    let concurrency = if opts.board.is_some() {
        1
    } else {
        opts.concurrency
    };
    let inputs = if opts.features.is_empty() {
        vec![opts.root.join("features")]
    } else {
        opts.features.clone()
    };
    let collector = collector::Collector {
        store: Arc::new(Mutex::new(collector::Collected::default())),
        evidence_root: opts.evidence.clone(),
        root: opts.root.clone(),
    };
    if wants_browser(&inputs, opts.tags.as_ref()) {
        // Chromium starts while the first scenarios run instead of when the first page opens.
        crate::browser::prewarm();
    }
    for input in inputs {
        let terminal = writer::Basic::raw(std::io::stdout(), writer::Coloring::Never, 0)
            .summarized()
            .normalized();
        let cucumber = Rig::cucumber::<PathBuf>()
            .with_parser(order::SlowFirst)
            .max_concurrent_scenarios(concurrency)
            .retries((opts.retries > 0).then_some(opts.retries))
            // The firmware's peak heap, read from the board as each scenario ends; over the chip's heap fails it.
            .after(|feature, _, scenario, _, world| {
                Box::pin(async move {
                    if let Some(w) = world {
                        if let Err(e) =
                            crate::world::heap::record(w, &feature.name, &scenario.name).await
                        {
                            panic!("{e}");
                        }
                    }
                })
            })
            .with_writer(terminal.tee::<Rig, _>(collector.clone()))
            // After with_writer (it resets them): no CLI parsing, hil owns the command line.
            .with_cli(cucumber::cli::Opts::<_, _, _, cucumber::cli::Empty>::default())
            // An undefined step is a failure, not a skip.
            .fail_on_skipped();
        let cucumber = if opts.fail_fast {
            cucumber.fail_fast()
        } else {
            cucumber
        };
        cucumber.filter_run(input, filter.clone()).await;
        if opts.fail_fast && collector.any_failed() {
            break;
        }
    }
    // The run's browser, if a scenario started it.
    crate::browser::shutdown().await;
    {
        let mut store = collector
            .store
            .lock()
            .map_err(|_| anyhow::anyhow!("the result collector panicked"))?;
        record.scenarios = std::mem::take(&mut store.scenarios);
        record.problems = std::mem::take(&mut store.problems);
    }
    if let Some(fw) = crate::world::firmware_seen() {
        record.properties.insert(1, ("firmware".into(), fw));
    }
    record.wall = started.elapsed();
    print!("{}", record.summary());
    print!(
        "{}",
        crate::world::heap::summary(&crate::world::heap::peaks())
    );
    write_reports(&opts, &record)?;
    Ok(SuiteResult {
        wall: record.wall,
        record,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_scenarios() {
        let shards: Vec<Shard> = (1..=3).map(|i| format!("{i}/3").parse().unwrap()).collect();
        let names: Vec<String> = (0..300).map(|i| format!("scenario {i}")).collect();
        let mut per_shard = [0usize; 3];
        for n in &names {
            let owners: Vec<usize> = (0..3).filter(|&k| shards[k].takes("F", n)).collect();
            assert_eq!(owners.len(), 1, "{n} belongs to exactly one shard");
            per_shard[owners[0]] += 1;
        }
        assert!(
            per_shard.iter().all(|&c| c > 60),
            "roughly even: {per_shard:?}"
        );
        assert!("0/3".parse::<Shard>().is_err());
        assert!("4/3".parse::<Shard>().is_err());
        assert!("2".parse::<Shard>().is_err());
    }
}
