//! k-fold cross-validation (`split.folds`): one model per fold, early-stopped on its own
//! fold; the run scores with their ensemble, reports the per-fold figures and every
//! training row's out-of-fold score, and resumes across folds.

mod common;

use std::path::Path;

use common::{
    assert_ok, json, metrics_without_seconds, patron, predict_on, safetensors_header, scores,
    stderr, train_on,
};

const BANK: &str = "configs/bank_propensity.toml";

/// ROC AUC of `scores` against 0/1 `labels` (ties count half).
fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let (mut above, mut pairs) = (0.0, 0.0);
    for (s, _) in scores.iter().zip(labels).filter(|(_, y)| **y) {
        for (t, _) in scores.iter().zip(labels).filter(|(_, y)| !**y) {
            pairs += 1.0;
            above += if s > t {
                1.0
            } else if s == t {
                0.5
            } else {
                0.0
            };
        }
    }
    above / pairs
}

#[test]
fn a_cross_validated_run_scores_with_its_fold_ensemble() {
    let tmp = tempfile::tempdir().unwrap();
    let split = tmp.path().join("split.csv");
    let run = train_on(
        "flex",
        BANK,
        &tmp.path().join("cv"),
        &[
            "split.folds=3",
            "train.epochs=6",
            &format!("split.export={}", split.display()),
        ],
    );
    let manifest = json(&run.join("manifest.json"));
    assert_eq!(manifest["folds"], 3);
    assert_eq!(manifest["rows"]["valid"], 0);
    let train_rows = manifest["rows"]["train"].as_u64().unwrap() as usize;
    assert_eq!(
        train_rows, 3617,
        "the training and validation rows together"
    );
    let files = manifest["files"].as_object().unwrap();
    for k in 1..=3 {
        for name in [
            format!("fold-{k}/model.bpk"),
            format!("fold-{k}/metrics.csv"),
        ] {
            assert!(files.contains_key(&name), "{name} is hashed");
        }
    }
    assert!(files.contains_key("oof_predictions.csv"));
    assert!(!files.contains_key("model.bpk"));
    assert!(!run.join("train_state").exists());

    // The per-fold figures: each fold model's best epoch, summarized.
    let report = json(&run.join("report.json"));
    assert_eq!(report["evaluated_on"], "test");
    assert_eq!(report["cv"]["folds"], 3);
    let auc_cv = &report["cv"]["metrics"]["auc_roc"];
    let per_fold = common::numbers(&auc_cv["per_fold"]);
    assert_eq!(per_fold.len(), 3);
    assert!(per_fold.iter().all(|&a| a > 0.6 && a < 1.0), "{per_fold:?}");
    let mean = per_fold.iter().sum::<f64>() / 3.0;
    assert!((auc_cv["mean"].as_f64().unwrap() - mean).abs() < 1e-12);
    assert!(auc_cv["std"].as_f64().unwrap() > 0.0);
    for k in 1..=3 {
        let metrics = std::fs::read_to_string(run.join(format!("fold-{k}/metrics.csv"))).unwrap();
        let best = metrics
            .lines()
            .skip(1)
            .filter_map(|l| l.split(',').nth(4)?.parse::<f64>().ok())
            .any(|a| (a - per_fold[k - 1]).abs() < 1e-6);
        assert!(
            best,
            "fold {k}'s figure is one of its epochs' valid_auc_roc"
        );
    }
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("Cross-validation (3 folds"), "{md}");
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("<section id=\"cv\">"));

    // Every training row once, scored by the model of the fold that held it out, and the
    // same folds as the exported split.
    let oof = std::fs::read_to_string(run.join("oof_predictions.csv")).unwrap();
    let mut lines = oof.lines();
    assert_eq!(lines.next(), Some("row,fold,label,score"));
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    assert_eq!(rows.len(), train_rows);
    let exported = std::fs::read_to_string(&split).unwrap();
    let folds: Vec<Vec<&str>> = exported
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for row in &rows {
        let r: usize = row[0].parse().unwrap();
        assert!(seen.insert(r), "row {r} twice");
        assert_eq!(folds[r][1], "train");
        assert_eq!(folds[r][2], row[1], "row {r}'s fold");
    }
    let oof_scores: Vec<f64> = rows.iter().map(|r| r[3].parse().unwrap()).collect();
    let labels: Vec<bool> = rows.iter().map(|r| r[2] == "yes").collect();
    assert!(oof_scores.iter().all(|s| (0.0..=1.0).contains(s)));
    let oof_auc = auc(&oof_scores, &labels);
    assert!(
        oof_auc > 0.65 && oof_auc < 0.95,
        "out-of-fold AUC {oof_auc}"
    );

    // predict scores with the ensemble, the same on both CPU backends.
    let data =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/bank_marketing_uci_bank_4521.csv");
    let (flex, ndarray) = (tmp.path().join("flex.csv"), tmp.path().join("nd.csv"));
    assert_ok(&predict_on(&run, &data, &flex, "flex", &["--reasons", "2"]));
    assert_ok(&predict_on(&run, &data, &ndarray, "ndarray", &[]));
    let (a, b) = (scores(&flex), scores(&ndarray));
    assert_eq!(a.len(), 4521);
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-5, "flex and ndarray differ by {worst}");

    // One safetensors file per fold model, naming the member and the pooling rule.
    let exported = common::export(&run, "safetensors", &tmp.path().join("m.safetensors"));
    assert_ok(&exported);
    assert_eq!(common::stdout(&exported).lines().count(), 3);
    for k in 1..=3 {
        let path = tmp.path().join(format!("m.fold-{k}.safetensors"));
        let header = safetensors_header(&path);
        let meta = &header["__metadata__"];
        assert_eq!(meta["ensemble_members"], "3");
        assert_eq!(meta["ensemble_member"], k.to_string());
        assert!(meta["ensemble_rule"].as_str().unwrap().contains("mean"));
    }
    let hf = common::export(&run, "hf", &tmp.path().join("hf"));
    assert_eq!(hf.status.code(), Some(2));
    assert!(
        stderr(&hf).contains("exports text_encoder runs"),
        "{}",
        stderr(&hf)
    );
}

