//! The `hil` command line: one clap `Args` struct per subcommand, the options several share ([`BrokerArgs`],
//! [`PortArgs`]) flattened into them, and each command's code in its own module. The binary only dispatches.

use std::path::{Path, PathBuf};

use crate::broker::{BrokerError, BrokerTarget};

pub mod bench;
pub mod broker;
pub mod flash;
pub mod ha;
pub mod image;
pub mod migration;
pub mod monitor;
pub mod run;
pub mod snapshots;
pub mod soak;
pub mod tree;

pub use crate::results::Outcome;

/// How to reach a broker: the same options for every command that talks to one.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BrokerArgs {
    /// Broker: mqtt://[user[:password]@]host[:port] or mqtts://... (as mosquitto's clients take it).
    #[arg(long, value_name = "URI")]
    pub broker: Option<String>,
    /// User name (instead of the one in the URI).
    #[arg(long)]
    pub username: Option<String>,
    /// Password; it shows in shell history and process lists, so prefer --password-env in CI.
    #[arg(long, conflicts_with = "password_env")]
    pub password: Option<String>,
    /// Take the password from this environment variable (e.g. a CI secret).
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    /// CA certificate (PEM) of an mqtts:// broker.
    #[arg(long, value_name = "CA.pem")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for an mqtts:// broker that wants one.
    #[arg(long, value_name = "C.pem", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "K.pem", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

impl BrokerArgs {
    /// `uri` with these options' TLS files and credentials (they override the URI's).
    pub fn resolve(&self, uri: &str) -> Result<BrokerTarget, BrokerError> {
        let mut target = BrokerTarget::parse(uri)?.with_tls_files(
            self.ca_file.as_deref(),
            self.client_cert.as_deref(),
            self.client_key.as_deref(),
        )?;
        if let Some(user) = &self.username {
            target.username = Some(user.clone());
        }
        if let Some(password) = self.password()? {
            target.password = Some(password);
        }
        Ok(target)
    }

    /// The broker given with --broker, if any.
    pub fn target(&self) -> Result<Option<BrokerTarget>, BrokerError> {
        self.broker
            .as_deref()
            .map(|uri| self.resolve(uri))
            .transpose()
    }

    /// The broker given with --broker; `command` needs one.
    pub fn required(&self, command: &str) -> anyhow::Result<BrokerTarget> {
        self.target()?.ok_or_else(|| {
            anyhow::anyhow!("`hil {command}` needs --broker mqtt://host:port (the device's broker)")
        })
    }

    fn password(&self) -> Result<Option<String>, BrokerError> {
        match (&self.password, &self.password_env) {
            (Some(p), _) => Ok(Some(p.clone())),
            (None, Some(var)) => std::env::var(var)
                .map(Some)
                .map_err(|_| BrokerError::PasswordEnv(var.clone())),
            (None, None) => Ok(None),
        }
    }
}

/// Which serial port: given, taken from an inventory entry, or found by USB id.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PortArgs {
    /// Serial port (default: the one ESP32 found by USB id; a list to pick from when there are several).
    #[arg(long)]
    pub port: Option<PathBuf>,
    /// Take the port (and, for flashing, the reset strategy) from `fixtures/boards/NAME.toml`.
    #[arg(long, value_name = "NAME", conflicts_with = "port")]
    pub board: Option<String>,
}

impl PortArgs {
    /// The port, and the inventory entry it came from (if any).
    pub fn resolve(&self) -> anyhow::Result<(PathBuf, Option<crate::inventory::Inventory>)> {
        match (&self.port, &self.board) {
            (Some(p), _) => Ok((p.clone(), None)),
            (None, Some(name)) => {
                let inv = crate::inventory::Inventory::load(&repo_root(), name)?;
                let port = inv.resolve_port().map_err(anyhow::Error::msg)?;
                Ok((port, Some(inv)))
            }
            (None, None) => Ok((crate::flasher::detect_port(true)?, None)),
        }
    }
}

/// The repository (features/, fixtures/): the workspace hil was built in, else the current directory.
pub fn repo_root() -> PathBuf {
    let compiled = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    if compiled.join("features").exists() {
        compiled
    } else {
        PathBuf::from(".")
    }
}

/// Whether `path` is the workspace hil was built from (so it may build the board program there).
pub fn is_workspace(path: &Path) -> bool {
    path.join("Cargo.toml").exists() && path.join("firmware/host/Cargo.toml").exists()
}

/// Subscribes to `filters`, optionally publishes `(topic, payload)`, then records for `secs`.
pub(crate) async fn listen(
    target: &BrokerTarget,
    filters: Vec<String>,
    secs: f64,
    publish: Option<(String, &[u8])>,
) -> anyhow::Result<crate::observer::Observer> {
    target.check_reachable().await?;
    let obs = crate::observer::Observer::connect(target, &filters).await?;
    if let Some((topic, payload)) = publish {
        obs.publish(&topic, payload, false).await?;
    }
    tokio::time::sleep(std::time::Duration::from_secs_f64(secs)).await;
    Ok(obs)
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

/// Turns on library logging when `HIL_LOG` asks for it.
pub fn init_log() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Probe {
        #[command(flatten)]
        broker: BrokerArgs,
    }

    fn probe(args: &[&str]) -> Result<BrokerArgs, clap::Error> {
        Probe::try_parse_from(std::iter::once("hil").chain(args.iter().copied())).map(|p| p.broker)
    }

    #[test]
    fn options_override_the_uri_and_passwords_come_from_the_environment() {
        let a = probe(&["--broker", "mqtt://u:p@h:1"]).unwrap();
        let t = a.target().unwrap().unwrap();
        assert_eq!(
            (t.username.as_deref(), t.password.as_deref()),
            (Some("u"), Some("p"))
        );

        std::env::set_var("HIL_TEST_BROKER_PW", "from-env");
        let a = probe(&[
            "--broker",
            "mqtt://u:p@h:1",
            "--username",
            "other",
            "--password-env",
            "HIL_TEST_BROKER_PW",
        ])
        .unwrap();
        let t = a.target().unwrap().unwrap();
        assert_eq!(
            (t.username.as_deref(), t.password.as_deref()),
            (Some("other"), Some("from-env"))
        );

        let a = probe(&[
            "--broker",
            "mqtt://h",
            "--password-env",
            "HIL_TEST_NO_SUCH_VAR",
        ])
        .unwrap();
        let e = a.target().unwrap_err().to_string();
        assert!(e.contains("HIL_TEST_NO_SUCH_VAR"), "{e}");
        assert!(probe(&["--password", "x", "--password-env", "Y"]).is_err());
        assert!(
            probe(&["--client-cert", "c.pem"]).is_err(),
            "a certificate needs its key"
        );
        assert!(probe(&[]).unwrap().required("tree").is_err());
    }
}
