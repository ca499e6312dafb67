//! The training loop: AdamW with warmup + cosine (or one-cycle) schedule, class weights,
//! early stopping on a validation metric keeping the best weights, per-epoch resumable
//! checkpoints, then calibration, threshold choice and the test report.
//!
//! Reproducibility: the model is initialized from `train.seed`, and every epoch reseeds
//! both the device (dropout) and the batch shuffle from (seed, epoch), so a run resumed
//! at epoch k continues exactly as the uninterrupted run would on the same backend.

pub mod tune;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::backend::Backend;
use crate::config::{Config, ModelKind, Resolved, Schedule, StopMetric, TrainConfig};
use crate::data::binning::BinTarget;
use crate::data::preprocess::{Encoded, Feature, Preprocessor, raw_texts};
use crate::data::split::{Split, split_csv, split_from_column, split_rows, with_folds};
use crate::data::text::BagWeights;
use crate::data::{Format, ReadOptions, Table, describe_delimiter, read_table, segment_columns};
use crate::error::{PatronError, Result};
use crate::model::sparse::SparseTable;
use crate::model::{Inputs, ModelSpec, Network, TabularInputs, bags, padded_ids};
use crate::progress::Progress;
use crate::report::html::ReportPage;
use crate::report::run_report::{predictions_csv, run_page};
use crate::run::history::{EpochRow, metrics_csv};
use crate::run::{
    self, DatasetInfo, LoadedRun, Manifest, RunStatus, SchemaColumn, SplitRows, files,
    write_atomic, write_json,
};
use crate::score::Scorer;
use crate::score::drift;
use crate::score::importance::permutation_importance;
use crate::score::session::Session;
use crate::task::calibration::Calibration;
use crate::task::labels::{
    Target, class_rows, fit_target, merged_spellings, stop_metric, strata, target_decimal_comma,
    target_keys,
};
use crate::task::regression::Regression;
use crate::task::{self, CrossValidation, Report, Task};

mod epoch_checkpoint;
mod fused_adamw;
mod groups;

use epoch_checkpoint::{EpochWriter, LoopState, Saved};

/// What the user asked `patron train` to do.
#[derive(Debug, Clone, Default)]
pub struct TrainRequest {
    /// The resolved config (required unless resuming; with `resume`, the run's saved
    /// config must equal it).
    pub config: Option<Resolved>,
    /// With `resume` and no `config`: `--set` overrides that the run's saved config must
    /// already satisfy.
    pub overrides: Vec<String>,
    /// Write the run exactly here.
    pub output_dir: Option<PathBuf>,
    /// Continue this interrupted run.
    pub resume: Option<PathBuf>,
    /// Replace an existing run directory at `output_dir` (only a patron run directory).
    pub force: bool,
    /// Set (e.g. by a Ctrl-C handler) to stop after the current epoch's checkpoint.
    pub stop: Arc<AtomicBool>,
}

/// The result of a finished training run.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The test-split report.
    pub report: Report,
    /// Best epoch (1-based).
    pub best_epoch: usize,
    /// Epochs trained in total.
    pub epochs_run: usize,
    /// The best epoch's validation metrics (its row of `metrics.csv`).
    pub best: EpochRow,
}

/// Everything prepared from the config and the data before the loop.
struct Prepared {
    config: Config,
    /// What was chosen for `data.task`, in words.
    task_note: String,
    /// What fitting the preprocessing chose, in words (the crossed pairs).
    notes: Vec<String>,
    /// What the run predicts, from the labels found.
    task: Box<dyn Task>,
    pre: Preprocessor,
    split: Split,
    labels: Vec<f32>,
    encoded: Encoded,
    dataset: DatasetInfo,
    warnings: Vec<String>,
    /// Values of the `report.segments` columns for every row.
    segments: Vec<(String, Vec<String>)>,
    /// Raw texts of the evaluated rows (the test split, or validation without one), for
    /// the explanations; empty for tabular runs.
    eval_texts: Vec<String>,
    /// Each row's 0-based row in the data file, where rows without a target were left out.
    file_rows: Option<Vec<usize>>,
}

/// Train (or resume) a run and export it. Runs in one process are reproducible only one
/// at a time: Burn's random generator (initialization) is seeded per backend, not per run.
pub fn train(
    request: &TrainRequest,
    backend: &Backend,
    progress: &Progress,
) -> Result<TrainOutcome> {
    match &request.resume {
        Some(dir) => resume(request, dir, backend, progress),
        None => fresh(request, backend, progress),
    }
}

fn fresh(request: &TrainRequest, backend: &Backend, progress: &Progress) -> Result<TrainOutcome> {
    let resolved = request.config.as_ref().ok_or_else(|| {
        PatronError::Usage("patron train needs --config FILE (or --resume DIR)".into())
    })?;
    let prepared = prepare(resolved.config.clone(), None)?;
    progress.line(&prepared.task_note);
    for note in &prepared.notes {
        progress.line(note);
    }
    for warning in resolved.warnings.iter().chain(&prepared.warnings) {
        progress.line(&format!("warning: {warning}"));
    }
    let run_dir = match &request.output_dir {
        Some(dir) => dir.clone(),
        None => default_run_dir(&resolved.path, ""),
    };
    let mut manifest = initial_manifest(&prepared, backend)?;
    create_run_dir(&run_dir, request.force, |staging| {
        write_atomic(
            &staging.join(files::CONFIG),
            prepared.config.to_toml().as_bytes(),
        )?;
        write_json(&staging.join(files::PREPROCESS), &prepared.pre)?;
        // `--resume` reads both back, verified.
        run::record_hashes(staging, &mut manifest, &[files::CONFIG, files::PREPROCESS])?;
        write_json(&staging.join(files::MANIFEST), &manifest)
    })?;
    progress.line(&format!("run directory: {}", run_dir.display()));
    // Once the run exists: a refused run writes nothing.
    if let Some(export) = &prepared.config.split.export {
        write_atomic(
            Path::new(export),
            split_csv(&prepared.split, prepared.file_rows.as_deref()).as_bytes(),
        )?;
    }
    run_loop(
        &run_dir,
        prepared,
        manifest,
        None,
        backend,
        progress,
        &request.stop,
    )
}

fn resume(
    request: &TrainRequest,
    dir: &Path,
    backend: &Backend,
    progress: &Progress,
) -> Result<TrainOutcome> {
    let manifest = run::read_manifest(dir)?;
    if manifest.status == RunStatus::Complete {
        return Err(PatronError::checkpoint(
            dir,
            "this run already finished; start a new run instead of resuming",
        ));
    }
    if manifest.format_version != run::FORMAT_VERSION {
        return Err(PatronError::checkpoint(
            dir,
            format!(
                "was started by an earlier patron (run format version {}) and cannot be resumed by this one; start a new run",
                manifest.format_version
            ),
        ));
    }
    let saved_path = dir.join(files::CONFIG);
    let saved_text = String::from_utf8(run::read_verified(dir, &manifest, files::CONFIG)?)
        .map_err(|_| PatronError::checkpoint(&saved_path, "is not UTF-8"))?;
    let saved_name = saved_path.display().to_string();
    let saved = Config::from_toml_str(&saved_text, &saved_name, &[])?;
    let requested = match &request.config {
        Some(resolved) => Some(resolved.config.clone()),
        None if !request.overrides.is_empty() => Some(Config::from_toml_str(
            &saved_text,
            &saved_name,
            &request.overrides,
        )?),
        None => None,
    };
    // A text kind's defaulted metric, and the exact-value flags, crosses, the rows a column
    // must vary in, dropout and batch size a config leaves out, were resolved against the
    // data when the run started (`stop_metric`, `exact_values_for`, `crosses_for`,
    // `min_varying_rows_for`, `dropout_for`, `batch_size_for`): the saved config holds the
    // result.
    let requested = requested.map(|mut c| {
        if c.train.early_stopping.metric_defaulted {
            c.train.early_stopping.metric = saved.train.early_stopping.metric;
            c.train.early_stopping.metric_defaulted = saved.train.early_stopping.metric_defaulted;
        }
        c.data.exact_values = c.data.exact_values.or(saved.data.exact_values);
        c.data.crosses = c.data.crosses.or(saved.data.crosses);
        c.data.min_varying_rows = c.data.min_varying_rows.or(saved.data.min_varying_rows);
        c.model.dropout = c.model.dropout.or(saved.model.dropout);
        c.train.batch_size = c.train.batch_size.or(saved.train.batch_size);
        c
    });
    if let Some(requested) = requested
        && requested != saved
    {
        return Err(PatronError::config(
            saved_path.display().to_string(),
            "--resume continues with the run's saved config; the --config/--set given resolve to a different one (drop them or start a new run)",
        ));
    }
    let pre: Preprocessor = run::parse_verified(dir, &manifest, files::PREPROCESS)?;
    let prepared = prepare(saved, Some((&manifest, pre)))?;
    let resumed = epoch_checkpoint::latest(dir)?;
    progress.line(&format!("resuming {}", dir.display()));
    if manifest.backend != backend.name {
        progress.line(&format!(
            "warning: this run started on {} and resumes on {}; it will not end exactly as an uninterrupted run",
            manifest.backend, backend.name
        ));
    }
    run_loop(
        dir,
        prepared,
        manifest,
        resumed,
        backend,
        progress,
        &request.stop,
    )
}

