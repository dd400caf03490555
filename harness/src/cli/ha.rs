//! `hil ha`: Home Assistant discovery of a live device.

use std::time::Duration;

use anyhow::Result;

use super::{listen, BrokerArgs, Outcome};

/// `hil ha` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum HaCommand {
    /// Cross-check every discovery config of a live device (and press its buttons).
    Check(CheckArgs),
}

/// Options of `hil ha check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// The device's main topic.
    #[arg(long)]
    pub root: String,
    /// Home Assistant's discovery prefix.
    #[arg(long, default_value = "homeassistant")]
    pub prefix: String,
    /// Seconds to listen.
    #[arg(long = "for", default_value_t = 3.0)]
    pub for_secs: f64,
    /// Publish cycle_start after subscribing, so the per-cycle state topics show up. Best: start the check
    /// before the device connects (GPIO states come after connect and on change only).
    #[arg(long)]
    pub trigger_cycle: bool,
}

/// Runs `hil ha check`.
pub async fn run(command: HaCommand) -> Result<Outcome> {
    let HaCommand::Check(args) = command;
    let target = args.broker.required("ha check")?;
    let (root, prefix) = (&args.root, &args.prefix);
    let trigger = args
        .trigger_cycle
        .then(|| (format!("{root}/process/ctrl/cycle_start"), &b"1"[..]));
    let filters = vec![format!("{root}/#"), format!("{prefix}/#")];
    let obs = listen(&target, filters, args.for_secs, trigger).await?;
    let tree = obs.tree();
    let report = crate::ha::check(&tree, prefix);
    println!("{} discovery configs under {prefix}/", report.configs);
    for p in &report.problems {
        println!("PROBLEM {}: {}", p.config_topic, p.message);
    }
    let mut ok = report.configs > 0 && report.problems.is_empty();
    for (config, cmd, press) in &report.commands {
        let counter = format!("{root}/process/status/cycle_counter");
        let before = obs.get(&counter).map(|s| s.payload).unwrap_or_default();
        obs.publish(cmd, press.as_bytes(), false).await?;
        let effect = obs
            .wait_until(&counter, Duration::from_secs(10), "changed", |s| {
                s.payload != before
            })
            .await;
        match effect {
            Ok(_) => println!("ok      {cmd}: pressing '{press}' started a cycle"),
            Err(e) => {
                ok = false;
                println!("PROBLEM {config}: pressing {cmd} had no effect: {e}");
            }
        }
    }
    println!(
        "{}",
        if ok {
            "discovery is consistent"
        } else {
            "discovery has problems"
        }
    );
    Ok(Outcome::from_ok(ok))
}
