//! ESP32-C3 app images in the ESP-IDF app image format, written and inspected by the rig on its own (from
//! Espressif's format description, not from the firmware), so a bootloader bug in the virtual board cannot hide.
//!
//! Layout: 24-byte header (magic 0xE9, segment count, SPI mode/size, entry, extended header with the chip id and
//! "hash appended"), segments (load address, length, data), zero padding to 16 bytes ending in the XOR checksum,
//! then the SHA-256 of all that. The first segment starts with the 256-byte app descriptor (`esp_app_desc_t`).

use sha2::{Digest, Sha256};

pub const IMAGE_MAGIC: u8 = 0xE9;
pub const APP_DESC_MAGIC: u32 = 0xABCD_5432;
pub const DEFAULT_PROJECT: &str = "meterrig";
const HEADER_LEN: usize = 24;
const APP_DESC_LEN: usize = 256;
const DROM_ADDR: u32 = 0x3C00_0020;
const IRAM_ADDR: u32 = 0x4038_0000;

/// Chips by the id the image header carries.
pub const CHIPS: &[(&str, u16)] = &[
    ("esp32", 0),
    ("esp32s2", 2),
    ("esp32c3", 5),
    ("esp32s3", 9),
    ("esp32c2", 12),
    ("esp32c6", 13),
    ("esp32h2", 16),
    ("esp32p4", 18),
];

/// A chip name from its id, or `chip id N`.
pub fn chip_name(id: u16) -> String {
    CHIPS
        .iter()
        .find(|(_, i)| *i == id)
        .map_or(format!("chip id {id}"), |(n, _)| n.to_string())
}

/// A chip id from a name such as `esp32c3`.
pub fn chip_id(name: &str) -> Option<u16> {
    let wanted = name.to_ascii_lowercase().replace('-', "");
    CHIPS.iter().find(|(n, _)| *n == wanted).map(|(_, i)| *i)
}

/// What to put in an image.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub version: String,
    pub project: String,
    pub chip_id: u16,
    /// Total image size to reach with filler data (at least the minimum the segments need).
    pub size: usize,
}

impl ImageSpec {
    pub fn new(version: &str) -> ImageSpec {
        ImageSpec {
            version: version.to_string(),
            project: DEFAULT_PROJECT.to_string(),
            chip_id: 5,
            size: 0,
        }
    }
}

/// Why an image was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("not an ESP app image: first byte is 0x{0:02x}, an app image starts with 0xE9 (an ELF file is converted by `hil flash`)")]
    Magic(u8),
    #[error("the image is truncated: {0}")]
    Truncated(&'static str),
    #[error("segment checksum mismatch: computed 0x{computed:02x}, stored 0x{stored:02x} (the file is corrupt)")]
    Checksum { computed: u8, stored: u8 },
    #[error("SHA-256 appended to the image does not match its contents (the file is corrupt)")]
    Hash,
    #[error(
        "no app descriptor (esp_app_desc_t, magic 0xABCD5432) at the start of the first segment"
    )]
    NoDescriptor,
    #[error("'{0}' does not fit the 32-byte field of the app descriptor")]
    FieldTooLong(String),
}

/// What `inspect` found in an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub chip_id: u16,
    pub version: String,
    pub project: String,
    pub len: usize,
}

/// Writes an app image that boots (on the virtual board) as `spec.version`.
pub fn build(spec: &ImageSpec) -> Result<Vec<u8>, ImageError> {
    for field in [&spec.version, &spec.project] {
        if field.len() >= 32 {
            return Err(ImageError::FieldTooLong(field.clone()));
        }
    }
    let mut drom = app_descriptor(spec);
    // `j .`: the smallest RISC-V program, as the IRAM segment.
    let iram = 0x0000_006Fu32.to_le_bytes().to_vec();
    let minimum = HEADER_LEN + 8 + drom.len() + 8 + iram.len() + 16 + 32;
    if spec.size > minimum {
        drom.extend(filler(spec.size - minimum));
    }
    drom.resize(drom.len().div_ceil(4) * 4, 0);

    let mut image = vec![IMAGE_MAGIC, 2, 0x02, 0x20];
    image.extend(IRAM_ADDR.to_le_bytes());
    // Extended header: WP pin, SPI drive, chip id, min rev, min/max full rev, reserved, hash appended.
    image.push(0xEE);
    image.extend([0, 0, 0]);
    image.extend(spec.chip_id.to_le_bytes());
    image.push(0);
    image.extend(0u16.to_le_bytes());
    image.extend(0xFFFFu16.to_le_bytes());
    image.extend([0, 0, 0, 0]);
    image.push(1);
    let mut checksum = 0xEFu8;
    for (addr, data) in [(DROM_ADDR, &drom), (IRAM_ADDR, &iram)] {
        image.extend(addr.to_le_bytes());
        image.extend((data.len() as u32).to_le_bytes());
        image.extend(data.iter());
        checksum = data.iter().fold(checksum, |c, b| c ^ b);
    }
    let padded = (image.len() + 16) / 16 * 16;
    image.resize(padded - 1, 0);
    image.push(checksum);
    let hash = Sha256::digest(&image);
    image.extend(hash.iter());
    Ok(image)
}