/// What `patron validate` found: the data as a fresh `patron train` of the same config
/// would see it, after every check training makes before its first epoch.
#[derive(Debug)]
pub struct Validation {
    /// The data file.
    pub data: PathBuf,
    /// Data rows read.
    pub rows: usize,
    /// The resolved config.
    pub config: Config,
    /// Rows of each class, in the order of `pre.labels` (empty for a regression).
    pub class_rows: Vec<usize>,
    /// What was chosen for `data.task`, in words.
    pub task_note: String,
    /// The split (drawn from the seed, or read from `split.column`).
    pub split: Split,
    /// The preprocessing fitted on the training rows.
    pub pre: Preprocessor,
    /// Warnings training would print (capped vocabularies, constant columns, ...).
    pub warnings: Vec<String>,
}

/// Run everything `patron train` does before its first epoch (load the config, read,
/// label, split, fit and apply the preprocessing, find the segment columns) and report
/// what it found, without writing anything.
pub fn validate(resolved: &Resolved) -> Result<Validation> {
    let (mut config, mut warnings) = (resolved.config.clone(), resolved.warnings.clone());
    let path = config.data_path();
    let data = read_data(&config, &path)?;
    let checked = check(&config, &data.table, &path, None)?;
    config.train.early_stopping.metric = checked.stop_metric;
    warnings.extend(data.warnings);
    warnings.extend(checked.warnings);
    Ok(Validation {
        data: path,
        rows: data.file_height,
        config,
        class_rows: checked.class_rows,
        task_note: checked.task_note,
        split: checked.split,
        pre: checked.pre,
        warnings,
    })
}

/// What the checks before the first epoch produce, for `patron validate` and training.
struct Checked {
    /// What was chosen for `data.task`, in words.
    task_note: String,
    /// What fitting the preprocessing chose, in words (none when it was saved).
    notes: Vec<String>,
    /// The early-stopping metric for the target found ([`stop_metric`]).
    stop_metric: StopMetric,
    /// Rows of each class (empty for a regression).
    class_rows: Vec<usize>,
    pre: Preprocessor,
    split: Split,
    labels: Vec<f32>,
    encoded: Encoded,
    warnings: Vec<String>,
    segments: Vec<(String, Vec<String>)>,
}

/// The data file as training reads it: without the rows whose target is blank.
struct Data {
    /// The rows with a target.
    table: Table,
    /// Each kept row's 0-based row in the file, where some were left out.
    file_rows: Option<Vec<usize>>,
    /// Data rows in the file.
    file_height: usize,
    /// What reading found that the user should hear (a sniffed separator, rows left out).
    warnings: Vec<String>,
}

/// Read the config's data file, which must have at least one data row. Rows whose target
/// is blank (or a `data.missing_values` token) are left out with a warning: nothing can be
/// learned from them or judged on them, and Ludwig and AutoGluon drop them the same way.
fn read_data(config: &Config, path: &Path) -> Result<Data> {
    if config.data.sheet.is_some() && Format::of_input(path)? != Format::Spreadsheet {
        return Err(PatronError::data(
            path,
            "is not a workbook (.xlsx, .xls, .ods), so data.sheet does not apply; leave it out",
        ));
    }
    let read = ReadOptions::of(config);
    let table = read_table(path, &read)?;
    let file_height = table.height();
    if file_height == 0 {
        return Err(PatronError::data(path, "has no data rows (only a header)"));
    }
    let mut warnings = Vec::new();
    if let Some(found) = table.sniffed_delimiter() {
        warnings.push(format!(
            "{} is {} separated, not {:?} as data.delimiter says: read it that way (set data.delimiter = {:?} to say so)",
            path.display(),
            describe_delimiter(found),
            config.data.delimiter,
            (found as char).to_string()
        ));
    }
    if let Some(recoded) = table.recoded() {
        warnings.push(format!(
            "{} is not UTF-8: read as {} ({} lines with other characters); save it as UTF-8 if its accents or characters look wrong in the report",
            path.display(),
            recoded.encoding,
            recoded.lines
        ));
    }
    let n = table.preamble();
    if n > 0 {
        let sheet = Format::of_input(path)? == Format::Spreadsheet;
        warnings.push(format!(
            "{}: skipped the {n} {}{} above the header as a title or notes; the table starts below them",
            path.display(),
            if sheet { "row" } else { "line" },
            if n == 1 { "" } else { "s" },
        ));
    }
    if let Some((first, others)) = table.unread_sheets() {
        let quoted: Vec<String> = others.iter().map(|s| format!("{s:?}")).collect();
        if !table.column_names().contains(&config.data.target) {
            return Err(PatronError::data(
                path,
                format!(
                    "data.target column {:?} is not on the first sheet, {first:?}, which was read; set data.sheet to the sheet with the table ({})",
                    config.data.target,
                    quoted.join(", ")
                ),
            ));
        }
        warnings.push(format!(
            "{} has {} sheets: read the first, {first:?}, not {} (set data.sheet to read another)",
            path.display(),
            others.len() + 1,
            quoted.join(", ")
        ));
    }
    let target = &config.data.target;
    // A missing target column is `fit_target`'s error, with the columns there are.
    let kept = table
        .present_rows(target, &read)
        .unwrap_or_else(|| (0..file_height).collect());
    if kept.len() == file_height {
        return Ok(Data {
            table,
            file_rows: None,
            file_height,
            warnings,
        });
    }
    if kept.is_empty() {
        return Err(PatronError::data(
            path,
            format!(
                "target column {target:?} is blank on every row; fill it, or set data.target to the column that holds the label"
            ),
        ));
    }
    let first = (0..file_height).find(|r| kept.binary_search(r).is_err());
    warnings.push(format!(
        "target column {target:?} is blank on {} of {file_height} rows (the first is row {}); they are left out of training, validation and test",
        file_height - kept.len(),
        first.map_or(0, |r| r + 1)
    ));
    Ok(Data {
        table: table.take_rows(path, &kept)?,
        file_rows: Some(kept),
        file_height,
        warnings,
    })
}

