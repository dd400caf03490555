//! `hil run`: the scenarios on virtual boards (or a real one), with evidence, JUnit, an HTML report and retries.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::{repo_root, BrokerArgs, Outcome};
use crate::runner::{self, Shard, SuiteOptions};
use crate::tags::Expr;

/// Options of `hil run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The broker (default: an embedded broker on 127.0.0.1; with --board, the inventory's broker).
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Tag expression, e.g. '@gpio and not @faults'.
    #[arg(long)]
    pub tags: Option<String>,
    /// Write a JUnit XML report (flaky and rerun attempts as Surefire writes them).
    #[arg(long, value_name = "FILE.xml")]
    pub junit: Option<PathBuf>,
    /// Write an HTML report: one self-contained page.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// Evidence folders of failed scenarios (default: target/hil/evidence).
    #[arg(long, value_name = "DIR")]
    pub evidence: Option<PathBuf>,
    /// Rerun a failed scenario up to N times, each on a fresh board; one that then passes is reported flaky.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retries: usize,
    /// Names the run's main topics (default: the process id); the same seed gives the same topics.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Scenarios at once (each has its own board). Most of a scenario is waiting for the board, so more run at once
    /// than there are cores: 293 scenarios took 11.6 s at 8, 7.1 s at 16, 6.4 s at 24 on 2 cores.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// The virtual-board program (default: built from the workspace when hil runs from it, else next to hil).
    #[arg(long)]
    pub board_bin: Option<PathBuf>,
    /// Fail instead of skipping @browser scenarios when no browser is installed.
    #[arg(long)]
    pub require_browser: bool,
    /// Fail instead of skipping @live-home-assistant scenarios when Home Assistant is not installed
    /// (`ci/home-assistant/install.sh`; `$METERRIG_HA_HOME` says where, default target/home-assistant).
    #[arg(long)]
    pub require_home_assistant: bool,
    /// Run on the real board `fixtures/boards/NAME.toml` (or a path to an inventory .toml) instead of
    /// virtual boards.
    #[arg(long, value_name = "NAME")]
    pub board: Option<String>,
    /// Run only this runner's share of the scenarios: i/n (1-based), the same split on every runner.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Stop at the first failed scenario (scenarios already running finish): the verdict without the rest of the
    /// run, e.g. for mutation testing (ci/mutants.sh).
    #[arg(long)]
    pub fail_fast: bool,
    /// How long a step waits for what it expects, in seconds (default 15 on virtual boards, 60 on a real one). A
    /// shorter wait makes a failing run end sooner (mutation testing); the unmutated suite must still pass with it.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub step_timeout: Option<std::time::Duration>,
    /// Feature files or directories.
    pub features: Vec<PathBuf>,
}

fn parse_seconds(text: &str) -> Result<std::time::Duration, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 3600.0 => {
            Ok(std::time::Duration::from_secs_f64(s))
        }
        _ => Err(format!(
            "'{text}' is not a number of seconds, more than 0 and at most 3600"
        )),
    }
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

fn and_not(expr: Option<Expr>, tag: &str) -> Option<Expr> {
    let not = Expr::Not(Box::new(Expr::Tag(tag.into())));
    Some(match expr {
        Some(e) => Expr::And(Box::new(e), Box::new(not)),
        None => not,
    })
}

/// The cargo target dir and profile hil was built into, when it runs from its workspace's build.
fn workspace_build() -> Option<(PathBuf, String, PathBuf)> {
    let root = repo_root();
    if !super::is_workspace(&root) {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    let mut dir = exe.parent()?.to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let profile = dir.file_name()?.to_string_lossy().into_owned();
    let target = dir.parent()?.to_path_buf();
    // A cargo target dir has this tag; an installed hil does not live in one.
    target
        .join("CACHEDIR.TAG")
        .exists()
        .then_some((target, profile, root))
}

/// The board program: the given one, else `virtual-board` next to hil. When hil runs from its workspace, cargo
/// builds it first (a no-op when it is up to date), so a fresh checkout's first `cargo run -p harness -- run`
/// works and a changed firmware is what runs.
pub fn board_program(given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(bin) = given {
        return Ok(bin);
    }
    let bin = crate::board::default_board_bin();
    let Some((target, profile, root)) = workspace_build() else {
        return Ok(bin);
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&root)
        .args(["build", "-p", "virtual-board", "--target-dir"])
        .arg(&target);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let fresh = !bin.exists();
    if fresh {
        println!(
            "building the board program: cargo build -p virtual-board ({profile}); the first time takes minutes"
        );
    } else {
        cmd.arg("-q");
    }
    let t = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cargo} to build the board program"))?;
    if !status.success() {
        bail!("building the board program failed (cargo build -p virtual-board: {status})");
    }
    if fresh {
        println!("board program built in {:.1?}", t.elapsed());
    }
    Ok(bin)
}

