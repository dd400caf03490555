//! The SPI NOR flash chip (4 MiB) behind the ROM loader, kept in `flash.bin` in the state directory.
//!
//! NOR semantics: erase sets a sector to 0xFF, a write can only clear bits. Every write lands in the file at once
//! and unsynced, like a real chip mid-flash: a power loss keeps what was written so far. The ROM loader flashes it,
//! the bootloader boots from it, and the firmware keeps its config in its `storage` partition ([`SharedFlash`]).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use std::cell::RefCell;
use std::rc::Rc;

use anyhow::{Context, Result};
use embedded_storage_async::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

pub const FILE: &str = "flash.bin";
pub const SIZE: usize = 4 * 1024 * 1024;
pub const SECTOR: usize = 4096;
/// JEDEC id answered to RDID (0x9F): XMC, 4 MiB (capacity byte 0x16).
pub const JEDEC_ID: u32 = 0x16_40_20;

/// Why the chip refused an operation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlashError {
    #[error("0x{offset:x}+{len} is outside the {SIZE}-byte flash")]
    OutOfRange { offset: usize, len: usize },
    #[error("erase at 0x{offset:x} (+{len}) is not sector-aligned")]
    Unaligned { offset: usize, len: usize },
    #[error("flash file: {0}")]
    Io(String),
}

/// The chip's contents, mirrored to a file once anything was written.
pub struct SpiFlash {
    data: Vec<u8>,
    path: PathBuf,
    file: Option<File>,
}

impl SpiFlash {
    /// Opens the chip of a state directory; a board that was never flashed has no file (all erased).
    pub fn open(dir: &Path) -> Result<SpiFlash> {
        let path = dir.join(FILE);
        let mut data = vec![0xFF; SIZE];
        let file = if path.exists() {
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let n = buf.len().min(SIZE);
            data[..n].copy_from_slice(&buf[..n]);
            Some(f)
        } else {
            None
        };
        Ok(SpiFlash { data, path, file })
    }

    /// An in-memory chip (unit tests, fuzzing).
    pub fn in_memory() -> SpiFlash {
        SpiFlash {
            data: vec![0xFF; SIZE],
            path: PathBuf::new(),
            file: None,
        }
    }

    /// Whether anything was ever flashed: a byte outside the firmware's own `storage` partition is not erased. A
    /// never-flashed board runs its factory firmware (which keeps its config in `storage` all the same).
    pub fn is_programmed(&self) -> bool {
        let storage = meter_shell::storage::RANGE;
        let (start, end) = (storage.start as usize, storage.end as usize);
        self.data[..start]
            .iter()
            .chain(&self.data[end..])
            .any(|&b| b != 0xFF)
    }

    pub fn contents(&self) -> &[u8] {
        &self.data
    }

    pub fn read(&self, offset: usize, len: usize) -> Result<&[u8], FlashError> {
        check_range(offset, len)?;
        Ok(&self.data[offset..offset + len])
    }

    /// Erases whole sectors.
    pub fn erase(&mut self, offset: usize, len: usize) -> Result<(), FlashError> {
        check_range(offset, len)?;
        if !offset.is_multiple_of(SECTOR) || !len.is_multiple_of(SECTOR) {
            return Err(FlashError::Unaligned { offset, len });
        }
        self.data[offset..offset + len].fill(0xFF);
        self.persist(offset, len)
    }

    /// Erases every sector touched by `offset..offset+len`.
    pub fn erase_covering(&mut self, offset: usize, len: usize) -> Result<(), FlashError> {
        let start = offset / SECTOR * SECTOR;
        let end = (offset + len).div_ceil(SECTOR) * SECTOR;
        self.erase(start, end.min(SIZE).max(start) - start)
    }

    /// Programs bytes (bits can only go from 1 to 0, as on NOR flash).
    pub fn write(&mut self, offset: usize, bytes: &[u8]) -> Result<(), FlashError> {
        check_range(offset, bytes.len())?;
        for (cell, b) in self.data[offset..offset + bytes.len()]
            .iter_mut()
            .zip(bytes)
        {
            *cell &= *b;
        }
        self.persist(offset, bytes.len())
    }

