//! The shell: owns the engine and carries out its actions on a [`Board`], the MQTT [`Link`], the console and the
//! storage; turns what happens into events; sleeps until the next deadline. Both boards run it.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use embassy_futures::select::{select, select5, Either, Either5};
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::channel::Channel;
use embedded_storage_async::nor_flash::MultiwriteNorFlash;
use meter_core::console::LineSplitter;
use meter_core::engine::{
    Action, BoardInfo, Boot, Engine, Event, HttpRequest, HttpResponse, Level,
};

use crate::board::{Board, Clock};
use crate::limits::{BOARD_STATUS_EVERY_MS, INBOX, MQTT_LEAVE_WAIT_MS};
use crate::mqtt::{self, Command, Link};
use crate::storage::{self, Storage};
use crate::time::WallClock;
use crate::uart::{Console, UartPipe};

/// How the shell answers an HTTP request: the board's server waits on the other end.
pub struct Reply(Box<dyn FnOnce(HttpResponse) + Send>);

impl Reply {
    pub fn new(send: impl FnOnce(HttpResponse) + Send + 'static) -> Reply {
        Reply(Box::new(send))
    }

    pub fn send(self, response: HttpResponse) {
        (self.0)(response)
    }
}

/// What a board's peripherals deliver to the shell.
pub enum Input {
    /// Bytes typed on the console.
    Uart(Vec<u8>),
    /// An input pin changed its level.
    Pin { pin: u8, level: bool },
    /// A request to the web interface or REST API; the response goes to its [`Reply`].
    Http(HttpRequest, Reply),
}

/// The board's inbox.
pub type Inbox<M> = Channel<M, Input, INBOX>;

/// Why the shell stopped: the board restarts (MQTT was left in order first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Reboot,
    /// Restart into the ROM serial loader.
    Download,
}

/// The engine and everything around it that is the same on every board.
pub struct Shell<'a, M: RawMutex, C: Clock, F: MultiwriteNorFlash> {
    engine: Engine,
    clock: C,
    mqtt: &'a Link<M>,
    wall: &'a WallClock<M>,
    console: Console<'a, M>,
    lines: LineSplitter,
    storage: Storage<F>,
    /// Monotonic time of the boot (log lines count from it).
    booted_ms: u64,
    /// The wall clock's offset the engine last heard of.
    engine_offset_ms: i64,
    status_due_ms: u64,
    mqtt_up: bool,
    last_failure: Option<String>,
}

impl<'a, M: RawMutex, C: Clock, F: MultiwriteNorFlash> Shell<'a, M, C, F> {
    pub fn new(
        clock: C,
        mqtt: &'a Link<M>,
        wall: &'a WallClock<M>,
        uart: &'a UartPipe<M>,
        flash: F,
    ) -> Self {
        let booted_ms = clock.now_ms();
        Shell {
            engine: Engine::new(),
            clock,
            mqtt,
            wall,
            console: Console::new(uart),
            lines: LineSplitter::default(),
            storage: Storage::new(flash),
            booted_ms,
            engine_offset_ms: wall.offset_ms(),
            status_due_ms: booted_ms,
            mqtt_up: false,
            last_failure: None,
        }
    }

    /// The engine (for a board's diagnostics; the shell drives it).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The saved config document (e.g. for a board's Wi-Fi credentials before the network starts); `Err` says
    /// why it is unreadable.
    pub async fn saved_config(&mut self) -> Result<Option<String>, String> {
        self.storage.load(storage::CONFIG).await
    }

    async fn load<B: Board>(&mut self, board: &mut B, key: u8) -> Option<String> {
        match self.storage.load(key).await {
            Ok(text) => text,
            Err(why) => {
                self.log(
                    board,
                    Level::Error,
                    &format!("flash: {why}; using defaults"),
                );
                None
            }
        }
    }

