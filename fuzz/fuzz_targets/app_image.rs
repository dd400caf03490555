//! The second-stage bootloader's checks: partition table, app image (segments, checksum, SHA-256) and app
//! descriptor. Input: a mode byte, then bytes placed at the app's default offset (0x10000, blank table) or at the
//! partition table (0x8000, so a table and the image it points to); also the whole input as a chip of its own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use virtual_board::app_image::{find_app, DEFAULT_APP_OFFSET, PARTITION_TABLE_OFFSET};

fuzz_target!(|data: &[u8]| {
    let _ = find_app(data);
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let at = if mode & 1 == 0 {
        DEFAULT_APP_OFFSET
    } else {
        PARTITION_TABLE_OFFSET
    };
    let mut flash = vec![0xFF; (at + rest.len()).max(PARTITION_TABLE_OFFSET + 0xC00)];
    flash[at..at + rest.len()].copy_from_slice(rest);
    match find_app(&flash) {
        Ok(app) => {
            assert!(app.offset < flash.len());
            assert_eq!(
                flash[app.offset], 0xE9,
                "booted something without the image magic"
            );
        }
        Err(failure) => assert!(!failure.lines.is_empty()),
    }
});
