//! patron inside a real Apache Spark (local mode): `integrations/spark/patron_spark.py`
//! scores a multi-partition DataFrame as one `patron predict` scores the file, fails a job
//! with patron's message, and survives a killed patron by Spark's task retry. Skips, with
//! the reason, where Python with pyspark, pyarrow and pandas, or Java, is missing
//! (`.ci/run` installs them).

mod common;

use std::path::Path;
use std::process::Command;

use common::{assert_ok, predict_on, train_on};

/// Why Spark cannot run here, if it cannot.
fn missing_spark() -> Option<String> {
    let python = Command::new("python3")
        .args(["-c", "import pyspark, pyarrow, pandas"])
        .output();
    match python {
        Err(e) => return Some(format!("python3 not runnable: {e}")),
        Ok(o) if !o.status.success() => {
            let why = String::from_utf8_lossy(&o.stderr);
            let last = why.lines().last().unwrap_or("").to_string();
            return Some(format!("pyspark, pyarrow or pandas missing: {last}"));
        }
        Ok(_) => {}
    }
    match Command::new("java").arg("-version").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("no Java runtime (java -version fails)".into()),
    }
}

fn check(mode: &str, run: &Path, expected: &Path, work: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = Command::new("python3")
        .arg(root.join("integrations/spark/check_spark.py"))
        .arg(mode)
        .arg(env!("CARGO_BIN_EXE_patron"))
        .arg(run)
        .arg(root.join("datasets/bank_marketing_uci_bank_4521.csv"))
        .arg(expected)
        .arg(work)
        .current_dir(root)
        .output()
        .expect("python3 runs");
    assert_ok(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("ok:"), "{out}");
    println!("{mode}: {}", out.trim());
}

#[test]
fn spark_scores_partitions_as_predict_does_and_retries_a_killed_patron() {
    if let Some(why) = missing_spark() {
        println!("skipped: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = train_on(
        "flex",
        "configs/bank_propensity.toml",
        &tmp.path().join("run"),
        &["train.epochs=2"],
    );
    let expected = tmp.path().join("expected.csv");
    let data = Path::new("datasets/bank_marketing_uci_bank_4521.csv");
    assert_ok(&predict_on(&run, data, &expected, "flex", &[]));
    for mode in ["score", "retry"] {
        let work = tmp.path().join(mode);
        std::fs::create_dir(&work).unwrap();
        check(mode, &run, &expected, &work);
    }
}
