//! `text_encoder`: a pretrained BERT read from a Hugging Face model directory. The real
//! all-MiniLM-L6-v2 (fetched by scripts/fetch_minilm.sh; skipped with the reason where it is
//! absent) tokenizes and encodes as Python `tokenizers` and PyTorch + `transformers` do; the
//! tiny random BERT of tests/fixtures fine-tunes end to end through the command line.

mod common;

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use common::*;
use patron::data::hf_tokenizer::PretrainedTokenizer;
use patron::model::bert::{Bert, BertShape};
use patron::model::{Network, padded_ids};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter())
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn worst(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn to_vec(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// all-MiniLM-L6-v2: token ids of 54 texts equal Python `tokenizers`' (truncated to 128),
/// and the pooled outputs of 8 of them ([CLS] through the pooler, and the mean of the real
/// tokens) equal PyTorch + `transformers` within 1e-4.
#[test]
fn minilm_matches_python_tokenizers_and_transformers() {
    let dir = root().join("models/all-MiniLM-L6-v2");
    if !dir.join("model.safetensors").is_file() {
        println!(
            "skipped: {} is absent (scripts/fetch_minilm.sh fetches it)",
            dir.display()
        );
        return;
    }
    let expected = json(&root().join("tests/fixtures/minilm_expected.json"));
    let max_length = expected["max_length"].as_u64().unwrap() as usize;
    let tokenizer = PretrainedTokenizer::from_dir(&dir, max_length).unwrap();
    let texts = expected["texts"].as_array().unwrap();
    assert!(texts.len() >= 50);
    for (text, ids) in texts.iter().zip(expected["ids"].as_array().unwrap()) {
        let want: Vec<u32> = ids
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tokenizer.encode(text.as_str().unwrap()), want, "{text}");
    }

    let device = Device::flex();
    let shape = BertShape::read(&dir).unwrap();
    assert_eq!((shape.hidden_size, shape.num_hidden_layers), (384, 6));
    let batch: Vec<Vec<u32>> = texts[..8]
        .iter()
        .map(|t| tokenizer.encode(t.as_str().unwrap()))
        .collect();
    let refs: Vec<&[u32]> = batch.iter().map(Vec::as_slice).collect();
    for (cls, key) in [(true, "pooler_output"), (false, "mean_pooled")] {
        let mut bert = Bert::init(&shape, 2, 0.0, cls, &device);
        let sha = bert.load_pretrained(&dir).unwrap();
        assert_eq!(sha.len(), 64);
        let ids = padded_ids(&refs, 0, &device);
        let pad = ids.clone().equal_elem(0);
        let pooled = bert.pool(bert.encode(ids, pad.clone()), pad);
        let gap = worst(&to_vec(pooled), &floats(&expected[key]));
        assert!(gap < 1e-4, "{key} differs from transformers by {gap}");
    }
}

/// Reviews made of words the tiny fixture's vocabulary knows, labelled by their words.
fn tiny_reviews(dir: &Path, rows: usize) -> PathBuf {
    let good = ["great", "excellent", "love", "good", "fast"];
    let bad = ["terrible", "bad", "broke", "never", "meh"];
    let filler = ["the", "product", "delivery", "service", "quality", "price"];
    let mut out = String::from("review,label\n");
    let mut state = 7u64;
    let mut next = |n: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % n
    };
    for r in 0..rows {
        let positive = r % 2 == 0;
        let words = if positive { &good } else { &bad };
        let mut text = Vec::new();
        for _ in 0..(3 + next(5)) {
            text.push(filler[next(filler.len())]);
        }
        text.insert(next(text.len() + 1), words[next(words.len())]);
        let label = if positive { "positive" } else { "negative" };
        out.push_str(&format!("{},{label}\n", text.join(" ")));
    }
    let path = dir.join("reviews.csv");
    std::fs::write(&path, out).unwrap();
    path
}