/// Label and split the rows, fit the preprocessing (or take the saved one when resuming),
/// encode every row and find the segment columns: each step that can refuse the data.
fn check(
    config: &Config,
    table: &Table,
    path: &Path,
    saved: Option<Preprocessor>,
) -> Result<Checked> {
    let (target, labels, task_note) = fit_target(table, config, path)?;
    let regression = target == Target::Numeric;
    let mut warnings = target_keys(config, &target)?;
    if let Target::Classes(classes) = &target {
        warnings.extend(merged_spellings(table, config, classes));
    }
    let stop_metric = stop_metric(config, &target);
    let class_rows = class_rows(&target, &labels);
    let read = ReadOptions::of(config);
    let strata = strata(&target, &labels);
    let split = match &config.split.column {
        Some(column) => split_from_column(table, column, &read, path)?,
        None => split_rows(&strata, &config.split),
    };
    let split = match config.split.folds {
        Some(k) => with_folds(split, &strata, k, config.split.seed),
        None => split,
    };
    check_split(&split, &labels, regression, path)?;
    let mut notes = Vec::new();
    let pre = match saved {
        Some(pre) => pre,
        None => {
            let classes = match target {
                Target::Classes(classes) => classes,
                Target::Numeric => Vec::new(),
            };
            let target = BinTarget {
                values: &labels,
                classes: classes.len(),
            };
            let (mut pre, fitted) =
                Preprocessor::fit(table, &split.train, classes, target, config, path)?;
            if regression {
                let comma = target_decimal_comma(table, config);
                let fitted = Regression::fit_target(&labels, &split.train, config, path, comma)?;
                pre.regression = Some(fitted);
            }
            warnings.extend(fitted.warnings);
            notes = fitted.crossed;
            pre
        }
    };
    let encoded = pre.transform(table, 0, path)?;
    let segments = segment_columns(table, &config.report.segments, &read, path, true)?;
    Ok(Checked {
        task_note,
        notes,
        stop_metric,
        class_rows,
        pre,
        split,
        labels,
        encoded,
        warnings,
        segments,
    })
}

/// Read and check the data (or reuse the saved preprocessing when resuming), then record
/// what the run directory needs besides: the data file's hash and the evaluated texts.
fn prepare(config: Config, resumed: Option<(&Manifest, Preprocessor)>) -> Result<Prepared> {
    let path = config.data_path();
    let data = read_data(&config, &path)?;
    let sha256 = run::sha256_file(&path)?;
    let saved = match resumed {
        Some((manifest, _)) if manifest.dataset.sha256 != sha256 => {
            return Err(PatronError::data(
                &path,
                "changed since the run started (SHA-256 differs); resume needs the same data file",
            ));
        }
        Some((_, pre)) => Some(pre),
        None => None,
    };
    let checked = check(&config, &data.table, &path, saved)?;
    let mut config = config;
    config.train.early_stopping.metric = checked.stop_metric;
    // A run's config says what its preprocessing and network used, not "unset".
    let regression = checked.pre.regression.is_some();
    if !config.model.kind.is_text() {
        config.data.exact_values = Some(config.data.exact_values_for(regression));
        config.data.crosses = Some(config.data.crosses_for(checked.pre.labels.len()));
        config.data.min_varying_rows = Some(config.data.min_varying_rows_for(regression));
    }
    config.model.dropout = Some(config.model.dropout_for(regression));
    config.train.batch_size = Some(config.train.batch_size_for(regression));
    let eval_texts = match &checked.pre.text {
        Some(t) => raw_texts(&data.table, &t.columns, evaluated_rows(&checked.split)),
        None => Vec::new(),
    };
    let dataset = DatasetInfo {
        path: std::path::absolute(&path)
            .unwrap_or(path.clone())
            .display()
            .to_string(),
        sha256,
        rows: data.file_height,
    };
    Ok(Prepared {
        config,
        task_note: checked.task_note,
        notes: checked.notes,
        task: task::for_run(&checked.pre),
        pre: checked.pre,
        split: checked.split,
        labels: checked.labels,
        encoded: checked.encoded,
        dataset,
        warnings: data.warnings.into_iter().chain(checked.warnings).collect(),
        segments: checked.segments,
        eval_texts,
        file_rows: data.file_rows,
    })
}

/// The rows the final report scores: the test split, or without one the validation rows
/// (a cross-validated run's training rows, by their out-of-fold scores).
fn evaluated_rows(split: &Split) -> &[usize] {
    if !split.test.is_empty() {
        &split.test
    } else if split.folds.is_empty() {
        &split.valid
    } else {
        &split.train
    }
}

