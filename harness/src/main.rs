//! `hil`: run Gherkin scenarios on virtual (and, with the ESP32-C3 issue, real) boards, watch a device's topic tree,
//! run a broker, verify the migration notes and the Home Assistant discovery of a live device.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use harness::broker::{self, BrokerTarget};
use harness::observer::Observer;
use harness::runner::{self, SuiteOptions};
use harness::tags::Expr;
use harness::{ha, migration, snapshot};

#[derive(Parser)]
#[command(name = "hil", version, about = "meterrig hardware-in-the-loop rig")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// CA certificate (PEM) of an mqtts:// broker.
    #[arg(long, global = true)]
    ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for an mqtts:// broker that wants one.
    #[arg(long, global = true)]
    client_cert: Option<PathBuf>,
    #[arg(long, global = true)]
    client_key: Option<PathBuf>,
}

/// TLS files given on the command line.
struct TlsFiles {
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

impl TlsFiles {
    fn target(&self, uri: &str) -> Result<BrokerTarget> {
        BrokerTarget::parse(uri)?.with_tls_files(
            self.ca.as_deref(),
            self.cert.as_deref(),
            self.key.as_deref(),
        )
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the scenarios (all of features/ by default) on virtual boards.
    Run {
        /// External broker (default: an embedded broker on 127.0.0.1).
        #[arg(long)]
        broker: Option<String>,
        /// Broker user name / password (external broker).
        #[arg(long)]
        username: Option<String>,
        #[arg(long)]
        password: Option<String>,
        /// Tag expression, e.g. '@gpio and not @faults'.
        #[arg(long)]
        tags: Option<String>,
        /// Write a JUnit XML report.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Scenarios at once (each has its own board).
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// The virtual-board program (default: next to hil).
        #[arg(long)]
        board_bin: Option<PathBuf>,
        /// Fail instead of skipping @browser scenarios when no browser is installed.
        #[arg(long)]
        require_browser: bool,
        /// Run on the real board `fixtures/boards/NAME.toml` (or a path to an inventory .toml) instead of
        /// virtual boards.
        #[arg(long, value_name = "NAME")]
        board: Option<String>,
        /// Run only this runner's share of the scenarios: i/n (1-based), the same split on every runner.
        #[arg(long, value_name = "I/N")]
        shard: Option<harness::runner::Shard>,
        /// Feature files or directories.
        features: Vec<PathBuf>,
    },
    /// Watch a device's live topic tree (like MQTT Explorer, in a terminal).
    Tree {
        #[arg(long)]
        broker: String,
        #[arg(long)]
        root: String,
        /// Seconds to listen before printing.
        #[arg(long = "for", default_value_t = 3.0)]
        for_secs: f64,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Run the embedded broker until Ctrl-C.
    Broker {
        #[arg(long, default_value = "127.0.0.1:1883")]
        listen: SocketAddr,
    },
    /// Migration notes v16 -> v17.
    Migration {
        #[command(subcommand)]
        command: MigrationCommand,
    },
    /// Figures: suite wall time, round trips (p50/p99), scaling with 1, 8 and 32 boards.
    Bench {
        #[arg(long)]
        broker: Option<String>,
        #[arg(long)]
        board_bin: Option<PathBuf>,
        /// Round trips per measurement.
        #[arg(long, default_value_t = 1000)]
        n: usize,
        /// Also time the whole suite.
        #[arg(long)]
        suite: bool,
    },
    /// Home Assistant discovery.
    Ha {
        #[command(subcommand)]
        command: HaCommand,
    },
    /// Flash an app image (.bin, written at 0x10000) or an ELF (bootloader + partition table + app) over serial.
    Flash {
        /// Serial port (default: the one ESP32 found by USB id; a list to pick from when there are several).
        #[arg(long)]
        port: Option<PathBuf>,
        /// Take the port and reset strategy from `fixtures/boards/NAME.toml`.
        #[arg(long, value_name = "NAME", conflicts_with = "port")]
        board: Option<String>,
        /// Baud rate for the transfer (the connection starts at 115200).
        #[arg(long, default_value_t = 921_600)]
        baud: u32,
        /// How to get the chip into its loader.
        #[arg(long, value_enum, default_value = "default-reset")]
        before: harness::flasher::Before,
        /// What to do once written.
        #[arg(long, value_enum, default_value = "hard-reset")]
        after: harness::flasher::After,
        /// Skip the MD5 check of the written flash.
        #[arg(long)]
        no_verify: bool,
        /// Talk to the ROM loader only (no flasher stub upload).
        #[arg(long)]
        no_stub: bool,
        /// Write the image even if the rig's checks (format, checksum, SHA-256, chip) fail.
        #[arg(long)]
        force: bool,
        /// Partition table CSV used when IMAGE is an ELF.
        #[arg(long)]
        partition_table: Option<PathBuf>,
        /// IMAGE.bin (ESP-IDF app image) or ELF.
        image: PathBuf,
    },
    /// Serial console with timestamps; typed lines go to the board; Ctrl-C exits.
    Monitor {
        #[arg(long)]
        port: Option<PathBuf>,
        #[arg(long, default_value_t = 115_200)]
        baud: u32,
    },
    /// Write an ESP32-C3 app image whose app descriptor carries VERSION (what the virtual board boots as firmware),
    /// or, with --from-elf, the app image of a firmware ELF plus its size report.
    Image {
        #[arg(long, required_unless_present = "from_elf")]
        version: Option<String>,
        /// Convert this ELF (as espflash save-image does) instead of writing a synthetic image.
        #[arg(long)]
        from_elf: Option<PathBuf>,
        /// Partition table CSV for --from-elf.
        #[arg(long)]
        partition_table: Option<PathBuf>,
        /// Size budget of the app image in KiB (--from-elf): reported, and with --enforce-budget a failure.
        #[arg(long)]
        budget_kib: Option<usize>,
        /// Exit non-zero when the image is over --budget-kib.
        #[arg(long, requires = "budget_kib")]
        enforce_budget: bool,
        /// Exit non-zero when the app image is over this many KiB (--from-elf): a regression guard that holds
        /// while the budget itself is not met.
        #[arg(long)]
        ceiling_kib: Option<usize>,
        /// The ELF of the platform alone (Wi-Fi, IP stack, console; no application): its image size is reported
        /// and subtracted, so the report says what the application itself costs.
        #[arg(long, requires = "from_elf")]
        floor_elf: Option<PathBuf>,
        #[arg(long)]
        output: PathBuf,
        /// Project name in the app descriptor.
        #[arg(long, default_value = harness::app_image::DEFAULT_PROJECT)]
        project: String,
        /// Pad the image to this many bytes (e.g. 1048576 for timing a 1 MiB flash).
        #[arg(long, default_value_t = 0)]
        size: usize,
        /// Chip the image is for (esp32c3; another chip makes an image the rig must refuse).
        #[arg(long, default_value = "esp32c3")]
        chip: String,
    },
}

#[derive(Subcommand)]
enum MigrationCommand {
    /// Check a live device: every replacement published, no v16 topic.
    Verify {
        #[arg(long)]
        broker: String,
        #[arg(long)]
        root: String,
        #[arg(long)]
        notes: Option<PathBuf>,
        #[arg(long = "for", default_value_t = 3.0)]
        for_secs: f64,
        /// Publish cycle_start after subscribing, so the per-cycle topics show up.
        #[arg(long)]
        trigger_cycle: bool,
    },
    /// Write the markdown notes generated from the map.
    Notes {
        #[arg(long)]
        notes: Option<PathBuf>,
        #[arg(long, default_value = "docs/mqtt-api/migration-notes.md")]
        output: PathBuf,
    },
}

#[derive(Subcommand)]
enum HaCommand {
    /// Cross-check every discovery config of a live device (and press its buttons).
    Check {
        #[arg(long)]
        broker: String,
        #[arg(long)]
        root: String,
        #[arg(long, default_value = "homeassistant")]
        prefix: String,
        #[arg(long = "for", default_value_t = 3.0)]
        for_secs: f64,
        /// Publish cycle_start after subscribing, so the per-cycle state topics show up. Best: start the check
        /// before the device connects (GPIO states come after connect and on change only).
        #[arg(long)]
        trigger_cycle: bool,
    },
}

/// `HIL_LOG=debug` (or info/trace) prints what the libraries log, e.g. every espflash command.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            eprintln!("[{} {}] {}", r.level(), r.target(), r.args());
        }
    }
    fn flush(&self) {}
}

