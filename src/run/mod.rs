//! The run directory: the exported checkpoint that `predict` and `evaluate` need, plus the
//! resumable training state. Every file is written to a temporary name and renamed, so a
//! crash leaves either the old file or the new one, never half of one; an epoch checkpoint
//! is a new folder of files ([`FileGroup`]) that `current.json` points at only once all of
//! them are on disk.
//!
//! Layout:
//! ```text
//! RUN/manifest.json     what the run is (version, backend, data hash, schema, threshold)
//! RUN/config.toml       the resolved config
//! RUN/preprocess.json   fitted preprocessing
//! RUN/calibration.json  fitted probability calibration
//! RUN/model.bpk         best weights (Burn burnpack)
//! RUN/metrics.csv       one row per epoch
//! RUN/importance.json   permutation feature importance (validation split)
//! RUN/explanations.json text runs: phrases pushing toward each class, confident mistakes
//! RUN/report.json       test-split report (report.md and report.html for people)
//! RUN/test_predictions.csv  the evaluated rows' labels and logits (`patron report` reads them)
//! RUN/profile.json      what the model was trained on, for `patron drift`
//! RUN/train_state/      resumable state: current.json -> epoch-NNNN/{last,best,optimizer}.bpk
//! ```
//!
//! Every file a command reads is verified before it is used: the exported files against
//! the SHA-256 the manifest records (from format version 2 on, all of them), the files of
//! an epoch checkpoint against the hashes in `current.json`, and the folders `evaluate`
//! and `drift` write against their `checksums.json`.

pub mod export;
pub mod history;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::data::preprocess::Preprocessor;
use crate::error::{PatronError, Result};
use crate::model::{ModelSpec, Network};
use crate::task::calibration::Calibration;
use crate::task::{self, Decision, Task};

/// Version of the run-directory layout that this patron writes. Version 3 records the
/// task (`manifest.json`'s `task`, a regression's fitted target in `preprocess.json`,
/// its smearing and quantile shifts in `calibration.json`), which a version-2 reader
/// would misread as a classifier; version-2 runs have none of these and read as before.
/// Version 4 may hold a k-fold ensemble (`manifest.json`'s `folds`, `fold-<k>/` folders,
/// `oof_predictions.csv`), which an older reader would not find its `model.bpk` in.
/// Version 5 may count a `text_bag`'s character n-grams once per text (`preprocess.json`'s
/// `once`, `model.char_ngram_once`), which an older reader would ignore and so score
/// differently. Version 6 weighs a `text_bag`'s character n-grams as a block apart from its
/// words (`preprocess.json`'s `char_weight`, the manifest model's `bag`, tagged ids), which
/// an older reader would read as table rows out of range. Version 7 may flag a number's
/// exact training values (`preprocess.json`'s `points`, `data.exact_values`), which an
/// older reader would ignore and so feed the model fewer inputs than it has. Version 8 may
/// read a column as dates (`preprocess.json`'s `date`), as numbers written like money
/// (`$1,250.00`, `45%`) or as numbers whose words are missing (`text_missing`), which an
/// older reader would refuse as "not a finite number". Version 9 may read dates written
/// day or month first (`preprocess.json`'s `date_order`) and give a date's weekday, month
/// and hour inputs of their own (`calendar`), which an older reader would ignore and so
/// feed the model fewer inputs than it has. Version 10 may read a column's numbers with a
/// decimal comma (`preprocess.json`'s `decimal_comma`, a regression target's too), which an
/// older reader would refuse (`1,5`) or misread (`1.234` as 1.234 for 1234), and dates
/// with two-digit years (`11/8/16`), which it would refuse as "not a date". Version 11
/// may name the workbook sheet training read (`preprocess.json`'s `sheet`), which an older
/// reader would ignore and so score a workbook's first sheet instead, and numbers with a
/// decimal point grouped by spaces or apostrophes (`1 234.50`, Swiss `1'234.50`), which it
/// would refuse as "not a finite number". Version 12 clips a number to its training range
/// (`preprocess.json`'s `range`, `data.clip_numeric`), which an older reader would ignore
/// and so score a value past the range differently. Version 13 may cross two columns into
/// one category input (`preprocess.json`'s features of kind `cross`, `data.crosses`),
/// which an older reader would refuse as an unknown feature kind.
pub const FORMAT_VERSION: u32 = 13;
/// The oldest version that still scores: version 1 hashed only the files scoring reads
/// (no metrics, predictions, importance or explanations), so commands that read those
/// refuse it.
pub const OLDEST_SCORED_VERSION: u32 = 1;

