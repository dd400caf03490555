//! The meter firmware on an ESP32-C3. A thin shell: `meter_core::Engine` makes every decision; this crate carries
//! its actions out on the chip (Wi-Fi + embassy-net, MQTT 3.1.1, HTTP, USB-Serial-JTAG console, GPIO, flash) and
//! turns what happens there into events.
#![no_std]
#![no_main]

extern crate alloc;

mod console;
mod http;
mod mqtt;
mod net;
mod panic;
mod pins;
mod storage;

use alloc::format;
use core::sync::atomic::Ordering;

use embassy_executor::Spawner;
use embassy_futures::select::{select3, Either3};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use embassy_time::{Duration, Instant, Ticker, Timer};
use esp_backtrace as _;
use esp_hal::clock::CpuClock;
use esp_hal::timer::timg::TimerGroup;
use meter_core::engine::{Action, BoardInfo, BoardStatus, Boot, Engine, Event};

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

/// Everything that happens to the device, for the engine loop.
pub static EVENTS: Channel<CriticalSectionRawMutex, Event, 16> = Channel::new();

const TICK: Duration = Duration::from_millis(200);
/// Inputs are sampled this often: a button press (tens of ms) is seen, and the core debounces what is sampled.
const INPUT_SAMPLE: Duration = Duration::from_millis(5);
const STATUS_EVERY: Duration = Duration::from_secs(10);
const HEAP_RECLAIMED: usize = 64 * 1024;

