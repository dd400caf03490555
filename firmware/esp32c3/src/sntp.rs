//! Network time: the shared SNTP client (`meter_shell::time`, which the virtual board runs too) over an
//! embassy-net UDP socket. Only the socket and the name lookup are here.

use alloc::format;
use alloc::string::String;

use embassy_executor::Spawner;
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{IpEndpoint, Stack};
use meter_shell::time::{self, Udp};

use crate::{ChipClock, WALL};

struct ChipUdp {
    stack: Stack<'static>,
}

impl Udp for ChipUdp {
    async fn exchange(
        &mut self,
        host: &str,
        port: u16,
        request: &[u8],
        answer: &mut [u8],
    ) -> Result<usize, String> {
        let addr = match self
            .stack
            .dns_query(host, embassy_net::dns::DnsQueryType::A)
            .await
        {
            Ok(addrs) if !addrs.is_empty() => addrs[0],
            _ => host
                .parse()
                .map_err(|_| format!("cannot resolve '{host}'"))?,
        };
        let mut rx_meta = [PacketMetadata::EMPTY; 1];
        let mut tx_meta = [PacketMetadata::EMPTY; 1];
        let mut rx = [0u8; 128];
        let mut tx = [0u8; 128];
        let mut socket = UdpSocket::new(self.stack, &mut rx_meta, &mut rx, &mut tx_meta, &mut tx);
        socket.bind(0).map_err(|e| format!("UDP: {e:?}"))?;
        let server = IpEndpoint::new(addr, port);
        socket
            .send_to(request, server)
            .await
            .map_err(|e| format!("cannot send to {host}:{port}: {e:?}"))?;
        loop {
            let (n, from) = socket
                .recv_from(answer)
                .await
                .map_err(|e| format!("no answer from {host}:{port}: {e:?}"))?;
            // Only the server's answer counts.
            if from.endpoint == server {
                return Ok(n);
            }
        }
    }
}

pub fn start(spawner: &Spawner, stack: Stack<'static>) {
    spawner.spawn(client(stack).expect("task slot"));
}

#[embassy_executor::task]
async fn client(stack: Stack<'static>) {
    let mut udp = ChipUdp { stack };
    time::run(&WALL, &ChipClock, &mut udp).await
}