/// File names inside a run directory.
pub mod files {
    /// The manifest.
    pub const MANIFEST: &str = "manifest.json";
    /// The resolved config.
    pub const CONFIG: &str = "config.toml";
    /// The fitted preprocessing.
    pub const PREPROCESS: &str = "preprocess.json";
    /// The fitted calibration.
    pub const CALIBRATION: &str = "calibration.json";
    /// The best weights.
    pub const MODEL: &str = "model.bpk";
    /// Permutation feature importance on the validation split.
    pub const IMPORTANCE: &str = "importance.json";
    /// Text runs: phrases that push toward each class, confident mistakes.
    pub const EXPLANATIONS: &str = "explanations.json";
    /// What the model was trained on, for `patron drift`.
    pub const PROFILE: &str = "profile.json";
    /// Per-epoch metrics.
    pub const METRICS: &str = "metrics.csv";
    /// The machine-readable report.
    pub const REPORT: &str = "report.json";
    /// The short human-readable report.
    pub const REPORT_MD: &str = "report.md";
    /// The full human-readable report with charts.
    pub const REPORT_HTML: &str = "report.html";
    /// The evaluated rows' labels and logits, so reports can be rebuilt.
    pub const PREDICTIONS: &str = "test_predictions.csv";
    /// Folder of resumable training state.
    pub const TRAIN_STATE: &str = "train_state";
    /// SHA-256 of each file of a folder `evaluate` or `drift` wrote.
    pub const CHECKSUMS: &str = "checksums.json";
    /// A cross-validated run: each training row's out-of-fold score.
    pub const OOF_PREDICTIONS: &str = "oof_predictions.csv";

    /// A cross-validated run's folder of fold `k` (from 1): its model's weights, its
    /// per-epoch metrics and, while training, its epoch checkpoints.
    pub fn fold_dir(k: usize) -> String {
        format!("fold-{k}")
    }

    /// The best weights of fold `k`'s model (from 1).
    pub fn fold_model(k: usize) -> String {
        format!("fold-{k}/{MODEL}")
    }

    /// The per-epoch metrics of fold `k`'s model (from 1).
    pub fn fold_metrics(k: usize) -> String {
        format!("fold-{k}/{METRICS}")
    }
}

/// Whether a run has finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Training started and has not finished (resume it with `--resume`).
    Training,
    /// Training finished and the checkpoint is exported.
    Complete,
}

/// The data file a run was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// Path as resolved when training.
    pub path: String,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
    /// Data rows in the file.
    pub rows: usize,
}

/// Rows per split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitRows {
    /// Training rows.
    pub train: usize,
    /// Validation rows.
    pub valid: usize,
    /// Test rows.
    pub test: usize,
}

/// One input column of the feature schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaColumn {
    /// Column name.
    pub name: String,
    /// `numeric`, `date`, `categorical` or `text`.
    pub kind: String,
}

