//! What a board provides: its clock and the hardware effects the shell cannot do itself. Everything else (what to
//! do, when, in which order, with which limits) is the shell's and the core's, shared by every board.

use alloc::string::String;

use meter_core::engine::BoardStatus;
use meter_core::gpio::PinMode;

/// The camera every board has today: none, frames come from the console (`frame ...`) through the core's simulated
/// camera. Reported the same by every board, so device info differs between boards only where the hardware does.
pub const CONSOLE_CAMERA_TYPE: &str = "simulated (frames from the console)";
/// No camera clock runs.
pub const CONSOLE_CAMERA_FREQUENCY_MHZ: u32 = 0;

/// Time as a board keeps it.
// The boards run single-threaded executors (tokio current-thread, embassy): no `Send` bounds on these futures.
#[allow(async_fn_in_trait)]
pub trait Clock {
    /// Milliseconds since the board started; never goes back.
    fn now_ms(&self) -> u64;
    /// Returns once [`Clock::now_ms`] has reached `ms`.
    async fn sleep_until(&self, ms: u64);
}

/// The hardware effects of one board.
// Single-threaded executors on every board: no `Send` bound on the future.
#[allow(async_fn_in_trait)]
pub trait Board {
    /// Sets a pin up for a mode (input with pull, output, PWM at `pwm_hz`); an error is logged, the rest goes on.
    fn configure_pin(&mut self, pin: u8, mode: PinMode, pwm_hz: u32) -> Result<(), String>;
    /// Drives an output (level, or PWM duty for PWM modes).
    fn set_pin(&mut self, pin: u8, level: bool, duty: Option<u32>);
    /// After [`Board::set_pin`] on `from`: the input pin a wire carries it to (the virtual board's jumpers) and the
    /// level that input now reads. The shell feeds it to the engine as a pin change.
    fn jumpered_input(&mut self, from: u8) -> Option<(u8, bool)> {
        let _ = from;
        None
    }
    /// A log line also goes here (the virtual board's stderr); the console gets it from the shell.
    fn log(&mut self, line: &str) {
        let _ = line;
    }
    /// Heap, RSSI, temperature: sampled now (the shell fills in the time status).
    fn status(&mut self) -> BoardStatus;
    /// The next input level change the board sees itself (a board that samples its pins), as `(pin, level)`.
    /// Boards whose inputs arrive through the inbox never return.
    async fn next_input(&mut self) -> (u8, bool) {
        core::future::pending().await
    }
}
