//! Evaluation reports: `report.json` for programs (keys pinned by the contract),
//! `report.md` and `report.html` (see `html_report`) for people.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::checkpoint::{files, write_atomic, write_json};
use crate::error::Result;
use crate::html_report::ReportPage;
use crate::metrics::{BinaryMetrics, Confusion};

/// `report.json` of a binary task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinaryReport {
    /// Always `binary`.
    pub task: String,
    /// Rows scored.
    pub n: usize,
    /// The positive class label.
    pub positive: String,
    /// Metric values.
    pub metrics: BinaryMetrics,
    /// `[[tn, fp], [fn, tp]]` at the threshold.
    pub confusion_matrix: [[u64; 2]; 2],
    /// Which rows were scored: `test`, `valid` (when no test split) or a file path.
    pub evaluated_on: String,
    /// Positive rows among them.
    pub n_positive: usize,
}

impl BinaryReport {
    /// Build the report from calibrated and raw probabilities and 0/1 labels.
    pub fn new(
        probs: &[f64],
        uncalibrated: &[f64],
        labels: &[f32],
        threshold: f64,
        positive: &str,
        evaluated_on: &str,
    ) -> Self {
        BinaryReport {
            task: "binary".into(),
            n: probs.len(),
            positive: positive.to_string(),
            metrics: BinaryMetrics::compute(probs, uncalibrated, labels, threshold),
            confusion_matrix: Confusion::at(probs, labels, threshold).matrix(),
            evaluated_on: evaluated_on.to_string(),
            n_positive: labels.iter().filter(|&&y| y > 0.5).count(),
        }
    }

    /// A short markdown summary.
    pub fn to_markdown(&self, title: &str) -> String {
        let m = &self.metrics;
        let [[tn, fp], [fn_, tp]] = self.confusion_matrix;
        let rows = [
            ("ROC AUC", m.auc_roc),
            ("PR AUC (average precision)", m.auc_pr),
            ("log loss", m.log_loss),
            ("Brier score", m.brier),
            ("accuracy", m.accuracy),
            ("precision", m.precision),
            ("recall", m.recall),
            ("F1", m.f1),
            ("lift in top 10 %", m.lift_top_decile),
            ("ECE (calibrated)", m.ece),
            ("ECE (uncalibrated)", m.ece_uncalibrated),
        ];
        let mut out = format!(
            "# {title}\n\nBinary classification, positive class `{}`; {} rows ({} positive) from {}.\n\n| metric | value |\n|---|---|\n",
            self.positive, self.n, self.n_positive, self.evaluated_on
        );
        for (name, value) in rows {
            out.push_str(&format!("| {name} | {value:.4} |\n"));
        }
        out.push_str(&format!(
            "\nDecision threshold on the calibrated score: {:.4} (F1-best on the validation split).\n\n\
             | | predicted negative | predicted positive |\n|---|---|---|\n\
             | actual negative | {tn} | {fp} |\n| actual positive | {fn_} | {tp} |\n",
            m.threshold
        ));
        out
    }

    /// Write `report.json`, `report.md` and `report.html` into `dir`.
    pub fn write(&self, dir: &Path, page: &ReportPage) -> Result<()> {
        let html = crate::html_report::render(self, page)?;
        write_json(&dir.join(files::REPORT), self)?;
        write_atomic(
            &dir.join(files::REPORT_MD),
            self.to_markdown(&page.title).as_bytes(),
        )?;
        write_atomic(&dir.join(files::REPORT_HTML), html.as_bytes())
    }
}
