//! The board's wall clock: its monotonic clock plus an offset learnt from an SNTP server. Until the first sync the
//! clock reads from 1970 on, as an ESP32's does after power-on; the engine sees that time, and `ntp_syncstatus`
//! says `Not Synchronized`. One SNTP client task per board asks the configured server, at once, then every hour
//! (again within seconds after a failure).

use alloc::format;
use alloc::string::String;
use core::cell::Cell;

use embassy_futures::select::{select, Either};
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::signal::Signal;
use meter_core::config::NtpConfig;
use meter_core::engine::TimeStatus;
use net_proto::sntp;

use crate::board::Clock;

/// After a sync, the next one (ESP-IDF's default SNTP interval).
pub const RESYNC_MS: u64 = 3_600_000;
/// After a failed attempt, the next one.
pub const RETRY_MS: u64 = 10_000;
/// How long a server has to answer.
pub const REPLY_TIMEOUT_MS: u64 = 2_000;

/// How a board sends one UDP datagram and waits for the answer.
// Single-threaded executors on every board: no `Send` bound on the future.
#[allow(async_fn_in_trait)]
pub trait Udp {
    /// Sends `request` to `host:port` (resolving the name) and returns the length of the first answer from there.
    async fn exchange(
        &mut self,
        host: &str,
        port: u16,
        request: &[u8],
        answer: &mut [u8],
    ) -> Result<usize, String>;
}

#[derive(Debug, Clone, Copy)]
struct State {
    /// Wall clock minus monotonic clock, in milliseconds.
    offset_ms: i64,
    status: TimeStatus,
    /// Set when the status changed and the shell has not seen it yet.
    changed: bool,
}

/// The wall clock, shared by the SNTP task (which sets it) and the shell (which reads it).
pub struct WallClock<M: RawMutex> {
    state: Mutex<M, Cell<State>>,
    /// Wakes the shell when the status changes (a sync, network time turned off).
    pub changed: Signal<M, ()>,
    /// What the SNTP task should do (set by the shell from the config).
    pub config: Signal<M, NtpConfig>,
}

impl<M: RawMutex> WallClock<M> {
    pub const fn new() -> Self {
        WallClock {
            state: Mutex::new(Cell::new(State {
                offset_ms: 0,
                status: TimeStatus::NotSynchronized,
                changed: false,
            })),
            changed: Signal::new(),
            config: Signal::new(),
        }
    }

    /// Unix milliseconds at monotonic time `mono_ms`.
    pub fn unix_ms(&self, mono_ms: u64) -> u64 {
        let offset = self.state.lock(|s| s.get().offset_ms);
        (mono_ms as i64 + offset).max(0) as u64
    }

    pub fn status(&self) -> TimeStatus {
        self.state.lock(|s| s.get().status)
    }

    /// Sets the clock: wall time `unix_ms` at monotonic time `mono_ms`, with this status. A step of a second or
    /// more counts as a change too (the engine's times move along).
    pub fn set(&self, mono_ms: u64, unix_ms: u64, status: TimeStatus) {
        self.update(|s| {
            let offset = unix_ms as i64 - mono_ms as i64;
            s.changed |= (offset - s.offset_ms).abs() >= 1000;
            s.offset_ms = offset;
            s.status = status;
        });
    }

    /// Wall clock minus monotonic clock (milliseconds).
    pub fn offset_ms(&self) -> i64 {
        self.state.lock(|s| s.get().offset_ms)
    }

    fn set_status(&self, status: TimeStatus) {
        self.update(|s| s.status = status);
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        let changed = self.state.lock(|cell| {
            let mut s = cell.get();
            let before = s.status;
            f(&mut s);
            s.changed |= s.status != before;
            let changed = s.changed;
            cell.set(s);
            changed
        });
        if changed {
            self.changed.signal(());
        }
    }

    /// Whether the status changed since the last call (the shell then reports the board status at once).
    pub fn take_change(&self) -> bool {
        self.state.lock(|cell| {
            let mut s = cell.get();
            let changed = s.changed;
            s.changed = false;
            cell.set(s);
            changed
        })
    }
}

impl<M: RawMutex> Default for WallClock<M> {
    fn default() -> Self {
        Self::new()
    }
}

/// `YYYY-MM-DDTHH:MM:SS+0000` of a unix time (UTC), for log lines.
pub fn format_utc(unix_ms: u64) -> String {
    meter_core::time::TimeZone::UTC.format(unix_ms as i64 / 1000)
}

/// The SNTP client: runs for the life of the board.
pub async fn run<M: RawMutex, C: Clock, U: Udp>(wall: &WallClock<M>, clock: &C, udp: &mut U) -> ! {
    let mut config = wall.config.wait().await;
    loop {
        if !config.sync_enabled {
            wall.set_status(TimeStatus::Disabled);
            config = wall.config.wait().await;
            continue;
        }
        let (host, port) = config.server();
        let next = match sync_once(wall, clock, udp, &host, port).await {
            Ok(()) => RESYNC_MS,
            Err(_) => RETRY_MS,
        };
        // Until the next attempt, or at once with a new config.
        let until = clock.now_ms() + next;
        if let Either::First(new) = select(wall.config.wait(), clock.sleep_until(until)).await {
            if new != config && wall.status() == TimeStatus::Disabled {
                wall.set_status(TimeStatus::NotSynchronized);
            }
            config = new;
        }
    }
}

/// One request to `host:port`; a good answer sets the clock.
pub async fn sync_once<M: RawMutex, C: Clock, U: Udp>(
    wall: &WallClock<M>,
    clock: &C,
    udp: &mut U,
    host: &str,
    port: u16,
) -> Result<(), String> {
    if wall.status() == TimeStatus::Disabled {
        wall.set_status(TimeStatus::NotSynchronized);
    }
    let sent_mono = clock.now_ms();
    let sent = wall.unix_ms(sent_mono);
    let request = sntp::request(sent);
    let mut answer = [0u8; 64];
    let deadline = sent_mono + REPLY_TIMEOUT_MS;
    let n = match select(
        udp.exchange(host, port, &request, &mut answer),
        clock.sleep_until(deadline),
    )
    .await
    {
        Either::First(result) => result?,
        Either::Second(()) => {
            return Err(format!(
                "no answer from {host}:{port} within {} s",
                REPLY_TIMEOUT_MS / 1000
            ))
        }
    };
    let received_mono = clock.now_ms();
    let received = wall.unix_ms(received_mono);
    let sample = sntp::parse(&answer[..n], sent, received).map_err(|e| format!("{e}"))?;
    let now = (received as i64 + sample.offset_ms).max(0) as u64;
    wall.set(received_mono, now, TimeStatus::Synchronized);
    Ok(())
}
