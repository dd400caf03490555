//! The run as JUnit XML, the way Maven Surefire writes reruns (GitLab, Jenkins and GitHub reporters read it):
//! a test failure is `<failure>`, an infrastructure error `<error>`; the attempts before the last one are
//! `<rerunFailure>`/`<rerunError>` when the scenario still failed, `<flakyFailure>`/`<flakyError>` when it passed
//! on a retry (so a flaky scenario counts as passed, and shows). Run properties (board, firmware, broker, seed) go
//! in `<properties>`; each failed attempt's evidence folder is a testcase property and `[[ATTACHMENT|...]]` lines
//! in `<system-out>` (GitLab and Jenkins' attachments plugin link them).

use std::fmt::Write as _;
use std::path::Path;

use crate::results::{Attempt, RunRecord, ScenarioRecord, Status, Verdict};

/// Escapes text for XML attributes and content (and drops characters XML 1.0 cannot carry).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\r' | '\t' => out.push(c),
            c if (c as u32) < 0x20 => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

fn secs(d: std::time::Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// How a path appears in the report: relative to the working directory when below it (CI artifact paths are).
fn shown(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

/// The attempt's details: the message's first line, and the steps with their timings.
fn attempt_body(a: &Attempt) -> String {
    let mut body = a.message.clone().unwrap_or_default();
    body += "\n\nsteps (attempt ";
    body += &a.number.to_string();
    body += "):\n";
    body += &crate::evidence::steps_text(&a.steps);
    if let Some(dir) = &a.evidence_dir {
        let _ = writeln!(body, "evidence: {}", shown(dir));
    }
    body
}

fn message(a: &Attempt) -> String {
    a.message
        .as_deref()
        .and_then(|m| m.lines().next())
        .unwrap_or("failed")
        .to_string()
}

fn kind(a: &Attempt) -> &'static str {
    match a.verdict {
        Verdict::Error => "infrastructure",
        _ => "assertion",
    }
}

fn testcase(out: &mut String, s: &ScenarioRecord) {
    let last = s.attempts.last();
    let time = last.map(|a| a.duration).unwrap_or_default();
    let _ = write!(
        out,
        "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"",
        escape(&s.name),
        escape(&s.feature),
        secs(time)
    );
    if let Some(f) = &s.file {
        let _ = write!(
            out,
            " file=\"{}\" line=\"{}\"",
            escape(&f.display().to_string()),
            s.line
        );
    }
    out.push_str(">\n");
    let failed: Vec<&Attempt> = s.failed_attempts().collect();
    let evidence: Vec<&Path> = failed
        .iter()
        .filter_map(|a| a.evidence_dir.as_deref())
        .collect();
    out.push_str("      <properties>\n");
    let _ = writeln!(
        out,
        "        <property name=\"attempts\" value=\"{}\"/>",
        s.attempts.len()
    );
    if let Some(fw) = s
        .attempts
        .iter()
        .rev()
        .find_map(|a| a.evidence.as_ref().and_then(|e| e.firmware.clone()))
    {
        let _ = writeln!(
            out,
            "        <property name=\"firmware\" value=\"{}\"/>",
            escape(&fw)
        );
    }
    for dir in &evidence {
        let _ = writeln!(
            out,
            "        <property name=\"evidence\" value=\"{}\"/>",
            escape(&shown(dir))
        );
    }
    out.push_str("      </properties>\n");
    let status = s.status();
    match status {
        Status::Skipped => out.push_str("      <skipped/>\n"),
        Status::Failed | Status::Error => {
            // The first failed attempt is the failure; the others are its reruns.
            for (i, a) in failed.iter().enumerate() {
                let tag = match (i, a.verdict) {
                    (0, Verdict::Error) => "error",
                    (0, _) => "failure",
                    (_, Verdict::Error) => "rerunError",
                    (_, _) => "rerunFailure",
                };
                element(out, tag, a, i > 0);
            }
        }
        Status::Flaky => {
            for a in &failed {
                let tag = match a.verdict {
                    Verdict::Error => "flakyError",
                    _ => "flakyFailure",
                };
                element(out, tag, a, true);
            }
        }
        Status::Passed => {}
    }
    let mut system_out = String::new();
    for a in &s.attempts {
        let _ = writeln!(
            system_out,
            "attempt {} ({:?}):\n{}",
            a.number,
            a.verdict,
            crate::evidence::steps_text(&a.steps)
        );
    }
    for a in &failed {
        if let Some(dir) = &a.evidence_dir {
            let _ = writeln!(
                system_out,
                "evidence (attempt {}): {}",
                a.number,
                shown(dir)
            );
            for file in files_in(dir) {
                let _ = writeln!(system_out, "[[ATTACHMENT|{}]]", shown(&file));
            }
        }
    }
    let _ = writeln!(
        out,
        "      <system-out>{}</system-out>",
        escape(&system_out)
    );
    out.push_str("    </testcase>\n");
}

/// A failure/error element; reruns and flaky ones carry their details inside, as Surefire writes them.
fn element(out: &mut String, tag: &str, a: &Attempt, nested: bool) {
    let _ = write!(
        out,
        "      <{tag} message=\"{}\" type=\"{}\">",
        escape(&message(a)),
        kind(a)
    );
    if nested {
        let _ = write!(out, "<stackTrace>{}</stackTrace>", escape(&attempt_body(a)));
    } else {
        out.push_str(&escape(&attempt_body(a)));
    }
    let _ = writeln!(out, "</{tag}>");
}

fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// The JUnit XML of a run: one `<testsuite>` per feature.
pub fn xml(run: &RunRecord) -> String {
    let c = run.counts();
    let setup_errors = usize::from(run.setup_error.is_some());
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"hil\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\">",
        c.total() + setup_errors + run.problems.len(),
        c.failed + run.problems.len(),
        c.errors + setup_errors,
        c.skipped,
        secs(run.wall)
    );
    let properties = |out: &mut String| {
        out.push_str("    <properties>\n");
        for (k, v) in &run.properties {
            let _ = writeln!(
                out,
                "      <property name=\"{}\" value=\"{}\"/>",
                escape(k),
                escape(v)
            );
        }
        out.push_str("    </properties>\n");
    };
    let mut features: Vec<&str> = Vec::new();
    for s in &run.scenarios {
        if !features.contains(&s.feature.as_str()) {
            features.push(&s.feature);
        }
    }
    for feature in features {
        let cases: Vec<&ScenarioRecord> = run
            .scenarios
            .iter()
            .filter(|s| s.feature == feature)
            .collect();
        let count = |st: Status| cases.iter().filter(|s| s.status() == st).count();
        let time: std::time::Duration = cases.iter().map(|s| s.duration()).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" flakes=\"{}\" time=\"{}\">",
            escape(feature),
            cases.len(),
            count(Status::Failed),
            count(Status::Error),
            count(Status::Skipped),
            count(Status::Flaky),
            secs(time)
        );
        properties(&mut out);
        for s in cases {
            testcase(&mut out, s);
        }
        out.push_str("  </testsuite>\n");
    }
    if !run.problems.is_empty() || run.setup_error.is_some() {
        let _ = writeln!(
            out,
            "  <testsuite name=\"hil\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"0\">",
            run.problems.len() + setup_errors,
            run.problems.len(),
            setup_errors
        );
        properties(&mut out);
        if let Some(e) = &run.setup_error {
            let _ = writeln!(
                out,
                "    <testcase name=\"rig setup\" classname=\"hil\"><error message=\"{}\" type=\"infrastructure\">{}</error></testcase>",
                escape(e.lines().next().unwrap_or_default()),
                escape(e)
            );
        }
        for p in &run.problems {
            let _ = writeln!(
                out,
                "    <testcase name=\"feature file\" classname=\"hil\"><failure message=\"{}\" type=\"parse\"/></testcase>",
                escape(p)
            );
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::{attempt, scenario};

    #[test]
    fn flaky_and_rerun_elements_as_surefire_writes_them() {
        let mut run = RunRecord::new();
        run.properties = vec![
            ("board".into(), "virtual".into()),
            ("seed".into(), "7".into()),
        ];
        run.scenarios = vec![
            scenario(
                "flaky <one>",
                vec![
                    attempt(1, Verdict::Failed, Some("first & only")),
                    attempt(2, Verdict::Passed, None),
                ],
            ),
            scenario(
                "broken",
                vec![
                    attempt(1, Verdict::Failed, Some("wrong value")),
                    attempt(2, Verdict::Failed, Some("wrong again")),
                ],
            ),
            scenario(
                "no board",
                vec![attempt(1, Verdict::Error, Some("board did not come up"))],
            ),
        ];
        let x = xml(&run);
        assert!(x.contains("name=\"flaky &lt;one&gt;\""), "{x}");
        assert!(
            x.contains(
                "<flakyFailure message=\"first &amp; only\" type=\"assertion\"><stackTrace>"
            ),
            "{x}"
        );
        assert!(
            x.contains("<failure message=\"wrong value\" type=\"assertion\">"),
            "{x}"
        );
        assert!(x.contains("<rerunFailure message=\"wrong again\""), "{x}");
        assert!(
            x.contains("<error message=\"board did not come up\" type=\"infrastructure\">"),
            "{x}"
        );
        assert!(x.contains("<property name=\"seed\" value=\"7\"/>"), "{x}");
        assert!(
            x.contains("failures=\"1\" errors=\"1\" skipped=\"0\" flakes=\"1\""),
            "{x}"
        );
        // A flaky scenario has no <failure> of its own: it passed.
        let flaky_case =
            &x[x.find("flaky &lt;one&gt;").unwrap()..x.find("name=\"broken\"").unwrap()];
        assert!(!flaky_case.contains("<failure"), "{flaky_case}");
    }

    #[test]
    fn a_run_that_never_started_is_one_error() {
        let mut run = RunRecord::new();
        run.setup_error = Some("broker mqtt://127.0.0.1:1 is unreachable".into());
        let x = xml(&run);
        assert!(
            x.contains("<testsuites name=\"hil\" tests=\"1\" failures=\"0\" errors=\"1\""),
            "{x}"
        );
        assert!(
            x.contains("<error message=\"broker mqtt://127.0.0.1:1 is unreachable\""),
            "{x}"
        );
    }
}