fn check_split(split: &Split, labels: &[f32], regression: bool, path: &Path) -> Result<()> {
    let views: Vec<(String, Cow<Split>)> = if split.folds.is_empty() {
        vec![(String::new(), Cow::Borrowed(split))]
    } else {
        (0..split.folds.len())
            .map(|k| (format!("fold {}'s ", k + 1), Cow::Owned(split.fold(k))))
            .collect()
    };
    for (prefix, view) in &views {
        for (name, rows) in [("training", &view.train), ("validation", &view.valid)] {
            let first = rows.first().map(|&r| labels[r]);
            if rows.iter().all(|&r| Some(labels[r]) == first) {
                let fix = if split.folds.is_empty() {
                    "split.valid / split.test"
                } else {
                    "split.folds / split.test"
                };
                return Err(PatronError::data(
                    path,
                    format!(
                        "{prefix}the {name} split ({} rows) holds only one {}; use more data or change {fix}",
                        rows.len(),
                        if regression { "target value" } else { "class" }
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `checkpoints/<config file stem><kind>-<UTC time>`: where a run (`kind` "") or a search
/// (`kind` "-tune") goes when no directory is given.
pub(crate) fn default_run_dir(config_path: &Path, kind: &str) -> PathBuf {
    let stem = config_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    PathBuf::from("checkpoints").join(format!("{stem}{kind}-{stamp}"))
}

/// Create the run directory with its first files, atomically: they are written into a
/// hidden sibling that is renamed into place, so a kill at any moment leaves either no run
/// directory or one that `--resume` can load. An existing non-empty directory is never
/// overwritten, except a patron run directory with `force`.
fn create_run_dir(dir: &Path, force: bool, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let exists = dir.exists();
    if exists && !run::is_empty_dir(dir)? {
        let is_run = dir.join(files::MANIFEST).is_file();
        if !(force && is_run) {
            let hint = if force {
                "it is not a patron run directory, so --force does not replace it"
            } else {
                "choose a new --output-dir, continue it with --resume, or replace it with --force"
            };
            return Err(PatronError::Usage(format!(
                "{}: already exists; {hint}",
                dir.display()
            )));
        }
    }
    run::publish_dir(dir, exists, write)
}

fn initial_manifest(p: &Prepared, backend: &Backend) -> Result<Manifest> {
    Ok(Manifest {
        format_version: run::FORMAT_VERSION,
        patron_version: env!("CARGO_PKG_VERSION").into(),
        status: RunStatus::Training,
        model_kind: p.config.model.kind.as_str().into(),
        backend: backend.name.into(),
        device: backend.description.clone(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        dataset: p.dataset.clone(),
        rows: SplitRows {
            train: p.split.train.len(),
            valid: p.split.valid.len(),
            test: p.split.test.len(),
        },
        features: p
            .pre
            .features
            .iter()
            // A cross reads two columns listed on their own.
            .filter(|f| f.is_column())
            .map(|f| SchemaColumn {
                name: f.name().to_string(),
                kind: match f {
                    Feature::Numeric { date: true, .. } => "date".into(),
                    Feature::Numeric { .. } => "numeric".into(),
                    Feature::Categorical { .. } | Feature::Cross { .. } => "categorical".into(),
                },
            })
            .chain(p.pre.text.iter().flat_map(|t| {
                t.columns.iter().map(|c| SchemaColumn {
                    name: c.clone(),
                    kind: "text".into(),
                })
            }))
            .collect(),
        task: p.task.name().into(),
        labels: p.pre.labels.clone(),
        positive: p.task.positive_label(),
        threshold: None,
        class_offsets: None,
        best_epoch: None,
        epochs_run: 0,
        training_seconds: 0.0,
        model: ModelSpec::new(&p.pre, &p.config.model, p.task.outputs())?,
        folds: p.config.split.folds,
        files: Default::default(),
    })
}

/// Steps of `total` (at least 1) over which the schedule's rate rises: one-cycle's first
/// 30 %, else `train.warmup` of them.
fn warmup_steps(cfg: &TrainConfig, total: f64) -> f64 {
    match cfg.schedule {
        Schedule::OneCycle => (0.3 * total).max(1.0),
        Schedule::Cosine | Schedule::Constant | Schedule::Linear => (cfg.warmup * total).round(),
    }
}

/// The learning rate at `step` of `total` steps.
pub fn learning_rate(cfg: &TrainConfig, step: usize, total: usize) -> f64 {
    let peak = cfg.learning_rate;
    let total = total.max(1) as f64;
    let s = step as f64;
    let warm = warmup_steps(cfg, total);
    let cosine = |from: f64, to: f64, progress: f64| {
        to + (from - to) * 0.5 * (1.0 + (std::f64::consts::PI * progress.clamp(0.0, 1.0)).cos())
    };
    match cfg.schedule {
        Schedule::OneCycle => {
            if s < warm {
                peak / 25.0 + (peak - peak / 25.0) * s / warm
            } else {
                cosine(peak, peak / 1e4, (s - warm) / (total - warm).max(1.0))
            }
        }
        Schedule::Cosine | Schedule::Constant | Schedule::Linear => {
            if s < warm {
                peak * (s + 1.0) / warm
            } else {
                let progress = (s - warm) / (total - warm).max(1.0);
                match cfg.schedule {
                    Schedule::Constant => peak,
                    // transformers' get_linear_schedule_with_warmup: to zero at the end.
                    Schedule::Linear => peak * (1.0 - progress).max(0.0),
                    _ => cosine(peak, peak * 0.01, progress),
                }
            }
        }
    }
}

/// One optimizer step on a batch: forward, the task's weighted loss, backward, AdamW.
/// `targets` is `[batch, outputs]` as [`Task::targets`] encodes them; `lr` is one rate, or
/// a rate per parameter group. Returns the updated network, the batch loss (still on the
/// autodiff device) and, for `text_bag`, the gradient of the loss with respect to the
/// batch's bags, which the sparse table update needs.
#[allow(clippy::too_many_arguments)] // one batch's parts
pub fn train_step(
    model: Network,
    optim: &mut ModuleOptimizer,
    task: &dyn Task,
    inputs: Inputs,
    targets: Tensor<2>,
    weights: Tensor<1>,
    lr: impl Into<ModuleLearningRate>,
    max_grad_norm: f64,
) -> (Network, Tensor<1>, Option<Tensor<2>>) {
    let (grads, loss, bag_grad) = gradients(&model, task, inputs, targets, weights, 1.0);
    (
        apply_gradients(model, optim, grads, lr, max_grad_norm),
        loss,
        bag_grad,
    )
}

/// The gradients of one batch's loss times `scale` (a batch's share of the rows of an
/// accumulated step), with the unscaled loss and `text_bag`'s bag gradient.
pub fn gradients(
    model: &Network,
    task: &dyn Task,
    inputs: Inputs,
    targets: Tensor<2>,
    weights: Tensor<1>,
    scale: f32,
) -> (GradientsParams, Tensor<1>, Option<Tensor<2>>) {
    let leaf = match &inputs {
        Inputs::Bags(bags) => Some(bags.clone()),
        _ => None,
    };
    let (z, members) = model.forward_members(inputs);
    let (targets, weights) = if members > 1 {
        // Each member is trained on every row: the targets and weights repeat per member,
        // in the order of the members' logits (`b * members + i`).
        let [rows, outputs] = targets.dims();
        let targets = targets
            .unsqueeze_dim::<3>(1)
            .repeat_dim(1, members)
            .reshape([rows * members, outputs]);
        let weights = weights
            .unsqueeze_dim::<2>(1)
            .repeat_dim(1, members)
            .reshape([rows * members]);
        (targets, weights)
    } else {
        (targets, weights)
    };
    let loss = task.loss(z, targets, weights);
    let mut grads = if scale == 1.0 {
        loss.backward()
    } else {
        loss.clone().mul_scalar(scale).backward()
    };
    let bag_grad = leaf.and_then(|t| t.grad_remove(&mut grads));
    (GradientsParams::from_grads(grads, model), loss, bag_grad)
}

/// Clip `grads` to `max_grad_norm` (0: off) and take one AdamW step at `lr`.
pub fn apply_gradients(
    model: Network,
    optim: &mut ModuleOptimizer,
    mut grads: GradientsParams,
    lr: impl Into<ModuleLearningRate>,
    max_grad_norm: f64,
) -> Network {
    if max_grad_norm > 0.0 {
        clip_global_norm(&mut grads, &model, max_grad_norm);
    }
    optim.step(lr, model, grads)
}

/// Scale `grads` so their global L2 norm over every parameter of `model` is at most
/// `max_norm`, as PyTorch's `clip_grad_norm_` does (Burn's own clipping is per parameter).
/// Returns the norm before clipping.
pub fn clip_global_norm(grads: &mut GradientsParams, model: &Network, max_norm: f64) -> f64 {
    struct SumSquares<'a> {
        grads: &'a GradientsParams,
        total: f64,
    }
    impl ModuleVisitor for SumSquares<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                self.total += g.square().sum().into_scalar::<f32>() as f64;
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f32,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                self.grads.register(param.id, g.mul_scalar(self.factor));
            }
        }
    }
    let mut sum = SumSquares { grads, total: 0.0 };
    model.visit(&mut sum);
    let norm = sum.total.sqrt();
    if norm > max_norm {
        let factor = (max_norm / (norm + 1e-6)) as f32;
        model.visit(&mut Scale { grads, factor });
    }
    norm
}

/// One `text_bag` step: the batch's bags, summed on the host from the table, enter
/// [`train_step`] as an autodiff leaf; the leaf's gradient then updates only the table
/// rows the batch touched (sparse lazy Adam). Returns the updated network and the loss.
#[allow(clippy::too_many_arguments)] // one batch's parts, as in `train_step`
pub fn text_bag_step(
    model: Network,
    optim: &mut ModuleOptimizer,
    task: &dyn Task,
    table: &mut SparseTable,
    docs: &[&[u32]],
    shares: BagWeights,
    targets: Tensor<2>,
    weights: Tensor<1>,
    lr: f64,
    device: &Device,
) -> Result<(Network, Tensor<1>)> {
    let bags = bags(&table.weights, table.dim, docs, shares);
    let bags = Tensor::<2>::from_data(TensorData::new(bags, [docs.len(), table.dim]), device)
        .require_grad();
    let (model, loss, grad) = train_step(
        model,
        optim,
        task,
        Inputs::Bags(bags),
        targets,
        weights,
        lr,
        0.0,
    );
    let grad = grad
        .ok_or_else(|| PatronError::Internal("the bags got no gradient".into()))?
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| PatronError::Internal(format!("reading gradients: {e:?}")))?;
    table.step(docs, &grad, shares, lr);
    Ok((model, loss))
}

fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(epoch as u64 + 1)
}

fn select_labels(labels: &[f32], rows: &[usize]) -> Vec<f32> {
    rows.iter().map(|&r| labels[r]).collect()
}

/// The training split as the loop consumes it.
// Built once per run; the size difference is tensor handles, not data.
#[allow(clippy::large_enum_variant)]
enum TrainData {
    /// Tabular rows, pre-tensorized once on the device; batches are gathered there.
    Tabular(TabularInputs),
    /// Token ids per row; batches are built on the host (bags are summed from the host
    /// table; Transformer batches are padded to their longest text only).
    Text(Vec<Vec<u32>>),
}

/// The host copy of `text_bag`'s table, read from a network.
fn host_table(model: &Network) -> Result<Option<SparseTable>> {
    match model {
        Network::Bag(bag) => Ok(Some(SparseTable::new(bag.host_table()?, bag.dim()))),
        _ => Ok(None),
    }
}

/// The network with the host table written back into it (before validating or saving).
fn with_host_table(model: Network, sparse: &Option<SparseTable>, device: &Device) -> Network {
    match (model, sparse) {
        (Network::Bag(bag), Some(table)) => {
            let rows = table.weights.len() / table.dim;
            let t = Tensor::<2>::from_data(
                TensorData::new(table.weights.clone(), [rows, table.dim]),
                device,
            );
            Network::Bag(bag.with_table(t))
        }
        (model, _) => model,
    }
}

/// The training split as the loop consumes it.
struct TrainSet<'a> {
    data: TrainData,
    /// The run's task, whose loss the steps minimize.
    task: &'a dyn Task,
    /// Target of every training row, as the task encodes it.
    targets: Tensor<2>,
    /// Class weight of every training row.
    weights: Tensor<1>,
    rows: usize,
    /// Batches are bucketed by length (a `text_encoder`, whose batches pad to their
    /// longest text; the other kinds keep their measured batch order).
    bucketed: bool,
    /// Batches per optimizer step: `train.accumulate`, except for `text_bag`, whose
    /// sparse table steps with every batch.
    accumulate: usize,
    /// The id that pads a batch of token ids.
    pad_id: u32,
    /// How a `text_bag` text's ids share its bag.
    bag: BagWeights,
}

impl<'a> TrainSet<'a> {
    fn new(
        p: &'a Prepared,
        train_rows: &[usize],
        cfg: &TrainConfig,
        spec: &ModelSpec,
        ad: &Device,
    ) -> TrainSet<'a> {
        let train_y = select_labels(&p.labels, train_rows);
        let train_w = p.task.row_weights(&train_y, cfg.class_weight);
        let train_enc = p.encoded.subset(train_rows);
        let n = train_rows.len();
        let data = if spec.text.is_some() {
            TrainData::Text(train_enc.tokens)
        } else {
            // Pre-tensorize the training split once; batches are gathered on the device.
            TrainData::Tabular(TabularInputs::from_encoded(&train_enc, spec, ad))
        };
        let targets = Tensor::<2>::from_data(
            TensorData::new(p.task.targets(&train_y), [n, p.task.outputs()]),
            ad,
        );
        let weights = Tensor::<1>::from_data(TensorData::new(train_w, [n]), ad);
        TrainSet {
            data,
            task: p.task.as_ref(),
            targets,
            weights,
            rows: n,
            bucketed: spec.encoder_layers().is_some(),
            pad_id: spec.pad_id(),
            bag: spec.bag_weights(),
            accumulate: match &spec.text {
                Some(t) if t.kind == ModelKind::TextBag => 1,
                _ => cfg.accumulate,
            },
        }
    }
}

