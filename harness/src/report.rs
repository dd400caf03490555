//! The run as one self-contained HTML page (inline style, no scripts or fonts from elsewhere): the summary, each
//! scenario with its steps and durations, and for each failure what the failing step expected against what the
//! board did, the timeline of MQTT, console, GPIO and HTTP around that step, and the topic tree at that moment.
//! CI keeps it as an artifact; people open it instead of reading logs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::evidence::{line_diff, secs, Evidence, TimelineEntry};
use crate::junit::escape;
use crate::results::{Attempt, RunRecord, ScenarioRecord, Status, StepStatus, Verdict};

/// How much of the timeline before the failing step the page shows at first.
const BEFORE_STEP: Duration = Duration::from_secs(3);

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,sans-serif;margin:0 2rem 3rem;color:#1d2430}
h1{margin:1.2rem 0 .3rem}h2{margin-top:2rem;border-bottom:1px solid #d5dae1}
.n{display:inline-block;padding:.1rem .5rem;border-radius:.6rem;margin-right:.3rem;font-weight:600}
.passed{background:#dff3e3}.failed{background:#fbe0e0}.error{background:#fff0cf}.flaky{background:#e7e3fb}
.skipped{background:#eceff3}
#summary{font-size:1.1rem;margin:.5rem 0 1rem}
table{border-collapse:collapse;margin:.4rem 0}td,th{padding:.15rem .6rem;text-align:left;vertical-align:top}
table.timeline,table.tree{width:100%}table.timeline td:last-child,table.tree td:last-child{word-break:break-word}
th{background:#f2f4f7}tr.step-failed td{background:#fbe0e0;font-weight:600}tr.in-step td{background:#fffbe6}
tr.expected-topic td{background:#fbe0e0}
pre{background:#f6f7f9;padding:.5rem;overflow-x:auto;white-space:pre-wrap;margin:.3rem 0}
.diff .add{color:#0a6b2b}.diff .del{color:#a31515}
article.scenario{border:1px solid #d5dae1;border-radius:.4rem;padding:.2rem 1rem .8rem;margin:1rem 0}
.mono,td.t,td.src{font-family:ui-monospace,monospace;font-size:12.5px;white-space:nowrap}
details>summary{cursor:pointer;margin:.3rem 0}
"#;

/// `path` relative to the folder `base` (`../ev/x`), so a page and its evidence move together (CI artifacts).
fn relative(path: &Path, base: &Path) -> PathBuf {
    let abs = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let (path, base) = (abs(path), abs(base));
    let common = path
        .components()
        .zip(base.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = PathBuf::new();
    for _ in base.components().skip(common) {
        out.push("..");
    }
    for c in path.components().skip(common) {
        out.push(c);
    }
    out
}

/// The page for a run; `page_dir` is where it is written (links to evidence are relative to it).
pub fn html(run: &RunRecord, page_dir: &Path) -> String {
    let c = run.counts();
    let outcome = run.outcome();
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>hil report</title>\
         <style>{STYLE}</style></head><body>\n<h1>hil run</h1>\n"
    );
    let _ = writeln!(
        out,
        "<div id=\"summary\" class=\"outcome-{}\">{} scenarios: <span class=\"n passed\">{} passed</span>\
         <span class=\"n flaky\">{} flaky</span><span class=\"n failed\">{} failed</span>\
         <span class=\"n error\">{} errors (infrastructure)</span><span class=\"n skipped\">{} skipped</span> \
         in {:.1?} — exit code {}</div>",
        match outcome {
            crate::results::Outcome::Passed => "passed",
            crate::results::Outcome::Failed => "failed",
            crate::results::Outcome::Error => "error",
        },
        c.total(),
        c.passed,
        c.flaky,
        c.failed,
        c.errors,
        c.skipped,
        run.wall,
        outcome.code()
    );
    out.push_str("<table id=\"properties\">");
    for (k, v) in &run.properties {
        let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
    }
    out.push_str("</table>\n");
    if let Some(e) = &run.setup_error {
        let _ = writeln!(
            out,
            "<h2>Infrastructure error</h2><pre id=\"setup-error\">{}</pre>",
            escape(e)
        );
    }
    if !run.problems.is_empty() {
        out.push_str("<h2>Feature files that do not parse</h2>");
        for p in &run.problems {
            let _ = write!(out, "<pre class=\"problem\">{}</pre>", escape(p));
        }
    }
    let bad: Vec<&ScenarioRecord> = run
        .scenarios
        .iter()
        .filter(|s| matches!(s.status(), Status::Failed | Status::Error))
        .collect();
    if !bad.is_empty() {
        out.push_str("<h2 id=\"failures\">Failures and errors</h2>\n");
        for s in bad {
            scenario_failure(&mut out, s, page_dir);
        }
    }
    let flaky: Vec<&ScenarioRecord> = run
        .scenarios
        .iter()
        .filter(|s| s.status() == Status::Flaky)
        .collect();
    if !flaky.is_empty() {
        out.push_str("<section id=\"flaky\"><h2>Flaky: failed, then passed on a retry</h2>\n");
        for s in flaky {
            scenario_failure(&mut out, s, page_dir);
        }
        out.push_str("</section>\n");
    }
    out.push_str("<h2>All scenarios</h2>\n<table id=\"scenarios\"><tr><th>status</th><th>scenario</th><th>where</th><th>attempts</th><th>time</th></tr>\n");
    for s in &run.scenarios {
        let st = s.status();
        let _ = writeln!(
            out,
            "<tr class=\"scenario-row\"><td><span class=\"n {0}\">{0}</span></td><td>{1}<details><summary>steps</summary>{2}</details></td>\
             <td class=\"mono\">{3}</td><td>{4}</td><td class=\"mono\">{5:.2?}</td></tr>",
            st.name(),
            escape(&s.name),
            s.attempts.last().map(steps_table).unwrap_or_default(),
            escape(&s.location()),
            s.attempts.len(),
            s.duration()
        );
    }
    out.push_str("</table>\n</body></html>\n");
    out
}

fn steps_table(a: &Attempt) -> String {
    let mut t = String::from(
        "<table class=\"steps\"><tr><th>step</th><th>start</th><th>took</th><th>result</th></tr>",
    );
    for s in &a.steps {
        let (class, result) = match s.status {
            StepStatus::Passed => ("", "passed"),
            StepStatus::Failed => (" class=\"step-failed\"", "FAILED"),
            StepStatus::Skipped => ("", "skipped"),
            StepStatus::Running => ("", "no result"),
            StepStatus::NotRun => ("", "not run"),
        };
        let timing = if s.status == StepStatus::NotRun {
            ("".to_string(), "".to_string())
        } else {
            (secs(s.started), format!("{:.3?}", s.duration))
        };
        let _ = write!(
            t,
            "<tr{class}><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td>{result}</td></tr>",
            escape(&s.title()),
            timing.0,
            timing.1
        );
    }
    t.push_str("</table>");
    t
}

fn scenario_failure(out: &mut String, s: &ScenarioRecord, page_dir: &Path) {
    let status = s.status();
    let _ = writeln!(
        out,
        "<article class=\"scenario {}\"><h3><span class=\"n {}\">{}</span> {} <span class=\"mono\">{}</span></h3>",
        status.name(),
        status.name(),
        status.name(),
        escape(&s.name),
        escape(&s.location())
    );
    for a in s.failed_attempts() {
        attempt_failure(out, a, s.attempts.len(), page_dir);
    }
    if status == Status::Flaky {
        if let Some(last) = s.attempts.last() {
            let _ = writeln!(
                out,
                "<p>Attempt {} passed on a fresh board:</p>{}",
                last.number,
                steps_table(last)
            );
        }
    }
    out.push_str("</article>\n");
}

fn attempt_failure(out: &mut String, a: &Attempt, attempts: usize, page_dir: &Path) {
    let kind = match a.verdict {
        Verdict::Error => "infrastructure error",
        _ => "failure",
    };
    let _ = writeln!(
        out,
        "<section class=\"attempt\" data-attempt=\"{}\"><h4>Attempt {} of {attempts}: {kind}</h4>\
         <pre class=\"why\">{}</pre>",
        a.number,
        a.number,
        escape(a.message.as_deref().unwrap_or("(no message)"))
    );
    if let Some(dir) = &a.evidence_dir {
        let _ = writeln!(
            out,
            "<p>Evidence: <a class=\"evidence\" href=\"{}\">{}</a></p>",
            escape(&relative(dir, page_dir).display().to_string()),
            escape(&dir.display().to_string())
        );
    }
    out.push_str(&steps_table(a));
    let Some(ev) = &a.evidence else {
        out.push_str("</section>\n");
        return;
    };
    if let Some(i) = &ev.infrastructure {
        let _ = writeln!(
            out,
            "<p class=\"infrastructure\">Infrastructure: {}</p>",
            escape(i)
        );
    }
    let step = a.failed_step();
    let since_step = |e: &Duration| step.is_none_or(|s| *e >= s.started);
    if let Some(x) = ev.expectation.as_ref().filter(|x| since_step(&x.at)) {
        expectation(out, ev, &x.what, &x.expected);
    }
    let board = ev
        .firmware
        .as_deref()
        .map(|f| format!("{} running {f}", ev.board))
        .unwrap_or_else(|| ev.board.clone());
    let _ = writeln!(out, "<p class=\"board\">Board: {}</p>", escape(&board));
    let timeline = ev.timeline(&a.steps);
    let (from, to) = match step {
        Some(s) => (
            s.started.saturating_sub(BEFORE_STEP),
            s.started + s.duration,
        ),
        None => (Duration::ZERO, Duration::MAX),
    };
    let near: Vec<&TimelineEntry> = timeline
        .iter()
        .filter(|e| e.at >= from && e.at <= to + Duration::from_millis(500))
        .collect();
    let _ = writeln!(
        out,
        "<h5>Timeline around the failing step ({} of {} entries)</h5>",
        near.len(),
        timeline.len()
    );
    timeline_table(
        out,
        &near,
        step.map(|s| (s.started, s.started + s.duration)),
    );
    let all: Vec<&TimelineEntry> = timeline.iter().collect();
    out.push_str("<details><summary>The whole timeline</summary>");
    timeline_table(out, &all, step.map(|s| (s.started, s.started + s.duration)));
    out.push_str("</details>");
    tree(
        out,
        ev,
        step.is_none_or(|s| ev.expectation.as_ref().is_some_and(|x| x.at >= s.started)),
    );
    out.push_str("</section>\n");
}

fn expectation(out: &mut String, ev: &Evidence, what: &str, expected: &str) {
    let actual = ev.actual().unwrap_or_else(|| "(unknown)".into());
    let _ = write!(
        out,
        "<div class=\"expectation\"><h5>Expected: {}</h5>",
        escape(what)
    );
    if expected.contains('\n') || actual.contains('\n') {
        out.push_str("<pre class=\"diff\">");
        for (sign, line) in line_diff(expected, &actual) {
            let class = match sign {
                '+' => "add",
                '-' => "del",
                _ => "same",
            };
            let _ = writeln!(
                out,
                "<span class=\"{class}\">{sign} {}</span>",
                escape(line)
            );
        }
        out.push_str("</pre><p class=\"legend\">- expected, + what the board did</p>");
    } else {
        let _ = write!(
            out,
            "<table><tr><th>expected</th><td class=\"expected mono\">{}</td></tr>\
             <tr><th>actual</th><td class=\"actual mono\">{}</td></tr></table>",
            escape(expected),
            escape(&actual)
        );
    }
    out.push_str("</div>\n");
}

fn timeline_table(
    out: &mut String,
    entries: &[&TimelineEntry],
    step: Option<(Duration, Duration)>,
) {
    out.push_str("<table class=\"timeline\"><tr><th>time</th><th>source</th><th>what</th></tr>");
    for e in entries {
        let inside = step.is_some_and(|(a, b)| e.at >= a && e.at <= b);
        let _ = write!(
            out,
            "<tr{}><td class=\"t\">{}</td><td class=\"src\">{}</td><td>{}</td></tr>",
            if inside { " class=\"in-step\"" } else { "" },
            secs(e.at),
            e.source,
            escape(&e.text)
        );
    }
    out.push_str("</table>\n");
}

fn tree(out: &mut String, ev: &Evidence, current: bool) {
    let expected = ev
        .expectation
        .as_ref()
        .filter(|_| current)
        .and_then(|x| x.topic.as_ref().map(|t| (t, &x.expected)));
    let _ = write!(
        out,
        "<h5>Topic tree when the step failed ({} topics)</h5><table class=\"tree\">\
         <tr><th>topic</th><th>retained</th><th>payload</th></tr>",
        ev.tree.len()
    );
    if let Some((topic, want)) = expected {
        if !ev.tree.contains_key(topic.as_str()) {
            let _ = write!(
                out,
                "<tr class=\"expected-topic\"><td class=\"mono\">{}</td><td></td><td>never published; expected {}</td></tr>",
                escape(topic),
                escape(want)
            );
        }
    }
    for (t, s) in &ev.tree {
        let hit = expected.filter(|(topic, _)| *topic == t);
        let _ = write!(
            out,
            "<tr{}><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}{}</td></tr>",
            if hit.is_some() {
                " class=\"expected-topic\""
            } else {
                ""
            },
            escape(t),
            if s.retain { "yes" } else { "" },
            escape(&s.payload),
            hit.map(|(_, want)| format!(" <b>(expected: {})</b>", escape(want)))
                .unwrap_or_default()
        );
    }
    out.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::Expectation;
    use crate::observer::Seen;
    use crate::results::tests::{attempt, scenario};
    use std::sync::Arc;

    #[test]
    fn a_failure_shows_expected_against_actual_and_the_tree() {
        let mut failed = attempt(1, Verdict::Failed, Some("'m/x' never read \"2\""));
        let mut ev = Evidence {
            board: "virtual".into(),
            ..Evidence::default()
        };
        ev.tree.insert("m/x".into(), Seen::live("1"));
        ev.expectation = Some(Expectation {
            at: Duration::ZERO,
            what: "topic 'x' is \"2\"".into(),
            topic: Some("m/x".into()),
            expected: "2".into(),
            actual: None,
        });
        failed.evidence = Some(Arc::new(ev));
        let mut run = RunRecord::new();
        run.scenarios = vec![scenario("<b>x</b>", vec![failed])];
        let page = html(&run, Path::new("/tmp"));
        assert_eq!(
            relative(Path::new("/a/b/ev/x"), Path::new("/a/c")),
            PathBuf::from("../b/ev/x")
        );
        assert!(
            page.contains("<td class=\"expected mono\">2</td>"),
            "{page}"
        );
        assert!(page.contains("<td class=\"actual mono\">1</td>"), "{page}");
        assert!(page.contains("class=\"expected-topic\""), "{page}");
        assert!(page.contains("&lt;b&gt;x&lt;/b&gt;"), "escaped: {page}");
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "self-contained"
        );
    }
}
