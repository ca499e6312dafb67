//! The reports of a training run: built at the end of `train`, and rebuilt from the run's
//! saved files by `patron report` (after an upgrade, or to restyle them).

use std::path::Path;

use crate::data::preprocess::Preprocessor;
use crate::error::{PatronError, Result};
use crate::report::html::ReportPage;
use crate::run::history::{EpochRow, parse_metrics};
use crate::run::{
    Manifest, RunStatus, files, parse_json, read_manifest, read_strict, record_hashes, write_json,
};
use crate::score::explain::TextExplanations;
use crate::score::importance::FeatureImportance;
use crate::task::calibration::Calibration;
use crate::task::{self, Report, Scores, Task};

/// The report page of a run, its header facts taken from the manifest.
pub fn run_page<'a>(
    run_dir: &Path,
    manifest: &Manifest,
    history: &'a [EpochRow],
    importance: &'a [FeatureImportance],
    probs: &'a [f64],
    uncalibrated: &'a [f64],
    labels: &'a [f32],
) -> ReportPage<'a> {
    let m = manifest;
    ReportPage {
        title: format!(
            "{} report of {}",
            if m.folds.is_some() && m.rows.test == 0 {
                "Out-of-fold"
            } else {
                "Test"
            },
            run_dir.display()
        ),
        facts: vec![
            ("run".into(), run_dir.display().to_string()),
            (
                "model".into(),
                format!("{} {:?}", m.model_kind, m.model.hidden),
            ),
            ("data".into(), m.dataset.path.clone()),
            (
                "rows".into(),
                match m.folds {
                    Some(k) => format!("train {} in {k} folds, test {}", m.rows.train, m.rows.test),
                    None => format!(
                        "train {}, validation {}, test {}",
                        m.rows.train, m.rows.valid, m.rows.test
                    ),
                },
            ),
            ("backend".into(), m.device.clone()),
            (
                "training time".into(),
                format!("{:.1} s", m.training_seconds),
            ),
            (
                "best epoch".into(),
                match m.best_epoch {
                    Some(best) => format!("{best} of {}", m.epochs_run),
                    // A fold ensemble's best epochs are in its per-fold table.
                    None => format!("one per fold, {} epochs in all", m.epochs_run),
                },
            ),
            ("patron".into(), m.patron_version.clone()),
        ],
        probs,
        uncalibrated,
        labels,
        history,
        importance,
        explanations: None,
    }
}

/// `label,logit` lines of the evaluated rows (`label,logit_0,..,logit_k-1` for several
/// outputs, as the task names them); labels are class indices.
pub fn predictions_csv(task: &dyn Task, labels: &[f32], logits: &[f64]) -> String {
    let outputs = task.outputs();
    let mut out = format!("label,{}\n", task.logit_names().join(","));
    for (y, row) in labels.iter().zip(logits.chunks_exact(outputs)) {
        out.push_str(&y.to_string());
        for z in row {
            out.push_str(&format!(",{z:?}"));
        }
        out.push('\n');
    }
    out
}

fn parse_predictions(bytes: Vec<u8>, path: &Path, outputs: usize) -> Result<(Vec<f32>, Vec<f64>)> {
    let bad = |line: usize| PatronError::checkpoint(path, format!("line {line} is damaged"));
    let text =
        String::from_utf8(bytes).map_err(|_| PatronError::checkpoint(path, "is not UTF-8"))?;
    let (mut labels, mut logits) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate().skip(1) {
        let mut fields = line.split(',');
        let y = fields.next().ok_or_else(|| bad(i + 1))?;
        labels.push(y.parse().map_err(|_| bad(i + 1))?);
        let before = logits.len();
        for z in fields {
            logits.push(z.parse().map_err(|_| bad(i + 1))?);
        }
        if logits.len() - before != outputs {
            return Err(bad(i + 1));
        }
    }
    Ok((labels, logits))
}

/// Rebuild `report.json`, `report.md` and `report.html` of a finished run from its files.
pub fn regenerate(run_dir: &Path) -> Result<Report> {
    let mut manifest = read_manifest(run_dir)?;
    if manifest.status != RunStatus::Complete {
        return Err(PatronError::checkpoint(
            run_dir,
            "training has not finished; there is no report to rebuild yet",
        ));
    }
    let outputs = manifest.model.outputs;
    // Only verified files: a damaged one would silently become a different report.
    let read = |name: &str| read_strict(run_dir, &manifest, name);
    let calibration: Calibration = parse_json(
        &read(files::CALIBRATION)?,
        &run_dir.join(files::CALIBRATION),
    )?;
    let predictions = run_dir.join(files::PREDICTIONS);
    let (labels, logits) = parse_predictions(read(files::PREDICTIONS)?, &predictions, outputs)?;
    let history = parse_metrics(read(files::METRICS)?, &run_dir.join(files::METRICS))?;
    let importance: Vec<FeatureImportance> =
        parse_json(&read(files::IMPORTANCE)?, &run_dir.join(files::IMPORTANCE))?;
    let old: Report = parse_json(&read(files::REPORT)?, &run_dir.join(files::REPORT))?;
    let preprocess: Preprocessor =
        parse_json(&read(files::PREPROCESS)?, &run_dir.join(files::PREPROCESS))?;
    let task = task::for_run(&preprocess);
    let probs = task.probabilities(&calibration, &logits);
    let raw = task.uncalibrated(&logits);
    let scores = Scores {
        probs: &probs,
        raw: &raw,
        labels: &labels,
    };
    let mut report = task.report(&scores, &manifest.decision(), old.evaluated_on(), &[]);
    // Segment values are not kept per row; the earlier figures carry over.
    report.keep_segments(old);
    let explain_path = run_dir.join(files::EXPLANATIONS);
    let explanations: Option<TextExplanations> =
        if manifest.files.contains_key(files::EXPLANATIONS) || explain_path.exists() {
            Some(parse_json(&read(files::EXPLANATIONS)?, &explain_path)?)
        } else {
            None
        };
    let mut page = run_page(
        run_dir,
        &manifest,
        &history,
        &importance,
        &probs,
        &raw,
        &labels,
    );
    page.explanations = explanations.as_ref();
    report.write(run_dir, &page)?;
    record_hashes(
        run_dir,
        &mut manifest,
        &[files::REPORT, files::REPORT_MD, files::REPORT_HTML],
    )?;
    write_json(&run_dir.join(files::MANIFEST), &manifest)?;
    Ok(report)
}
