//! The wgpu backend: train, predict and evaluate on it (tabular and text models), and check
//! that weights move between wgpu and the CPU backends with the same scores. CI gets a real adapter from Mesa's
//! software Vulkan driver (lavapipe); without any adapter these tests skip with a reason.

mod common;

use std::path::Path;

use common::{adapter_found, assert_ok, evaluate_on, json, predict_on, scores, train_on};

const BANK: &str = "configs/bank_propensity.toml";
/// A small network and few epochs: a software adapter is slow, and what is checked here
/// is correctness, not quality.
const SMALL: [&str; 3] = [
    "train.epochs=3",
    "model.hidden=[32]",
    "train.early_stopping.patience=0",
];

fn predict(run: &Path, input: &str, out: &Path, backend: &str) -> Vec<f64> {
    assert_ok(&predict_on(run, Path::new(input), out, backend, &[]));
    scores(out)
}

fn assert_close(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-4, "{what}: scores differ by up to {worst}");
}

/// Every reason of predictions row `a` is one of row `b`'s with the same effect within
/// 1e-3, or sits at `b`'s last place tied with the effect `b` has there (a near tie
/// ordered the other way).
fn same_reasons(a: &[String], b: &[String]) {
    let named = |row: &[String]| -> Vec<(String, f64)> {
        (3..row.len())
            .step_by(2)
            .filter(|&at| !row[at].is_empty())
            .map(|at| (row[at].clone(), row[at + 1].parse().unwrap()))
            .collect()
    };
    let (in_a, in_b) = (named(a), named(b));
    for (name, effect) in &in_a {
        let other = match in_b.iter().find(|(n, _)| n == name) {
            Some((_, e)) => *e,
            None => in_b.last().map_or(0.0, |(_, e)| *e),
        };
        assert!((effect - other).abs() < 1e-3, "{a:?} vs {b:?}");
    }
}

#[test]
fn wgpu_trains_predicts_evaluates_and_shares_weights_with_cpu_backends() {
    if !adapter_found() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = "datasets/bank_marketing_uci_bank_4521.csv";

    let gpu_run = train_on("wgpu", BANK, &tmp.path().join("gpu"), &SMALL);
    assert_eq!(json(&gpu_run.join("manifest.json"))["backend"], "wgpu");
    let gpu_report = json(&gpu_run.join("report.json"));
    let gpu_auc = gpu_report["metrics"]["auc_roc"].as_f64().unwrap();

    // wgpu-trained weights score the same on wgpu, ndarray and flex.
    let on_gpu = predict(&gpu_run, data, &tmp.path().join("g_g.csv"), "wgpu");
    let on_ndarray = predict(&gpu_run, data, &tmp.path().join("g_n.csv"), "ndarray");
    let on_flex = predict(&gpu_run, data, &tmp.path().join("g_f.csv"), "flex");
    assert_eq!(on_gpu.len(), 4521);
    assert_close(&on_gpu, &on_ndarray, "wgpu-trained, wgpu vs ndarray");
    assert_close(&on_gpu, &on_flex, "wgpu-trained, wgpu vs flex");

    // And the reverse: ndarray-trained weights on wgpu.
    let cpu_run = train_on("ndarray", BANK, &tmp.path().join("cpu"), &SMALL);
    let cpu_on_cpu = predict(&cpu_run, data, &tmp.path().join("c_n.csv"), "ndarray");
    let cpu_on_gpu = predict(&cpu_run, data, &tmp.path().join("c_g.csv"), "wgpu");
    assert_close(&cpu_on_cpu, &cpu_on_gpu, "ndarray-trained, ndarray vs wgpu");
    // Their reasons agree as well: the same columns with the same effects, up to the
    // order of near ties (on 500 rows: each column is one more pass over them, and a
    // software adapter is slow).
    let slice = tmp.path().join("slice.csv");
    let whole = std::fs::read_to_string(data).unwrap();
    let head: Vec<&str> = whole.lines().take(501).collect();
    std::fs::write(&slice, head.join("\n") + "\n").unwrap();
    let reasons = |backend: &str| {
        let out = tmp.path().join(format!("reasons_{backend}.csv"));
        let extra = ["--reasons", "2"];
        assert_ok(&predict_on(&cpu_run, &slice, &out, backend, &extra));
        let text = std::fs::read_to_string(&out).unwrap();
        text.lines()
            .skip(1)
            .map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    let (on_cpu, on_gpu) = (reasons("ndarray"), reasons("wgpu"));
    assert_eq!(on_cpu.len(), 500);
    for (c, g) in on_cpu.iter().zip(&on_gpu) {
        same_reasons(c, g);
        same_reasons(g, c);
    }

    // The same config trained on both backends lands on similar test metrics (they draw
    // different random initializations, so not identical ones).
    let cpu_auc = json(&cpu_run.join("report.json"))["metrics"]["auc_roc"]
        .as_f64()
        .unwrap();
    assert!(
        (gpu_auc - cpu_auc).abs() < 0.05,
        "test AUC wgpu {gpu_auc} vs ndarray {cpu_auc}"
    );

    let eval = tmp.path().join("eval");
    assert_ok(&evaluate_on(&gpu_run, Path::new(data), Some(&eval), "wgpu"));
    assert_eq!(json(&eval.join("report.json"))["n"], 4521);
}

#[test]
fn wgpu_trains_and_scores_text_models_like_the_cpu_backends() {
    if !adapter_found() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = "configs/feedback_sentiment_uci.toml";
    let data = "datasets/uci_sentiment_labelled_sentences_3000.csv";
    let small = [
        "model.embedding_dim=16",
        "model.buckets=16384",
        "train.epochs=2",
        "train.early_stopping.patience=0",
    ];

    // text_bag trained on wgpu: the same scores on wgpu and ndarray, a real signal.
    let bag = train_on("wgpu", config, &tmp.path().join("bag"), &small);
    let auc = json(&bag.join("report.json"))["metrics"]["auc_roc"]
        .as_f64()
        .unwrap();
    assert!(auc > 0.7, "text_bag on wgpu: test AUC {auc}");
    let on_gpu = predict(&bag, data, &tmp.path().join("b_g.csv"), "wgpu");
    let on_cpu = predict(&bag, data, &tmp.path().join("b_n.csv"), "ndarray");
    assert_eq!(on_gpu.len(), 3000);
    assert_close(&on_gpu, &on_cpu, "text_bag, wgpu vs ndarray");

    // A tiny Transformer trained on ndarray scores the same on wgpu (attention, masks and
    // pooling on the GPU path).
    let tiny = [
        "model.kind=text_transformer",
        "model.embedding_dim=16",
        "model.heads=2",
        "model.layers=1",
        "model.vocab_size=500",
        "model.max_length=32",
        "train.epochs=1",
    ];
    let transformer = train_on("ndarray", config, &tmp.path().join("tr"), &tiny);
    let t_cpu = predict(&transformer, data, &tmp.path().join("t_n.csv"), "ndarray");
    let t_gpu = predict(&transformer, data, &tmp.path().join("t_g.csv"), "wgpu");
    assert_close(&t_cpu, &t_gpu, "text_transformer, ndarray vs wgpu");
}