fn init_log() {
    let level = match std::env::var("HIL_LOG").as_deref() {
        Ok("trace") => log::LevelFilter::Trace,
        Ok("debug") => log::LevelFilter::Debug,
        Ok("info") => log::LevelFilter::Info,
        _ => return,
    };
    if log::set_logger(&StderrLog).is_ok() {
        log::set_max_level(level);
    }
}

fn repo_root() -> PathBuf {
    let compiled = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    if compiled.join("features").exists() {
        compiled
    } else {
        PathBuf::from(".")
    }
}

fn browser_installed() -> bool {
    ["/usr/bin/chromium", "/usr/bin/chromedriver"]
        .iter()
        .all(|p| Path::new(p).exists())
}

fn count_tagged(dir: &Path, tag: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "feature"))
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .matches(tag)
                .count()
        })
        .sum()
}

async fn listen(
    tls: &TlsFiles,
    broker: &str,
    filters: Vec<String>,
    secs: f64,
) -> Result<(Observer, BrokerTarget)> {
    listen_and(tls, broker, filters, secs, None).await
}

/// Subscribes, optionally publishes `(topic, payload)`, then records for `secs`.
async fn listen_and(
    tls: &TlsFiles,
    broker: &str,
    filters: Vec<String>,
    secs: f64,
    publish: Option<(String, &[u8])>,
) -> Result<(Observer, BrokerTarget)> {
    let target = tls.target(broker)?;
    target.check_reachable().await?;
    let obs = Observer::connect(&target, &filters).await?;
    if let Some((topic, payload)) = publish {
        obs.publish(&topic, payload, false).await?;
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    Ok((obs, target))
}

async fn run(cli: Cli) -> Result<bool> {
    let tls = TlsFiles {
        ca: cli.ca_file,
        cert: cli.client_cert,
        key: cli.client_key,
    };
    match cli.command {
        Command::Flash {
            port,
            board,
            baud,
            mut before,
            after,
            no_verify,
            no_stub,
            force,
            partition_table,
            image,
        } => {
            use harness::flasher;
            let payload = flasher::load_payload(&image, partition_table.as_deref(), force)?;
            let port = match (port, board) {
                (Some(p), _) => p,
                (None, Some(name)) => {
                    let inv = harness::inventory::Inventory::load(&repo_root(), &name)?;
                    before = inv.reset.before_flashing();
                    inv.resolve_port().map_err(anyhow::Error::msg)?
                }
                (None, None) => flasher::detect_port(true)?,
            };
            if flasher::is_pseudo_terminal(&port)
                && !matches!(before, flasher::Before::NoReset | flasher::Before::Console)
            {
                eprintln!("note: {} is a pseudo-terminal (no DTR/RTS): assuming the board already waits in download mode", port.display());
            }
            let opts = flasher::FlashOptions {
                port,
                baud,
                before,
                after,
                verify: !no_verify,
                stub: !no_stub,
            };
            let mut bar = flasher::Bar::new(payload.regions());
            let report = flasher::flash(&opts, &payload, &mut bar)?;
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
            Ok(true)
        }
        Command::Monitor { port, baud } => {
            let port = match port {
                Some(p) => p,
                None => harness::flasher::detect_port(true)?,
            };
            harness::monitor::run(&port, baud, &mut std::io::stdout())?;
            Ok(true)
        }
        Command::Image {
            version,
            from_elf: Some(elf_path),
            partition_table,
            budget_kib,
            enforce_budget,
            ceiling_kib,
            floor_elf,
            output,
            ..
        } => {
            use harness::flasher;
            let _ = version;
            let elf = std::fs::read(&elf_path)
                .with_context(|| format!("cannot read {}", elf_path.display()))?;
            let image = flasher::elf_to_image(&elf, partition_table.as_deref())?;
            let info = harness::app_image::inspect(&image.app)?;
            std::fs::write(&output, &image.app)
                .with_context(|| format!("cannot write {}", output.display()))?;
            let (data, bss, iram) = flasher::static_ram(&elf)?;
            let kib = |n: u64| n as f64 / 1024.0;
            println!(
                "{}: app image {} bytes ({:.1} KiB), version {}, project {}; partition {} KiB ({:.0}% used)",
                output.display(),
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
            let origins = harness::image_size::breakdown(&elf)?;
            println!(
                "code and constants by origin (KiB): {}",
                harness::image_size::summary(&origins, 10)
            );
            if let Some(floor_path) = floor_elf {
                let floor_elf = std::fs::read(&floor_path)
                    .with_context(|| format!("cannot read {}", floor_path.display()))?;
                let floor = flasher::elf_to_image(&floor_elf, partition_table.as_deref())
                    .with_context(|| format!("cannot convert {}", floor_path.display()))?;
                println!(
                    "platform floor ({}): {:.1} KiB; the application adds {:.1} KiB",
                    floor_path.display(),
                    kib(floor.app.len() as u64),
                    kib(image.app.len() as u64) - kib(floor.app.len() as u64)
                );
            }
            if let Some(ceiling) = ceiling_kib {
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
            if let Some(budget) = budget_kib {
                let over = image.app.len() as f64 / 1024.0 - budget as f64;
                if over > 0.0 && enforce_budget {
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
            Ok(true)
        }
        Command::Image {
            version,
            output,
            project,
            size,
            chip,
            ..
        } => {
            use harness::app_image;
            let version = version.context("--version is required")?;
            let chip_id = app_image::chip_id(&chip).with_context(|| {
                format!("unknown chip '{chip}' (known: esp32, esp32s2, esp32c3, esp32s3, esp32c2, esp32c6, esp32h2, esp32p4)")
            })?;
            let spec = app_image::ImageSpec {
                version,
                project,
                chip_id,
                size,
            };
            let image = app_image::build(&spec)?;
            std::fs::write(&output, &image)
                .with_context(|| format!("cannot write {}", output.display()))?;
            println!(
                "{}: {} bytes, {} app image, version {}",
                output.display(),
                image.len(),
                app_image::chip_name(chip_id),
                spec.version
            );
            Ok(true)
        }
        Command::Run {
            broker,
            username,
            password,
            tags,
            junit,
            concurrency,
            board_bin,
            require_browser,
            board,
            shard,
            features,
        } => {
            let root = repo_root();
            let inventory = board
                .as_deref()
                .map(|name| harness::inventory::Inventory::load(&root, name))
                .transpose()?;
            let mut target = match (broker, &inventory) {
                (Some(uri), _) => tls.target(&uri)?,
                // The real board reaches its broker itself; the rig watches the same one.
                (None, Some(inv)) => tls.target(&inv.broker)?,
                (None, None) => broker::start_embedded("127.0.0.1:0".parse()?)?,
            };
            target.username = username;
            target.password = password;
            let mut expr = tags.as_deref().map(Expr::parse).transpose()?;
            let browser_scenarios = count_tagged(&root.join("features"), "@browser");
            if !browser_installed() {
                if require_browser {
                    bail!("--require-browser: no browser found; install it with `apt-get install -y chromium chromium-driver`");
                }
                if browser_scenarios > 0 {
                    println!(
                        "skipped: {browser_scenarios} @browser scenario(s), no browser installed (apt-get install -y chromium chromium-driver)"
                    );
                    let not_browser = Expr::Not(Box::new(Expr::Tag("browser".into())));
                    expr = Some(match expr {
                        Some(e) => Expr::And(Box::new(e), Box::new(not_browser)),
                        None => not_browser,
                    });
                }
            }
            if let Some(inv) = &inventory {
                let features_dir = root.join("features");
                let mut skip = vec![(
                    "virtual-only",
                    "they need the virtual board's power switch or broker cable".to_string(),
                )];
                if !inv.has_wiring() {
                    skip.push((
                        "wiring",
                        format!("inventory '{}' has no [[wiring]]", inv.name),
                    ));
                }
                if inv.loopback.is_empty() {
                    skip.push((
                        "loopback",
                        format!("inventory '{}' has no [[loopback]]", inv.name),
                    ));
                }
                if inv.http.is_none() {
                    skip.push((
                        "http",
                        format!("inventory '{}' gives no `http` address", inv.name),
                    ));
                }
                for (tag, why) in skip {
                    let n = count_tagged(&features_dir, &format!("@{tag}"));
                    println!("skipped: {n} @{tag} scenario(s) or feature(s): {why}");
                    let not = Expr::Not(Box::new(Expr::Tag(tag.into())));
                    expr = Some(match expr {
                        Some(e) => Expr::And(Box::new(e), Box::new(not)),
                        None => not,
                    });
                }
                println!(
                    "board '{}' on {}",
                    inv.name,
                    inv.port
                        .as_ref()
                        .map_or("(by USB serial number)".into(), |p| p.display().to_string())
                );
            }
            if let Some(sh) = shard {
                println!("shard {}/{}", sh.index, sh.count);
            }
            println!(
                "broker {} · boards from {}",
                target.uri(),
                harness::board::default_board_bin().display()
            );
            let opts = SuiteOptions {
                broker: target,
                board_bin: board_bin.unwrap_or_else(harness::board::default_board_bin),
                root,
                features,
                tags: expr,
                junit,
                concurrency: concurrency.max(1),
                board: inventory,
                shard,
            };
            let result = runner::run(opts).await?;
            println!("suite wall time: {:.2?}", result.wall);
            Ok(!result.failed)
        }
        Command::Bench {
            broker,
            board_bin,
            n,
            suite,
        } => {
            let target = match broker {
                Some(uri) => tls.target(&uri)?,
                None => broker::start_embedded("127.0.0.1:0".parse()?)?,
            };
            target.check_reachable().await?;
            let bin = board_bin.unwrap_or_else(harness::board::default_board_bin);
            println!("broker {}", target.uri());
            let (cycles, gpio) = harness::bench::round_trips(&bin, &target, n.max(1)).await?;
            for (name, samples) in [
                ("cycle_start -> cycle_counter", cycles),
                ("gpio ctrl -> state", gpio),
            ] {
                let (p50, p99, max) = harness::bench::summary(samples);
                println!("{name:<30} n={n} p50={p50:.2?} p99={p99:.2?} max={max:.2?}");
            }
            for boards in [1, 8, 32] {
                let (online, cycle) = harness::bench::scaling(&bin, &target, boards).await?;
                println!("{boards:>2} boards at once: all online in {online:.2?}, one cycle on each in {cycle:.2?}");
            }
            if suite {
                let opts = SuiteOptions {
                    broker: target,
                    board_bin: bin,
                    root: repo_root(),
                    features: vec![],
                    tags: Some(Expr::Not(Box::new(Expr::Tag("browser".into())))),
                    junit: None,
                    concurrency: 8,
                    board: None,
                    shard: None,
                };
                let result = runner::run(opts).await?;
                println!("suite (without @browser) wall time: {:.2?}", result.wall);
            }
            Ok(true)
        }
        Command::Tree {
            broker,
            root,
            for_secs,
            json,
        } => {
            let (obs, _) = listen(&tls, &broker, vec![format!("{root}/#")], for_secs).await?;
            let tree = obs.tree();
            if json {
                let map: serde_json::Map<String, serde_json::Value> = tree
                    .iter()
                    .map(|(t, s)| (t.clone(), serde_json::json!({"payload": s.payload, "retain": s.retain, "qos": s.qos})))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&map)?);
            } else {
                println!(
                    "{}",
                    snapshot::tree_text(&tree, &snapshot::Placeholders::default())
                );
            }
            Ok(true)
        }
        Command::Broker { listen: addr } => {
            let target = broker::start_embedded(addr)?;
            println!(
                "embedded broker listening on {} (Ctrl-C stops it)",
                target.uri()
            );
            tokio::signal::ctrl_c().await?;
            Ok(true)
        }
        Command::Migration {
            command: MigrationCommand::Notes { notes, output },
        } => {
            let path = notes.unwrap_or_else(|| repo_root().join("fixtures/migration/v16-v17.toml"));
            let rows = migration::parse(
                &std::fs::read_to_string(&path).with_context(|| path.display().to_string())?,
            )?;
            std::fs::write(&output, migration::markdown(&rows))
                .with_context(|| output.display().to_string())?;
            println!("wrote {} ({} rows)", output.display(), rows.len());
            Ok(true)
        }
        Command::Migration {
            command:
                MigrationCommand::Verify {
                    broker,
                    root,
                    notes,
                    for_secs,
                    trigger_cycle,
                },
        } => {
            let path = notes.unwrap_or_else(|| repo_root().join("fixtures/migration/v16-v17.toml"));
            let rows = migration::parse(
                &std::fs::read_to_string(&path).with_context(|| path.display().to_string())?,
            )?;
            let trigger =
                trigger_cycle.then(|| (format!("{root}/process/ctrl/cycle_start"), &b"1"[..]));
            let filters = vec![format!("{root}/#"), "homeassistant/#".into()];
            let (obs, _) = listen_and(&tls, &broker, filters, for_secs, trigger).await?;
            let tree = obs.tree();
            let device = migration::Device::from_tree(&root, &tree);
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
            Ok(ok)
        }
        Command::Ha {
            command:
                HaCommand::Check {
                    broker,
                    root,
                    prefix,
                    for_secs,
                    trigger_cycle,
                },
        } => {
            let trigger =
                trigger_cycle.then(|| (format!("{root}/process/ctrl/cycle_start"), &b"1"[..]));
            let filters = vec![format!("{root}/#"), format!("{prefix}/#")];
            let (obs, _) = listen_and(&tls, &broker, filters, for_secs, trigger).await?;
            let tree = obs.tree();
            let report = ha::check(&tree, &prefix);
            println!("{} discovery configs under {prefix}/", report.configs);
            for p in &report.problems {
                println!("PROBLEM {}: {}", p.config_topic, p.message);
            }
            let mut ok = report.configs > 0 && report.problems.is_empty();
            for (config, cmd, press) in &report.commands {
                let counter = format!("{root}/process/status/cycle_counter");
                let before = obs.get(&counter).map(|s| s.payload).unwrap_or_default();
                obs.publish(cmd, press.as_bytes(), false).await?;
                let effect = obs
                    .wait_until(&counter, Duration::from_secs(10), "changed", |s| {
                        s.payload != before
                    })
                    .await;
                match effect {
                    Ok(_) => println!("ok      {cmd}: pressing '{press}' started a cycle"),
                    Err(e) => {
                        ok = false;
                        println!("PROBLEM {config}: pressing {cmd} had no effect: {e}");
                    }
                }
            }
            println!(
                "{}",
                if ok {
                    "discovery is consistent"
                } else {
                    "discovery has problems"
                }
            );
            Ok(ok)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_log();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
