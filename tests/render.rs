//! report.html (and drift.html) open in a real browser: headless Chromium loads them with
//! no console errors and renders them. `.ci/run` installs Debian's chromium; without it
//! these tests skip.

mod common;

use std::path::Path;
use std::process::Command;

use common::{assert_ok, drift_on, train_on};

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// Flags for a closed, sandboxed CI machine.
const FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Render `html` in headless Chromium: no console errors, a non-empty screenshot, and the
/// DOM holds every one of `sections` and at least `svgs` charts.
fn check_rendered(browser: &str, html: &Path, sections: &[&str], svgs: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("file://{}", html.display());
    let profile = tmp.path().join("profile");
    let shot = tmp.path().join("report.png");
    let o = Command::new(browser)
        .args(FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args([
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1100,3000",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    let console_errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("Failed to load"))
        .collect();
    assert!(console_errors.is_empty(), "{console_errors:?}");
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 20_000,
        "the screenshot is nearly empty"
    );
    // The DOM the browser built holds every section.
    let o = Command::new(browser)
        .args(FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&o.stdout);
    for section in sections {
        assert!(dom.contains(section), "rendered page lacks {section}");
    }
    assert!(dom.matches("<svg").count() >= svgs);
}

/// Train `config` briefly and check its report renders with `sections` and `svgs` charts.
fn check_run_renders(config: &str, sets: &[&str], sections: &[&str], svgs: usize) {
    let Some(browser) = chromium() else {
        eprintln!("skipping: no chromium found (apt-get install chromium)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let run = train_on("ndarray", config, &tmp.path().join("run"), sets);
    check_rendered(browser, &run.join("report.html"), sections, svgs);
}

#[test]
fn report_html_renders_in_headless_chromium() {
    check_run_renders(
        "configs/bank_propensity.toml",
        &["train.epochs=3"],
        &[
            "Metrics",
            "Ranking and calibration",
            "Campaign planning",
            "What drives the score",
            "Training",
        ],
        9,
    );
}

#[test]
fn multiclass_text_report_renders_in_headless_chromium() {
    check_run_renders(
        "configs/feedback_sentiment_en.toml",
        &["train.epochs=1"],
        &[
            "Metrics",
            "Per class",
            "Confusion matrix",
            "What the model reads",
            "Most confident mistakes",
            "Training",
        ],
        5,
    );
}

#[test]
fn regression_report_renders_in_headless_chromium() {
    check_run_renders(
        "configs/customer_value.toml",
        &["train.epochs=3", "model.quantiles=[0.1, 0.9]"],
        &[
            "Metrics",
            "Predicted against actual",
            "Value gains",
            "By decile of prediction",
            "Prediction intervals",
            "What drives the score",
            "Training",
        ],
        6,
    );
}

#[test]
fn drift_html_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        eprintln!("skipping: no chromium found (apt-get install chromium)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let run = train_on(
        "ndarray",
        "configs/bank_propensity.toml",
        &tmp.path().join("run"),
        &["train.epochs=2"],
    );
    let out = tmp.path().join("drift");
    assert_ok(&drift_on(
        &run,
        Path::new("datasets/bank_marketing_uci_bank_4521.csv"),
        &out,
    ));
    // The scores and the six columns that moved most.
    check_rendered(
        browser,
        &out.join("drift.html"),
        &["Population stability", "Training and new data"],
        7,
    );
}
