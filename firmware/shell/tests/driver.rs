//! The MQTT driver with the boards' limits, against an in-memory broker: a burst larger than every queue goes
//! through whole and in order, the broker never sees more unacknowledged publishes than the window, and the shell
//! side waits (back-pressure) instead of anything being dropped.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};

use embassy_futures::select::{select, Either};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::pipe::Pipe;
use embedded_io_async::{ErrorType, Read, Write};
use meter_core::engine::MqttSettings;
use meter_shell::limits::{MQTT_COMMANDS, MQTT_MAX_INFLIGHT};
use meter_shell::mqtt::{Command, Driver, Event, Link, Network};
use meter_shell::Clock;
use net_proto::mqtt::{self, Decoder, Packet};

type M = CriticalSectionRawMutex;
type Wire = Pipe<M, 4096>;

/// Time stands still: nothing in these tests waits for a timeout.
struct Frozen;

impl Clock for Frozen {
    fn now_ms(&self) -> u64 {
        0
    }
    async fn sleep_until(&self, _ms: u64) {
        std::future::pending().await
    }
}

/// One end of an in-memory connection.
struct End<'a> {
    rx: &'a Wire,
    tx: &'a Wire,
}

impl ErrorType for End<'_> {
    type Error = core::convert::Infallible;
}

impl Read for End<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        Ok(self.rx.read(buf).await)
    }
}

impl Write for End<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        Ok(self.tx.write(buf).await)
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

struct Net<'a> {
    to_broker: &'a Wire,
    to_device: &'a Wire,
}

impl Network for Net<'_> {
    type Conn<'c>
        = End<'c>
    where
        Self: 'c;

    async fn connect<'c>(&'c mut self, _s: &MqttSettings) -> Result<End<'c>, String> {
        Ok(End {
            rx: self.to_device,
            tx: self.to_broker,
        })
    }
}

fn settings() -> MqttSettings {
    MqttSettings {
        host: "broker".into(),
        port: 1883,
        tls: false,
        client_id: "meter".into(),
        username: None,
        password: None,
        keepalive_s: 0,
        ca_cert: String::new(),
        client_cert: String::new(),
        client_key: String::new(),
        lwt_topic: "meter/device/status/connection".into(),
        lwt_payload: "offline",
    }
}

/// A broker that acknowledges nothing until the device has the whole window in flight, then everything at once: a
/// device that sent more than the window would be caught, one that sent less would wait forever.
struct Broker<'a> {
    end: End<'a>,
    received: &'a RefCell<Vec<String>>,
    most_in_flight: &'a Cell<usize>,
}

impl Broker<'_> {
    async fn run(&mut self) {
        let mut decoder = Decoder::new(64 * 1024);
        let mut unacked: Vec<u16> = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            let n = self.end.read(&mut buf).await.unwrap();
            decoder.feed(&buf[..n]);
            while let Some(packet) = decoder.next().unwrap() {
                match packet {
                    // CONNECT
                    Packet::Other(1) => self.end.write_all(&[0x20, 2, 0, 0]).await.unwrap(),
                    Packet::Publish(p) => {
                        self.received
                            .borrow_mut()
                            .push(String::from_utf8(p.payload).unwrap());
                        unacked.push(p.packet_id.unwrap());
                        self.most_in_flight
                            .set(self.most_in_flight.get().max(unacked.len()));
                        if unacked.len() >= MQTT_MAX_INFLIGHT {
                            for id in unacked.drain(..) {
                                self.end.write_all(&mqtt::puback(id)).await.unwrap();
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Polls `f` to completion on this thread (the futures here never need another thread to wake them).
fn run<F: Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

#[test]
fn a_burst_larger_than_every_queue_goes_through_whole_in_order_within_the_window() {
    let to_broker = Wire::new();
    let to_device = Wire::new();
    let link: Link<M> = Link::new();
    let mut driver = Driver::new(&link, Frozen);
    let mut net = Net {
        to_broker: &to_broker,
        to_device: &to_device,
    };
    let received = RefCell::new(Vec::new());
    let most = Cell::new(0);
    let mut broker = Broker {
        end: End {
            rx: &to_broker,
            tx: &to_device,
        },
        received: &received,
        most_in_flight: &most,
    };
    // Whole windows, so the broker's last batch is acknowledged too.
    let burst = MQTT_MAX_INFLIGHT * (2 + MQTT_COMMANDS);
    let waited = Cell::new(0usize);
    let shell = async {
        link.commands.send(Command::Connect(settings())).await;
        for i in 0..burst {
            let cmd = Command::Publish {
                topic: format!("meter/t{i}"),
                payload: i.to_string().into_bytes(),
                retain: true,
            };
            // Count the times the queue was full: the shell waited instead of dropping.
            let mut send = pin!(link.commands.send(cmd));
            let mut first = true;
            std::future::poll_fn(|cx: &mut Context<'_>| {
                let poll = send.as_mut().poll(cx);
                if poll.is_pending() && first {
                    waited.set(waited.get() + 1);
                }
                first = false;
                poll
            })
            .await;
        }
        std::future::pending::<()>().await
    };
    run(async {
        let device = select(driver.run(&mut net), broker.run());
        let until_all = async {
            std::future::poll_fn(|cx: &mut Context<'_>| {
                if received.borrow().len() >= burst {
                    return Poll::Ready(());
                }
                cx.waker().wake_by_ref();
                Poll::Pending
            })
            .await
        };
        match select(device, select(shell, until_all)).await {
            Either::First(_) => unreachable!("the driver and the broker run forever"),
            Either::Second(_) => (),
        }
    });
    let got = received.borrow();
    assert_eq!(got.len(), burst, "every publish reached the broker");
    let expected: Vec<String> = (0..burst).map(|i| i.to_string()).collect();
    assert_eq!(*got, expected, "in order");
    assert!(
        most.get() <= MQTT_MAX_INFLIGHT,
        "{} in flight at once, the window is {MQTT_MAX_INFLIGHT}",
        most.get()
    );
    assert!(
        waited.get() > 0,
        "the shell had to wait: the burst exceeds the queues"
    );
    let events: Vec<Event> = std::iter::from_fn(|| link.events.try_receive().ok()).collect();
    assert!(
        events.iter().any(|e| matches!(e, Event::Connected { .. })),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| matches!(e, Event::Warning(_))),
        "nothing given up: {events:?}"
    );
}
