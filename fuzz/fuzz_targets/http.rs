//! The web server's request parser, as the boards call it: with the bytes received so far, until it answers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use net_proto::http::{parse, MAX_BODY, MAX_HEAD};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the limits: the boards' own, or small ones that the input can reach.
    let Some((&pick, buf)) = data.split_first() else {
        return;
    };
    let (max_head, max_body) = if pick & 0x80 == 0 {
        (MAX_HEAD, MAX_BODY)
    } else {
        (usize::from(pick & 0x3F) * 8, usize::from(pick & 0x7) * 16)
    };
    let whole = parse(buf, max_head, max_body);
    if let Ok(Some(req)) = &whole {
        assert!(!req.method.is_empty());
        assert!(req.body.len() <= max_body);
        assert!(!req.path.contains('?'));
    }
    // Any prefix is still waiting or already gives the same answer: a request read in pieces is the same request.
    let cuts = [
        buf.len() / 2,
        buf.len().saturating_sub(1),
        usize::from(pick) % (buf.len() + 1),
    ];
    for cut in cuts {
        let early = parse(&buf[..cut], max_head, max_body);
        assert!(
            early == Ok(None) || early == whole,
            "cut at {cut}: {early:?}, whole: {whole:?}"
        );
    }
});
