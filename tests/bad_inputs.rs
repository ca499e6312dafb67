//! The bad-input corpus: every folder under `tests/bad_inputs/` holds a `case.toml` (the
//! command line and the message it must produce) and the files it needs. Each case must
//! exit with status 2 and one `error:` line naming the problem, print no panic, and leave
//! no output behind.

mod common;

use std::path::Path;

use common::patron;

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out.sort();
    out
}

#[test]
fn every_bad_input_exits_2_with_its_message() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_inputs");
    let mut cases: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("case.toml").is_file())
        .collect();
    cases.sort();
    assert!(cases.len() >= 50, "the corpus holds {} cases", cases.len());
    let mut failures = Vec::new();
    let mut through_validate = 0;
    for case in &cases {
        let spec: toml::Table = std::fs::read_to_string(case.join("case.toml"))
            .unwrap()
            .parse()
            .unwrap();
        let expect = spec["expect"].as_str().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let fill = |a: &str| {
            a.replace("{dir}", case.to_str().unwrap())
                .replace("{tmp}", tmp.path().to_str().unwrap())
        };
        let args: Vec<String> = spec["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| fill(a.as_str().unwrap()))
            .collect();
        let before = files_under(case);
        let name = case.file_name().unwrap().to_string_lossy();
        // `patron validate` promises to refuse whatever a fresh `patron train` of the
        // same config refuses before its first epoch, with the same message.
        let mut runs = vec![args.clone()];
        if let Some(validate) = as_validate(&args) {
            runs.push(validate);
            through_validate += 1;
        }
        for args in runs {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = patron(&refs);
            let err = String::from_utf8_lossy(&o.stderr);
            let error_lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
            let problem = if o.status.code() != Some(2) {
                Some(format!("exit {:?}", o.status.code()))
            } else if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
                Some("panic text".into())
            } else if error_lines.len() != 1 || !error_lines[0].contains(expect) {
                Some(format!("expected one error line containing {expect:?}"))
            } else if tmp.path().join("run").exists() {
                Some("left a run directory behind".into())
            } else if files_under(case) != before {
                Some("changed the files of its case".into())
            } else {
                None
            };
            if let Some(p) = problem {
                failures.push(format!(
                    "{name} ({}): {p}\n  stderr: {}",
                    args[0],
                    err.trim()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    println!(
        "{} bad inputs checked, {through_validate} of them through validate too",
        cases.len()
    );
}

/// The `patron validate` command line for a fresh `patron train` one: its `--config` and
/// `--set` arguments, the rest (backend, output) dropped. `None` for other commands and
/// for `--resume`.
fn as_validate(args: &[String]) -> Option<Vec<String>> {
    if args.first().map(String::as_str) != Some("train") {
        return None;
    }
    let mut out = vec!["validate".to_string()];
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        if flag == "--config" || flag == "--set" {
            out.push(flag.clone());
            out.extend(rest.next().cloned());
        }
    }
    out.iter().any(|a| a == "--config").then_some(out)
}
