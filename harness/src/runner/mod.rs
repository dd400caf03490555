//! Runs the Gherkin suite: one World per scenario, on virtual boards (concurrent, one broker) or on one real board
//! from the inventory (one scenario at a time); `--shard i/n` splits a suite over several runners.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cucumber::{writer, World as _, WriterExt as _};

use crate::broker::BrokerTarget;
use crate::inventory::Inventory;
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
    /// A real board instead of virtual ones.
    pub board: Option<Inventory>,
    pub shard: Option<Shard>,
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
        timeout: Duration::from_secs(if opts.board.is_some() { 60 } else { 15 }),
        serial: opts.board.clone(),
    });
    let started = Instant::now();
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
    let mut failed = false;
    for input in inputs {
        let cucumber = Rig::cucumber()
            .max_concurrent_scenarios(concurrency)
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
