//! One HTTP connection of the web interface / REST API, on every board: read until the request is complete (with
//! the limits of `net_proto::http`), hand it to the firmware, write the answer. A board accepts connections (as
//! many at once as [`crate::limits::HTTP_CONNECTIONS`]) and says how a request reaches the firmware
//! ([`Exchange`]).

use alloc::vec::Vec;

use embassy_futures::select::{select, Either};
use embedded_io_async::{Read, Write};
use meter_core::engine::{HttpRequest, HttpResponse};
use net_proto::http;

use crate::board::Clock;

/// A request reading slower than this is dropped (a client that opened a connection and went away).
pub const READ_TIMEOUT_MS: u64 = 10_000;
/// The firmware answers at once; one it never answers must not stall the server.
pub const REPLY_TIMEOUT_MS: u64 = 5_000;

/// How a board's server hands a request to the firmware and gets its response (`None`: no response came).
// Single-threaded executors on every board: no `Send` bound on the future.
#[allow(async_fn_in_trait)]
pub trait Exchange {
    async fn exchange(&mut self, request: HttpRequest) -> Option<HttpResponse>;
}

/// Serves one request on `conn` and writes its response; the caller closes the connection.
pub async fn serve<T: Read + Write, C: Clock, E: Exchange>(
    conn: &mut T,
    clock: &C,
    exchange: &mut E,
) {
    let mut received: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 512];
    let read_by = clock.now_ms() + READ_TIMEOUT_MS;
    let request = loop {
        match http::parse(&received, http::MAX_HEAD, http::MAX_BODY) {
            Ok(None) => {}
            Ok(Some(req)) => break req,
            Err(e) => {
                let _ = send(
                    conn,
                    &http::error_response(e.status(), &alloc::format!("{e}")),
                )
                .await;
                return;
            }
        }
        match select(conn.read(&mut chunk), clock.sleep_until(read_by)).await {
            Either::First(Ok(n)) if n > 0 => received.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    };
    drop(received);
    let request = HttpRequest {
        method: request.method,
        path: request.path,
        query: request.query,
        body: request.body,
    };
    let reply_by = clock.now_ms() + REPLY_TIMEOUT_MS;
    match select(exchange.exchange(request), clock.sleep_until(reply_by)).await {
        Either::First(Some(resp)) => {
            // Head, then the body's parts as they are: a page from flash is never copied.
            let head = http::response_head(resp.status, resp.content_type, resp.content_length());
            let [first, middle, last] = resp.parts();
            let _ = send_parts(
                conn,
                &[
                    head.as_bytes(),
                    first.as_bytes(),
                    middle.as_bytes(),
                    last.as_bytes(),
                ],
            )
            .await;
        }
        _ => {
            let _ = send(
                conn,
                &http::error_response(503, "the firmware did not answer"),
            )
            .await;
        }
    }
}

async fn send_parts<T: Write>(conn: &mut T, parts: &[&[u8]]) -> Result<(), T::Error> {
    for part in parts {
        conn.write_all(part).await?;
    }
    conn.flush().await
}

async fn send<T: Write>(conn: &mut T, bytes: &[u8]) -> Result<(), T::Error> {
    conn.write_all(bytes).await?;
    conn.flush().await
}
