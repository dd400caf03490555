//! What the second-stage bootloader checks before it starts the app: the partition table, then the app image at
//! the app partition (magic, chip id, segments, checksum, appended SHA-256) and its app descriptor.
//! Messages follow ESP-IDF's, so a console log of the virtual board reads like a real one.

use sha2::{Digest, Sha256};

pub const PARTITION_TABLE_OFFSET: usize = 0x8000;
pub const DEFAULT_APP_OFFSET: usize = 0x10000;
pub const DEFAULT_APP_SIZE: usize = 0x3F0000;
const IMAGE_MAGIC: u8 = 0xE9;
const HEADER_LEN: usize = 24;
const SEGMENT_HEADER_LEN: usize = 8;
const MAX_SEGMENTS: usize = 16;
const APP_DESC_MAGIC: u32 = 0xABCD_5432;
const APP_DESC_LEN: usize = 256;
const CHIP_ID_ESP32C3: u16 = 5;

/// The app the bootloader starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub offset: usize,
    pub version: String,
    pub project_name: String,
}

/// Why nothing boots, as the bootloader prints it (several lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFailure {
    pub lines: Vec<String>,
}

impl BootFailure {
    fn new(lines: Vec<String>) -> BootFailure {
        BootFailure { lines }
    }
}

/// An app partition from the table (or the default layout when the table sector is blank).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AppPartition {
    offset: usize,
    size: usize,
}

/// Finds and checks the app to boot in a flash chip's contents.
pub fn find_app(flash: &[u8]) -> Result<App, BootFailure> {
    let partition = app_partition(flash)?;
    check_image(flash, partition).map_err(|why| {
        let mut lines = vec![why];
        lines.push("E (55) boot: Factory app partition is not bootable".into());
        lines.push("E (60) boot: No bootable app partitions in the partition table".into());
        BootFailure::new(lines)
    })
}

fn app_partition(flash: &[u8]) -> Result<AppPartition, BootFailure> {
    let Some(table) = flash.get(PARTITION_TABLE_OFFSET..PARTITION_TABLE_OFFSET + 0xC00) else {
        return Err(BootFailure::new(vec![
            "E (40) flash_parts: the flash ends before the partition table".into(),
            "E (45) boot: Failed to verify partition table".into(),
        ]));
    };
    if table.iter().all(|&b| b == 0xFF) {
        return Ok(AppPartition {
            offset: DEFAULT_APP_OFFSET,
            size: DEFAULT_APP_SIZE,
        });
    }
    let mut apps = Vec::new();
    for (i, entry) in table.chunks(32).enumerate() {
        match (entry[0], entry[1]) {
            (0xAA, 0x50) => {
                let (kind, subtype) = (entry[2], entry[3]);
                let offset = le32(&entry[4..8]) as usize;
                let size = le32(&entry[8..12]) as usize;
                if kind == 0 && (subtype == 0x00 || (0x10..0x20).contains(&subtype)) {
                    apps.push((subtype, AppPartition { offset, size }));
                }
            }
            (0xEB, 0xEB) => {
                let digest = md5::Md5::digest(&table[..i * 32]);
                if entry[16..32] != digest[..] {
                    return Err(BootFailure::new(vec![
                        "E (40) flash_parts: Incorrect MD5 checksum of the partition table".into(),
                        "E (45) boot: Failed to verify partition table".into(),
                    ]));
                }
            }
            (0xFF, 0xFF) => break,
            (a, b) => {
                return Err(BootFailure::new(vec![
                    format!(
                        "E (40) flash_parts: partition {i} invalid magic number 0x{:04x}",
                        u16::from_le_bytes([a, b])
                    ),
                    "E (45) boot: Failed to verify partition table".into(),
                ]))
            }
        }
    }
    // Factory first, then the first OTA slot (no otadata on this board).
    apps.sort_by_key(|(subtype, _)| *subtype);
    apps.first().map(|(_, p)| *p).ok_or_else(|| {
        BootFailure::new(vec![
            "E (50) boot: No bootable app partitions in the partition table".into(),
        ])
    })
}

