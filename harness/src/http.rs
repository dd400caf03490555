//! The rig's HTTP client: one request per connection, enough for a board's web interface and WebDriver.

use std::time::Duration;

use anyhow::{Context, Result};

/// A minimal HTTP/1.1 exchange: (status, body). Reads the body by Content-Length (servers may keep the
/// connection open), or to the end when there is none.
pub fn request(addr: &str, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut s = std::net::TcpStream::connect(addr).with_context(|| format!("HTTP {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(s);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut length: Option<usize> = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok();
            }
        }
    }
    let mut buf = Vec::new();
    match length {
        Some(n) => {
            buf.resize(n, 0);
            reader.read_exact(&mut buf)?;
        }
        None => {
            reader.read_to_end(&mut buf)?;
        }
    }
    Ok((status, String::from_utf8_lossy(&buf).into_owned()))
}