/// `manifest.json`: what a run is, enough to check and load it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Run-directory layout version.
    pub format_version: u32,
    /// patron version that wrote the run.
    pub patron_version: String,
    /// Training or complete.
    pub status: RunStatus,
    /// Model family.
    pub model_kind: String,
    /// Backend the run trained on.
    pub backend: String,
    /// The device, in words.
    pub device: String,
    /// When training started (UTC, RFC 3339).
    pub created: String,
    /// The training data.
    pub dataset: DatasetInfo,
    /// Rows per split.
    pub rows: SplitRows,
    /// Input columns.
    pub features: Vec<SchemaColumn>,
    /// What the run predicts: `binary`, `multiclass` or `regression` (absent in runs
    /// written before regression existed: read from `labels`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub task: String,
    /// Class labels: `[negative, positive]` for two classes, otherwise sorted by name
    /// (empty for a regression).
    pub labels: Vec<String>,
    /// The positive class (two classes; empty for a multiclass run).
    pub positive: String,
    /// Decision threshold on the calibrated score (set when complete).
    pub threshold: Option<f64>,
    /// Multiclass decision: per-class offsets added to the log-probabilities before the
    /// argmax, chosen for the best validation macro-F1 (set when complete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_offsets: Option<Vec<f64>>,
    /// Best epoch, 1-based (set when complete).
    pub best_epoch: Option<usize>,
    /// Epochs trained.
    pub epochs_run: usize,
    /// Wall-clock seconds spent training (all sessions of a resumed run).
    pub training_seconds: f64,
    /// Network shape, to rebuild it before loading weights.
    pub model: ModelSpec,
    /// k-fold cross-validation: the run's model is the ensemble of this many fold
    /// models, `fold-<k>/model.bpk` (absent for one model, `model.bpk`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folds: Option<usize>,
    /// SHA-256 of each exported file, checked on load.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

impl Manifest {
    /// The weights files of the run's model: `model.bpk`, or each fold model's.
    pub fn model_files(&self) -> Vec<String> {
        match self.folds {
            Some(k) => (1..=k).map(files::fold_model).collect(),
            None => vec![files::MODEL.to_string()],
        }
    }

    /// The decision rule the run recorded when it completed.
    pub fn decision(&self) -> Decision {
        Decision::recorded(self.threshold, self.class_offsets.as_deref())
    }

    /// Record the decision rule fitted on validation.
    pub fn set_decision(&mut self, decision: &Decision) {
        match decision {
            Decision::Threshold(t) => self.threshold = Some(*t),
            // A regression decides nothing.
            Decision::Offsets(o) if o.is_empty() => {}
            Decision::Offsets(o) => self.class_offsets = Some(o.clone()),
        }
    }
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex XXH3-128 of bytes: the checksum of an epoch checkpoint's files. It detects damage
/// (a truncated or changed file), not tampering, at a fraction of SHA-256's cost.
pub fn xxh3_hex(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

/// Hex SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| PatronError::io(path, e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| PatronError::io(path, e))?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Write bytes to `path` through a temporary file in the same folder, synced, then renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(PatronError::io(path, e));
    }
    Ok(())
}

/// Whether `dir` is a folder with nothing in it.
pub fn is_empty_dir(dir: &Path) -> Result<bool> {
    if !dir.is_dir() {
        return Ok(false);
    }
    let mut entries = std::fs::read_dir(dir).map_err(|e| PatronError::io(dir, e))?;
    Ok(entries.next().is_none())
}

