//! Evaluation reports: `report.json` for programs (keys pinned by the contract),
//! `report.md` and `report.html` (see `html_report`) for people.

pub mod charts;
pub mod compare;
pub mod evaluation;
pub mod html;
pub mod run_report;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::report::html::ReportPage;
use crate::run::{files, write_atomic, write_json};
use crate::task::metrics::{
    BinaryMetrics, ClassMetrics, Confusion, MulticlassMetrics, auc_roc, confusion_matrix, decide,
    per_class,
};

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
    /// Metrics per value of each `report.segments` column.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub segments: BTreeMap<String, Vec<Segment>>,
}

/// `report.json` of a multiclass task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MulticlassReport {
    /// Always `multiclass`.
    pub task: String,
    /// Rows scored.
    pub n: usize,
    /// Class labels, in the order of the confusion matrix and the `p_<label>` columns.
    pub labels: Vec<String>,
    /// Metric values.
    pub metrics: MulticlassMetrics,
    /// Precision, recall, F1 and support of each class.
    pub per_class: BTreeMap<String, ClassMetrics>,
    /// `confusion_matrix[true][predicted]`, classes in `labels` order.
    pub confusion_matrix: Vec<Vec<u64>>,
    /// Which rows were scored: `test`, `valid` (when no test split) or a file path.
    pub evaluated_on: String,
    /// Offsets on the log-probabilities of each class before the argmax (label order),
    /// fitted for the best validation macro-F1; all zero: the most probable class.
    #[serde(default)]
    pub class_offsets: Vec<f64>,
    /// Metrics per value of each `report.segments` column.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub segments: BTreeMap<String, Vec<ClassSegment>>,
}

/// The evaluated rows sharing one value of a segment column, in a multiclass report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassSegment {
    /// The column value (`(missing)` for blanks, `(other)` for the rarest values grouped).
    pub value: String,
    /// Rows.
    pub n: usize,
    /// Accuracy within the segment.
    pub accuracy: f64,
    /// Macro-F1 within the segment (a class absent from it counts as F1 0).
    pub macro_f1: f64,
}

impl MulticlassReport {
    /// Build the report from class probabilities (`[rows * k]`), class-index labels and
    /// the run's decision offsets (see [`crate::task::metrics::decide`]).
    pub fn new(
        probs: &[f64],
        labels: &[f32],
        classes: &[String],
        offsets: &[f64],
        evaluated_on: &str,
    ) -> Self {
        let k = classes.len();
        let matrix = confusion_matrix(&decide(probs, k, offsets), labels, k);
        MulticlassReport {
            task: "multiclass".into(),
            n: labels.len(),
            labels: classes.to_vec(),
            metrics: MulticlassMetrics::compute(probs, labels, k, offsets),
            class_offsets: offsets.to_vec(),
            segments: BTreeMap::new(),
            per_class: classes.iter().cloned().zip(per_class(&matrix)).collect(),
            confusion_matrix: matrix,
            evaluated_on: evaluated_on.to_string(),
        }
    }

    /// Attach segment metrics: `columns` hold one value per evaluated row, `probs` is
    /// `[rows * k]`.
    pub fn with_segments(
        mut self,
        columns: &[(String, Vec<String>)],
        probs: &[f64],
        labels: &[f32],
    ) -> Self {
        let k = self.labels.len();
        for (name, values) in columns {
            let rows = group_rows(values)
                .into_iter()
                .map(|(value, rows)| {
                    let p: Vec<f64> = rows
                        .iter()
                        .flat_map(|&i| probs[i * k..(i + 1) * k].iter().copied())
                        .collect();
                    let y: Vec<f32> = rows.iter().map(|&i| labels[i]).collect();
                    let m = MulticlassMetrics::compute(&p, &y, k, &self.class_offsets);
                    ClassSegment {
                        value,
                        n: rows.len(),
                        accuracy: m.accuracy,
                        macro_f1: m.macro_f1,
                    }
                })
                .collect();
            self.segments.insert(name.clone(), rows);
        }
        self
    }

