//! The console on the USB-Serial-JTAG port: lines typed by the rig become `ConsoleLine` events; replies and logs go
//! out as `\r\n`-terminated lines.

use alloc::string::String;

use embassy_executor::Spawner;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use embedded_io_async::{Read, Write};
use esp_hal::peripherals::USB_DEVICE;
use esp_hal::usb::usb_serial_jtag::{UsbSerialJtag, UsbSerialJtagRx, UsbSerialJtagTx};
use esp_hal::Async;
use meter_core::console::LineSplitter;
use meter_core::engine::Event;

static OUT: Channel<CriticalSectionRawMutex, String, 32> = Channel::new();

/// Queues a line for the console; dropped when the host does not read (a full queue must not stall the device).
pub fn line(text: &str) {
    let _ = OUT.try_send(String::from(text));
}

pub fn start(spawner: &Spawner, usb: USB_DEVICE<'static>) {
    let (rx, tx) = UsbSerialJtag::new(usb).into_async().split();
    spawner.spawn(reader(rx).expect("task slot"));
    spawner.spawn(writer(tx).expect("task slot"));
}

#[embassy_executor::task]
async fn reader(mut rx: UsbSerialJtagRx<'static, Async>) {
    let mut lines = LineSplitter::default();
    let mut buf = [0u8; 64];
    loop {
        let Ok(n) = rx.read(&mut buf).await;
        for line in lines.feed(&buf[..n]) {
            crate::EVENTS.send(Event::ConsoleLine(line)).await;
        }
    }
}

#[embassy_executor::task]
async fn writer(mut tx: UsbSerialJtagTx<'static, Async>) {
    loop {
        let text = OUT.receive().await;
        let _ = tx.write_all(text.as_bytes()).await;
        let _ = tx.write_all(b"\r\n").await;
        let _ = tx.flush().await;
    }
}
