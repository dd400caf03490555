//! The meter firmware on an ESP32-C3: the shared shell (`meter_shell`, which the virtual board runs too) on the
//! chip's parts. This crate is hardware glue only: Wi-Fi and the IP stack, the USB-Serial-JTAG console, GPIO/LEDC,
//! the flash, the temperature sensor, the heap's figures, and the restart paths.
#![no_std]
#![no_main]

extern crate alloc;

mod console;
mod http;
mod mqtt;
mod net;
mod panic;
mod pins;
mod sntp;

use alloc::format;
use alloc::string::String;
use core::sync::atomic::Ordering;

use embassy_embedded_hal::adapter::BlockingAsync;
use embassy_executor::Spawner;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_time::{Duration, Instant, Timer};
use esp_backtrace as _;
use esp_hal::clock::CpuClock;
use esp_hal::timer::timg::TimerGroup;
use esp_storage::FlashStorage;
use meter_core::engine::{BoardInfo, BoardStatus, TimeStatus};
use meter_core::gpio::PinMode;
use meter_shell::mqtt::Link;
use meter_shell::time::WallClock;
use meter_shell::uart::UartPipe;
use meter_shell::{Board, Clock, Exit, Inbox, Shell};

esp_bootloader_esp_idf::esp_app_desc!(
    concat!("v", env!("CARGO_PKG_VERSION")),
    "meterrig",
    esp_bootloader_esp_idf::BUILD_TIME,
    esp_bootloader_esp_idf::BUILD_DATE,
    esp_bootloader_esp_idf::ESP_IDF_COMPATIBLE_VERSION,
    esp_bootloader_esp_idf::MMU_PAGE_SIZE,
    0,
    u16::MAX,
    esp_bootloader_esp_idf::SECURE_VERSION
);

/// The firmware's version, as the app descriptor carries it.
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

type Mutex = CriticalSectionRawMutex;
/// Between the shell and the MQTT task.
pub static LINK: Link<Mutex> = Link::new();
/// Console output, drained by the USB-Serial-JTAG writer.
pub static UART: UartPipe<Mutex> = UartPipe::new();
/// Console input and HTTP requests for the shell.
pub static INBOX: Inbox<Mutex> = Inbox::new();
/// The wall clock, set by network time.
pub static WALL: WallClock<Mutex> = WallClock::new();

/// Inputs are sampled this often: a button press (tens of ms) is seen, and the core debounces what is sampled.
const INPUT_SAMPLE: Duration = Duration::from_millis(5);
const HEAP_RECLAIMED: usize = 64 * 1024;

/// The chip's monotonic clock.
#[derive(Clone, Copy)]
pub struct ChipClock;

impl Clock for ChipClock {
    fn now_ms(&self) -> u64 {
        Instant::now().as_millis()
    }

    async fn sleep_until(&self, ms: u64) {
        Timer::at(Instant::from_millis(ms)).await
    }
}

