//! The serial console grammar shared by every board: one command per line, one reply line each,
//! `ok ...` or `err <code> <message>`.
//!
//! ```text
//! help
//! status
//! frame <sequence> digits=<v,...> analogs=<v,...>     v = number or N; either list may be omitted
//! frame <sequence> align=fail
//! config get <path>
//! config set <path> <json value>
//! config merge <json object>                           a partial document, as REST POST /api/config takes
//! factory-reset                                        default config, no fallback values, then reboot
//! reboot
//! download
//! ```

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::Value;

/// The help text, one line (the console replies are single lines).
pub const HELP: &str = "commands: help | status | frame <seq> digits=<v,..> analogs=<v,..> | frame <seq> align=fail | \
config get <path> | config set <path> <json> | config merge <json object> | factory-reset | reboot | download";

/// The longest console line: a whole `config merge` document with TLS certificates and key fits.
pub const MAX_LINE: usize = 16 * 1024;

/// Console bytes to lines, the same on every board: CR, LF or CRLF end a line, blank lines are dropped, bytes that
/// are not UTF-8 become U+FFFD. A line longer than [`MAX_LINE`] is kept only to `MAX_LINE + 1` bytes, so [`parse`]
/// refuses it as `too-long` instead of running a truncated command, and memory stays bounded.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// The lines these bytes complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &b in bytes {
            if b == b'\n' || b == b'\r' {
                // The buffer becomes the line and a new one starts empty: a long line's buffer is not kept (a 16 KiB
                // line would otherwise hold its 16 KiB of a 72 KiB heap for good).
                let line = match String::from_utf8(core::mem::take(&mut self.partial)) {
                    Ok(line) => line,
                    Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
                };
                if !line.trim().is_empty() {
                    lines.push(line);
                }
            } else if self.partial.len() <= MAX_LINE {
                if self.partial.len() == self.partial.capacity() {
                    // Doubling, but never past the longest line kept (doubling would reach 32 KiB).
                    let more = self
                        .partial
                        .len()
                        .max(64)
                        .min(MAX_LINE + 1 - self.partial.len());
                    self.partial.reserve_exact(more);
                }
                self.partial.push(b);
            }
        }
        lines
    }

    /// Forgets a partly typed line (the board restarted).
    pub fn clear(&mut self) {
        self.partial.clear();
    }
}

/// One ROI value as typed: a number or `N`.
pub type Value10 = Option<f64>;

/// A parsed console command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Help,
    Status,
    Frame {
        sequence: String,
        digits: Option<Vec<Value10>>,
        analogs: Option<Vec<Value10>>,
    },
    AlignFail {
        sequence: String,
    },
    ConfigGet {
        path: String,
    },
    ConfigSet {
        path: String,
        value: Value,
    },
    ConfigMerge {
        patch: Value,
    },
    FactoryReset,
    Reboot,
    Download,
}

/// A console line that could not be parsed: the `err` code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub code: &'static str,
    pub message: String,
}

fn err(code: &'static str, message: impl Into<String>) -> ParseError {
    ParseError {
        code,
        message: message.into(),
    }
}

/// Parses one line. An empty line is `Ok(None)` (no reply).
pub fn parse(line: &str) -> Result<Option<Command>, ParseError> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    if line.len() > MAX_LINE {
        return Err(err(
            "too-long",
            alloc::format!("line longer than {MAX_LINE} bytes"),
        ));
    }
    let (word, rest) = split_word(line);
    let cmd = match word {
        "help" => no_args(rest, Command::Help)?,
        "status" => no_args(rest, Command::Status)?,
        "reboot" => no_args(rest, Command::Reboot)?,
        "factory-reset" => no_args(rest, Command::FactoryReset)?,
        "download" => no_args(rest, Command::Download)?,
        "frame" => parse_frame(rest)?,
        "config" => parse_config(rest)?,
        other => {
            return Err(err(
                "unknown-command",
                alloc::format!("'{other}' (try 'help')"),
            ))
        }
    };
    Ok(Some(cmd))
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

fn no_args(rest: &str, cmd: Command) -> Result<Command, ParseError> {
    if rest.is_empty() {
        Ok(cmd)
    } else {
        Err(err(
            "bad-args",
            alloc::format!("unexpected arguments '{rest}'"),
        ))
    }
}

