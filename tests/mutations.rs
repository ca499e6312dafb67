//! Seeded mutation tests: thousands of randomly damaged configs, CSV files and run files
//! go through the parsers in-process, which must answer Ok or a typed error, never panic.
//! (They run on stable in CI; the coverage-guided targets in `fuzz/` need nightly.)

use std::path::Path;

use patron::config::Config;
use patron::data::binning::BinTarget;
use patron::data::preprocess::Preprocessor;
use patron::data::{ChunkReader, ReadOptions, read_table};
use patron::run::read_manifest;
use patron::score::drift::{self, DriftCounter, Profile};
use patron::task::labels::{fit_labels, target_values};

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Flip, insert, delete or duplicate a few bytes.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    const INTERESTING: &[u8] = b"\"',;=[]{}\n\r\t 0.-e\xff\xef\xbb\xbf#";
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(4) {
            0 if at < out.len() => out[at] = INTERESTING[rng.below(INTERESTING.len())],
            1 => out.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            2 if at < out.len() => {
                out.remove(at);
            }
            _ => {
                let end = (at + rng.below(16)).min(out.len());
                let chunk = out[at..end].to_vec();
                out.splice(at..at, chunk);
            }
        }
    }
    out
}

const CONFIG: &str = include_str!("../configs/bank_propensity.toml");

#[test]
fn mutated_configs_never_panic() {
    let mut rng = Rng(1);
    let mut errors = 0;
    for _ in 0..5000 {
        let bytes = mutate(&mut rng, CONFIG.as_bytes());
        let text = String::from_utf8_lossy(&bytes);
        let overrides = [
            format!("train.epochs={}", rng.below(5)),
            "model.hidden=[8]".to_string(),
        ];
        if Config::from_toml_str(&text, "fuzz.toml", &overrides).is_err() {
            errors += 1;
        }
    }
    println!("5000 mutated configs: {errors} rejected with an error, none panicked");
    assert!(errors > 0);
}

