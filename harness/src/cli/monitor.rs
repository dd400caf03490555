//! `hil monitor`: the board's console with timestamps; typed lines go to the board.

use anyhow::Result;

use super::{Outcome, PortArgs};

/// Options of `hil monitor`.
#[derive(Debug, clap::Args)]
pub struct MonitorArgs {
    #[command(flatten)]
    pub port: PortArgs,
    /// The console's baud rate.
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
}

/// Shows the console until the port goes away or Ctrl-C.
pub async fn run(args: MonitorArgs) -> Result<Outcome> {
    let (port, _) = args.port.resolve()?;
    crate::monitor::run(&port, args.baud, &mut std::io::stdout())?;
    Ok(Outcome::Passed)
}
