//! End-to-end tests of the `patron` binary on the ndarray backend with small runs.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    assert_ok, check_self_contained, check_svgs, evaluate_on, json, metrics_without_seconds,
    patron, predict_on, stderr, stdout, train_args, train_on,
};

const BANK: &str = "configs/bank_propensity.toml";
const TELCO: &str = "configs/telco_churn.toml";
/// The data file `BANK` reads.
const BANK_DATA: &str = "datasets/bank_marketing_uci_bank_4521.csv";

/// Train on ndarray (see `common::train_on`).
fn train(config: &str, dir: &Path, sets: &[&str]) -> PathBuf {
    train_on("ndarray", config, dir, sets)
}

#[test]
fn train_predict_evaluate_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train(TELCO, &tmp.path().join("run"), &["train.epochs=4"]);
    for f in [
        "manifest.json",
        "config.toml",
        "preprocess.json",
        "calibration.json",
        "model.bpk",
        "metrics.csv",
        "report.json",
        "report.md",
        "report.html",
        "importance.json",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    assert!(!run.join("train_state").exists());

    let manifest = json(&run.join("manifest.json"));
    assert_eq!(manifest["status"], "complete");
    assert_eq!(manifest["backend"], "ndarray");
    assert_eq!(manifest["positive"], "Yes");
    assert_eq!(manifest["dataset"]["rows"], 7043);
    let rows = &manifest["rows"];
    assert_eq!(
        rows["train"].as_u64().unwrap()
            + rows["valid"].as_u64().unwrap()
            + rows["test"].as_u64().unwrap(),
        7043
    );
    assert!(
        manifest["features"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["name"] != "customerID")
    );
    let total = common::named(&manifest["features"], "TotalCharges");
    assert_eq!(
        total["kind"], "numeric",
        "blank cells do not make TotalCharges text"
    );

    let report = json(&run.join("report.json"));
    assert_eq!(report["task"], "binary");
    assert_eq!(report["n"], rows["test"]);
    for key in [
        "auc_roc",
        "auc_pr",
        "log_loss",
        "brier",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "threshold",
        "lift_top_decile",
        "ece",
        "ece_uncalibrated",
    ] {
        assert!(report["metrics"][key].is_number(), "metrics.{key}");
    }
    let auc = report["metrics"]["auc_roc"].as_f64().unwrap();
    assert!(auc > 0.80, "telco test AUC after 4 epochs: {auc}");
    let contract = report["segments"]["Contract"].as_array().unwrap();
    assert_eq!(contract.len(), 3, "Month-to-month, One year, Two year");
    let seg_rows: u64 = contract.iter().map(|s| s["n"].as_u64().unwrap()).sum();
    assert_eq!(seg_rows, report["n"].as_u64().unwrap());
    let cm = report["confusion_matrix"].as_array().unwrap();
    let cm_total: u64 = cm
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(cm_total, report["n"].as_u64().unwrap());

    check_html_report(&run.join("report.html"), true);
    // `patron report` rebuilds the same reports from the saved files.
    // (JSON float parsing may move the threshold by one unit in the last place.)
    let before = json(&run.join("report.json"));
    std::fs::remove_file(run.join("report.html")).unwrap();
    assert_ok(&patron(&["report", "--checkpoint", run.to_str().unwrap()]));
    let after = json(&run.join("report.json"));
    assert_eq!(after["confusion_matrix"], before["confusion_matrix"]);
    for (key, value) in before["metrics"].as_object().unwrap() {
        let (a, b) = (
            value.as_f64().unwrap(),
            after["metrics"][key].as_f64().unwrap(),
        );
        assert!(
            (a - b).abs() <= 1e-12 * a.abs().max(1.0),
            "{key}: {a} vs {b}"
        );
    }
    check_html_report(&run.join("report.html"), true);

    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let mut lines = metrics.lines();
    assert_eq!(
        lines.next(),
        Some("epoch,lr,train_loss,valid_loss,valid_auc_roc,seconds,valid_accuracy,valid_macro_f1")
    );
    assert_eq!(lines.count(), 4);

    // Predict on a file with extra and reordered columns; the id column is carried over.
    let input = tmp.path().join("new.csv");
    let data = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/telco_customer_churn_ibm_7043.csv"),
    )
    .unwrap();
    let sample: Vec<&str> = data.lines().take(301).collect();
    std::fs::write(&input, sample.join("\n") + "\n").unwrap();
    let out_csv = tmp.path().join("scores.csv");
    assert_ok(&predict_on(
        &run,
        &input,
        &out_csv,
        "ndarray",
        &["--batch-size", "64"],
    ));
    let scores = std::fs::read_to_string(&out_csv).unwrap();
    let lines: Vec<&str> = scores.lines().collect();
    assert_eq!(lines[0], "customerID,score,prediction");
    assert_eq!(lines.len(), 301);
    assert!(lines[1].starts_with("7590-VHVEG,"));
    let parsed: Vec<(f64, String)> = lines[1..]
        .iter()
        .map(|l| {
            let parts: Vec<&str> = l.split(',').collect();
            (parts[1].parse().unwrap(), parts[2].to_string())
        })
        .collect();
    let threshold = manifest_threshold(&run);
    for (s, p) in &parsed {
        assert!((0.0..=1.0).contains(s));
        assert_eq!(p, if *s >= threshold { "Yes" } else { "No" });
    }

    // The same scores from Parquet output, and from the flex backend (weights load anywhere).
    let out_pq = tmp.path().join("scores.parquet");
    assert_ok(&predict_on(&run, &input, &out_pq, "ndarray", &[]));
    assert!(std::fs::metadata(&out_pq).unwrap().len() > 0);
    let out_flex = tmp.path().join("flex.csv");
    assert_ok(&predict_on(&run, &input, &out_flex, "flex", &[]));
    let (on_ndarray, on_flex) = (common::scores(&out_csv), common::scores(&out_flex));
    assert_eq!(on_ndarray.len(), on_flex.len());
    for (a, b) in on_ndarray.iter().zip(&on_flex) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }

    // Evaluate the labelled sample.
    let eval_dir = tmp.path().join("eval");
    assert_ok(&evaluate_on(&run, &input, Some(&eval_dir), "ndarray"));
    let eval = json(&eval_dir.join("report.json"));
    assert_eq!(eval["n"], 300);
    assert!(eval["metrics"]["auc_roc"].as_f64().unwrap() > 0.75);
    assert!(eval_dir.join("report.md").is_file());
    check_html_report(&eval_dir.join("report.html"), false);
    // The same rows piped in give the same metrics, reported into eval-stdin.
    let mut child = Command::new(env!("CARGO_BIN_EXE_patron"))
        .args([
            "evaluate",
            "--checkpoint",
            run.to_str().unwrap(),
            "--data",
            "-",
        ])
        .args(["--backend", "ndarray"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let csv = std::fs::read(&input).unwrap();
    child.stdin.take().unwrap().write_all(&csv).unwrap();
    assert_ok(&child.wait_with_output().unwrap());
    let piped = json(&run.join("eval-stdin").join("report.json"));
    assert_eq!(piped["metrics"], eval["metrics"]);
    assert_eq!(piped["evaluated_on"], "standard input");

    // Export the weights as safetensors: names and shapes follow the model.
    let st = tmp.path().join("model.safetensors");
    let header = common::export_header(&run, &st);
    let spec = &manifest["model"];
    let shape = |name: &str| header[name]["shape"].clone();
    let width = spec["numeric_width"].as_u64().unwrap()
        + spec["categorical_count"].as_u64().unwrap() * spec["embedding_dim"].as_u64().unwrap();
    assert_eq!(
        shape("embedding.weight"),
        serde_json::json!([spec["embedding_rows"], spec["embedding_dim"]])
    );
    assert_eq!(shape("layers.0.weight"), serde_json::json!([width, 256]));
    assert_eq!(shape("layers.1.weight"), serde_json::json!([256, 128]));
    assert_eq!(shape("output.weight"), serde_json::json!([128, 1]));
    assert_eq!(header["__metadata__"]["positive"], "Yes");
    // A Hugging Face directory is for text_encoder runs only: exit 2, nothing written.
    let hf = tmp.path().join("hf");
    let o = common::export(&run, "hf", &hf);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("text_encoder"), "{}", stderr(&o));
    assert!(!hf.exists());
}

