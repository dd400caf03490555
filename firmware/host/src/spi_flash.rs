//! The SPI NOR flash chip (4 MiB) behind the ROM loader, kept in `flash.bin` in the state directory.
//!
//! NOR semantics: erase sets a sector to 0xFF, a write can only clear bits. Every write lands in the file at once
//! and unsynced, like a real chip mid-flash: a power loss keeps what was written so far.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

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

    /// An in-memory chip (unit tests).
    #[cfg(test)]
    pub fn in_memory() -> SpiFlash {
        SpiFlash {
            data: vec![0xFF; SIZE],
            path: PathBuf::new(),
            file: None,
        }
    }

    /// Whether anything was ever written (a flashed board boots from it).
    pub fn is_programmed(&self) -> bool {
        self.file.is_some()
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
