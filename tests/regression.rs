//! Regression targets end to end: the shipped customer-value config trains, reports,
//! predicts, explains, evaluates and compares; `auto` picks regression for a many-valued
//! number; bad regression inputs are exit 2 naming what is wrong.

mod common;

use std::path::Path;

use common::{
    assert_ok, check_self_contained, check_svgs, evaluate_on, json, named, numbers, patron,
    predict_on, read_csv, stderr, stdout, train_on,
};

const CONFIG: &str = "configs/customer_value.toml";
const DATA: &str = "datasets/cdnow_customer_value_23570.csv";

#[test]
fn customer_value_trains_reports_and_scores_in_the_targets_units() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train_on(
        "flex",
        CONFIG,
        &tmp.path().join("run"),
        &["train.epochs=12"],
    );

    let manifest = json(&run.join("manifest.json"));
    assert_eq!(manifest["task"], "regression");
    assert_eq!(manifest["labels"].as_array().unwrap().len(), 0);
    let pre = json(&run.join("preprocess.json"));
    assert_eq!(pre["regression"]["loss"], "tweedie");

    let report = json(&run.join("report.json"));
    assert_eq!(report["task"], "regression");
    let m = &report["metrics"];
    for key in [
        "rmse",
        "mae",
        "r2",
        "spearman",
        "mean_prediction",
        "mean_target",
        "top10_share",
    ] {
        assert!(m[key].is_f64(), "{key}: {m}");
    }
    // Far better than predicting the mean (R^2 0), and the top tenth holds a big share.
    assert!(m["r2"].as_f64().unwrap() > 0.15, "{m}");
    assert!(m["top10_share"].as_f64().unwrap() > 0.4, "{m}");
    let shares = common::numbers(&report["decile_share"]);
    assert_eq!(shares.len(), 10);
    assert!(
        (shares.iter().sum::<f64>() - 1.0).abs() < 1e-9,
        "{shares:?}"
    );
    assert_eq!(shares[0], m["top10_share"].as_f64().unwrap());
    assert!(shares[0] > shares[9], "{shares:?}");

    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(
        metrics.lines().next(),
        Some("epoch,lr,train_loss,valid_loss,valid_rmse,valid_mae,seconds")
    );
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    check_self_contained(&html);
    assert!(
        check_svgs(&html) >= 5,
        "fit, residuals, gains and training charts"
    );
    for section in ["id=\"fit\"", "id=\"deciles\"", "rise in validation RMSE"] {
        assert!(html.contains(section), "{section}");
    }
    let importance = json(&run.join("importance.json"));
    assert!(!importance.as_array().unwrap().is_empty());

    // `patron report` rebuilds the same report.json from the run's files.
    let before = std::fs::read(run.join("report.json")).unwrap();
    assert_ok(&patron(&["report", "--checkpoint", run.to_str().unwrap()]));
    assert_eq!(std::fs::read(run.join("report.json")).unwrap(), before);

    // predict: the id and the prediction in dollars, never negative with a log link;
    // reasons are signed, the strongest by size first.
    let out = tmp.path().join("scores.csv");
    let o = predict_on(&run, Path::new(DATA), &out, "flex", &["--reasons", "3"]);
    assert_ok(&o);
    let (header, rows) = read_csv(&out);
    assert_eq!(
        header,
        [
            "customer_id",
            "prediction",
            "reason_1",
            "reason_1_effect",
            "reason_2",
            "reason_2_effect",
            "reason_3",
            "reason_3_effect"
        ]
    );
    assert_eq!(rows.len(), 23570);
    let predictions: Vec<f64> = rows.iter().map(|r| r[1].parse().unwrap()).collect();
    assert!(predictions.iter().all(|&p| p > 0.0));
    let mean = predictions.iter().sum::<f64>() / predictions.len() as f64;
    // The file's mean future spend is about 32 dollars.
    assert!((15.0..60.0).contains(&mean), "{mean}");
    let (mut up, mut down) = (0, 0);
    for r in &rows {
        let effects: Vec<f64> = [3, 5, 7]
            .iter()
            .filter(|&&i| !r[i].is_empty())
            .map(|&i| r[i].parse().unwrap())
            .collect();
        assert!(
            effects.windows(2).all(|w| w[0].abs() >= w[1].abs()),
            "{r:?}"
        );
        up += effects.iter().filter(|&&e| e > 0.0).count();
        down += effects.iter().filter(|&&e| e < 0.0).count();
    }
    assert!(up > 0 && down > 0, "up {up}, down {down}");

    // evaluate on the whole file: the same metrics keys; compare lines it up with the run.
    let eval = tmp.path().join("eval");
    let o = evaluate_on(&run, Path::new(DATA), Some(&eval), "flex");
    assert_ok(&o);
    let evaluated = json(&eval.join("report.json"));
    assert_eq!(evaluated["n"], 23570);
    assert!(evaluated["metrics"]["rmse"].as_f64().unwrap() > 0.0);
    let o = patron(&["compare", run.to_str().unwrap(), eval.to_str().unwrap()]);
    assert_ok(&o);
    assert!(stdout(&o).contains("rmse (min)"), "{}", stdout(&o));

    // export: the weights, with what turns the output into dollars; the shipped config
    // trains the default 5-fold ensemble, one file per fold model.
    assert_ok(&common::export(
        &run,
        "safetensors",
        &tmp.path().join("m.safetensors"),
    ));
    let header = common::safetensors_header(&tmp.path().join("m.fold-5.safetensors"));
    let meta = &header["__metadata__"];
    assert_eq!(meta["task"], "regression");
    assert_eq!(meta["ensemble_members"], "5");
    let target: serde_json::Value =
        serde_json::from_str(meta["regression"].as_str().unwrap()).unwrap();
    assert_eq!(target["loss"], "tweedie");

    // A classification run does not compare with a regression.
    let binary = train_on(
        "flex",
        "configs/repeat_purchase.toml",
        &tmp.path().join("binary"),
        &["train.epochs=1"],
    );
    let o = patron(&["compare", run.to_str().unwrap(), binary.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("one task"), "{}", stderr(&o));
}

