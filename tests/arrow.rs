//! `predict` with Arrow IPC in and out: streams on standard input and output (what Spark's
//! `mapInArrow` hands over), `.arrow` files, typed id and kept columns, the same scores as
//! CSV.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};

use common::{assert_ok, predict_on, read_csv, stderr, train_on};
use patron::data::arrow::{ArrowBatches, ArrowTarget, write_frame};
use polars::prelude::*;

/// The shipped bank rows, typed as polars infers them.
fn bank() -> DataFrame {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/bank_marketing_uci_bank_4521.csv");
    CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(path))
        .unwrap()
        .finish()
        .unwrap()
}

/// Collects what a writer writes.
struct Shared(Arc<Mutex<Vec<u8>>>);
impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `df` as an Arrow stream in record batches of `batch` rows (utf8 strings, as pyarrow and
/// Spark send them).
fn to_stream(df: &DataFrame, batch: usize) -> Vec<u8> {
    let bytes = Arc::new(Mutex::new(Vec::new()));
    let target = ArrowTarget::Stream(Box::new(Shared(bytes.clone())));
    write_arrow(df, batch, target);
    Arc::try_unwrap(bytes).unwrap().into_inner().unwrap()
}

/// Write `df` to `target` in record batches of `batch` rows.
fn write_arrow(df: &DataFrame, batch: usize, target: ArrowTarget) {
    write_frame(df, batch, target).unwrap();
}

/// Every row of an Arrow stream or file.
fn read_arrow(name: &Path, bytes: Vec<u8>) -> DataFrame {
    let mut batches = ArrowBatches::from_stream(name, Box::new(std::io::Cursor::new(bytes)))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut all = DataFrame::empty_with_schema(&batches.schema());
    while let Some(frame) = batches.next_frame(usize::MAX).unwrap() {
        all.vstack_mut_owned(frame).unwrap();
    }
    all
}

/// `patron predict` of `run` on flex with `input` on standard input.
fn predict_pipe(run: &Path, input: &[u8], extra: &[&str]) -> Output {
    common::predict_pipe(run, input, "flex", extra)
}

fn column_f64(df: &DataFrame, name: &str) -> Vec<f64> {
    df.column(name)
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect()
}

#[test]
fn arrow_streams_in_and_out_score_as_csv_does_and_keep_types() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train_on(
        "flex",
        "configs/bank_propensity.toml",
        &tmp.path().join("run"),
        &["train.epochs=2"],
    );
    let csv_out = tmp.path().join("p.csv");
    let data = Path::new("datasets/bank_marketing_uci_bank_4521.csv");
    assert_ok(&predict_on(
        &run,
        data,
        &csv_out,
        "flex",
        &["--keep", "age,job"],
    ));
    let (header, rows) = read_csv(&csv_out);
    assert_eq!(header, ["row", "age", "job", "score", "prediction"]);

    // Batches of 1000 rows in, chunks of 700 scored: a chunk spans two batches.
    let df = bank();
    let stream = to_stream(&df, 1000);
    let o = predict_pipe(
        &run,
        &stream,
        &[
            "--input-format",
            "arrow",
            "--output-format",
            "arrow",
            "--batch-size",
            "700",
            "--keep",
            "age,job",
        ],
    );
    assert_ok(&o);
    let out = read_arrow(Path::new("stdout"), o.stdout);
    let names: Vec<&str> = out.get_column_names().iter().map(|s| s.as_str()).collect();
    assert_eq!(names, ["row", "age", "job", "score", "prediction"]);
    assert_eq!(
        out.dtypes(),
        [
            DataType::Int64,
            DataType::Int64,
            DataType::String,
            DataType::Float64,
            DataType::String
        ]
    );
    assert_eq!(out.height(), rows.len());
    let rows_col: Vec<i64> = out
        .column("row")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(rows_col, (0..rows.len() as i64).collect::<Vec<_>>());
    let scores = column_f64(&out, "score");
    let labels: Vec<Option<&str>> = out
        .column("prediction")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .collect();
    let ages: Vec<i64> = out
        .column("age")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    for (r, row) in rows.iter().enumerate() {
        let csv_score: f64 = row[3].parse().unwrap();
        assert!(
            (scores[r] - csv_score).abs() < 1e-6,
            "row {r}: {} vs {csv_score}",
            scores[r]
        );
        assert_eq!(labels[r], Some(row[4].as_str()), "row {r}");
        assert_eq!(ages[r].to_string(), row[1], "row {r}");
    }

    // The same rows as an Arrow file in, an Arrow file out.
    let file_in = tmp.path().join("bank.arrows");
    std::fs::write(&file_in, &stream).unwrap();
    let file_out = tmp.path().join("p.arrow");
    assert_ok(&predict_on(&run, &file_in, &file_out, "flex", &[]));
    let bytes = std::fs::read(&file_out).unwrap();
    assert_eq!(
        &bytes[..6],
        b"ARROW1",
        "a .arrow output is an Arrow IPC file"
    );
    let mut batches = ArrowBatches::open(&file_out).unwrap();
    let mut n = 0;
    let mut from_file = Vec::new();
    while let Some(frame) = batches.next_frame(4096).unwrap() {
        n += frame.height();
        from_file.extend(column_f64(&frame, "score"));
    }
    assert_eq!(n, rows.len());
    assert_eq!(from_file, scores, "file and stream outputs agree");
    // An Arrow IPC file (not a stream) as input scores the same.
    let file_in = tmp.path().join("bank.arrow");
    write_arrow(
        &df,
        1500,
        ArrowTarget::File(std::fs::File::create(&file_in).unwrap()),
    );
    let again = tmp.path().join("again.csv");
    assert_ok(&predict_on(&run, &file_in, &again, "flex", &[]));
    let (_, again_rows) = read_csv(&again);
    let again_scores: Vec<&str> = again_rows.iter().map(|r| r[1].as_str()).collect();
    let csv_scores: Vec<&str> = rows.iter().map(|r| r[3].as_str()).collect();
    assert_eq!(again_scores, csv_scores);
}

