//! `virtual-board`: the meter firmware core on the host.
//!
//! Today it offers the offline `replay` (tune post-processing on recorded readings without a board or a broker).
//! The board mode (`--state-dir`: MQTT, PTY console, web config, GPIO lines) is the next step of issue 3.

mod replay;

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "virtual-board",
    version,
    about = "The meter firmware core on the host"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The board's flash: config, fallback values, flashed image (board mode, not available yet).
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run one cycle per recorded frame line with a config, no broker; print the process data per cycle.
    Replay {
        /// Device config (reference config.json schema; may be partial, defaults fill the rest).
        #[arg(long)]
        config: PathBuf,
        /// Frames, one JSON object per line: {"sequence":"main","digits":[1.2,"N"],"analogs":[9.5]}.
        #[arg(long)]
        frames: PathBuf,
        /// Clock start, unix seconds (default 2024-01-01T00:00:00Z); it advances by the configured interval.
        #[arg(long, default_value_t = replay::DEFAULT_START_S)]
        start: i64,
    },
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Some(Command::Replay { config, frames, start }) => {
            let config_text =
                std::fs::read_to_string(&config).with_context(|| format!("cannot read config {}", config.display()))?;
            let file = File::open(&frames).with_context(|| format!("cannot open frames {}", frames.display()))?;
            let stdout = std::io::stdout().lock();
            let cycles = replay::run(&config_text, BufReader::new(file), start, stdout)
                .with_context(|| format!("replay of {}", frames.display()))?;
            eprintln!("replayed {cycles} cycles");
            std::io::stdout().flush()?;
            Ok(())
        }
        None => match cli.state_dir {
            Some(_) => bail!("board mode (--state-dir) is not available in this build yet; use `virtual-board replay`"),
            None => bail!("nothing to do: give a subcommand (try `virtual-board --help`)"),
        },
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
