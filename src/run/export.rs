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

use std::path::Path;

use burn::tensor::Device;

use crate::error::{PatronError, Result};
use crate::run::{load_run, write_atomic};

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Hugging Face safetensors.
    Safetensors,
}

/// Write the best weights of the run in `run_dir` to `output`.
pub fn export(run_dir: &Path, format: ExportFormat, output: &Path) -> Result<()> {
    match format {
        ExportFormat::Safetensors => export_safetensors(run_dir, output),
    }
}

fn export_safetensors(run_dir: &Path, output: &Path) -> Result<()> {
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
    let bytes = run.model.to_safetensors(&metadata)?;
    if output.is_dir() {
        return Err(PatronError::data(
            output,
            "is a directory; --output takes a file name such as model.safetensors",
        ));
    }
    write_atomic(output, &bytes)
}
