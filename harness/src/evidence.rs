//! Evidence of a failed scenario: what the rig recorded while it ran (console, MQTT timeline, GPIO line events,
//! HTTP exchanges, the topic tree at the failure, what the failing step expected) and the folder it writes for
//! it. Recording is always on and cheap (the rig keeps what it sees anyway); files are written only on failure.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::observer::{Direction, Seen};
use crate::results::{Attempt, ScenarioRecord, StepRecord, StepStatus};

/// One MQTT message, as the rig received or published it.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttEntry {
    /// Since the scenario started.
    pub at: Duration,
    pub direction: Direction,
    pub topic: String,
    pub payload: String,
    pub retain: bool,
    pub qos: u8,
}

/// Who caused a GPIO line event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineSource {
    /// The rig drove an input, read an output, placed a jumper.
    Rig,
    /// The firmware drove an output (the board's line watch).
    Board,
}

/// One GPIO line event.
#[derive(Debug, Clone, PartialEq)]
pub struct GpioEntry {
    pub at: Duration,
    pub source: LineSource,
    pub text: String,
}

/// One HTTP exchange with the board's web interface.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpExchange {
    pub at: Duration,
    pub method: String,
    pub path: String,
    pub request: String,
    /// 0 when there was no answer.
    pub status: u16,
    pub response: String,
    pub took: Duration,
}

/// What a step expected, set as it starts checking (so a report can show expected against actual).
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    /// When the step set it, since the scenario started.
    pub at: Duration,
    /// The check in words: `topic 'x' is "1"`.
    pub what: String,
    /// The absolute topic checked, if the check is about one.
    pub topic: Option<String>,
    pub expected: String,
    /// The value the step saw, when it knows it (for a topic, the tree has it).
    pub actual: Option<String>,
}

/// Everything the rig recorded about one attempt, taken when a step failed.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// Which board: `virtual (path)` or the inventory's name.
    pub board: String,
    pub firmware: Option<String>,
    pub main_topic: String,
    /// Console lines, since the scenario started.
    pub console: Vec<(Duration, String)>,
    pub mqtt: Vec<MqttEntry>,
    pub gpio: Vec<GpioEntry>,
    pub http: Vec<HttpExchange>,
    /// What the rig did in the browser.
    pub web: Vec<(Duration, String)>,
    /// What the rig did to the board or its broker (power, reset, the broker cable).
    pub actions: Vec<(Duration, String)>,
    /// The topic tree when the step failed.
    pub tree: BTreeMap<String, Seen>,
    pub expectation: Option<Expectation>,
    /// Set when the failure was the infrastructure's, with what failed.
    pub infrastructure: Option<String>,
    /// The board's state dir (virtual boards): where its files came from.
    pub state_dir: Option<PathBuf>,
    /// The state dir's files as they were at the failure (the board removes its dir when it goes).
    pub state_files: Vec<(String, Vec<u8>)>,
}

/// A state file larger than this is left out of the evidence (named in `state/LEFT-OUT.txt`).
const STATE_FILE_LIMIT: u64 = 16 * 1024 * 1024;

/// Reads a board's state dir (regular files; not its socket).
pub fn read_state(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut left_out = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        if !meta.is_file() {
            continue;
        }
        if meta.len() > STATE_FILE_LIMIT {
            left_out += &format!("{name}: {} bytes\n", meta.len());
        } else if let Ok(bytes) = std::fs::read(entry.path()) {
            files.push((name, bytes));
        }
    }
    if !left_out.is_empty() {
        files.push(("LEFT-OUT.txt".into(), left_out.into_bytes()));
    }
    files.sort();
    files
}

/// One line of the merged timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEntry {
    pub at: Duration,
    /// `step`, `mqtt>` (received), `mqtt<` (published by the rig), `console`, `gpio`, `http`, `web`, `rig`.
    pub source: &'static str,
    pub text: String,
}

