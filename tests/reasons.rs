//! `patron predict --reasons K`: each reason's effect must be what scoring the row again
//! with that one column at its typical value says it is.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{assert_ok, json, predict_on, train_on};

const BANK_DATA: &str = "datasets/bank_marketing_uci_bank_4521.csv";
const TELCO_DATA: &str = "datasets/telco_customer_churn_ibm_7043.csv";

/// A CSV without quoted fields: its header and rows, split on commas.
fn read_plain_csv(path: &Path, rows: usize) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines().map(|l| {
        assert!(!l.contains('"'), "a plain CSV: {l}");
        l.split(',').map(str::to_string).collect::<Vec<_>>()
    });
    let header = lines.next().unwrap();
    (header, lines.take(rows).collect())
}

/// Each input column's typical value, as the run's preprocess.json fitted it: the median
/// of a number, the most frequent category.
fn typical_values(run: &Path) -> HashMap<String, String> {
    let pre = json(&run.join("preprocess.json"));
    pre["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let name = f["name"].as_str().unwrap().to_string();
            let value = match f["kind"].as_str().unwrap() {
                "numeric" => f["median"].as_f64().unwrap().to_string(),
                _ => f["categories"][0].as_str().unwrap().to_string(),
            };
            (name, value)
        })
        .collect()
}

/// The reasons of one predictions row: (column, effect) pairs, empty places skipped.
fn reasons_of(row: &[String], first: usize) -> Vec<(String, f64)> {
    row[first..]
        .chunks(2)
        .filter(|pair| !pair[0].is_empty())
        .map(|pair| (pair[0].clone(), pair[1].parse().unwrap()))
        .collect()
}

