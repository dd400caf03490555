//! The console grammar: a line splitter (as every board feeds it) and `console::parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meter_core::console::{parse, Command, LineSplitter};

fuzz_target!(|data: &[u8]| {
    // Lines do not depend on how the bytes were cut into reads.
    let mut whole = LineSplitter::default();
    let lines = whole.feed(data);
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut split = LineSplitter::default();
    let mut again = split.feed(&data[..cut]);
    again.extend(split.feed(&data[cut..]));
    assert_eq!(lines, again);

    // The input as one line too, so long and odd lines reach the parser whole.
    let text = String::from_utf8_lossy(data);
    for line in lines.iter().map(String::as_str).chain([text.as_ref()]) {
        let parsed = parse(line);
        // Whitespace around a line changes nothing.
        assert_eq!(parsed, parse(&format!(" \t{line}\t ")));
        match parsed {
            Ok(None) => assert!(line.trim().is_empty()),
            Ok(Some(Command::Frame {
                digits, analogs, ..
            })) => {
                assert!(digits.is_some() || analogs.is_some());
                for v in digits.iter().chain(analogs.iter()).flatten().flatten() {
                    assert!(v.is_finite() && (0.0..10.0).contains(v), "{v}");
                }
            }
            Ok(Some(Command::ConfigMerge { patch })) => assert!(patch.is_object()),
            Ok(Some(Command::ConfigGet { path } | Command::ConfigSet { path, .. })) => {
                assert!(!path.is_empty() && !path.contains(char::is_whitespace))
            }
            Ok(Some(_)) => {}
            Err(e) => assert!(!e.code.is_empty()),
        }
    }
});
