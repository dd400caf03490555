//! The broker the rig runs scenarios on: an embedded rumqttd on 127.0.0.1 (default) or any external broker by URI,
//! and per-scenario "cables" in front of it so one scenario can take the broker away from its board.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::net::{TcpListener, TcpStream};

/// Where a broker listens, and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerTarget {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl BrokerTarget {
    /// `mqtt://host[:port]` (TLS brokers: give their plain port or a local TLS proxy).
    pub fn parse(uri: &str) -> Result<BrokerTarget> {
        let rest = uri.strip_prefix("mqtt://").ok_or_else(|| {
            anyhow!("broker URI '{uri}' must look like mqtt://host:port (mqtts:// is not supported by the rig yet)")
        })?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| anyhow!("broker URI '{uri}': port '{p}' is not a number"))?,
            ),
            None => (rest, 1883),
        };
        if host.is_empty() {
            bail!("broker URI '{uri}' has no host");
        }
        Ok(BrokerTarget {
            host: host.to_string(),
            port,
            username: None,
            password: None,
        })
    }

    pub fn uri(&self) -> String {
        format!("mqtt://{}:{}", self.host, self.port)
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

/// Starts rumqttd in this process (MQTT 3.1.1, anonymous, 1 MiB payloads). Port 0 picks a free port.
pub fn start_embedded(listen: SocketAddr) -> Result<BrokerTarget> {
    use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};
    let port = if listen.port() == 0 {
        free_port()?
    } else {
        listen.port()
    };
    let addr = SocketAddr::new(listen.ip(), port);
    // Fail early and clearly when the address is taken (rumqttd would only log it).
    drop(StdListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?);
    let connections = ConnectionSettings {
        connection_timeout_ms: 5000,
        max_payload_size: 1024 * 1024,
        max_inflight_count: 500,
        auth: None,
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
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(addr).is_err() {
        if std::time::Instant::now() > deadline {
            bail!("embedded broker did not start listening on {addr}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(BrokerTarget {
        host: addr.ip().to_string(),
        port,
        username: None,
        password: None,
    })
}

/// A TCP pass-through between one board and the broker: `cut` drops its connections and refuses new ones, which
/// is what a board sees when its broker restarts.
pub struct Cable {
    pub port: u16,
    down: Arc<AtomicBool>,
    epoch: Arc<AtomicU32>,
}

impl Cable {
    pub async fn start(target: &BrokerTarget) -> Result<Cable> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let down = Arc::new(AtomicBool::new(false));
        let epoch = Arc::new(AtomicU32::new(0));
        let (d, e) = (down.clone(), epoch.clone());
        let upstream = format!("{}:{}", target.host, target.port);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if d.load(Ordering::SeqCst) {
                    continue;
                }
                let (d, e, upstream) = (d.clone(), e.clone(), upstream.clone());
                let born = e.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let _ = (client.set_nodelay(true), server.set_nodelay(true));
                    let pump = tokio::io::copy_bidirectional(&mut client, &mut server);
                    let watch = async {
                        while !d.load(Ordering::SeqCst) && e.load(Ordering::SeqCst) == born {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    };
                    tokio::select! { _ = pump => {}, _ = watch => {} }
                });
            }
        });
        Ok(Cable { port, down, epoch })
    }

    pub fn uri(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn set_down(&self, down: bool) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.down.store(down, Ordering::SeqCst);
    }
}

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
            .contains("mqtt://host:port"));
        assert!(BrokerTarget::parse("mqtt://h:x").is_err());
        assert!(BrokerTarget::parse("mqtt://:1").is_err());
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