    /// Saves a config document directly (the virtual board's `--config` seed, a migration); validated by the caller.
    pub async fn save_config(&mut self, text: &str) -> Result<(), String> {
        self.storage.save(storage::CONFIG, text).await
    }

    /// Saves fallback values directly (a migration).
    pub async fn save_fallbacks(&mut self, text: &str) -> Result<(), String> {
        self.storage.save(storage::FALLBACKS, text).await
    }

    /// Boots the firmware: the saved config and fallback values, the board's facts and first status.
    pub async fn boot<B: Board>(&mut self, board: &mut B, info: BoardInfo) -> Option<Exit> {
        self.booted_ms = self.clock.now_ms();
        self.lines.clear();
        self.engine = Engine::new();
        self.engine_offset_ms = self.wall.offset_ms();
        self.mqtt_up = false;
        let stored_config = self.load(board, storage::CONFIG).await;
        let stored_fallbacks = self.load(board, storage::FALLBACKS).await;
        let now = self.engine_ms();
        self.engine.push_event(
            now,
            Event::Booted(Boot {
                info,
                stored_config,
                stored_fallbacks,
            }),
        );
        self.refresh_status(board);
        self.apply(board).await
    }

    /// Runs until the firmware restarts.
    pub async fn run<B: Board>(&mut self, board: &mut B, inbox: &Inbox<M>) -> Exit {
        loop {
            let wake = self.next_wake();
            let exit = match select5(
                self.mqtt.events.receive(),
                inbox.receive(),
                board.next_input(),
                self.wall.changed.wait(),
                self.clock.sleep_until(wake),
            )
            .await
            {
                Either5::First(event) => self.mqtt_event(board, event).await,
                Either5::Second(input) => self.input(board, input).await,
                Either5::Third((pin, level)) => self.input(board, Input::Pin { pin, level }).await,
                Either5::Fourth(()) => self.time_changed(board).await,
                Either5::Fifth(()) => self.deadline(board).await,
            };
            if let Some(exit) = exit {
                return exit;
            }
        }
    }

    /// When the shell must act next without an input (monotonic time): the engine's deadline or the board status.
    pub fn next_wake(&self) -> u64 {
        let now = self.clock.now_ms();
        let engine = self
            .engine
            .next_deadline()
            .map(|at| now + at.saturating_sub(self.engine_ms()));
        engine.map_or(self.status_due_ms, |at| at.min(self.status_due_ms))
    }

    /// One input from the board.
    pub async fn input<B: Board>(&mut self, board: &mut B, input: Input) -> Option<Exit> {
        match input {
            Input::Uart(bytes) => {
                for line in self.lines.feed(&bytes) {
                    if line.trim() == "status" {
                        // Its heap figures are now's, not those of the last scheduled sample.
                        self.refresh_status(board);
                    }
                    self.engine
                        .push_event(self.engine_ms(), Event::ConsoleLine(line));
                    if let Some(exit) = self.apply(board).await {
                        return Some(exit);
                    }
                }
                None
            }
            Input::Pin { pin, level } => {
                self.engine
                    .push_event(self.engine_ms(), Event::PinChanged { pin, level });
                self.apply(board).await
            }
            Input::Http(request, reply) => {
                let response = self.engine.http(self.engine_ms(), &request);
                reply.send(response);
                self.apply(board).await
            }
        }
    }

    /// Time has come: the board status when due, then the engine's tick.
    pub async fn deadline<B: Board>(&mut self, board: &mut B) -> Option<Exit> {
        if self.clock.now_ms() >= self.status_due_ms {
            self.refresh_status(board);
        }
        self.engine.push_event(self.engine_ms(), Event::Tick);
        self.apply(board).await
    }

    fn refresh_status<B: Board>(&mut self, board: &mut B) {
        self.status_due_ms = self.clock.now_ms() + BOARD_STATUS_EVERY_MS;
        let mut status = board.status();
        status.time = self.wall.status();
        self.engine
            .push_event(self.engine_ms(), Event::BoardStatus(status));
    }

