//! `hil broker`: the embedded broker, standalone.

use std::net::SocketAddr;

use anyhow::Result;

use super::Outcome;

/// Options of `hil broker`.
#[derive(Debug, clap::Args)]
pub struct BrokerServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub listen: SocketAddr,
}

/// Runs the embedded broker until Ctrl-C.
pub async fn run(args: BrokerServeArgs) -> Result<Outcome> {
    let target = crate::broker::start_embedded(args.listen)?;
    println!(
        "embedded broker listening on {} (Ctrl-C stops it)",
        target.uri()
    );
    tokio::signal::ctrl_c().await?;
    Ok(Outcome::Passed)
}
