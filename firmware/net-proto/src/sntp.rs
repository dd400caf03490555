//! SNTP (RFC 4330) as a client needs it: a request, and the clock offset from the server's reply.
//!
//! Times are unix milliseconds of the client's own clock (which may be far off: an unset clock starts at 1970).
//! The reply must echo the request's transmit time, so a stray or spoofed packet is not taken for the answer.

/// The NTP port.
pub const PORT: u16 = 123;
/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
const UNIX_EPOCH_NTP: u64 = 2_208_988_800;

/// Why a reply is not a usable time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SntpError {
    /// Shorter than the 48 bytes of an NTP header.
    Short(usize),
    /// Not a server's answer (mode 4) of version 3 or 4.
    NotAServerReply,
    /// The server says it has no time to give (stratum 0, kiss code such as `RATE` or `DENY`).
    KissOfDeath([u8; 4]),
    /// The server is not synchronized itself (leap indicator 3, or stratum above 15).
    Unsynchronized,
    /// The reply does not answer our request (its originate time is not our transmit time).
    NotOurs,
    /// Transmit time zero.
    NoTime,
}

impl core::fmt::Display for SntpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SntpError::Short(n) => write!(f, "reply of {n} bytes (an NTP reply has 48)"),
            SntpError::NotAServerReply => f.write_str("not an NTP server reply"),
            SntpError::KissOfDeath(code) => write!(
                f,
                "the server refuses (kiss code {})",
                core::str::from_utf8(code).unwrap_or("?")
            ),
            SntpError::Unsynchronized => f.write_str("the server is not synchronized"),
            SntpError::NotOurs => f.write_str("the reply does not answer the request"),
            SntpError::NoTime => f.write_str("the reply carries no time"),
        }
    }
}

/// What a reply says about the client's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Add this to the client's clock to get the server's time.
    pub offset_ms: i64,
    /// The round trip, less the server's own processing time.
    pub delay_ms: i64,
}

/// An NTP timestamp (seconds since 1900 in 32.32 fixed point) for a unix time in milliseconds.
fn to_ntp(unix_ms: u64) -> u64 {
    let secs = unix_ms / 1000 + UNIX_EPOCH_NTP;
    // Rounded up, so converting back (rounding down) gives the same millisecond.
    let frac = ((unix_ms % 1000) << 32).div_ceil(1000);
    ((secs & 0xFFFF_FFFF) << 32) | frac
}

/// A unix time in milliseconds for an NTP timestamp. Seconds below 2^31 are taken as era 1 (from 2036 on).
fn to_unix_ms(ntp: u64) -> i64 {
    let mut secs = ntp >> 32;
    if secs < 0x8000_0000 {
        secs += 1 << 32;
    }
    let ms = ((ntp & 0xFFFF_FFFF) * 1000) >> 32;
    (secs as i64 - UNIX_EPOCH_NTP as i64) * 1000 + ms as i64
}

fn timestamp_at(bytes: &[u8], at: usize) -> u64 {
    let mut t = [0u8; 8];
    t.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(t)
}

/// A client request (version 4, mode 3) sent at `now_unix_ms` of the client's clock.
pub fn request(now_unix_ms: u64) -> [u8; 48] {
    let mut packet = [0u8; 48];
    packet[0] = (4 << 3) | 3;
    packet[40..48].copy_from_slice(&to_ntp(now_unix_ms).to_be_bytes());
    packet
}