/// The model being trained and everything an epoch checkpoint restores with it.
struct Training {
    model: Network,
    optim: ModuleOptimizer,
    /// `text_bag`'s host table and its sparse optimizer state.
    sparse: Option<SparseTable>,
    /// The best weights so far (scoring copy), once an epoch has run.
    best: Option<Network>,
    state: LoopState,
}

impl Training {
    /// A model initialized from `train.seed`, or the one saved in the epoch checkpoint
    /// `resume_from` with its optimizers and loop state.
    fn start(
        spec: &ModelSpec,
        cfg: &TrainConfig,
        backend: &Backend,
        resume_from: Option<&Saved>,
    ) -> Result<Training> {
        let optim = groups::optimizer(cfg, spec);
        if let Some(saved) = resume_from {
            return epoch_checkpoint::restore(saved, spec, optim, backend);
        }
        let ad = backend.device.clone().autodiff();
        ad.seed(cfg.seed);
        let model = spec.init_pretrained(&ad)?;
        Ok(Training {
            sparse: host_table(&model)?,
            model,
            optim,
            best: None,
            state: LoopState::default(),
        })
    }

    /// One pass over the training rows in the epoch's shuffled order, in batches of
    /// `batch`, an optimizer step every `train.accumulate` batches. Returns the mean
    /// training loss and the last learning rate. Takes the training by value so each
    /// step owns the weights it replaces (shared buffers would be copied by the fused
    /// optimizer), and gives it back.
    #[allow(clippy::too_many_arguments)] // the epoch's parts
    fn epoch(
        mut self,
        set: &TrainSet,
        cfg: &TrainConfig,
        batch: usize,
        total_steps: usize,
        rates: &groups::LearningRates,
        ad: &Device,
        progress: &Progress,
    ) -> Result<(Training, f64, f64)> {
        let (n, epoch) = (set.rows, self.state.epochs_done);
        ad.seed(epoch_seed(cfg.seed, epoch));
        crate::model::dropout::reseed(epoch_seed(cfg.seed, epoch));
        let mut rng = ChaCha8Rng::seed_from_u64(epoch_seed(cfg.seed, epoch));
        let lengths = match &set.data {
            TrainData::Text(tokens) if set.bucketed => Some(tokens.as_slice()),
            _ => None,
        };
        let batches = batch_order(n, batch, lengths, &mut rng);
        let accumulate = set.accumulate;
        progress.epoch_start(batches.len());
        let plain = ad.clone().without_autodiff();
        let mut loss_sum = Tensor::<1>::zeros([1], &plain);
        let mut lr = 0.0;
        let mut pending = GradientsAccumulator::<Network>::new();
        let mut seen = 0;
        for (b, rows) in batches.iter().enumerate() {
            let first = b - b % accumulate;
            let last = (first + accumulate).min(batches.len());
            let step_rows: usize = batches[first..last].iter().map(Vec::len).sum();
            let index: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
            let index = Tensor::<1, Int>::from_data(TensorData::new(index, [rows.len()]), ad);
            lr = learning_rate(cfg, self.state.step, total_steps);
            let docs: Vec<&[u32]> = match &set.data {
                TrainData::Text(tokens) => rows.iter().map(|&r| tokens[r].as_slice()).collect(),
                TrainData::Tabular(_) => Vec::new(),
            };
            let targets = set.targets.clone().select(0, index.clone());
            let weights = set.weights.clone().select(0, index.clone());
            let loss = match (&set.data, &mut self.sparse) {
                (TrainData::Text(_), Some(table)) => {
                    let loss;
                    (self.model, loss) = text_bag_step(
                        self.model,
                        &mut self.optim,
                        set.task,
                        table,
                        &docs,
                        set.bag,
                        targets,
                        weights,
                        lr,
                        ad,
                    )?;
                    self.state.step += 1;
                    loss
                }
                (data, _) => {
                    let inputs = match data {
                        TrainData::Tabular(t) => Inputs::Tabular(t.select(&index)),
                        TrainData::Text(_) => Inputs::Tokens(padded_ids(&docs, set.pad_id, ad)),
                    };
                    let share = rows.len() as f32 / step_rows as f32;
                    let (grads, loss, _) =
                        gradients(&self.model, set.task, inputs, targets, weights, share);
                    pending.accumulate(&self.model, grads);
                    if b + 1 == last {
                        self.model = apply_gradients(
                            self.model,
                            &mut self.optim,
                            pending.grads(),
                            rates.at(lr),
                            cfg.max_grad_norm,
                        );
                        self.state.step += 1;
                    }
                    loss
                }
            };
            loss_sum = loss_sum
                + loss
                    .detach()
                    .without_autodiff()
                    .mul_scalar(rows.len() as f32);
            seen += rows.len();
            if b % 16 == 15 || b + 1 == batches.len() {
                let mean = loss_sum.clone().into_scalar::<f32>() as f64 / seen as f64;
                progress.batch(b + 1, Some(mean));
            }
        }
        let loss = loss_sum.into_scalar::<f32>() as f64 / n as f64;
        Ok((self, loss, lr))
    }
}

/// An epoch's batches of the rows `0..n` in `rng`'s shuffled order. With `lengths`
/// (token lists), batches are bucketed by length as Hugging Face's `group_by_length`
/// does: each run of 50 batches of the shuffled order is sorted longest first and cut
/// into batches, and the batches are shuffled, so a batch pads little and each epoch
/// still sees the rows in a new order.
fn batch_order(
    n: usize,
    batch: usize,
    lengths: Option<&[Vec<u32>]>,
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let Some(lengths) = lengths else {
        return order.chunks(batch).map(<[usize]>::to_vec).collect();
    };
    for run in order.chunks_mut(batch * 50) {
        run.sort_by_key(|&r| std::cmp::Reverse(lengths[r].len()));
    }
    let mut batches: Vec<Vec<usize>> = order.chunks(batch).map(<[usize]>::to_vec).collect();
    batches.shuffle(rng);
    batches
}

