//! The firmware's peak heap per scenario, read from the board's console `status` (v17's heap JSON, bytes) when the
//! scenario ends: the ESP32-C3 gives the firmware 72 KiB, so the run reports what each scenario needed and fails
//! one that needed more.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use super::Rig;

/// The heap an ESP32-C3 gives the firmware (bytes).
pub const C3_HEAP: u64 = 72 * 1024;

/// One scenario's figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeapPeak {
    pub feature: String,
    pub scenario: String,
    /// Bytes in use at the fullest moment since the board booted: [`C3_HEAP`] - `heap_internal_min_free`.
    pub peak: u64,
}

static PEAKS: Mutex<Vec<HeapPeak>> = Mutex::new(Vec::new());

/// The peak a `status` reply shows, if it carries the heap figures.
pub fn peak_of(status_reply: &str) -> Option<u64> {
    let v: Value = serde_json::from_str(status_reply.strip_prefix("ok ")?).ok()?;
    let min_free = v["heap"]["heap_internal_min_free"].as_u64()?;
    Some(C3_HEAP.saturating_sub(min_free))
}

/// Reads the board's peak and records it; an error when it exceeds the chip's heap. A board that is off, or
/// a scenario without one, has no figure.
pub async fn record(w: &mut Rig, feature: &str, scenario: &str) -> Result<(), String> {
    let Some(Ok(reply)) = w
        .off_task(|b| b.console("status", Duration::from_secs(2)))
        .await
    else {
        return Ok(());
    };
    let Some(peak) = peak_of(&reply) else {
        return Ok(());
    };
    if let Ok(mut peaks) = PEAKS.lock() {
        peaks.push(HeapPeak {
            feature: feature.to_string(),
            scenario: scenario.to_string(),
            peak,
        });
    }
    if peak > C3_HEAP {
        return Err(format!(
            "the firmware needed {peak} bytes of heap, more than the ESP32-C3's {C3_HEAP}"
        ));
    }
    Ok(())
}

/// Every figure recorded so far.
pub fn peaks() -> Vec<HeapPeak> {
    PEAKS.lock().map(|p| p.clone()).unwrap_or_default()
}

/// The run summary's lines: the largest peak, and the largest per feature.
pub fn summary(peaks: &[HeapPeak]) -> String {
    let Some(top) = peaks.iter().max_by_key(|p| p.peak) else {
        return String::new();
    };
    let mut per_feature: std::collections::BTreeMap<&str, u64> = Default::default();
    for p in peaks {
        let e = per_feature.entry(p.feature.as_str()).or_default();
        *e = (*e).max(p.peak);
    }
    let features: Vec<String> = per_feature
        .iter()
        .map(|(f, peak)| format!("{f} {:.1}", *peak as f64 / 1024.0))
        .collect();
    format!(
        "peak heap: {:.1} KiB of the ESP32-C3's {} KiB ({}: {}); per feature (KiB): {}\n",
        top.peak as f64 / 1024.0,
        C3_HEAP / 1024,
        top.feature,
        top.scenario,
        features.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_the_heap_minus_its_lowest_free() {
        let reply = r#"ok {"heap":{"heap_internal_free":61500,"heap_internal_min_free":4502},"state":"Idle"}"#;
        assert_eq!(peak_of(reply), Some(C3_HEAP - 4502));
        assert_eq!(peak_of("err unknown command"), None);
        assert_eq!(peak_of(r#"ok {"state":"Idle"}"#), None);
    }

    #[test]
    fn the_summary_names_the_largest_and_each_feature() {
        let p = |f: &str, s: &str, peak| HeapPeak {
            feature: f.into(),
            scenario: s.into(),
            peak,
        };
        let text = summary(&[
            p("Web UI", "page", 40 * 1024),
            p("GPIO", "pwm", 20 * 1024),
            p("GPIO", "in", 30 * 1024),
        ]);
        assert!(
            text.starts_with("peak heap: 40.0 KiB of the ESP32-C3's 72 KiB (Web UI: page)"),
            "{text}"
        );
        assert!(text.contains("GPIO 30.0, Web UI 40.0"), "{text}");
        assert_eq!(summary(&[]), "");
    }
}
