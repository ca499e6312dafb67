//! Scoring with an exported run: batched logits, streaming `predict`, and `evaluate`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use polars::prelude::*;

use crate::calibration::sigmoid;
use crate::checkpoint::LoadedRun;
use crate::data::{ChunkReader, Format, read_table};
use crate::error::{PatronError, Result};
use crate::html_report::ReportPage;
use crate::model::{Inputs, ModelSpec, TabularMlp};
use crate::preprocess::Encoded;
use crate::report::{BinaryReport, segment_columns, with_segments};

/// Rows per forward pass when scoring.
pub const SCORE_BATCH: usize = 4096;

/// Logits of encoded rows, in batches of `batch` rows on `device` (no autodiff).
pub fn logits(
    model: &TabularMlp,
    spec: &ModelSpec,
    encoded: &Encoded,
    device: &Device,
    batch: usize,
) -> Result<Vec<f64>> {
    let inputs = Inputs::from_encoded(encoded, spec, device);
    let mut out = Vec::with_capacity(encoded.rows);
    let mut start = 0;
    while start < encoded.rows {
        let end = (start + batch.max(1)).min(encoded.rows);
        let z = model.forward(inputs.slice(start, end));
        let values = z
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| PatronError::Internal(format!("reading scores: {e:?}")))?;
        out.extend(values.into_iter().map(f64::from));
        start = end;
    }
    Ok(out)
}

/// Logits of encoded rows with a loaded run's model.
fn run_logits(run: &LoadedRun, encoded: &Encoded, device: &Device) -> Result<Vec<f64>> {
    logits(
        &run.model,
        &run.manifest.model,
        encoded,
        device,
        SCORE_BATCH,
    )
}

/// What `predict` did.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictSummary {
    /// Rows scored.
    pub rows: usize,
    /// Rows predicted positive.
    pub positives: usize,
}

/// Where predictions go.
enum Sink {
    Csv(BufWriter<Box<dyn Write>>),
    Parquet(Option<Box<polars::io::parquet::write::BatchedWriter<File>>>),
}

/// Score `input` chunk by chunk and write `output` (CSV or Parquet by extension; `-` is
/// CSV on stdout). A file output is written under a temporary name and renamed at the end.
pub fn predict(
    run: &LoadedRun,
    device: &Device,
    input: &Path,
    output: &Path,
    batch_size: usize,
) -> Result<PredictSummary> {
    let to_stdout = output == Path::new("-");
    if !to_stdout {
        refuse_same_file(input, output)?;
    }
    let pre = &run.preprocess;
    let mut reader = ChunkReader::open(input, pre.read_options(), batch_size)?;
    let id = pre.id.clone();
    let format = if to_stdout {
        Format::Csv
    } else {
        Format::of(output).map_err(|_| {
            PatronError::data(output, "unsupported output type: use .csv or .parquet")
        })?
    };
    let tmp = temp_name(output);
    let mut sink = if to_stdout {
        Sink::Csv(BufWriter::new(Box::new(std::io::stdout())))
    } else {
        let file = File::create(&tmp).map_err(|e| PatronError::io(output, e))?;
        match format {
            Format::Csv => Sink::Csv(BufWriter::with_capacity(1 << 20, Box::new(file))),
            Format::Parquet => {
                let schema = output_schema(id.as_deref());
                let writer = ParquetWriter::new(file)
                    .batched(&schema)
                    .map_err(|e| PatronError::data(output, format!("cannot write: {e}")))?;
                Sink::Parquet(Some(Box::new(writer)))
            }
        }
    };
    let result = (|| {
        let first_column = id.clone().unwrap_or_else(|| "row".into());
        if let Sink::Csv(w) = &mut sink {
            writeln!(w, "{},score,prediction", csv_field(&first_column))
                .map_err(|e| PatronError::io(output, e))?;
        }
        let threshold = run.manifest.threshold.unwrap_or(0.5);
        let mut summary = PredictSummary {
            rows: 0,
            positives: 0,
        };
        loop {
            let offset = reader.rows_read;
            let Some(chunk) = reader.next_chunk()? else {
                break;
            };
            let encoded = pre.transform(&chunk, offset, input)?;
            let z = run_logits(run, &encoded, device)?;
            let scores: Vec<f64> = z.iter().map(|&z| run.calibration.apply(z)).collect();
            let ids: Vec<String> = match &id {
                Some(col) => chunk
                    .cells(col)
                    .ok_or_else(|| {
                        PatronError::data(
                            input,
                            format!(
                                "id column {col:?} not found; the run's config names it as data.id"
                            ),
                        )
                    })?
                    .into_iter()
                    .map(|c| c.unwrap_or("").to_string())
                    .collect(),
                None => (offset..offset + chunk.height())
                    .map(|r| r.to_string())
                    .collect(),
            };
            let labels: Vec<&str> = scores
                .iter()
                .map(|&s| pre.labels[usize::from(s >= threshold)].as_str())
                .collect();
            summary.rows += scores.len();
            summary.positives += scores.iter().filter(|&&s| s >= threshold).count();
            match &mut sink {
                Sink::Csv(w) => {
                    for ((i, s), l) in ids.iter().zip(&scores).zip(&labels) {
                        writeln!(w, "{},{s:.6},{}", csv_field(i), csv_field(l))
                            .map_err(|e| PatronError::io(output, e))?;
                    }
                }
                Sink::Parquet(writer) => {
                    let first = if id.is_some() {
                        Column::new(first_column.as_str().into(), ids)
                    } else {
                        let rows: Vec<u64> =
                            (offset as u64..(offset + chunk.height()) as u64).collect();
                        Column::new(first_column.as_str().into(), rows)
                    };
                    let df = DataFrame::new_infer_height(vec![
                        first,
                        Column::new("score".into(), scores),
                        Column::new("prediction".into(), labels),
                    ])
                    .map_err(|e| PatronError::Internal(format!("building output: {e}")))?;
                    if let Some(w) = writer {
                        w.write_batch(&df)
                            .map_err(|e| PatronError::data(output, format!("cannot write: {e}")))?;
                    }
                }
            }
        }
        match &mut sink {
            Sink::Csv(w) => w.flush().map_err(|e| PatronError::io(output, e))?,
            Sink::Parquet(writer) => {
                if let Some(w) = writer.take() {
                    w.finish()
                        .map_err(|e| PatronError::data(output, format!("cannot write: {e}")))?;
                }
            }
        }
        Ok(summary)
    })();
    drop(sink);
    match result {
        Ok(summary) => {
            if !to_stdout {
                std::fs::rename(&tmp, output).map_err(|e| PatronError::io(output, e))?;
            }
            Ok(summary)
        }
        Err(e) => {
            if !to_stdout {
                let _ = std::fs::remove_file(&tmp);
            }
            Err(e)
        }
    }
}