#[esp_rtos::main]
async fn main(spawner: Spawner) {
    let peripherals = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    esp_alloc::heap_allocator!(#[esp_hal::ram(reclaimed)] size: HEAP_RECLAIMED);
    esp_alloc::heap_allocator!(size: 72 * 1024);

    let timg0 = TimerGroup::new(peripherals.TIMG0);
    esp_rtos::start(timg0.timer0, peripherals.FROM_CPU_INTR0);

    console::start(&spawner, peripherals.USB_DEVICE);
    let flash = BlockingAsync::new(FlashStorage::new(peripherals.FLASH));
    let mut shell = Shell::new(ChipClock, &LINK, &WALL, &UART, flash);
    shell.print(&format!("I (0) boot: meterrig {VERSION} on ESP32-C3"));

    // Wi-Fi credentials come from the saved config, before the network starts.
    let saved = shell.saved_config().await.ok().flatten();
    let net = net::start(
        &spawner,
        peripherals.WIFI,
        saved
            .as_deref()
            .and_then(meter_core::config::wlan_credentials),
    )
    .await;
    mqtt::start(&spawner, net.stack);
    http::start(&spawner, net.stack);
    sntp::start(&spawner, net.stack);

    let pins = pins::Pins::new(pins::Bank {
        gpio0: peripherals.GPIO0,
        gpio1: peripherals.GPIO1,
        gpio2: peripherals.GPIO2,
        gpio3: peripherals.GPIO3,
        gpio4: peripherals.GPIO4,
        gpio5: peripherals.GPIO5,
        gpio6: peripherals.GPIO6,
        gpio7: peripherals.GPIO7,
        gpio10: peripherals.GPIO10,
        gpio20: peripherals.GPIO20,
        gpio21: peripherals.GPIO21,
        ledc: peripherals.LEDC,
    });
    let tsens = esp_hal::tsens::TemperatureSensor::new(peripherals.TSENS, Default::default()).ok();
    let mut board = Chip {
        pins,
        tsens,
        changes: alloc::vec::Vec::new(),
    };
    let info = BoardInfo {
        board_type: "ESP32-C3".into(),
        chip_model: "ESP32C3".into(),
        chip_cores: 1,
        chip_revision: "0.4".into(),
        chip_frequency_mhz: 160,
        camera_type: meter_shell::board::CONSOLE_CAMERA_TYPE.into(),
        camera_frequency_mhz: meter_shell::board::CONSOLE_CAMERA_FREQUENCY_MHZ,
        sd_capacity_mb: 0,
        sd_partition_mb: 0,
        ip_address: net.ip().unwrap_or_else(|| "0.0.0.0".into()),
        mac_address: net.mac.clone(),
        firmware_version: VERSION.into(),
    };
    let exit = match shell.boot(&mut board, info).await {
        Some(exit) => exit,
        None => shell.run(&mut board, &INBOX).await,
    };
    // MQTT was left in order; what is still in the console pipe gets a moment to go out.
    Timer::after(Duration::from_millis(100)).await;
    if exit == Exit::Download {
        // The ROM honours RTC_CNTL_OPTION1.FORCE_DOWNLOAD_BOOT on a software reset: the serial loader starts
        // without BOOT held, so a rig without reset lines can flash the board.
        esp_hal::peripherals::LPWR::regs()
            .option1()
            .modify(|_, w| w.force_download_boot().set_bit());
    }
    esp_hal::system::software_reset();
}

/// The chip's parts as the shell sees them.
struct Chip {
    pins: pins::Pins,
    tsens: Option<esp_hal::tsens::TemperatureSensor<'static>>,
    /// Input changes sampled but not yet handed to the shell.
    changes: alloc::vec::Vec<(u8, bool)>,
}

impl Board for Chip {
    fn configure_pin(&mut self, pin: u8, mode: PinMode, pwm_hz: u32) -> Result<(), String> {
        self.pins.configure(pin, mode, pwm_hz).map_err(String::from)
    }

    fn set_pin(&mut self, pin: u8, level: bool, duty: Option<u32>) {
        self.pins.set(pin, level, duty)
    }

    fn status(&mut self) -> BoardStatus {
        let heap = esp_alloc::HEAP.stats();
        let free = heap.size.saturating_sub(heap.current_usage) as u64;
        // The allocator does not track its largest free block: the freest region bounds it from above.
        let largest_region_free = heap
            .region_stats
            .iter()
            .flatten()
            .map(|r| r.free)
            .max()
            .unwrap_or(0) as u64;
        BoardStatus {
            wlan_rssi: net::RSSI.load(Ordering::Relaxed),
            chip_temp_c: self
                .tsens
                .as_ref()
                .map_or(0.0, |t| f64::from(t.get_temperature().to_celsius())),
            heap_total_free: free,
            heap_internal_free: free,
            heap_internal_largest_free: largest_region_free,
            heap_internal_min_free: heap.size.saturating_sub(heap.max_usage) as u64,
            heap_spiram_free: 0,
            heap_spiram_largest_free: 0,
            heap_spiram_min_free: 0,
            sd_partition_free_mb: 0,
            time: TimeStatus::NotSynchronized,
        }
    }

    async fn next_input(&mut self) -> (u8, bool) {
        loop {
            if !self.changes.is_empty() {
                return self.changes.remove(0);
            }
            Timer::after(INPUT_SAMPLE).await;
            self.changes = self.pins.poll_inputs();
        }
    }
}
