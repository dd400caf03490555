//! The console on the USB-Serial-JTAG port: what the host types goes to the shell's inbox; what the firmware
//! prints leaves the shell's bounded pipe (the shell drops lines that do not fit; nothing here waits for it).

use embassy_executor::Spawner;
use embedded_io_async::{Read, Write};
use esp_hal::peripherals::USB_DEVICE;
use esp_hal::usb::usb_serial_jtag::{UsbSerialJtag, UsbSerialJtagRx, UsbSerialJtagTx};
use esp_hal::Async;
use meter_shell::Input;

use crate::{INBOX, UART};

/// A log line of the board's own tasks (Wi-Fi): dropped, like every console line, when nobody reads.
pub fn log(level: meter_core::engine::Level, tag: &str, message: &str) {
    let uptime = embassy_time::Instant::now().as_millis();
    meter_shell::uart::put_line(&UART, &meter_shell::log::line(level, uptime, tag, message));
}

pub fn start(spawner: &Spawner, usb: USB_DEVICE<'static>) {
    let (rx, tx) = UsbSerialJtag::new(usb).into_async().split();
    spawner.spawn(reader(rx).expect("task slot"));
    spawner.spawn(writer(tx).expect("task slot"));
}

#[embassy_executor::task]
async fn reader(mut rx: UsbSerialJtagRx<'static, Async>) {
    let mut buf = [0u8; 64];
    loop {
        let Ok(n) = rx.read(&mut buf).await;
        INBOX.send(Input::Uart(buf[..n].to_vec())).await;
    }
}

#[embassy_executor::task]
async fn writer(mut tx: UsbSerialJtagTx<'static, Async>) {
    let mut buf = [0u8; 256];
    loop {
        let n = UART.read(&mut buf).await;
        let _ = tx.write_all(&buf[..n]).await;
        let _ = tx.flush().await;
    }
}
