//! The virtual board: one loop owns the firmware core and carries out its actions on real parts (MQTT over TCP,
//! the PTY UART, the GPIO socket, the state directory). No device behaviour lives here.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use meter_core::config::Config;
use meter_core::engine::{Action, BoardInfo, BoardStatus, Boot, Engine, Event, Level};
use meter_core::HttpResponse;
use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::app_image;
use crate::flash::{Flash, CONFIG, FALLBACKS};
use crate::gpio_lines::{self, Drive, Lines};
use crate::http::{self, Exchange};
use crate::mqtt::{self, Connection, MqttEvent};
use crate::rom_loader::{Output, RomLoader};
use crate::spi_flash::SpiFlash;
use crate::uart::{self, Pty, Uart};
use meter_core::console::LineSplitter;

/// What the firmware reports as its version when no image was flashed (the factory firmware).
pub const HOST_FIRMWARE_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"), "-host");
const PROJECT_NAME: &str = "meterrig";
/// A bootloader that finds no app resets and tries again, this often.
const BOOT_RETRY: Duration = Duration::from_secs(1);

/// What runs on the chip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The firmware (the core) runs.
    App,
    /// The ROM serial loader waits for a flasher.
    Download,
    /// No bootable app: the bootloader resets and fails again, until the next reset into download mode.
    BootLoop { since: Instant },
}

/// How the board was started.
pub struct Options {
    pub state_dir: PathBuf,
    pub config: Option<PathBuf>,
    pub download: bool,
    /// Simulated UART line rate (both directions); none = as fast as the PTY goes.
    pub uart_baud: Option<u32>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Validates a (partial) config file and stores it, merged over the defaults, as the board's config.
pub fn seed_config(flash: &Flash, path: &PathBuf) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --config {}", path.display()))?;
    let partial: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("--config {} is not valid JSON", path.display()))?;
    let (doc, _) = Config::from_partial(&partial)
        .map_err(|e| anyhow!("--config {} refused: {e}", path.display()))?;
    flash.write(CONFIG, serde_json::to_string_pretty(&doc)?.as_bytes())
}

struct Board {
    engine: Engine,
    flash: Flash,
    uart: Uart,
    lines: Lines,
    mqtt: Option<Connection>,
    /// A connection leaving in order; the next one with the same client id waits for it.
    retiring: Option<tokio::task::JoinHandle<()>>,
    mqtt_up: bool,
    last_mqtt_failure: Option<String>,
    generation: u64,
    mqtt_events: mpsc::Sender<MqttEvent>,
    mode: Mode,
    booted_at: Instant,
    /// The factory MAC (the ROM loader's eFuse and the device info).
    mac: [u8; 6],
    firmware_version: String,
    spi: SpiFlash,
    loader: RomLoader,
    console: LineSplitter,
}

impl Board {
    fn info(&self) -> BoardInfo {
        BoardInfo {
            board_type: "Virtual Board".into(),
            chip_model: "ESP32-C3".into(),
            chip_cores: 1,
            chip_revision: "0.4".into(),
            chip_frequency_mhz: 160,
            camera_type: "simulated".into(),
            camera_frequency_mhz: 20,
            sd_capacity_mb: 0,
            sd_partition_mb: 0,
            ip_address: "127.0.0.1".into(),
            mac_address: mac_text(&self.mac),
            firmware_version: self.firmware_version.clone(),
        }
    }

    fn status(&self) -> BoardStatus {
        BoardStatus {
            wlan_rssi: -50,
            chip_temp_c: 40.0,
            heap_total_free: 180 * 1024,
            heap_internal_free: 180 * 1024,
            heap_internal_largest_free: 110 * 1024,
            heap_internal_min_free: 150 * 1024,
            heap_spiram_free: 0,
            heap_spiram_largest_free: 0,
            heap_spiram_min_free: 0,
            sd_partition_free_mb: 0,
            ntp_sync_status: "Synchronized".into(),
        }
    }

    fn log(&self, level: Level, message: &str) {
        let letter = level.letter();
        let line = format!(
            "{letter} ({}) meter: {message}",
            self.booted_at.elapsed().as_millis()
        );
        self.uart.line(&line);
        eprintln!("{line}");
    }

    fn app_running(&self) -> bool {
        self.mode == Mode::App
    }

