//! Config and fallback values in the `storage` data partition (see partitions.csv) through `meter_store`: power-loss
//! safe (the old value or the new one, never a torn one) and not limited to one flash page. Host-tested with a NOR
//! flash model that loses power at every write of a save (firmware/store/tests/power_loss.rs).

use alloc::format;
use alloc::string::String;

use embassy_embedded_hal::adapter::BlockingAsync;
use esp_hal::peripherals::FLASH;
use esp_storage::FlashStorage;

use crate::console;

pub const CONFIG: u8 = 1;
pub const FALLBACKS: u8 = 2;
/// The `storage` partition of partitions.csv.
const RANGE: core::ops::Range<u32> = 0x310000..0x320000;

pub struct Store {
    inner: meter_store::Store<BlockingAsync<FlashStorage<'static>>>,
}

impl Store {
    pub fn new(flash: FLASH<'static>) -> Store {
        let flash = BlockingAsync::new(FlashStorage::new(flash));
        Store {
            inner: meter_store::Store::new(flash, RANGE),
        }
    }

    /// The stored text under `key`; None when never written or unreadable (then the defaults apply, and the console
    /// says why).
    pub async fn load(&mut self, key: u8) -> Option<String> {
        match self.inner.load(key).await {
            Ok(Some(bytes)) => match String::from_utf8(bytes) {
                Ok(text) => Some(text),
                Err(_) => {
                    console::line(&format!(
                        "E (0) storage: value {key} is not UTF-8; using defaults"
                    ));
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                console::line(&format!("E (0) storage: value {key}: {e}; using defaults"));
                None
            }
        }
    }

    pub async fn save(&mut self, key: u8, text: &str) -> Result<(), String> {
        self.inner
            .save(key, text.as_bytes())
            .await
            .map_err(|e| format!("{e}"))
    }
}
