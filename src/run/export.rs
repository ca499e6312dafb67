//! Exporting a run's weights for other serving stacks.
//!
//! safetensors tensor names follow the module tree of [`crate::model::TabularMlp`]:
//! `embedding.weight` `[embedding_rows, embedding_dim]` (absent without categorical
//! columns), `layers.{i}.weight` `[in, out]` and `layers.{i}.bias` `[out]` for each hidden
//! layer, `output.weight` `[last_hidden, 1]` and `output.bias` `[1]`. Linear weights are
//! stored input-major as Burn keeps them (the transpose of PyTorch's `nn.Linear.weight`).
//! `text_bag` has `table` `[buckets, dim]` (the hashed n-gram embeddings; the hashing is in
//! `preprocess.json`) and the same `layers.*` / `output.*` head, with one output per class
//! for more than two classes; `text_transformer` follows Burn's module tree (`tokens`,
//! `positions`, `encoder.layers.{i}.*`, `norm`, `output`).
//! The file's metadata carries what a server needs around the network: the input layout,
//! the calibration and the decision threshold.
//!
//! `--format hf` writes a `text_encoder` run as a Hugging Face
//! `BertForSequenceClassification` directory (`config.json`, `model.safetensors`,
//! `tokenizer.json`, `tokenizer_config.json`) that `transformers` loads as it is; a
//! cross-validated run as one such directory per fold model (`fold-<k>/`) beside
//! `ensemble.json`, which names them and the rule that pools their logits.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use serde_json::json;

use crate::config::Pooling;
use crate::data::hf_tokenizer::PretrainedTokenizer;
use crate::data::preprocess::Tokenizer;
use crate::error::{PatronError, Result};
use crate::model::{Network, Pretrained};
use crate::run::{FileGroup, LoadedRun, is_empty_dir, load_run, publish_dir, write_atomic};

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Hugging Face safetensors.
    Safetensors,
    /// A Hugging Face `BertForSequenceClassification` directory (`text_encoder` runs; one
    /// per fold model of a cross-validated run).
    Hf,
}

/// Write the best weights of the run in `run_dir` to `output`; returns what was written
/// (`output`, or a cross-validated run's file per fold model).
pub fn export(run_dir: &Path, format: ExportFormat, output: &Path) -> Result<Vec<PathBuf>> {
    match format {
        ExportFormat::Safetensors => export_safetensors(run_dir, output),
        ExportFormat::Hf => export_hf(run_dir, output).map(|()| vec![output.to_path_buf()]),
    }
}

fn export_safetensors(run_dir: &Path, output: &Path) -> Result<Vec<PathBuf>> {
    // Weights are only copied out, so the CPU device is enough whatever trained them.
    let run = load_run(run_dir, &Device::flex())?;
    let spec = &run.manifest.model;
    let mut metadata = vec![
        ("patron_version", env!("CARGO_PKG_VERSION").to_string()),
        ("task", run.task.name().to_string()),
        ("model_kind", run.manifest.model_kind.clone()),
        ("numeric_width", spec.numeric_width.to_string()),
        ("categorical_count", spec.categorical_count.to_string()),
        ("embedding_dim", spec.embedding_dim.to_string()),
        ("labels", run.manifest.labels.join(",")),
        ("positive", run.manifest.positive.clone()),
        ("calibration_a", run.calibration.a.to_string()),
        ("calibration_b", run.calibration.b.to_string()),
        (
            "threshold",
            run.manifest.threshold.unwrap_or(0.5).to_string(),
        ),
    ];
    // A regression's outputs are in scaled units: how to turn them into the target's.
    if let Some(target) = &run.preprocess.regression {
        let json = serde_json::to_string(target)
            .map_err(|e| PatronError::Internal(format!("writing metadata: {e}")))?;
        metadata.push(("regression", json));
    }
    if output.is_dir() {
        return Err(PatronError::data(
            output,
            "is a directory; --output takes a file name such as model.safetensors",
        ));
    }
    let [model] = run.models.as_slice() else {
        return export_members(&run, output, metadata);
    };
    write_atomic(output, &model.to_safetensors(&metadata)?)?;
    Ok(vec![output.to_path_buf()])
}

