//! `hil migration`: the v16 -> v17 migration notes, written from the map or verified on a live device.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::{listen, repo_root, BrokerArgs, Outcome};
use crate::migration;

/// `hil migration` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum MigrationCommand {
    /// Check a live device: every replacement published, no v16 topic.
    Verify(VerifyArgs),
    /// Write the markdown notes generated from the map.
    Notes(NotesArgs),
}

/// Options of `hil migration verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// The device's main topic.
    #[arg(long)]
    pub root: String,
    /// The migration map (default: fixtures/migration/v16-v17.toml).
    #[arg(long)]
    pub notes: Option<PathBuf>,
    /// Seconds to listen.
    #[arg(long = "for", default_value_t = 3.0)]
    pub for_secs: f64,
    /// Publish cycle_start after subscribing, so the per-cycle topics show up.
    #[arg(long)]
    pub trigger_cycle: bool,
}

/// Options of `hil migration notes`.
#[derive(Debug, clap::Args)]
pub struct NotesArgs {
    /// The migration map (default: fixtures/migration/v16-v17.toml).
    #[arg(long)]
    pub notes: Option<PathBuf>,
    #[arg(long, default_value = "docs/mqtt-api/migration-notes.md")]
    pub output: PathBuf,
}

fn rows(notes: Option<PathBuf>) -> Result<Vec<migration::Row>> {
    let path = notes.unwrap_or_else(|| repo_root().join("fixtures/migration/v16-v17.toml"));
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    migration::parse(&text)
}

/// Runs a migration subcommand.
pub async fn run(command: MigrationCommand) -> Result<Outcome> {
    match command {
        MigrationCommand::Notes(args) => {
            let rows = rows(args.notes)?;
            std::fs::write(&args.output, migration::markdown(&rows))
                .with_context(|| args.output.display().to_string())?;
            println!("wrote {} ({} rows)", args.output.display(), rows.len());
            Ok(Outcome::Passed)
        }
        MigrationCommand::Verify(args) => {
            let target = args.broker.required("migration verify")?;
            let rows = rows(args.notes)?;
            let root = &args.root;
            let trigger = args
                .trigger_cycle
                .then(|| (format!("{root}/process/ctrl/cycle_start"), &b"1"[..]));
            let filters = vec![format!("{root}/#"), "homeassistant/#".into()];
            let obs = listen(&target, filters, args.for_secs, trigger).await?;
            let tree = obs.tree();
            let device = migration::Device::from_tree(root, &tree);
            let (table, ok) = migration::table(&migration::verify(&rows, &tree, &device));
            print!("{table}");
            println!(
                "{}",
                if ok {
                    "migration notes hold"
                } else {
                    "migration notes do NOT hold"
                }
            );
            Ok(Outcome::from_ok(ok))
        }
    }
}
