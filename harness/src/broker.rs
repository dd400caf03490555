//! The broker the rig runs scenarios on: an embedded rumqttd on 127.0.0.1 (default) or any external broker by URI,
//! and per-scenario "cables" ([`crate::cable`]) in front of it so one scenario can take the broker away from its board.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::net::{TcpListener, TcpStream};

use crate::quickack::QuickAck;

/// TLS to the broker: the CA that signed its certificate (PEM), and an optional client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
    pub ca_pem: String,
    pub client_cert_pem: Option<String>,
    pub client_key_pem: Option<String>,
}

/// Where a broker listens, and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerTarget {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: Option<Tls>,
}

/// A broker named wrongly on the command line or in a config.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker URI '{0}' must look like mqtt://[user[:password]@]host[:port] or mqtts://...")]
    Scheme(String),
    #[error("broker URI '{uri}': {problem}")]
    Uri { uri: String, problem: String },
    #[error("--ca-file given, but the broker URI is not mqtts://")]
    CaWithoutTls,
    #[error("mqtts:// needs --ca-file (the CA that signed the broker's certificate)")]
    TlsWithoutCa,
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("--password-env {0}: no such environment variable (export it, or pass the password another way)")]
    PasswordEnv(String),
}

/// `%XX` escapes in a URI's user info (as mosquitto's clients accept them).
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A URI as it may be shown: a password in it replaced by `***`.
fn redacted(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(s), Some(at)) if at > s => match uri[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &uri[..s + 3], &uri[at..]),
            None => uri.to_string(),
        },
        _ => uri.to_string(),
    }
}

