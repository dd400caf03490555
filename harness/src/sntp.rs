//! A small SNTP server (RFC 4330) for the boards under test: the rig knows what time it is, so it can give the
//! boards their network time and then check every timestamp they publish against its own clock. Built from the RFC,
//! not from the firmware's client (the rig is an independent oracle).
//!
//! `pause()` makes it go silent (a board that never gets its time), `resume()` answers again; `tell_time_as_of()`
//! makes it tell another time (a date around a daylight saving change, say), running on from there.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// Seconds from the NTP epoch (1900) to the unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A running server; it stops when dropped.
pub struct SntpServer {
    addr: SocketAddr,
    silent: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// Seconds the time it tells is ahead of the rig's clock (negative: behind).
    shift: Arc<AtomicI64>,
    /// How long it holds each answer back (a slow network).
    delay_ms: Arc<AtomicU64>,
}

/// The rig's clock as an NTP timestamp, `shift` seconds on.
fn ntp_now(shift: i64) -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = (d.as_secs() as i64 + shift + NTP_UNIX_OFFSET as i64) as u64;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    ((secs & 0xFFFF_FFFF) << 32) | frac
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The answer to one request: mode 4 (server), stratum 1, the request's transmit time as originate time, our
/// receive and transmit times. `None` for what is not a client request.
pub fn answer(request: &[u8], received: u64, transmitted: u64) -> Option<[u8; 48]> {
    if request.len() < 48 || request[0] & 7 != 3 {
        return None;
    }
    let version = (request[0] >> 3) & 7;
    let mut out = [0u8; 48];
    out[0] = (version.clamp(3, 4) << 3) | 4;
    out[1] = 1;
    out[2] = request[2];
    out[3] = 0xE9;
    out[12..16].copy_from_slice(b"HIL\0");
    out[16..24].copy_from_slice(&received.to_be_bytes());
    out[24..32].copy_from_slice(&request[40..48]);
    out[32..40].copy_from_slice(&received.to_be_bytes());
    out[40..48].copy_from_slice(&transmitted.to_be_bytes());
    Some(out)
}

impl SntpServer {
    /// Binds `127.0.0.1` on a free port and answers on a thread.
    pub fn start() -> Result<SntpServer> {
        SntpServer::start_on(std::net::Ipv4Addr::LOCALHOST.into())
    }

    /// Binds `ip` (an address the board reaches) on a free port and answers on a thread.
    pub fn start_on(ip: std::net::IpAddr) -> Result<SntpServer> {
        let socket = UdpSocket::bind((ip, 0))
            .with_context(|| format!("cannot bind the SNTP server on {ip}"))?;
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .context("SNTP socket timeout")?;
        let addr = socket.local_addr()?;
        let (silent, answered, stop) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let shift = Arc::new(AtomicI64::new(0));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (s, a, st, sh, dl) = (
            silent.clone(),
            answered.clone(),
            stop.clone(),
            shift.clone(),
            delay_ms.clone(),
        );
        std::thread::Builder::new()
            .name("hil-sntp".into())
            .spawn(move || {
                let mut buf = [0u8; 512];
                while !st.load(Ordering::Relaxed) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    let received = ntp_now(sh.load(Ordering::Relaxed));
                    if s.load(Ordering::Relaxed) {
                        continue;
                    }
                    let delay = dl.load(Ordering::Relaxed);
                    if delay > 0 {
                        std::thread::sleep(Duration::from_millis(delay));
                    }
                    if let Some(reply) =
                        answer(&buf[..n], received, ntp_now(sh.load(Ordering::Relaxed)))
                    {
                        // Counted before it leaves: a client that has its answer must see it counted.
                        a.fetch_add(1, Ordering::Relaxed);
                        if socket.send_to(&reply, from).is_err() {
                            a.fetch_sub(1, Ordering::Relaxed);
                        }
                    }
                }
            })
            .context("cannot start the SNTP server")?;
        Ok(SntpServer {
            addr,
            silent,
            answered,
            stop,
            shift,
            delay_ms,
        })
    }

    /// Holds every answer back this long (0: answers at once).
    pub fn delay_answers(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::Relaxed);
    }

    /// From now on tells the time as if it were `unix` now (seconds since 1970 UTC), running on from there.
    pub fn tell_time_as_of(&self, unix: i64) {
        self.shift.store(unix - unix_now(), Ordering::Relaxed);
    }

    /// The time it tells now, in seconds since 1970 UTC.
    pub fn now_unix(&self) -> i64 {
        unix_now() + self.shift.load(Ordering::Relaxed)
    }

    /// `host:port`, as a board's `network.time.ntp.timeserver`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Stops answering (a time server out of reach).
    pub fn pause(&self) {
        self.silent.store(true, Ordering::Relaxed);
    }

    pub fn resume(&self) {
        self.silent.store(false, Ordering::Relaxed);
    }

    /// Whether it answers, and without holding answers back.
    pub fn answers_at_once(&self) -> bool {
        !self.silent.load(Ordering::Relaxed) && self.delay_ms.load(Ordering::Relaxed) == 0
    }

    /// Requests answered so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }
}

impl Drop for SntpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client request as RFC 4330 section 5 describes it, written here from the RFC.
    fn request(transmit: u64) -> [u8; 48] {
        let mut r = [0u8; 48];
        r[0] = (4 << 3) | 3;
        r[40..48].copy_from_slice(&transmit.to_be_bytes());
        r
    }

    #[test]
    fn answers_a_client_with_its_own_transmit_time_and_the_time_now() {
        let server = SntpServer::start().unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let marker = 0x0123_4567_89AB_CDEF;
        client.send_to(&request(marker), server.address()).unwrap();
        let mut buf = [0u8; 64];
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(n, 48);
        assert_eq!(buf[0] & 7, 4, "mode server");
        assert_eq!(buf[1], 1, "stratum 1");
        assert_eq!(u64::from_be_bytes(buf[24..32].try_into().unwrap()), marker);
        let sent = u64::from_be_bytes(buf[40..48].try_into().unwrap()) >> 32;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + NTP_UNIX_OFFSET;
        assert!(sent.abs_diff(now) <= 1, "{sent} vs {now}");
        assert_eq!(server.answered(), 1);

        server.pause();
        client
            .set_read_timeout(Some(Duration::from_millis(400)))
            .unwrap();
        client.send_to(&request(marker), server.address()).unwrap();
        assert!(client.recv(&mut buf).is_err(), "paused: no answer");
        assert!(
            answer(&[0u8; 48], 0, 0).is_none(),
            "mode 0 is not a request"
        );
    }
}