fn app_descriptor(spec: &ImageSpec) -> Vec<u8> {
    let mut d = Vec::with_capacity(APP_DESC_LEN);
    d.extend(APP_DESC_MAGIC.to_le_bytes());
    d.extend([0u8; 12]);
    for (text, width) in [
        (spec.version.as_str(), 32),
        (spec.project.as_str(), 32),
        ("00:00:00", 16),
        ("Jan  1 2026", 16),
        ("meterrig-hil", 32),
    ] {
        let mut field = text.as_bytes().to_vec();
        field.resize(width, 0);
        d.extend(field);
    }
    d.resize(APP_DESC_LEN, 0);
    d
}

/// Deterministic filler that compresses about like firmware does (roughly half): random 16-byte blocks, each
/// repeated once.
fn filler(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(len + 32);
    while out.len() < len {
        let mut block = [0u8; 16];
        for b in block.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = (state >> 56) as u8;
        }
        out.extend(block);
        out.extend(block);
    }
    out.truncate(len);
    out
}

/// Checks an image as the bootloader would and reads its descriptor.
pub fn inspect(image: &[u8]) -> Result<ImageInfo, ImageError> {
    let first = *image.first().ok_or(ImageError::Truncated("empty file"))?;
    if first != IMAGE_MAGIC {
        return Err(ImageError::Magic(first));
    }
    let header = image
        .get(..HEADER_LEN)
        .ok_or(ImageError::Truncated("header"))?;
    let chip_id = u16::from_le_bytes([header[12], header[13]]);
    let mut pos = HEADER_LEN;
    let mut checksum = 0xEFu8;
    let mut first_segment = None;
    for _ in 0..header[1] {
        let seg = image
            .get(pos..pos + 8)
            .ok_or(ImageError::Truncated("segment header"))?;
        let len = u32::from_le_bytes([seg[4], seg[5], seg[6], seg[7]]) as usize;
        let data = image
            .get(pos + 8..pos + 8 + len)
            .ok_or(ImageError::Truncated("segment data"))?;
        checksum = data.iter().fold(checksum, |c, b| c ^ b);
        first_segment.get_or_insert(data);
        pos += 8 + len;
    }
    let checksum_at = (pos + 16) / 16 * 16 - 1;
    let stored = *image
        .get(checksum_at)
        .ok_or(ImageError::Truncated("checksum"))?;
    if stored != checksum {
        return Err(ImageError::Checksum {
            computed: checksum,
            stored,
        });
    }
    let mut len = checksum_at + 1;
    if header[23] == 1 {
        let hash = image
            .get(len..len + 32)
            .ok_or(ImageError::Truncated("SHA-256"))?;
        if Sha256::digest(&image[..len])[..] != hash[..] {
            return Err(ImageError::Hash);
        }
        len += 32;
    }
    let desc = first_segment
        .filter(|d| d.len() >= APP_DESC_LEN && d[..4] == APP_DESC_MAGIC.to_le_bytes())
        .ok_or(ImageError::NoDescriptor)?;
    Ok(ImageInfo {
        chip_id,
        version: c_string(&desc[16..48]),
        project: c_string(&desc[48..80]),
        len,
    })
}

/// Whether the bytes are an ELF file (to be converted into an app image before flashing).
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7FELF")
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_images_inspect_back_and_reach_the_size() {
        let mut spec = ImageSpec::new("v17.2.0");
        spec.size = 100_000;
        let image = build(&spec).unwrap();
        assert!(
            image.len() >= 100_000 && image.len() < 100_064,
            "{}",
            image.len()
        );
        let info = inspect(&image).unwrap();
        assert_eq!(info.version, "v17.2.0");
        assert_eq!(info.project, "meterrig");
        assert_eq!(info.chip_id, 5);
        assert_eq!(info.len, image.len());
        assert_eq!(image.len() % 16, 0);
    }

    #[test]
    fn corruption_is_found() {
        let image = build(&ImageSpec::new("v1")).unwrap();
        let mut flipped = image.clone();
        flipped[40] ^= 1;
        assert!(matches!(
            inspect(&flipped),
            Err(ImageError::Checksum { .. })
        ));
        let mut hashed = image.clone();
        let last = hashed.len() - 1;
        hashed[last] ^= 1;
        assert_eq!(inspect(&hashed), Err(ImageError::Hash));
        assert_eq!(
            inspect(&image[..100]),
            Err(ImageError::Truncated("segment data"))
        );
        assert_eq!(inspect(b"\x7FELF"), Err(ImageError::Magic(0x7F)));
        assert!(build(&ImageSpec::new(&"x".repeat(32))).is_err());
    }

    #[test]
    fn chip_names_round_trip() {
        assert_eq!(chip_id("ESP32-C3"), Some(5));
        assert_eq!(chip_name(9), "esp32s3");
        assert_eq!(chip_name(77), "chip id 77");
    }
}