    /// The clock was synchronized (or network time turned off): the engine hears it at once.
    async fn time_changed<B: Board>(&mut self, board: &mut B) -> Option<Exit> {
        if !self.wall.take_change() {
            return None;
        }
        let offset = self.wall.offset_ms();
        if offset != self.engine_offset_ms {
            let by_ms = offset - self.engine_offset_ms;
            self.engine_offset_ms = offset;
            self.engine
                .push_event(self.engine_ms(), Event::TimeStepped { by_ms });
        }
        let status = self.wall.status();
        let now = crate::time::format_utc(self.unix_ms());
        self.log(
            board,
            Level::Info,
            &format!("time: {} ({now})", status.as_str()),
        );
        self.refresh_status(board);
        self.apply(board).await
    }

    /// Wall-clock time (unix milliseconds) as the board knows it: from 1970 on until the first time sync.
    pub fn unix_ms(&self) -> u64 {
        self.wall.unix_ms(self.clock.now_ms())
    }

    /// The time as the engine knows it: the wall clock with the offset of the last step the engine was told about.
    /// The SNTP task moves the wall clock at any moment; an event stamped with the moved clock before the engine
    /// has its `TimeStepped` would have every time the engine keeps shifted twice (the repeated birth 56 years out).
    pub fn engine_ms(&self) -> u64 {
        (self.clock.now_ms() as i64 + self.engine_offset_ms).max(0) as u64
    }

    /// What the MQTT driver says.
    pub async fn mqtt_event<B: Board>(
        &mut self,
        board: &mut B,
        event: mqtt::Event,
    ) -> Option<Exit> {
        let now = self.engine_ms();
        match event {
            mqtt::Event::Connecting { host, port } => {
                self.log(
                    board,
                    Level::Info,
                    &format!("MQTT: connecting to {host}:{port}"),
                );
            }
            mqtt::Event::Connected { .. } => {
                self.mqtt_up = true;
                self.last_failure = None;
                self.engine.push_event(now, Event::MqttConnected);
            }
            mqtt::Event::Lost(why) | mqtt::Event::Failed(why) if self.mqtt_up => {
                self.mqtt_up = false;
                self.log(board, Level::Warn, &format!("MQTT: connection lost: {why}"));
                self.engine.push_event(now, Event::MqttDisconnected);
            }
            mqtt::Event::Lost(why) | mqtt::Event::Failed(why) => {
                // Retries repeat the same reason: say it once.
                if self.last_failure.as_deref() != Some(why.as_str()) {
                    self.log(
                        board,
                        Level::Error,
                        &format!("MQTT: cannot connect: {why} (retrying with backoff)"),
                    );
                    self.last_failure = Some(why);
                }
            }
            mqtt::Event::Left => {}
            mqtt::Event::Message { topic, payload } => {
                self.engine
                    .push_event(now, Event::MqttMessage { topic, payload });
            }
            mqtt::Event::TooLarge { topic, size } => {
                self.engine
                    .push_event(now, Event::MqttMessageTooLarge { topic, size });
            }
            mqtt::Event::Dropped(n) => self.log(
                board,
                Level::Warn,
                &format!(
                    "MQTT: {n} incoming message(s) dropped: the device was too busy to take them"
                ),
            ),
            mqtt::Event::Warning(w) => self.log(board, Level::Warn, &format!("MQTT: {w}")),
        }
        self.apply(board).await
    }

