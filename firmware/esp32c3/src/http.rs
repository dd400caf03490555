//! The web interface and REST API on port 80: two connections at a time, parsed by `net_proto::http`, answered by
//! the engine (`Event::Http` -> `Action::Http`) one request at a time.

use alloc::string::ToString;
use alloc::vec::Vec;

use embassy_executor::Spawner;
use embassy_net::tcp::TcpSocket;
use embassy_net::Stack;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::mutex::Mutex;
use embassy_sync::signal::Signal;
use embassy_time::{with_timeout, Duration};
use embedded_io_async::Write;
use meter_core::engine::{Event, HttpRequest, HttpResponse};
use net_proto::http;

static REPLY: Signal<CriticalSectionRawMutex, HttpResponse> = Signal::new();
/// One request at a time goes to the engine (there is one reply signal); the servers accept and read in parallel.
static ENGINE: Mutex<CriticalSectionRawMutex, ()> = Mutex::new(());
/// Listening sockets on port 80: a browser's second connection is accepted instead of reset.
const SERVERS: usize = 2;
/// The engine answers at once; a request it never answers must not stall the web server.
const REPLY_WITHIN: Duration = Duration::from_secs(5);

/// The engine's answer to the request being served.
pub fn reply(resp: HttpResponse) {
    REPLY.signal(resp);
}

pub fn start(spawner: &Spawner, stack: Stack<'static>) {
    for _ in 0..SERVERS {
        spawner.spawn(server(stack).expect("task slot"));
    }
}

#[embassy_executor::task(pool_size = SERVERS)]
async fn server(stack: Stack<'static>) {
    let mut rx = alloc::vec![0u8; 2048];
    let mut tx = alloc::vec![0u8; 4096];
    loop {
        let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
        socket.set_timeout(Some(Duration::from_secs(10)));
        if socket.accept(80).await.is_err() {
            continue;
        }
        let mut request: Vec<u8> = Vec::new();
        let mut buf = [0u8; 512];
        let response = loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break None,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
            match http::parse(&request, http::MAX_HEAD, http::MAX_BODY) {
                Ok(None) => continue,
                Ok(Some(req)) => {
                    let _turn = ENGINE.lock().await;
                    REPLY.reset();
                    crate::EVENTS
                        .send(Event::Http(HttpRequest {
                            method: req.method,
                            path: req.path,
                            query: req.query,
                            body: req.body,
                        }))
                        .await;
                    break Some(match with_timeout(REPLY_WITHIN, REPLY.wait()).await {
                        Ok(resp) => {
                            http::response(resp.status, resp.content_type, resp.body.as_bytes())
                        }
                        Err(_) => http::error_response(503, "the firmware did not answer"),
                    });
                }
                Err(e) => break Some(http::error_response(e.status(), &e.to_string())),
            }
        };
        if let Some(bytes) = response {
            let _ = socket.write_all(&bytes).await;
            let _ = socket.flush().await;
        }
        socket.close();
    }
}