/// Train the epochs left (all of them, or those after `resume_from`), checkpointing each,
/// then calibrate, report and export the best weights. A cross-validated run trains its
/// fold models one after another, each resumable, then exports their ensemble.
fn run_loop(
    run_dir: &Path,
    p: Prepared,
    manifest: Manifest,
    resume_from: Option<Saved>,
    backend: &Backend,
    progress: &Progress,
    stop_flag: &AtomicBool,
) -> Result<TrainOutcome> {
    let members = if p.split.folds.is_empty() {
        let place = Place {
            run_dir,
            state_dir: run_dir,
        };
        let cfg = &p.config.train;
        vec![fit_epochs(
            place,
            &p,
            &p.split,
            cfg,
            &manifest.model,
            resume_from,
            backend,
            progress,
            stop_flag,
        )?]
    } else {
        fit_folds(run_dir, &p, &manifest.model, backend, progress, stop_flag)?
    };
    finish(run_dir, &p, manifest, members, &backend.device)
}

/// Where an epoch loop writes: the run directory (named in messages) and the folder of
/// its epoch checkpoints and `metrics.csv` (the run's, or a fold's).
#[derive(Clone, Copy)]
struct Place<'a> {
    run_dir: &'a Path,
    state_dir: &'a Path,
}

/// A cross-validated run's fold models, trained one after another on the other folds and
/// early-stopped on their own (fold `k` from 0 seeded `train.seed + k`). A fold that
/// finished is read back (resume); one that was interrupted resumes from its checkpoint.
fn fit_folds(
    run_dir: &Path,
    p: &Prepared,
    spec: &ModelSpec,
    backend: &Backend,
    progress: &Progress,
    stop_flag: &AtomicBool,
) -> Result<Vec<(Network, LoopState)>> {
    let count = p.split.folds.len();
    let mut members = Vec::with_capacity(count);
    // Whether a fold finished in this session: a stop then ends the run before the next.
    let mut trained = false;
    for k in 0..count {
        if let Some(done) = epoch_checkpoint::finished_fold(run_dir, k + 1, spec, backend)? {
            members.push(done);
            continue;
        }
        if trained && stop_flag.load(Ordering::SeqCst) {
            return Err(PatronError::Interrupted(format!(
                "interrupted after fold {k} of {count}; the finished folds are saved: continue with `patron train --resume {}`",
                run_dir.display()
            )));
        }
        let state_dir = run_dir.join(files::fold_dir(k + 1));
        std::fs::create_dir_all(&state_dir).map_err(|e| PatronError::io(&state_dir, e))?;
        progress.line(&format!(
            "fold {}/{count}: {} training rows, {} validation rows",
            k + 1,
            p.split.train.len() - p.split.folds[k].len(),
            p.split.folds[k].len()
        ));
        let cfg = TrainConfig {
            seed: p.config.train.seed.wrapping_add(k as u64),
            ..p.config.train.clone()
        };
        let place = Place {
            run_dir,
            state_dir: &state_dir,
        };
        let resumed = epoch_checkpoint::latest(&state_dir)?;
        let (best, state) = fit_epochs(
            place,
            p,
            &p.split.fold(k),
            &cfg,
            spec,
            resumed,
            backend,
            progress,
            stop_flag,
        )?;
        let columns = p.task.history_columns();
        epoch_checkpoint::save_fold(run_dir, k + 1, &best, &state, columns)?;
        members.push((best, state));
        trained = true;
    }
    Ok(members)
}

/// The epoch loop with early stopping: returns the best weights and the final loop state.
#[allow(clippy::too_many_arguments)] // the loop's parts
fn fit_epochs(
    place: Place,
    p: &Prepared,
    split: &Split,
    cfg: &TrainConfig,
    spec: &ModelSpec,
    resume_from: Option<Saved>,
    backend: &Backend,
    progress: &Progress,
    stop_flag: &AtomicBool,
) -> Result<(Network, LoopState)> {
    let run_dir = place.run_dir;
    let plain = backend.device.clone();
    let ad = backend.device.clone().autodiff();
    let set = TrainSet::new(p, &split.train, cfg, spec, &ad);
    let valid_enc = p.encoded.subset(&split.valid);
    let valid_y = select_labels(&p.labels, &split.valid);
    let mut t = Training::start(spec, cfg, backend, resume_from.as_ref())?;

    let batch = cfg
        .batch_size_for(p.pre.regression.is_some())
        .min(set.rows)
        .max(1);
    let steps_per_epoch = set.rows.div_ceil(batch).div_ceil(set.accumulate);
    let cfg = &TrainConfig {
        epochs: cfg.epochs.max(cfg.min_steps.div_ceil(steps_per_epoch)),
        ..cfg.clone()
    };
    if cfg.epochs > p.config.train.epochs && resume_from.is_none() {
        progress.line(&format!(
            "training up to {} epochs: train.min_steps = {} at {steps_per_epoch} steps per epoch",
            cfg.epochs, cfg.min_steps
        ));
    }
    let total_steps = steps_per_epoch * cfg.epochs;
    // Patience counts from the end of the warmup: while the rate still rises, scores at
    // the default threshold jump around on a small split (an untrained epoch 1 once stayed
    // best and ended a run at epoch 4, at the majority class's accuracy).
    let warm_steps = warmup_steps(cfg, total_steps.max(1) as f64);
    let rates = groups::LearningRates::new(cfg, spec);
    let stop = cfg.early_stopping.clone();
    progress.start(t.state.epochs_done, cfg.epochs);

    let mut writer = EpochWriter::new(p.task.history_columns());
    while t.state.epochs_done < cfg.epochs {
        if stop.patience > 0 && t.state.bad_epochs >= stop.patience {
            break;
        }
        let epoch = t.state.epochs_done;
        let started = Instant::now();
        let train_loss;
        let lr;
        (t, train_loss, lr) = t.epoch(&set, cfg, batch, total_steps, &rates, &ad, progress)?;
        t.model = with_host_table(t.model, &t.sparse, &ad);
        let valid_model = t.model.valid();
        let host = t.sparse.as_ref().map(|t| t.weights.as_slice());
        let valid_z = Scorer::with_table(&valid_model, spec, host, &plain)?.logits(&valid_enc)?;
        if !train_loss.is_finite() || valid_z.iter().any(|z| !z.is_finite()) {
            writer.finish()?;
            progress.finish();
            let kept = if epoch == 0 {
                // Nothing in it can be resumed, and left behind it would make the same
                // --output-dir refuse the next attempt.
                let _ = std::fs::remove_dir_all(run_dir);
                "no epoch finished, so the run directory was removed".to_string()
            } else {
                format!(
                    "the checkpoint of epoch {epoch} is kept in {}",
                    run_dir.display()
                )
            };
            return Err(PatronError::Diverged(format!(
                "training diverged at epoch {} (train loss {train_loss}, non-finite scores); {kept}; lower train.learning_rate and start a new run",
                epoch + 1
            )));
        }
        let v = p.task.validate(&valid_z, &valid_y);
        let row = EpochRow {
            epoch: epoch + 1,
            lr,
            train_loss,
            seconds: started.elapsed().as_secs_f64(),
            valid: v,
        };
        let value = row.metric(stop.metric);
        let state = &mut t.state;
        let improved = match state.best_value {
            None => true,
            Some(b) if stop.metric.higher_is_better() => value > b,
            Some(b) => value < b,
        };
        if improved {
            state.best_value = Some(value);
            state.best_epoch = epoch + 1;
            state.bad_epochs = 0;
            t.best = Some(valid_model);
        } else if ((epoch + 1) * steps_per_epoch) as f64 > warm_steps {
            state.bad_epochs += 1;
        }
        let watched = p.task.watched();
        let watched = format!("{watched} {:.4}", row.get(watched));
        progress.epoch_end(&format!(
            "epoch {}/{} lr {:.2e} train_loss {:.4} valid_loss {:.4} {watched}{} {:.1}s",
            epoch + 1,
            cfg.epochs,
            row.lr,
            row.train_loss,
            row.get("valid_loss"),
            if improved { " *" } else { "" },
            row.seconds
        ));
        state.seconds += row.seconds;
        state.history.push(row);
        state.epochs_done += 1;
        if spec.encoder_layers().is_some() {
            // Only an encoder's steps leave hundreds of MB free in the heap; trimming a
            // small model's heap each epoch would only fault the pages back in.
            crate::backend::release_free_memory();
        }
        writer.save(
            place.state_dir,
            &t.state,
            &t.model,
            t.best.as_ref().expect("set on the first epoch"),
            &t.optim,
            t.sparse.as_ref(),
        )?;
        if stop_flag.load(Ordering::SeqCst) && t.state.epochs_done < cfg.epochs {
            writer.finish()?;
            progress.finish();
            return Err(PatronError::Interrupted(format!(
                "interrupted after epoch {}; the checkpoint is saved: continue with `patron train --resume {}`",
                t.state.epochs_done,
                run_dir.display()
            )));
        }
    }
    writer.finish()?;
    progress.finish();
    let best = t
        .best
        .ok_or_else(|| PatronError::Internal("no epoch was trained".into()))?;
    Ok((best, t.state))
}

