//! After a panic (esp-backtrace prints the message and the backtrace on the console): restart, as ESP-IDF does by
//! default, instead of halting. A meter in the field must come back by itself; the rig sees the panic in the console
//! log and the device boot again.

/// Called by esp-backtrace (`custom-halt`) once the panic is printed.
#[unsafe(no_mangle)]
extern "Rust" fn custom_halt() -> ! {
    esp_hal::system::software_reset()
}
