//! Config and fallback values in the `storage` data partition (see partitions.csv), written with
//! sequential-storage: a write is appended and only then becomes current, so a power loss keeps the old value or the
//! new one, never a torn one.

use alloc::string::String;
use alloc::vec;

use embassy_embedded_hal::adapter::BlockingAsync;
use esp_hal::peripherals::FLASH;
use esp_storage::FlashStorage;
use sequential_storage::cache::{Cache, Uncached};
use sequential_storage::map::{MapConfig, MapStorage};

pub const CONFIG: u8 = 1;
pub const FALLBACKS: u8 = 2;
/// The `storage` partition of partitions.csv.
const RANGE: core::ops::Range<u32> = 0x310000..0x320000;
const MAX_VALUE: usize = 16 * 1024;

type Flash = BlockingAsync<FlashStorage<'static>>;

pub struct Store {
    map: MapStorage<u8, Flash, Cache<Uncached, Uncached, Uncached, u8>>,
}

impl Store {
    pub fn new(flash: FLASH<'static>) -> Store {
        let flash = BlockingAsync::new(FlashStorage::new(flash));
        Store {
            map: MapStorage::new(flash, MapConfig::new(RANGE), Cache::new_uncached()),
        }
    }

    /// The stored text under `key`; None when never written or unreadable (then the defaults apply).
    pub async fn load(&mut self, key: u8) -> Option<String> {
        let mut buf = vec![0u8; MAX_VALUE + 64];
        match self.map.fetch_item::<&[u8]>(&mut buf, &key).await {
            Ok(Some(bytes)) => core::str::from_utf8(bytes).ok().map(String::from),
            _ => None,
        }
    }

    pub async fn save(&mut self, key: u8, text: &str) -> Result<(), String> {
        if text.len() > MAX_VALUE {
            return Err(alloc::format!(
                "{} bytes is more than the {MAX_VALUE} the store takes",
                text.len()
            ));
        }
        let mut buf = vec![0u8; MAX_VALUE + 64];
        self.map
            .store_item(&mut buf, &key, &text.as_bytes())
            .await
            .map_err(|e| alloc::format!("{e:?}"))
    }
}
