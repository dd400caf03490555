//! How the virtual board reaches a broker: tokio TCP (TLS with rustls for `mqtts://`), adapted to
//! `embedded-io-async` for the shared MQTT driver (`meter_shell::mqtt`), which the ESP32-C3 runs over embassy-net.

use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use embedded_io_adapters::tokio_1::FromTokio;
use meter_core::MqttSettings;
use meter_shell::mqtt::Network;
use meter_shell::Clock;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

/// A byte stream to the broker, plain or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Stream for T {}

/// The board's network: the host's.
pub struct HostNet;

impl Network for HostNet {
    type Conn<'a> = FromTokio<Box<dyn Stream>>;

    async fn connect<'a>(&'a mut self, s: &MqttSettings) -> Result<Self::Conn<'a>, String> {
        open(s)
            .await
            .map(FromTokio::new)
            .map_err(|e| format!("{e:#}"))
    }
}

async fn open(s: &MqttSettings) -> Result<Box<dyn Stream>> {
    let tls = match s.tls {
        true => Some(TlsConnector::from(Arc::new(tls_config(s)?))),
        false => None,
    };
    let tcp = TcpStream::connect((s.host.as_str(), s.port))
        .await
        .with_context(|| format!("cannot connect to {}:{}", s.host, s.port))?;
    // Small control messages must not wait for Nagle + delayed ACK (~40 ms each way on loopback).
    tcp.set_nodelay(true).context("TCP_NODELAY")?;
    let tcp = QuickAck::new(tcp);
    match tls {
        None => Ok(Box::new(tcp)),
        Some(tls) => {
            let name = rustls::pki_types::ServerName::try_from(s.host.clone())
                .with_context(|| format!("'{}' is not a valid TLS server name", s.host))?;
            let stream = tls
                .connect(name, tcp)
                .await
                .with_context(|| format!("TLS handshake with {}:{}", s.host, s.port))?;
            Ok(Box::new(stream))
        }
    }
}

/// A broker without TCP_NODELAY (Debian's mosquitto by default) sends a small packet only once the previous one is
/// acknowledged, and Linux delays ACKs up to 40 ms: every burst of PUBACKs to the board then stalls. The board
/// acknowledges at once instead: TCP_QUICKACK, re-armed after each read (the kernel drops out of quick-ACK mode by
/// itself).
struct QuickAck(TcpStream);

impl QuickAck {
    fn new(tcp: TcpStream) -> QuickAck {
        arm(&tcp);
        QuickAck(tcp)
    }
}

fn arm(tcp: &TcpStream) {
    let on: nix::libc::c_int = 1;
    // SAFETY: a valid socket descriptor (the stream owns it) and a c_int option value of the size given.
    let _ = unsafe {
        nix::libc::setsockopt(
            tcp.as_raw_fd(),
            nix::libc::IPPROTO_TCP,
            nix::libc::TCP_QUICKACK,
            std::ptr::from_ref(&on).cast(),
            std::mem::size_of_val(&on) as nix::libc::socklen_t,
        )
    };
}

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.0).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            arm(&self.0);
        }
        poll
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

fn tls_config(s: &MqttSettings) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    if s.ca_cert.trim().is_empty() {
        anyhow::bail!("mqtts:// needs a CA certificate in mqtt.tls.cacert (PEM)");
    }
    for cert in rustls_pemfile::certs(&mut s.ca_cert.as_bytes()) {
        roots
            .add(cert.context("mqtt.tls.cacert is not valid PEM")?)
            .context("mqtt.tls.cacert rejected")?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS setup")?
        .with_root_certificates(roots);
    if s.client_cert.trim().is_empty() {
        return Ok(builder.with_no_client_auth());
    }
    let certs: Vec<_> = rustls_pemfile::certs(&mut s.client_cert.as_bytes())
        .collect::<Result<_, _>>()
        .context("mqtt.tls.clientcert is not valid PEM")?;
    let key = rustls_pemfile::private_key(&mut s.client_key.as_bytes())
        .context("mqtt.tls.clientkey is not valid PEM")?
        .ok_or_else(|| anyhow!("mqtt.tls.clientkey holds no private key"))?;
    builder
        .with_client_auth_cert(certs, key)
        .context("client certificate rejected")
}

/// UDP for network time.
pub struct HostUdp;

impl meter_shell::time::Udp for HostUdp {
    async fn exchange(
        &mut self,
        host: &str,
        port: u16,
        request: &[u8],
        answer: &mut [u8],
    ) -> Result<usize, String> {
        let socket = tokio::net::UdpSocket::bind("0.0.0.0:0")
            .await
            .map_err(|e| format!("UDP: {e}"))?;
        socket
            .connect((host, port))
            .await
            .map_err(|e| format!("cannot reach {host}:{port}: {e}"))?;
        socket
            .send(request)
            .await
            .map_err(|e| format!("cannot send to {host}:{port}: {e}"))?;
        socket
            .recv(answer)
            .await
            .map_err(|e| format!("no answer from {host}:{port}: {e}"))
    }
}

/// The board's monotonic clock: milliseconds since the process started.
#[derive(Clone, Copy)]
pub struct HostClock {
    epoch: Instant,
}

impl HostClock {
    pub fn new() -> HostClock {
        HostClock {
            epoch: Instant::now(),
        }
    }
}

impl Clock for HostClock {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    async fn sleep_until(&self, ms: u64) {
        tokio::time::sleep_until(self.epoch + Duration::from_millis(ms)).await
    }
}