/// Build the folder `dir` with `write`, which fills a hidden sibling, then rename it into
/// place (removing the old `dir` first when `replace`), so a failure leaves no half
/// folder behind.
pub fn publish_dir(
    dir: &Path,
    replace: bool,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| PatronError::io(&parent, e))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir(&staging).map_err(|e| PatronError::io(&staging, e))?;
    let result = write(&staging).and_then(|()| {
        if replace {
            std::fs::remove_dir_all(dir).map_err(|e| PatronError::io(dir, e))?;
        }
        std::fs::rename(&staging, dir).map_err(|e| PatronError::io(dir, e))
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

/// New files written into a folder that nothing references yet, then flushed to disk
/// together: one journal commit for the group instead of one per file (a text model's
/// epoch checkpoint is tens of MB, and per-file syncs cost more than the epoch's writes).
/// The caller publishes the folder afterwards with an atomic pointer write, so a crash
/// leaves either a complete group or a folder no one reads.
pub struct FileGroup {
    dir: PathBuf,
    files: Vec<(PathBuf, std::fs::File)>,
    /// Checksum ([`xxh3_hex`]) of each file of the group, for the pointer that publishes it.
    hashes: BTreeMap<String, String>,
}

impl FileGroup {
    /// Start a group in `dir` (created if missing; files left there by an interrupted
    /// attempt are overwritten).
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| PatronError::io(dir, e))?;
        Ok(FileGroup {
            dir: dir.to_path_buf(),
            files: Vec::new(),
            hashes: BTreeMap::new(),
        })
    }

    /// Write the file `name` of the group.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.dir.join(name);
        let mut file = std::fs::File::create(&path).map_err(|e| PatronError::io(&path, e))?;
        file.write_all(bytes)
            .map_err(|e| PatronError::io(&path, e))?;
        self.files.push((path, file));
        self.hashes.insert(name.to_string(), xxh3_hex(bytes));
        Ok(())
    }

    /// Make `name` a hard link to `source`, whose checksum is `hash` (same bytes, nothing
    /// copied); false when the file system cannot, so the caller writes the bytes instead.
    pub fn link(&mut self, name: &str, source: &Path, hash: &str) -> bool {
        let path = self.dir.join(name);
        let _ = std::fs::remove_file(&path);
        let linked = std::fs::hard_link(source, &path).is_ok();
        if linked {
            self.hashes.insert(name.to_string(), hash.to_string());
        }
        linked
    }

    /// The checksum of the group's file `name`, once written or linked.
    pub fn hash(&self, name: &str) -> Option<&str> {
        self.hashes.get(name).map(String::as_str)
    }

    /// Flush every file of the group and the folder's entries to disk; returns the
    /// checksum of each file.
    pub fn sync(self) -> Result<BTreeMap<String, String>> {
        for (path, file) in &self.files {
            file.sync_all().map_err(|e| PatronError::io(path, e))?;
        }
        sync_dir(&self.dir)?;
        Ok(self.hashes)
    }
}

/// Flush a folder's entries (new names, links) to disk; a no-op where folders cannot be
/// opened as files.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| PatronError::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Serialize a value as pretty JSON and write it atomically.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| PatronError::Internal(format!("serializing {}: {e}", path.display())))?;
    write_atomic(path, format!("{text}\n").as_bytes())
}

/// Read and parse a JSON file of a run, as a checkpoint error when it is missing or bad.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = read_bounded(path, MAX_METADATA_BYTES)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| PatronError::checkpoint(path, format!("damaged or foreign file: {e}")))
}

/// Largest JSON/TOML file of a run patron reads (vocabularies of many columns stay far below).
pub const MAX_METADATA_BYTES: u64 = 64 << 20;
/// Largest CSV file of a run patron reads (the evaluated rows' logits).
pub const MAX_TABLE_BYTES: u64 = 1 << 30;
/// Largest weight or optimizer file patron reads.
pub const MAX_WEIGHTS_BYTES: u64 = 4 << 30;

/// Read a file of a run, refusing one larger than `limit` before allocating for it, so a
/// hostile or corrupted checkpoint cannot exhaust memory.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .map_err(|e| PatronError::checkpoint(path, format!("cannot read: {e}")))?
        .len();
    if len > limit {
        return Err(PatronError::checkpoint(
            path,
            format!(
                "is {len} bytes, more than the {limit} a run file may hold; it is not a patron file"
            ),
        ));
    }
    std::fs::read(path).map_err(|e| PatronError::checkpoint(path, format!("cannot read: {e}")))
}

/// Everything `predict` and `evaluate` need from a finished run.
pub struct LoadedRun {
    /// The run directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Its resolved config.
    pub config: Config,
    /// Fitted preprocessing.
    pub preprocess: Preprocessor,
    /// Fitted calibration.
    pub calibration: Calibration,
    /// The best weights, on the scoring device: one network, or a cross-validated run's
    /// fold models, whose pooled scores are the run's.
    pub models: Vec<Network>,
    /// What the run predicts, from its labels.
    pub task: Box<dyn Task>,
    /// Its decision rule (threshold or class offsets).
    pub decision: Decision,
}

