//! The predictions file `patron predict` writes: its columns, as CSV (a file or standard
//! output), Parquet or Arrow (a file or standard output), written chunk by chunk under a
//! temporary name and renamed over the output only when complete.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use polars::io::parquet::write::BatchedWriter;
use polars::prelude::*;
use polars_arrow::array::{Array, PrimitiveArray, Utf8Array};
use polars_arrow::datatypes::ArrowDataType;

use crate::data::Format;
use crate::data::arrow::{ArrowTarget, ArrowWriter};
use crate::error::{PatronError, Result};
use crate::score::reasons::Reason;
use crate::task::OutputColumn;

/// One scored chunk of input rows.
pub struct ScoredChunk<'a> {
    /// 0-based index of the chunk's first row in the input.
    pub offset: usize,
    /// The id column's values, when the run names one (else rows are numbered).
    pub ids: Option<Vec<String>>,
    /// The kept input columns' values, one list per [`Layout::kept`] column (`None`: a
    /// missing cell).
    pub kept: Vec<Vec<Option<String>>>,
    /// The id column (when the run names one) and then the kept columns as the input
    /// typed them (Parquet and Arrow input; `None` for text), for Arrow output.
    pub typed: Vec<Option<&'a Column>>,
    /// Probabilities: one per row for two classes, else one per class, row-major.
    pub scores: Vec<f64>,
    /// The predicted label of each row.
    pub labels: Vec<&'a str>,
    /// Each row's reasons (column name, effect; `None`: an empty place), as many per row
    /// as the writer was created with; empty without reasons.
    pub reasons: Vec<Reason<'a>>,
}

/// The columns of a predictions file: the id (or `row`, the 0-based input row), the kept
/// input columns, then the task's columns (`score,prediction` for two classes, or
/// `prediction` and one `p_<label>` per class), then `reason_<i>,reason_<i>_effect` for
/// each reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// The run's id column (`None`: rows are numbered in a `row` column).
    pub id: Option<String>,
    /// Input columns copied through as text (`predict --keep`).
    pub kept: Vec<String>,
    /// The task's columns: its prediction and its scores, in file order.
    pub outputs: Vec<OutputColumn>,
    /// Reasons per row.
    pub reasons: usize,
}

impl Layout {
    /// Column names and their Parquet types, in file order.
    pub fn columns(&self) -> Vec<(String, DataType)> {
        let mut columns = vec![match &self.id {
            Some(name) => (name.clone(), DataType::String),
            None => ("row".to_string(), DataType::UInt64),
        }];
        columns.extend(self.kept.iter().map(|c| (c.clone(), DataType::String)));
        columns.extend(self.outputs.iter().map(|c| match c {
            OutputColumn::Prediction => ("prediction".to_string(), DataType::String),
            OutputColumn::Score(name) => (name.clone(), DataType::Float64),
        }));
        for i in 1..=self.reasons {
            columns.push((format!("reason_{i}"), DataType::String));
            columns.push((format!("reason_{i}_effect"), DataType::Float64));
        }
        columns
    }

    /// The id (when the run names one) and kept columns: the input columns copied out.
    pub fn input_columns(&self) -> impl Iterator<Item = &str> {
        self.id.iter().chain(&self.kept).map(String::as_str)
    }

    /// Column names and their Arrow types, in file order: the id and kept columns keep
    /// their `input` type where it is a number, boolean, date or timestamp (else utf8),
    /// `row` is int64, scores and effects float64, labels and reasons utf8.
    pub fn arrow_columns(&self, input: Option<&Schema>) -> Vec<(String, ArrowDataType)> {
        let kept_type = |name: &str| match input.and_then(|s| s.get(name)) {
            Some(dtype)
                if dtype.is_primitive_numeric()
                    || matches!(
                        dtype,
                        DataType::Boolean | DataType::Date | DataType::Datetime(..)
                    ) =>
            {
                dtype.to_arrow(CompatLevel::oldest())
            }
            _ => ArrowDataType::Utf8,
        };
        self.columns()
            .into_iter()
            .enumerate()
            .map(|(i, (name, dtype))| {
                let arrow = if i == 0 && self.id.is_none() {
                    ArrowDataType::Int64
                } else if i <= self.kept.len() {
                    kept_type(&name)
                } else if dtype == DataType::String {
                    ArrowDataType::Utf8
                } else {
                    ArrowDataType::Float64
                };
                (name, arrow)
            })
            .collect()
    }

