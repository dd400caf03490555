//! `hil bench`: round trips through a virtual board (p50/p99/max) and how the rig scales with boards at once.

use std::path::PathBuf;

use anyhow::Result;

use super::{BrokerArgs, Outcome};
use crate::runner::{self, SuiteOptions};
use crate::tags::Expr;

/// Options of `hil bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The broker to measure (default: an embedded broker).
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// The virtual-board program (default: built from the workspace, or next to hil).
    #[arg(long)]
    pub board_bin: Option<PathBuf>,
    /// Round trips per measurement.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Also time the whole suite.
    #[arg(long)]
    pub suite: bool,
    /// Boards at once for the scaling figures.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub scaling: Vec<usize>,
}

/// Measures, prints the figures, and says when the broker is what makes them slow.
pub async fn run(args: BenchArgs) -> Result<Outcome> {
    let target = match args.broker.target()? {
        Some(t) => t,
        None => crate::broker::start_embedded("127.0.0.1:0".parse()?)?,
    };
    target.check_reachable().await?;
    let bin = super::run::board_program(args.board_bin.clone())?;
    let n = args.n.max(1);
    println!("broker {}", target.describe());
    let echo = crate::bench::broker_echo(&target, n).await?;
    let (cycles, gpio) = crate::bench::round_trips(&bin, &target, n).await?;
    let echo = crate::bench::summary(echo);
    let cycle = crate::bench::summary(cycles);
    let gpio = crate::bench::summary(gpio);
    for (name, (p50, p99, max)) in [
        ("broker echo (no board)", echo),
        ("cycle_start -> cycle_counter", cycle),
        ("gpio ctrl -> state", gpio),
    ] {
        println!("{name:<30} n={n} p50={p50:.2?} p99={p99:.2?} max={max:.2?}");
    }
    // One message each way, as the echo: a cycle's reply is many QoS 1 messages whose acknowledgements cross the
    // broker again, so it grows with the broker's latency faster than an echo does.
    if let Some(note) = crate::bench::diagnose(echo, gpio) {
        println!("{note}");
    }
    for boards in args.scaling.iter().copied().filter(|&b| b > 0) {
        let (online, cycle) = crate::bench::scaling(&bin, &target, boards).await?;
        println!(
            "{boards:>2} boards at once: all online in {online:.2?}, one cycle on each in {cycle:.2?}"
        );
    }
    if args.suite {
        let opts = SuiteOptions {
            tags: Some(Expr::Not(Box::new(Expr::Tag("browser".into())))),
            ..SuiteOptions::new(target, bin, super::repo_root())
        };
        let result = runner::run(opts).await?;
        println!("suite (without @browser) wall time: {:.2?}", result.wall);
    }
    Ok(Outcome::Passed)
}
