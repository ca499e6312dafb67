//! Reproducible splits: `split.export` writes the rows a run drew, and `split.column` takes
//! them back from the data, so a second tool (or a second run) uses exactly the same rows.

mod common;

use common::{json, train_on};

#[test]
fn an_exported_split_given_back_as_a_column_trains_the_same_run() {
    let tmp = tempfile::tempdir().unwrap();
    let exported = tmp.path().join("split.csv");
    let export = format!("split.export={}", exported.display());
    let drawn = train_on(
        "flex",
        "configs/bank_propensity.toml",
        &tmp.path().join("drawn"),
        &["train.epochs=3", &export],
    );
    let split = std::fs::read_to_string(&exported).unwrap();
    let mut lines = split.lines();
    assert_eq!(lines.next(), Some("row,split"));
    let parts: Vec<String> = lines
        .enumerate()
        .map(|(i, line)| {
            let (row, part) = line.split_once(',').unwrap();
            assert_eq!(row.parse::<usize>().unwrap(), i);
            part.to_string()
        })
        .collect();
    assert_eq!(parts.len(), 4521);
    let manifest = json(&drawn.join("manifest.json"));
    for (name, key) in [("train", "train"), ("valid", "valid"), ("test", "test")] {
        let rows = parts.iter().filter(|p| *p == name).count();
        assert_eq!(manifest["rows"][key], rows, "{name} rows");
    }

    // The same data with the split as a column: the same rows train, so the same run.
    let data = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("datasets/bank_marketing_uci_bank_4521.csv"),
    )
    .unwrap();
    let mut with_fold = String::new();
    for (i, line) in data.lines().enumerate() {
        let cell = if i == 0 { "fold" } else { &parts[i - 1] };
        with_fold.push_str(&format!("{line},{cell}\n"));
    }
    let path = tmp.path().join("bank_with_fold.csv");
    std::fs::write(&path, with_fold).unwrap();
    let given = train_on(
        "flex",
        "configs/bank_propensity.toml",
        &tmp.path().join("given"),
        &[
            "train.epochs=3",
            &format!("data.path={}", path.display()),
            "split.column=fold",
            // Any fractions: the column decides.
            "split.test=0.3",
        ],
    );
    let given_manifest = json(&given.join("manifest.json"));
    assert_eq!(given_manifest["rows"], manifest["rows"]);
    // The split column is not a feature.
    assert_eq!(given_manifest["features"], manifest["features"]);
    let (a, b) = (
        json(&drawn.join("report.json")),
        json(&given.join("report.json")),
    );
    assert_eq!(a["metrics"], b["metrics"]);
    assert_eq!(a["confusion_matrix"], b["confusion_matrix"]);
}
