//! `hil soak`: one virtual board through many cycles with MQTT, GPIO, HTTP and console traffic and broker restarts;
//! reports its memory (RSS, the firmware's heap) at start and end, publishes lost and time-per-cycle drift
//! ([`crate::soak`]).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use super::{BrokerArgs, Outcome};
use crate::soak::{self, BrokerKind, SoakOptions};

/// Options of `hil soak`.
#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// The broker (default: an embedded broker). Restarts: the board's cable drops its connection.
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Run a mosquitto of the soak's own instead, and restart it for real (killed, started again without
    /// persistence). Takes the program, default /usr/sbin/mosquitto.
    #[arg(long, value_name = "PROGRAM", num_args = 0..=1, default_missing_value = "/usr/sbin/mosquitto", conflicts_with = "broker")]
    pub mosquitto: Option<PathBuf>,
    /// The virtual-board program (default: built from the workspace, or next to hil).
    #[arg(long)]
    pub board_bin: Option<PathBuf>,
    /// Cycles to run.
    #[arg(long, default_value_t = 100_000)]
    pub cycles: u64,
    /// Stop after this many seconds even if the cycles are not done (the report extrapolates).
    #[arg(long, value_name = "SECS")]
    pub for_secs: Option<u64>,
    /// Pause between cycles, ms (0: the next cycle starts when the last one's counter arrived).
    #[arg(long, default_value_t = 0)]
    pub interval_ms: u64,
    /// Sample memory and speed every N cycles.
    #[arg(long, default_value_t = 1000)]
    pub sample_every: u64,
    /// Restart the broker every N cycles (0: never).
    #[arg(long, default_value_t = 2000)]
    pub restart_every: u64,
    /// How long the broker stays away at a restart (cable), ms.
    #[arg(long, default_value_t = 300)]
    pub outage_ms: u64,
    /// Fail when the firmware's heap grew more than this (bytes, after the first sample window).
    #[arg(long, default_value_t = 1024)]
    pub max_heap_growth: i64,
    /// Fail when the board process's RSS grew more than this (KiB, after the first sample window).
    #[arg(long, default_value_t = 2048)]
    pub max_rss_growth_kib: i64,
    /// Also write the report as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Runs the soak, prints a line per sample and the verdict.
pub async fn run(args: SoakArgs) -> Result<Outcome> {
    let broker = match (&args.mosquitto, args.broker.target()?) {
        (Some(bin), _) => BrokerKind::Mosquitto(bin.clone()),
        (None, Some(t)) => BrokerKind::Given(t),
        (None, None) => BrokerKind::Given(crate::broker::start_embedded("127.0.0.1:0".parse()?)?),
    };
    let opts = SoakOptions {
        board_bin: super::run::board_program(args.board_bin.clone())?,
        broker,
        cycles: args.cycles.max(1),
        max_duration: args.for_secs.map(Duration::from_secs),
        interval: Duration::from_millis(args.interval_ms),
        sample_every: args.sample_every.max(1),
        restart_every: args.restart_every,
        outage: Duration::from_millis(args.outage_ms),
    };
    println!(
        "{:>8} {:>8} {:>9} {:>9} {:>9} {:>10} {:>14}",
        "cycle", "elapsed", "p50 ms", "p99 ms", "RSS KiB", "heap free", "heap min free"
    );
    let report = soak::run(&opts, |s| {
        println!(
            "{:>8} {:>7.0}s {:>9.2} {:>9.2} {:>9} {:>10} {:>14}",
            s.cycle,
            s.elapsed_s,
            s.cycle_p50_ms,
            s.cycle_p99_ms,
            s.rss_kib,
            s.heap_internal_free,
            s.heap_internal_min_free
        );
    })
    .await?;
    let (first, last) = (report.samples.first(), report.samples.last());
    println!(
        "firmware {} · broker {} · {} of {} cycles in {:.0} s ({:.1} cycles/s){}",
        report.firmware,
        report.broker,
        report.cycles_run,
        report.cycles_asked,
        report.elapsed_s,
        report.cycles_per_s,
        if report.cycles_run < report.cycles_asked && report.cycles_per_s > 0.0 {
            format!(
                "; {} cycles would take {:.0} min at this rate",
                report.cycles_asked,
                report.cycles_asked as f64 / report.cycles_per_s / 60.0
            )
        } else {
            String::new()
        }
    );
    if let (Some(a), Some(b)) = (first, last) {
        println!(
            "RSS {} -> {} KiB (after warm-up {:+} KiB); heap free {} -> {} B (after warm-up {:+} B used), min free {} -> {} B",
            a.rss_kib,
            b.rss_kib,
            report.rss_growth_kib(),
            a.heap_internal_free,
            b.heap_internal_free,
            report.heap_growth(),
            a.heap_internal_min_free,
            b.heap_internal_min_free
        );
    }
    println!(
        "lost: {} cycle counters, {} process data, {} GPIO states (extra cycles from redelivered starts: {}); \
         GPIO line mismatches {}, HTTP failures {}, console failures {} (replies the UART pipe dropped, sent again: {})",
        report.counters_lost,
        report.process_data_lost,
        report.gpio_states_lost,
        report.extra_cycles,
        report.gpio_line_mismatches,
        report.http_failures,
        report.console_failures,
        report.console_resent
    );
    println!(
        "broker restarts {} (back online within {:.0} ms at most); time per cycle drift {:+.1}% (the last tenth's \
         median against the first tenth's after warm-up)",
        report.restarts,
        report.restart_recovery_max_ms,
        report.drift() * 100.0
    );
    if let Some(path) = &args.json {
        let mut v = serde_json::to_value(&report)?;
        v["rss_growth_kib"] = report.rss_growth_kib().into();
        v["heap_growth"] = report.heap_growth().into();
        v["drift"] = report.drift().into();
        std::fs::write(path, serde_json::to_string_pretty(&v)?)?;
    }
    let mut failed = Vec::new();
    if report.lost() > 0 {
        failed.push(format!("{} publishes lost", report.lost()));
    }
    if report.heap_growth() > args.max_heap_growth {
        failed.push(format!(
            "the heap grew {} B (more than {})",
            report.heap_growth(),
            args.max_heap_growth
        ));
    }
    if report.rss_growth_kib() > args.max_rss_growth_kib {
        failed.push(format!(
            "RSS grew {} KiB (more than {})",
            report.rss_growth_kib(),
            args.max_rss_growth_kib
        ));
    }
    if report.gpio_line_mismatches + report.http_failures + report.console_failures > 0 {
        failed.push("the board answered wrongly (GPIO line, HTTP or console)".into());
    }
    if failed.is_empty() {
        println!("soak passed");
        Ok(Outcome::Passed)
    } else {
        println!("soak failed: {}", failed.join("; "));
        Ok(Outcome::Failed)
    }
}
