//! How long flashing a 1 MiB app image into the virtual board takes, through the rig's espflash path, with the
//! UART simulated at 921600 baud (8N1: 92160 bytes/s) and unthrottled, against the wire limit.
//!
//! `cargo bench -p virtual-board --bench flash`

use std::io::Write;
use std::process::Stdio;
use std::time::Instant;

use harness::board::BoardProcess;
use harness::flasher::{self, After, Before, FlashOptions, Payload, Quiet};

const SIZE: usize = 1024 * 1024;
const BAUD: u32 = 921_600;

fn flash_once(uart_baud: Option<u32>, stub: bool, payload: &Payload) -> f64 {
    let dir = std::env::temp_dir().join(format!("vb-bench-flash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let baud = uart_baud.map(|b| b.to_string());
    let mut args = vec!["--download"];
    if let Some(b) = &baud {
        args.extend(["--uart-baud", b.as_str()]);
    }
    let board = BoardProcess::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_virtual-board")),
        &dir,
        &args,
        Stdio::null(),
    )
    .expect("virtual board");
    let opts = FlashOptions {
        port: board.serial().into(),
        baud: BAUD,
        before: Before::NoReset,
        after: After::NoReset,
        verify: true,
        stub,
    };
    let started = Instant::now();
    flasher::flash(&opts, payload, &mut Quiet).expect("flash");
    let secs = started.elapsed().as_secs_f64();
    drop(board);
    let _ = std::fs::remove_dir_all(&dir);
    secs
}

fn main() {
    let mut spec = harness::app_image::ImageSpec::new("v-bench");
    spec.size = SIZE;
    let image = harness::app_image::build(&spec).expect("image");
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&image).expect("compress");
    let compressed = z.finish().expect("compress").len();
    let bytes_per_s = f64::from(BAUD) / 10.0;
    println!(
        "image: {} bytes, {} compressed (zlib best, as espflash sends it)",
        image.len(),
        compressed
    );
    println!(
        "wire limit at {BAUD} baud: {:.2} s uncompressed, {:.2} s for the compressed stream",
        image.len() as f64 / bytes_per_s,
        compressed as f64 / bytes_per_s
    );
    let payload = Payload::App {
        image,
        version: Some("v-bench".into()),
    };
    for (label, baud, stub) in [
        ("stub, UART at 921600", Some(BAUD), true),
        ("ROM loader (no stub), UART at 921600", Some(BAUD), false),
        ("stub, unthrottled PTY", None, true),
    ] {
        let secs = flash_once(baud, stub, &payload);
        println!(
            "{label}: {secs:.2} s (connect + write + verify), {:.0} KiB/s of image",
            SIZE as f64 / 1024.0 / secs
        );
    }
}