    /// A short markdown summary.
    pub fn to_markdown(&self, title: &str) -> String {
        let m = &self.metrics;
        let mut out = format!(
            "# {title}\n\nMulticlass classification ({} classes); {} rows from {}.\n\n| metric | value |\n|---|---|\n| accuracy | {:.4} |\n| macro F1 | {:.4} |\n| weighted F1 | {:.4} |\n| log loss | {:.4} |\n\n| class | precision | recall | F1 | support |\n|---|---|---|---|---|\n",
            self.labels.len(),
            self.n,
            self.evaluated_on,
            m.accuracy,
            m.macro_f1,
            m.weighted_f1,
            m.log_loss
        );
        for label in &self.labels {
            if let Some(c) = self.per_class.get(label) {
                out.push_str(&format!(
                    "| {label} | {:.4} | {:.4} | {:.4} | {} |\n",
                    c.precision, c.recall, c.f1, c.support
                ));
            }
        }
        out.push_str("\nConfusion matrix (rows: true class, columns: predicted)\n\n| |");
        for label in &self.labels {
            out.push_str(&format!(" {label} |"));
        }
        out.push_str(&format!("\n|---|{}\n", "---|".repeat(self.labels.len())));
        for (label, row) in self.labels.iter().zip(&self.confusion_matrix) {
            out.push_str(&format!("| {label} |"));
            for v in row {
                out.push_str(&format!(" {v} |"));
            }
            out.push('\n');
        }
        out
    }

    /// Write `report.json`, `report.md` and `report.html` into `dir`.
    pub fn write(&self, dir: &Path, page: &ReportPage) -> Result<()> {
        let html = crate::report::html::render_multiclass(self, page)?;
        write_reports(dir, self, &self.to_markdown(&page.title), &html)
    }
}

/// The report of a run or an evaluation: its JSON is exactly the inner report's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Report {
    /// More than two classes.
    Multiclass(MulticlassReport),
    /// Two classes.
    Binary(BinaryReport),
}

/// Rows a run scored, as a report judges them.
pub struct Scores<'a> {
    /// Calibrated probabilities: one per row for two classes, else `[rows * classes]`.
    pub probs: &'a [f64],
    /// The same before calibration.
    pub raw: &'a [f64],
    /// The class index of each row.
    pub labels: &'a [f32],
}

impl Report {
    /// The report of `scores` over `classes` (of two, the second is the positive one),
    /// deciding at `threshold` (two classes) or with the class `offsets` (more), with the
    /// metrics of each value of the `segments` columns (one value per scored row).
    pub fn of_scores(
        scores: &Scores,
        classes: &[String],
        threshold: f64,
        offsets: &[f64],
        evaluated_on: &str,
        segments: &[(String, Vec<String>)],
    ) -> Report {
        let Scores { probs, raw, labels } = *scores;
        if classes.len() <= 2 {
            let positive = classes.get(1).map_or("", String::as_str);
            Report::Binary(
                BinaryReport::new(probs, raw, labels, threshold, positive, evaluated_on)
                    .with_segments(segments, probs, labels),
            )
        } else {
            Report::Multiclass(
                MulticlassReport::new(probs, labels, classes, offsets, evaluated_on)
                    .with_segments(segments, probs, labels),
            )
        }
    }

    /// Write `report.json`, `report.md` and `report.html` into `dir`.
    pub fn write(&self, dir: &Path, page: &ReportPage) -> Result<()> {
        match self {
            Report::Binary(r) => r.write(dir, page),
            Report::Multiclass(r) => r.write(dir, page),
        }
    }

    /// Rows scored.
    pub fn n(&self) -> usize {
        match self {
            Report::Binary(r) => r.n,
            Report::Multiclass(r) => r.n,
        }
    }