    fn persist(&mut self, offset: usize, len: usize) -> Result<(), FlashError> {
        if self.path.as_os_str().is_empty() {
            return Ok(());
        }
        let io = |e: std::io::Error| FlashError::Io(e.to_string());
        if self.file.is_none() {
            // First write: the whole chip goes to disk, so the file always mirrors all of it.
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&self.path)
                .map_err(io)?;
            f.write_all(&self.data).map_err(io)?;
            self.file = Some(f);
            return Ok(());
        }
        if let Some(f) = self.file.as_mut() {
            f.seek(SeekFrom::Start(offset as u64)).map_err(io)?;
            f.write_all(&self.data[offset..offset + len]).map_err(io)?;
        }
        Ok(())
    }
}

/// The chip as the firmware's storage sees it (`embedded-storage-async` NOR flash, the ESP32-C3's alignment: 4-byte
/// reads and writes, 4 KiB erase pages), shared with the ROM loader: both work on the same chip, as on a board.
#[derive(Clone)]
pub struct SharedFlash(pub Rc<RefCell<SpiFlash>>);

/// A refused storage operation.
#[derive(Debug)]
pub struct NorError(FlashError);

impl NorFlashError for NorError {
    fn kind(&self) -> NorFlashErrorKind {
        match self.0 {
            FlashError::OutOfRange { .. } => NorFlashErrorKind::OutOfBounds,
            FlashError::Unaligned { .. } => NorFlashErrorKind::NotAligned,
            FlashError::Io(_) => NorFlashErrorKind::Other,
        }
    }
}

impl ErrorType for SharedFlash {
    type Error = NorError;
}

const ALIGN: usize = 4;

fn aligned(offset: usize, len: usize) -> Result<(), NorError> {
    if !offset.is_multiple_of(ALIGN) || !len.is_multiple_of(ALIGN) {
        return Err(NorError(FlashError::Unaligned { offset, len }));
    }
    Ok(())
}

impl ReadNorFlash for SharedFlash {
    const READ_SIZE: usize = ALIGN;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), NorError> {
        let offset = offset as usize;
        aligned(offset, bytes.len())?;
        let chip = self.0.borrow();
        bytes.copy_from_slice(chip.read(offset, bytes.len()).map_err(NorError)?);
        Ok(())
    }

    fn capacity(&self) -> usize {
        SIZE
    }
}

impl NorFlash for SharedFlash {
    const WRITE_SIZE: usize = ALIGN;
    const ERASE_SIZE: usize = SECTOR;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), NorError> {
        let (from, to) = (from as usize, to as usize);
        self.0
            .borrow_mut()
            .erase(from, to.saturating_sub(from))
            .map_err(NorError)
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), NorError> {
        let offset = offset as usize;
        aligned(offset, bytes.len())?;
        self.0.borrow_mut().write(offset, bytes).map_err(NorError)
    }
}

/// NOR flash: a write only clears bits, so writing twice without an erase is allowed (sequential-storage relies on it).
impl MultiwriteNorFlash for SharedFlash {}

fn check_range(offset: usize, len: usize) -> Result<(), FlashError> {
    match offset.checked_add(len) {
        Some(end) if end <= SIZE => Ok(()),
        _ => Err(FlashError::OutOfRange { offset, len }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_clear_bits_until_erased() {
        let mut f = SpiFlash::in_memory();
        f.write(0, &[0x0F]).unwrap();
        f.write(0, &[0xF0]).unwrap();
        assert_eq!(f.read(0, 1).unwrap(), &[0x00]);
        f.erase_covering(0, 1).unwrap();
        assert_eq!(f.read(0, 1).unwrap(), &[0xFF]);
        assert!(matches!(
            f.erase(1, SECTOR),
            Err(FlashError::Unaligned { .. })
        ));
        assert!(matches!(
            f.write(SIZE - 1, &[0, 0]),
            Err(FlashError::OutOfRange { .. })
        ));
    }

    #[test]
    fn a_written_chip_survives_reopening() {
        let dir = std::env::temp_dir().join(format!("spi-flash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut f = SpiFlash::open(&dir).unwrap();
        assert!(!f.is_programmed());
        f.erase_covering(0x10000, 3).unwrap();
        f.write(0x10000, &[1, 2, 3]).unwrap();
        let again = SpiFlash::open(&dir).unwrap();
        assert!(again.is_programmed());
        assert_eq!(again.read(0x10000, 4).unwrap(), &[1, 2, 3, 0xFF]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
