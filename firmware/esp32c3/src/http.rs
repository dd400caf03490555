//! The web interface and REST API on port 80: [`SERVERS`] listening sockets (a browser's parallel connection is
//! accepted, not reset), each serving one connection at a time through the shared `meter_shell::http::serve`.
//! A request reaches the shell through the inbox with its own reply slot and number, so an answer that comes after
//! the timeout can never be taken for the next request's.

use embassy_executor::Spawner;
use embassy_net::tcp::TcpSocket;
use embassy_net::Stack;
use embassy_sync::signal::Signal;
use embassy_time::Duration;
use meter_core::engine::{HttpRequest, HttpResponse};
use meter_shell::http::Exchange;
use meter_shell::limits::HTTP_CONNECTIONS;
use meter_shell::{Input, Reply};

use crate::{ChipClock, Mutex, INBOX};

const SERVERS: usize = HTTP_CONNECTIONS;

/// One reply slot per server: the answer and the number of the request it answers.
static SLOTS: [Signal<Mutex, (u32, HttpResponse)>; SERVERS] = [const { Signal::new() }; SERVERS];

pub fn start(spawner: &Spawner, stack: Stack<'static>) {
    for slot in 0..SERVERS {
        spawner.spawn(server(stack, slot).expect("task slot"));
    }
}

/// Hands a request to the shell and waits for the answer to this very request.
struct Shell {
    slot: &'static Signal<Mutex, (u32, HttpResponse)>,
    number: u32,
}

impl Exchange for Shell {
    async fn exchange(&mut self, request: HttpRequest) -> Option<HttpResponse> {
        self.number = self.number.wrapping_add(1);
        let (slot, number) = (self.slot, self.number);
        slot.reset();
        let reply = Reply::new(move |response| slot.signal((number, response)));
        INBOX.send(Input::Http(request, reply)).await;
        loop {
            let (answered, response) = slot.wait().await;
            if answered == number {
                return Some(response);
            }
        }
    }
}

#[embassy_executor::task(pool_size = SERVERS)]
async fn server(stack: Stack<'static>, slot: usize) {
    let mut rx = alloc::vec![0u8; 2048];
    let mut tx = alloc::vec![0u8; 4096];
    let mut shell = Shell {
        slot: &SLOTS[slot],
        number: 0,
    };
    loop {
        let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
        socket.set_timeout(Some(Duration::from_secs(10)));
        if socket.accept(80).await.is_err() {
            continue;
        }
        meter_shell::http::serve(&mut socket, &ChipClock, &mut shell).await;
        socket.close();
        let _ = embedded_io_async::Write::flush(&mut socket).await;
    }
}