impl BrokerTarget {
    /// `mqtt://[user[:password]@]host[:port]` or `mqtts://...` (then add the CA with
    /// [`BrokerTarget::with_tls_files`]); user and password may be `%`-escaped.
    pub fn parse(uri: &str) -> Result<BrokerTarget, BrokerError> {
        let (tls, rest) = if let Some(r) = uri.strip_prefix("mqtt://") {
            (false, r)
        } else if let Some(r) = uri.strip_prefix("mqtts://") {
            (true, r)
        } else {
            return Err(BrokerError::Scheme(uri.to_string()));
        };
        let bad = |problem: String| BrokerError::Uri {
            uri: redacted(uri),
            problem,
        };
        let rest = rest.trim_end_matches('/');
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((u, r)) => (Some(u), r),
            None => (None, rest),
        };
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| bad(format!("port '{p}' is not a number")))?,
            ),
            None => (rest, if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() {
            return Err(bad("no host".into()));
        }
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (u, p) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                let decode = |s: &str| {
                    percent_decode(s).ok_or_else(|| bad("a bad %-escape in the user info".into()))
                };
                (Some(decode(u)?), p.map(decode).transpose()?)
            }
        };
        let tls = tls.then(Tls::default);
        Ok(BrokerTarget {
            host: host.to_string(),
            port,
            username,
            password,
            tls,
        })
    }

    /// Reads the CA (and client certificate / key) files for an `mqtts://` broker.
    pub fn with_tls_files(
        mut self,
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<BrokerTarget, BrokerError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| BrokerError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        match (&mut self.tls, ca) {
            (None, Some(_)) => return Err(BrokerError::CaWithoutTls),
            (Some(_), None) => return Err(BrokerError::TlsWithoutCa),
            (Some(tls), Some(ca)) => {
                tls.ca_pem = read(ca)?;
                tls.client_cert_pem = cert.map(read).transpose()?;
                tls.client_key_pem = key.map(read).transpose()?;
            }
            (None, None) => {}
        }
        Ok(self)
    }

    /// The `mqtt` config section a board needs to reach this broker at `uri` (its own cable, or the broker itself):
    /// the URI, credentials, and the CA and client certificate for TLS.
    pub fn board_settings(&self, uri: &str) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::json;
        let mut m = serde_json::Map::new();
        m.insert("uri".into(), json!(uri));
        if let (Some(u), Some(p)) = (&self.username, &self.password) {
            m.insert("authmode".into(), json!(1));
            m.insert("username".into(), json!(u));
            m.insert("password".into(), json!(p));
        }
        if let Some(tls) = &self.tls {
            m.insert(
                "tls".into(),
                json!({
                    "cacert": tls.ca_pem,
                    "clientcert": tls.client_cert_pem.clone().unwrap_or_default(),
                    "clientkey": tls.client_key_pem.clone().unwrap_or_default(),
                }),
            );
        }
        m
    }

    /// The URI with the user name but never the password: for logs, reports and JUnit properties.
    pub fn describe(&self) -> String {
        match &self.username {
            Some(u) => format!("{}://{u}@{}:{}", self.scheme(), self.host, self.port),
            None => self.uri(),
        }
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "mqtts"
        } else {
            "mqtt"
        }
    }

    pub fn uri(&self) -> String {
        format!("{}://{}:{}", self.scheme(), self.host, self.port)
    }

    /// The rustls client configuration for this `mqtts://` broker: its CA, and the client certificate if given.
    pub fn client_config(&self) -> Result<rustls::ClientConfig> {
        let tls = self
            .tls
            .as_ref()
            .ok_or_else(|| anyhow!("{} is not an mqtts:// broker", self.uri()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut tls.ca_pem.as_bytes()) {
            roots
                .add(cert.context("CA file is not valid PEM")?)
                .context("CA certificate rejected")?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        Ok(match (&tls.client_cert_pem, &tls.client_key_pem) {
            (Some(cert), Some(key)) => {
                let certs: Vec<_> =
                    rustls_pemfile::certs(&mut cert.as_bytes()).collect::<Result<_, _>>()?;
                let key = rustls_pemfile::private_key(&mut key.as_bytes())?
                    .ok_or_else(|| anyhow!("no private key"))?;
                builder.with_client_auth_cert(certs, key)?
            }
            _ => builder.with_no_client_auth(),
        })
    }

    /// Fails with the URI and the OS error when nothing answers.
    pub async fn check_reachable(&self) -> Result<()> {
        let addr = format!("{}:{}", self.host, self.port);
        match tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(&addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => bail!(
                "broker {} is unreachable: {e} (is it running? try `hil broker`)",
                self.uri()
            ),
            Err(_) => bail!("broker {} did not answer within 3 s", self.uri()),
        }
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts rumqttd in this process (MQTT 3.1.1, anonymous, 1 MiB payloads), reached on `listen` (port 0 picks a
/// free port). rumqttd's own loopback port is picked free too; should another process take it first, it tries again.
pub fn start_embedded(listen: SocketAddr) -> Result<BrokerTarget> {
    start_embedded_with_login(listen, None)
}

/// [`start_embedded`], admitting only `login` (user, password) when given: rumqttd checks it, and refuses
/// anything else. The target carries the login, so the rig's own clients use it.
pub fn start_embedded_with_login(
    listen: SocketAddr,
    login: Option<(String, String)>,
) -> Result<BrokerTarget> {
    let attempts = 3;
    let mut last = None;
    for _ in 0..attempts {
        match start_embedded_once(listen, login.clone()) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("embedded broker did not start")))
}

fn start_embedded_once(
    listen: SocketAddr,
    login: Option<(String, String)>,
) -> Result<BrokerTarget> {
    use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};
    // Clients reach rumqttd through the relay on the address asked for; rumqttd itself listens on loopback.
    let front = StdListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    let port = front.local_addr()?.port();
    let addr = SocketAddr::new("127.0.0.1".parse()?, free_port()?);
    let connections = ConnectionSettings {
        connection_timeout_ms: 5000,
        max_payload_size: 1024 * 1024,
        max_inflight_count: 500,
        auth: login
            .clone()
            .map(|(user, password)| HashMap::from([(user, password)])),
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "v4".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_000,
            max_outgoing_packet_count: 5000,
            max_segment_size: 64 * 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("v4".to_string(), server)])),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                eprintln!("embedded broker stopped: {e}");
            }
        })?;
    // Ready when it accepts connections.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(addr).is_err() {
        if std::time::Instant::now() > deadline {
            bail!("embedded broker did not start listening on {addr}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    start_relay(front, addr)?;
    let (username, password) = login.unzip();
    Ok(BrokerTarget {
        host: listen.ip().to_string(),
        port,
        username,
        password,
        tls: None,
    })
}

/// rumqttd sets no TCP_NODELAY: a burst of small publishes to one client then waits, segment by segment, for that
/// client's delayed ACK (~40 ms on Linux). Clients reach it through this relay, which acknowledges what rumqttd
/// sends at once ([`QuickAck`]), so a round trip takes a millisecond or two, as on mosquitto.
fn start_relay(front: StdListener, broker: SocketAddr) -> Result<()> {
    front.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("broker relay runtime")?;
    std::thread::Builder::new()
        .name("broker-relay".into())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(front) = TcpListener::from_std(front) else {
                    return;
                };
                while let Ok((client, _)) = front.accept().await {
                    tokio::spawn(relay(client, broker));
                }
            })
        })?;
    Ok(())
}

