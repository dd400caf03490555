//! The contract between the engine and a board: what goes in ([`Event`]), what comes out ([`Action`]), and the
//! facts and settings they carry.

use alloc::string::String;
use alloc::vec::Vec;

use crate::camera::Frame;

/// Static facts a board reports once at boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoardInfo {
    pub board_type: String,
    pub chip_model: String,
    pub chip_cores: u32,
    pub chip_revision: String,
    pub chip_frequency_mhz: u32,
    pub camera_type: String,
    pub camera_frequency_mhz: u32,
    pub sd_capacity_mb: u64,
    pub sd_partition_mb: u64,
    pub ip_address: String,
    pub mac_address: String,
    pub firmware_version: String,
}

/// Dynamic facts a board samples (sent before each cycle, or whenever they change).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BoardStatus {
    pub wlan_rssi: i32,
    pub chip_temp_c: f64,
    /// Heap figures in bytes, published as bytes.
    pub heap_total_free: u64,
    pub heap_internal_free: u64,
    pub heap_internal_largest_free: u64,
    pub heap_internal_min_free: u64,
    pub heap_spiram_free: u64,
    pub heap_spiram_largest_free: u64,
    pub heap_spiram_min_free: u64,
    pub sd_partition_free_mb: u64,
    /// Where the board's clock stands with the network time.
    pub time: TimeStatus,
}

/// The board's network time, as `ntp_syncstatus` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TimeStatus {
    Synchronized,
    #[default]
    NotSynchronized,
    /// Network time is turned off (`network.time.ntp.timesyncenabled` false).
    Disabled,
}

impl TimeStatus {
    /// The reference's texts (`time_sntp.cpp` getNTPSyncStatus).
    pub fn as_str(self) -> &'static str {
        match self {
            TimeStatus::Synchronized => "Synchronized",
            TimeStatus::NotSynchronized => "Not Synchronized",
            TimeStatus::Disabled => "Disabled",
        }
    }
}

/// What the board read from its flash at boot.
#[derive(Debug, Clone, Default)]
pub struct Boot {
    pub info: BoardInfo,
    /// The persisted config document (JSON), if any.
    pub stored_config: Option<String>,
    /// The persisted fallback values (JSON array of [`StoredFallback`]), if any.
    pub stored_fallbacks: Option<String>,
}

/// An HTTP request to the web interface / REST API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Vec<u8>,
}

/// The reply to an [`HttpRequest`]: `body` between two parts that live in flash (`head` and `tail`, empty for most
/// replies). A board sends the three one after another, so a page is never copied into one buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub head: &'static str,
    pub body: String,
    pub tail: &'static str,
}

impl HttpResponse {
    /// A reply that is all `body`.
    pub fn new(status: u16, content_type: &'static str, body: String) -> HttpResponse {
        HttpResponse {
            status,
            content_type,
            head: "",
            body,
            tail: "",
        }
    }

    /// The parts in the order they are sent.
    pub fn parts(&self) -> [&str; 3] {
        [self.head, &self.body, self.tail]
    }

    /// Length of the whole body (the Content-Length header).
    pub fn content_length(&self) -> usize {
        self.head.len() + self.body.len() + self.tail.len()
    }

    /// The whole body in one string (tests, diagnostics).
    pub fn text(&self) -> String {
        self.parts().concat()
    }
}

/// Inputs to the device.
#[derive(Debug, Clone)]
pub enum Event {
    Booted(Boot),
    BoardStatus(BoardStatus),
    MqttConnected,
    MqttDisconnected,
    MqttMessage {
        topic: String,
        payload: Vec<u8>,
    },
    /// A message the board's MQTT client could not take (larger than its packet limit): skipped, acknowledged, and
    /// reported here so the device can say so.
    MqttMessageTooLarge {
        topic: String,
        size: usize,
    },
    /// Time passes (drives the automatic mode).
    Tick,
    /// The board's wall clock was stepped by this much (a network time sync): times the engine keeps move along, so
    /// an interval, a debounce or the uptime do not jump with the clock.
    TimeStepped {
        by_ms: i64,
    },
    /// The answer to [`Action::RequestFrame`].
    Frame(Frame),
    PinChanged {
        pin: u8,
        level: bool,
    },
    ConsoleLine(String),
}

/// How the board connects to the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keepalive_s: u16,
    pub ca_cert: String,
    pub client_cert: String,
    pub client_key: String,
    pub lwt_topic: String,
    pub lwt_payload: &'static str,
}

/// Log levels of [`Action::Log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    /// The letter an ESP-IDF log line starts with (`E (123) tag: ...`).
    pub fn letter(self) -> char {
        match self {
            Level::Error => 'E',
            Level::Warn => 'W',
            Level::Info => 'I',
            Level::Debug => 'D',
        }
    }
}

/// Outputs of the device, for the board to carry out.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Publish {
        topic: String,
        payload: String,
        retain: bool,
        qos: u8,
    },
    Subscribe {
        filter: String,
        qos: u8,
    },
    /// (Re)connect to the broker with these settings, dropping any current connection.
    MqttConnect(MqttSettings),
    /// Where the board's clock gets network time from (at boot and when `network.time.ntp` changes).
    ConfigureTime(crate::config::NtpConfig),
    MqttDisconnect,
    ConfigurePin {
        pin: u8,
        mode: crate::gpio::PinMode,
    },
    SetPin {
        pin: u8,
        level: bool,
        duty: Option<u32>,
    },
    /// Take an image and evaluate it; answer with [`Event::Frame`].
    RequestFrame,
    ConsoleWrite(String),
    /// Store this config document (pretty JSON) power-loss safe.
    PersistConfig(String),
    /// Store the fallback values (JSON array).
    PersistFallbacks(String),
    Reboot,
    EnterDownloadMode,
    Log {
        level: Level,
        message: String,
    },
}

/// `process_state` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    Initialization,
    InitializationDelayed,
    InitializationWaitingForTimeSync,
    SetupMode,
    IdleNoAutostart,
    IdleWaitingForAutostart,
    TakeImage,
    ImageAlignment,
    RoiDigit,
    RoiAnalog,
    PostProcessing,
    PublishToMqtt,
    AdditionalTasks,
    PostProcessEventHandling,
}

impl ProcessState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initialization => "Initialization",
            Self::InitializationDelayed => "Initialization - Delayed",
            Self::InitializationWaitingForTimeSync => "Initialization - Waiting For Time Sync",
            Self::SetupMode => "Setup Mode",
            Self::IdleNoAutostart => "Idle - No Autostart",
            Self::IdleWaitingForAutostart => "Idle - Waiting For Autostart",
            Self::TakeImage => "Take Image",
            Self::ImageAlignment => "Image Alignment",
            Self::RoiDigit => "ROI Processing - Digit",
            Self::RoiAnalog => "ROI Processing - Analog",
            Self::PostProcessing => "Post-Processing",
            Self::PublishToMqtt => "Publish to MQTT",
            Self::AdditionalTasks => "Additional Tasks",
            Self::PostProcessEventHandling => "Post Process Event Handling",
        }
    }
}