/// report.html holds every section, each chart is well-formed SVG with labelled axes, and
/// nothing is fetched from elsewhere.
fn check_html_report(path: &Path, with_training: bool) {
    let html = std::fs::read_to_string(path).unwrap();
    let mut sections = vec![
        "summary",
        "metrics",
        "roc",
        "pr",
        "calibration",
        "scores",
        "gains",
        "lift",
        "deciles",
        "confusion",
    ];
    if with_training {
        sections.extend(["training", "importance", "segments"]);
    }
    for id in sections {
        assert!(
            html.contains(&format!("id=\"{id}\"")),
            "section {id} missing"
        );
    }
    assert!(html.contains("95 % interval"));
    check_self_contained(&html);
    assert_eq!(check_svgs(&html), if with_training { 9 } else { 6 });
}

fn manifest_threshold(run: &Path) -> f64 {
    json(&run.join("manifest.json"))["threshold"]
        .as_f64()
        .unwrap()
}

#[test]
fn predict_without_id_numbers_rows_and_ignores_extra_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train(BANK, &tmp.path().join("run"), &["train.epochs=2"]);
    let input = tmp.path().join("in.csv");
    // Columns reordered, target and `duration` absent, one unseen category, one blank cell.
    std::fs::write(
        &input,
        "extra,poutcome,month,day,contact,loan,housing,balance,default,education,marital,job,age,campaign,pdays,previous\n\
         \"x, y\",unknown,may,5,cellular,no,yes,100,no,secondary,married,astronaut,40,1,-1,0\n\
         y,success,oct,20,cellular,no,no,,no,tertiary,single,student,25,2,90,3\n",
    )
    .unwrap();
    let out = tmp.path().join("out.csv");
    assert_ok(&predict_on(&run, &input, &out, "ndarray", &[]));
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "row,score,prediction");
    assert!(lines[1].starts_with("0,") && lines[2].starts_with("1,"));
    assert_eq!(lines.len(), 3);

    // Kept input columns follow `row`, as written (a blank cell stays blank); the scores
    // do not change.
    let kept = tmp.path().join("kept.csv");
    let keep = ["--keep", "extra,balance", "--keep", "job"];
    assert_ok(&predict_on(&run, &input, &kept, "ndarray", &keep));
    let kept_text = std::fs::read_to_string(&kept).unwrap();
    let kept_lines: Vec<&str> = kept_text.lines().collect();
    assert_eq!(kept_lines[0], "row,extra,balance,job,score,prediction");
    assert!(
        kept_lines[1].starts_with("0,\"x, y\",100,astronaut,"),
        "{kept_text}"
    );
    assert!(kept_lines[2].starts_with("1,y,,student,"), "{kept_text}");
    for (with, without) in kept_lines[1..].iter().zip(&lines[1..]) {
        assert!(with.ends_with(&without[1..]), "{with} vs {without}");
    }
    let kept_parquet = tmp.path().join("kept.parquet");
    assert_ok(&predict_on(&run, &input, &kept_parquet, "ndarray", &keep));
    let (df, names) = common::read_parquet(&kept_parquet);
    assert_eq!(
        names,
        ["row", "extra", "balance", "job", "score", "prediction"]
    );
    let balance = df.column("balance").unwrap().str().unwrap();
    assert_eq!((balance.get(0), balance.get(1)), (Some("100"), None));
    // A misspelt column, or one the predictions already have, is refused; no output is left.
    let refused = tmp.path().join("refused.csv");
    for (keep, message) in [
        (
            "jb",
            "--keep column \"jb\" not found; did you mean \"job\"?",
        ),
        ("score", "would have two columns named \"score\""),
    ] {
        let o = predict_on(&run, &input, &refused, "ndarray", &["--keep", keep]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(message), "{}", stderr(&o));
        assert!(!refused.exists());
    }
    // A needed column missing is a clear error and leaves no output behind.
    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, "age,job\n30,admin.\n").unwrap();
    let out2 = tmp.path().join("out2.csv");
    let o = predict_on(&run, &bad, &out2, "ndarray", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("column \"marital\" not found"),
        "{}",
        stderr(&o)
    );
    assert!(!out2.exists());
    assert_eq!(
        std::fs::read_dir(tmp.path())
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.'))
            .count(),
        0,
        "no temporary files left"
    );
}

/// Strip the timing column so runs can be compared.
#[test]
fn killed_runs_are_absent_or_resume_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let sets = [
        "train.epochs=12",
        "train.early_stopping.patience=0",
        "model.hidden=[64, 32]",
    ];
    let full = train(BANK, &tmp.path().join("full"), &sets);
    let expected_metrics = metrics_without_seconds(&full);
    let expected_report = json(&full.join("report.json"));

    // Kill moments after start, in ms: spread over start-up, the first epochs and the end,
    // drawn from a fixed-seed generator so a failure can be replayed.
    let mut seed: u64 = 0x5eed;
    let mut moments: Vec<u64> = (0..8)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % 600
        })
        .collect();
    moments.push(0);
    let (mut resumed, mut absent, mut finished) = (0, 0, 0);
    for (k, delay) in moments.iter().enumerate() {
        let dir = tmp.path().join(format!("killed{k}"));
        let args = train_args("ndarray", BANK, &dir, &sets);
        let mut child = Command::new(env!("CARGO_BIN_EXE_patron"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(*delay));
        child.kill().ok(); // SIGKILL
        child.wait().unwrap();
        if !dir.exists() {
            absent += 1;
            continue;
        }
        let manifest = json(&dir.join("manifest.json"));
        if manifest["status"] == "complete" {
            finished += 1;
            assert_eq!(metrics_without_seconds(&dir), expected_metrics);
            continue;
        }
        // An unfinished run is refused by predict with a hint to resume.
        let o = patron(&[
            "predict",
            "--checkpoint",
            dir.to_str().unwrap(),
            "--input",
            "x.csv",
            "--output",
            "y.csv",
            "--backend",
            "ndarray",
        ]);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("--resume"), "{}", stderr(&o));
        let o = patron(&[
            "train",
            "--resume",
            dir.to_str().unwrap(),
            "--backend",
            "ndarray",
            "--quiet",
        ]);
        assert_ok(&o);
        assert_eq!(
            metrics_without_seconds(&dir),
            expected_metrics,
            "killed after {delay} ms"
        );
        let report = json(&dir.join("report.json"));
        assert_eq!(report["metrics"], expected_report["metrics"]);
        assert_eq!(
            report["confusion_matrix"],
            expected_report["confusion_matrix"]
        );
        // Resuming a finished run is refused.
        let o = patron(&[
            "train",
            "--resume",
            dir.to_str().unwrap(),
            "--backend",
            "ndarray",
            "--quiet",
        ]);
        assert_eq!(o.status.code(), Some(2));
        resumed += 1;
    }
    println!(
        "kills: {} ({resumed} resumed, {absent} before the run directory existed, {finished} after it finished)",
        moments.len()
    );
    assert!(
        resumed >= 1,
        "no kill landed mid-training: resumed {resumed}, absent {absent}, finished {finished}"
    );
    // No staging folders are left next to the runs.
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(
        leftovers
            .iter()
            .all(|e| e.file_name().to_string_lossy().contains(".partial-")),
        "{leftovers:?}"
    );
}