/// The rows after the header of predictions without quoted fields, split on commas.
fn data_rows(csv: &str) -> Vec<Vec<String>> {
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// A binary run of `config` trained for 3 epochs on ndarray into `dir`, and how to read
/// the log-odds of a class from a `row,score,prediction,...` predictions row.
fn binary_run(config: &str, dir: &Path) -> (PathBuf, impl Fn(&[String], &str) -> f64) {
    let run = train_on("ndarray", config, &dir.join("run"), &["train.epochs=3"]);
    let positive = json(&run.join("manifest.json"))["positive"]
        .as_str()
        .unwrap()
        .to_string();
    let odds = move |row: &[String], class: &str| {
        let z = logit(row[1].parse().unwrap());
        if class == positive { z } else { -z }
    };
    (run, odds)
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

/// Score `rows` with `--reasons 3`, then score every row again with each of its reason
/// columns at the typical value: the fall in the predicted class's log-odds must be the
/// reported effect. `odds(row, class)` reads a class's log-odds from a predictions row.
fn check_effects(
    run: &Path,
    backend: &str,
    (header, rows): (&[String], &[Vec<String>]),
    first_reason: usize,
    odds: impl Fn(&[String], &str) -> f64,
) -> usize {
    let tmp = tempfile::tempdir().unwrap();
    let typical = typical_values(run);
    let input = tmp.path().join("in.csv");
    let lines: Vec<String> = std::iter::once(header)
        .chain(rows.iter().map(Vec::as_slice))
        .map(|r| r.join(","))
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let scored = tmp.path().join("scored.csv");
    assert_ok(&predict_on(
        run,
        &input,
        &scored,
        backend,
        &["--reasons", "3"],
    ));
    let (out_header, out) = read_plain_csv(&scored, usize::MAX);
    let expected_names: Vec<String> = (1..=3)
        .flat_map(|i| [format!("reason_{i}"), format!("reason_{i}_effect")])
        .collect();
    assert_eq!(out_header[first_reason..], expected_names[..]);
    assert_eq!(out.len(), rows.len());

    // One probe row per (row, reason): the row with that column at its typical value.
    let mut probes = vec![header.join(",")];
    let mut expected = Vec::new();
    for (r, (row, scored_row)) in rows.iter().zip(&out).enumerate() {
        let reasons = reasons_of(scored_row, first_reason);
        assert!(
            reasons.windows(2).all(|w| w[0].1 >= w[1].1),
            "strongest first: {reasons:?}"
        );
        for (column, effect) in reasons {
            assert!(
                effect > 0.0,
                "a reason pushes toward the prediction: {effect}"
            );
            let at = header.iter().position(|h| *h == column).unwrap();
            let mut probe = row.clone();
            probe[at] = typical[&column].clone();
            probes.push(probe.join(","));
            expected.push((r, column, effect));
        }
    }
    let probe_in = tmp.path().join("probes.csv");
    std::fs::write(&probe_in, probes.join("\n") + "\n").unwrap();
    let probe_out = tmp.path().join("probes_scored.csv");
    assert_ok(&predict_on(run, &probe_in, &probe_out, backend, &[]));
    let (_, probed) = read_plain_csv(&probe_out, usize::MAX);
    for ((r, column, effect), probe) in expected.iter().zip(&probed) {
        let predicted = &out[*r][if first_reason == 3 { 2 } else { 1 }];
        let fall = odds(&out[*r], predicted) - odds(probe, predicted);
        // Scores are written with 6 decimals: log-odds are good to about 1e-4 here.
        assert!(
            (fall - effect).abs() < 2e-3,
            "row {r}, {column}: effect {effect}, rescored fall {fall}"
        );
    }
    expected.len()
}

#[test]
fn binary_reasons_are_the_fall_in_log_odds_at_the_typical_value() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, odds) = binary_run("configs/bank_propensity.toml", tmp.path());
    let (header, rows) = read_plain_csv(Path::new(BANK_DATA), 40);
    for backend in ["ndarray", "flex"] {
        let checked = check_effects(&run, backend, (&header, &rows), 3, &odds);
        assert!(checked >= 40, "{backend}: {checked} reasons checked");
    }

    // Parquet output carries the same columns and values, an empty place as a null.
    let (csv_out, parquet_out) = (tmp.path().join("p.csv"), tmp.path().join("p.parquet"));
    for out in [&csv_out, &parquet_out] {
        let extra = ["--reasons", "2"];
        assert_ok(&predict_on(
            &run,
            Path::new(BANK_DATA),
            out,
            "ndarray",
            &extra,
        ));
    }
    let (scored, names) = common::read_parquet(&parquet_out);
    let (csv_header, csv_rows) = read_plain_csv(&csv_out, usize::MAX);
    assert_eq!(names, csv_header);
    assert_eq!(scored.height(), 4521);
    for i in 1..=2 {
        let reason = scored
            .column(&format!("reason_{i}"))
            .unwrap()
            .str()
            .unwrap();
        let effect = scored
            .column(&format!("reason_{i}_effect"))
            .unwrap()
            .f64()
            .unwrap();
        for (r, row) in csv_rows.iter().enumerate() {
            let (name, value) = (&row[1 + 2 * i], &row[2 + 2 * i]);
            match (reason.get(r), effect.get(r)) {
                (Some(n), Some(e)) => {
                    assert_eq!(n, name);
                    assert!((e - value.parse::<f64>().unwrap()).abs() < 1e-6);
                }
                (None, None) => assert!(name.is_empty() && value.is_empty(), "row {r}"),
                other => panic!("row {r}: {other:?}"),
            }
        }
    }

    // More reasons than input columns: one place per column (a cross of two columns is
    // not one).
    let out = tmp.path().join("all.csv");
    assert_ok(&predict_on(
        &run,
        Path::new(BANK_DATA),
        &out,
        "ndarray",
        &["--reasons", "500"],
    ));
    let columns = json(&run.join("preprocess.json"))["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] != "cross")
        .count();
    let (out_header, _) = read_plain_csv(&out, 0);
    assert_eq!(out_header.len(), 3 + 2 * columns);
}

#[test]
fn multiclass_reasons_use_the_predicted_class() {
    let tmp = tempfile::tempdir().unwrap();
    let run = common::train_contract(tmp.path(), 3, "");
    let labels: Vec<String> = json(&run.join("preprocess.json"))["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    let (header, rows) = read_plain_csv(Path::new(TELCO_DATA), 30);
    // customerID,prediction,p_<label>...: log-odds of the predicted class.
    let odds = |row: &[String], class: &str| {
        let k = labels.iter().position(|l| l == class).unwrap();
        logit(row[2 + k].parse().unwrap())
    };
    let checked = check_effects(&run, "flex", (&header, &rows), 2 + labels.len(), odds);
    assert!(checked >= 30, "{checked} reasons checked");
}

#[test]
fn text_reasons_are_the_fall_in_log_odds_without_the_word() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, odds) = binary_run("configs/feedback_sentiment_uci.toml", tmp.path());
    // Normalized already (lower case, words and spaces): the test can blank a word itself.
    let texts = [
        "the food was great and the staff were friendly",
        "terrible service and the food was cold",
        "i would not go back",
        "best phone i have ever had",
        "the battery died after a week",
        "love it love it",
        "waste of money",
        "it works",
    ];
    let o = common::predict_stdin(
        &run,
        (texts.join("\n") + "\n").as_bytes(),
        &["--reasons", "3"],
    );
    assert_ok(&o);
    let scored = data_rows(&common::stdout(&o));
    assert_eq!(scored.len(), texts.len());
    let mut variants = Vec::new();
    let mut expected = Vec::new();
    for (r, (text, row)) in texts.iter().zip(&scored).enumerate() {
        let reasons = reasons_of(row, 3);
        assert!(reasons.windows(2).all(|w| w[0].1 >= w[1].1), "{reasons:?}");
        for (word, effect) in reasons {
            assert!(
                text.split(' ').any(|w| w == word),
                "{word:?} is in {text:?}"
            );
            let without: Vec<&str> = text.split(' ').filter(|w| *w != word).collect();
            variants.push(without.join(" "));
            expected.push((r, word, effect));
        }
    }
    assert!(expected.len() >= texts.len(), "{expected:?}");
    let o = common::predict_stdin(&run, (variants.join("\n") + "\n").as_bytes(), &[]);
    assert_ok(&o);
    let rescored = data_rows(&common::stdout(&o));
    for ((r, word, effect), probe) in expected.iter().zip(&rescored) {
        let predicted = &scored[*r][2];
        let fall = odds(&scored[*r], predicted) - odds(probe, predicted);
        assert!(
            (fall - effect).abs() < 2e-3,
            "text {r}, {word:?}: effect {effect}, rescored fall {fall}"
        );
    }
}
