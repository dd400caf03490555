//! The board's boot-ROM parts as a library, so the fuzz targets (`fuzz/`) reach them; the binary uses them from here.

pub mod app_image;
pub mod rom_loader;
pub mod slip;
pub mod spi_flash;