/// A CSV of `rows` rows: x uniform, y = 3 x + noise (+ `shift`), a label column.
fn linear(path: &Path, rows: usize, shift: f64) {
    let mut text = String::from("x,noise,y\n");
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for _ in 0..rows {
        let x = next() * 10.0;
        let noise = next() - 0.5;
        text.push_str(&format!(
            "{x:.4},{noise:.4},{:.4}\n",
            3.0 * x + noise + shift
        ));
    }
    std::fs::write(path, text).unwrap();
}

fn config(dir: &Path, data: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[data]\npath = \"{}\"\ntarget = \"y\"\n{extra}\n[model]\nhidden = [32]\n[train]\nepochs = 30\nlearning_rate = 3e-3\n",
            data.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn auto_learns_a_many_valued_number_as_a_regression() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("lin.csv");
    linear(&data, 2000, 0.0);
    let cfg = config(tmp.path(), &data, "");
    let run = tmp.path().join("run");
    let args = common::train_args("flex", cfg.to_str().unwrap(), &run, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = patron(&args);
    assert_ok(&o);
    assert!(
        stderr(&o).contains("task: regression (data.task = \"auto\""),
        "{}",
        stderr(&o)
    );
    let report = json(&run.join("report.json"));
    // y spans 0..30 with noise of std 0.29: a fitted line is far better than the mean.
    assert!(report["metrics"]["r2"].as_f64().unwrap() > 0.97, "{report}");
    assert!(
        report["metrics"]["rmse"].as_f64().unwrap() < 1.5,
        "{report}"
    );
    // Predictions read in the target's units.
    let out = tmp.path().join("p.csv");
    assert_ok(&predict_on(&run, &data, &out, "flex", &[]));
    let (header, rows) = read_csv(&out);
    assert_eq!(header, ["row", "prediction"]);
    let text = std::fs::read_to_string(&data).unwrap();
    let truth: Vec<f64> = text
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    let mae = rows
        .iter()
        .zip(&truth)
        .map(|(r, y)| (r[1].parse::<f64>().unwrap() - y).abs())
        .sum::<f64>()
        / truth.len() as f64;
    assert!(mae < 1.0, "{mae}");
    // A number past its training range scores as the end of it: no extrapolation.
    let pre = json(&run.join("preprocess.json"));
    let range = numbers(&named(&pre["features"], "x")["range"]);
    assert!(range[0] >= 0.0 && range[0] < 0.1 && range[1] > 9.9 && range[1] <= 10.0);
    let rows = format!("x,noise\n1000,0\n{},0\n-50,0\n{},0\n", range[1], range[0]);
    let o = common::predict_stdin(&run, rows.as_bytes(), &[]);
    assert_ok(&o);
    let p: Vec<f64> = stdout(&o)
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!((p[0], p[2]), (p[1], p[3]), "{p:?}");
    assert!(p[0] > 27.0 && p[2] < 5.0, "{p:?}");
}

#[test]
fn a_log1p_target_predicts_its_mean_after_the_back_transform() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("lin.csv");
    linear(&data, 2000, 5.0);
    let cfg = config(tmp.path(), &data, "target_transform = \"log1p\"");
    let run = train_on("flex", cfg.to_str().unwrap(), &tmp.path().join("run"), &[]);
    let report = json(&run.join("report.json"));
    let m = &report["metrics"];
    assert_eq!(report["target_transform"], "log1p");
    let (predicted, actual) = (
        m["mean_prediction"].as_f64().unwrap(),
        m["mean_target"].as_f64().unwrap(),
    );
    assert!((predicted - actual).abs() < 0.05 * actual, "{m}");
    assert!(m["r2"].as_f64().unwrap() > 0.95, "{m}");
    let calibration = json(&run.join("calibration.json"));
    assert!(
        calibration["smearing"].as_f64().unwrap() > 0.99,
        "{calibration}"
    );
}

