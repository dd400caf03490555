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
    /// 501: a transfer coding the server does not implement.
    NotImplemented(&'static str),
}

impl core::fmt::Display for RequestError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RequestError::Malformed(what) => write!(f, "malformed request: {what}"),
            RequestError::HeadersTooLarge => write!(f, "headers too large"),
            RequestError::BodyTooLarge(n) => write!(f, "a body of {n} bytes is too large"),
            RequestError::NotImplemented(what) => write!(f, "not implemented: {what}"),
        }
    }
}

impl RequestError {
    pub fn status(self) -> u16 {
        match self {
            RequestError::Malformed(_) => 400,
            RequestError::HeadersTooLarge => 431,
            RequestError::BodyTooLarge(_) => 413,
            RequestError::NotImplemented(_) => 501,
        }
    }
}

/// Where the head ends (the index after its empty line), lines ending in CRLF or a bare LF (RFC 9112 2.2 lets a
/// server take LF alone; a client that sends it must get an answer, not a hang). Empty lines before the request
/// line are skipped (RFC 9112 2.2).
fn head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let mut line_start = start;
    for (i, &b) in buf.iter().enumerate().skip(start) {
        if b == b'\n' {
            let line = &buf[line_start..i];
            if line.is_empty() || line == b"\r" {
                return Some((start, i + 1));
            }
            line_start = i + 1;
        }
    }
    None
}

/// `token` of RFC 9110 5.6.2: what a method or a field name is made of.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses a request from the bytes received so far: `Ok(None)` until it is complete. Strict where RFC 9112 says a
/// server must reject (a lenient parser in front of a proxy is how requests are smuggled): one request line of
/// exactly three parts, field names without whitespace, no line folding, no bare CR, one Content-Length (or the
/// same one repeated), no Transfer-Encoding, exactly one Host in HTTP/1.1.
pub fn parse(
    buf: &[u8],
    max_headers: usize,
    max_body: usize,
) -> Result<Option<Request>, RequestError> {
    let Some((start, end)) = head_end(buf) else {
        return if buf.len() > max_headers {
            Err(RequestError::HeadersTooLarge)
        } else {
            Ok(None)
        };
    };
    // Also when the whole head came in one read.
    if end > max_headers {
        return Err(RequestError::HeadersTooLarge);
    }
    let head = core::str::from_utf8(&buf[start..end])
        .map_err(|_| RequestError::Malformed("headers are not UTF-8"))?;
    let mut lines = head
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .take_while(|l| !l.is_empty());
    if head
        .split('\n')
        .any(|l| l.strip_suffix('\r').unwrap_or(l).contains('\r'))
    {
        return Err(RequestError::Malformed("a CR not followed by LF"));
    }
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::Malformed(
            "the request line is not 'METHOD target HTTP/1.1'",
        ));
    };
    if !is_token(method) || target.is_empty() || target.contains(['\t', '\0']) {
        return Err(RequestError::Malformed(
            "the request line is not 'METHOD target HTTP/1.1'",
        ));
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(RequestError::Malformed("not HTTP/1.0 or HTTP/1.1")),
    };
    let mut length: Option<usize> = None;
    let mut hosts = 0;
    for line in lines {
        if line.starts_with([' ', '\t']) {
            return Err(RequestError::Malformed("obsolete line folding"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(RequestError::Malformed("a header line without ':'"));
        };
        if !is_token(name) {
            return Err(RequestError::Malformed(
                "a header name that is empty or has whitespace before ':'",
            ));
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("content-length") {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(RequestError::Malformed("bad Content-Length"));
            }
            let n = value
                .parse()
                .map_err(|_| RequestError::BodyTooLarge(usize::MAX))?;
            if length.is_some_and(|l| l != n) {
                return Err(RequestError::Malformed(
                    "two different Content-Length headers",
                ));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(RequestError::NotImplemented(
                "Transfer-Encoding (send a Content-Length)",
            ));
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
    }
    if http11 && hosts != 1 {
        return Err(RequestError::Malformed(
            "an HTTP/1.1 request needs exactly one Host header",
        ));
    }
    let length = length.unwrap_or(0);
    if length > max_body {
        return Err(RequestError::BodyTooLarge(length));
    }
    if buf.len() < end + length {
        return Ok(None);
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Some(Request {
        method: String::from(method),
        path: String::from(path),
        query: String::from(query),
        body: buf[end..end + length].to_vec(),
    }))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        501 => "Not Implemented",
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
        let big = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999\r\n\r\n";
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
            b"Content-Length: 2\r\nAccess-Control-Allow-Origin: *\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{}"
        ));
    }

    fn status(req: &[u8]) -> Result<Option<Request>, u16> {
        parse(req, 1024, 1024).map_err(RequestError::status)
    }

    #[test]
    fn rejects_what_rfc_9112_says_a_server_must_reject() {
        let cases: [&[u8]; 12] = [
            // Two different lengths: which one a proxy in front used is how a request is smuggled.
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}x",
            b"GET / HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n: empty name\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  folded\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n",
            b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +2\r\n\r\n{}",
            b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
            b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        ];
        for case in cases {
            assert_eq!(status(case), Err(400), "{}", String::from_utf8_lossy(case));
        }
        let chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(status(chunked), Err(501));
    }

    #[test]
    fn accepts_bare_lf_leading_empty_lines_and_a_repeated_equal_length() {
        let r = status(b"GET /x?y HTTP/1.1\nHost: a\n\n").unwrap().unwrap();
        assert_eq!((r.path.as_str(), r.query.as_str()), ("/x", "y"));
        let r =
            status(b"\r\nPOST / HTTP/1.1\nHost: a\r\nContent-Length: 2\ncontent-length: 2\n\n{}")
                .unwrap()
                .unwrap();
        assert_eq!(r.body, b"{}");
        let r = status(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(status(b"GET / HTTP/1.1\nHost: a\n"), Ok(None));
    }
}
