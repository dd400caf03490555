//! SLIP framing of the ROM loader: the decoder on any byte stream, and encode/decode round trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use virtual_board::slip::{encode, SlipDecoder};

fuzz_target!(|data: &[u8]| {
    // Packets do not depend on how the stream was cut into reads.
    let whole = SlipDecoder::default().feed(data);
    let mut d = SlipDecoder::default();
    let mut pieces = Vec::new();
    for chunk in data.chunks(data.first().map_or(1, |&b| usize::from(b % 7) + 1)) {
        pieces.extend(d.feed(chunk));
    }
    assert_eq!(whole, pieces);
    assert!(whole.iter().all(|p| !p.is_empty()));

    // Any packets, framed back to back and cut anywhere, come out as they went in.
    let packets: Vec<&[u8]> = data
        .split(|&b| b == b'|')
        .filter(|p| !p.is_empty())
        .collect();
    let wire: Vec<u8> = packets.iter().flat_map(|p| encode(p)).collect();
    let mut d = SlipDecoder::default();
    let cut = data.len() % (wire.len() + 1);
    let mut got = d.feed(&wire[..cut]);
    got.extend(d.feed(&wire[cut..]));
    assert_eq!(got, packets);
    // And the stream the decoder took apart frames again to itself.
    for p in &whole {
        assert_eq!(SlipDecoder::default().feed(&encode(p)), vec![p.clone()]);
    }
});
