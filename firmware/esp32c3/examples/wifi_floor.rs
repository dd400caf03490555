//! The size floor of any Wi-Fi firmware on this stack: esp-hal, esp-rtos, the esp-radio station (with its vendor
//! blobs), embassy-net with DHCP and DNS, one TCP connection and console output — and nothing of the meter. `.ci/run`
//! builds it with the firmware's release profile and reports its app image next to the firmware's, so the size
//! budget can be judged against what the platform alone costs (docs/decisions.md).
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use embassy_net::dns::DnsQueryType;
use embassy_net::tcp::TcpSocket;
use embassy_net::{Runner, StackResources};
use embassy_time::{Duration, Timer};
use embedded_io_async::Write;
use esp_backtrace as _;
use esp_hal::clock::CpuClock;
use esp_hal::timer::timg::TimerGroup;
use esp_println::println;
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{AuthenticationMethodConfig, Config, Interface, WifiController};
use static_cell::StaticCell;

// esp-backtrace's `custom-halt` hook, as the firmware has it (the package enables the feature for both).
#[path = "../src/panic.rs"]
mod panic;

esp_bootloader_esp_idf::esp_app_desc!();

#[esp_rtos::main]
async fn main(spawner: Spawner) {
    let peripherals = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    esp_alloc::heap_allocator!(size: 72 * 1024);
    let timg0 = TimerGroup::new(peripherals.TIMG0);
    esp_rtos::start(timg0.timer0, peripherals.FROM_CPU_INTR0);

    let Ok(mut controller) = WifiController::new(peripherals.WIFI, Default::default()) else {
        println!("no radio");
        return;
    };
    static RESOURCES: StaticCell<StackResources<4>> = StaticCell::new();
    let (stack, runner) = embassy_net::new(
        Interface::station(),
        embassy_net::Config::dhcpv4(Default::default()),
        RESOURCES.init(StackResources::new()),
        0x5AA5,
    );
    let Ok(task) = net_task(runner) else { return };
    spawner.spawn(task);

    let (Ok(ssid), Ok(password)) = (
        env!("CARGO_PKG_NAME").try_into(),
        "floor-password".try_into(),
    ) else {
        return;
    };
    let config = Config::Station(
        StationConfig::default()
            .with_ssid(ssid)
            .with_authentication(AuthenticationMethodConfig::Wpa2Personal(password)),
    );
    if controller.set_config(&config).is_err() || controller.connect_async().await.is_err() {
        println!("no network");
        return;
    }
    stack.wait_config_up().await;

    let (mut rx, mut tx) = ([0u8; 1024], [0u8; 1024]);
    let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
    let Ok(addresses) = stack.dns_query("broker.local", DnsQueryType::A).await else {
        return;
    };
    let Some(address) = addresses.first() else {
        return;
    };
    if socket.connect((*address, 1883)).await.is_ok() && socket.write_all(b"hello").await.is_ok() {
        let mut reply = [0u8; 16];
        if let Ok(n) = socket.read(&mut reply).await {
            println!("{n} bytes");
        }
    }
    loop {
        Timer::after(Duration::from_secs(60)).await;
    }
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Interface>) {
    runner.run().await
}