/// A config fine-tuning the tiny fixture BERT on `data` for `epochs`, written into `dir`.
fn tiny_config(dir: &Path, data: &Path, epochs: usize) -> PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\npath = {:?}\ntext = \"review\"\ntarget = \"label\"\npositive = \"positive\"\n\
             [model]\nkind = \"text_encoder\"\npretrained = {:?}\nmax_length = 24\n\
             [train]\nepochs = {epochs}\nlearning_rate = 2e-3\n",
            data.display(),
            root().join("tests/fixtures/tiny_bert").display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn tiny_bert_fine_tunes_predicts_and_evaluates() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_reviews(tmp.path(), 600);
    let config = tiny_config(tmp.path(), &data, 8);
    let run = train_on(
        "flex",
        config.to_str().unwrap(),
        &tmp.path().join("run"),
        &[],
    );
    let manifest = json(&run.join("manifest.json"));
    assert_eq!(manifest["model_kind"], "text_encoder");
    let pretrained = &manifest["model"]["text"]["pretrained"];
    assert_eq!(pretrained["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(pretrained["shape"]["hidden_size"], 32);
    let resolved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(resolved.contains("schedule = \"linear\""), "{resolved}");
    assert!(resolved.contains("pooling = \"cls\""), "{resolved}");
    // The tokenizer travels in the run: scoring needs nothing from the model directory.
    let pre = json(&run.join("preprocess.json"));
    assert_eq!(pre["text"]["tokenizer"]["kind"], "pretrained");
    assert_eq!(pre["text"]["tokenizer"]["max_length"], 24);
    let report = json(&run.join("report.json"));
    let auc = report["metrics"]["auc_roc"].as_f64().unwrap();
    assert!(auc > 0.9, "the sentiment word decides the label: AUC {auc}");

    // A copy of the run without the fixture directory beside it still scores.
    let moved = tmp.path().join("moved");
    std::fs::rename(&run, &moved).unwrap();
    let out = tmp.path().join("p.csv");
    assert_ok(&predict_on(&moved, &data, &out, "flex", &[]));
    let (header, rows) = read_csv(&out);
    assert_eq!(header, ["row", "score", "prediction"]);
    assert_eq!(rows.len(), 600);
    let right = rows
        .iter()
        .enumerate()
        .filter(|(r, row)| (row[2] == "positive") == (r % 2 == 0))
        .count();
    assert!(right > 540, "{right} of 600 right");
    let o = predict_pipe(&moved, b"great product\nterrible delivery\n", "flex", &[]);
    assert_ok(&o);
    let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert!(
        lines[1].ends_with("positive") && lines[2].ends_with("negative"),
        "{lines:?}"
    );
    assert_ok(&evaluate_on(
        &moved,
        &data,
        Some(&tmp.path().join("eval")),
        "flex",
    ));

    // Exported for `transformers`: a BertForSequenceClassification directory.
    let hf = tmp.path().join("hf");
    let export = || common::export(&moved, "hf", &hf);
    assert_ok(&export());
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(hf.join(file).is_file(), "{file}");
    }
    let config = json(&hf.join("config.json"));
    assert_eq!(config["num_labels"], 2);
    assert_eq!(config["id2label"]["1"], "positive");
    assert_eq!(config["id2label"]["0"], "negative");
    assert_eq!(config["patron"]["pooling"], "cls");
    assert_eq!(config["num_hidden_layers"], 2);
    let o = export();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not an empty directory"),
        "{}",
        stderr(&o)
    );
    check_hf_logits(&moved, "model.bpk", &hf, tmp.path());
}

/// A 2-fold run exports one `transformers` directory per fold model beside `ensemble.json`;
/// each gives its own fold model's logits.
#[test]
fn a_cross_validated_encoder_exports_one_hf_directory_per_fold() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_reviews(tmp.path(), 120);
    let config = tiny_config(tmp.path(), &data, 1);
    let run = train_on(
        "flex",
        config.to_str().unwrap(),
        &tmp.path().join("run"),
        &["split.folds=2"],
    );
    let hf = tmp.path().join("hf");
    assert_ok(&common::export(&run, "hf", &hf));
    let ensemble = json(&hf.join("ensemble.json"));
    assert_eq!(ensemble["members"], serde_json::json!(["fold-1", "fold-2"]));
    assert!(ensemble["rule"].as_str().unwrap().contains("mean"));
    for k in 1..=2 {
        let member = hf.join(format!("fold-{k}"));
        let config = json(&member.join("config.json"));
        assert_eq!(config["patron"]["ensemble"]["member"], k);
        assert_eq!(config["patron"]["ensemble"]["members"], 2);
        assert!(member.join("tokenizer.json").is_file());
        check_hf_logits(&run, &format!("fold-{k}/model.bpk"), &member, tmp.path());
    }
}