fn output_schema(id: Option<&str>) -> Schema {
    let mut schema = Schema::default();
    match id {
        Some(name) => schema.insert(name.into(), DataType::String),
        None => schema.insert("row".into(), DataType::UInt64),
    };
    schema.insert("score".into(), DataType::Float64);
    schema.insert("prediction".into(), DataType::String);
    schema
}

/// A temporary sibling of `path`, renamed over it when complete.
fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Scoring must never overwrite its own input.
fn refuse_same_file(input: &Path, output: &Path) -> Result<()> {
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize())
        && a == b
    {
        return Err(PatronError::data(
            output,
            "is the input file; choose another --output",
        ));
    }
    if output.is_dir() {
        return Err(PatronError::data(
            output,
            "is a directory; --output takes a .csv or .parquet file name",
        ));
    }
    Ok(())
}

/// Quote a CSV field when it holds a separator, quote or line break.
fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// Score a labelled file with a run and write its reports into `out_dir`.
pub fn evaluate(
    run: &LoadedRun,
    device: &Device,
    device_name: &str,
    data: &Path,
    out_dir: &Path,
) -> Result<BinaryReport> {
    let pre = &run.preprocess;
    let table = read_table(data, &pre.read_options())?;
    if table.height() == 0 {
        return Err(PatronError::data(data, "has no data rows (only a header)"));
    }
    let labels = pre.encode_target(&table, data)?;
    let encoded = pre.transform(&table, 0, data)?;
    let z = run_logits(run, &encoded, device)?;
    let raw: Vec<f64> = z.iter().map(|&z| sigmoid(z)).collect();
    let probs: Vec<f64> = z.iter().map(|&z| run.calibration.apply(z)).collect();
    let threshold = run.manifest.threshold.unwrap_or(0.5);
    let segments = segment_columns(
        &table,
        &run.config.report.segments,
        &pre.read_options(),
        data,
        false,
    )?;
    let report = with_segments(
        BinaryReport::new(
            &probs,
            &raw,
            &labels,
            threshold,
            &run.manifest.positive,
            &data.display().to_string(),
        ),
        &segments,
        &probs,
        &labels,
    );
    std::fs::create_dir_all(out_dir).map_err(|e| PatronError::io(out_dir, e))?;
    let m = &run.manifest;
    let page = ReportPage {
        title: format!("Evaluation of {}", run.dir.display()),
        facts: vec![
            ("run".into(), run.dir.display().to_string()),
            ("model".into(), m.model_kind.clone()),
            ("evaluated file".into(), data.display().to_string()),
            (
                "trained on".into(),
                format!("{} ({} rows)", m.dataset.path, m.dataset.rows),
            ),
            ("scored on".into(), device_name.to_string()),
            ("patron".into(), env!("CARGO_PKG_VERSION").into()),
        ],
        probs: &probs,
        uncalibrated: &raw,
        labels: &labels,
        history: &[],
        importance: &[],
    };
    report.write(out_dir, &page)?;
    Ok(report)
}