fn check_image(flash: &[u8], partition: AppPartition) -> Result<App, String> {
    let at = partition.offset;
    let end = (at + partition.size).min(flash.len());
    let image = flash.get(at..end).ok_or(format!(
        "E (45) esp_image: image at 0x{at:x} is outside the flash"
    ))?;
    if image.len() < HEADER_LEN || image[0] != IMAGE_MAGIC {
        return Err(format!(
            "E (45) esp_image: image at 0x{at:x} has invalid magic byte (nothing flashed here?)"
        ));
    }
    let chip_id = u16::from_le_bytes([image[12], image[13]]);
    if chip_id != CHIP_ID_ESP32C3 {
        return Err(format!(
            "E (45) boot_comm: mismatch chip ID, expected {CHIP_ID_ESP32C3}, found {chip_id}"
        ));
    }
    let segments = usize::from(image[1]);
    if segments == 0 || segments > MAX_SEGMENTS {
        return Err(format!(
            "E (45) esp_image: image at 0x{at:x} has {segments} segments"
        ));
    }
    let mut pos = HEADER_LEN;
    let mut checksum = 0xEFu8;
    let mut first_segment: Option<&[u8]> = None;
    for n in 0..segments {
        let header = image.get(pos..pos + SEGMENT_HEADER_LEN).ok_or(format!(
            "E (45) esp_image: image at 0x{at:x} is truncated at segment {n}"
        ))?;
        let load = le32(&header[0..4]);
        let len = le32(&header[4..8]) as usize;
        let data = image
            .get(pos + SEGMENT_HEADER_LEN..pos + SEGMENT_HEADER_LEN + len)
            .ok_or(format!(
                "E (45) esp_image: Segment {n} 0x{load:08x}-0x{:08x} invalid: longer than the partition",
                load as usize + len
            ))?;
        checksum = data.iter().fold(checksum, |c, b| c ^ b);
        first_segment.get_or_insert(data);
        pos += SEGMENT_HEADER_LEN + len;
    }
    // Zero padding up to a 16-byte boundary, of which the checksum is the last byte.
    let checksum_at = (pos + 16) / 16 * 16 - 1;
    let stored = *image
        .get(checksum_at)
        .ok_or("E (45) esp_image: image is truncated before its checksum")?;
    if stored != checksum {
        return Err(format!(
            "E (45) esp_image: Checksum failed. Calculated 0x{checksum:x} read 0x{stored:x}"
        ));
    }
    let hash_appended = image[23] == 1;
    if hash_appended {
        let signed = &image[..=checksum_at];
        let stored_hash = image
            .get(checksum_at + 1..checksum_at + 33)
            .ok_or("E (45) esp_image: image is truncated before its SHA-256")?;
        if Sha256::digest(signed)[..] != stored_hash[..] {
            return Err("E (45) esp_image: Image hash failed - image is corrupt".into());
        }
    }
    let desc = first_segment
        .filter(|d| d.len() >= APP_DESC_LEN && le32(&d[0..4]) == APP_DESC_MAGIC)
        .ok_or("E (45) esp_image: no app descriptor (esp_app_desc_t) at the start of the first segment")?;
    Ok(App {
        offset: at,
        version: c_string(&desc[16..48]),
        project_name: c_string(&desc[48..80]),
    })
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness::app_image::{build, ImageSpec};

    /// A flash chip with `image` at the default app offset (images come from the rig's own writer).
    fn chip_with(image: &[u8]) -> Vec<u8> {
        let mut flash = vec![0xFF; 4 * 1024 * 1024];
        flash[DEFAULT_APP_OFFSET..DEFAULT_APP_OFFSET + image.len()].copy_from_slice(image);
        flash
    }

    #[test]
    fn a_good_image_boots_with_its_descriptor() {
        let image = build(&ImageSpec::new("v17.1.0")).unwrap();
        let app = find_app(&chip_with(&image)).unwrap();
        assert_eq!(app.version, "v17.1.0");
        assert_eq!(app.project_name, "meterrig");
        assert_eq!(app.offset, 0x10000);
    }

    #[test]
    fn bad_images_fail_with_the_bootloader_message() {
        let image = build(&ImageSpec::new("v1")).unwrap();
        let first = |flash: &[u8]| find_app(flash).unwrap_err().lines[0].clone();
        assert!(first(&vec![0xFF; 4 * 1024 * 1024]).contains("invalid magic byte"));
        let mut flipped = image.clone();
        flipped[100] ^= 4;
        assert!(first(&chip_with(&flipped)).contains("Checksum failed"));
        let mut hash = image.clone();
        let last = hash.len() - 1;
        hash[last] ^= 1;
        assert!(first(&chip_with(&hash)).contains("Image hash failed"));
        let mut spec = ImageSpec::new("v1");
        spec.chip_id = 9;
        assert!(first(&chip_with(&build(&spec).unwrap()))
            .contains("mismatch chip ID, expected 5, found 9"));
        let half = &image[..image.len() / 2];
        let failure = find_app(&chip_with(half)).unwrap_err();
        assert!(
            failure.lines.iter().any(|l| l.contains("not bootable")),
            "{failure:?}"
        );
    }

    #[test]
    fn a_chip_that_ends_before_the_partition_table_does_not_boot() {
        // Found by fuzzing (fuzz/regressions/app_image): the table was sliced without a length check.
        for size in [0, 0x8000, PARTITION_TABLE_OFFSET + 0xBFF] {
            let failure = find_app(&vec![0xFF; size]).unwrap_err();
            assert!(
                failure
                    .lines
                    .iter()
                    .any(|l| l.contains("Failed to verify partition table")),
                "{failure:?}"
            );
        }
    }

    #[test]
    fn a_partition_table_moves_the_app_and_a_bad_one_stops_the_boot() {
        let image = build(&ImageSpec::new("v2")).unwrap();
        let mut flash = vec![0xFF; 4 * 1024 * 1024];
        flash[0x20000..0x20000 + image.len()].copy_from_slice(&image);
        let mut table = Vec::new();
        for (kind, subtype, offset, size) in
            [(1u8, 2u8, 0x9000u32, 0x6000u32), (0, 0, 0x20000, 0x100000)]
        {
            table.extend([0xAA, 0x50, kind, subtype]);
            table.extend(offset.to_le_bytes());
            table.extend(size.to_le_bytes());
            table.extend([0u8; 20]);
        }
        let digest = md5::Md5::digest(&table);
        let mut md5_entry = vec![0xEB, 0xEB];
        md5_entry.extend([0xFF; 14]);
        md5_entry.extend(digest.iter());
        table.extend(md5_entry);
        flash[PARTITION_TABLE_OFFSET..PARTITION_TABLE_OFFSET + table.len()].copy_from_slice(&table);
        assert_eq!(find_app(&flash).unwrap().offset, 0x20000);
        flash[PARTITION_TABLE_OFFSET + 5] ^= 1;
        let failure = find_app(&flash).unwrap_err();
        assert!(failure.lines[0].contains("Incorrect MD5"), "{failure:?}");
    }
}
