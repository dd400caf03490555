//! Sockets that acknowledge what they receive at once.
//!
//! A broker without TCP_NODELAY (Debian's mosquitto in its default config, rumqttd) sends a small packet only when
//! the previous one is acknowledged (Nagle), and Linux delays an ACK up to 40 ms: a burst of publishes then takes
//! 40 ms per packet. Our side must not be the one that waits, so every socket the rig reads a broker from re-arms
//! TCP_QUICKACK after each read (the kernel leaves quick-ACK mode by itself). [`Link`] gives rumqttc, whose socket
//! the rig cannot reach, such a socket: a local plain-TCP endpoint that relays to the broker (doing the TLS itself).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::broker::BrokerTarget;

/// Asks the kernel to acknowledge the next segments at once.
pub fn arm(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
}

/// A TCP stream that re-arms TCP_QUICKACK after every read that returned data.
pub struct QuickAck {
    inner: TcpStream,
}

impl QuickAck {
    /// Wraps a connected stream (and arms it).
    pub fn new(inner: TcpStream) -> QuickAck {
        arm(&inner);
        QuickAck { inner }
    }
}

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            arm(&self.inner);
        }
        poll
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Connects to the broker with TCP_NODELAY and a quick-ACK socket.
pub async fn connect(target: &BrokerTarget) -> io::Result<QuickAck> {
    let tcp = TcpStream::connect((target.host.as_str(), target.port)).await?;
    tcp.set_nodelay(true)?;
    Ok(QuickAck::new(tcp))
}

/// A local endpoint (`127.0.0.1:port`, plain MQTT) that relays each connection to the broker over a quick-ACK
/// socket, with TLS when the broker wants it. Stops when dropped.
pub struct Link {
    port: u16,
    last_error: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Link {
    /// Listens on a free loopback port for connections to `target`.
    pub async fn start(target: &BrokerTarget) -> anyhow::Result<Link> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let tls = match &target.tls {
            Some(_) => {
                let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                    .map_err(|e| anyhow::anyhow!("'{}' as a TLS server name: {e}", target.host))?;
                let config = Arc::new(target.client_config()?);
                Some((tokio_rustls::TlsConnector::from(config), name))
            }
            None => None,
        };
        let last_error: Arc<Mutex<Option<String>>> = Arc::default();
        let (target, errors) = (target.clone(), last_error.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (target, tls, errors) = (target.clone(), tls.clone(), errors.clone());
                tokio::spawn(async move {
                    if let Err(e) = relay(client, &target, tls).await {
                        if let Ok(mut last) = errors.lock() {
                            *last = Some(e);
                        }
                    }
                });
            }
        });
        Ok(Link {
            port,
            last_error,
            task,
        })
    }

    /// The local port rumqttc connects to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Why the last connection to the broker failed (refused, TLS), if one did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Tls = Option<(
    tokio_rustls::TlsConnector,
    rustls::pki_types::ServerName<'static>,
)>;

async fn relay(mut client: TcpStream, target: &BrokerTarget, tls: Tls) -> Result<(), String> {
    let _ = client.set_nodelay(true);
    let upstream = connect(target)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", target.uri()))?;
    match tls {
        None => {
            let mut upstream = upstream;
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        Some((connector, name)) => {
            let mut upstream = connector
                .connect(name, upstream)
                .await
                .map_err(|e| format!("TLS handshake with {}: {e}", target.uri()))?;
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
    }
    Ok(())
}