#[test]
fn ctrl_c_stops_after_a_checkpoint_and_says_how_to_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let data = tmp.path().join("bank.csv");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join(BANK_DATA), &data).unwrap();
    let data_set = format!("data.path={}", data.display());
    let sets = [
        "train.epochs=200",
        "train.early_stopping.patience=0",
        &data_set,
    ];
    let child = Command::new(env!("CARGO_BIN_EXE_patron"))
        .args(train_args("ndarray", BANK, &dir, &sets))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pointer = dir.join("train_state/current.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !pointer.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted after epoch"), "{err}");
    assert!(
        err.contains(&format!("patron train --resume {}", dir.display())),
        "{err}"
    );
    let manifest = json(&dir.join("manifest.json"));
    assert_eq!(manifest["status"], "training");
    assert!(dir.join("train_state/current.json").is_file());

    // The data changed in between (one row appended): resuming would train on other rows.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&data)
        .unwrap();
    let last = std::fs::read_to_string(&data)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    writeln!(file, "{last}").unwrap();
    let dir_arg = dir.display().to_string();
    let o = patron(&["train", "--resume", &dir_arg, "--quiet"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("changed since the run started (SHA-256 differs)"),
        "{err}"
    );
    assert_eq!(json(&dir.join("manifest.json"))["status"], "training");
}