/// Runs the suite and reports; the outcome is 0 passed (flaky included), 1 failed, 2 infrastructure error.
pub async fn run(args: RunArgs) -> Result<Outcome> {
    let root = repo_root();
    let inventory = args
        .board
        .as_deref()
        .map(|name| crate::inventory::Inventory::load(&root, name))
        .transpose()?;
    let target = match (args.broker.target()?, &inventory) {
        (Some(t), _) => t,
        // The real board reaches its broker itself; the rig watches the same one.
        (None, Some(inv)) => args.broker.resolve(&inv.broker)?,
        (None, None) => {
            let mut t = crate::broker::start_embedded("127.0.0.1:0".parse()?)?;
            let given = args.broker.resolve("mqtt://127.0.0.1")?;
            (t.username, t.password) = (given.username, given.password);
            t
        }
    };
    let mut expr = args.tags.as_deref().map(Expr::parse).transpose()?;
    let browser_scenarios = count_tagged(&root.join("features"), "@browser");
    if !crate::browser::installed() {
        if args.require_browser {
            bail!("--require-browser: no browser found; install it with `apt-get install -y chromium`");
        }
        if browser_scenarios > 0 {
            println!(
                "skipped: {browser_scenarios} @browser scenario(s), no browser installed (apt-get install -y chromium)"
            );
            expr = and_not(expr, "browser");
        }
    }
    if crate::cable::Mosquitto::find().is_none() {
        let mosquitto_scenarios = count_tagged(&root.join("features"), "@mosquitto");
        if mosquitto_scenarios > 0 {
            println!(
                "skipped: {mosquitto_scenarios} @mosquitto scenario(s), no mosquitto installed (apt-get install -y mosquitto)"
            );
            expr = and_not(expr, "mosquitto");
        }
    }
    let ha_tag = crate::home_assistant::TAG;
    let ha_inputs = if args.features.is_empty() {
        vec![root.join("features")]
    } else {
        args.features.clone()
    };
    let ha_scenarios = crate::home_assistant::count_scenarios(&ha_inputs, ha_tag);
    // The group's own tags: a --tags expression that excludes them anyway gets no message and no HA.
    let ha_tags = [ha_tag.to_string(), "home-assistant".to_string()];
    let ha_wanted = ha_scenarios > 0 && expr.as_ref().is_none_or(|e| e.eval(&ha_tags));
    match crate::home_assistant::installed(&root) {
        Err(why) => {
            let install = crate::home_assistant::INSTALL_COMMAND;
            if args.require_home_assistant {
                bail!("--require-home-assistant: {why}; install it with `{install}`");
            }
            if ha_wanted {
                println!(
                    "skipped: {ha_scenarios} @{ha_tag} scenario(s), {why} (install it with `{install}`)"
                );
            }
            expr = and_not(expr, ha_tag);
        }
        Ok(()) if ha_wanted => {
            // HA takes ~5 s to start: it starts while the first scenarios run, not when the first of the group does.
            let (root, broker) = (root.clone(), target.clone());
            tokio::spawn(async move {
                let _ = crate::home_assistant::shared(&root, &broker).await;
            });
        }
        Ok(()) => {}
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
            expr = and_not(expr, tag);
        }
        println!(
            "board '{}' on {}",
            inv.name,
            inv.port
                .as_ref()
                .map_or("(by USB serial number)".into(), |p| p.display().to_string())
        );
    }
    if let Some(sh) = args.shard {
        println!("shard {}/{}", sh.index, sh.count);
    }
    let board_bin = match &inventory {
        Some(_) => args
            .board_bin
            .clone()
            .unwrap_or_else(crate::board::default_board_bin),
        None => board_program(args.board_bin.clone())?,
    };
    println!(
        "broker {} · boards from {}",
        target.describe(),
        board_bin.display()
    );
    let evidence = args
        .evidence
        .clone()
        .unwrap_or_else(|| default_evidence_dir(&root));
    let opts = SuiteOptions {
        features: args.features.clone(),
        tags: expr,
        junit: args.junit.clone(),
        report: args.report.clone(),
        evidence: Some(evidence),
        retries: args.retries,
        concurrency: args.concurrency.max(1),
        board: inventory,
        shard: args.shard,
        seed: args.seed.unwrap_or_else(|| u64::from(std::process::id())),
        fail_fast: args.fail_fast,
        step_timeout: args.step_timeout,
        ..SuiteOptions::new(target, board_bin, root)
    };
    let result = runner::run(opts).await?;
    if let Some(e) = &result.record.setup_error {
        eprintln!("error: {e}");
    }
    println!("suite wall time: {:.2?}", result.wall);
    Ok(result.outcome())
}

/// `target/hil/evidence` of the cargo target dir hil runs from, else of the repository.
fn default_evidence_dir(root: &Path) -> PathBuf {
    match workspace_build() {
        Some((target, _, _)) => target.join("hil/evidence"),
        None => root.join("target/hil/evidence"),
    }
}
