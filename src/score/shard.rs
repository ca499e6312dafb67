//! Sharded scoring without a scheduler: `predict --input 'DIR/*.parquet' --shard I/N
//! --output OUTDIR` scores the I-th of N shares of the matching files, one output per input
//! file, so N processes (a shell loop, a Kubernetes Indexed Job) cover a folder once.

use std::path::{Path, PathBuf};

use crate::data::{Format, gzipped};
use crate::error::{PatronError, Result};
use crate::score::session::Session;
use crate::score::{PredictRequest, PredictSummary, predict};

/// The I-th of N shares (`0 <= index < count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This share, from 0.
    pub index: usize,
    /// How many shares.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `I/N`, as `--shard` takes it.
    fn from_str(s: &str) -> std::result::Result<Shard, String> {
        let bad = || format!("{s:?} is not I/N with 0 <= I < N (for example 0/4)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse::<usize>().map_err(|_| bad())?,
            n.trim().parse::<usize>().map_err(|_| bad())?,
        );
        if index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// This share of `files`: every N-th of them in name order from the I-th, so the
    /// shares are even and each file is in exactly one (while the folder does not change).
    pub fn of<'a>(&self, files: &'a [PathBuf]) -> Vec<&'a PathBuf> {
        files.iter().skip(self.index).step_by(self.count).collect()
    }
}

/// The CSV and Parquet files matching a glob `pattern`, in name order.
pub fn matching_files(pattern: &str) -> Result<Vec<PathBuf>> {
    let bad = |why: String| PatronError::Usage(format!("--input {pattern:?}: {why}"));
    let paths = glob::glob(pattern).map_err(|e| bad(format!("not a file pattern ({e})")))?;
    let mut files = Vec::new();
    for path in paths {
        let path = path.map_err(|e| {
            let at = e.path().to_path_buf();
            PatronError::io(at, e.into())
        })?;
        if path.is_file() && Format::of_input(&path).is_ok() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(bad("matches no .csv or .parquet file".into()));
    }
    files.sort();
    Ok(files)
}

/// What a sharded run scored.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardSummary {
    /// The input files of this share and their outputs.
    pub files: Vec<(PathBuf, PathBuf)>,
    /// Rows scored over them.
    pub rows: usize,
    /// Rows predicted as each class, in label order.
    pub class_counts: Vec<usize>,
}

/// Score this share of the files matching `pattern` into `out_dir` (created), each input
/// as `<its stem>.<format>`, written under a temporary name and renamed like any
/// `predict` output, so a rerun of a share replaces its own outputs and nothing else.
/// `request` gives the batch size, reasons and kept columns.
pub fn predict_shard(
    session: &Session,
    pattern: &str,
    shard: Shard,
    out_dir: &Path,
    request: &PredictRequest,
) -> Result<ShardSummary> {
    let files = matching_files(pattern)?;
    if out_dir.is_file() {
        return Err(PatronError::Usage(format!(
            "{}: is a file; with --shard, --output names a folder",
            out_dir.display()
        )));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| PatronError::io(out_dir, e))?;
    let mut summary = ShardSummary {
        files: Vec::new(),
        rows: 0,
        class_counts: vec![0; session.run().preprocess.labels.len()],
    };
    for input in shard.of(&files) {
        let format = match request.output_format {
            Some(format) => format,
            None => Format::of_input(input)?,
        };
        // "part-0.csv.gz" is written as "part-0.csv".
        let name = if gzipped(input) {
            Path::new(input.file_stem().unwrap_or_default())
        } else {
            input.as_path()
        };
        let stem = name.file_stem().unwrap_or_default().to_string_lossy();
        // A workbook's scores are written as CSV.
        let ext = match format {
            Format::Csv | Format::Spreadsheet => "csv",
            Format::Parquet => "parquet",
            Format::Arrow => "arrow",
        };
        let output = out_dir.join(format!("{stem}.{ext}"));
        if summary.files.iter().any(|(_, o)| *o == output) {
            return Err(PatronError::Usage(format!(
                "{} and another input of this shard would both write {}; give the files distinct names",
                input.display(),
                output.display()
            )));
        }
        let one = PredictRequest {
            input: input.clone(),
            output: output.clone(),
            ..request.clone()
        };
        let PredictSummary { rows, class_counts } = predict(session, &one)?;
        summary.rows += rows;
        for (all, n) in summary.class_counts.iter_mut().zip(class_counts) {
            *all += n;
        }
        summary.files.push((input.clone(), output));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_file_once_and_evenly() {
        let files: Vec<PathBuf> = (0..7).map(|i| PathBuf::from(format!("f{i}.csv"))).collect();
        let mut seen = Vec::new();
        for index in 0..3 {
            let share = Shard { index, count: 3 }.of(&files);
            assert!((2..=3).contains(&share.len()), "{share:?}");
            seen.extend(share.into_iter().cloned());
        }
        seen.sort();
        assert_eq!(seen, files);
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["4/4", "1", "a/2", "1/0", "-1/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
