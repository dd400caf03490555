//! A small HTTP/1.1 server for the web interface and REST API: one request per connection, bodies by
//! Content-Length, every request answered by the firmware core. Parser, limits and error answers are the ESP32-C3's
//! (`net_proto::http`).

use std::net::SocketAddr;

use anyhow::{Context, Result};
use meter_core::{HttpRequest, HttpResponse};
use net_proto::http;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

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

async fn respond(stream: &mut tokio::net::TcpStream, resp: &HttpResponse) -> std::io::Result<()> {
    send(
        stream,
        &http::response(resp.status, resp.content_type, resp.body.as_bytes()),
    )
    .await
}

async fn send(stream: &mut tokio::net::TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.shutdown().await
}

async fn connection(
    mut stream: tokio::net::TcpStream,
    requests: mpsc::Sender<Exchange>,
) -> std::io::Result<()> {
    // The same request parser as the ESP32-C3 port.
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let parsed = loop {
        match http::parse(&received, http::MAX_HEAD, http::MAX_BODY) {
            Ok(None) => {}
            other => break other,
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        received.extend_from_slice(&chunk[..n]);
    };
    let req = match parsed {
        Ok(Some(req)) => req,
        Ok(None) => return Ok(()),
        Err(e) => {
            return send(
                &mut stream,
                &http::error_response(e.status(), &e.to_string()),
            )
            .await
        }
    };
    let (tx, rx) = oneshot::channel();
    let request = HttpRequest {
        method: req.method,
        path: req.path,
        query: req.query,
        body: req.body,
    };
    if requests
        .send(Exchange { request, reply: tx })
        .await
        .is_err()
    {
        return send(
            &mut stream,
            &http::error_response(503, "the board is not running"),
        )
        .await;
    }
    match rx.await {
        Ok(resp) => respond(&mut stream, &resp).await,
        Err(_) => {
            send(
                &mut stream,
                &http::error_response(503, "the board is rebooting"),
            )
            .await
        }
    }
}