    /// Which rows were scored.
    pub fn evaluated_on(&self) -> &str {
        match self {
            Report::Binary(r) => &r.evaluated_on,
            Report::Multiclass(r) => &r.evaluated_on,
        }
    }

    /// The headline metrics, as `name value` pairs for one-line summaries.
    pub fn headline(&self) -> Vec<(&'static str, f64)> {
        match self {
            Report::Binary(r) => vec![
                ("auc_roc", r.metrics.auc_roc),
                ("auc_pr", r.metrics.auc_pr),
                ("log_loss", r.metrics.log_loss),
                ("accuracy", r.metrics.accuracy),
                ("f1", r.metrics.f1),
                ("ece", r.metrics.ece),
            ],
            Report::Multiclass(r) => vec![
                ("accuracy", r.metrics.accuracy),
                ("macro_f1", r.metrics.macro_f1),
                ("weighted_f1", r.metrics.weighted_f1),
                ("log_loss", r.metrics.log_loss),
            ],
        }
    }
}

/// Write `report.json`, `report.md` and `report.html` into `dir`.
fn write_reports(dir: &Path, json: &impl Serialize, markdown: &str, html: &str) -> Result<()> {
    write_json(&dir.join(files::REPORT), json)?;
    write_atomic(&dir.join(files::REPORT_MD), markdown.as_bytes())?;
    write_atomic(&dir.join(files::REPORT_HTML), html.as_bytes())
}

/// The evaluated rows sharing one value of a segment column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// The column value (`(missing)` for blanks, `(other)` for the rarest values grouped).
    pub value: String,
    /// Rows.
    pub n: usize,
    /// Positive rows.
    pub positives: usize,
    /// Mean calibrated score (the expected positive rate).
    pub mean_score: f64,
    /// ROC AUC within the segment; absent when it holds one class only.
    pub auc_roc: Option<f64>,
}

/// Segment values listed per column; rarer values are grouped as `(other)`.
const MAX_SEGMENTS: usize = 25;

/// Metrics per distinct value of `values` (one per evaluated row), largest segments first.
pub fn segments(values: &[String], probs: &[f64], labels: &[f32]) -> Vec<Segment> {
    group_rows(values)
        .into_iter()
        .map(|(value, rows)| {
            let p: Vec<f64> = rows.iter().map(|&i| probs[i]).collect();
            let y: Vec<f32> = rows.iter().map(|&i| labels[i]).collect();
            let positives = y.iter().filter(|&&v| v > 0.5).count();
            Segment {
                value,
                n: rows.len(),
                positives,
                mean_score: p.iter().sum::<f64>() / rows.len().max(1) as f64,
                auc_roc: (positives > 0 && positives < rows.len()).then(|| auc_roc(&p, &y)),
            }
        })
        .collect()
}

/// The rows of each distinct value of `values`, largest groups first; past
/// `MAX_SEGMENTS` the rarest values are grouped as `(other)`.
fn group_rows(values: &[String]) -> Vec<(String, Vec<usize>)> {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, v) in values.iter().enumerate() {
        groups.entry(v.as_str()).or_default().push(i);
    }
    let mut groups: Vec<(String, Vec<usize>)> = groups
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    if groups.len() > MAX_SEGMENTS {
        let rest: Vec<usize> = groups
            .drain(MAX_SEGMENTS - 1..)
            .flat_map(|(_, rows)| rows)
            .collect();
        groups.push(("(other)".to_string(), rest));
    }
    groups
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
            segments: BTreeMap::new(),
        }
    }

    /// Attach segment metrics: `columns` hold one value per evaluated row.
    pub fn with_segments(
        mut self,
        columns: &[(String, Vec<String>)],
        probs: &[f64],
        labels: &[f32],
    ) -> Self {
        for (name, values) in columns {
            self.segments
                .insert(name.clone(), segments(values, probs, labels));
        }
        self
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
        let html = crate::report::html::render(self, page)?;
        write_reports(dir, self, &self.to_markdown(&page.title), &html)
    }
}
