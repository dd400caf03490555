//! The web interface page (`GET /`): `Settings > Configuration` as one form. The page is two constants served from
//! flash as they are ([`PAGE_HEAD`], [`PAGE_TAIL`]: a board never builds the page in its heap) around the running
//! config with every key's effective value ([`page_data`]); its few lines of vanilla JavaScript build the form
//! while the page loads, post the changed document to `/api/config` and show a refused key's message next to its
//! field. Nothing comes from the internet.

use alloc::string::{String, ToString};

use serde_json::Value;

use crate::config::{Config, RateCheck};

/// The page up to the config data (a JavaScript expression follows).
pub const PAGE_HEAD: &str = concat!(
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>meterrig — Configuration</title>\n",
    "<style>body{font-family:sans-serif;max-width:52em;margin:1em auto}fieldset{margin:1em 0}.field{margin:.3em 0}",
    "label{display:inline-block;width:16em}.error{color:#b00;margin-left:.5em}.ok{color:#070}.bad{color:#b00}</style>\n",
    "</head><body>\n<nav>Settings &gt; Configuration</nav>\n<h1>Configuration</h1>\n",
    "<form id=\"config\"></form>\n<script>const CONFIG = "
);

/// The page after the config data.
pub const PAGE_TAIL: &str = concat!(
    ";</script>\n<script>",
    include_str!("web/page.js"),
    "</script>\n</body></html>\n"
);

/// The config data of the page: the (redacted) document with effective values, as JSON that cannot end the
/// script element it is in.
pub fn page_data(doc: &Value, config: &Config) -> String {
    effective_document(doc, config)
        .to_string()
        .replace("</", "<\\/")
}

/// The document with the effective value of every post-processing key filled in: array entries replace their
/// defaults whole, so a key absent from an entry would otherwise show (and save) as empty / unchecked.
pub fn effective_document(doc: &Value, config: &Config) -> Value {
    let mut doc = doc.clone();
    if let Some(entries) = doc
        .pointer_mut("/postprocessing/sequence")
        .and_then(Value::as_array_mut)
    {
        for entry in entries.iter_mut() {
            let id = entry.get("sequenceid").and_then(Value::as_u64);
            let Some(seq) = config
                .sequences
                .iter()
                .find(|s| Some(u64::from(s.id)) == id)
            else {
                continue;
            };
            let p = &seq.post;
            let check = match p.max_rate_check {
                RateCheck::Off => 0,
                RateCheck::PerMinute => 1,
                RateCheck::PerInterval => 2,
            };
            let effective = serde_json::json!({
                "decimalshift": p.decimal_shift, "analogdigitsyncvalue": p.analog_digit_sync_value,
                "extendedresolution": p.extended_resolution, "ignoreleadingnan": p.ignore_leading_nan,
                "checkdigitincreaseconsistency": p.check_digit_increase_consistency, "maxratechecktype": check,
                "maxrate": p.max_rate, "allownegativerate": p.allow_negative_rate,
                "usefallbackvalue": p.use_fallback_value, "fallbackvalueagestartup": p.fallback_value_age_startup,
            });
            if let (Some(entry), Some(effective)) = (entry.as_object_mut(), effective.as_object()) {
                for (k, v) in effective {
                    entry.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpio::PinMode;
    use serde_json::json;

    #[test]
    fn the_page_loads_nothing_from_the_internet_and_knows_every_pin_mode() {
        let page = alloc::format!("{PAGE_HEAD}{{}}{PAGE_TAIL}");
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "nothing loaded from the internet"
        );
        for mode in PinMode::NAMES {
            assert!(page.contains(&alloc::format!("'{mode}'")), "{mode}");
        }
        for section in [
            "operationmode",
            "mqtt",
            "numbersequences",
            "postprocessing",
            "gpio",
        ] {
            assert!(page.contains(&alloc::format!("'{section}'")), "{section}");
        }
    }

    #[test]
    fn the_data_cannot_end_its_script_element() {
        let (doc, config) =
            Config::from_partial(&json!({"mqtt": {"maintopic": "a</script><b>"}})).unwrap();
        let data = page_data(&doc, &config);
        assert!(!data.contains("</"), "{data}");
        let back: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(back["mqtt"]["maintopic"], "a</script><b>");
    }

    #[test]
    fn absent_keys_of_array_entries_get_their_effective_value() {
        // usefallbackvalue and extendedresolution default to true; the entry does not name them.
        let (doc, config) =
            Config::from_partial(&json!({"postprocessing": {"sequence": [{"sequenceid": 0}]}}))
                .unwrap();
        let doc = effective_document(&doc, &config);
        let entry = &doc["postprocessing"]["sequence"][0];
        assert_eq!(entry["usefallbackvalue"], true);
        assert_eq!(entry["extendedresolution"], true);
        assert_eq!(entry["maxrate"], 0.15);
    }
}