/// The clock offset a reply gives, for a request sent at `sent_unix_ms` and this reply received at
/// `received_unix_ms` (both of the client's clock).
pub fn parse(reply: &[u8], sent_unix_ms: u64, received_unix_ms: u64) -> Result<Sample, SntpError> {
    if reply.len() < 48 {
        return Err(SntpError::Short(reply.len()));
    }
    let (leap, version, mode) = (reply[0] >> 6, (reply[0] >> 3) & 7, reply[0] & 7);
    if mode != 4 || !(3..=4).contains(&version) {
        return Err(SntpError::NotAServerReply);
    }
    let stratum = reply[1];
    if stratum == 0 {
        let mut code = [0u8; 4];
        code.copy_from_slice(&reply[12..16]);
        return Err(SntpError::KissOfDeath(code));
    }
    if leap == 3 || stratum > 15 {
        return Err(SntpError::Unsynchronized);
    }
    if timestamp_at(reply, 24) != to_ntp(sent_unix_ms) {
        return Err(SntpError::NotOurs);
    }
    let (server_received, server_sent) = (timestamp_at(reply, 32), timestamp_at(reply, 40));
    if server_sent == 0 {
        return Err(SntpError::NoTime);
    }
    let (t1, t4) = (sent_unix_ms as i64, received_unix_ms as i64);
    let (t2, t3) = (to_unix_ms(server_received), to_unix_ms(server_sent));
    Ok(Sample {
        offset_ms: ((t2 - t1) + (t3 - t4)) / 2,
        delay_ms: (t4 - t1) - (t3 - t2),
    })
}

/// A server's reply to `request` (for tests and the rig's own server): it received it at `received_unix_ms` and
/// answers at `sent_unix_ms` of its clock, as stratum `stratum`.
pub fn reply(request: &[u8], received_unix_ms: u64, sent_unix_ms: u64, stratum: u8) -> [u8; 48] {
    let mut packet = [0u8; 48];
    packet[0] = (4 << 3) | 4;
    packet[1] = stratum;
    packet[2] = 6;
    packet[3] = 0xEC;
    if request.len() >= 48 {
        packet[24..32].copy_from_slice(&request[40..48]);
    }
    packet[32..40].copy_from_slice(&to_ntp(received_unix_ms).to_be_bytes());
    packet[40..48].copy_from_slice(&to_ntp(sent_unix_ms).to_be_bytes());
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-02-02T15:59:24.250Z.
    const SERVER: u64 = 1_706_889_564_250;

    #[test]
    fn an_unset_clock_learns_the_servers_time() {
        // The client thinks it is 1970 + 5 s; the network takes 20 ms each way, the server 1 ms.
        let sent = 5_000;
        let req = request(sent);
        assert_eq!(req[0], 0x23, "version 4, client");
        let answer = reply(&req, SERVER + 20, SERVER + 21, 2);
        let sample = parse(&answer, sent, sent + 41).unwrap();
        assert_eq!(sample.delay_ms, 40);
        // The server's time at reception: its transmit time plus the way back.
        assert_eq!(
            (sent + 41) as i64 + sample.offset_ms,
            (SERVER + 21 + 20) as i64
        );
    }

    #[test]
    fn timestamps_round_trip_to_the_millisecond_across_the_2036_era_change() {
        for unix in [
            0u64,
            SERVER,
            2_085_978_495_999,
            2_085_978_496_000,
            4_000_000_000_123,
        ] {
            assert_eq!(to_unix_ms(to_ntp(unix)), unix as i64, "{unix}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_answer_to_this_request() {
        let req = request(1_000);
        assert_eq!(parse(&[0; 10], 1_000, 1_001), Err(SntpError::Short(10)));
        let mut client = reply(&req, SERVER, SERVER, 1);
        client[0] = (4 << 3) | 3;
        assert_eq!(
            parse(&client, 1_000, 1_001),
            Err(SntpError::NotAServerReply)
        );
        let mut kiss = reply(&req, SERVER, SERVER, 0);
        kiss[12..16].copy_from_slice(b"RATE");
        assert_eq!(
            parse(&kiss, 1_000, 1_001),
            Err(SntpError::KissOfDeath(*b"RATE"))
        );
        let mut unsynced = reply(&req, SERVER, SERVER, 1);
        unsynced[0] |= 0xC0;
        assert_eq!(
            parse(&unsynced, 1_000, 1_001),
            Err(SntpError::Unsynchronized)
        );
        let other = reply(&request(2_000), SERVER, SERVER, 1);
        assert_eq!(parse(&other, 1_000, 1_001), Err(SntpError::NotOurs));
    }
}