/// A cross-validated run's fold models, one file each (`NAME.fold-<k>.EXT` beside
/// `output`), whose metadata names the member and the rule that pools them.
fn export_members(
    run: &LoadedRun,
    output: &Path,
    metadata: Vec<(&str, String)>,
) -> Result<Vec<PathBuf>> {
    let count = run.models.len();
    let stem = output
        .file_stem()
        .map_or("model".into(), |s| s.to_string_lossy().into_owned());
    let ext = output
        .extension()
        .map_or("safetensors".into(), |s| s.to_string_lossy().into_owned());
    let mut written = Vec::with_capacity(count);
    for (k, model) in run.models.iter().enumerate() {
        let mut meta = metadata.clone();
        meta.push(("ensemble_members", count.to_string()));
        meta.push(("ensemble_member", (k + 1).to_string()));
        meta.push(("ensemble_rule", run.task.pool().rule().to_string()));
        let path = output.with_file_name(format!("{stem}.fold-{}.{ext}", k + 1));
        write_atomic(&path, &model.to_safetensors(&meta)?)?;
        written.push(path);
    }
    Ok(written)
}

/// A directory's files: name and bytes.
type Files = Vec<(&'static str, Vec<u8>)>;

/// The run as a `transformers` model directory `output` (created; an existing non-empty
/// one is refused), published whole by [`publish_dir`]. A cross-validated run writes one
/// such directory per fold model (`fold-<k>/`) and `ensemble.json`, the rule that pools
/// them.
fn export_hf(run_dir: &Path, output: &Path) -> Result<()> {
    let run = load_run(run_dir, &Device::flex())?;
    let spec = &run.manifest.model;
    let encoders: Option<Vec<_>> = run
        .models
        .iter()
        .map(|m| match m {
            Network::Encoder(bert) => Some(bert),
            _ => None,
        })
        .collect();
    let (Some(text), Some(encoders)) = (&spec.text, encoders) else {
        return Err(PatronError::data(
            run_dir,
            format!(
                "is a {} run; --format hf exports text_encoder runs (use --format safetensors)",
                run.manifest.model_kind
            ),
        ));
    };
    let (Some(pretrained), Some(Tokenizer::Pretrained(tokenizer))) = (
        &text.pretrained,
        run.preprocess.text.as_ref().map(|t| &t.tokenizer),
    ) else {
        return Err(PatronError::checkpoint(
            run_dir.join("manifest.json"),
            "a text_encoder run without its pretrained shape or tokenizer: damaged run",
        ));
    };
    let exists = output.exists();
    if exists && !is_empty_dir(output)? {
        return Err(PatronError::data(
            output,
            "exists and is not an empty directory; give a new directory for --output",
        ));
    }
    let cls = text.pooling == Pooling::Cls;
    let tokenizer_config = pretty(&json!({
        "tokenizer_class": "BertTokenizer",
        "model_max_length": tokenizer.max_length(),
    }))?;
    let members = encoders.len();
    let rule = run.task.pool().rule();
    // One folder per member, `output` itself ("") for a single model.
    let mut dirs: Vec<(String, Files)> = Vec::with_capacity(members);
    for (k, bert) in encoders.iter().enumerate() {
        let mut config = hf_config(&run, pretrained, tokenizer, cls);
        let folder = if members > 1 {
            config["patron"]["ensemble"] =
                json!({"members": members, "member": k + 1, "rule": rule});
            format!("fold-{}", k + 1)
        } else {
            String::new()
        };
        let weights = bert.to_hf_safetensors(&[("format", "pt".to_string())])?;
        let files = vec![
            ("config.json", pretty(&config)?),
            ("model.safetensors", weights),
            ("tokenizer.json", tokenizer.json().as_bytes().to_vec()),
            ("tokenizer_config.json", tokenizer_config.clone()),
        ];
        dirs.push((folder, files));
    }
    let ensemble = (members > 1).then(|| {
        json!({
            "members": dirs.iter().map(|(folder, _)| folder.as_str()).collect::<Vec<_>>(),
            "rule": rule,
            "note": "pool the members' logits by this rule; the calibration and threshold in each member's config.json (\"patron\") apply to the pooled score",
        })
    });
    publish_dir(output, exists, |staging| {
        if let Some(ensemble) = &ensemble {
            let mut group = FileGroup::create(staging)?;
            group.write("ensemble.json", &pretty(ensemble)?)?;
            group.sync()?;
        }
        for (folder, files) in &dirs {
            let mut group = FileGroup::create(&staging.join(folder))?;
            for (file, bytes) in files {
                group.write(file, bytes)?;
            }
            group.sync()?;
        }
        Ok(())
    })
}

/// `config.json` of the exported model: the encoder's shape, the labels in logit order,
/// and under `patron` what `transformers` does not model (calibration, decision rule,
/// pooling).
fn hf_config(
    run: &crate::run::LoadedRun,
    pretrained: &Pretrained,
    tokenizer: &PretrainedTokenizer,
    cls: bool,
) -> serde_json::Value {
    let shape = &pretrained.shape;
    let m = &run.manifest;
    let labels: Vec<String> = match run.task.name() {
        // Two logits (0, z): index 1 is the positive class.
        "binary" => {
            let negative = m.labels.iter().find(|l| **l != m.positive);
            vec![negative.cloned().unwrap_or_default(), m.positive.clone()]
        }
        "regression" => vec![m.labels.first().cloned().unwrap_or_else(|| "value".into())],
        _ => m.labels.clone(),
    };
    let id2label: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), json!(l)))
        .collect();
    let label2id: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.clone(), json!(i)))
        .collect();
    let mut patron = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "task": run.task.name(),
        "pooling": if cls { "cls" } else { "mean" },
        "calibration": run.calibration,
        "threshold": m.threshold,
        "class_offsets": m.class_offsets,
        "pretrained_sha256": pretrained.sha256,
    });
    if !cls {
        patron["note"] = json!(
            "trained with mean pooling over the real tokens; BertForSequenceClassification pools [CLS] through the pooler, so its logits differ from patron's: pool the encoder's last hidden states yourself and apply `classifier`"
        );
    }
    if let Some(target) = &run.preprocess.regression {
        patron["regression"] = json!(target);
    }
    json!({
        "architectures": ["BertForSequenceClassification"],
        "model_type": "bert",
        "vocab_size": shape.vocab_size,
        "hidden_size": shape.hidden_size,
        "num_hidden_layers": shape.num_hidden_layers,
        "num_attention_heads": shape.num_attention_heads,
        "intermediate_size": shape.intermediate_size,
        "hidden_act": "gelu",
        "hidden_dropout_prob": shape.hidden_dropout_prob,
        "attention_probs_dropout_prob": shape.attention_probs_dropout_prob,
        "max_position_embeddings": shape.max_position_embeddings,
        "type_vocab_size": shape.type_vocab_size,
        "layer_norm_eps": shape.layer_norm_eps,
        "pad_token_id": tokenizer.pad_id(),
        "position_embedding_type": "absolute",
        "problem_type": if run.task.name() == "regression" {
            "regression"
        } else {
            "single_label_classification"
        },
        "num_labels": labels.len(),
        "id2label": id2label,
        "label2id": label2id,
        "patron": patron,
    })
}

fn pretty(value: &serde_json::Value) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value)
        .map_err(|e| PatronError::Internal(format!("writing JSON: {e}")))
}