#[test]
fn bad_regression_inputs_are_exit_2_naming_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    // 40 varied rows with one bad value at row 3 (as numbered in the file's data rows).
    let with = |bad: &str| {
        let mut text = String::from("x,y\n");
        for i in 0..40 {
            let y = if i == 2 {
                bad.to_string()
            } else {
                format!("{}.5", i % 7)
            };
            text.push_str(&format!("{},{y}\n", 3 * i));
        }
        text
    };
    let regression = "task = \"regression\"";
    let cases: [(String, &str, &str, &[&str]); 5] = [
        (with("n/a-ish"), regression, "\"n/a-ish\" at row 3", &[]),
        (
            with("-3.5"),
            regression,
            "train.loss = \"tweedie\"",
            &["train.loss=\"tweedie\""],
        ),
        ("x,y\n1,2\n2,2\n3,2\n".into(), regression, "constant", &[]),
        (
            with("4"),
            regression,
            "train.early_stopping.metric",
            &["train.early_stopping.metric=\"auc_roc\""],
        ),
        (
            with("-2"),
            "task = \"regression\"\ntarget_transform = \"log1p\"",
            "above -1",
            &[],
        ),
    ];
    for (i, (data, extra, message, sets)) in cases.iter().enumerate() {
        let path = tmp.path().join(format!("d{i}.csv"));
        std::fs::write(&path, data).unwrap();
        let cfg = config(tmp.path(), &path, extra);
        let run = tmp.path().join(format!("run{i}"));
        let args = common::train_args("flex", cfg.to_str().unwrap(), &run, sets);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = patron(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "case {i}: {err}");
        assert!(err.contains(message), "case {i}: {err}");
        let errors = err.lines().filter(|l| l.starts_with("error:")).count();
        assert_eq!(errors, 1, "case {i}: {err}");
        assert!(!err.contains("panicked"), "case {i}: {err}");
        assert!(!run.exists(), "case {i} left a run directory");
    }
}

#[test]
fn quantile_heads_give_intervals_that_cover_their_share() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("lin.csv");
    linear(&data, 3000, 0.0);
    let cfg = config(tmp.path(), &data, "");
    let run = train_on(
        "flex",
        cfg.to_str().unwrap(),
        &tmp.path().join("run"),
        &["model.quantiles=[0.1, 0.9]"],
    );
    let report = json(&run.join("report.json"));
    let i = &report["intervals"];
    // 600 test rows: the 80 % interval holds 80 % of them, give or take sampling.
    let coverage = i["coverage"].as_f64().unwrap();
    assert!((0.7..0.9).contains(&coverage), "{i}");
    let below = common::numbers(&i["below"]);
    assert!((0.03..0.17).contains(&below[0]), "{i}");
    assert!((0.83..0.97).contains(&below[1]), "{i}");
    let shifts = &json(&run.join("calibration.json"))["quantile_shifts"];
    assert_eq!(shifts.as_array().unwrap().len(), 2);

    let out = tmp.path().join("p.csv");
    assert_ok(&predict_on(&run, &data, &out, "flex", &[]));
    let (header, rows) = read_csv(&out);
    assert_eq!(header, ["row", "prediction", "q10", "q90"]);
    let mut width = 0.0;
    for r in &rows {
        let v: Vec<f64> = r[1..].iter().map(|c| c.parse().unwrap()).collect();
        assert!(v[1] <= v[2], "{r:?}");
        width += v[2] - v[1];
    }
    // y spans 0..30; the interval is the model's error band, a few units wide at most.
    let width = width / rows.len() as f64;
    assert!(width > 0.5 && width < 4.0, "{width}");
    // The interval columns' drift profile watches the prediction only.
    let drift = tmp.path().join("drift");
    assert_ok(&common::drift_on(&run, &data, &drift));
    let report = json(&drift.join("drift.json"));
    assert!(report["score"]["psi"].as_f64().unwrap() < 0.1, "{report}");
}

