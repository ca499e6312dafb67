//! `patron drift`: the training profile a run saves, and the PSI of new data against it.

mod common;

use std::path::Path;

use common::{assert_ok, drift_on, json, stderr, stdout, train_on};

const BANK_DATA: &str = "datasets/bank_marketing_uci_bank_4521.csv";

/// `name -> (psi, verdict)` of a drift.json.
fn columns(report: &serde_json::Value) -> Vec<(String, f64, String)> {
    report["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["psi"].as_f64().unwrap(),
                c["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn shifted_columns_stand_out_and_the_training_data_is_stable() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train_on(
        "ndarray",
        "configs/bank_propensity.toml",
        &tmp.path().join("run"),
        &["train.epochs=2"],
    );
    // The profile is part of the exported run, hashed in the manifest.
    let manifest = json(&run.join("manifest.json"));
    assert!(manifest["files"]["profile.json"].is_string(), "{manifest}");
    let profile = json(&run.join("profile.json"));
    let features = json(&run.join("preprocess.json"))["features"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(profile["features"].as_array().unwrap().len(), features);
    for column in profile["features"].as_array().unwrap() {
        let shares: f64 = common::numbers(&column["shares"]).iter().sum();
        assert!((shares - 1.0).abs() < 1e-9, "{column}");
    }

    // The data it was trained on: every column stable.
    let same = tmp.path().join("same");
    let o = drift_on(&run, Path::new(BANK_DATA), &same);
    assert_ok(&o);
    let report = json(&same.join("drift.json"));
    assert_eq!(report["rows"], 4521);
    let all = columns(&report);
    assert_eq!(all.len(), features);
    assert!(
        all.iter().all(|(_, psi, v)| *psi < 0.1 && v == "stable"),
        "{all:?}"
    );
    assert!(report["score"]["psi"].as_f64().unwrap() < 0.1);
    assert!(
        stdout(&o).starts_with("4521 rows against"),
        "{}",
        stdout(&o)
    );
    assert_eq!(stdout(&o).lines().last().unwrap(), same.to_str().unwrap());
    assert!(same.join("drift.md").is_file());

    // Customers 15 years older, half of them reached on a new channel: those two columns
    // lead with major shifts; the others stay stable.
    let text = std::fs::read_to_string(BANK_DATA).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let (age, contact) = (
        header.iter().position(|h| *h == "age").unwrap(),
        header.iter().position(|h| *h == "contact").unwrap(),
    );
    let mut shifted = vec![header.join(",")];
    for (i, line) in lines.enumerate() {
        let mut cells: Vec<String> = line.split(',').map(str::to_string).collect();
        cells[age] = (cells[age].parse::<u32>().unwrap() + 15).to_string();
        if i % 2 == 0 {
            cells[contact] = "whatsapp".into();
        }
        shifted.push(cells.join(","));
    }
    let shifted_csv = tmp.path().join("shifted.csv");
    std::fs::write(&shifted_csv, shifted.join("\n") + "\n").unwrap();
    let moved = tmp.path().join("moved");
    assert_ok(&drift_on(&run, &shifted_csv, &moved));
    let all = columns(&json(&moved.join("drift.json")));
    let mut top: Vec<&str> = all[..2].iter().map(|(n, _, _)| n.as_str()).collect();
    top.sort();
    assert_eq!(top, ["age", "contact"], "{all:?}");
    assert!(
        all[..2]
            .iter()
            .all(|(_, psi, v)| *psi > 0.25 && v == "major shift")
    );
    assert!(all[2..].iter().all(|(_, psi, _)| *psi < 0.1), "{all:?}");
    // Buckets in the column's own units: ages in years, categories by name.
    let report = json(&moved.join("drift.json"));
    let age_column = common::named(&report["features"], "age");
    let buckets = age_column["buckets"].as_array().unwrap();
    assert_eq!(buckets.last().unwrap(), "missing");
    let first: f64 = buckets[0].as_str().unwrap()[3..].parse().unwrap();
    assert!((18.0..40.0).contains(&first), "{buckets:?}");
    assert_eq!(
        age_column["training"].as_array().unwrap().len(),
        buckets.len()
    );
    // The ages past the training range (read as its oldest age), counted as the file has them.
    let range = common::numbers(&age_column["training_range"]);
    let outside = shifted[1..]
        .iter()
        .map(|l| l.split(',').nth(age).unwrap().parse::<f64>().unwrap())
        .filter(|&a| a < range[0] || a > range[1])
        .count();
    assert!(outside > 20, "{outside} of {range:?}");
    let share = age_column["past_range"].as_f64().unwrap();
    assert!((share - outside as f64 / 4521.0).abs() < 1e-12, "{share}");
    let contact_column = common::named(&report["features"], "contact");
    assert!(
        contact_column.get("past_range").is_none(),
        "{contact_column}"
    );
    let md = std::fs::read_to_string(moved.join("drift.md")).unwrap();
    let row = format!(
        "| {outside} ({:.2} %) of {} to {} |",
        100.0 * share,
        range[0],
        range[1]
    );
    assert!(md.contains(&row), "{row} not in {md}");
    // The page for people: self-contained, its charts valid SVG, the moved columns drawn.
    let html = std::fs::read_to_string(moved.join("drift.html")).unwrap();
    common::check_self_contained(&html);
    assert!(common::check_svgs(&html) >= 3);
    assert!(html.contains("contact (PSI") && html.contains("(missing or unseen)"));

    // A damaged profile is refused; a run without one says how to get one.
    let profile_path = run.join("profile.json");
    let saved = std::fs::read(&profile_path).unwrap();
    std::fs::write(&profile_path, b"{}").unwrap();
    let o = drift_on(&run, Path::new(BANK_DATA), &tmp.path().join("damaged"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("does not match the SHA-256"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&profile_path, &saved).unwrap();
    // A profile of other columns (its hash updated, as a hand edit would) is refused too.
    let mut other = json(&profile_path);
    other["features"][0]["name"] = "tenure".into();
    let other = other.to_string();
    std::fs::write(&profile_path, &other).unwrap();
    let mut manifest = json(&run.join("manifest.json"));
    manifest["files"]["profile.json"] = patron::run::sha256_hex(other.as_bytes()).into();
    std::fs::write(run.join("manifest.json"), manifest.to_string()).unwrap();
    let o = drift_on(&run, Path::new(BANK_DATA), &tmp.path().join("other"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("but the run reads"), "{}", stderr(&o));
    assert!(!tmp.path().join("other").exists(), "no report is written");
    std::fs::write(&profile_path, saved).unwrap();
    let mut manifest = json(&run.join("manifest.json"));
    manifest["files"]
        .as_object_mut()
        .unwrap()
        .remove("profile.json");
    std::fs::write(run.join("manifest.json"), manifest.to_string()).unwrap();
    let o = drift_on(&run, Path::new(BANK_DATA), &tmp.path().join("old"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("has no profile.json"), "{}", stderr(&o));
}

#[test]
fn a_text_run_checks_its_scores_and_text_lengths() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train_on(
        "ndarray",
        "configs/feedback_sentiment_uci.toml",
        &tmp.path().join("run"),
        &["train.epochs=2"],
    );
    let data = "datasets/uci_sentiment_labelled_sentences_3000.csv";
    let out = tmp.path().join("drift");
    assert_ok(&drift_on(&run, Path::new(data), &out));
    let report = json(&out.join("drift.json"));
    assert_eq!(report["rows"], 3000);
    assert_eq!(report["score"]["name"], "score");
    assert!(report["score"]["psi"].as_f64().unwrap() < 0.1, "{report}");
    let all = columns(&report);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0, "tokens per text");
    assert!(all[0].1 < 0.1, "{all:?}");

    // Texts cut to their first word: much shorter, a major shift.
    let short: Vec<String> = std::fs::read_to_string(data)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            // source,label,class,text: the text's first word.
            let text = l.splitn(4, ',').nth(3).unwrap_or("");
            let word = text.trim_matches('"').split_whitespace().next();
            word.unwrap_or("").to_string()
        })
        .collect();
    let mut stdin_text = short.join("\n");
    stdin_text.push('\n');
    let short_file = tmp.path().join("short.txt");
    std::fs::write(&short_file, stdin_text).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_patron"))
        .args([
            "drift",
            "--checkpoint",
            run.to_str().unwrap(),
            "--data",
            "-",
        ])
        .args(["--backend", "ndarray"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(std::fs::File::open(&short_file).unwrap())
        .output()
        .unwrap();
    assert_ok(&o);
    let stdin_report = json(&run.join("drift-stdin").join("drift.json"));
    let all = columns(&stdin_report);
    assert_eq!(all[0].0, "tokens per text");
    assert!(all[0].1 > 0.25 && all[0].2 == "major shift", "{all:?}");
}