/// Run `patron` expecting exit 2 and a one-line error that contains `needle`.
fn expect_bad(args: &[&str], needle: &str) {
    let o = patron(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "args {args:?}\nstderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    let error_lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error_lines.len(), 1, "{err}");
}

#[test]
fn bad_inputs_exit_2_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let out = tmp.path().join("run");
    let args_for = |config: &str, extra: &[&str]| {
        let mut a = train_args("ndarray", config, &out, &[]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |args: Vec<String>, needle: &str| {
        let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        expect_bad(&refs, needle);
        assert!(!out.exists(), "no run directory is left after a bad input");
    };

    run(
        args_for(BANK, &["--set", "data.path=nope/missing.csv"]),
        "nope/missing.csv: file not found",
    );
    run(
        args_for(BANK, &["--set", "data.target=yy"]),
        "data.target column \"yy\" not found; did you mean \"y\"?",
    );
    let cfg = write(
        "typo.toml",
        "[data]\npath = \"datasets/bank_marketing_uci_bank_4521.csv\"\ntarget = \"y\"\n[train]\nepoch = 3\n",
    );
    run(args_for(&cfg, &[]), "did you mean `train.epochs`");
    let cfg = write(
        "type.toml",
        "[data]\npath = \"datasets/bank_marketing_uci_bank_4521.csv\"\ntarget = \"y\"\n[train]\nepochs = \"three\"\n",
    );
    run(args_for(&cfg, &[]), "type.toml");
    let one = write("one.csv", "a,b,y\n1,x,no\n2,y,no\n3,z,no\n");
    run(
        args_for(
            BANK,
            &[
                "--set",
                &format!("data.path={one}"),
                "--set",
                "data.drop=[]",
                "--set",
                "data.positive=no",
            ],
        ),
        "single class \"no\"",
    );
    let empty = write("empty.csv", "");
    run(
        args_for(BANK, &["--set", &format!("data.path={empty}")]),
        "empty",
    );
    let header = write("header.csv", "age,job,y\n");
    run(
        args_for(
            BANK,
            &[
                "--set",
                &format!("data.path={header}"),
                "--set",
                "data.drop=[]",
            ],
        ),
        "no data rows",
    );
    let zipped = write("data.parquet.gz", "age;job;y\n30;admin;no\n");
    run(
        args_for(BANK, &["--set", &format!("data.path={zipped}")]),
        "a gzipped file must be a .csv.gz",
    );
    expect_bad(
        &[
            "predict",
            "--checkpoint",
            tmp.path().join("nothing").to_str().unwrap(),
            "--input",
            "a.csv",
            "--output",
            "b.csv",
            "--backend",
            "ndarray",
        ],
        "not found",
    );
    expect_bad(
        &[
            "validate",
            "--config",
            tmp.path().join("none.toml").to_str().unwrap(),
        ],
        "cannot read config",
    );
}

#[test]
fn validate_and_config_commands() {
    let o = patron(&["validate", "--config", BANK]);
    assert_ok(&o);
    let text = stdout(&o);
    assert!(text.contains("4521 rows"), "{text}");
    assert!(text.contains("categorical  job"), "{text}");
    assert!(!text.contains("duration"), "{text}");
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    // A text-model key on a tabular config is named as ignored.
    let o = patron(&["validate", "--config", BANK, "--set", "model.pooling=cls"]);
    assert_ok(&o);
    assert!(
        stderr(&o).contains("`model.pooling` is set but model.kind = \"tabular_mlp\""),
        "{}",
        stderr(&o)
    );
    let o = patron(&["config", "--config", BANK, "--set", "train.epochs=7"]);
    assert_ok(&o);
    let text = stdout(&o);
    assert!(text.contains("epochs = 7"), "{text}");
    assert!(text.contains("calibration = \"platt\""), "{text}");
    assert!(text.contains("numeric_bins = 16"), "{text}");
}

#[test]
fn existing_run_directory_is_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("taken");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), "mine").unwrap();
    expect_bad(
        &[
            "train",
            "--config",
            BANK,
            "--backend",
            "ndarray",
            "--output-dir",
            dir.to_str().unwrap(),
            "--set",
            "train.epochs=1",
        ],
        "already exists",
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("keep.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn diverging_training_stops_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nan");
    let args = train_args(
        "ndarray",
        BANK,
        &dir,
        &["train.learning_rate=1e12", "train.epochs=5"],
    );
    let o = patron(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("training diverged at epoch"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("lower train.learning_rate"),
        "{}",
        stderr(&o)
    );
    // It diverged in its first epoch: no checkpoint to resume, so no directory is left.
    assert!(stderr(&o).contains("no epoch finished"), "{}", stderr(&o));
    assert!(
        !dir.exists(),
        "the run directory of a diverged first epoch is removed"
    );
}

#[test]
fn damaged_checkpoints_and_bad_scoring_inputs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train(BANK, &tmp.path().join("run"), &["train.epochs=1"]);
    let data = "datasets/bank_marketing_uci_bank_4521.csv";
    let out = tmp.path().join("out.csv");
    let predict = |run: &Path, input: &str, output: &Path| {
        vec![
            "predict".to_string(),
            "--checkpoint".into(),
            run.display().to_string(),
            "--input".into(),
            input.into(),
            "--output".into(),
            output.display().to_string(),
            "--backend".into(),
            "ndarray".into(),
        ]
    };
    let bad = |args: Vec<String>, needle: &str| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        expect_bad(&refs, needle);
    };
    // Copies of the run, each damaged one way.
    let copy = |name: &str| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for e in std::fs::read_dir(&run).unwrap().flatten() {
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
        dir
    };
    let tampered = copy("tampered");
    let mut weights = std::fs::read(tampered.join("model.bpk")).unwrap();
    let last = weights.len() - 1;
    weights[last] ^= 0xFF;
    std::fs::write(tampered.join("model.bpk"), weights).unwrap();
    bad(
        predict(&tampered, data, &out),
        "model.bpk: does not match the SHA-256",
    );
    let truncated = copy("truncated");
    let text = std::fs::read_to_string(truncated.join("preprocess.json")).unwrap();
    std::fs::write(truncated.join("preprocess.json"), &text[..text.len() / 2]).unwrap();
    bad(
        predict(&truncated, data, &out),
        "preprocess.json: does not match the SHA-256",
    );
    let foreign = copy("foreign");
    let manifest = std::fs::read_to_string(foreign.join("manifest.json")).unwrap();
    std::fs::write(
        foreign.join("manifest.json"),
        manifest.replace(
            &format!("\"format_version\": {}", patron::run::FORMAT_VERSION),
            &format!("\"format_version\": {}", patron::run::FORMAT_VERSION + 1),
        ),
    )
    .unwrap();
    bad(
        predict(&foreign, data, &out),
        &format!(
            "run format version {} is not supported",
            patron::run::FORMAT_VERSION + 1
        ),
    );
    // A huge (sparse) file is refused before it is read into memory.
    let huge = copy("huge");
    std::fs::File::create(huge.join("manifest.json"))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    bad(predict(&huge, data, &out), "more than the");
    assert!(!out.exists());

    // Scoring inputs.
    let input = tmp.path().join("in.csv");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join(data), &input).unwrap();
    bad(
        predict(&run, input.to_str().unwrap(), &input),
        "is the input file",
    );
    bad(predict(&run, data, tmp.path()), "is a directory");
    let text = std::fs::read_to_string(&input)
        .unwrap()
        .replacen("\n30,", "\nthirty,", 1);
    std::fs::write(&input, text).unwrap();
    bad(
        predict(&run, input.to_str().unwrap(), &out),
        "column \"age\" row 1: \"thirty\" is not a finite number",
    );
    // A bad row in the last of many chunks: the chunks before it are scored and written
    // (chunks are read ahead on their own thread) and the error still leaves no output.
    let late = tmp.path().join("late.csv");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(data)).unwrap();
    let last_line = text.trim_end().rfind('\n').unwrap() + 1;
    let age_end = last_line + text[last_line..].find(',').unwrap();
    let text = format!("{}thirty{}", &text[..last_line], &text[age_end..]);
    std::fs::write(&late, text).unwrap();
    let mut args = predict(&run, late.to_str().unwrap(), &out);
    args[8] = "flex".into();
    args.extend(["--batch-size".into(), "100".into()]);
    bad(
        args,
        "column \"age\" row 4521: \"thirty\" is not a finite number",
    );
    let unseen = tmp.path().join("unseen.csv");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(data))
        .unwrap()
        .replacen(",no\n", ",maybe\n", 1);
    std::fs::write(&unseen, text).unwrap();
    bad(
        vec![
            "evaluate".into(),
            "--checkpoint".into(),
            run.display().to_string(),
            "--data".into(),
            unseen.display().to_string(),
            "--output".into(),
            tmp.path().join("ev").display().to_string(),
            "--backend".into(),
            "ndarray".into(),
        ],
        "holds \"maybe\", a label the model never saw",
    );
    // evaluate reads in chunks of 65,536 rows: a bad label past the first chunk is named
    // by its row in the file, and nothing is written.
    let long = tmp.path().join("long.csv");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(data)).unwrap();
    let (header, rows) = text.split_once('\n').unwrap();
    let mut long_text = format!("{header}\n{}", rows.repeat(15));
    long_text.push_str(&rows.replacen(",no\n", ",maybe\n", 1));
    std::fs::write(&long, long_text).unwrap();
    let first_no = rows.lines().position(|l| l.ends_with(",no")).unwrap();
    let ev = tmp.path().join("ev-long");
    let o = evaluate_on(&run, &long, Some(&ev), "flex");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let row = 15 * 4521 + first_no + 1;
    assert!(
        stderr(&o).contains(&format!("row {row} holds \"maybe\"")),
        "{}",
        stderr(&o)
    );
    assert!(!ev.exists(), "no report is written");
    assert!(!out.exists(), "no partial predictions are left");
}

#[test]
fn high_cardinality_columns_are_capped_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("codes.csv");
    let mut text = String::from("code,amount,y\n");
    for i in 0..3000 {
        text.push_str(&format!(
            "C{i:05},{},{}\n",
            i % 97,
            if i % 5 == 0 { "yes" } else { "no" }
        ));
    }
    std::fs::write(&data, text).unwrap();
    let path = format!("data.path={}", data.display());
    // Listed as categorical: a different code in every row is otherwise left out as an
    // identifier (the next test).
    let sets = [
        path.as_str(),
        "data.drop=[]",
        "data.categorical=[\"code\"]",
        "data.max_categories=100",
        "report.segments=[]",
        "train.epochs=1",
    ];
    let args = train_args("ndarray", BANK, &tmp.path().join("run"), &sets);
    let o = patron(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains(
            "warning: column \"code\" has 2100 distinct values; keeping the 100 most frequent"
        ),
        "{err}"
    );
    let pre = json(&tmp.path().join("run/preprocess.json"));
    let code = common::named(&pre["features"], "code");
    assert_eq!(code["categories"].as_array().unwrap().len(), 100);
}

