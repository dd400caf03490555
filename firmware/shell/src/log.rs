//! Log lines as an ESP-IDF console prints them: `I (1234) meter: text`.

use alloc::format;
use alloc::string::String;

use meter_core::engine::Level;

/// One log line (without the line end): level letter, milliseconds since boot, tag, text.
pub fn line(level: Level, uptime_ms: u64, tag: &str, message: &str) -> String {
    format!("{} ({uptime_ms}) {tag}: {message}", level.letter())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_esp_idf() {
        assert_eq!(
            line(Level::Warn, 1234, "meter", "MQTT: x"),
            "W (1234) meter: MQTT: x"
        );
        assert_eq!(line(Level::Info, 0, "mqtt", "up"), "I (0) mqtt: up");
    }
}
