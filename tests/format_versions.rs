//! Runs written by the previous run format (version 1, which hashed only the files scoring
//! reads) keep scoring; `patron report`, which would rebuild from unverified files,
//! refuses them naming the file.

mod common;

use std::path::Path;

use common::{assert_ok, drift_on, evaluate_on, patron, predict_on, stderr, train_on};

/// The files a version 1 manifest recorded hashes for.
const VERSION_1_HASHED: [&str; 6] = [
    "config.toml",
    "preprocess.json",
    "calibration.json",
    "model.bpk",
    "report.json",
    "profile.json",
];

#[test]
fn a_version_1_run_still_scores_and_report_refuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train_on(
        "flex",
        "configs/bank_propensity.toml",
        &tmp.path().join("run"),
        &["train.epochs=2"],
    );
    // The same run as the previous patron wrote it.
    let old = tmp.path().join("old");
    std::fs::create_dir(&old).unwrap();
    for entry in std::fs::read_dir(&run).unwrap().flatten() {
        std::fs::copy(entry.path(), old.join(entry.file_name())).unwrap();
    }
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(old.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format_version"], 13);
    manifest["format_version"] = 1.into();
    let files = manifest["files"].as_object_mut().unwrap();
    assert!(files.contains_key("test_predictions.csv"));
    files.retain(|name, _| VERSION_1_HASHED.contains(&name.as_str()));
    std::fs::write(old.join("manifest.json"), manifest.to_string()).unwrap();

    let data =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/bank_marketing_uci_bank_4521.csv");
    let (new_scores, old_scores) = (tmp.path().join("new.csv"), tmp.path().join("old.csv"));
    assert_ok(&predict_on(&run, &data, &new_scores, "flex", &[]));
    assert_ok(&predict_on(&old, &data, &old_scores, "flex", &[]));
    assert_eq!(
        std::fs::read(&new_scores).unwrap(),
        std::fs::read(&old_scores).unwrap()
    );
    assert_ok(&evaluate_on(
        &old,
        &data,
        Some(&tmp.path().join("eval")),
        "flex",
    ));
    assert_ok(&drift_on(&old, &data, &tmp.path().join("drift")));

    let before = std::fs::read(old.join("report.json")).unwrap();
    let o = patron(&["report", "--checkpoint", old.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("test_predictions.csv: cannot be verified")
            && err.contains("format version 1"),
        "{err}"
    );
    assert_eq!(std::fs::read(old.join("report.json")).unwrap(), before);
    // The current run rebuilds its report.
    assert_ok(&patron(&["report", "--checkpoint", run.to_str().unwrap()]));
}
