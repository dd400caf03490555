//! HTTP/1.1 requests as the web interface and REST API receive them (request line, headers, a Content-Length body)
//! and responses with `Connection: close`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Vec<u8>,
}

/// Why a request cannot be served (the status to answer with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// 400
    Malformed(&'static str),
    /// 431
    HeadersTooLarge,
    /// 413
    BodyTooLarge(usize),
}

impl core::fmt::Display for RequestError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RequestError::Malformed(what) => write!(f, "malformed request: {what}"),
            RequestError::HeadersTooLarge => write!(f, "headers too large"),
            RequestError::BodyTooLarge(n) => write!(f, "a body of {n} bytes is too large"),
        }
    }
}

impl RequestError {
    pub fn status(self) -> u16 {
        match self {
            RequestError::Malformed(_) => 400,
            RequestError::HeadersTooLarge => 431,
            RequestError::BodyTooLarge(_) => 413,
        }
    }
}

/// Parses a request from the bytes received so far: `Ok(None)` until it is complete.
pub fn parse(
    buf: &[u8],
    max_headers: usize,
    max_body: usize,
) -> Result<Option<Request>, RequestError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > max_headers {
            Err(RequestError::HeadersTooLarge)
        } else {
            Ok(None)
        };
    };
    // Also when the whole head came in one read.
    if end + 4 > max_headers {
        return Err(RequestError::HeadersTooLarge);
    }
    let head = core::str::from_utf8(&buf[..end])
        .map_err(|_| RequestError::Malformed("headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::Malformed("bad request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(RequestError::Malformed("not HTTP/1.x"));
    }
    let mut length = 0usize;
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v
                    .trim()
                    .parse()
                    .map_err(|_| RequestError::Malformed("bad Content-Length"))?;
            }
        }
    }
    if length > max_body {
        return Err(RequestError::BodyTooLarge(length));
    }
    let body_start = end + 4;
    if buf.len() < body_start + length {
        return Ok(None);
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Some(Request {
        method: String::from(method),
        path: String::from(path),
        query: String::from(query),
        body: buf[body_start..body_start + length].to_vec(),
    }))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Request head and body limits of the firmware's web server, the same on every board (the ESP32-C3's RAM sets
/// them; a body this size holds a whole config document with certificates).
pub const MAX_HEAD: usize = 4 * 1024;
pub const MAX_BODY: usize = 16 * 1024;

/// An error answer as the REST API gives them: `{"error": "<message>"}`.
pub fn error_response(status: u16, message: &str) -> Vec<u8> {
    let mut body = String::from("{\"error\":\"");
    for c in message.chars() {
        match c {
            '"' => body.push_str("\\\""),
            '\\' => body.push_str("\\\\"),
            c if (c as u32) < 0x20 => body.push_str(&format!("\\u{:04x}", c as u32)),
            c => body.push(c),
        }
    }
    body.push_str("\"}");
    response(status, "application/json", body.as_bytes())
}

/// A complete response; the connection closes after it.
pub fn response(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = response_head(status, content_type, body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// The status line and headers of a response whose `length` body bytes follow. Nothing is cached: pages show the
/// device's live state; the connection closes after the body. Any page may call the API, as the reference allows
/// (`Access-Control-Allow-Origin: *` on its REST handlers).
pub fn response_head(status: u16, content_type: &str, length: usize) -> String {
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\nAccess-Control-Allow-Origin: *\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        reason(status)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_body_then_splits_path_and_query() {
        let req = b"POST /api/config?x=1 HTTP/1.1\r\nHost: a\r\ncontent-length: 4\r\n\r\n{\"a\"";
        assert_eq!(parse(&req[..30], 1024, 1024), Ok(None));
        assert_eq!(parse(&req[..req.len() - 1], 1024, 1024), Ok(None));
        let r = parse(req, 1024, 1024).unwrap().unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.query.as_str()),
            ("POST", "/api/config", "x=1")
        );
        assert_eq!(r.body, b"{\"a\"");
    }

    #[test]
    fn refuses_what_it_cannot_serve() {
        assert_eq!(
            parse(&[b'x'; 2000], 1024, 1024),
            Err(RequestError::HeadersTooLarge)
        );
        let whole_head = [b"GET /".as_slice(), &[b'a'; 1100], b" HTTP/1.1\r\n\r\n"].concat();
        assert_eq!(
            parse(&whole_head, 1024, 1024),
            Err(RequestError::HeadersTooLarge)
        );
        let big = b"POST / HTTP/1.1\r\nContent-Length: 99999\r\n\r\n";
        assert_eq!(
            parse(big, 1024, 1024).map_err(RequestError::status),
            Err(413)
        );
        assert_eq!(
            parse(b"GARBAGE\r\n\r\n", 1024, 1024).map_err(RequestError::status),
            Err(400)
        );
        let r = error_response(400, "malformed request: \"x\"\n");
        assert!(r.ends_with(b"\r\n\r\n{\"error\":\"malformed request: \\\"x\\\"\\u000a\"}"));
        assert!(r.starts_with(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"));
        let r = response(404, "application/json", b"{}");
        assert!(r.starts_with(b"HTTP/1.1 404 Not Found\r\n"));
        assert!(r.ends_with(
            b"Content-Length: 2\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{}"
        ));
    }
}