#[test]
fn an_identifier_column_is_left_out_and_a_date_column_is_a_number() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("customers.csv");
    // `customer` and `CustomerId` (distinct numbers, not in row order) identify rows; the
    // label is written "yes" and "Yes", one class.
    let mut text = String::from("customer,CustomerId,plan,amount,signup,y\n");
    for i in 0..600 {
        let y = match (i * 7) % 10 {
            0 => "Yes",
            1 | 2 => "yes",
            _ => "no",
        };
        let signup = format!("2024-{:02}-{:02}", i % 12 + 1, i % 28 + 1);
        let id = 15_600_000 + (i * 7919) % 100_000;
        text.push_str(&format!(
            "K-{i:04},{id},p{},{},{signup},{y}\n",
            i % 4,
            i % 53
        ));
    }
    std::fs::write(&data, text).unwrap();
    let path = format!("data.path={}", data.display());
    let sets = [
        path.as_str(),
        "data.drop=[]",
        "report.segments=[]",
        "train.epochs=1",
    ];
    let run = tmp.path().join("run");
    let args = train_args("ndarray", BANK, &run, &sets);
    let o = patron(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains("warning: column \"customer\" has 420 distinct values in 420 training rows, like an identifier"),
        "{err}"
    );
    assert!(
        err.contains("warning: column \"CustomerId\" has 420 different whole numbers in 420 training rows and its name reads as an identifier"),
        "{err}"
    );
    assert!(
        err.contains("warning: target column \"y\" writes a class in more than one way: \"yes\" also as \"Yes\""),
        "{err}"
    );
    let pre = json(&run.join("preprocess.json"));
    assert_eq!(pre["labels"], serde_json::json!(["no", "yes"]));
    let names: Vec<&str> = pre["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["plan", "amount", "signup"]);
    assert_eq!(common::named(&pre["features"], "signup")["date"], true);
    let manifest = json(&run.join("manifest.json"));
    let text = manifest.to_string();
    assert!(
        text.contains(r#"{"kind":"date","name":"signup"}"#),
        "{text}"
    );
    // New customers are scored without the identifier, a later date included.
    let input = tmp.path().join("new.csv");
    std::fs::write(
        &input,
        "plan,amount,signup\np1,7,2025-01-15\np3,40,2024-06-01T09:30\n",
    )
    .unwrap();
    let out = tmp.path().join("out.csv");
    assert_ok(&predict_on(&run, &input, &out, "ndarray", &[]));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 3);
    // A labelled file may spell the classes another way again.
    let labelled = tmp.path().join("labelled.csv");
    std::fs::write(
        &labelled,
        "plan,amount,signup,y\np1,7,2025-01-15,YES\np3,40,2024-06-01,No\np0,3,2024-02-01, no \n",
    )
    .unwrap();
    let o = evaluate_on(&run, &labelled, Some(&tmp.path().join("eval")), "ndarray");
    assert_ok(&o);
    assert!(stdout(&o).starts_with("3 rows: "), "{}", stdout(&o));
    let report = json(&tmp.path().join("eval").join("report.json"));
    assert_eq!(report["n_positive"], 1, "{report}");
}

#[test]
fn a_semicolon_file_with_unlabelled_rows_trains_and_a_gzipped_tab_file_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("customers.csv");
    let mut text = String::from("plan;amount;y\n");
    for i in 0..400 {
        let y = match i % 10 {
            _ if i % 40 == 5 => "",
            0..3 => "yes",
            _ => "no",
        };
        text.push_str(&format!("p{};{};{y}\n", i % 4, (i * 7) % 53));
    }
    std::fs::write(&data, text).unwrap();
    let path = format!("data.path={}", data.display());
    let export = tmp.path().join("split.csv");
    let export_set = format!("split.export={}", export.display());
    let sets = [
        path.as_str(),
        export_set.as_str(),
        "data.drop=[]",
        "report.segments=[]",
        "train.epochs=1",
    ];
    let run = tmp.path().join("run");
    let args = train_args("ndarray", BANK, &run, &sets);
    let o = patron(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "warning: {} is semicolon separated, not \",\" as data.delimiter says",
            data.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("warning: target column \"y\" is blank on 10 of 400 rows (the first is row 6); they are left out"),
        "{err}"
    );
    let manifest = json(&run.join("manifest.json"));
    assert_eq!(manifest["dataset"]["rows"], 400);
    let splits = manifest["rows"].as_object().unwrap();
    let counted: u64 = splits.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(counted, 390, "{manifest}");
    // The exported split names the file's rows: the unlabelled ones are absent.
    let (_, rows) = common::read_csv(&export);
    let numbers: Vec<usize> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(numbers.len(), 390);
    assert!(!numbers.contains(&5) && !numbers.contains(&45));
    assert_eq!(numbers.last(), Some(&399));
    // A gzipped tab separated file scores without data.delimiter.
    let input = tmp.path().join("new.tsv.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"plan\tamount\np1\t7\np3\t40\n").unwrap();
    std::fs::write(&input, gz.finish().unwrap()).unwrap();
    let out = tmp.path().join("out.csv");
    assert_ok(&predict_on(&run, &input, &out, "ndarray", &[]));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 3);
    // evaluate leaves an unlabelled row out the same way.
    let labelled = tmp.path().join("labelled.csv");
    std::fs::write(&labelled, "plan;amount;y\np1;7;yes\np2;8;\np3;9;no\n").unwrap();
    let o = evaluate_on(&run, &labelled, Some(&tmp.path().join("eval")), "ndarray");
    assert_ok(&o);
    assert!(
        stderr(&o).contains("warning: target column \"y\" is blank on 1 row of"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).starts_with("2 rows: "), "{}", stdout(&o));
}

/// Write `toml` as a config in `dir` and train it on ndarray into `dir/run`: the run
/// directory and the command's output (warnings are on its stderr).
fn train_toml(dir: &Path, toml: &str) -> (PathBuf, std::process::Output) {
    let (run, o) = try_train_toml(dir, toml);
    assert_ok(&o);
    (run, o)
}

