//! `hil tree`: a device's live topic tree (like MQTT Explorer, in a terminal).

use anyhow::Result;

use super::{listen, BrokerArgs, Outcome};
use crate::snapshot;

/// Options of `hil tree`.
#[derive(Debug, clap::Args)]
pub struct TreeArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// The device's main topic.
    #[arg(long)]
    pub root: String,
    /// Seconds to listen before printing.
    #[arg(long = "for", default_value_t = 3.0)]
    pub for_secs: f64,
    /// Print JSON instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// Prints the tree under `--root` as it stands after listening.
pub async fn run(args: TreeArgs) -> Result<Outcome> {
    let target = args.broker.required("tree")?;
    let obs = listen(
        &target,
        vec![format!("{}/#", args.root)],
        args.for_secs,
        None,
    )
    .await?;
    let tree = obs.tree();
    if args.json {
        let map: serde_json::Map<String, serde_json::Value> = tree
            .iter()
            .map(|(t, s)| {
                let entry =
                    serde_json::json!({"payload": s.payload, "retain": s.retain, "qos": s.qos});
                (t.clone(), entry)
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&map)?);
    } else {
        println!(
            "{}",
            snapshot::tree_text(&tree, &snapshot::Placeholders::default())
        );
    }
    Ok(Outcome::Passed)
}