fn parse_frame(rest: &str) -> Result<Command, ParseError> {
    let (sequence, mut rest) = split_word(rest);
    if sequence.is_empty() || sequence.contains('=') {
        return Err(err(
            "bad-args",
            "usage: frame <sequence> digits=<v,...> analogs=<v,...> | frame <sequence> align=fail",
        ));
    }
    let mut digits = None;
    let mut analogs = None;
    let mut align_fail = false;
    while !rest.is_empty() {
        let (arg, next) = split_word(rest);
        rest = next;
        let Some((key, value)) = arg.split_once('=') else {
            return Err(err("bad-args", alloc::format!("'{arg}' is not key=value")));
        };
        match key {
            "digits" => digits = Some(parse_values(value, "digits")?),
            "analogs" => analogs = Some(parse_values(value, "analogs")?),
            "align" if value == "fail" => align_fail = true,
            "align" => return Err(err("bad-args", "align only takes 'fail'")),
            _ => {
                return Err(err(
                    "bad-args",
                    alloc::format!("unknown key '{key}' (digits, analogs, align)"),
                ))
            }
        }
    }
    let sequence = sequence.to_string();
    if align_fail {
        if digits.is_some() || analogs.is_some() {
            return Err(err("bad-args", "align=fail takes no digits or analogs"));
        }
        return Ok(Command::AlignFail { sequence });
    }
    if digits.is_none() && analogs.is_none() {
        return Err(err(
            "bad-args",
            "give digits=<v,...> and/or analogs=<v,...>",
        ));
    }
    Ok(Command::Frame {
        sequence,
        digits,
        analogs,
    })
}

fn parse_values(list: &str, what: &str) -> Result<Vec<Value10>, ParseError> {
    if list.is_empty() {
        return Ok(Vec::new());
    }
    list.split(',')
        .enumerate()
        .map(|(i, v)| {
            let v = v.trim();
            if v.eq_ignore_ascii_case("n") {
                return Ok(None);
            }
            match crate::decimal::parse(v) {
                Some(x) if (0.0..10.0).contains(&x) => Ok(Some(x)),
                _ => Err(err(
                    "bad-value",
                    alloc::format!("{what}[{i}] '{v}' is not N or a number 0 <= v < 10"),
                )),
            }
        })
        .collect()
}

