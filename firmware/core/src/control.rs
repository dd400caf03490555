//! Process-control payloads: `cycle_start` and `set_fallbackvalue`, parsed and checked before anything changes.

use alloc::format;
use alloc::string::{String, ToString};

use serde_json::Value;

/// Control payloads larger than this are refused unread.
pub const MAX_CONTROL_PAYLOAD: usize = 4096;

/// Why a `set_fallbackvalue` request was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetFallbackError {
    TooLarge(usize),
    InvalidJson(String),
    NotAnObject,
    MissingSequence,
    UnknownSequence(String),
    MissingValue,
    NonNumeric(String),
    NotFinite(String),
    NoValidRawValue { sequence: String, raw: String },
}

impl core::fmt::Display for SetFallbackError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooLarge(n) => write!(f, "payload of {n} bytes exceeds the {MAX_CONTROL_PAYLOAD} byte limit"),
            Self::InvalidJson(e) => write!(f, "payload is not valid JSON: {e}"),
            Self::NotAnObject => f.write_str("payload must be a JSON object {\"sequence\": name, \"value\": number}"),
            Self::MissingSequence => f.write_str("\"sequence\" (the number sequence name) is missing"),
            Self::UnknownSequence(s) => write!(f, "no number sequence named '{s}'"),
            Self::MissingValue => f.write_str("\"value\" is missing"),
            Self::NonNumeric(v) => write!(f, "\"value\" {v} is not a number"),
            Self::NotFinite(v) => write!(f, "\"value\" {v} is not a finite number"),
            Self::NoValidRawValue { sequence, raw } => write!(
                f,
                "a negative value takes the current raw value, but sequence '{sequence}' has no valid raw value ('{raw}')"
            ),
        }
    }
}

/// A syntactically valid `set_fallbackvalue`: the sequence name and the requested value (< 0 = take raw value).
#[derive(Debug, Clone, PartialEq)]
pub struct SetFallback {
    pub sequence: String,
    pub value: f64,
}

/// Parses `{"sequence": name, "value": number}`. The value must be a JSON number, as the reference checks it
/// (`interface_mqtt.cpp` 442, cJSON_IsNumber): a numeric string is refused.
pub fn parse_set_fallback(payload: &[u8]) -> Result<SetFallback, SetFallbackError> {
    if payload.len() > MAX_CONTROL_PAYLOAD {
        return Err(SetFallbackError::TooLarge(payload.len()));
    }
    let v = crate::json::parse_unique(payload)
        .map_err(|e| SetFallbackError::InvalidJson(e.to_string()))?;
    let obj = v.as_object().ok_or(SetFallbackError::NotAnObject)?;
    let sequence = match obj.get("sequence") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(SetFallbackError::MissingSequence)
        }
        Some(other) => return Err(SetFallbackError::UnknownSequence(other.to_string())),
    };
    let value = match obj.get("value") {
        None | Some(Value::Null) => return Err(SetFallbackError::MissingValue),
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| SetFallbackError::NotFinite(n.to_string()))?,
        Some(other) => return Err(SetFallbackError::NonNumeric(other.to_string())),
    };
    if !value.is_finite() {
        return Err(SetFallbackError::NotFinite(format!("{value}")));
    }
    Ok(SetFallback { sequence, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_number_and_refuses_a_numeric_string() {
        assert_eq!(
            parse_set_fallback(br#"{"sequence":"main","value":12.5}"#),
            Ok(SetFallback {
                sequence: "main".into(),
                value: 12.5
            })
        );
        assert_eq!(
            parse_set_fallback(br#"{"sequence":"main","value":"7"}"#),
            Err(SetFallbackError::NonNumeric("\"7\"".into()))
        );
        assert_eq!(
            parse_set_fallback(br#"{"sequence":"main","value":-1}"#)
                .unwrap()
                .value,
            -1.0
        );
    }

    #[test]
    fn every_error_is_distinct() {
        use SetFallbackError as E;
        assert!(matches!(parse_set_fallback(b"{"), Err(E::InvalidJson(_))));
        assert_eq!(parse_set_fallback(b"[1]"), Err(E::NotAnObject));
        assert_eq!(
            parse_set_fallback(br#"{"value":1}"#),
            Err(E::MissingSequence)
        );
        assert_eq!(
            parse_set_fallback(br#"{"sequence":"","value":1}"#),
            Err(E::MissingSequence)
        );
        assert_eq!(
            parse_set_fallback(br#"{"sequence":"main"}"#),
            Err(E::MissingValue)
        );
        assert!(matches!(
            parse_set_fallback(br#"{"sequence":"main","value":"abc"}"#),
            Err(E::NonNumeric(_))
        ));
        assert!(matches!(
            parse_set_fallback(br#"{"sequence":"main","value":true}"#),
            Err(E::NonNumeric(_))
        ));
        assert!(matches!(
            parse_set_fallback(br#"{"sequence":"main","value":"NaN"}"#),
            Err(E::NonNumeric(_))
        ));
        assert!(matches!(
            parse_set_fallback(br#"{"sequence":"main","value":1e999}"#),
            Err(E::InvalidJson(_))
        ));
        let big = alloc::vec![b' '; 5000];
        assert_eq!(parse_set_fallback(&big), Err(E::TooLarge(5000)));
    }

    #[test]
    fn messages_say_what_is_wrong() {
        let e = parse_set_fallback(br#"{"sequence":"main","value":"abc"}"#).unwrap_err();
        assert_eq!(e.to_string(), "\"value\" \"abc\" is not a number");
    }
}