impl Evidence {
    /// Steps, MQTT, console, GPIO, HTTP and browser actions in one time order.
    pub fn timeline(&self, steps: &[StepRecord]) -> Vec<TimelineEntry> {
        let mut all = Vec::new();
        for s in steps.iter().filter(|s| s.status != StepStatus::NotRun) {
            all.push(TimelineEntry {
                at: s.started,
                source: "step",
                text: format!(
                    "{} ({:?}, {})",
                    s.title(),
                    s.duration,
                    status_word(s.status)
                ),
            });
        }
        for m in &self.mqtt {
            let (source, arrow) = match m.direction {
                Direction::Received => ("mqtt>", "board/broker ->"),
                Direction::Published => ("mqtt<", "rig published"),
            };
            all.push(TimelineEntry {
                at: m.at,
                source,
                text: format!(
                    "{arrow} {} = {}{}",
                    m.topic,
                    clip(&m.payload, 300),
                    if m.retain { " [retained]" } else { "" }
                ),
            });
        }
        for (at, line) in &self.console {
            all.push(TimelineEntry {
                at: *at,
                source: "console",
                text: line.clone(),
            });
        }
        for g in &self.gpio {
            let who = match g.source {
                LineSource::Rig => "rig",
                LineSource::Board => "board",
            };
            all.push(TimelineEntry {
                at: g.at,
                source: "gpio",
                text: format!("{who}: {}", g.text),
            });
        }
        for h in &self.http {
            all.push(TimelineEntry {
                at: h.at,
                source: "http",
                text: format!(
                    "{} {} -> {} {} ({:?})",
                    h.method,
                    h.path,
                    h.status,
                    clip(&h.response, 200),
                    h.took
                ),
            });
        }
        for (at, what) in &self.web {
            all.push(TimelineEntry {
                at: *at,
                source: "web",
                text: what.clone(),
            });
        }
        for (at, what) in &self.actions {
            all.push(TimelineEntry {
                at: *at,
                source: "rig",
                text: what.clone(),
            });
        }
        all.sort_by_key(|e| e.at);
        all
    }

    /// Writes the evidence folder of one failed attempt; returns the files written.
    pub fn write(
        &self,
        dir: &Path,
        scenario: &ScenarioRecord,
        attempt: &Attempt,
    ) -> io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut files = Vec::new();
        let mut put = |name: &str, text: String| -> io::Result<()> {
            let path = dir.join(name);
            std::fs::write(&path, text)?;
            files.push(path);
            Ok(())
        };
        put("summary.txt", self.summary(scenario, attempt))?;
        put("steps.txt", steps_text(&attempt.steps))?;
        let timeline: String = self
            .timeline(&attempt.steps)
            .iter()
            .map(|e| format!("{} {:<8} {}\n", secs(e.at), e.source, e.text))
            .collect();
        put("timeline.txt", timeline)?;
        let console: String = self
            .console
            .iter()
            .map(|(at, l)| format!("{} {l}\n", secs(*at)))
            .collect();
        put("console.log", console)?;
        let mqtt: String = self
            .mqtt
            .iter()
            .map(|m| {
                let dir = match m.direction {
                    Direction::Received => "received",
                    Direction::Published => "published",
                };
                json!({"t": m.at.as_secs_f64(), "direction": dir, "topic": m.topic, "payload": m.payload,
                       "retain": m.retain, "qos": m.qos})
                .to_string()
                    + "\n"
            })
            .collect();
        put("mqtt.jsonl", mqtt)?;
        let gpio: String = self
            .gpio
            .iter()
            .map(|g| {
                let who = match g.source {
                    LineSource::Rig => "rig",
                    LineSource::Board => "board",
                };
                json!({"t": g.at.as_secs_f64(), "source": who, "event": g.text}).to_string() + "\n"
            })
            .collect();
        put("gpio.jsonl", gpio)?;
        let http: String = self
            .http
            .iter()
            .map(|h| {
                json!({"t": h.at.as_secs_f64(), "method": h.method, "path": h.path, "request": h.request,
                       "status": h.status, "response": h.response, "ms": h.took.as_secs_f64() * 1000.0})
                .to_string()
                    + "\n"
            })
            .collect();
        put("http.jsonl", http)?;
        let tree: String = self
            .tree
            .iter()
            .map(|(t, s)| {
                format!(
                    "{t} {} {}\n",
                    if s.retain { "[r]" } else { "[-]" },
                    s.payload
                )
            })
            .collect();
        put("topic-tree.txt", tree)?;
        if !self.state_files.is_empty() {
            let state = dir.join("state");
            std::fs::create_dir_all(&state)?;
            for (name, bytes) in &self.state_files {
                let path = state.join(name);
                std::fs::write(&path, bytes)?;
                files.push(path);
            }
        }
        Ok(files)
    }

    /// The actual value of the expectation: what the step saw, else the topic's value in the tree.
    pub fn actual(&self) -> Option<String> {
        let e = self.expectation.as_ref()?;
        e.actual.clone().or_else(|| {
            let topic = e.topic.as_ref()?;
            Some(match self.tree.get(topic) {
                Some(s) => s.payload.clone(),
                None => "(never published)".into(),
            })
        })
    }

    fn summary(&self, scenario: &ScenarioRecord, attempt: &Attempt) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "scenario: {} ({})", scenario.name, scenario.location());
        let _ = writeln!(out, "feature:  {}", scenario.feature);
        let _ = writeln!(
            out,
            "attempt:  {} — {}",
            attempt.number,
            match &self.infrastructure {
                Some(_) => "infrastructure error",
                None => "failure",
            }
        );
        let _ = writeln!(out, "board:    {}", self.board);
        let _ = writeln!(
            out,
            "firmware: {}",
            self.firmware.as_deref().unwrap_or("(not reported)")
        );
        let _ = writeln!(out, "topic:    {}", self.main_topic);
        if let Some(i) = &self.infrastructure {
            let _ = writeln!(out, "\ninfrastructure: {i}");
        }
        let _ = writeln!(
            out,
            "\nwhy:\n{}",
            attempt.message.as_deref().unwrap_or("(no message)")
        );
        if let Some(e) = &self.expectation {
            let _ = writeln!(out, "\nexpected: {}", e.what);
            let actual = self.actual().unwrap_or_else(|| "(unknown)".into());
            if e.expected.contains('\n') || actual.contains('\n') {
                let _ = writeln!(out, "diff (- expected, + actual):");
                for (sign, line) in line_diff(&e.expected, &actual) {
                    let _ = writeln!(out, "{sign} {line}");
                }
            } else {
                let _ = writeln!(out, "  expected: {}", e.expected);
                let _ = writeln!(out, "  actual:   {actual}");
            }
        }
        let _ = writeln!(out, "\nsteps:\n{}", steps_text(&attempt.steps));
        out
    }
}