fn parse_config(rest: &str) -> Result<Command, ParseError> {
    let (verb, rest) = split_word(rest);
    match verb {
        "get" => {
            let (path, extra) = split_word(rest);
            if path.is_empty() || !extra.is_empty() {
                return Err(err("bad-args", "usage: config get <path>"));
            }
            Ok(Command::ConfigGet {
                path: path.to_string(),
            })
        }
        "set" => {
            let (path, json) = split_word(rest);
            if path.is_empty() || json.is_empty() {
                return Err(err("bad-args", "usage: config set <path> <json value>"));
            }
            let value = crate::json::parse_unique(json.as_bytes()).map_err(|mut e| {
                if e.path != "$" {
                    // Where the duplicate sits in the config, not in the value.
                    e.path = alloc::format!("{path}.{}", e.path);
                }
                err(
                    "bad-json",
                    alloc::format!("'{json}' is not a JSON value: {e}"),
                )
            })?;
            Ok(Command::ConfigSet {
                path: path.to_string(),
                value,
            })
        }
        "merge" => {
            let patch = crate::json::parse_unique(rest.as_bytes()).map_err(|e| {
                err(
                    "bad-json",
                    alloc::format!("'{rest}' is not a JSON value: {e}"),
                )
            })?;
            if !patch.is_object() {
                return Err(err("bad-args", "usage: config merge <json object>"));
            }
            Ok(Command::ConfigMerge { patch })
        }
        _ => Err(err(
            "bad-args",
            "usage: config get <path> | config set <path> <json value> | config merge <json object>",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_end_at_cr_lf_or_crlf_across_reads() {
        let mut lines = LineSplitter::default();
        assert!(lines.feed(b"sta").is_empty());
        assert_eq!(
            lines.feed(b"tus\r\nhelp\n\r\n  \rreboot\r"),
            ["status", "help", "reboot"]
        );
        assert_eq!(lines.feed(b"caf\xC3\xA9 \xFF\n"), ["caf\u{e9} \u{fffd}"]);
        let _ = lines.feed(b"half a line");
        lines.clear();
        assert_eq!(lines.feed(b"help\n"), ["help"]);
    }

    #[test]
    fn a_long_line_holds_no_more_than_it_keeps_and_nothing_after_it() {
        let mut lines = LineSplitter::default();
        let _ = lines.feed(&alloc::vec![b'a'; 3 * MAX_LINE]);
        assert!(
            lines.partial.capacity() <= MAX_LINE + 1,
            "never doubled past the longest line"
        );
        assert_eq!(lines.feed(b"\n")[0].len(), MAX_LINE + 1);
        assert_eq!(
            lines.partial.capacity(),
            0,
            "the long line's buffer went with it"
        );
    }

    #[test]
    fn an_overlong_line_is_refused_whole_and_the_next_one_works() {
        let mut lines = LineSplitter::default();
        let mut long = b"config merge {\"x\": \"".to_vec();
        long.extend(core::iter::repeat_n(b'a', 3 * MAX_LINE));
        long.extend_from_slice(b"\"}\nstatus\n");
        let got = lines.feed(&long);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].len(), MAX_LINE + 1, "kept bounded");
        assert_eq!(parse(&got[0]).unwrap_err().code, "too-long");
        assert_eq!(parse(&got[1]), Ok(Some(Command::Status)));

        // A line of exactly MAX_LINE bytes is still a line.
        let exact = alloc::format!("config merge {{\"x\": \"{}\"}}", "a".repeat(MAX_LINE - 22));
        assert_eq!(exact.len(), MAX_LINE);
        let got = lines.feed(alloc::format!("{exact}\n").as_bytes());
        assert!(matches!(
            parse(&got[0]),
            Ok(Some(Command::ConfigMerge { .. }))
        ));
    }

    #[test]
    fn simple_commands() {
        assert_eq!(parse("help"), Ok(Some(Command::Help)));
        assert_eq!(parse("  status \r"), Ok(Some(Command::Status)));
        assert_eq!(parse("reboot"), Ok(Some(Command::Reboot)));
        assert_eq!(parse("download"), Ok(Some(Command::Download)));
        assert_eq!(parse(""), Ok(None));
    }

    #[test]
    fn frame_with_digits_and_analogs() {
        assert_eq!(
            parse("frame main digits=1.2,N,3 analogs=9.5"),
            Ok(Some(Command::Frame {
                sequence: "main".into(),
                digits: Some(alloc::vec![Some(1.2), None, Some(3.0)]),
                analogs: Some(alloc::vec![Some(9.5)]),
            }))
        );
    }

    #[test]
    fn frame_align_fail() {
        assert_eq!(
            parse("frame gas align=fail"),
            Ok(Some(Command::AlignFail {
                sequence: "gas".into()
            }))
        );
        assert_eq!(parse("frame gas align=ok").unwrap_err().code, "bad-args");
        assert_eq!(
            parse("frame gas align=fail digits=1").unwrap_err().code,
            "bad-args"
        );
    }

    #[test]
    fn frame_errors() {
        assert_eq!(parse("frame").unwrap_err().code, "bad-args");
        assert_eq!(parse("frame main").unwrap_err().code, "bad-args");
        assert_eq!(
            parse("frame main digits=1,x").unwrap_err().code,
            "bad-value"
        );
        assert_eq!(parse("frame main digits=10").unwrap_err().code, "bad-value");
        assert_eq!(parse("frame main digits=-1").unwrap_err().code, "bad-value");
        assert_eq!(
            parse("frame main digits=nan").unwrap_err().code,
            "bad-value"
        );
        assert_eq!(parse("frame main colour=red").unwrap_err().code, "bad-args");
        assert_eq!(parse("frame main digits").unwrap_err().code, "bad-args");
    }

    #[test]
    fn config_commands() {
        assert_eq!(
            parse("config get mqtt.maintopic"),
            Ok(Some(Command::ConfigGet {
                path: "mqtt.maintopic".into()
            }))
        );
        assert_eq!(
            parse(r#"config set mqtt.maintopic "a/b c""#),
            Ok(Some(Command::ConfigSet {
                path: "mqtt.maintopic".into(),
                value: json!("a/b c")
            }))
        );
        assert_eq!(
            parse("config set mqtt.maintopic a/b").unwrap_err().code,
            "bad-json"
        );
        assert_eq!(
            parse("config set mqtt.maintopic").unwrap_err().code,
            "bad-args"
        );
        assert_eq!(parse("config frob").unwrap_err().code, "bad-args");
        assert_eq!(parse("config get").unwrap_err().code, "bad-args");
    }

    #[test]
    fn unknown_and_extra() {
        assert_eq!(parse("fly").unwrap_err().code, "unknown-command");
        assert_eq!(parse("status now").unwrap_err().code, "bad-args");
        assert_eq!(
            parse(&"x".repeat(MAX_LINE + 1)).unwrap_err().code,
            "too-long"
        );
    }
}
