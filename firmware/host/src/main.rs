//! `virtual-board`: the meter firmware core on the host, reached exactly like a real board.
//!
//! ```text
//! virtual-board --state-dir DIR [--config FILE] [--download] [--uart-baud N]
//! virtual-board replay --config FILE --frames FILE.jsonl [--start UNIX]
//! ```
//!
//! When ready, board mode prints ONE JSON line on stdout:
//! `{"serial": "/dev/pts/N", "http": "127.0.0.1:PORT", "gpio": "DIR/gpio.sock", "pid": N}`; logs go to stderr
//! and to the UART. The UART is a pseudo-terminal with the console grammar of `meter_core::console`; the GPIO
//! endpoint is a Unix socket speaking JSON lines (see `gpio_lines`). SIGKILL is a power loss, SIGTERM the reset
//! button (both drop the MQTT connection without DISCONNECT, so the broker publishes the LWT); a restart on the
//! same DIR is a reboot.

mod board;
mod gpio_lines;
mod heap;
mod http;
mod mqtt;
mod replay;
mod uart;
mod waker;

use virtual_board::{app_image, rom_loader, spi_flash};

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

/// Every allocation goes through the meter; only the firmware's count against the chip's heap.
#[global_allocator]
static ALLOCATOR: heap::Metered = heap::Metered;

#[derive(Parser)]
#[command(
    name = "virtual-board",
    version,
    about = "The meter firmware core on the host, reached like a real board"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The board's flash: config, fallback values, flashed image. Required in board mode.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Seed the config (reference config.json schema, may be partial: defaults fill the rest).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Start in ROM serial download mode (BOOT held at reset): the ROM loader serves flashers on the UART.
    #[arg(long)]
    download: bool,
    /// Simulate a UART line rate (8N1, both directions) so flashing takes as long as on a real wire.
    #[arg(long, value_name = "BAUD", value_parser = clap::value_parser!(u32).range(300..=5_000_000))]
    uart_baud: Option<u32>,
    /// Whose limits the board has: the ESP32-C3's (heap, MQTT packet size, network time only) or the host's.
    #[arg(long, value_enum, default_value = "chip")]
    limits: board::Limits,
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
        Some(Command::Replay {
            config,
            frames,
            start,
        }) => {
            let config_text = std::fs::read_to_string(&config)
                .with_context(|| format!("cannot read config {}", config.display()))?;
            let file = File::open(&frames)
                .with_context(|| format!("cannot open frames {}", frames.display()))?;
            let stdout = std::io::stdout().lock();
            let cycles = replay::run(&config_text, BufReader::new(file), start, stdout)
                .with_context(|| format!("replay of {}", frames.display()))?;
            eprintln!("replayed {cycles} cycles");
            std::io::stdout().flush()?;
            Ok(())
        }
        None => {
            let Some(state_dir) = cli.state_dir else {
                bail!("--state-dir DIR is required (the board's flash), or use `virtual-board replay`");
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let options = board::Options {
                state_dir,
                config: cli.config,
                download: cli.download,
                uart_baud: cli.uart_baud,
                limits: cli.limits,
            };
            // The board runs as a task, not as block_on's own future: embassy-sync's WakerRegistration wakes the
            // waker it holds whenever another one registers (`!will_wake`), and block_on's waker and the clones the
            // board's channels keep of it are not `will_wake` (tokio 1.54 gives them vtables at different addresses,
            // a generic promoted constant per instantiation), so every poll woke the board again: an idle board spun
            // at ~60% of a core (30 000 epoll_wait(0) a second) and eight of them starved a 2-core machine. A task's
            // waker clones are its own: an idle board now sleeps.
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                tokio::task::spawn_local(board::run(options))
                    .await
                    .map_err(|e| anyhow::anyhow!("the board task failed: {e}"))?
            })
        }
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
