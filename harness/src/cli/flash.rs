//! `hil flash`: an app image (.bin, written at 0x10000) or an ELF (bootloader + partition table + app) over serial.

use std::path::PathBuf;

use anyhow::Result;

use super::{Outcome, PortArgs};
use crate::flasher::{self, After, Before};

/// Options of `hil flash`.
#[derive(Debug, clap::Args)]
pub struct FlashArgs {
    #[command(flatten)]
    pub port: PortArgs,
    /// Baud rate for the transfer (the connection starts at 115200).
    #[arg(long, default_value_t = 921_600)]
    pub baud: u32,
    /// How to get the chip into its loader (default: default-reset, or the inventory's strategy with --board).
    #[arg(long, value_enum)]
    pub before: Option<Before>,
    /// What to do once written.
    #[arg(long, value_enum, default_value = "hard-reset")]
    pub after: After,
    /// Skip the MD5 check of the written flash.
    #[arg(long)]
    pub no_verify: bool,
    /// Talk to the ROM loader only (no flasher stub upload).
    #[arg(long)]
    pub no_stub: bool,
    /// Write the image even if the rig's checks (format, checksum, SHA-256, chip) fail.
    #[arg(long)]
    pub force: bool,
    /// Partition table CSV used when IMAGE is an ELF.
    #[arg(long)]
    pub partition_table: Option<PathBuf>,
    /// IMAGE.bin (ESP-IDF app image) or ELF.
    pub image: PathBuf,
}

/// Checks the image, finds the port, flashes with a progress bar.
pub async fn run(args: FlashArgs) -> Result<Outcome> {
    let payload = flasher::load_payload(&args.image, args.partition_table.as_deref(), args.force)?;
    let (port, inventory) = args.port.resolve()?;
    let before = args
        .before
        .or_else(|| inventory.map(|inv| inv.reset.before_flashing()))
        .unwrap_or(Before::DefaultReset);
    if flasher::is_pseudo_terminal(&port) && !matches!(before, Before::NoReset | Before::Console) {
        eprintln!(
            "note: {} is a pseudo-terminal (no DTR/RTS): assuming the board already waits in download mode",
            port.display()
        );
    }
    let opts = flasher::FlashOptions {
        port,
        baud: args.baud,
        before,
        after: args.after,
        verify: !args.no_verify,
        stub: !args.no_stub,
    };
    let mut bar = flasher::Bar::new(payload.regions());
    let report = tokio::task::block_in_place(|| flasher::flash(&opts, &payload, &mut bar))?;
    println!(
        "flashed {} bytes{} in {:.2?} ({}), {}",
        report.bytes,
        report
            .version
            .map(|v| format!(" (version {v})"))
            .unwrap_or_default(),
        report.elapsed,
        if report.stub { "stub" } else { "ROM loader" },
        report.reset
    );
    Ok(Outcome::Passed)
}
