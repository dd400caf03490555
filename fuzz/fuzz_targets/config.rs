//! Config input: `json::parse_unique`, `Config::from_partial` (merge over the defaults, validation), redaction and
//! the dotted paths of `config get/set`. Input: a path on the first line, a JSON document after it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meter_core::config::{
    default_json, get_path, keep_redacted_secrets, merge, path_segments, redacted, set_path,
    Config, REDACTED,
};
use meter_core::json::parse_unique;
use serde_json::Value;

/// The keys `config get` and REST redact (config.rs keeps its list private).
const SECRET_KEYS: [&str; 4] = ["password", "clientkey", "token", "apikey"];

fuzz_target!(|data: &[u8]| {
    let (path, text) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (
            String::from_utf8_lossy(&data[..i]).into_owned(),
            &data[i + 1..],
        ),
        None => ("mqtt".to_string(), data),
    };

    // Strict parsing agrees with serde_json, and only refuses more for a key given twice.
    let strict = parse_unique(text);
    let lenient = serde_json::from_slice::<Value>(text);
    let value = match (strict, lenient) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b);
            a
        }
        (Ok(a), Err(e)) => panic!("parse_unique took what serde_json refuses ({e}): {a}"),
        (Err(e), Ok(_)) => {
            assert!(e.path != "$", "refused valid JSON: {e}");
            assert_eq!(e.message, "key given twice in one object");
            return;
        }
        (Err(_), Err(_)) => return,
    };

    let doc = match Config::from_partial(&value) {
        Ok((doc, _)) => {
            // The whole document is what a device saves: it must come back as it was.
            assert!(Config::from_json(&doc).is_ok());
            let text = doc.to_string();
            let reread = parse_unique(text.as_bytes()).expect("a saved document parses");
            assert_eq!(reread, doc);
            match Config::from_stored(reread) {
                Ok((stored, _)) => assert_eq!(stored, doc),
                Err(e) => panic!("a valid document does not boot: {e}"),
            }
            // The merge over the defaults is the document.
            let mut merged = default_json();
            merge(&mut merged, value.clone());
            assert_eq!(merged, doc);
            // Sending back what GET showed keeps every secret (decision 16).
            let mut back = doc.clone();
            merge(&mut back, redacted(&doc));
            assert_eq!(
                back, doc,
                "a redacted document sent back changed the config"
            );
            doc
        }
        Err(e) => {
            assert!(!e.path().is_empty());
            default_json()
        }
    };

    // Paths: what `config get` finds, `config set` writes, and a redacted value sent back keeps its secrets.
    let segments = path_segments(&path);
    if let Some(old) = get_path(&doc, &path) {
        assert!(segments.is_ok());
        let back = keep_redacted_secrets(&doc, &path, redacted(old));
        assert_eq!(
            &back, old,
            "config set <path> <what config get showed> changed it"
        );
        let secret = segments
            .as_ref()
            .ok()
            .and_then(|s| s.last())
            .is_some_and(|k| SECRET_KEYS.contains(&k.as_str()));
        if secret && old.as_str().is_some_and(|s| !s.is_empty()) {
            let back = keep_redacted_secrets(&doc, &path, Value::from(REDACTED));
            assert_eq!(&back, old);
        }
    }
    let mut changed = doc.clone();
    if set_path(&mut changed, &path, value.clone()).is_ok() {
        assert!(segments.is_ok());
        assert_eq!(
            get_path(&changed, &path),
            Some(&value),
            "set then get: {path}"
        );
    }
});
