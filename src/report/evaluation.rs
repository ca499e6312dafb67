//! The reports of `patron evaluate`: a labelled file scored by a run, judged and written
//! as report.json, report.md and report.html.

use std::path::Path;

use crate::error::{PatronError, Result};
use crate::report::html::ReportPage;
use crate::run::{LoadedRun, files, seal_folder};
use crate::score::session::Evaluation;

/// Write the reports of `evaluation` (scored by `run` on the device `device_name`
/// describes) into `out_dir`.
pub fn write(
    run: &LoadedRun,
    evaluation: &Evaluation,
    device_name: &str,
    out_dir: &Path,
) -> Result<()> {
    let e = evaluation;
    let m = &run.manifest;
    std::fs::create_dir_all(out_dir).map_err(|e| PatronError::io(out_dir, e))?;
    let page = ReportPage {
        title: format!("Evaluation of {}", run.dir.display()),
        facts: vec![
            ("run".into(), run.dir.display().to_string()),
            ("model".into(), m.model_kind.clone()),
            ("evaluated file".into(), e.evaluated.clone()),
            (
                "trained on".into(),
                format!("{} ({} rows)", m.dataset.path, m.dataset.rows),
            ),
            ("scored on".into(), device_name.to_string()),
            ("patron".into(), env!("CARGO_PKG_VERSION").into()),
        ],
        probs: &e.probs,
        uncalibrated: &e.raw,
        labels: &e.labels,
        history: &[],
        importance: &[],
        explanations: e.explanations.as_ref(),
    };
    e.report.write(out_dir, &page)?;
    // `patron compare` reads report.json back, verified.
    seal_folder(
        out_dir,
        &[files::REPORT, files::REPORT_MD, files::REPORT_HTML],
    )?;
    Ok(())
}