/// Read a run's manifest and check it is one this version can use.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    if !dir.is_dir() {
        return Err(PatronError::checkpoint(
            dir,
            "not found: pass the run directory that `patron train` printed",
        ));
    }
    let path = dir.join(files::MANIFEST);
    if !path.exists() {
        return Err(PatronError::checkpoint(
            dir,
            "has no manifest.json: not a patron run directory",
        ));
    }
    let raw: serde_json::Value = read_json(&path)?;
    let version = raw.get("format_version").and_then(|v| v.as_u64());
    let known = u64::from(OLDEST_SCORED_VERSION)..=u64::from(FORMAT_VERSION);
    if !version.is_some_and(|v| known.contains(&v)) {
        return Err(PatronError::checkpoint(
            &path,
            format!(
                "run format version {} is not supported by patron {} (expects {OLDEST_SCORED_VERSION} to {FORMAT_VERSION})",
                version.map_or("unknown".into(), |v| v.to_string()),
                env!("CARGO_PKG_VERSION")
            ),
        ));
    }
    serde_json::from_value(raw)
        .map_err(|e| PatronError::checkpoint(&path, format!("damaged manifest: {e}")))
}

/// The size limit of a run file: weights may be large, everything else is metadata.
fn limit_of(name: &str) -> u64 {
    if name.ends_with(".bpk") || name.ends_with(".bin") {
        MAX_WEIGHTS_BYTES
    } else if name.ends_with(".csv") {
        // A large test split's rows and logits.
        MAX_TABLE_BYTES
    } else {
        MAX_METADATA_BYTES
    }
}

/// Read `dir/name` and check it against `expected`, the hex SHA-256 that `what` records.
pub fn read_checked(dir: &Path, name: &str, expected: &str, what: &str) -> Result<Vec<u8>> {
    read_checked_by(dir, name, expected, what, Checksum::Sha256)
}

/// A checksum of a run's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// SHA-256: the exported run, evaluation folders.
    Sha256,
    /// XXH3-128: epoch checkpoints.
    Xxh3,
}

impl Checksum {
    fn of(self, bytes: &[u8]) -> String {
        match self {
            Checksum::Sha256 => sha256_hex(bytes),
            Checksum::Xxh3 => xxh3_hex(bytes),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Checksum::Sha256 => "SHA-256",
            Checksum::Xxh3 => "checksum",
        }
    }
}

/// Read `dir/name` and check it against `expected`, its `checksum` that `what` records.
pub fn read_checked_by(
    dir: &Path,
    name: &str,
    expected: &str,
    what: &str,
    checksum: Checksum,
) -> Result<Vec<u8>> {
    let path = dir.join(name);
    let bytes = read_bounded(&path, limit_of(name))?;
    if checksum.of(&bytes) != expected {
        return Err(PatronError::checkpoint(
            &path,
            format!(
                "does not match the {} in {what}: the file was changed or truncated",
                checksum.name()
            ),
        ));
    }
    Ok(bytes)
}

/// Read a file of a run, checked against the SHA-256 the manifest records. A run of the
/// current format records every file it exported, so a missing hash is damage; a version 1
/// run is read as that version did (checked where it recorded a hash).
pub fn read_verified(dir: &Path, manifest: &Manifest, name: &str) -> Result<Vec<u8>> {
    match manifest.files.get(name) {
        Some(expected) => read_checked(dir, name, expected, "manifest.json"),
        None if manifest.format_version >= 2 => Err(PatronError::checkpoint(
            dir.join(name),
            "has no SHA-256 in manifest.json, so it cannot be verified: the manifest was edited",
        )),
        None => read_bounded(&dir.join(name), limit_of(name)),
    }
}

/// Read a file of a run that only runs of format version 2 on can vouch for (what
/// `patron report` rebuilds from): an older run is refused, naming the file.
pub fn read_strict(dir: &Path, manifest: &Manifest, name: &str) -> Result<Vec<u8>> {
    match manifest.files.get(name) {
        Some(expected) => read_checked(dir, name, expected, "manifest.json"),
        None => Err(PatronError::checkpoint(
            dir.join(name),
            format!(
                "cannot be verified: the run's manifest (format version {}) records no SHA-256 for it; train the run again with this patron",
                manifest.format_version
            ),
        )),
    }
}

