//! `hil`: runs Gherkin scenarios on virtual and real boards, watches a device's topic tree, runs a broker, checks
//! the migration notes and the Home Assistant discovery of a live device, flashes and monitors boards. This binary
//! parses the command line and dispatches; each command lives in `harness::cli`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use harness::cli::{self, Outcome};

#[derive(Parser)]
#[command(name = "hil", version, about = "meterrig hardware-in-the-loop rig")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the scenarios (all of features/ by default) on virtual boards or a real one. Exit code 0: passed
    /// (flaky included), 1: a scenario failed, 2: an infrastructure error.
    Run(cli::run::RunArgs),
    /// Watch a device's live topic tree (like MQTT Explorer, in a terminal).
    Tree(cli::tree::TreeArgs),
    /// Run the embedded broker until Ctrl-C.
    Broker(cli::broker::BrokerServeArgs),
    /// Migration notes v16 -> v17.
    Migration {
        #[command(subcommand)]
        command: cli::migration::MigrationCommand,
    },
    /// Figures: broker echo, round trips (p50/p99), scaling with 1, 8 and 32 boards, the suite's wall time.
    Bench(cli::bench::BenchArgs),
    /// Home Assistant discovery.
    Ha {
        #[command(subcommand)]
        command: cli::ha::HaCommand,
    },
    /// Flash an app image (.bin, written at 0x10000) or an ELF (bootloader + partition table + app) over serial.
    Flash(cli::flash::FlashArgs),
    /// Serial console with timestamps; typed lines go to the board; Ctrl-C exits.
    Monitor(cli::monitor::MonitorArgs),
    /// Write an ESP32-C3 app image whose app descriptor carries VERSION (what the virtual board boots as firmware),
    /// or, with --from-elf, the app image of a firmware ELF plus its size report.
    Image(cli::image::ImageArgs),
    /// Snapshots a run left pending (target/hil/snapshots): list them with the diff command, or accept them.
    Snapshots(cli::snapshots::SnapshotsArgs),
    /// One virtual board for many cycles with MQTT, GPIO and HTTP traffic and broker restarts: memory at start and
    /// end, publishes lost, time-per-cycle drift.
    Soak(cli::soak::SoakArgs),
}

async fn dispatch(command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::Run(args) => cli::run::run(args).await,
        Command::Tree(args) => cli::tree::run(args).await,
        Command::Broker(args) => cli::broker::run(args).await,
        Command::Migration { command } => cli::migration::run(command).await,
        Command::Bench(args) => cli::bench::run(args).await,
        Command::Ha { command } => cli::ha::run(command).await,
        Command::Flash(args) => cli::flash::run(args).await,
        Command::Monitor(args) => cli::monitor::run(args).await,
        Command::Image(args) => cli::image::run(args).await,
        Command::Snapshots(args) => cli::snapshots::run(args).await,
        Command::Soak(args) => cli::soak::run(args).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_log();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return Outcome::Error.into();
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(outcome) => outcome.into(),
        // The rig could not do what was asked (unreachable broker, bad option, no board): not a test failure.
        Err(e) => {
            eprintln!("error: {e:#}");
            Outcome::Error.into()
        }
    }
}
