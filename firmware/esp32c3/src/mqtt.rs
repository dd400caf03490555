//! The MQTT task: the shared driver (`meter_shell::mqtt::Driver`, which the virtual board runs too) over
//! embassy-net TCP. Only the connection itself is here: DNS, the socket and its buffers. `mqtts://` needs TLS,
//! which this port does not have yet: the attempt fails with that reason (the console says so).

use alloc::format;
use alloc::string::String;

use embassy_executor::Spawner;
use embassy_net::tcp::TcpSocket;
use embassy_net::Stack;
use embassy_time::Duration;
use meter_core::engine::MqttSettings;
use meter_shell::mqtt::{Driver, Network};

use crate::{ChipClock, LINK};

/// Socket buffers: a publish of the largest size goes out in pieces, the driver reads in pieces.
const RX: usize = 2048;
const TX: usize = 2048;

struct ChipNet {
    stack: Stack<'static>,
    rx: [u8; RX],
    tx: [u8; TX],
}

impl Network for ChipNet {
    type Conn<'a> = TcpSocket<'a>;

    async fn connect<'a>(&'a mut self, s: &MqttSettings) -> Result<TcpSocket<'a>, String> {
        if s.tls {
            return Err("mqtts:// is not supported on the ESP32-C3 port yet; use mqtt://".into());
        }
        let addr = match self
            .stack
            .dns_query(&s.host, embassy_net::dns::DnsQueryType::A)
            .await
        {
            Ok(addrs) if !addrs.is_empty() => addrs[0],
            _ => s
                .host
                .parse()
                .map_err(|_| format!("cannot resolve '{}'", s.host))?,
        };
        let mut socket = TcpSocket::new(self.stack, &mut self.rx, &mut self.tx);
        // A backstop for a peer that vanished mid-write; the session notices a silent broker first.
        socket.set_timeout(Some(Duration::from_secs(
            u64::from(s.keepalive_s.max(5)) * 2,
        )));
        socket
            .connect((addr, s.port))
            .await
            .map_err(|e| format!("cannot connect to {}:{}: {e:?}", s.host, s.port))?;
        Ok(socket)
    }
}

pub fn start(spawner: &Spawner, stack: Stack<'static>) {
    spawner.spawn(client(stack).expect("task slot"));
}

#[embassy_executor::task]
async fn client(stack: Stack<'static>) {
    let mut net = ChipNet {
        stack,
        rx: [0; RX],
        tx: [0; TX],
    };
    Driver::new(&LINK, ChipClock).run(&mut net).await
}