/// The exported directory gives the logits of the run's weights file `weights` (relative
/// to the run) within 1e-4 in PyTorch + `transformers` (scripts/check_hf_export.py;
/// skipped with the reason where Python, torch or transformers is missing).
fn check_hf_logits(run: &Path, weights: &str, hf: &Path, tmp: &Path) {
    let texts = [
        "great product",
        "terrible delivery, never again",
        "the price the quality the service the delivery the product the price the quality \
         the service the delivery the product is great",
        "zebra quantum",
    ];
    let device = Device::flex();
    let manifest = patron::run::read_manifest(run).unwrap();
    let weights = run.join(weights);
    let bytes = std::fs::read(&weights).unwrap();
    let Network::Encoder(bert) = manifest.model.load(&device, bytes, &weights).unwrap() else {
        panic!("a text_encoder run loads as an encoder");
    };
    let tokenizer =
        PretrainedTokenizer::from_dir(&root().join("tests/fixtures/tiny_bert"), 24).unwrap();
    let ids: Vec<Vec<u32>> = texts.iter().map(|t| tokenizer.encode(t)).collect();
    assert!(ids[2].len() == 24, "one text is truncated");
    let refs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let z = to_vec(bert.forward(padded_ids(&refs, tokenizer.pad_id(), &device)));
    let logits: Vec<[f32; 2]> = z.iter().map(|&z| [0.0, z]).collect();
    let expected = tmp.join("expected_logits.json");
    std::fs::write(
        &expected,
        serde_json::json!({"texts": texts, "logits": logits}).to_string(),
    )
    .unwrap();
    let script = root().join("scripts/check_hf_export.py");
    let out = match std::process::Command::new("python3")
        .arg(&script)
        .arg(hf)
        .arg(&expected)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped the transformers check of the export: no python3 ({e})");
            return;
        }
    };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => eprintln!("{said}"),
        Some(3) => eprintln!("skipped the transformers check of the export: {said}"),
        _ => panic!("transformers disagrees with patron's logits: {said}"),
    }
}

/// `model.freeze_layers = 2` (all of the tiny BERT's layers): the embeddings and layers come
/// out of training exactly as pretrained, while the classifier learns.
#[test]
fn frozen_layers_keep_their_pretrained_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_reviews(tmp.path(), 200);
    let config = tiny_config(tmp.path(), &data, 2);
    let run = train_on(
        "flex",
        config.to_str().unwrap(),
        &tmp.path().join("run"),
        &["model.freeze_layers=2"],
    );
    let device = Device::flex();
    let manifest = patron::run::read_manifest(&run).unwrap();
    assert_eq!(manifest.model.text.as_ref().unwrap().freeze_layers, 2);
    let weights = run.join("model.bpk");
    let bytes = std::fs::read(&weights).unwrap();
    let Network::Encoder(trained) = manifest.model.load(&device, bytes, &weights).unwrap() else {
        panic!("a text_encoder run loads as an encoder");
    };
    let fixture = root().join("tests/fixtures/tiny_bert");
    let shape = BertShape::read(&fixture).unwrap();
    let mut pretrained = Bert::init(&shape, 1, 0.0, true, &device);
    pretrained.load_pretrained(&fixture).unwrap();
    let tokenizer = PretrainedTokenizer::from_dir(&fixture, 24).unwrap();
    let texts = [
        tokenizer.encode("great product"),
        tokenizer.encode("terrible delivery, never again"),
    ];
    let refs: Vec<&[u32]> = texts.iter().map(Vec::as_slice).collect();
    let ids = padded_ids(&refs, 0, &device);
    let pad = ids.clone().equal_elem(0);
    let states = |bert: &Bert| {
        let x = bert.encode(ids.clone(), pad.clone());
        let [b, l, h] = x.dims();
        to_vec(x.reshape([b * l, h]))
    };
    assert_eq!(states(&trained), states(&pretrained));
    // Freezing more layers than the model has is a config error.
    let args = train_args(
        "flex",
        config.to_str().unwrap(),
        &tmp.path().join("run2"),
        &["model.freeze_layers=3"],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = patron(&args);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("model.freeze_layers"), "{}", stderr(&o));
}

/// On wgpu (lavapipe in CI; skipped without an adapter) the encoder trains, and the same
/// weights score as on flex within 1e-4.
#[test]
fn tiny_bert_on_wgpu_scores_as_on_flex() {
    if !adapter_found() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Small: lavapipe runs attention slowly, and what is checked is the forward's agreement.
    let data = tiny_reviews(tmp.path(), 64);
    let config = tiny_config(tmp.path(), &data, 1);
    let run = train_on(
        "wgpu",
        config.to_str().unwrap(),
        &tmp.path().join("run"),
        &[],
    );
    let on = |backend: &str| {
        let out = tmp.path().join(format!("{backend}.csv"));
        assert_ok(&predict_on(&run, &data, &out, backend, &[]));
        scores(&out)
    };
    let (gpu, cpu) = (on("wgpu"), on("flex"));
    assert_eq!(gpu.len(), 64);
    let worst = gpu
        .iter()
        .zip(&cpu)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-4, "wgpu and flex scores differ by {worst}");
}