#[esp_rtos::main]
async fn main(spawner: Spawner) {
    let peripherals = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    esp_alloc::heap_allocator!(#[esp_hal::ram(reclaimed)] size: HEAP_RECLAIMED);
    esp_alloc::heap_allocator!(size: 72 * 1024);

    let timg0 = TimerGroup::new(peripherals.TIMG0);
    esp_rtos::start(timg0.timer0, peripherals.FROM_CPU_INTR0);

    console::start(&spawner, peripherals.USB_DEVICE);
    console::line(&format!("I (0) boot: meterrig {VERSION} on ESP32-C3"));

    let mut store = storage::Store::new(peripherals.FLASH);
    let stored_config = store.load(storage::CONFIG).await;
    let stored_fallbacks = store.load(storage::FALLBACKS).await;

    let wifi = net::credentials(stored_config.as_deref());
    let net = net::start(&spawner, peripherals.WIFI, wifi).await;
    mqtt::start(&spawner, net.stack);
    http::start(&spawner, net.stack);

    let mut pins = pins::Pins::new(pins::Bank {
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

    let mut engine = Engine::new();
    let info = BoardInfo {
        board_type: "ESP32-C3".into(),
        chip_model: "ESP32-C3".into(),
        chip_cores: 1,
        chip_revision: "0.4".into(),
        chip_frequency_mhz: 160,
        camera_type: "none (frames from the console)".into(),
        camera_frequency_mhz: 0,
        sd_capacity_mb: 0,
        sd_partition_mb: 0,
        ip_address: net.ip().unwrap_or_else(|| "0.0.0.0".into()),
        mac_address: net.mac.clone(),
        firmware_version: VERSION.into(),
    };
    let boot = Boot {
        info,
        stored_config,
        stored_fallbacks,
    };
    let mut shell = Shell {
        store,
        pins: &mut pins,
    };
    let started = Instant::now();
    let now = || started.elapsed().as_millis();
    let actions = engine.handle(now(), Event::Booted(boot));
    shell.apply(&mut engine, actions, now()).await;
    // Tickers keep their schedule however busy the event queue is, and are polled first, so neither the engine's
    // tick nor input sampling can be starved by a stream of events.
    let mut tick = Ticker::every(TICK);
    let mut sample_inputs = Ticker::every(INPUT_SAMPLE);
    let mut status_at = Instant::now();
    loop {
        let event = match select3(tick.next(), sample_inputs.next(), EVENTS.receive()).await {
            Either3::First(()) => {
                if status_at.elapsed() >= STATUS_EVERY {
                    status_at = Instant::now();
                    let status = board_status(tsens.as_ref());
                    let actions = engine.handle(now(), Event::BoardStatus(status));
                    shell.apply(&mut engine, actions, now()).await;
                }
                Event::Tick
            }
            Either3::Second(()) => {
                for (pin, level) in shell.pins.poll_inputs() {
                    let actions = engine.handle(now(), Event::PinChanged { pin, level });
                    shell.apply(&mut engine, actions, now()).await;
                }
                continue;
            }
            Either3::Third(event) => event,
        };
        let actions = engine.handle(now(), event);
        shell.apply(&mut engine, actions, now()).await;
    }
}

fn board_status(tsens: Option<&esp_hal::tsens::TemperatureSensor<'_>>) -> BoardStatus {
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
        chip_temp_c: tsens.map_or(0.0, |t| f64::from(t.get_temperature().to_celsius())),
        heap_total_free: free,
        heap_internal_free: free,
        heap_internal_largest_free: largest_region_free,
        heap_internal_min_free: heap.size.saturating_sub(heap.max_usage) as u64,
        heap_spiram_free: 0,
        heap_spiram_largest_free: 0,
        heap_spiram_min_free: 0,
        sd_partition_free_mb: 0,
        ntp_sync_status: "Not synchronized".into(),
    }
}

/// Carries out the engine's actions on the chip's parts.
struct Shell<'a> {
    store: storage::Store,
    pins: &'a mut pins::Pins,
}

impl Shell<'_> {
    async fn apply(&mut self, engine: &mut Engine, actions: alloc::vec::Vec<Action>, now: u64) {
        let mut queue: alloc::collections::VecDeque<Action> = actions.into();
        // A restart waits until every action is carried out (the console reply comes after it in the list).
        let (mut reboot, mut download) = (false, false);
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Publish {
                    topic,
                    payload,
                    retain,
                    ..
                } => mqtt::send(mqtt::Command::Publish {
                    topic,
                    payload: payload.into_bytes(),
                    retain,
                }),
                Action::Subscribe { filter, .. } => mqtt::send(mqtt::Command::Subscribe(filter)),
                Action::MqttConnect(settings) => mqtt::send(mqtt::Command::Connect(settings)),
                Action::MqttDisconnect => mqtt::send(mqtt::Command::Disconnect),
                Action::ConfigurePin { pin, mode } => {
                    let pwm_hz = engine
                        .config()
                        .gpio
                        .iter()
                        .find(|p| p.number == pin)
                        .map_or(5000, |p| p.pwm_frequency);
                    if let Err(e) = self.pins.configure(pin, mode, pwm_hz) {
                        console::line(&format!("E ({now}) meter: GPIO{pin}: {e}"));
                    }
                }
                Action::SetPin { pin, level, duty } => self.pins.set(pin, level, duty),
                Action::RequestFrame => {
                    // No camera on this board: frames come from the console (`frame ...`), as on the virtual board.
                    let frame = engine.capture_simulated();
                    queue.extend(engine.handle(now, Event::Frame(frame)));
                }
                Action::ConsoleWrite(line) => console::line(&line),
                Action::Http(resp) => http::reply(resp),
                Action::PersistConfig(text) => self.persist(storage::CONFIG, &text, now).await,
                Action::PersistFallbacks(text) => {
                    self.persist(storage::FALLBACKS, &text, now).await
                }
                Action::Reboot => reboot = true,
                Action::EnterDownloadMode => download = true,
                Action::Log { level, message } => {
                    let letter = level.letter();
                    console::line(&format!("{letter} ({now}) meter: {message}"));
                }
            }
        }
        if download {
            // The ROM honours RTC_CNTL_OPTION1.FORCE_DOWNLOAD_BOOT on a software reset: the serial loader starts
            // without BOOT held, so a rig without reset lines can flash the board.
            console::line("waiting for download (software reset into the ROM loader)");
            Timer::after(Duration::from_millis(100)).await;
            esp_hal::peripherals::LPWR::regs()
                .option1()
                .modify(|_, w| w.force_download_boot().set_bit());
            esp_hal::system::software_reset();
        } else if reboot {
            console::line("Rebooting...");
            Timer::after(Duration::from_millis(100)).await;
            esp_hal::system::software_reset();
        }
    }

    async fn persist(&mut self, key: u8, text: &str, now: u64) {
        if let Err(e) = self.store.save(key, text).await {
            console::line(&format!("E ({now}) meter: flash: not saved: {e}"));
        }
    }
}
