//! A small HTTP/1.1 server for the web interface and REST API: one request per connection, bodies by
//! Content-Length (at most 64 KiB), every request answered by the firmware core.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use meter_core::{HttpRequest, HttpResponse};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

const MAX_BODY: usize = 64 * 1024;
const MAX_HEAD: usize = 16 * 1024;

/// A request for the board loop and where to send its answer.
pub struct Exchange {
    pub request: HttpRequest,
    pub reply: oneshot::Sender<HttpResponse>,
}

/// Binds 127.0.0.1 on an ephemeral port and serves until the process ends.
pub async fn serve(requests: mpsc::Sender<Exchange>) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the web interface port")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let requests = requests.clone();
            tokio::spawn(async move {
                let _ = connection(stream, requests).await;
            });
        }
    });
    Ok(addr)
}

fn status_text(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

async fn respond(stream: &mut tokio::net::TcpStream, resp: &HttpResponse) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        resp.status,
        status_text(resp.status),
        resp.content_type,
        resp.body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(resp.body.as_bytes()).await?;
    stream.shutdown().await
}

fn error(status: u16, message: &str) -> HttpResponse {
    HttpResponse {
        status,
        content_type: "application/json",
        body: serde_json::json!({"error": message}).to_string(),
    }
}

async fn connection(
    mut stream: tokio::net::TcpStream,
    requests: mpsc::Sender<Exchange>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(&mut stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await?;
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        drop(reader);
        return respond(&mut stream, &error(400, "malformed request line")).await;
    };
    let (method, target) = (method.to_string(), target.to_string());
    let mut length = 0usize;
    let mut head_size = request_line.len();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await? == 0 {
            break;
        }
        head_size += header.len();
        if head_size > MAX_HEAD {
            drop(reader);
            return respond(&mut stream, &error(431, "headers too large")).await;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(usize::MAX);
            }
        }
    }
    if length > MAX_BODY {
        drop(reader);
        return respond(&mut stream, &error(413, "body larger than 64 KiB")).await;
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).await?;
    drop(reader);
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    let (tx, rx) = oneshot::channel();
    let request = HttpRequest {
        method,
        path,
        query,
        body,
    };
    if requests
        .send(Exchange { request, reply: tx })
        .await
        .is_err()
    {
        return respond(&mut stream, &error(503, "the board is not running")).await;
    }
    let resp = rx
        .await
        .unwrap_or_else(|_| error(503, "the board is rebooting"));
    respond(&mut stream, &resp).await
}