#[test]
fn mutated_csv_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let seed = b"age,job,balance,y\n30,admin,100,no\n41,\"tech, senior\",-5,yes\n52,,NA,no\n";
    let mut rng = Rng(2);
    let path = dir.path().join("m.csv");
    let config = Config::from_toml_str(
        "[data]\npath = \"m.csv\"\ntarget = \"y\"\nmissing_values = [\"NA\"]\n",
        "t",
        &[],
    )
    .unwrap();
    let mut mismatches = Vec::new();
    for _ in 0..1500 {
        let bytes = mutate(&mut rng, seed);
        std::fs::write(&path, &bytes).unwrap();
        let options = ReadOptions::new(b',', &["NA".to_string()]);
        // predict's chunked reader (one to three rows a chunk) takes the same files: Ok or
        // an error, and the same rows as the whole-file read when both succeed.
        let chunk_rows = 1 + rng.below(3);
        let chunked = read_chunks(&path, options.clone(), chunk_rows);
        let whole = read_table(&path, &options);
        if let (Ok(rows), Ok(table)) = (&chunked, &whole)
            && *rows != table.height()
        {
            mismatches.push(format!(
                "{:?}: {rows} vs {}",
                String::from_utf8_lossy(&bytes),
                table.height()
            ));
        }
        if let Ok(table) = whole {
            for name in table.column_names() {
                assert_eq!(table.cells(&name).map(|c| c.len()), Some(table.height()));
            }
            // The schema inference and preprocessing take whatever parsed.
            let Ok(labels) = fit_labels(&table, &config, &path) else {
                continue;
            };
            let train_rows: Vec<usize> = (0..table.height()).collect();
            let values = target_values(&table, &config, &labels);
            let target = BinTarget {
                values: &values,
                classes: labels.len(),
            };
            if let Ok((pre, _)) =
                Preprocessor::fit(&table, &train_rows, labels, target, &config, &path)
            {
                let encoded = pre.transform(&table, 0, &path).unwrap();
                assert_eq!(encoded.rows, table.height());
                assert!(encoded.numeric.iter().all(|x| x.is_finite()));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// Read `path` chunk by chunk as `predict` does; the rows read.
fn read_chunks(
    path: &Path,
    options: ReadOptions,
    chunk_rows: usize,
) -> patron::error::Result<usize> {
    let mut reader = ChunkReader::open(path, options, chunk_rows)?;
    let mut rows = 0;
    while let Some(chunk) = reader.next_chunk()? {
        rows += chunk.height();
    }
    Ok(rows)
}

#[test]
fn mutated_drift_profiles_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d.csv");
    let mut csv = String::from("x,c,y\n");
    for i in 0..60 {
        let x = if i % 7 == 0 {
            "NA".to_string()
        } else {
            (i * i % 37).to_string()
        };
        csv.push_str(&format!("{x},{},{}\n", ["a", "b", "c"][i % 3], i % 2));
    }
    std::fs::write(&data, csv).unwrap();
    let config = Config::from_toml_str(
        &format!("[data]\npath = {:?}\ntarget = \"y\"\n", data.display()),
        "c.toml",
        &[],
    )
    .unwrap();
    let table = read_table(&data, &ReadOptions::new(b',', &["NA".into()])).unwrap();
    let labels = fit_labels(&table, &config, &data).unwrap();
    let rows: Vec<usize> = (0..60).collect();
    let values = target_values(&table, &config, &labels);
    let target = BinTarget {
        values: &values,
        classes: labels.len(),
    };
    let (pre, _) = Preprocessor::fit(&table, &rows, labels, target, &config, &data).unwrap();
    let encoded = pre.transform(&table, 0, &data).unwrap();
    let scores: Vec<f64> = (0..60).map(|i| f64::from(i) / 60.0).collect();
    let predicted: Vec<usize> = (0..60).map(|i| i % 2).collect();
    let profile = drift::profile(&pre, &encoded, &rows, &scores, &predicted);
    let seed = serde_json::to_vec(&profile).unwrap();
    let mut rng = Rng(4);
    let (mut parsed, mut matched) = (0, 0);
    for _ in 0..3000 {
        let Ok(mutated) = serde_json::from_slice::<Profile>(&mutate(&mut rng, &seed)) else {
            continue;
        };
        parsed += 1;
        if mutated.matches(&pre).is_err() {
            continue;
        }
        matched += 1;
        let mut counter = DriftCounter::new(&mutated, &pre);
        counter.add(&encoded, &scores, &predicted);
        let report = counter.report();
        assert_eq!(report.rows, 60);
    }
    println!("3000 mutated profiles: {parsed} parsed, {matched} matched the run, none panicked");
    assert!(matched > 0, "some mutations keep a usable profile");
}

#[test]
fn mutated_manifests_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let seed = br#"{"format_version": 1, "patron_version": "0.1.0", "status": "complete", "model_kind": "tabular_mlp", "backend": "flex", "device": "cpu", "created": "2026", "dataset": {"path": "x", "sha256": "ab", "rows": 3}, "rows": {"train": 1, "valid": 1, "test": 1}, "features": [], "labels": ["a", "b"], "positive": "b", "threshold": 0.5, "best_epoch": 1, "epochs_run": 1, "training_seconds": 1.0, "model": {"numeric_width": 1, "categorical_count": 0, "embedding_rows": 0, "embedding_dim": 4, "hidden": [4], "dropout": 0.1}, "files": {}}"#;
    assert!(read_manifest(&run).is_err(), "no manifest yet");
    std::fs::write(run.join("manifest.json"), seed).unwrap();
    assert!(read_manifest(&run).is_ok(), "the seed manifest parses");
    let mut rng = Rng(3);
    for _ in 0..3000 {
        std::fs::write(run.join("manifest.json"), mutate(&mut rng, seed)).unwrap();
        let _ = read_manifest(Path::new(&run));
    }
}

#[test]
fn mutated_texts_never_panic_and_ids_stay_in_range() {
    use patron::data::text::{BagFeatures, SubwordVocab, bag_row, normalize, special};
    let seed = "Don't buy it!! 这本书很好，iPhone也不错 😀👍 ＧＲＥＡＴ ﬁne\t\n".as_bytes();
    let bag = BagFeatures {
        buckets: 1021,
        word_ngrams: 3,
        char_ngram_min: 2,
        char_ngram_max: 6,
        max_length: 64,
        once: true,
        char_weight: Some(0.5),
    };
    let mut rng = Rng(4);
    let mut texts = Vec::new();
    for _ in 0..3000 {
        let bytes = mutate(&mut rng, seed);
        let text = normalize(&String::from_utf8_lossy(&bytes));
        assert!(
            bag.ids(&text).iter().all(|&i| bag_row(i) < 1021),
            "{text:?}"
        );
        texts.push(text);
    }
    let vocab = SubwordVocab::fit(texts.iter().map(String::as_str), 300, 24);
    for text in &texts {
        let ids = vocab.encode(text);
        assert_eq!(ids[0], special::CLS);
        assert!(ids.len() <= 24 && ids.iter().all(|&i| (i as usize) < vocab.size()));
    }
}