#[test]
fn validate_shows_the_folds_and_a_count_out_of_range_is_refused() {
    let o = patron(&["validate", "--config", BANK, "--set", "split.folds=3"]);
    assert_ok(&o);
    let out = common::stdout(&o);
    assert!(
        out.contains("split: train 3617, valid 0, test 904"),
        "{out}"
    );
    assert!(
        out.contains("folds: 3 of the training rows (1206, 1206, 1205 rows each)"),
        "{out}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let o = patron(&[
        "train",
        "--config",
        BANK,
        "--output-dir",
        tmp.path().join("x").to_str().unwrap(),
        "--set",
        "split.folds=21",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("split.folds"), "{}", stderr(&o));
    assert!(!tmp.path().join("x").exists());
    // One fold is one model, validated on split.valid.
    let o = patron(&["validate", "--config", BANK, "--set", "split.folds=1"]);
    assert_ok(&o);
    let out = common::stdout(&o);
    assert!(
        out.contains("split: train 3165, valid 452, test 904"),
        "{out}"
    );
    assert!(!out.contains("folds:"), "{out}");
}

/// A config that sets only `data.*` trains five fold models on every row and reports their
/// out-of-fold scores; `split.test` set keeps a test split.
#[test]
fn a_default_fold_ensemble_learns_from_every_row_and_reports_out_of_fold() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("juice.toml");
    let data =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/orange_juice_purchase_1070.csv");
    std::fs::write(
        &config,
        format!(
            "[data]\npath = {:?}\ntarget = \"Purchase\"\npositive = \"MM\"\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let run = train_on("flex", config, &tmp.path().join("all"), &["train.epochs=4"]);
    let manifest = json(&run.join("manifest.json"));
    assert_eq!(manifest["folds"], 5);
    assert_eq!(manifest["rows"]["test"], 0);
    assert_eq!(manifest["rows"]["train"], 1070, "every row is in a fold");
    let report = json(&run.join("report.json"));
    assert_eq!(report["evaluated_on"], "out_of_fold");
    assert_eq!(report["n"], 1070);
    // The report is the out-of-fold scores' figures.
    let oof = std::fs::read_to_string(run.join("oof_predictions.csv")).unwrap();
    let (mut score, mut label) = (Vec::new(), Vec::new());
    for line in oof.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        label.push(cells[2] == "MM");
        score.push(cells[3].parse::<f64>().unwrap());
    }
    assert_eq!(score.len(), 1070);
    let reported = report["metrics"]["auc_roc"].as_f64().unwrap();
    assert!((auc(&score, &label) - reported).abs() < 1e-6, "{reported}");
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.starts_with("# Out-of-fold report of "), "{md}");
    assert!(md.contains("each scored by the fold model that did not train on it"));

    let held = train_on(
        "flex",
        config,
        &tmp.path().join("test"),
        &["train.epochs=4", "split.test=0.2"],
    );
    let manifest = json(&held.join("manifest.json"));
    assert_eq!(manifest["folds"], 5);
    assert_eq!(manifest["rows"]["test"], 214);
    assert_eq!(json(&held.join("report.json"))["evaluated_on"], "test");
    let md = std::fs::read_to_string(held.join("report.md")).unwrap();
    assert!(md.starts_with("# Test report of "), "{md}");
}

/// Stopped after every epoch (as Ctrl-C does) and resumed, through the folds, a
/// cross-validated run ends exactly as an uninterrupted one.
#[test]
fn a_cross_validated_run_resumes_across_folds_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = patron::backend::select(patron::backend::BackendChoice::Ndarray).unwrap();
    let overrides: Vec<String> = ["split.folds=2", "train.epochs=3", "model.hidden=[32]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join(BANK);
    let train = |dir: &Path, stop: bool, resume: bool| {
        let request = patron::train::TrainRequest {
            config: (!resume)
                .then(|| patron::config::Config::resolve(&config, &overrides).unwrap()),
            output_dir: Some(dir.to_path_buf()),
            resume: resume.then(|| dir.to_path_buf()),
            stop: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(stop)),
            ..patron::train::TrainRequest::default()
        };
        patron::train::train(&request, &backend, &patron::progress::Progress::new(true)).map(|_| ())
    };
    let whole = tmp.path().join("whole");
    train(&whole, false, false).unwrap();
    let split = tmp.path().join("split");
    let mut stops = 0;
    let mut outcome = train(&split, true, false);
    while let Err(e) = outcome {
        assert_eq!(e.exit_code(), 130, "{e}");
        stops += 1;
        assert!(stops < 20, "the run never finished");
        outcome = train(&split, true, true);
    }
    assert!(
        stops >= 3,
        "stopped inside both folds and between them: {stops}"
    );
    // The weights files hold Burn's random parameter ids; their scores are compared.
    for name in ["report.json", "oof_predictions.csv", "test_predictions.csv"] {
        let read = |run: &Path| std::fs::read_to_string(run.join(name)).unwrap();
        assert!(read(&whole) == read(&split), "{name} differs");
    }
    for k in 1..=2 {
        let fold = format!("fold-{k}");
        assert_eq!(
            metrics_without_seconds(&whole.join(&fold)),
            metrics_without_seconds(&split.join(&fold)),
            "fold {k}"
        );
    }
}