    /// Why the board does not answer, for the rig's GPIO and HTTP clients.
    fn not_running_reason(&self) -> &'static str {
        match self.mode {
            Mode::Download => "the board is in download mode",
            _ => "no app is running (the bootloader found no bootable image)",
        }
    }

    /// Boots from flash: the factory firmware on a never-flashed chip, else the app image the bootloader accepts.
    fn boot(&mut self, reset_reason: &str) {
        self.booted_at = Instant::now();
        self.console.clear();
        let (offset, project, version) = if self.spi.is_programmed() {
            match app_image::find_app(self.spi.contents()) {
                Ok(app) => (app.offset, app.project_name, app.version),
                Err(failure) => {
                    for line in uart::bootloader_banner(reset_reason) {
                        self.uart.line(&line);
                    }
                    for line in &failure.lines {
                        self.uart.line(line);
                        eprintln!("{line}");
                    }
                    self.mode = Mode::BootLoop {
                        since: Instant::now(),
                    };
                    return;
                }
            }
        } else {
            (
                app_image::DEFAULT_APP_OFFSET,
                PROJECT_NAME.to_string(),
                HOST_FIRMWARE_VERSION.to_string(),
            )
        };
        self.mode = Mode::App;
        self.firmware_version = version;
        for line in uart::boot_banner(reset_reason, offset, &project, &self.firmware_version) {
            self.uart.line(&line);
        }
        self.engine = Engine::new();
        self.lines.clear();
        self.mqtt_up = false;
        let boot = Boot {
            info: self.info(),
            stored_config: self.flash.read(CONFIG),
            stored_fallbacks: self.flash.read(FALLBACKS),
        };
        let now = now_ms();
        let mut actions = self.engine.handle(now, Event::Booted(boot));
        actions.extend(self.engine.handle(now, Event::BoardStatus(self.status())));
        self.apply(actions);
    }

    /// Power cut on the MQTT side: the connection drops without DISCONNECT.
    fn cut_mqtt(&mut self) {
        self.generation += 1;
        if let Some(c) = self.mqtt.take() {
            c.cut();
        }
        self.mqtt_up = false;
    }

    fn reboot(&mut self) {
        self.uart.line("Rebooting...");
        self.cut_mqtt();
        self.boot("0xc (RTC_SW_CPU_RST)");
    }

    fn enter_download(&mut self) {
        self.cut_mqtt();
        self.mode = Mode::Download;
        self.loader = RomLoader::new(self.mac);
        for line in uart::download_banner() {
            self.uart.line(&line);
        }
    }

    /// Bytes from the host: console lines for the app, SLIP packets for the ROM loader, nothing in a boot loop.
    fn on_uart(&mut self, bytes: &[u8]) {
        match self.mode {
            Mode::App => {
                for line in self.console.feed(bytes) {
                    self.handle(Event::ConsoleLine(line));
                    if !self.app_running() {
                        break;
                    }
                }
            }
            Mode::Download => {
                for output in self.loader.feed(bytes, &mut self.spi) {
                    match output {
                        Output::Uart(frame) => self.uart.raw(&frame),
                        Output::RunApp => {
                            eprintln!("ROM loader: run user code");
                            self.boot("0xc (RTC_SW_CPU_RST)");
                        }
                        Output::Reboot => {
                            eprintln!("ROM loader: reboot (strapping still latched)");
                            self.enter_download();
                        }
                        Output::Baud(baud) => {
                            eprintln!("ROM loader: host changed the baud rate to {baud}")
                        }
                    }
                }
            }
            Mode::BootLoop { .. } => {}
        }
    }

    /// A boot loop prints its failure again after every bootloader reset.
    fn on_boot_loop_tick(&mut self) {
        if let Mode::BootLoop { since } = self.mode {
            if since.elapsed() >= BOOT_RETRY {
                self.boot("0x3 (RTC_SW_SYS_RST)");
            }
        }
    }

    /// Carries out actions; returns the HTTP response among them, if any.
    fn apply(&mut self, actions: Vec<Action>) -> Option<HttpResponse> {
        let mut queue: VecDeque<Action> = actions.into();
        let mut http = None;
        let (mut reboot, mut download) = (false, false);
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Publish {
                    topic,
                    payload,
                    retain,
                    ..
                } => {
                    if let Some(c) = &self.mqtt {
                        if let Err(e) = c.publish(topic.clone(), payload, retain) {
                            self.log(
                                Level::Error,
                                &format!("MQTT publish to '{topic}' failed: {e}"),
                            );
                        }
                    }
                }
                Action::Subscribe { filter, .. } => {
                    if let Some(c) = &self.mqtt {
                        if let Err(e) = c.subscribe(filter.clone()) {
                            self.log(
                                Level::Error,
                                &format!("MQTT subscribe to '{filter}' failed: {e}"),
                            );
                        }
                    }
                }
                Action::MqttConnect(settings) => {
                    // A replaced connection leaves in order, so what the firmware queued (e.g. the old tree's
                    // `offline`) still goes out.
                    self.generation += 1;
                    self.mqtt_up = false;
                    let predecessor = self
                        .mqtt
                        .take()
                        .map(Connection::retire)
                        .or_else(|| self.retiring.take());
                    match mqtt::connect(
                        &settings,
                        self.generation,
                        self.mqtt_events.clone(),
                        predecessor,
                    ) {
                        Ok(c) => {
                            self.log(
                                Level::Info,
                                &format!("MQTT: connecting to {}:{}", settings.host, settings.port),
                            );
                            self.mqtt = Some(c);
                        }
                        Err(e) => self.log(Level::Error, &format!("MQTT: cannot connect: {e:#}")),
                    }
                }
                Action::MqttDisconnect => {
                    // Leaves in order, as a replaced connection does: the firmware's `offline` goes out first.
                    self.generation += 1;
                    self.mqtt_up = false;
                    self.retiring = self.mqtt.take().map(Connection::retire);
                }
                Action::ConfigurePin { pin, mode } => {
                    self.lines
                        .configure(pin, mode.name(), mode.is_input(), mode.idle_level())
                }
                Action::SetPin { pin, level, duty } => {
                    self.lines.drive(pin, level, duty);
                    // A jumper carries the output to an input pin.
                    if let Some(to) = self.lines.jumper_from(pin) {
                        if self.lines.get(to).is_some_and(|l| l.is_input) {
                            let level = duty.map_or(level, |d| d > 0);
                            self.lines.set_input(to, level);
                            queue.extend(
                                self.engine
                                    .handle(now_ms(), Event::PinChanged { pin: to, level }),
                            );
                        }
                    }
                }
                Action::RequestFrame => {
                    let frame = self.engine.capture_simulated();
                    queue.extend(self.engine.handle(now_ms(), Event::Frame(frame)));
                }
                Action::ConsoleWrite(line) => self.uart.line(&line),
                Action::Http(resp) => http = Some(resp),
                Action::PersistConfig(text) => {
                    if let Err(e) = self.flash.write(CONFIG, text.as_bytes()) {
                        self.log(Level::Error, &format!("flash: config not saved: {e:#}"));
                    }
                }
                Action::PersistFallbacks(text) => {
                    if let Err(e) = self.flash.write(FALLBACKS, text.as_bytes()) {
                        self.log(
                            Level::Error,
                            &format!("flash: fallback values not saved: {e:#}"),
                        );
                    }
                }
                Action::Reboot => reboot = true,
                Action::EnterDownloadMode => download = true,
                Action::Log { level, message } => self.log(level, &message),
            }
        }
        if download {
            self.enter_download();
        } else if reboot && self.app_running() {
            self.reboot();
        }
        http
    }

    fn handle(&mut self, event: Event) -> Option<HttpResponse> {
        let actions = self.engine.handle(now_ms(), event);
        self.apply(actions)
    }

    fn on_mqtt(&mut self, event: MqttEvent) {
        match event {
            MqttEvent::Connected(g) if g == self.generation && self.app_running() => {
                self.mqtt_up = true;
                self.last_mqtt_failure = None;
                self.handle(Event::MqttConnected);
            }
            MqttEvent::Disconnected(g, why) if g == self.generation && self.app_running() => {
                if self.mqtt_up {
                    self.mqtt_up = false;
                    self.log(Level::Warn, &format!("MQTT: connection lost: {why}"));
                    self.handle(Event::MqttDisconnected);
                } else if self.last_mqtt_failure.as_deref() != Some(why.as_str()) {
                    // Retries repeat the same reason; say it once.
                    self.log(
                        Level::Error,
                        &format!("MQTT: cannot connect: {why} (retrying with backoff)"),
                    );
                    self.last_mqtt_failure = Some(why);
                }
            }
            MqttEvent::Message(g, topic, payload) if g == self.generation && self.app_running() => {
                self.handle(Event::MqttMessage { topic, payload });
            }
            _ => {}
        }
    }

    fn on_drive(&mut self, drive: Drive) {
        if !self.app_running() {
            let _ = drive.reply.send(Err(self.not_running_reason().into()));
            return;
        }
        self.lines.set_input(drive.pin, drive.level);
        self.handle(Event::PinChanged {
            pin: drive.pin,
            level: drive.level,
        });
        let _ = drive.reply.send(Ok(()));
    }

    fn on_http(&mut self, exchange: Exchange) {
        let resp = if !self.app_running() {
            HttpResponse {
                status: 503,
                content_type: "application/json",
                body: json!({"error": self.not_running_reason()}).to_string(),
            }
        } else {
            self.handle(Event::Http(exchange.request))
                .unwrap_or(HttpResponse {
                    status: 500,
                    content_type: "application/json",
                    body: json!({"error": "no response from firmware"}).to_string(),
                })
        };
        let _ = exchange.reply.send(resp);
    }
}

