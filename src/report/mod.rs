//! The reports people read: `report.md` and `report.html` (see [`html`]) beside the
//! `report.json` whose content each task builds (`crate::task`).

pub mod charts;
pub mod compare;
pub mod evaluation;
pub mod html;
pub mod run_report;

use std::path::Path;

use serde::Serialize;

use crate::error::Result;
use crate::report::html::ReportPage;
use crate::run::{files, write_atomic, write_json};
use crate::task::binary::BinaryReport;
use crate::task::multiclass::MulticlassReport;
use crate::task::regression::RegressionReport;
use crate::task::{CrossValidation, Report};

impl MulticlassReport {
    /// A short markdown summary.
    pub fn to_markdown(&self, title: &str) -> String {
        let m = &self.metrics;
        let mut out = format!(
            "# {title}\n\nMulticlass classification ({} classes); {} rows from {}.\n\n| metric | value |\n|---|---|\n| accuracy | {:.4} |\n| macro F1 | {:.4} |\n| weighted F1 | {:.4} |\n| log loss | {:.4} |\n\n| class | precision | recall | F1 | support |\n|---|---|---|---|---|\n",
            self.labels.len(),
            self.n,
            rows_named(&self.evaluated_on),
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
        out.push_str(&cv_markdown(self.cv.as_ref()));
        out
    }

    /// Write `report.json`, `report.md` and `report.html` into `dir`.
    pub fn write(&self, dir: &Path, page: &ReportPage) -> Result<()> {
        let html = crate::report::html::render_multiclass(self, page)?;
        write_reports(dir, self, &self.to_markdown(&page.title), &html)
    }
}

impl Report {
    /// Write `report.json`, `report.md` and `report.html` into `dir`.
    pub fn write(&self, dir: &Path, page: &ReportPage) -> Result<()> {
        match self {
            Report::Binary(r) => r.write(dir, page),
            Report::Multiclass(r) => r.write(dir, page),
            Report::Regression(r) => r.write(dir, page),
        }
    }
}

/// The rows a report's `evaluated_on` names, in words.
fn rows_named(evaluated_on: &str) -> &str {
    match evaluated_on {
        "test" => "the test split",
        "valid" => "the validation split",
        "out_of_fold" => {
            "the training rows, each scored by the fold model that did not train on it (out-of-fold)"
        }
        other => other,
    }
}

/// A cross-validated run's per-fold table (empty for one model).
fn cv_markdown(cv: Option<&CrossValidation>) -> String {
    let Some(cv) = cv else {
        return String::new();
    };
    let mut out = format!(
        "\nCross-validation ({} folds; each fold model at its best epoch, on its own fold)\n\n| metric | mean | std |",
        cv.folds
    );
    for k in 1..=cv.folds {
        out.push_str(&format!(" fold {k} |"));
    }
    out.push_str(&format!("\n|---|---|---|{}\n", "---|".repeat(cv.folds)));
    for (name, f) in &cv.metrics {
        out.push_str(&format!("| {name} | {:.4} | {:.4} |", f.mean, f.std));
        for v in &f.per_fold {
            out.push_str(&format!(" {v:.4} |"));
        }
        out.push('\n');
    }
    out
}

/// Write `report.json`, `report.md` and `report.html` into `dir`.
fn write_reports(dir: &Path, json: &impl Serialize, markdown: &str, html: &str) -> Result<()> {
    write_json(&dir.join(files::REPORT), json)?;
    write_atomic(&dir.join(files::REPORT_MD), markdown.as_bytes())?;
    write_atomic(&dir.join(files::REPORT_HTML), html.as_bytes())
}

impl RegressionReport {
    /// A short markdown summary.
    pub fn to_markdown(&self, title: &str) -> String {
        let m = &self.metrics;
        let share = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
        let mut out = format!(
            "# {title}\n\nRegression (loss {}, target transform {}); {} rows from {}.\n\n| metric | value |\n|---|---|\n| RMSE | {:.4} |\n| MAE | {:.4} |\n| R² | {:.4} |\n| Spearman | {:.4} |\n| mean prediction | {:.4} |\n| mean target | {:.4} |\n| top 10 % share of the total | {} |\n",
            self.loss,
            self.target_transform,
            self.n,
            rows_named(&self.evaluated_on),
            m.rmse,
            m.mae,
            m.r2,
            m.spearman,
            m.mean_prediction,
            m.mean_target,
            share(m.top10_share)
        );
        if let Some(i) = &self.intervals {
            out.push_str(&format!(
                "\nPrediction intervals: {:.1} % of the rows fall between the predicted quantiles {} and {} (mean width {:.4}).\n",
                i.coverage * 100.0,
                i.quantiles[0],
                i.quantiles[i.quantiles.len() - 1],
                i.mean_width
            ));
        }
        if let Some(shares) = &self.decile_share {
            out.push_str("\nShare of the total target per decile of prediction (highest first)\n\n| decile | share |\n|---|---|\n");
            for (d, s) in shares.iter().enumerate() {
                out.push_str(&format!("| {} | {s:.4} |\n", d + 1));
            }
        }
        out.push_str(&cv_markdown(self.cv.as_ref()));
        out
    }

    /// Write `report.json`, `report.md` and `report.html` into `dir`.
    pub fn write(&self, dir: &Path, page: &ReportPage) -> Result<()> {
        let html = crate::report::html::render_regression(self, page)?;
        write_reports(dir, self, &self.to_markdown(&page.title), &html)
    }
}

impl BinaryReport {
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
            self.positive,
            self.n,
            self.n_positive,
            rows_named(&self.evaluated_on)
        );
        for (name, value) in rows {
            out.push_str(&format!("| {name} | {value:.4} |\n"));
        }
        out.push_str(&format!(
            "\nDecision threshold on the calibrated score: {:.4} (F1-best on the {}).\n\n\
             | | predicted negative | predicted positive |\n|---|---|---|\n\
             | actual negative | {tn} | {fp} |\n| actual positive | {fn_} | {tp} |\n",
            m.threshold,
            if self.cv.is_some() {
                "out-of-fold scores"
            } else {
                "validation split"
            }
        ));
        out.push_str(&cv_markdown(self.cv.as_ref()));
        out
    }

    /// Write `report.json`, `report.md` and `report.html` into `dir`.
    pub fn write(&self, dir: &Path, page: &ReportPage) -> Result<()> {
        let html = crate::report::html::render(self, page)?;
        write_reports(dir, self, &self.to_markdown(&page.title), &html)
    }
}