#[test]
fn bad_pretrained_directories_exit_2_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_reviews(tmp.path(), 40);
    let train = |pretrained: &Path| {
        let config = tmp.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[data]\npath = {:?}\ntext = \"review\"\ntarget = \"label\"\n\
                 [model]\nkind = \"text_encoder\"\npretrained = {:?}\n[train]\nepochs = 1\n",
                data.display(),
                pretrained.display()
            ),
        )
        .unwrap();
        let args = train_args(
            "flex",
            config.to_str().unwrap(),
            &tmp.path().join("run"),
            &[],
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        patron(&args)
    };
    let broken = tmp.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    let fixture = root().join("tests/fixtures/tiny_bert");
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(fixture.join(file), broken.join(file)).unwrap();
    }
    // Another architecture.
    let config = std::fs::read_to_string(fixture.join("config.json")).unwrap();
    std::fs::write(
        broken.join("config.json"),
        config.replace("\"bert\"", "\"gpt2\""),
    )
    .unwrap();
    let o = train(&broken);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!tmp.path().join("run").exists(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("config.json") && stderr(&o).contains("gpt2"),
        "{}",
        stderr(&o)
    );
    // A shape that does not match the weights.
    std::fs::write(
        broken.join("config.json"),
        config.replace("\"intermediate_size\": 64", "\"intermediate_size\": 48"),
    )
    .unwrap();
    let o = train(&broken);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!tmp.path().join("run").exists(), "{}", stderr(&o));
    assert!(stderr(&o).contains("model.safetensors"), "{}", stderr(&o));
    // No weights.
    std::fs::write(broken.join("config.json"), &config).unwrap();
    std::fs::remove_file(broken.join("model.safetensors")).unwrap();
    let o = train(&broken);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!tmp.path().join("run").exists(), "{}", stderr(&o));
    assert!(stderr(&o).contains("model.safetensors"), "{}", stderr(&o));
    // No directory at all.
    let o = train(&tmp.path().join("nowhere"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!tmp.path().join("run").exists());
}

/// A tiny-BERT run stopped after its first epoch (as Ctrl-C stops it) and resumed ends
/// exactly as the run that was never stopped, with parameter groups (head learning rate,
/// layer-wise decay, no weight decay on biases and LayerNorm) and accumulated batches in
/// the optimizer state it carries over.
#[test]
fn interrupted_tiny_bert_resumes_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_reviews(tmp.path(), 240);
    let config = tiny_config(tmp.path(), &data, 3);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "batch_size = 16\naccumulate = 2\nhead_learning_rate = 5e-3\nlayer_decay = 0.8\n\
         early_stopping = { metric = \"macro_f1\", patience = 0 }\n",
    );
    std::fs::write(&config, text).unwrap();
    let backend = patron::backend::select(patron::backend::BackendChoice::Flex).unwrap();
    let train = |dir: &str, stop: bool, resume: bool| {
        let dir = tmp.path().join(dir);
        let request = patron::train::TrainRequest {
            config: (!resume).then(|| patron::config::Config::resolve(&config, &[]).unwrap()),
            output_dir: Some(dir.clone()),
            resume: resume.then_some(dir),
            stop: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(stop)),
            ..patron::train::TrainRequest::default()
        };
        patron::train::train(&request, &backend, &patron::progress::Progress::new(true)).map(|_| ())
    };
    train("whole", false, false).unwrap();
    let err = train("split", true, false).unwrap_err();
    assert_eq!(err.exit_code(), 130, "{err}");
    train("split", false, true).unwrap();
    let whole = metrics_without_seconds(&tmp.path().join("whole"));
    assert_eq!(whole.len(), 4, "a header and three epochs: {whole:?}");
    assert_eq!(whole, metrics_without_seconds(&tmp.path().join("split")));
    let report = |dir: &str| std::fs::read(tmp.path().join(dir).join("report.json")).unwrap();
    assert!(report("whole") == report("split"), "the reports differ");
    let resolved = std::fs::read_to_string(tmp.path().join("whole/config.toml")).unwrap();
    assert!(resolved.contains("layer_decay = 0.8"), "{resolved}");
}