/// [`train_toml`] that may fail.
fn try_train_toml(dir: &Path, toml: &str) -> (PathBuf, std::process::Output) {
    std::fs::create_dir_all(dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(&config, toml).unwrap();
    let run = dir.join("run");
    let args = train_args("ndarray", config.to_str().unwrap(), &run, &[]);
    (
        run,
        patron(&args.iter().map(String::as_str).collect::<Vec<_>>()),
    )
}

#[test]
fn a_european_file_with_decimal_commas_trains_a_regression_and_scores() {
    // Excel's CSV where the comma is the decimal mark: `;` between cells, "1.234,56".
    let eu = |x: f64| {
        let text = format!("{x:.2}");
        let (whole, fraction) = text.split_once('.').unwrap();
        let grouped = if whole.len() > 3 {
            format!(
                "{}.{}",
                &whole[..whole.len() - 3],
                &whole[whole.len() - 3..]
            )
        } else {
            whole.to_string()
        };
        format!("{grouped},{fraction}")
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("spend.csv");
    let mut text = String::from("plan;monthly;spend\n");
    let mut total = 0.0;
    for i in 0..300 {
        let monthly = 20.0 + (i % 37) as f64 * 1.25;
        let spend = monthly * 12.0 + (i % 5) as f64 * 150.0;
        total += spend;
        text += &format!("p{};{};{}\n", i % 3, eu(monthly), eu(spend));
    }
    assert!(text.contains(";1.") && text.contains(",25;"));
    std::fs::write(&data, text).unwrap();
    let (run, o) = train_toml(
        tmp.path(),
        &format!(
            "[data]\npath = {:?}\ntarget = \"spend\"\ndelimiter = \";\"\n[train]\nepochs = 2\n",
            data.display().to_string()
        ),
    );
    assert!(
        stderr(&o)
            .contains("warning: column \"monthly\" holds numbers written with a decimal comma"),
        "{}",
        stderr(&o)
    );
    let pre = json(&run.join("preprocess.json"));
    assert_eq!(
        common::named(&pre["features"], "monthly")["decimal_comma"],
        true
    );
    assert_eq!(pre["regression"]["decimal_comma"], true);
    // The target was read in its units: the test rows' mean is near the file's.
    let report = json(&run.join("report.json"));
    assert_eq!(report["task"], "regression");
    let mean = report["metrics"]["mean_target"].as_f64().unwrap();
    assert!((mean / (total / 300.0) - 1.0).abs() < 0.15, "{mean}");
    let input = tmp.path().join("new.csv");
    std::fs::write(&input, "plan;monthly\np1;31,25\np2;1.020,5\n").unwrap();
    let out = tmp.path().join("out.csv");
    assert_ok(&predict_on(&run, &input, &out, "ndarray", &[]));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 3);
    let o = evaluate_on(&run, &data, Some(&tmp.path().join("eval")), "ndarray");
    assert_ok(&o);
    assert!(stdout(&o).starts_with("300 rows: rmse "), "{}", stdout(&o));
}

#[test]
fn an_excel_workbook_trains_predicts_and_evaluates() {
    // tests/fixtures/make_customers_xlsx.py wrote it: a money column with blanks, a date
    // column of date cells, a TRUE/FALSE column, and a second sheet that is not read.
    let book = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/customers.xlsx");
    let tmp = tempfile::tempdir().unwrap();
    let (run, o) = train_toml(
        tmp.path(),
        &format!(
            // A decimal comma said for text cells leaves the number cells numbers.
            "[data]\npath = {:?}\ntarget = \"bought\"\ndecimal = \",\"\n[train]\nepochs = 2\n",
            book.display().to_string()
        ),
    );
    assert!(
        stderr(&o)
            .contains("customers.xlsx has 2 sheets: read the first, \"customers\", not \"notes\""),
        "{}",
        stderr(&o)
    );
    let manifest = json(&run.join("manifest.json"));
    assert_eq!(manifest["dataset"]["rows"], 120, "{manifest}");
    let pre = json(&run.join("preprocess.json"));
    let features = &pre["features"];
    assert_eq!(common::named(features, "monthly")["kind"], "numeric");
    assert_eq!(
        common::named(features, "monthly")["missing_indicator"],
        true
    );
    assert_eq!(common::named(features, "signup")["date"], true);
    assert_eq!(
        common::named(features, "vip")["categories"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let out = tmp.path().join("out.csv");
    assert_ok(&predict_on(&run, &book, &out, "ndarray", &[]));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 121);
    // A workbook whose table is not on its first sheet: the error says which was read.
    let second =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/customers_second_sheet.xlsx");
    let o = predict_on(&run, &second, &tmp.path().join("x.csv"), "ndarray", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not found; columns are: ")
            && stderr(&o).contains(" (read the workbook's first sheet, \"About\"; it also has \"Customers\": `--sheet NAME` reads another"),
        "{}",
        stderr(&o)
    );
    let o = evaluate_on(&run, &book, Some(&tmp.path().join("eval")), "ndarray");
    assert_ok(&o);
    assert!(stdout(&o).starts_with("120 rows: "), "{}", stdout(&o));
    // Scores are never written as a workbook.
    let o = predict_on(&run, &book, &tmp.path().join("out.xlsx"), "ndarray", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unsupported output type"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_workbook_sheet_is_named_in_training_and_scoring_reads_it_again() {
    // The customers of customers.xlsx on a second sheet, "Customers", after "About".
    let book =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/customers_second_sheet.xlsx");
    let tmp = tempfile::tempdir().unwrap();
    let config = |sheet: &str| {
        format!(
            "[data]\npath = {:?}\ntarget = \"bought\"\n{sheet}[train]\nepochs = 2\n",
            book.display().to_string()
        )
    };
    // The first sheet has no table: the error says which sheet was read and what to set.
    let (_, o) = try_train_toml(&tmp.path().join("first"), &config(""));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is not on the first sheet, \"About\", which was read; set data.sheet to the sheet with the table (\"Customers\")"),
        "{}",
        stderr(&o)
    );
    // Named (case and spaces aside), the sheet is read without a warning about the others.
    let (run, o) = train_toml(
        &tmp.path().join("named"),
        &config("sheet = \"customers\"\n"),
    );
    assert_ok(&o);
    assert!(!stderr(&o).contains("sheets"), "{}", stderr(&o));
    assert_eq!(json(&run.join("manifest.json"))["dataset"]["rows"], 120);
    assert_eq!(json(&run.join("preprocess.json"))["sheet"], "customers");
    // Scoring reads the trained sheet again, and a workbook without it from its first.
    let out = tmp.path().join("out.csv");
    assert_ok(&predict_on(&run, &book, &out, "ndarray", &[]));
    let scores = std::fs::read_to_string(&out).unwrap();
    assert_eq!(scores.lines().count(), 121);
    let first = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/customers.xlsx");
    let same = tmp.path().join("same.csv");
    assert_ok(&predict_on(&run, &first, &same, "ndarray", &[]));
    assert_eq!(std::fs::read_to_string(&same).unwrap(), scores);
    // --sheet overrides; a sheet the workbook lacks is named with the ones it has.
    let o = predict_on(&run, &book, &out, "ndarray", &["--sheet", "About"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("input column"), "{}", stderr(&o));
    let o = predict_on(&run, &book, &out, "ndarray", &["--sheet", "Orders"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("has no sheet \"Orders\"; its sheets are \"About\", \"Customers\""),
        "{}",
        stderr(&o)
    );
    let o = patron(&[
        "evaluate",
        "--checkpoint",
        run.to_str().unwrap(),
        "--data",
        book.to_str().unwrap(),
        "--sheet",
        "Customers",
        "--output",
        tmp.path().join("eval").to_str().unwrap(),
    ]);
    assert_ok(&o);
    assert!(stdout(&o).starts_with("120 rows: "), "{}", stdout(&o));
    // A sheet for a CSV is a mistake, not ignored.
    let bank = Path::new(env!("CARGO_MANIFEST_DIR")).join(BANK_DATA);
    let (_, o) = try_train_toml(
        &tmp.path().join("csv"),
        &format!(
            "[data]\npath = {:?}\ntarget = \"y\"\nsheet = \"x\"\n",
            bank.display().to_string()
        ),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is not a workbook (.xlsx, .xls, .ods), so data.sheet does not apply"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_csv_export_with_a_title_above_its_header_trains_and_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let bank =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(BANK_DATA)).unwrap();
    let data = tmp.path().join("export.csv");
    std::fs::write(
        &data,
        format!("Bank customers,,\nExported 2026-11-30,by CRM,\n\n{bank}"),
    )
    .unwrap();
    let (run, o) = train_toml(
        tmp.path(),
        &format!(
            "[data]\npath = {:?}\ntarget = \"y\"\n[train]\nepochs = 2\n",
            data.display().to_string()
        ),
    );
    assert!(
        stderr(&o).contains("skipped the 3 lines above the header as a title or notes"),
        "{}",
        stderr(&o)
    );
    assert_eq!(json(&run.join("manifest.json"))["dataset"]["rows"], 4521);
    let out = tmp.path().join("scores.csv");
    assert_ok(&predict_on(&run, &data, &out, "ndarray", &[]));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 4522);
}

#[test]
fn compare_marks_the_best_run() {
    let tmp = tempfile::tempdir().unwrap();
    let a = train(BANK, &tmp.path().join("a"), &["train.epochs=1"]);
    let b = train(BANK, &tmp.path().join("b"), &["train.epochs=6"]);
    let out = tmp.path().join("cmp.csv");
    let o = patron(&[
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_ok(&o);
    let table = stdout(&o);
    assert!(
        table.starts_with("| run | model | n | auc_roc (max) |"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 4);
    let auc = |dir: &Path| {
        json(&dir.join("report.json"))["metrics"]["auc_roc"]
            .as_f64()
            .unwrap()
    };
    let winner = if auc(&a) >= auc(&b) { &a } else { &b };
    let csv = std::fs::read_to_string(&out).unwrap();
    let best_line = csv
        .lines()
        .find(|l| l.split(',').nth(4) == Some("*"))
        .unwrap();
    assert!(best_line.contains(winner.to_str().unwrap()), "{csv}");
    expect_bad(
        &["compare", tmp.path().to_str().unwrap()],
        "has no report.json",
    );
}

#[test]
fn predict_streams_stdin_to_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train(BANK, &tmp.path().join("run"), &["train.epochs=1"]);
    let data = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/bank_marketing_uci_bank_4521.csv"),
    )
    .unwrap();
    let sample: String = data.lines().take(51).map(|l| format!("{l}\n")).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_patron"))
        .args([
            "predict",
            "--checkpoint",
            run.to_str().unwrap(),
            "--input",
            "-",
            "--output",
            "-",
            "--backend",
            "ndarray",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sample.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_ok(&o);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "row,score,prediction");
    assert_eq!(lines.len(), 51);
    // The same rows scored from a file give the same scores.
    let file = tmp.path().join("in.csv");
    std::fs::write(&file, &sample).unwrap();
    let scored = tmp.path().join("out.csv");
    assert_ok(&predict_on(&run, &file, &scored, "ndarray", &[]));
    assert_eq!(std::fs::read_to_string(&scored).unwrap(), out);
}

#[test]
fn tabular_multiclass_target() {
    let tmp = tempfile::tempdir().unwrap();
    let segments = "[report]\nsegments = [\"InternetService\"]\n";
    let run = common::train_contract(tmp.path(), 4, segments);
    let report = json(&run.join("report.json"));
    assert_eq!(report["task"], "multiclass");
    assert_eq!(
        report["labels"],
        serde_json::json!(["Month-to-month", "One year", "Two year"])
    );
    let accuracy = report["metrics"]["accuracy"].as_f64().unwrap();
    assert!(
        accuracy > 0.6,
        "contract from tenure and charges: accuracy {accuracy}"
    );
    assert_eq!(
        report["segments"]["InternetService"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // Permutation importance uses the one-vs-rest AUC; tenure decides contracts most.
    let importance = json(&run.join("importance.json"));
    let top: Vec<&str> = importance.as_array().unwrap()[..3]
        .iter()
        .map(|f| f["feature"].as_str().unwrap())
        .collect();
    assert!(top.contains(&"tenure"), "{top:?}");
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("id=\"importance\"") && html.contains("id=\"heatmap\""));
    let out = tmp.path().join("p.csv");
    let o = predict_on(
        &run,
        Path::new("datasets/telco_customer_churn_ibm_7043.csv"),
        &out,
        "ndarray",
        &[],
    );
    assert_ok(&o);
    // The summary counts each class's predictions.
    let summary = stderr(&o);
    let counts = summary
        .lines()
        .find_map(|l| l.strip_prefix("scored 7043 rows (predicted: "))
        .unwrap_or_else(|| panic!("{summary}"));
    let total: usize = counts
        .trim_end_matches(')')
        .split(", ")
        .map(|c| c.split_once(' ').unwrap().0.parse::<usize>().unwrap())
        .sum();
    assert_eq!(total, 7043, "{summary}");
    assert!(counts.contains("\"Two year\""), "{summary}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        text.lines().next().unwrap(),
        "customerID,prediction,p_Month-to-month,p_One year,p_Two year"
    );
    assert_eq!(text.lines().count(), 7044);
    // Under `auto`, even where a GPU is found, a tabular model is scored on flex.
    let telco = Path::new("datasets/telco_customer_churn_ibm_7043.csv");
    let o = predict_on(&run, telco, &out, "auto", &[]);
    assert_ok(&o);
    let said = stderr(&o);
    assert!(
        said.contains("backend: flex (CPU") && said.contains("scores faster on the CPU"),
        "{said}"
    );
}

#[test]
fn device_flag_picks_a_discrete_gpu_or_says_why_not() {
    // A CPU backend has no GPU to pick; and no machine running these tests has ten
    // discrete GPUs, so wgpu says so, naming --device.
    for (backend, device, expected) in [
        ("flex", "0", "--device 0 selects a GPU"),
        (
            "wgpu",
            "9",
            "--backend wgpu (--device 9): no GPU adapter found",
        ),
    ] {
        let o = patron(&[
            "predict",
            "--checkpoint",
            "no-such-run",
            "--input",
            "x.csv",
            "--output",
            "y.csv",
            "--backend",
            backend,
            "--device",
            device,
        ]);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains(expected), "{}", stderr(&o));
    }
    let o = patron(&["info", "--device", "9"]);
    assert_ok(&o);
    assert!(stdout(&o).contains("wgpu adapter"), "{}", stdout(&o));
}

#[test]
fn info_names_a_missing_vulkan_loader() {
    // Hide the Vulkan loader in a private mount namespace (needs root and util-linux's
    // unshare; skips with a reason otherwise).
    let loader = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
    ]
    .iter()
    .map(|d| Path::new(d).join("libvulkan.so.1"))
    .find(|p| p.exists())
    .and_then(|p| std::fs::canonicalize(p).ok());
    let Some(loader) = loader else {
        eprintln!("skipped: no libvulkan.so.1 here to hide");
        return;
    };
    let o = std::process::Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount --bind /dev/null \"$1\" && exec \"$2\" info",
            "sh",
        ])
        .arg(&loader)
        .arg(env!("CARGO_BIN_EXE_patron"))
        .output();
    let o = match o {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!("skipped: cannot hide the loader ({})", stderr(&o).trim());
            return;
        }
        Err(e) => {
            eprintln!("skipped: unshare not available ({e})");
            return;
        }
    };
    let out = stdout(&o);
    assert!(
        out.contains("no Vulkan loader (libvulkan.so.1) is installed"),
        "{out}"
    );
    assert!(out.contains("adapters listed on Vulkan: none"), "{out}");
    assert!(out.contains("--backend auto uses: flex"), "{out}");
}

/// The valid_loss column of a run's metrics.csv.
fn valid_losses(run: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "valid_loss").unwrap();
    lines
        .map(|l| l.split(',').nth(col).unwrap().parse().unwrap())
        .collect()
}

