//! What `hil run` reports when things go wrong, end to end on the scenarios in `tests/fixtures/`: a firmware
//! behaviour broken on purpose leaves an evidence folder and an HTML report that show the cause (the report is
//! opened in a headless browser); infrastructure faults are errors with exit code 2; a flaky scenario is flaky in
//! the summary, the JUnit file and the report; a wait whose answer is known fails at once.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hil-reports-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn hil(cwd: &Path, args: &[&str], extra: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hil"))
        .args(args)
        .args(extra)
        .current_dir(cwd)
        .output()
        .expect("run hil")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The one attempt folder under `evidence/<scenario>/attempt-N`.
fn attempt_dir(evidence: &Path, n: usize) -> PathBuf {
    let scenario = std::fs::read_dir(evidence)
        .expect("evidence dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("no scenario folder in {}", evidence.display()));
    scenario.join(format!("attempt-{n}"))
}

#[test]
fn a_broken_behaviour_leaves_evidence_and_a_report_that_show_the_cause() {
    let board = common::board_bin();
    let dir = scratch("broken");
    let (evidence, report, junit) = (dir.join("ev"), dir.join("r.html"), dir.join("j.xml"));
    let out = hil(
        &root(),
        &["run", "--board-bin"],
        &[
            &board,
            Path::new("--evidence"),
            &evidence,
            Path::new("--report"),
            &report,
            Path::new("--junit"),
            &junit,
            &fixture("broken.feature"),
        ],
    );
    let text = common::text(&out);
    assert_eq!(out.status.code(), Some(1), "a test failure: {text}");
    assert!(text.contains("1 failed, 0 errors"), "{text}");

    let attempt = attempt_dir(&evidence, 1);
    for file in [
        "summary.txt",
        "steps.txt",
        "timeline.txt",
        "console.log",
        "mqtt.jsonl",
        "gpio.jsonl",
        "http.jsonl",
        "topic-tree.txt",
        "state/board.log",
    ] {
        assert!(
            attempt.join(file).is_file(),
            "{file} in {}",
            attempt.display()
        );
    }
    let summary = read(&attempt.join("summary.txt"));
    assert!(
        summary.contains("expected: actual_value = 16.98"),
        "{summary}"
    );
    let actual = summary
        .lines()
        .find(|l| l.trim_start().starts_with("actual:"))
        .unwrap_or_default()
        .to_string();
    assert!(
        actual.contains("actual_value = 169.8"),
        "the board's value, from its JSON: {summary}"
    );
    // The publish that shows the cause is in the MQTT timeline, with retain, QoS and its time.
    let mqtt = read(&attempt.join("mqtt.jsonl"));
    let json_line = mqtt
        .lines()
        .find(|l| l.contains("/process/data/0/json") && l.contains("169.8"))
        .unwrap_or_else(|| panic!("no process/data/0/json publish in {mqtt}"));
    let v: serde_json::Value = serde_json::from_str(json_line).unwrap();
    assert!(
        v["t"].as_f64().is_some_and(|t| t > 0.0)
            && v["qos"].is_number()
            && v["retain"].is_boolean()
    );
    assert!(
        mqtt.contains("\"direction\":\"published\"") && mqtt.contains("cycle_start"),
        "the rig's own publishes are in the timeline: {mqtt}"
    );
    let steps = read(&attempt.join("steps.txt"));
    assert!(steps.contains("FAIL") && steps.contains("ok "), "{steps}");
    assert!(read(&attempt.join("console.log")).contains("frame main"));

    let xml = read(&junit);
    assert!(
        xml.contains("<failure message=\"") && xml.contains("type=\"assertion\""),
        "{xml}"
    );
    for property in ["board", "broker", "seed", "firmware"] {
        assert!(
            xml.contains(&format!("<property name=\"{property}\"")),
            "{property}: {xml}"
        );
    }
    assert!(
        xml.contains("<property name=\"evidence\"") && xml.contains("[[ATTACHMENT|"),
        "{xml}"
    );

    let page = read(&report);
    assert!(page.contains("<style>") && !page.contains("<script src") && !page.contains("<link"));
    if !harness::browser::installed() {
        println!("no browser here: the report was checked as text only");
        return;
    }
    // The browser module is async (one Chromium for a whole run, pages driven without blocking the rig).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let browser = harness::browser::Browser::start()
            .await
            .expect("headless chromium");
        browser
            .open(&format!("file://{}", report.display()))
            .await
            .expect("open the report");
        let summary = browser.text("#summary").await.unwrap();
        assert!(
            summary.contains("1 failed") && summary.contains("exit code 1"),
            "{summary}"
        );
        let expected = browser
            .text(".scenario.failed .expectation .expected")
            .await
            .unwrap();
        let actual = browser
            .text(".scenario.failed .expectation .actual")
            .await
            .unwrap();
        assert_eq!(expected, "actual_value = 16.98");
        assert!(actual.contains("169.8"), "{actual}");
        let timeline = browser
            .text(".scenario.failed table.timeline")
            .await
            .unwrap();
        assert!(
            timeline.contains("/process/data/0/json") && timeline.contains("cycle_start"),
            "{timeline}"
        );
        let row = browser
            .text(".scenario.failed table.tree tr.expected-topic")
            .await
            .unwrap();
        assert!(
            row.contains("/process/data/0/json") && row.contains("expected: actual_value = 16.98"),
            "{row}"
        );
        let failing = browser
            .text(".scenario.failed tr.step-failed")
            .await
            .unwrap();
        assert!(failing.contains("Then the JSON at"), "{failing}");
        drop(browser);
        harness::browser::shutdown().await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn infrastructure_faults_are_errors_with_their_own_exit_code() {
    let dir = scratch("infra");
    // A board program that exits at once.
    let quitter = dir.join("quitter.sh");
    std::fs::write(&quitter, "#!/bin/sh\necho 'no board today' >&2\nexit 3\n").unwrap();
    std::fs::set_permissions(
        &quitter,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let junit = dir.join("j.xml");
    let out = hil(
        &root(),
        &["run", "--board-bin"],
        &[
            &quitter,
            Path::new("--evidence"),
            &dir.join("ev"),
            Path::new("--junit"),
            &junit,
            &fixture("infrastructure.feature"),
        ],
    );
    let text = common::text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("0 failed, 1 errors (infrastructure)"),
        "{text}"
    );
    assert!(text.contains("the board did not start"), "{text}");
    let xml = read(&junit);
    assert!(
        xml.contains("<error message=\"infrastructure: the board did not start"),
        "{xml}"
    );
    assert!(
        xml.contains("type=\"infrastructure\"") && !xml.contains("<failure"),
        "{xml}"
    );

    // A broker that is down: the run cannot start; still a JUnit error and a report.
    let port = harness::broker::free_port().unwrap();
    let (junit, report) = (dir.join("down.xml"), dir.join("down.html"));
    let out = hil(
        &root(),
        &[
            "run",
            "--broker",
            &format!("mqtt://127.0.0.1:{port}"),
            "--junit",
        ],
        &[
            &junit,
            Path::new("--report"),
            &report,
            &fixture("infrastructure.feature"),
        ],
    );
    let text = common::text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("unreachable"), "{text}");
    let xml = read(&junit);
    assert!(
        xml.contains("errors=\"1\"") && xml.contains("type=\"infrastructure\""),
        "{xml}"
    );
    assert!(read(&report).contains("id=\"setup-error\""));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_flaky_scenario_shows_as_flaky_in_summary_junit_and_report() {
    let board = common::board_bin();
    // The marker is relative to the working directory: a fresh one, so the first attempt fails.
    let dir = scratch("flaky");
    let (junit, report, evidence) = (dir.join("j.xml"), dir.join("r.html"), dir.join("ev"));
    let out = hil(
        &dir,
        &["run", "--retries", "2", "--board-bin"],
        &[
            &board,
            Path::new("--junit"),
            &junit,
            Path::new("--report"),
            &report,
            Path::new("--evidence"),
            &evidence,
            &fixture("flaky.feature"),
        ],
    );
    let text = common::text(&out);
    assert_eq!(out.status.code(), Some(0), "flaky is not a failure: {text}");
    assert!(
        text.contains("0 passed, 1 flaky, 0 failed"),
        "never a plain pass: {text}"
    );
    assert!(
        text.contains("flaky: ")
            && text.contains("Fails once, then passes (1 of 2 attempts failed)"),
        "{text}"
    );
    let xml = read(&junit);
    assert!(
        xml.contains("<flakyFailure message=\"flaky.marker was missing"),
        "{xml}"
    );
    assert!(
        !xml.contains("<failure") && xml.contains("flakes=\"1\""),
        "{xml}"
    );
    let page = read(&report);
    assert!(page.contains("<section id=\"flaky\">") && page.contains("Fails once, then passes"));
    assert!(
        page.contains("<span class=\"n flaky\">1 flaky</span>"),
        "{page}"
    );
    // The failed first attempt left its evidence.
    assert!(attempt_dir(&evidence, 1).join("summary.txt").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_wait_whose_answer_is_known_fails_at_once() {
    let board = common::board_bin();
    let dir = scratch("fast");
    let started = Instant::now();
    let out = hil(
        &root(),
        &["run", "--board-bin"],
        &[
            &board,
            Path::new("--evidence"),
            &dir.join("ev"),
            &fixture("fail-fast.feature"),
        ],
    );
    let took = started.elapsed();
    let text = common::text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("0 passed, 0 flaky, 3 failed"), "{text}");
    assert!(text.contains("refused the console line"), "{text}");
    assert!(text.contains("the board is powered off"), "{text}");
    assert!(text.contains("idle in manual mode"), "{text}");
    // The timeout is 15 s per wait; the scenarios together stay well below one.
    assert!(took < Duration::from_secs(10), "took {took:?}: {text}");
    let _ = std::fs::remove_dir_all(&dir);
}
