//! `hil image`: an ESP32-C3 app image with a given version (what the virtual board boots as firmware), or the app
//! image of a firmware ELF with its size report.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::Outcome;
use crate::{app_image, flasher};

/// Options of `hil image`.
#[derive(Debug, clap::Args)]
pub struct ImageArgs {
    /// The version in the app descriptor (a synthetic image).
    #[arg(long, required_unless_present = "from_elf")]
    pub version: Option<String>,
    /// Convert this ELF (as espflash save-image does) instead of writing a synthetic image.
    #[arg(long)]
    pub from_elf: Option<PathBuf>,
    /// Partition table CSV for --from-elf.
    #[arg(long)]
    pub partition_table: Option<PathBuf>,
    /// Size budget of the app image in KiB (--from-elf): reported, and with --enforce-budget a failure.
    #[arg(long)]
    pub budget_kib: Option<usize>,
    /// Exit non-zero when the image is over --budget-kib.
    #[arg(long, requires = "budget_kib")]
    pub enforce_budget: bool,
    /// Exit non-zero when the app image is over this many KiB (--from-elf): a regression guard that holds
    /// while the budget itself is not met.
    #[arg(long)]
    pub ceiling_kib: Option<usize>,
    /// The ELF of the platform alone (Wi-Fi, IP stack, console; no application): its image size is reported
    /// and subtracted, so the report says what the application itself costs.
    #[arg(long, requires = "from_elf")]
    pub floor_elf: Option<PathBuf>,
    #[arg(long)]
    pub output: PathBuf,
    /// Project name in the app descriptor.
    #[arg(long, default_value = app_image::DEFAULT_PROJECT)]
    pub project: String,
    /// Pad the image to this many bytes (e.g. 1048576 for timing a 1 MiB flash).
    #[arg(long, default_value_t = 0)]
    pub size: usize,
    /// Chip the image is for (esp32c3; another chip makes an image the rig must refuse).
    #[arg(long, default_value = "esp32c3")]
    pub chip: String,
}

/// Writes the image (and prints the size report for an ELF).
pub async fn run(args: ImageArgs) -> Result<Outcome> {
    match &args.from_elf {
        Some(elf) => from_elf(&args, elf),
        None => synthetic(&args),
    }
}

fn from_elf(args: &ImageArgs, elf_path: &Path) -> Result<Outcome> {
    let elf =
        std::fs::read(elf_path).with_context(|| format!("cannot read {}", elf_path.display()))?;
    let image = flasher::elf_to_image(&elf, args.partition_table.as_deref())?;
    let info = crate::app_image::inspect(&image.app)?;
    std::fs::write(&args.output, &image.app)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    let (data, bss, iram) = flasher::static_ram(&elf)?;
    let kib = |n: u64| n as f64 / 1024.0;
    println!(
        "{}: app image {} bytes ({:.1} KiB), version {}, project {}; partition {} KiB ({:.0}% used)",
        args.output.display(),
        image.app.len(),
        kib(image.app.len() as u64),
        info.version,
        info.project,
        image.partition_size / 1024,
        100.0 * image.app.len() as f64 / image.partition_size.max(1) as f64
    );
    println!(
        "static RAM: {:.1} KiB data + {:.1} KiB bss (DRAM), {:.1} KiB code in IRAM",
        kib(data),
        kib(bss),
        kib(iram)
    );
    let origins = crate::image_size::breakdown(&elf)?;
    println!(
        "code and constants by origin (KiB): {}",
        crate::image_size::summary(&origins, 10)
    );
    if let Some(floor_path) = &args.floor_elf {
        let floor_elf = std::fs::read(floor_path)
            .with_context(|| format!("cannot read {}", floor_path.display()))?;
        let floor = flasher::elf_to_image(&floor_elf, args.partition_table.as_deref())
            .with_context(|| format!("cannot convert {}", floor_path.display()))?;
        println!(
            "platform floor ({}): {:.1} KiB; the application adds {:.1} KiB",
            floor_path.display(),
            kib(floor.app.len() as u64),
            kib(image.app.len() as u64) - kib(floor.app.len() as u64)
        );
    }
    if let Some(ceiling) = args.ceiling_kib {
        if image.app.len() > ceiling * 1024 {
            bail!(
                "the app image ({:.1} KiB) is over the {ceiling} KiB ceiling: something grew; \
                 see what with `llvm-nm -S --size-sort -C {}`",
                kib(image.app.len() as u64),
                elf_path.display()
            );
        }
        println!("under the {ceiling} KiB ceiling");
    }
    if let Some(budget) = args.budget_kib {
        let over = image.app.len() as f64 / 1024.0 - budget as f64;
        if over > 0.0 && args.enforce_budget {
            bail!(
                "the app image ({:.1} KiB) is {over:.1} KiB over the {budget} KiB budget",
                kib(image.app.len() as u64)
            );
        } else if over > 0.0 {
            println!("OVER BUDGET: {over:.1} KiB more than the {budget} KiB budget");
        } else {
            println!("within the {budget} KiB budget ({:.1} KiB left)", -over);
        }
    }
    Ok(Outcome::Passed)
}

fn synthetic(args: &ImageArgs) -> Result<Outcome> {
    let version = args.version.clone().context("--version is required")?;
    let chip_id = app_image::chip_id(&args.chip).with_context(|| {
        format!("unknown chip '{}' (known: esp32, esp32s2, esp32c3, esp32s3, esp32c2, esp32c6, esp32h2, esp32p4)", args.chip)
    })?;
    let spec = app_image::ImageSpec {
        version,
        project: args.project.clone(),
        chip_id,
        size: args.size,
    };
    let image = app_image::build(&spec)?;
    std::fs::write(&args.output, &image)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    println!(
        "{}: {} bytes, {} app image, version {}",
        args.output.display(),
        image.len(),
        app_image::chip_name(chip_id),
        spec.version
    );
    Ok(Outcome::Passed)
}
