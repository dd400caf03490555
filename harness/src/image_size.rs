//! Where a firmware image's bytes come from: the sizes of the ELF's code and constant symbols, summed by the crate
//! that defines them (C libraries such as Espressif's Wi-Fi blobs in one group). Printed by `hil image --from-elf`
//! so a size budget can be argued with figures, not guesses.

use object::{Object, ObjectSection, ObjectSymbol, SectionKind};

use crate::flasher::FlashError;

/// The group of C symbols (vendor libraries, libc, compiler builtins' C parts).
pub const C_LIBRARIES: &str = "C libraries (Wi-Fi/PHY blobs, libc)";

/// The crate a (legacy-mangled) Rust symbol belongs to; C symbols go to [`C_LIBRARIES`]. For `<T as Trait>` impls
/// the crate of `T` counts.
pub fn origin(symbol: &str) -> String {
    if let Some(v0) = symbol.strip_prefix("_R") {
        return v0_crate(v0).unwrap_or_else(|| "Rust (other)".into());
    }
    let Some(rest) = symbol.strip_prefix("_ZN") else {
        return C_LIBRARIES.into();
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let Ok(len) = rest[..digits].parse::<usize>() else {
        return C_LIBRARIES.into();
    };
    let Some(first) = rest.get(digits..digits + len) else {
        return C_LIBRARIES.into();
    };
    let first = first.trim_start_matches('_');
    let first = first.strip_prefix("$LT$").unwrap_or(first);
    let first = first
        .trim_start_matches("$RF$")
        .trim_start_matches("mut$u20$");
    let name: String = first
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if name.is_empty() {
        "Rust (other)".into()
    } else {
        name
    }
}

/// The first crate root of a v0-mangled path (`C` [`s` disambiguator `_`] length identifier), as std's symbols
/// are mangled.
fn v0_crate(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    (0..bytes.len()).find_map(|i| {
        if bytes[i] != b'C' {
            return None;
        }
        let mut at = i + 1;
        if bytes.get(at) == Some(&b's') {
            at += 1 + bytes[at + 1..].iter().position(|b| *b == b'_')? + 1;
        }
        let digits = bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let len: usize = path.get(at..at + digits)?.parse().ok()?;
        let name = path.get(at + digits..at + digits + len)?;
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            .then(|| name.to_string())
    })
}

/// Bytes of code and constants per origin, largest first. Unnamed constants (string literals) are not symbols
/// and not counted.
pub fn breakdown(elf: &[u8]) -> Result<Vec<(String, u64)>, FlashError> {
    let file =
        object::File::parse(elf).map_err(|e| FlashError::Espflash(format!("not an ELF: {e}")))?;
    let mut sums: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for symbol in file.symbols() {
        let Some(index) = symbol.section_index() else {
            continue;
        };
        let Ok(section) = file.section_by_index(index) else {
            continue;
        };
        let in_image = matches!(
            section.kind(),
            SectionKind::Text
                | SectionKind::Data
                | SectionKind::ReadOnlyData
                | SectionKind::ReadOnlyString
        );
        if !in_image || symbol.size() == 0 {
            continue;
        }
        let name = symbol.name().unwrap_or_default();
        *sums.entry(origin(name)).or_default() += symbol.size();
    }
    let mut sorted: Vec<(String, u64)> = sums.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(sorted)
}

/// One line: the `top` largest origins in KiB, the rest summed.
pub fn summary(breakdown: &[(String, u64)], top: usize) -> String {
    let kib = |n: u64| n as f64 / 1024.0;
    let mut parts: Vec<String> = breakdown
        .iter()
        .take(top)
        .map(|(name, size)| format!("{name} {:.1}", kib(*size)))
        .collect();
    let rest: u64 = breakdown.iter().skip(top).map(|(_, s)| s).sum();
    if rest > 0 {
        parts.push(format!("other {:.1}", kib(rest)));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A legacy-mangled symbol whose first path component is `first`.
    fn legacy(first: &str) -> String {
        format!("_ZN{}{first}3fmt17h0123456789abcdefE", first.len())
    }

    #[test]
    fn symbols_are_grouped_by_their_crate() {
        assert_eq!(origin("ieee80211_sta_new_state"), C_LIBRARIES);
        assert_eq!(origin(&legacy("meter_core")), "meter_core");
        assert_eq!(
            origin(&legacy(
                "_$LT$smoltcp..iface..Interface$u20$as$u20$core..fmt..Debug$GT$"
            )),
            "smoltcp"
        );
        assert_eq!(
            origin(&legacy(
                "_$LT$$RF$mut$u20$serde_json..de..Deserializer$LT$R$GT$$u20$as$u20$x$GT$"
            )),
            "serde_json"
        );
        assert_eq!(origin("_RNvNtNtCs3xQ30Ue3M98_4core3num7dec2flt"), "core");
        assert_eq!(origin("_RNvNCNvCs1a_5alloc3vec0B3_"), "alloc");
        assert_eq!(origin("_RNvC7mycrate4main"), "mycrate");
        assert_eq!(origin("_Rbroken"), "Rust (other)");
        assert_eq!(origin("_ZN999x"), C_LIBRARIES);
    }

    #[test]
    fn summary_keeps_the_largest_and_sums_the_rest() {
        let b = vec![
            ("a".to_string(), 2048),
            ("b".to_string(), 1024),
            ("c".to_string(), 512),
            ("d".to_string(), 512),
        ];
        assert_eq!(summary(&b, 2), "a 2.0, b 1.0, other 1.0");
        assert_eq!(summary(&b, 9), "a 2.0, b 1.0, c 0.5, d 0.5");
    }
}