    /// Carries out everything the engine has queued, in order; a restart waits until all of it is done.
    async fn apply<B: Board>(&mut self, board: &mut B) -> Option<Exit> {
        let mut exit = None;
        while let Some(action) = self.engine.poll_action() {
            match action {
                Action::Publish {
                    topic,
                    payload,
                    retain,
                    ..
                } => {
                    // Waits while the driver's queue is full: nothing is dropped, nothing grows without bound.
                    self.mqtt
                        .commands
                        .send(Command::Publish {
                            topic,
                            payload: payload.into_bytes(),
                            retain,
                        })
                        .await;
                }
                Action::Subscribe { filter, .. } => {
                    self.mqtt.commands.send(Command::Subscribe(filter)).await
                }
                Action::MqttConnect(settings) => {
                    self.mqtt_up = false;
                    self.mqtt.commands.send(Command::Connect(settings)).await;
                }
                Action::ConfigureTime(ntp) => self.wall.config.signal(ntp),
                Action::MqttDisconnect => {
                    self.mqtt_up = false;
                    self.mqtt.commands.send(Command::Disconnect).await;
                }
                Action::ConfigurePin { pin, mode } => {
                    let pwm_hz = self
                        .engine
                        .config()
                        .gpio
                        .iter()
                        .find(|p| p.number == pin)
                        .map_or(5000, |p| p.pwm_frequency);
                    if let Err(why) = board.configure_pin(pin, mode, pwm_hz) {
                        self.log(board, Level::Error, &format!("GPIO{pin}: {why}"));
                    }
                }
                Action::SetPin { pin, level, duty } => {
                    board.set_pin(pin, level, duty);
                    if let Some((input, level)) = board.jumpered_input(pin) {
                        self.engine
                            .push_event(self.engine_ms(), Event::PinChanged { pin: input, level });
                    }
                }
                Action::RequestFrame => {
                    // The status published with this cycle is sampled now. No camera: frames come from the
                    // console (`frame ...`) through the simulated camera.
                    self.refresh_status(board);
                    let frame = self.engine.capture_simulated();
                    self.engine
                        .push_event(self.engine_ms(), Event::Frame(frame));
                }
                Action::ConsoleWrite(line) => {
                    self.console.line(&line);
                }
                Action::PersistConfig(text) => self.persist(board, storage::CONFIG, &text).await,
                Action::PersistFallbacks(text) => {
                    self.persist(board, storage::FALLBACKS, &text).await
                }
                Action::Reboot => exit = exit.or(Some(Exit::Reboot)),
                Action::EnterDownloadMode => exit = Some(Exit::Download),
                Action::Log { level, message } => self.log(board, level, &message),
            }
        }
        if exit.is_some() {
            self.leave_mqtt().await;
        }
        exit
    }

    async fn persist<B: Board>(&mut self, board: &mut B, key: u8, text: &str) {
        if let Err(why) = self.storage.save(key, text).await {
            let what = if key == storage::CONFIG {
                "config"
            } else {
                "fallback values"
            };
            self.log(
                board,
                Level::Error,
                &format!("flash: {what} not saved: {why}"),
            );
        }
    }

    /// Leaves MQTT in order before a restart, so no stale connection outlives the board (the engine has
    /// published `offline` first); gives up after [`MQTT_LEAVE_WAIT_MS`].
    async fn leave_mqtt(&mut self) {
        self.mqtt.commands.send(Command::Disconnect).await;
        let until = self.clock.now_ms() + MQTT_LEAVE_WAIT_MS;
        loop {
            match select(self.mqtt.events.receive(), self.clock.sleep_until(until)).await {
                Either::First(mqtt::Event::Left) | Either::Second(()) => return,
                Either::First(_) => {}
            }
        }
    }

    fn uptime_ms(&self) -> u64 {
        self.clock.now_ms().saturating_sub(self.booted_ms)
    }

    /// A log line: on the console (dropped if nobody reads it) and to the board's own log.
    pub fn log<B: Board>(&mut self, board: &mut B, level: Level, message: &str) {
        let line = crate::log::line(level, self.uptime_ms(), "meter", message);
        self.console.line(&line);
        board.log(&line);
    }

    /// A line as it is (boot banners, ROM messages) on the console.
    pub fn print(&mut self, line: &str) {
        self.console.line(line);
    }

    /// Console lines dropped because nobody read them.
    pub fn console_dropped(&self) -> u64 {
        self.console.dropped()
    }
}