/// After the loop: calibrate and pick the decision threshold (or class offsets) on
/// validation (a cross-validated run: on every training row's out-of-fold score), score
/// the evaluated split, explain text models, then export the run. `members` holds the best
/// weights and loop state of the one model, or of each fold model.
fn finish(
    run_dir: &Path,
    p: &Prepared,
    mut manifest: Manifest,
    members: Vec<(Network, LoopState)>,
    plain: &Device,
) -> Result<TrainOutcome> {
    let cfg = &p.config.train;
    let task = p.task.as_ref();
    let cv = !p.split.folds.is_empty();
    let (models, states): (Vec<Network>, Vec<LoopState>) = members.into_iter().unzip();
    // The run as `patron evaluate` loads it, scored through the same session; its
    // calibration and decision are fitted below.
    let run = LoadedRun {
        dir: run_dir.to_path_buf(),
        manifest: manifest.clone(),
        config: p.config.clone(),
        preprocess: p.pre.clone(),
        calibration: Calibration::identity(),
        models,
        task: task::for_run(&p.pre),
        decision: manifest.decision(),
    };
    let session = Session::new(run, plain)?;
    let spec = &manifest.model;
    // The rows calibration and the decision are fitted on, with their logits.
    let (fit_rows, fit_z) = if cv {
        (&p.split.train, out_of_fold(p, session.scorer())?)
    } else {
        let z = session.scorer().logits(&p.encoded.subset(&p.split.valid))?;
        (&p.split.valid, z)
    };
    let fit_y = select_labels(&p.labels, fit_rows);
    let eval_rows = evaluated_rows(&p.split);
    let evaluated_on = match (p.split.test.is_empty(), cv) {
        (false, _) => "test",
        (true, false) => "valid",
        (true, true) => "out_of_fold",
    };
    let test_enc = p.encoded.subset(eval_rows);
    let test_y = select_labels(&p.labels, eval_rows);
    let segments: Vec<(String, Vec<String>)> = p
        .segments
        .iter()
        .map(|(name, values)| {
            (
                name.clone(),
                eval_rows.iter().map(|&r| values[r].clone()).collect(),
            )
        })
        .collect();
    let importance = if manifest.model.text.is_none() {
        // Scored on rows the model never trained on: validation, or the first fold by
        // its own model.
        let first;
        let (scorer, rows) = if cv {
            first = Scorer::new(&session.run().models[0], spec, plain)?;
            (&first, &p.split.folds[0])
        } else {
            (session.scorer(), &p.split.valid)
        };
        let (enc, y) = (p.encoded.subset(rows), select_labels(&p.labels, rows));
        permutation_importance(scorer, task, &p.pre, &enc, &y, cfg.seed)?
    } else {
        Vec::new()
    };
    // Calibrate and fit the decision (threshold or class offsets).
    let (calibration, decision) = task.fit(cfg.calibration, cfg.threshold, &fit_z, &fit_y);
    let session = session.calibrated(calibration, decision.clone());
    let test_z = if cv && p.split.test.is_empty() {
        fit_z.clone()
    } else {
        session.scorer().logits(&test_enc)?
    };
    let mut evaluation = session.evaluation(
        &test_z,
        test_y,
        evaluated_on.to_string(),
        segments,
        &p.eval_texts,
    )?;

    manifest.set_decision(&decision);
    manifest.epochs_run = states.iter().map(|s| s.epochs_done).sum();
    manifest.training_seconds = states.iter().map(|s| s.seconds).sum();
    let best_rows = states
        .iter()
        .map(|state| {
            state
                .history
                .iter()
                .find(|row| row.epoch == state.best_epoch)
                .cloned()
                .ok_or_else(|| PatronError::Internal("the best epoch has no metrics".into()))
        })
        .collect::<Result<Vec<EpochRow>>>()?;
    let (best_epoch, best) = if cv {
        let per_fold: Vec<_> = best_rows.iter().map(|row| row.valid.clone()).collect();
        evaluation.report.set_cv(CrossValidation::new(&per_fold));
        mean_row(&best_rows)
    } else {
        manifest.best_epoch = Some(states[0].best_epoch);
        (states[0].best_epoch, best_rows[0].clone())
    };
    let e = &evaluation;
    // A cross-validated run's charts show its first fold's epochs; every fold's are in
    // its folder.
    let history = &states[0].history;
    let mut page = run_page(
        run_dir,
        &manifest,
        history,
        &importance,
        &e.probs,
        &e.raw,
        &e.labels,
    );
    page.explanations = e.explanations.as_ref();
    let predictions = predictions_csv(task, &e.labels, &test_z);
    let held_out = task.decide(&e.probs, &decision);
    let profile = drift::profile(&p.pre, &p.encoded, &p.split.train, &e.probs, &held_out);
    write_json(&run_dir.join(files::PROFILE), &profile)?;
    if cv {
        let text = oof_csv(p, session.run(), &fit_z);
        write_atomic(&run_dir.join(files::OOF_PREDICTIONS), text.as_bytes())?;
    }
    export(
        run_dir,
        &mut manifest,
        &session,
        &e.report,
        &page,
        &predictions,
    )?;
    Ok(TrainOutcome {
        run_dir: run_dir.to_path_buf(),
        report: evaluation.report.clone(),
        best_epoch,
        epochs_run: manifest.epochs_run,
        best,
    })
}

/// Each training row's logits from the fold model that did not train on it (the
/// `scorer`'s member of that fold), in the order of `split.train`.
fn out_of_fold(p: &Prepared, scorer: &Scorer) -> Result<Vec<f64>> {
    let outputs = p.task.outputs();
    let mut z = vec![0f64; p.split.train.len() * outputs];
    for (k, fold) in p.split.folds.iter().enumerate() {
        let fold_z = scorer.member_logits(k, &p.encoded.subset(fold))?;
        for (row, values) in fold.iter().zip(fold_z.chunks_exact(outputs)) {
            let at =
                p.split.train.binary_search(row).map_err(|_| {
                    PatronError::Internal("a fold row is not a training row".into())
                })?;
            z[at * outputs..(at + 1) * outputs].copy_from_slice(values);
        }
    }
    Ok(z)
}

