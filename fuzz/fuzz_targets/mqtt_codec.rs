//! The MQTT decoder on what a broker sends: the same packets however the bytes are cut, and a decoded PUBLISH
//! encodes to bytes that decode to it again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use net_proto::mqtt::{publish, with_dup, DecodeError, Decoder, Packet};

/// Packets until the first error (a client drops the connection there) or until the bytes run out.
fn drain(d: &mut Decoder, out: &mut Vec<Result<Packet, DecodeError>>) -> bool {
    loop {
        match d.next() {
            Ok(Some(p)) => out.push(Ok(p)),
            Ok(None) => return true,
            Err(e) => {
                out.push(Err(e));
                return false;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, stream)) = data.split_first() else {
        return;
    };
    // Small limits make the oversized-message path reachable.
    let max_packet = usize::from(pick) * 4;

    let mut whole = Vec::new();
    let mut d = Decoder::new(max_packet);
    d.feed(stream);
    drain(&mut d, &mut whole);

    let mut pieces = Vec::new();
    let mut d = Decoder::new(max_packet);
    let step = usize::from(pick % 13) + 1;
    for chunk in stream.chunks(step) {
        d.feed(chunk);
        if !drain(&mut d, &mut pieces) {
            break;
        }
    }
    assert_eq!(whole, pieces, "cut every {step} bytes");

    for p in whole.iter().flatten() {
        if let Packet::Publish(m) = p {
            let id = m.packet_id.unwrap_or(0);
            let mut bytes = publish(&m.topic, &m.payload, m.qos, m.retain, id);
            if m.dup {
                bytes = with_dup(&bytes);
            }
            let mut d = Decoder::new(usize::MAX);
            d.feed(&bytes);
            assert_eq!(d.next(), Ok(Some(p.clone())));
            assert_eq!(d.next(), Ok(None));
        }
    }
});