#[test]
fn empty_and_bad_arrow_input() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train_on(
        "flex",
        "configs/bank_propensity.toml",
        &tmp.path().join("run"),
        &["train.epochs=1"],
    );
    // No rows: the output is a stream with the schema and no batches.
    let empty = to_stream(&bank().slice(0, 0), 10);
    let o = predict_pipe(
        &run,
        &empty,
        &["--input-format", "arrow", "--output-format", "arrow"],
    );
    assert_ok(&o);
    let out = read_arrow(Path::new("stdout"), o.stdout);
    assert_eq!(out.height(), 0);
    assert_eq!(out.get_column_names(), ["row", "score", "prediction"]);

    // CSV sent as Arrow: exit 2 with a one-line message.
    let o = predict_pipe(&run, b"age,job\n30,admin.\n", &["--input-format", "arrow"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    let errors: Vec<&str> = e.lines().filter(|l| l.starts_with("error:")).collect();
    assert!(errors.len() == 1 && errors[0].contains("Arrow"), "{e}");

    // A stream cut inside a batch is an error, not fewer rows.
    let mut cut = to_stream(&bank(), 1000);
    cut.truncate(cut.len() / 2);
    let o = predict_pipe(
        &run,
        &cut,
        &["--input-format", "arrow", "--output-format", "arrow"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("ends inside a message"),
        "{}",
        stderr(&o)
    );

    // Parquet has no stream form; a file's extension must agree with --output-format.
    let o = predict_pipe(&run, &empty, &["--input-format", "parquet"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("standard input"), "{}", stderr(&o));
    let data = Path::new("datasets/bank_marketing_uci_bank_4521.csv");
    let o = predict_on(
        &run,
        data,
        &tmp.path().join("p.csv"),
        "flex",
        &["--output-format", "arrow"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("extension"), "{}", stderr(&o));
    assert!(!tmp.path().join("p.csv").exists());
}