/// Record the SHA-256 of each file `names` of `dir` in `hashes` (name -> hex).
fn hash_files(dir: &Path, names: &[&str], hashes: &mut BTreeMap<String, String>) -> Result<()> {
    for name in names {
        hashes.insert(name.to_string(), sha256_file(&dir.join(name))?);
    }
    Ok(())
}

/// Record the SHA-256 of each file `names` of `dir` in the manifest.
pub fn record_hashes(dir: &Path, manifest: &mut Manifest, names: &[&str]) -> Result<()> {
    hash_files(dir, names, &mut manifest.files)
}

/// Write `checksums.json` into a folder `evaluate` or `drift` wrote: the SHA-256 of each
/// of its files `names`, so `patron compare` reads them verified.
pub fn seal_folder(dir: &Path, names: &[&str]) -> Result<()> {
    let mut sums = BTreeMap::new();
    hash_files(dir, names, &mut sums)?;
    write_json(&dir.join(files::CHECKSUMS), &sums)
}

/// Read the file `name` of a folder `evaluate` or `drift` wrote, checked against its
/// `checksums.json`.
pub fn read_sealed(dir: &Path, name: &str) -> Result<Vec<u8>> {
    let sums_path = dir.join(files::CHECKSUMS);
    if !sums_path.is_file() {
        return Err(PatronError::checkpoint(
            dir.join(name),
            "cannot be verified: its folder has no checksums.json (an earlier patron wrote it); run patron evaluate again",
        ));
    }
    let sums: BTreeMap<String, String> = read_json(&sums_path)?;
    let expected = sums.get(name).ok_or_else(|| {
        PatronError::checkpoint(
            dir.join(name),
            "has no SHA-256 in checksums.json, so it cannot be verified",
        )
    })?;
    read_checked(dir, name, expected, "checksums.json")
}

/// Read a JSON file of a run, checked against its manifest hash when it has one.
pub fn parse_verified<T: for<'de> Deserialize<'de>>(
    dir: &Path,
    manifest: &Manifest,
    name: &str,
) -> Result<T> {
    let bytes = read_verified(dir, manifest, name)?;
    parse_json(&bytes, &dir.join(name))
}

/// Parse the bytes of a JSON file of a run.
pub fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8], path: &Path) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| PatronError::checkpoint(path, format!("damaged file: {e}")))
}

/// Load a complete run onto `device`.
pub fn load_run(dir: &Path, device: &Device) -> Result<LoadedRun> {
    let manifest = read_manifest(dir)?;
    if manifest.status != RunStatus::Complete {
        return Err(PatronError::checkpoint(
            dir,
            format!(
                "training has not finished; continue it with `patron train --resume {}`",
                dir.display()
            ),
        ));
    }
    let config_bytes = read_verified(dir, &manifest, files::CONFIG)?;
    let config_text = String::from_utf8(config_bytes)
        .map_err(|_| PatronError::checkpoint(dir.join(files::CONFIG), "is not UTF-8"))?;
    let config = Config::from_toml_str(
        &config_text,
        &dir.join(files::CONFIG).display().to_string(),
        &[],
    )?;
    let preprocess: Preprocessor = parse_verified(dir, &manifest, files::PREPROCESS)?;
    let calibration: Calibration = parse_verified(dir, &manifest, files::CALIBRATION)?;
    let models = manifest
        .model_files()
        .iter()
        .map(|name| {
            let weights = read_verified(dir, &manifest, name)?;
            manifest.model.load(device, weights, &dir.join(name))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(LoadedRun {
        dir: dir.to_path_buf(),
        task: task::for_run(&preprocess),
        decision: manifest.decision(),
        manifest,
        config,
        preprocess,
        calibration,
        models,
    })
}