/// `oof_predictions.csv`: each training row (from 0, as in the data file), its fold (from
/// 1), its label and its out-of-fold scores in `predict`'s score columns (calibrated).
fn oof_csv(p: &Prepared, run: &LoadedRun, oof_z: &[f64]) -> String {
    let task = run.task.as_ref();
    let names: Vec<String> = task
        .output_columns()
        .into_iter()
        .filter_map(|c| match c {
            task::OutputColumn::Score(name) => Some(name),
            task::OutputColumn::Prediction => None,
        })
        .collect();
    let width = names.len().max(1);
    let probs = task.probabilities(&run.calibration, oof_z);
    let fold_of = p.split.fold_of_train_rows();
    let header: Vec<_> = names
        .iter()
        .map(|n| crate::score::predictions::csv_field(n))
        .collect();
    let mut out = format!("row,fold,label,{}\n", header.join(","));
    for (i, &row) in p.split.train.iter().enumerate() {
        let y = p.labels[row];
        let label = match p.pre.labels.get(y as usize) {
            Some(name) if !p.pre.labels.is_empty() => crate::score::predictions::csv_field(name),
            _ => y.to_string().into(),
        };
        let file_row = p.file_rows.as_ref().map_or(row, |f| f[row]);
        out.push_str(&format!("{file_row},{},{label}", fold_of[i] + 1));
        for v in &probs[i * width..(i + 1) * width] {
            out.push_str(&format!(",{v:.6}"));
        }
        out.push('\n');
    }
    out
}

/// The mean of the fold models' best-epoch rows (the epoch rounded), by which `patron
/// tune` ranks a cross-validated trial.
fn mean_row(rows: &[EpochRow]) -> (usize, EpochRow) {
    let n = rows.len().max(1) as f64;
    let mean = |f: &dyn Fn(&EpochRow) -> f64| rows.iter().map(f).sum::<f64>() / n;
    let epoch = mean(&|r| r.epoch as f64).round() as usize;
    let valid = rows
        .first()
        .map(|first| {
            first
                .valid
                .keys()
                .map(|k| (k.clone(), mean(&|r| r.get(k))))
                .collect()
        })
        .unwrap_or_default();
    let row = EpochRow {
        epoch,
        lr: mean(&|r| r.lr),
        train_loss: mean(&|r| r.train_loss),
        seconds: mean(&|r| r.seconds),
        valid,
    };
    (epoch, row)
}

/// Write the exported checkpoint files, then mark the manifest complete (the commit point).
fn export(
    run_dir: &Path,
    manifest: &mut Manifest,
    session: &Session,
    report: &Report,
    page: &ReportPage,
    predictions: &str,
) -> Result<()> {
    let loaded = session.run();
    let (calibration, columns) = (&loaded.calibration, loaded.task.history_columns());
    let model_files = manifest.model_files();
    if let [one] = loaded.models.as_slice() {
        write_atomic(&run_dir.join(files::MODEL), &one.to_bytes()?)?;
    }
    // A fold model's weights were written when its fold finished.
    // Rewritten from the state: a kill between an epoch's checkpoint and its metrics line
    // must not leave the exported metrics one epoch short.
    write_atomic(
        &run_dir.join(files::METRICS),
        metrics_csv(page.history, columns).as_bytes(),
    )?;
    write_json(&run_dir.join(files::CALIBRATION), calibration)?;
    write_json(&run_dir.join(files::IMPORTANCE), page.importance)?;
    if let Some(explanations) = page.explanations {
        write_json(&run_dir.join(files::EXPLANATIONS), explanations)?;
    }
    write_atomic(&run_dir.join(files::PREDICTIONS), predictions.as_bytes())?;
    report.write(run_dir, page)?;
    manifest.status = RunStatus::Complete;
    // Every exported file, so a command never reads a changed one unknowingly.
    let mut exported = vec![
        files::CONFIG,
        files::PREPROCESS,
        files::CALIBRATION,
        files::METRICS,
        files::IMPORTANCE,
        files::PREDICTIONS,
        files::REPORT,
        files::REPORT_MD,
        files::REPORT_HTML,
        files::PROFILE,
    ];
    if page.explanations.is_some() {
        exported.push(files::EXPLANATIONS);
    }
    let fold_metrics: Vec<String> = (1..=manifest.folds.unwrap_or(0))
        .map(files::fold_metrics)
        .collect();
    if manifest.folds.is_some() {
        exported.push(files::OOF_PREDICTIONS);
    }
    exported.extend(model_files.iter().chain(&fold_metrics).map(String::as_str));
    run::record_hashes(run_dir, manifest, &exported)?;
    write_json(&run_dir.join(files::MANIFEST), manifest)?;
    // The resumable state is not part of the exported checkpoint.
    let _ = std::fs::remove_dir_all(run_dir.join(files::TRAIN_STATE));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays() {
        let cfg = TrainConfig {
            learning_rate: 1e-3,
            warmup: 0.1,
            ..TrainConfig::default()
        };
        let lrs: Vec<f64> = (0..100).map(|s| learning_rate(&cfg, s, 100)).collect();
        assert!((lrs[9] - 1e-3).abs() < 1e-12);
        assert!(lrs[..10].windows(2).all(|w| w[0] < w[1]));
        assert!(lrs[10..].windows(2).all(|w| w[0] >= w[1]));
        assert!(lrs[99] >= 1e-5 && lrs[99] < 2e-5);
        let one = TrainConfig {
            schedule: Schedule::OneCycle,
            ..cfg.clone()
        };
        assert!((learning_rate(&one, 0, 100) - 4e-5).abs() < 1e-12);
        assert!((learning_rate(&one, 30, 100) - 1e-3).abs() < 1e-12);
        let linear = TrainConfig {
            schedule: Schedule::Linear,
            ..cfg
        };
        assert!((learning_rate(&linear, 9, 100) - 1e-3).abs() < 1e-12);
        assert!((learning_rate(&linear, 55, 100) - 5e-4).abs() < 1e-12);
        assert!(learning_rate(&linear, 99, 100) < 2e-5);
    }

    #[test]
    fn bucketed_batches_hold_texts_of_like_length_and_every_row_once() {
        let lengths: Vec<Vec<u32>> = (0..1000u32)
            .map(|i| vec![0; (i * 7919 % 120) as usize + 1])
            .collect();
        let plain = batch_order(1000, 8, None, &mut ChaCha8Rng::seed_from_u64(3));
        let bucketed = batch_order(1000, 8, Some(&lengths), &mut ChaCha8Rng::seed_from_u64(3));
        // Without lengths: the shuffled order cut into batches, as before bucketing.
        let mut order: Vec<usize> = (0..1000).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(plain.concat(), order);
        let mut seen = bucketed.concat();
        seen.sort_unstable();
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        assert_eq!(bucketed.len(), 125);
        let padding = |batches: &[Vec<usize>]| -> usize {
            batches
                .iter()
                .map(|b| {
                    let lens: Vec<usize> = b.iter().map(|&r| lengths[r].len()).collect();
                    lens.iter().max().unwrap() * b.len() - lens.iter().sum::<usize>()
                })
                .sum()
        };
        assert!(
            padding(&bucketed) * 5 < padding(&plain),
            "{} vs {}",
            padding(&bucketed),
            padding(&plain)
        );
        // The batches come in a shuffled order, not longest first.
        let longest: Vec<usize> = bucketed.iter().map(|b| lengths[b[0]].len()).collect();
        assert!(longest.windows(2).any(|w| w[0] < w[1]));
    }

    #[test]
    fn clipping_brings_the_global_norm_down_to_the_limit() {
        let device = Device::flex().autodiff();
        let spec = ModelSpec {
            numeric_width: 3,
            categorical_count: 0,
            embedding_rows: 0,
            embedding_dim: 1,
            hidden: vec![8],
            dropout: 0.0,
            ensemble: 1,
            numeric_embedding: None,
            outputs: 1,
            text: None,
        };
        let model = spec.init(&device);
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![3f32, -2.0, 5.0, 1.0, 4.0, -6.0], [2, 3]),
            &device,
        );
        let inputs = Inputs::Tabular(TabularInputs {
            numeric: Some(x),
            categorical: None,
        });
        let loss = (model.forward(inputs) * 100.0).sum();
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        let before = clip_global_norm(&mut grads, &model, 0.5);
        assert!(before > 0.5, "the test needs a large gradient: {before}");
        let after = clip_global_norm(&mut grads, &model, f64::MAX);
        assert!((after - 0.5).abs() < 1e-3, "{after}");
        // Under the limit nothing changes.
        assert!((clip_global_norm(&mut grads, &model, 1.0) - after).abs() < 1e-9);
    }
}
