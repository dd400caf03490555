//! Values (the config document, the fallback values) in a NOR flash partition with sequential-storage, safe against
//! power loss at any point of a write, and larger than a flash page.
//!
//! sequential-storage writes one item atomically, but an item must fit in one flash page (4 KiB on the ESP32-C3) and
//! a config with TLS certificates does not. A value is therefore stored as chunks in one of two slots, then a header
//! naming the slot is written: until the header is written, the header still names the old slot, whose chunks are
//! untouched. After the switch the old slot's chunks are removed so they do not fill the partition.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use embedded_storage_async::nor_flash::MultiwriteNorFlash;
use sequential_storage::cache::{Cache, Uncached};
use sequential_storage::map::{MapConfig, MapStorage};

/// The largest value a slot holds.
pub const MAX_VALUE: usize = 16 * 1024;
/// Chunk payload: four chunks and their item headers fit a 4 KiB page.
const CHUNK: usize = 960;
const MAX_CHUNKS: usize = MAX_VALUE.div_ceil(CHUNK);
const HEADER: u16 = 0xFF;
/// slot (1) + chunk count (1) + length (4) + checksum (4).
const HEADER_LEN: usize = 10;

/// Why a value could not be loaded or saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Larger than [`MAX_VALUE`].
    TooBig(usize),
    /// The flash or sequential-storage failed (the text is its error).
    Flash(String),
    /// A header names chunks that are missing or do not add up (flash damaged outside this store).
    Corrupt(&'static str),
}

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StoreError::TooBig(n) => {
                write!(f, "{n} bytes is more than the {MAX_VALUE} a value may have")
            }
            StoreError::Flash(e) => write!(f, "flash: {e}"),
            StoreError::Corrupt(what) => write!(f, "stored value is damaged: {what}"),
        }
    }
}

/// Values under one-byte ids in a flash range.
pub struct Store<S: MultiwriteNorFlash> {
    map: MapStorage<u16, S, Cache<Uncached, Uncached, Uncached, u16>>,
    buf: Vec<u8>,
}

fn chunk_key(id: u8, slot: u8, index: usize) -> u16 {
    (u16::from(id) << 8) | (u16::from(slot) << 7) | index as u16
}

fn header_key(id: u8) -> u16 {
    (u16::from(id) << 8) | HEADER
}

/// FNV-1a: catches chunks that do not belong together (not an integrity check against an attacker).
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811C_9DC5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

struct Header {
    slot: u8,
    count: usize,
    len: usize,
    checksum: u32,
}

impl<S: MultiwriteNorFlash> Store<S> {
    /// The store over `range` of `flash` (whole erase pages; at least 8 for values near [`MAX_VALUE`]).
    pub fn new(flash: S, range: Range<u32>) -> Store<S> {
        Store {
            map: MapStorage::new(flash, MapConfig::new(range), Cache::new_uncached()),
            buf: vec![0u8; CHUNK + 64],
        }
    }

    fn flash_error<E: core::fmt::Debug>(e: E) -> StoreError {
        StoreError::Flash(format!("{e:?}"))
    }

    async fn header(&mut self, id: u8) -> Result<Option<Header>, StoreError> {
        let raw = self
            .map
            .fetch_item::<&[u8]>(&mut self.buf, &header_key(id))
            .await
            .map_err(Self::flash_error)?;
        let Some(raw) = raw else { return Ok(None) };
        let raw: [u8; HEADER_LEN] = raw
            .try_into()
            .map_err(|_| StoreError::Corrupt("header length"))?;
        Ok(Some(Header {
            slot: raw[0] & 1,
            count: usize::from(raw[1]),
            len: u32::from_le_bytes([raw[2], raw[3], raw[4], raw[5]]) as usize,
            checksum: u32::from_le_bytes([raw[6], raw[7], raw[8], raw[9]]),
        }))
    }

    /// The value saved last under `id`; `None` when there never was one.
    pub async fn load(&mut self, id: u8) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(header) = self.header(id).await? else {
            return Ok(None);
        };
        if header.count > MAX_CHUNKS || header.len > MAX_VALUE {
            return Err(StoreError::Corrupt("header out of range"));
        }
        let mut value = Vec::with_capacity(header.len);
        for index in 0..header.count {
            let chunk = self
                .map
                .fetch_item::<&[u8]>(&mut self.buf, &chunk_key(id, header.slot, index))
                .await
                .map_err(Self::flash_error)?
                .ok_or(StoreError::Corrupt("a chunk is missing"))?;
            value.extend_from_slice(chunk);
        }
        if value.len() != header.len || checksum(&value) != header.checksum {
            return Err(StoreError::Corrupt("chunks do not match the header"));
        }
        Ok(Some(value))
    }

    /// Saves `value` under `id`. After a power loss at any point, [`Store::load`] gives the old value or this one.
    pub async fn save(&mut self, id: u8, value: &[u8]) -> Result<(), StoreError> {
        if value.len() > MAX_VALUE {
            return Err(StoreError::TooBig(value.len()));
        }
        // A damaged header is replaced like a missing one.
        let old = self.header(id).await.ok().flatten();
        let slot = old.as_ref().map_or(0, |h| 1 - h.slot);
        let chunks: Vec<&[u8]> = if value.is_empty() {
            Vec::new()
        } else {
            value.chunks(CHUNK).collect()
        };
        for (index, chunk) in chunks.iter().enumerate() {
            self.map
                .store_item(&mut self.buf, &chunk_key(id, slot, index), chunk)
                .await
                .map_err(Self::flash_error)?;
        }
        let mut header = [0u8; HEADER_LEN];
        header[0] = slot;
        header[1] = chunks.len() as u8;
        header[2..6].copy_from_slice(&(value.len() as u32).to_le_bytes());
        header[6..10].copy_from_slice(&checksum(value).to_le_bytes());
        self.map
            .store_item(&mut self.buf, &header_key(id), &header.as_slice())
            .await
            .map_err(Self::flash_error)?;
        // The old slot is garbage now (also what an earlier interrupted save left in it).
        for index in 0..MAX_CHUNKS {
            self.map
                .remove_item(&mut self.buf, &chunk_key(id, 1 - slot, index))
                .await
                .map_err(Self::flash_error)?;
        }
        Ok(())
    }
}
