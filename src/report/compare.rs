//! `patron compare`: the key test metrics of several runs side by side, best marked.

use std::path::{Path, PathBuf};

use crate::error::{PatronError, Result};
use crate::run::{files, parse_json, read_manifest, read_sealed, read_verified};
use crate::task::Report;

/// One metric column of a binary comparison: its report key, and whether larger is better.
const BINARY_COLUMNS: &[(&str, bool)] = &[
    ("auc_roc", true),
    ("auc_pr", true),
    ("log_loss", false),
    ("brier", false),
    ("f1", true),
    ("lift_top_decile", true),
    ("ece", false),
];

/// The metric columns of a multiclass comparison.
const MULTICLASS_COLUMNS: &[(&str, bool)] = &[
    ("accuracy", true),
    ("macro_f1", true),
    ("weighted_f1", true),
    ("log_loss", false),
];

/// The metric columns of a regression comparison.
const REGRESSION_COLUMNS: &[(&str, bool)] = &[
    ("rmse", false),
    ("mae", false),
    ("r2", true),
    ("spearman", true),
    ("top10_share", true),
];

/// One compared run.
#[derive(Debug, Clone)]
pub struct Row {
    /// Run (or evaluation) directory.
    pub dir: PathBuf,
    /// Model kind and backend, when the directory is a run.
    pub model: String,
    /// Rows evaluated.
    pub n: usize,
    /// Metric values in `columns` order.
    pub values: Vec<f64>,
}

/// Runs side by side.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// One row per directory, in the order given.
    pub rows: Vec<Row>,
    /// The metric columns (report key, larger is better) of the runs' task.
    pub columns: &'static [(&'static str, bool)],
}

/// Read `report.json` (and `manifest.json` when present) of each directory.
pub fn compare(dirs: &[PathBuf]) -> Result<Comparison> {
    let mut rows = Vec::new();
    let mut columns: Option<&'static [(&'static str, bool)]> = None;
    for dir in dirs {
        let path = dir.join(files::REPORT);
        if !path.is_file() {
            return Err(PatronError::checkpoint(
                dir,
                "has no report.json: pass run directories or `patron evaluate` output folders",
            ));
        }
        // A run's report is checked against its manifest, an evaluation's against the
        // checksums.json written beside it.
        let manifest = if dir.join(files::MANIFEST).is_file() {
            Some(read_manifest(dir)?)
        } else {
            None
        };
        let bytes = match &manifest {
            Some(m) => read_verified(dir, m, files::REPORT)?,
            None => read_sealed(dir, files::REPORT)?,
        };
        let report: Report = parse_json(&bytes, &path)?;
        let (these, metrics, n) = match &report {
            Report::Binary(r) => (BINARY_COLUMNS, serde_json::to_value(&r.metrics), r.n),
            Report::Multiclass(r) => (MULTICLASS_COLUMNS, serde_json::to_value(&r.metrics), r.n),
            Report::Regression(r) => (REGRESSION_COLUMNS, serde_json::to_value(&r.metrics), r.n),
        };
        if columns.is_some_and(|c| !std::ptr::eq(c, these)) {
            return Err(PatronError::Usage(format!(
                "{}: its task differs from the runs before it; compare runs of one task (binary, multiclass or regression) at a time",
                dir.display()
            )));
        }
        columns = Some(these);
        let model = match &manifest {
            Some(m) => format!("{} on {}", m.model_kind, m.backend),
            None => "evaluation".to_string(),
        };
        let metrics =
            metrics.map_err(|e| PatronError::Internal(format!("reading metrics: {e}")))?;
        let values = these
            .iter()
            .map(|(key, _)| metrics[key].as_f64().unwrap_or(f64::NAN))
            .collect();
        rows.push(Row {
            dir: dir.clone(),
            model,
            n,
            values,
        });
    }
    Ok(Comparison {
        rows,
        columns: columns.unwrap_or(BINARY_COLUMNS),
    })
}

impl Comparison {
    /// Index of the best row for each metric column.
    fn best(&self) -> Vec<Option<usize>> {
        self.columns
            .iter()
            .enumerate()
            .map(|(c, (_, higher))| {
                (0..self.rows.len())
                    .filter(|&r| self.rows[r].values[c].is_finite())
                    .max_by(|&a, &b| {
                        let (x, y) = (self.rows[a].values[c], self.rows[b].values[c]);
                        if *higher {
                            x.total_cmp(&y)
                        } else {
                            y.total_cmp(&x)
                        }
                    })
            })
            .collect()
    }

    /// A markdown table; the best value of each metric is in bold.
    pub fn to_markdown(&self) -> String {
        let best = self.best();
        let mut out = String::from("| run | model | n |");
        for &(key, higher) in self.columns {
            out.push_str(&format!(
                " {key} {} |",
                if higher { "(max)" } else { "(min)" }
            ));
        }
        out.push_str("\n|---|---|---|");
        out.push_str(&"---|".repeat(self.columns.len()));
        out.push('\n');
        for (r, row) in self.rows.iter().enumerate() {
            out.push_str(&format!(
                "| {} | {} | {} |",
                row.dir.display(),
                row.model,
                row.n
            ));
            for (c, v) in row.values.iter().enumerate() {
                if best[c] == Some(r) {
                    out.push_str(&format!(" **{v:.4}** |"));
                } else {
                    out.push_str(&format!(" {v:.4} |"));
                }
            }
            out.push('\n');
        }
        out
    }

    /// CSV with a `best` marker column per metric (`*` on the best row).
    pub fn to_csv(&self) -> String {
        let best = self.best();
        let mut out = String::from("run,model,n");
        for (key, _) in self.columns {
            out.push_str(&format!(",{key},{key}_best"));
        }
        out.push('\n');
        for (r, row) in self.rows.iter().enumerate() {
            let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
            out.push_str(&format!(
                "{},{},{}",
                quote(&row.dir.display().to_string()),
                quote(&row.model),
                row.n
            ));
            for (c, v) in row.values.iter().enumerate() {
                out.push_str(&format!(
                    ",{v:.6},{}",
                    if best[c] == Some(r) { "*" } else { "" }
                ));
            }
            out.push('\n');
        }
        out
    }

    /// Write the table to `path`: CSV for `.csv`, markdown otherwise.
    pub fn write(&self, path: &Path) -> Result<()> {
        let is_csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let text = if is_csv {
            self.to_csv()
        } else {
            self.to_markdown()
        };
        crate::run::write_atomic(path, text.as_bytes())
    }
}