    /// Scores per row: the number of score columns.
    fn score_width(&self) -> usize {
        self.outputs
            .iter()
            .filter(|c| matches!(c, OutputColumn::Score(_)))
            .count()
    }

    /// A kept column must not repeat another column's name: readers would see one of
    /// them only.
    fn check(&self, output: &Path) -> Result<()> {
        let columns = self.columns();
        for (i, (name, _)) in columns.iter().enumerate() {
            if columns[..i].iter().any(|(earlier, _)| earlier == name) {
                return Err(PatronError::data(
                    output,
                    format!(
                        "would have two columns named {name:?}; --keep only input columns the predictions do not already have"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A predictions file being written.
pub struct PredictionWriter {
    /// `None` once finished.
    sink: Option<Sink>,
    /// The final name (`-`: standard output).
    output: PathBuf,
    /// Where a file output is written until [`PredictionWriter::finish`] renames it.
    tmp: Option<PathBuf>,
    layout: Layout,
}

/// The open output: buffered CSV, Parquet written one row group per chunk, or Arrow one
/// record batch per chunk.
enum Sink {
    Csv(BufWriter<Box<dyn Write>>),
    Parquet(Box<BatchedWriter<File>>),
    Arrow(Box<ArrowWriter>),
}

impl PredictionWriter {
    /// Start `output` with the columns of `layout`, in `format` or else by its extension
    /// (`-`: standard output, CSV unless told). `input` is the input's typed schema, where
    /// it has one: Arrow output keeps the id and kept columns' types.
    pub fn create(
        output: &Path,
        format: Option<Format>,
        layout: &Layout,
        input: Option<&Schema>,
    ) -> Result<PredictionWriter> {
        layout.check(output)?;
        let to_stdout = output == Path::new("-");
        let format = if to_stdout {
            format.unwrap_or(Format::Csv)
        } else {
            let by_name = match Format::of(output) {
                Ok(Format::Spreadsheet) | Err(_) => return Err(not_written(output)),
                Ok(format) => format,
            };
            match format {
                Some(told) if told != by_name => {
                    return Err(PatronError::Usage(format!(
                        "{}: --output-format {} does not match the file's extension; name the output .{}",
                        output.display(),
                        format_name(told),
                        format_name(told)
                    )));
                }
                _ => by_name,
            }
        };
        let arrow_columns = || layout.arrow_columns(input);
        let (sink, tmp) = if to_stdout {
            let stdout: Box<dyn Write> = Box::new(std::io::stdout());
            let sink = match format {
                Format::Csv => Sink::Csv(BufWriter::new(stdout)),
                Format::Arrow => Sink::Arrow(Box::new(
                    ArrowWriter::create(ArrowTarget::Stream(stdout), arrow_columns())
                        .map_err(|e| PatronError::data(output, e.to_string()))?,
                )),
                Format::Parquet => {
                    return Err(PatronError::Usage(
                        "Parquet cannot be written to standard output; give a .parquet file, or --output-format csv or arrow".into(),
                    ));
                }
                Format::Spreadsheet => return Err(not_written(output)),
            };
            (sink, None)
        } else {
            let tmp = temp_name(output);
            let file = File::create(&tmp).map_err(|e| PatronError::io(output, e))?;
            let sink = match format {
                Format::Spreadsheet => Err(not_written(output)),
                Format::Csv => Ok(Sink::Csv(BufWriter::with_capacity(1 << 20, Box::new(file)))),
                Format::Arrow => {
                    let stream = output
                        .extension()
                        .is_some_and(|e| e.eq_ignore_ascii_case("arrows"));
                    let target = if stream {
                        ArrowTarget::Stream(Box::new(file))
                    } else {
                        ArrowTarget::File(file)
                    };
                    ArrowWriter::create(target, arrow_columns())
                        .map(|w| Sink::Arrow(Box::new(w)))
                        .map_err(|e| PatronError::data(output, e.to_string()))
                }
                Format::Parquet => ParquetWriter::new(file)
                    .batched(&Schema::from_iter(
                        layout
                            .columns()
                            .into_iter()
                            .map(|(name, dtype)| Field::new(name.into(), dtype)),
                    ))
                    .map(|w| Sink::Parquet(Box::new(w)))
                    .map_err(|e| PatronError::data(output, format!("cannot write: {e}"))),
            };
            match sink {
                Ok(sink) => (sink, Some(tmp)),
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
            }
        };
        let mut writer = PredictionWriter {
            sink: Some(sink),
            output: output.to_path_buf(),
            tmp,
            layout: layout.clone(),
        };
        if let Some(Sink::Csv(w)) = &mut writer.sink {
            let names: Vec<String> = layout
                .columns()
                .iter()
                .map(|(name, _)| csv_field(name).into_owned())
                .collect();
            writeln!(w, "{}", names.join(",")).map_err(|e| PatronError::io(output, e))?;
        }
        Ok(writer)
    }

    /// Append one chunk's rows.
    pub fn write(&mut self, chunk: ScoredChunk) -> Result<()> {
        let ScoredChunk {
            offset,
            ids,
            kept,
            typed,
            scores,
            labels,
            reasons,
        } = chunk;
        let per_row = self.layout.reasons;
        // Scores per row: one per score column, in their order.
        let width = self.layout.score_width();
        // A regression decides no label: the scores count the rows.
        let rows = scores.len() / width.max(1);
        let sink = self.sink.as_mut().expect("written before finish");
        match sink {
            Sink::Csv(w) => {
                for r in 0..rows {
                    let label = labels.get(r).copied().unwrap_or("");
                    let id = match &ids {
                        Some(ids) => csv_field(&ids[r]),
                        None => Cow::Owned((offset + r).to_string()),
                    };
                    let written = write!(w, "{id}").and_then(|()| {
                        for column in &kept {
                            write!(w, ",{}", csv_field(column[r].as_deref().unwrap_or("")))?;
                        }
                        let label = csv_field(label);
                        let mut j = 0;
                        for column in &self.layout.outputs {
                            match column {
                                OutputColumn::Prediction => write!(w, ",{label}")?,
                                OutputColumn::Score(_) => {
                                    write!(w, ",{:.6}", scores[r * width + j])?;
                                    j += 1;
                                }
                            }
                        }
                        for reason in &reasons[r * per_row..(r + 1) * per_row] {
                            match reason {
                                Some((name, effect)) => {
                                    write!(w, ",{},{effect:.6}", csv_field(name))?
                                }
                                None => write!(w, ",,")?,
                            }
                        }
                        writeln!(w)
                    });
                    written.map_err(|e| PatronError::io(&self.output, e))?;
                }
                Ok(())
            }
            Sink::Parquet(w) => {
                // Built in the layout's order and named from it.
                let mut columns = vec![match ids {
                    Some(ids) => Column::new(PlSmallStr::EMPTY, ids),
                    None => {
                        let rows = offset as u64..(offset + rows) as u64;
                        Column::new(PlSmallStr::EMPTY, rows.collect::<Vec<u64>>())
                    }
                }];
                columns.extend(kept.into_iter().map(|c| Column::new(PlSmallStr::EMPTY, c)));
                let mut labels = Some(labels);
                let mut j = 0;
                for column in &self.layout.outputs {
                    match column {
                        OutputColumn::Prediction => columns.push(Column::new(
                            PlSmallStr::EMPTY,
                            labels.take().unwrap_or_default(),
                        )),
                        OutputColumn::Score(_) => {
                            let p: Vec<f64> =
                                scores.chunks_exact(width).map(|row| row[j]).collect();
                            columns.push(Column::new(PlSmallStr::EMPTY, p));
                            j += 1;
                        }
                    }
                }
                for i in 0..per_row {
                    let (names, effects) = reason_columns(&reasons, per_row, i);
                    columns.push(Column::new(PlSmallStr::EMPTY, names));
                    columns.push(Column::new(PlSmallStr::EMPTY, effects));
                }
                for (column, (name, _)) in columns.iter_mut().zip(self.layout.columns()) {
                    column.rename(name.into());
                }
                let df = DataFrame::new_infer_height(columns)
                    .map_err(|e| PatronError::Internal(format!("building output: {e}")))?;
                w.write_batch(&df)
                    .map_err(|e| PatronError::data(&self.output, format!("cannot write: {e}")))
            }
            Sink::Arrow(w) => {
                // The id/row column, then the kept ones: their types were fixed with the
                // schema.
                let types: Vec<ArrowDataType> = w.types().take(1 + kept.len()).cloned().collect();
                let mut typed = typed.into_iter();
                let mut arrays: Vec<Box<dyn Array>> = Vec::with_capacity(types.len());
                arrays.push(match &ids {
                    Some(ids) => input_array(
                        typed.next().flatten(),
                        &mut ids.iter().map(|s| Some(s.as_str())),
                        &types[0],
                        rows,
                    )?,
                    None => {
                        let rows = (offset..offset + rows).map(|r| r as i64).collect();
                        PrimitiveArray::<i64>::from_vec(rows).boxed()
                    }
                });
                for (column, dtype) in kept.iter().zip(&types[1..]) {
                    arrays.push(input_array(
                        typed.next().flatten(),
                        &mut column.iter().map(|c| c.as_deref()),
                        dtype,
                        rows,
                    )?);
                }
                let mut j = 0;
                for column in &self.layout.outputs {
                    arrays.push(match column {
                        OutputColumn::Prediction => Utf8Array::<i32>::from_slice(&labels).boxed(),
                        OutputColumn::Score(_) => {
                            let p = scores.chunks_exact(width).map(|row| row[j]).collect();
                            j += 1;
                            PrimitiveArray::<f64>::from_vec(p).boxed()
                        }
                    });
                }
                for i in 0..per_row {
                    let (names, effects) = reason_columns(&reasons, per_row, i);
                    arrays.push(Utf8Array::<i32>::from(names).boxed());
                    arrays.push(PrimitiveArray::<f64>::from(effects).boxed());
                }
                w.write(rows, arrays)
                    .map_err(|e| PatronError::data(&self.output, e.to_string()))
            }
        }
    }

    /// Flush and close the file, then rename it over the output.
    pub fn finish(mut self) -> Result<()> {
        match self.sink.take() {
            Some(Sink::Csv(mut w)) => w.flush().map_err(|e| PatronError::io(&self.output, e))?,
            Some(Sink::Parquet(w)) => {
                w.finish()
                    .map_err(|e| PatronError::data(&self.output, format!("cannot write: {e}")))?;
            }
            Some(Sink::Arrow(w)) => w
                .finish()
                .map_err(|e| PatronError::data(&self.output, e.to_string()))?,
            None => {}
        }
        if let Some(tmp) = self.tmp.take() {
            std::fs::rename(&tmp, &self.output).map_err(|e| PatronError::io(&self.output, e))?;
        }
        Ok(())
    }
}

impl Drop for PredictionWriter {
    /// An unfinished file (an error stopped the scoring) is removed, never left behind.
    fn drop(&mut self) {
        // Closed first: the file must not be written to after its removal.
        self.sink = None;
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// The `i`-th reason of every row as two columns: the input column (or word) and its
/// effect (`None` where a row has fewer reasons).
fn reason_columns<'a>(
    reasons: &'a [Reason],
    per_row: usize,
    i: usize,
) -> (Vec<Option<&'a str>>, Vec<Option<f64>>) {
    reasons
        .iter()
        .skip(i)
        .step_by(per_row)
        .map(|reason| match reason {
            Some((name, effect)) => (Some(&**name), Some(*effect)),
            None => (None, None),
        })
        .unzip()
}

/// A copied input column as an Arrow array of `dtype`: its typed values where the output
/// keeps its type, else its text.
fn input_array(
    typed: Option<&Column>,
    text: &mut dyn Iterator<Item = Option<&str>>,
    dtype: &ArrowDataType,
    rows: usize,
) -> Result<Box<dyn Array>> {
    let array = match typed {
        Some(column) if *dtype != ArrowDataType::Utf8 => {
            let series = column
                .as_materialized_series()
                .cast(&DataType::from_arrow_dtype(dtype))
                .map_err(|e| PatronError::Internal(format!("typing an Arrow column: {e}")))?
                .rechunk();
            series.to_arrow(0, CompatLevel::oldest())
        }
        Some(column) if column.dtype() == &DataType::String => {
            let strings = column
                .str()
                .map_err(|e| PatronError::Internal(format!("reading a text column: {e}")))?;
            Utf8Array::<i32>::from_iter(strings.iter()).boxed()
        }
        _ => Utf8Array::<i32>::from_iter(text).boxed(),
    };
    if array.dtype() != dtype || array.len() != rows {
        return Err(PatronError::Internal(format!(
            "an Arrow column came out as {:?} ({} rows), not {dtype:?} ({rows})",
            array.dtype(),
            array.len()
        )));
    }
    Ok(array)
}

/// An output named as a format predictions are not written in (a workbook, say).
fn not_written(output: &Path) -> PatronError {
    PatronError::data(
        output,
        "unsupported output type: use .csv, .parquet, .arrow or .arrows",
    )
}

/// The name `--output-format` gives a format.
fn format_name(format: Format) -> &'static str {
    match format {
        Format::Csv => "csv",
        Format::Parquet => "parquet",
        Format::Arrow => "arrow",
        Format::Spreadsheet => "xlsx",
    }
}

/// A temporary sibling of `path`, renamed over it when complete.
fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Quote a CSV field when it holds a separator, quote or line break.
pub(crate) fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrow_columns_keep_plain_input_types_and_type_the_task_columns() {
        let layout = Layout {
            id: None,
            kept: vec!["age".into(), "signup".into(), "city".into(), "tags".into()],
            outputs: vec![
                OutputColumn::Prediction,
                OutputColumn::Score("p_gold".into()),
                OutputColumn::Score("p_silver".into()),
            ],
            reasons: 1,
        };
        let input = Schema::from_iter([
            Field::new("age".into(), DataType::Int32),
            Field::new("signup".into(), DataType::Date),
            Field::new("city".into(), DataType::String),
            Field::new("tags".into(), DataType::Binary),
        ]);
        let columns = layout.arrow_columns(Some(&input));
        let expected = [
            ("row", ArrowDataType::Int64),
            ("age", ArrowDataType::Int32),
            ("signup", ArrowDataType::Date32),
            ("city", ArrowDataType::Utf8),
            ("tags", ArrowDataType::Utf8),
            ("prediction", ArrowDataType::Utf8),
            ("p_gold", ArrowDataType::Float64),
            ("p_silver", ArrowDataType::Float64),
            ("reason_1", ArrowDataType::Utf8),
            ("reason_1_effect", ArrowDataType::Float64),
        ];
        let got: Vec<(&str, &ArrowDataType)> =
            columns.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let want: Vec<(&str, &ArrowDataType)> = expected.iter().map(|(n, t)| (*n, t)).collect();
        assert_eq!(got, want);

        // Text input: an id column is utf8; a regression's prediction is float64.
        let regression = Layout {
            id: Some("customer".into()),
            kept: vec![],
            outputs: vec![OutputColumn::Score("prediction".into())],
            reasons: 0,
        };
        let types: Vec<ArrowDataType> = regression
            .arrow_columns(None)
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        assert_eq!(types, [ArrowDataType::Utf8, ArrowDataType::Float64]);
    }
}
