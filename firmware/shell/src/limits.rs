//! One set of limits for every board: the virtual board runs with the ESP32-C3's, so the scenario suite meets
//! what the chip meets.

/// MQTT packets from the broker larger than this are skipped (read past, acknowledged, reported), never held.
pub const MQTT_MAX_PACKET: usize = 16 * 1024;
/// QoS 1 publishes sent and not yet acknowledged. While connected the driver takes no more (the shell waits);
/// while disconnected a full outbox gives up a superseded or unretained message first.
pub const MQTT_MAX_INFLIGHT: usize = 16;
/// Commands (publishes, subscriptions, connects) queued for the MQTT driver; the shell waits when it is full.
pub const MQTT_COMMANDS: usize = 8;
/// Events from the MQTT driver the shell has not taken yet. Beyond this, incoming messages are dropped and
/// counted (a flood of control messages); connection events are never dropped.
pub const MQTT_EVENTS: usize = 16;
/// First and longest pause between connection attempts.
pub const MQTT_BACKOFF_FIRST_MS: u64 = 100;
pub const MQTT_BACKOFF_MAX_MS: u64 = 5_000;
/// A TCP (and TLS) connection to the broker must be up within this.
pub const MQTT_CONNECT_TIMEOUT_MS: u64 = 10_000;
/// A write to the broker that does not complete within this means a dead connection.
pub const MQTT_WRITE_TIMEOUT_MS: u64 = 10_000;
/// How long a reboot waits for MQTT to be left in order (the session's own limit is 2 s).
pub const MQTT_LEAVE_WAIT_MS: u64 = 3_000;

/// Console output not yet sent. A line that does not fit is dropped whole and counted, as a UART drops what
/// nobody reads; the firmware never waits for the console.
pub const UART_BUFFER: usize = 4096;
/// Inputs (console bytes, HTTP requests, GPIO changes) waiting for the shell.
pub const INBOX: usize = 16;
/// HTTP connections served at once; further ones wait (virtual board) or are refused (ESP32-C3).
pub const HTTP_CONNECTIONS: usize = 2;
/// GPIO line clients (virtual board) at once.
pub const GPIO_CONNECTIONS: usize = 4;

/// The board reports its status (heap, RSSI, temperature, time sync) at boot, before every cycle and this often.
pub const BOARD_STATUS_EVERY_MS: u64 = 10_000;

/// The heap the firmware has on an ESP32-C3: the 72 KiB region `heap_allocator!` gives it (the 64 KiB reclaimed
/// from the bootloader go to the Wi-Fi and IP stacks, whose own use is not modelled). The virtual board meters the
/// firmware's allocations against this.
pub const FIRMWARE_HEAP: usize = 72 * 1024;
