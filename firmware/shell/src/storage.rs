//! The device's saved values (config document, fallback values) in the flash's `storage` partition through
//! `meter-store`, on every board: the virtual board keeps them in its SPI flash model exactly where the ESP32-C3
//! keeps them, so every scenario and power-loss test runs the chip's storage layout.

use alloc::format;
use alloc::string::String;
use core::ops::Range;

use embedded_storage_async::nor_flash::MultiwriteNorFlash;

/// Key of the config document.
pub const CONFIG: u8 = 1;
/// Key of the fallback values.
pub const FALLBACKS: u8 = 2;
/// The `storage` data partition of `firmware/esp32c3/partitions.csv` (offset 0x310000, 64 KiB).
pub const RANGE: Range<u32> = 0x31_0000..0x32_0000;

/// Saved values by key.
pub struct Storage<F: MultiwriteNorFlash> {
    store: meter_store::Store<F>,
}

impl<F: MultiwriteNorFlash> Storage<F> {
    /// The store in the `storage` partition of `flash` (the whole chip, addressed as on the ESP32-C3).
    pub fn new(flash: F) -> Self {
        Storage {
            store: meter_store::Store::new(flash, RANGE),
        }
    }

    /// The text saved under `key`: `Ok(None)` when there is none, `Err` with the reason when it is unreadable
    /// (the device then runs on defaults and says why).
    pub async fn load(&mut self, key: u8) -> Result<Option<String>, String> {
        match self.store.load(key).await {
            Ok(Some(bytes)) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| format!("saved value {key} is not UTF-8")),
            Ok(None) => Ok(None),
            Err(e) => Err(format!("saved value {key}: {e}")),
        }
    }

    /// Saves `text` under `key`, power-loss safe (the old value or the new one, never a torn one).
    pub async fn save(&mut self, key: u8, text: &str) -> Result<(), String> {
        self.store
            .save(key, text.as_bytes())
            .await
            .map_err(|e| format!("{e}"))
    }
}