fn status_word(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Passed => "passed",
        StepStatus::Failed => "FAILED",
        StepStatus::Skipped => "skipped",
        StepStatus::Running => "no result",
        StepStatus::NotRun => "not run",
    }
}

/// `+  1.234 s` since the scenario started.
pub fn secs(d: Duration) -> String {
    format!("+{:>8.3}s", d.as_secs_f64())
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}

/// The steps with their start, duration and status, one per line.
pub fn steps_text(steps: &[StepRecord]) -> String {
    steps
        .iter()
        .map(|s| {
            let mark = match s.status {
                StepStatus::Passed => "ok  ",
                StepStatus::Failed => "FAIL",
                StepStatus::Skipped => "skip",
                StepStatus::Running => "??  ",
                StepStatus::NotRun => "    ",
            };
            let timing = if s.status == StepStatus::NotRun {
                "(not run)".to_string()
            } else {
                format!("{} {:>9.3?}", secs(s.started), s.duration)
            };
            let mut line = format!("{mark} {timing}  {}\n", s.title());
            if let Some(e) = &s.error {
                for l in e.lines() {
                    line += &format!("       | {l}\n");
                }
            }
            line
        })
        .collect()
}

/// A line diff of two texts: (' ' | '-' | '+', line). Longest common subsequence; texts are snapshot-sized.
pub fn line_diff<'a>(expected: &'a str, actual: &'a str) -> Vec<(char, &'a str)> {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(('-', a[i]));
            i += 1;
        } else {
            out.push(('+', b[j]));
            j += 1;
        }
    }
    out
}

/// A file or folder name from free text: lower case, `-` between words, at most 60 characters.
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut s: String = out.trim_end_matches('-').chars().take(60).collect();
    while s.ends_with('-') {
        s.pop();
    }
    if s.is_empty() {
        "scenario".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_lines_and_names_folders() {
        let d = line_diff("a\nb\nc", "a\nx\nc");
        assert_eq!(d, vec![(' ', "a"), ('-', "b"), ('+', "x"), (' ', "c")]);
        assert_eq!(line_diff("", "n"), vec![('+', "n")]);
        assert_eq!(slug("A value, read: 16.98 (ok)!"), "a-value-read-16-98-ok");
        assert_eq!(slug("***"), "scenario");
    }

    #[test]
    fn the_timeline_merges_every_source_in_time_order() {
        let ms = Duration::from_millis;
        let ev = Evidence {
            console: vec![(ms(30), "ok".into())],
            mqtt: vec![MqttEntry {
                at: ms(20),
                direction: Direction::Received,
                topic: "m/a".into(),
                payload: "1".into(),
                retain: true,
                qos: 1,
            }],
            gpio: vec![GpioEntry {
                at: ms(10),
                source: LineSource::Board,
                text: "pin 4 -> 1".into(),
            }],
            ..Evidence::default()
        };
        let t = ev.timeline(&[]);
        let sources: Vec<&str> = t.iter().map(|e| e.source).collect();
        assert_eq!(sources, ["gpio", "mqtt>", "console"]);
        assert!(t[1].text.contains("m/a = 1 [retained]"));
    }
}