/// `train.accumulate = 2` with batches of 64 steps as batches of 128 do (same rows per
/// step, the gradients summed by the rows' share), and unlike plain batches of 64.
#[test]
fn accumulated_batches_step_as_one_larger_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let common = ["train.epochs=3", "model.dropout=0", "model.hidden=[32]"];
    let run = |name: &str, extra: &[&str]| {
        let sets: Vec<&str> = common.iter().chain(extra).copied().collect();
        valid_losses(&train(TELCO, &tmp.path().join(name), &sets))
    };
    let large = run("large", &["train.batch_size=128"]);
    let accumulated = run("acc", &["train.batch_size=64", "train.accumulate=2"]);
    let small = run("small", &["train.batch_size=64"]);
    assert_eq!(large.len(), 3);
    for (a, b) in large.iter().zip(&accumulated) {
        assert!((a - b).abs() < 1e-4, "{large:?} vs {accumulated:?}");
    }
    assert!(
        (large[2] - small[2]).abs() > 1e-3,
        "batches of 64 without accumulation train differently: {large:?} vs {small:?}"
    );
}

/// Both numeric embeddings train on telco to a useful model, are recorded in the manifest,
/// and `predict` scores with them (the same scores on flex and ndarray within 1e-5).
#[test]
fn numeric_embeddings_train_and_score() {
    let tmp = tempfile::tempdir().unwrap();
    for kind in ["periodic", "ple_linear"] {
        let set = format!("model.numeric_embedding=\"{kind}\"");
        let run = train(TELCO, &tmp.path().join(kind), &["train.epochs=4", &set]);
        let manifest = json(&run.join("manifest.json"));
        assert_eq!(
            manifest["model"]["numeric_embedding"]["kind"], kind,
            "{manifest}"
        );
        let auc = json(&run.join("report.json"))["metrics"]["auc_roc"]
            .as_f64()
            .unwrap();
        assert!(auc > 0.78, "{kind}: test AUC {auc}");
        let mut scored = Vec::new();
        for backend in ["ndarray", "flex"] {
            let out = tmp.path().join(format!("{kind}-{backend}.csv"));
            assert_ok(&predict_on(
                &run,
                Path::new("datasets/telco_customer_churn_ibm_7043.csv"),
                &out,
                backend,
                &[],
            ));
            scored.push(common::scores(&out));
        }
        assert_eq!(scored[0].len(), 7043);
        for (a, b) in scored[0].iter().zip(&scored[1]) {
            assert!((a - b).abs() < 1e-5, "{kind}: {a} vs {b}");
        }
    }
}

