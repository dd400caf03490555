//! The ROM serial loader (SLIP + commands, ROM and stub) fed a UART byte stream, on an in-memory flash chip; then
//! the bootloader's check of whatever got flashed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use virtual_board::app_image::find_app;
use virtual_board::rom_loader::{Output, RomLoader};
use virtual_board::slip::{encode, SlipDecoder};
use virtual_board::spi_flash::SpiFlash;

const MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];

// How the stream is cut into reads cannot matter past the SLIP decoder, which the `slip` target checks.
fuzz_target!(|data: &[u8]| {
    let mut rom = RomLoader::new(MAC);
    let mut flash = SpiFlash::in_memory();
    let out = rom.feed(data, &mut flash);
    for o in &out {
        match o {
            // Every reply is one SLIP frame.
            Output::Uart(bytes) => {
                let packets = SlipDecoder::default().feed(bytes);
                assert_eq!(packets.len(), 1, "{bytes:02x?}");
                assert_eq!(&encode(&packets[0]), bytes);
            }
            Output::Baud(b) => assert!(*b > 0),
            Output::RunApp | Output::Reboot => {}
        }
    }
    // What was flashed is checked by the bootloader next.
    let _ = find_app(flash.contents());
});
