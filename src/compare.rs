//! `patron compare`: the key test metrics of several runs side by side, best marked.

use std::path::{Path, PathBuf};

use crate::checkpoint::{files, read_json, read_manifest};
use crate::error::{PatronError, Result};
use crate::report::BinaryReport;

/// One metric column: its report key, and whether larger is better.
const COLUMNS: [(&str, bool); 7] = [
    ("auc_roc", true),
    ("auc_pr", true),
    ("log_loss", false),
    ("brier", false),
    ("f1", true),
    ("lift_top_decile", true),
    ("ece", false),
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
    /// Metric values in `COLUMNS` order.
    pub values: Vec<f64>,
}

/// Runs side by side.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// One row per directory, in the order given.
    pub rows: Vec<Row>,
}

/// Read `report.json` (and `manifest.json` when present) of each directory.
pub fn compare(dirs: &[PathBuf]) -> Result<Comparison> {
    let mut rows = Vec::new();
    for dir in dirs {
        let path = dir.join(files::REPORT);
        if !path.is_file() {
            return Err(PatronError::checkpoint(
                dir,
                "has no report.json: pass run directories or `patron evaluate` output folders",
            ));
        }
        let report: BinaryReport = read_json(&path)?;
        let model = if dir.join(files::MANIFEST).is_file() {
            let m = read_manifest(dir)?;
            format!("{} on {}", m.model_kind, m.backend)
        } else {
            "evaluation".to_string()
        };
        let metrics = serde_json::to_value(&report.metrics)
            .map_err(|e| PatronError::Internal(format!("reading metrics: {e}")))?;
        let values = COLUMNS
            .iter()
            .map(|(key, _)| metrics[key].as_f64().unwrap_or(f64::NAN))
            .collect();
        rows.push(Row {
            dir: dir.clone(),
            model,
            n: report.n,
            values,
        });
    }
    Ok(Comparison { rows })
}

impl Comparison {
    /// Index of the best row for each metric column.
    fn best(&self) -> Vec<Option<usize>> {
        COLUMNS
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
        for (key, higher) in COLUMNS {
            out.push_str(&format!(
                " {key} {} |",
                if higher { "(max)" } else { "(min)" }
            ));
        }
        out.push_str("\n|---|---|---|");
        out.push_str(&"---|".repeat(COLUMNS.len()));
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
        for (key, _) in COLUMNS {
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
        crate::checkpoint::write_atomic(path, text.as_bytes())
    }
}