/// `data.binning = "target"` places telco's bin edges by a tree on the churn label: fewer
/// edges than the 16 quantile bins, inside each column's range, and the run predicts with
/// them.
#[test]
fn target_binning_places_edges_by_the_label() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train(
        TELCO,
        &tmp.path().join("run"),
        &["train.epochs=3", "data.binning=\"target\""],
    );
    let pre = json(&run.join("preprocess.json"));
    let edges = common::numbers(&common::named(&pre["features"], "tenure")["edges"]);
    // Tenure drives churn: the tree splits it, but into fewer, uneven bins than quantiles.
    assert!((3..17).contains(&edges.len()), "{edges:?}");
    assert!(edges.windows(2).all(|w| w[0] < w[1]), "{edges:?}");
    assert!(
        edges[0] >= 0.0 && edges[edges.len() - 1] <= 72.0,
        "{edges:?}"
    );
    let out = tmp.path().join("scored.csv");
    assert_ok(&predict_on(
        &run,
        Path::new("datasets/telco_customer_churn_ibm_7043.csv"),
        &out,
        "flex",
        &[],
    ));
    assert_eq!(common::scores(&out).len(), 7043);
}

/// The shipped bank config crosses the campaign's month and day of month
/// (`data.crosses`, README "Crossed columns"): training says so, the run records the
/// cross and lists only real columns as its inputs, a row's reasons stay its columns,
/// and `data.crosses = 0` leaves it out.
#[test]
fn the_bank_config_crosses_month_and_day() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let args = train_args("ndarray", BANK, &dir, &["train.epochs=1"]);
    let o = patron(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ok(&o);
    assert!(
        stderr(&o).contains("crossed \"month\" and \"day\" into one more category input"),
        "{}",
        stderr(&o)
    );
    let crosses = |run: &Path| -> Vec<serde_json::Value> {
        json(&run.join("preprocess.json"))["features"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == "cross")
            .cloned()
            .collect()
    };
    let found = crosses(&dir);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["name"], "month × day");
    assert_eq!(found[0]["columns"], serde_json::json!(["month", "day"]));
    let inputs = json(&dir.join("manifest.json"))["features"].clone();
    let names: Vec<&str> = inputs
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"day") && !names.contains(&"month × day"),
        "{names:?}"
    );
    let scored = tmp.path().join("scored.csv");
    let o = predict_on(
        &dir,
        Path::new(BANK_DATA),
        &scored,
        "ndarray",
        &["--reasons", "3"],
    );
    assert_ok(&o);
    // Reasons are input columns: setting the month (or the day) to its typical value
    // moves the cross with it, so the cross is never a reason of its own.
    let text = std::fs::read_to_string(&scored).unwrap();
    assert!(!text.contains("×"));
    assert!(text.lines().any(|l| l.contains(",month,")));
    let off = train(
        BANK,
        &tmp.path().join("off"),
        &["train.epochs=1", "data.crosses=0"],
    );
    assert!(crosses(&off).is_empty());
}

/// The shipped caravan-insurance config has columns set on a handful of customers
/// (`data.min_varying_rows`, README "Columns that hardly vary"): training names them and
/// leaves them out, the run's config records the floor it used, scoring the file that
/// still holds them works, and 0 keeps them.
#[test]
fn columns_that_hardly_vary_are_left_out_of_the_caravan_run() {
    let config = "configs/insurance_propensity.toml";
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let quick = ["train.epochs=1", "split.folds=1"];
    let args = train_args("ndarray", config, &dir, &quick);
    let o = patron(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ok(&o);
    assert!(
        stderr(&o).contains("\"PZEILPL\"")
            && stderr(&o).contains("training rows: not features (data.min_varying_rows"),
        "{}",
        stderr(&o)
    );
    let inputs = |run: &Path| -> Vec<String> {
        json(&run.join("manifest.json"))["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect()
    };
    let names = inputs(&dir);
    assert!(
        !names.iter().any(|n| n == "PZEILPL") && names.iter().any(|n| n == "MOSTYPE"),
        "{names:?}"
    );
    let resolved = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(resolved.contains("min_varying_rows = 20"), "{resolved}");
    let scored = tmp.path().join("scored.csv");
    let data = Path::new("datasets/caravan_insurance_coil2000_5822.csv");
    assert_ok(&predict_on(&dir, data, &scored, "ndarray", &[]));
    assert_eq!(common::scores(&scored).len(), 5822);
    let all = train(
        config,
        &tmp.path().join("all"),
        &[quick[0], quick[1], "data.min_varying_rows=0"],
    );
    assert!(inputs(&all).iter().any(|n| n == "PZEILPL"));
}