async fn relay(mut client: TcpStream, broker: SocketAddr) {
    let Ok(server) = TcpStream::connect(broker).await else {
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    // A client's FIN (or reset) reaches the broker as a FIN: its will goes out as for a direct client.
    let _ = tokio::io::copy_bidirectional(&mut client, &mut QuickAck::new(server)).await;
}

/// The per-board cable lives in [`crate::cable`]; steps and the world reach it here too.
pub use crate::cable::Cable;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uris() {
        assert_eq!(BrokerTarget::parse("mqtt://h:1884").unwrap().port, 1884);
        assert_eq!(BrokerTarget::parse("mqtt://h").unwrap().port, 1883);
        assert!(BrokerTarget::parse("tcp://h")
            .unwrap_err()
            .to_string()
            .contains("mqtt://[user[:password]@]host[:port]"));
        assert!(BrokerTarget::parse("mqtt://h:x").is_err());
        assert!(BrokerTarget::parse("mqtt://:1").is_err());
    }

    #[test]
    fn uris_carry_user_and_password_as_mosquitto_clients_take_them() {
        let t = BrokerTarget::parse("mqtts://hil:s%40cret:x@broker.lan:8884/").unwrap();
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.username.as_deref(),
                t.password.as_deref()
            ),
            ("broker.lan", 8884, Some("hil"), Some("s@cret:x"))
        );
        assert!(t.tls.is_some());
        // Shown without the password.
        assert_eq!(t.describe(), "mqtts://hil@broker.lan:8884");
        assert_eq!(t.uri(), "mqtts://broker.lan:8884");
        let u = BrokerTarget::parse("mqtt://only-user@h").unwrap();
        assert_eq!(
            (u.username.as_deref(), u.password),
            (Some("only-user"), None)
        );
        // A bad escape is refused, and the error does not repeat the password.
        let e = BrokerTarget::parse("mqtt://u:pa%zzss@h:x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("u:***@h:x") && !e.contains("pa%zz"), "{e}");
    }

    #[test]
    fn tls_uris_need_a_ca() {
        let t = BrokerTarget::parse("mqtts://broker").unwrap();
        assert_eq!((t.port, t.uri()), (8883, "mqtts://broker:8883".to_string()));
        assert!(t
            .clone()
            .with_tls_files(None, None, None)
            .unwrap_err()
            .to_string()
            .contains("--ca-file"));
        let plain = BrokerTarget::parse("mqtt://h").unwrap();
        assert!(plain
            .with_tls_files(Some(Path::new("ca.pem")), None, None)
            .unwrap_err()
            .to_string()
            .contains("not mqtts"));
        let missing = t
            .with_tls_files(Some(Path::new("/nonexistent/ca.pem")), None, None)
            .unwrap_err();
        assert!(format!("{missing:#}").contains("/nonexistent/ca.pem"));
    }

    #[tokio::test]
    async fn unreachable_broker_names_uri_and_error() {
        let port = free_port().unwrap();
        let e = BrokerTarget::parse(&format!("mqtt://127.0.0.1:{port}"))
            .unwrap()
            .check_reachable()
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&format!("mqtt://127.0.0.1:{port}")) && text.contains("refused"),
            "{text}"
        );
    }
}