/// A text config that sets only `data.*` on a numeric score (VADER's `mean_sentiment`,
/// `data.task` left at "auto") trains the default text model as a regression: the text
/// kinds' default early-stopping metric, macro-F1, becomes RMSE, which the saved config
/// shows, a resume with the same config accepts and `tune` ranks by.
#[test]
fn a_text_config_of_data_keys_only_learns_a_numeric_score() {
    let tmp = tempfile::tempdir().unwrap();
    let source = std::fs::read_to_string("datasets/vader_human_rated_snippets_23703.csv").unwrap();
    let mut lines = source.lines();
    let mut slice = format!("{}\n", lines.next().unwrap());
    for line in lines.step_by(20) {
        slice.push_str(line);
        slice.push('\n');
    }
    let data = tmp.path().join("vader.csv");
    std::fs::write(&data, slice).unwrap();
    let config = tmp.path().join("score.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\npath = {:?}\ntext = \"text\"\ntarget = \"mean_sentiment\"\ndrop = [\"source\", \"id\", \"label3\"]\n",
            data.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    // Without reading the data, `patron config` can only say what a number would change.
    let o = patron(&["config", "--config", config]);
    assert_ok(&o);
    let resolved = stdout(&o);
    assert!(
        resolved.starts_with("# train.early_stopping.metric"),
        "{resolved}"
    );
    assert!(resolved.contains("metric = \"macro_f1\""), "{resolved}");
    let run = train_on("flex", config, &tmp.path().join("run"), &["train.epochs=2"]);
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(saved.contains("metric = \"rmse\""), "{saved}");
    assert!(saved.contains("kind = \"text_bag\""), "{saved}");
    let report = json(&run.join("report.json"));
    assert_eq!(report["task"], "regression");
    assert!(
        report["metrics"]["rmse"].as_f64().unwrap() < 2.5,
        "{report}"
    );

    // Stopped after its first epoch and resumed with the same config: that config
    // resolves to the saved one (rmse), so the resume is accepted.
    let dir = tmp.path().join("stopped");
    let backend = patron::backend::select(patron::backend::BackendChoice::Ndarray).unwrap();
    let request = |stop: bool, resume: bool| patron::train::TrainRequest {
        config: Some(
            patron::config::Config::resolve(Path::new(config), &["train.epochs=2".into()]).unwrap(),
        ),
        output_dir: Some(dir.clone()),
        resume: resume.then(|| dir.clone()),
        stop: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(stop)),
        ..patron::train::TrainRequest::default()
    };
    let quiet = patron::progress::Progress::new(true);
    let stopped = patron::train::train(&request(true, false), &backend, &quiet).unwrap_err();
    assert_eq!(stopped.exit_code(), 130, "{stopped}");
    patron::train::train(&request(false, true), &backend, &quiet).unwrap();
    assert_eq!(json(&dir.join("report.json"))["task"], "regression");

    let search = tmp.path().join("search");
    assert_ok(&patron(&[
        "tune",
        "--config",
        config,
        "--quiet",
        "--output-dir",
        search.to_str().unwrap(),
        "--set",
        "train.epochs=1",
        "--search",
        "train.learning_rate=5e-4|2e-3",
    ]));
    let board = std::fs::read_to_string(search.join("leaderboard.csv")).unwrap();
    assert!(
        board.lines().next().unwrap().contains("valid_rmse"),
        "{board}"
    );
}
