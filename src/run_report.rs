//! The reports of a training run: built at the end of `train`, and rebuilt from the run's
//! saved files by `patron report` (after an upgrade, or to restyle them).

use std::path::Path;

use crate::calibration::{Calibration, sigmoid};
use crate::checkpoint::{Manifest, RunStatus, files, read_bounded, read_json, read_manifest};
use crate::error::{PatronError, Result};
use crate::html_report::ReportPage;
use crate::importance::FeatureImportance;
use crate::report::BinaryReport;
use crate::train::EpochRow;

/// File of the evaluated rows' labels and logits, so reports can be rebuilt.
pub const PREDICTIONS: &str = "test_predictions.csv";

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
        title: format!("Test report of {}", run_dir.display()),
        facts: vec![
            ("run".into(), run_dir.display().to_string()),
            (
                "model".into(),
                format!("{} {:?}", m.model_kind, m.model.hidden),
            ),
            ("data".into(), m.dataset.path.clone()),
            (
                "rows".into(),
                format!(
                    "train {}, validation {}, test {}",
                    m.rows.train, m.rows.valid, m.rows.test
                ),
            ),
            ("backend".into(), m.device.clone()),
            (
                "training time".into(),
                format!("{:.1} s", m.training_seconds),
            ),
            (
                "best epoch".into(),
                format!("{} of {}", m.best_epoch.unwrap_or(0), m.epochs_run),
            ),
            ("patron".into(), m.patron_version.clone()),
        ],
        probs,
        uncalibrated,
        labels,
        history,
        importance,
    }
}

/// `label,logit` lines of the evaluated rows.
pub fn predictions_csv(labels: &[f32], logits: &[f64]) -> String {
    let mut out = String::from("label,logit\n");
    for (y, z) in labels.iter().zip(logits) {
        out.push_str(&format!("{y},{z:?}\n"));
    }
    out
}

fn parse_predictions(path: &Path) -> Result<(Vec<f32>, Vec<f64>)> {
    let bad = |line: usize| PatronError::checkpoint(path, format!("line {line} is damaged"));
    let text = String::from_utf8(read_bounded(path, 1 << 30)?)
        .map_err(|_| PatronError::checkpoint(path, "is not UTF-8"))?;
    let (mut labels, mut logits) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate().skip(1) {
        let (y, z) = line.split_once(',').ok_or_else(|| bad(i + 1))?;
        labels.push(y.parse().map_err(|_| bad(i + 1))?);
        logits.push(z.parse().map_err(|_| bad(i + 1))?);
    }
    Ok((labels, logits))
}

fn parse_metrics(path: &Path) -> Result<Vec<EpochRow>> {
    let bad = |line: usize| PatronError::checkpoint(path, format!("line {line} is damaged"));
    let text = String::from_utf8(read_bounded(path, 64 << 20)?)
        .map_err(|_| PatronError::checkpoint(path, "is not UTF-8"))?;
    text.lines()
        .enumerate()
        .skip(1)
        .map(|(i, line)| {
            let v: Vec<f64> = line
                .split(',')
                .map(|x| x.parse::<f64>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| bad(i + 1))?;
            if v.len() != 6 {
                return Err(bad(i + 1));
            }
            Ok(EpochRow {
                epoch: v[0] as usize,
                lr: v[1],
                train_loss: v[2],
                valid_loss: v[3],
                valid_auc_roc: v[4],
                // Not in metrics.csv; the report does not chart it.
                valid_auc_pr: f64::NAN,
                seconds: v[5],
            })
        })
        .collect()
}

/// Rebuild `report.json`, `report.md` and `report.html` of a finished run from its files.
pub fn regenerate(run_dir: &Path) -> Result<BinaryReport> {
    let mut manifest = read_manifest(run_dir)?;
    if manifest.status != RunStatus::Complete {
        return Err(PatronError::checkpoint(
            run_dir,
            "training has not finished; there is no report to rebuild yet",
        ));
    }
    let calibration: Calibration = read_json(&run_dir.join(files::CALIBRATION))?;
    let (labels, logits) = parse_predictions(&run_dir.join(PREDICTIONS))?;
    let history = parse_metrics(&run_dir.join(files::METRICS))?;
    let importance: Vec<FeatureImportance> = read_json(&run_dir.join(files::IMPORTANCE))?;
    let old: BinaryReport = read_json(&run_dir.join(files::REPORT))?;
    let raw: Vec<f64> = logits.iter().map(|&z| sigmoid(z)).collect();
    let probs: Vec<f64> = logits.iter().map(|&z| calibration.apply(z)).collect();
    let threshold = manifest.threshold.unwrap_or(0.5);
    let mut report = BinaryReport::new(
        &probs,
        &raw,
        &labels,
        threshold,
        &manifest.positive,
        &old.evaluated_on,
    );
    // Segment values are not kept per row; the earlier figures carry over.
    report.segments = old.segments;
    let page = run_page(
        run_dir,
        &manifest,
        &history,
        &importance,
        &probs,
        &raw,
        &labels,
    );
    report.write(run_dir, &page)?;
    let hash = crate::checkpoint::sha256_file(&run_dir.join(files::REPORT))?;
    manifest.files.insert(files::REPORT.to_string(), hash);
    crate::checkpoint::write_json(&run_dir.join(files::MANIFEST), &manifest)?;
    Ok(report)
}