/// A locally administered MAC derived from the state directory, stable across restarts.
fn mac_for(dir: &std::path::Path) -> [u8; 6] {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    let b = h.finish().to_be_bytes();
    [0x02, b[0], b[1], b[2], b[3], b[4]]
}

fn mac_text(mac: &[u8; 6]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

/// Runs the board until SIGTERM / SIGINT (the reset button) or SIGKILL (power loss).
pub async fn run(opts: Options) -> Result<()> {
    let flash = Flash::open(&opts.state_dir)?;
    if let Some(path) = &opts.config {
        seed_config(&flash, path)?;
    }
    let spi = SpiFlash::open(flash.dir())?;
    let (uart_tx, mut uart_rx) = mpsc::channel::<Vec<u8>>(1024);
    let (serial, uart, _slave) =
        Pty::open(opts.uart_baud)?.spawn_reader(opts.uart_baud, move |bytes| {
            let _ = uart_tx.blocking_send(bytes);
        })?;
    let (http_tx, mut http_rx) = mpsc::channel(64);
    let http_addr = http::serve(http_tx).await?;
    let lines = Lines::new();
    let (drive_tx, mut drive_rx) = mpsc::channel(64);
    let gpio = gpio_lines::serve(&flash.path("gpio.sock"), lines.clone(), drive_tx).await?;
    let (mqtt_tx, mut mqtt_rx) = mpsc::channel(1024);

    let ready = json!({"serial": serial, "http": http_addr.to_string(), "gpio": gpio, "pid": std::process::id()});
    println!("{ready}");
    use std::io::Write;
    std::io::stdout().flush()?;

    let mac = mac_for(flash.dir());
    let mut board = Board {
        engine: Engine::new(),
        loader: RomLoader::new(mac),
        mac,
        firmware_version: HOST_FIRMWARE_VERSION.to_string(),
        spi,
        console: LineSplitter::default(),
        flash,
        uart,
        lines,
        mqtt: None,
        retiring: None,
        mqtt_up: false,
        last_mqtt_failure: None,
        generation: 0,
        mqtt_events: mqtt_tx,
        mode: Mode::App,
        booted_at: Instant::now(),
    };
    if opts.download {
        board.enter_download();
    } else {
        board.boot("0x1 (POWERON)");
    }

    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut status_at = Instant::now();
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            Some(bytes) = uart_rx.recv() => board.on_uart(&bytes),
            Some(exchange) = http_rx.recv() => board.on_http(exchange),
            Some(drive) = drive_rx.recv() => board.on_drive(drive),
            Some(event) = mqtt_rx.recv() => board.on_mqtt(event),
            _ = tick.tick() => {
                board.on_boot_loop_tick();
                if board.app_running() {
                    if status_at.elapsed() > Duration::from_secs(10) {
                        status_at = Instant::now();
                        let status = board.status();
                        board.handle(Event::BoardStatus(status));
                    }
                    board.handle(Event::Tick);
                }
            }
            // The reset button: no orderly MQTT DISCONNECT, the broker sends the LWT.
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    board.uart.line("rst:0xc (RTC_SW_CPU_RST)");
    std::process::exit(0);
}
