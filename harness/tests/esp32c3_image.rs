//! The real ESP32-C3 firmware image goes through the same path as every image: the ELF is converted as espflash
//! does (bootloader, the firmware's partition table, app image), flashed into a virtual board over its ROM loader,
//! and the board's bootloader accepts it and reports the app descriptor's version.
//!
//! Needs the firmware built (`cargo build --release` in firmware/esp32c3); `.ci/run` builds it and sets
//! ESP32C3_ELF, so there this test cannot pass by skipping.

mod common;

use std::path::PathBuf;

use harness::board::{Board, FlashHow, VirtualBoard};

fn elf() -> Option<PathBuf> {
    let path = std::env::var_os("ESP32C3_ELF").map(PathBuf::from)?;
    assert!(
        path.exists(),
        "ESP32C3_ELF={} does not exist",
        path.display()
    );
    Some(path)
}

#[test]
fn the_esp32c3_firmware_image_boots_in_the_virtual_board() {
    let Some(elf) = elf() else {
        eprintln!("skipped: set ESP32C3_ELF to the built firmware (firmware/esp32c3: cargo build --release)");
        return;
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = common::board_bin();

    let bytes = std::fs::read(&elf).expect("read the ELF");
    let table = root.join("firmware/esp32c3/partitions.csv");
    let image = harness::flasher::elf_to_image(&bytes, Some(&table)).expect("ELF -> image");
    let info = harness::app_image::inspect(&image.app)
        .expect("the rig's own parser accepts espflash's image");
    assert_eq!(info.project, "meterrig");
    assert_eq!(info.chip_id, 5);
    assert_eq!(
        image.segments.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        vec![0x0, 0x8000, 0x10000],
        "bootloader, partition table, app"
    );

    let dir = std::env::temp_dir().join(format!("hil-c3-image-{}", std::process::id()));
    let mut board = VirtualBoard::start(&bin, &dir, None).expect("board");
    let how = FlashHow {
        partition_table: Some(table),
        ..FlashHow::default()
    };
    let report = board.flash_with(&elf, &how).expect("flash the ELF");
    assert!(report.bytes > 100_000, "{} bytes", report.bytes);
    let reply = board
        .console("status", std::time::Duration::from_secs(5))
        .expect("the flashed firmware answers");
    assert!(
        reply.contains(&format!("\"firmware_version\":\"{}\"", info.version)),
        "{reply}"
    );
    let log = board.console_lines();
    assert!(
        log.iter().any(|l| l.contains("Project name:     meterrig")),
        "{log:?}"
    );
}

/// The size report CI prints: the platform floor is subtracted, and the ceiling fails the command when crossed.
#[test]
fn the_size_report_subtracts_the_floor_and_enforces_the_ceiling() {
    let Some(elf) = elf() else {
        eprintln!("skipped: set ESP32C3_ELF (and ESP32C3_FLOOR_ELF) to the built firmware");
        return;
    };
    // Without the floor example built, the firmware stands in for it (the application then adds 0.0 KiB).
    let floor = std::env::var_os("ESP32C3_FLOOR_ELF")
        .map(PathBuf::from)
        .unwrap_or_else(|| elf.clone());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::env::temp_dir().join(format!("hil-c3-size-{}.bin", std::process::id()));
    let report = |ceiling: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hil"))
            .arg("image")
            .arg("--from-elf")
            .arg(&elf)
            .arg("--floor-elf")
            .arg(&floor)
            .arg("--partition-table")
            .arg(root.join("firmware/esp32c3/partitions.csv"))
            .args(["--budget-kib", "512", "--ceiling-kib", ceiling, "--output"])
            .arg(&out)
            .output()
            .expect("run hil image")
    };

    let ok = report("4096");
    let text = common::text(&ok);
    assert!(ok.status.success(), "{text}");
    let image_kib = std::fs::metadata(&out).expect("image written").len() as f64 / 1024.0;
    let floor_line = text
        .lines()
        .find(|l| l.starts_with("platform floor"))
        .unwrap_or_else(|| panic!("no floor line in {text}"));
    let adds: f64 = floor_line
        .rsplit("adds ")
        .next()
        .and_then(|rest| rest.trim_end_matches(" KiB").parse().ok())
        .unwrap_or_else(|| panic!("no figure in {floor_line}"));
    assert!(adds >= 0.0 && adds < image_kib, "{floor_line}");
    assert!(text.contains("under the 4096 KiB ceiling"), "{text}");
    let origins = text
        .lines()
        .find(|l| l.starts_with("code and constants by origin (KiB): C libraries"))
        .unwrap_or_else(|| panic!("no breakdown led by the vendor libraries in {text}"));
    assert!(origins.contains("meter_core "), "{origins}");

    let over = report("100");
    let text = common::text(&over);
    assert!(!over.status.success(), "{text}");
    assert!(text.contains("over the 100 KiB ceiling"), "{text}");
    let _ = std::fs::remove_file(&out);
}
