//! `hil snapshots`: the snapshots a run left pending (under target/hil/snapshots, never in the checkout), their
//! differences from the stored ones, and accepting them after a deliberate behaviour change.

use anyhow::{bail, Context, Result};

use super::Outcome;
use crate::snapshot;

/// Options of `hil snapshots`.
#[derive(Debug, clap::Args)]
pub struct SnapshotsArgs {
    /// Move these pending snapshots (or all with --all) into features/snapshots/.
    #[arg(long, num_args = 1.., value_name = "NAME")]
    pub accept: Vec<String>,
    /// With --accept: every pending snapshot.
    #[arg(long)]
    pub all: bool,
}

/// Lists the pending snapshots with the command that shows each difference, or accepts them.
pub async fn run(args: SnapshotsArgs) -> Result<Outcome> {
    let pending = snapshot::pending();
    let names: Vec<String> = if args.all {
        pending.clone()
    } else {
        args.accept.clone()
    };
    if names.is_empty() {
        if pending.is_empty() {
            println!(
                "no pending snapshots in {}",
                snapshot::pending_dir().display()
            );
            return Ok(Outcome::Passed);
        }
        for name in &pending {
            println!(
                "{name}: diff {} {}",
                snapshot::snapshot_dir()
                    .join(format!("{name}.snap"))
                    .display(),
                snapshot::pending_dir()
                    .join(format!("{name}.snap.new"))
                    .display()
            );
        }
        println!("accept with: hil snapshots --accept NAME... (or --all)");
        return Ok(Outcome::Passed);
    }
    for name in &names {
        if !pending.contains(name) {
            bail!(
                "no pending snapshot '{name}' (pending: {})",
                if pending.is_empty() {
                    "none".to_string()
                } else {
                    pending.join(", ")
                }
            );
        }
    }
    for name in &names {
        let to = snapshot::accept(name).with_context(|| format!("accepting '{name}'"))?;
        println!("accepted {name} -> {}", to.display());
    }
    Ok(Outcome::Passed)
}
