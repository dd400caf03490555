//! The web interface and REST API: a tokio listener on 127.0.0.1, each connection served by the shared
//! `meter_shell::http::serve` (the ESP32-C3's parser, limits, timeouts and error answers), as many at once as the
//! chip serves (further ones wait in the listen backlog).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embedded_io_adapters::tokio_1::FromTokio;
use meter_core::{HttpRequest, HttpResponse};
use meter_shell::http::Exchange;
use meter_shell::limits::HTTP_CONNECTIONS;
use meter_shell::{Inbox, Input, Reply};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};

use crate::mqtt::HostClock;

/// Binds 127.0.0.1 on an ephemeral port and serves until the process ends.
pub async fn serve(
    inbox: Arc<Inbox<CriticalSectionRawMutex>>,
    clock: HostClock,
) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the web interface port")?;
    let addr = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(HTTP_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let mut shell = Shell {
                inbox: inbox.clone(),
            };
            tokio::spawn(async move {
                let mut conn = FromTokio::new(stream);
                crate::heap::Firmware(meter_shell::http::serve(&mut conn, &clock, &mut shell))
                    .await;
                let _ = conn.into_inner().shutdown().await;
                drop(slot);
            });
        }
    });
    Ok(addr)
}

/// A request goes to the shell through the inbox; the answer comes back on a one-shot channel.
struct Shell {
    inbox: Arc<Inbox<CriticalSectionRawMutex>>,
}

impl Exchange for Shell {
    async fn exchange(&mut self, request: HttpRequest) -> Option<HttpResponse> {
        let (tx, rx) = oneshot::channel();
        let reply = Reply::new(move |response| {
            let _ = tx.send(response);
        });
        self.inbox.send(Input::Http(request, reply)).await;
        rx.await.ok()
    }
}
