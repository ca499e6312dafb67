//! `patron tune`: a search over config values. Each trial is an ordinary training run (the
//! config with the trial's values set, as `--set` would) in its own run directory; trials
//! are ranked by a validation metric at their best epoch, never by the test split, which
//! stays an unbiased estimate for the winner. The leaderboard and `search.json` (the plan
//! and the finished trials) are rewritten after every trial, so an interrupted search keeps
//! what it finished and `patron tune --resume DIR` continues it.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::config::{Config, ModelKind, Resolved, StopMetric};
use crate::error::{PatronError, Result};
use crate::progress::Progress;
use crate::run::history::EpochRow;
use crate::run::{RunStatus, read_json, read_manifest, write_atomic, write_json};
use crate::score::predictions::csv_field;
use crate::train::{self, TrainRequest};

/// Files a search writes next to its trials.
pub mod files {
    /// The trials ranked, as CSV.
    pub const LEADERBOARD_CSV: &str = "leaderboard.csv";
    /// The same as a markdown table.
    pub const LEADERBOARD_MD: &str = "leaderboard.md";
    /// The search (base config, shared overrides, keys, metric, every trial's values) and
    /// the finished trials: what `patron tune --resume` continues.
    pub const SEARCH: &str = "search.json";
}

/// One searched key and the values it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// Dotted config key, as for `--set`.
    pub key: String,
    /// Its values.
    pub values: Values,
}

/// The values of a searched key: a list, or a range trials draw from.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// These values, each TOML as for `--set`.
    List(Vec<String>),
    /// Uniform between the two numbers.
    Uniform(f64, f64),
    /// Log-uniform between the two positive numbers (learning rates, weight decays).
    LogUniform(f64, f64),
    /// A whole number between the two, both included.
    RandInt(i64, i64),
}

impl Axis {
    /// Parse `KEY=V1|V2|...` (`|` separates values, since TOML arrays hold commas), or
    /// `KEY=uniform(LOW,HIGH)`, `KEY=loguniform(LOW,HIGH)`, `KEY=randint(LOW,HIGH)`.
    pub fn parse(spec: &str) -> Result<Axis> {
        let usage = |why: &str| {
            PatronError::Usage(format!(
                "--search {spec:?}: {why}; write KEY=VALUE|VALUE|..., e.g. train.learning_rate=1e-3|3e-3, or KEY=uniform(LOW,HIGH), loguniform(LOW,HIGH) or randint(LOW,HIGH)"
            ))
        };
        let (key, values) = spec.split_once('=').ok_or_else(|| usage("no '='"))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(usage("no key before '='"));
        }
        let values = values.trim();
        let range = ["uniform", "loguniform", "randint"]
            .into_iter()
            .find_map(|name| {
                let inner = values
                    .strip_prefix(name)?
                    .strip_prefix('(')?
                    .strip_suffix(')')?;
                Some((name, inner.split_once(',')?))
            });
        let values = match range {
            Some(("randint", (low, high))) => {
                let parse = |v: &str| v.trim().parse::<i64>().ok();
                match (parse(low), parse(high)) {
                    (Some(low), Some(high)) if low <= high => Values::RandInt(low, high),
                    _ => return Err(usage("randint needs two whole numbers, LOW <= HIGH")),
                }
            }
            Some((name, (low, high))) => {
                let parse = |v: &str| v.trim().parse::<f64>().ok().filter(|x| x.is_finite());
                match (parse(low), parse(high)) {
                    (Some(low), Some(high)) if low < high && name == "uniform" => {
                        Values::Uniform(low, high)
                    }
                    (Some(low), Some(high)) if 0.0 < low && low < high => {
                        Values::LogUniform(low, high)
                    }
                    _ => {
                        return Err(usage(&format!(
                            "{name} needs two numbers, LOW < HIGH{}",
                            if name == "loguniform" {
                                ", both above 0"
                            } else {
                                ""
                            }
                        )));
                    }
                }
            }
            None => {
                let list: Vec<String> = values.split('|').map(|v| v.trim().to_string()).collect();
                if list.iter().any(String::is_empty) {
                    return Err(usage("an empty value"));
                }
                Values::List(list)
            }
        };
        Ok(Axis {
            key: key.to_string(),
            values,
        })
    }

    /// One value drawn at random, as TOML: a list's values equally likely, a range's
    /// number rounded to 4 significant digits (a leaderboard should be readable).
    fn draw(&self, rng: &mut ChaCha8Rng) -> String {
        let round = |x: f64| -> String {
            let rounded: f64 = format!("{x:.3e}").parse().unwrap_or(x);
            let text = rounded.to_string();
            // TOML needs a float to look like one.
            if text.contains(['.', 'e', 'E']) {
                text
            } else {
                format!("{text}.0")
            }
        };
        match &self.values {
            Values::List(list) => list[rng.random_range(0..list.len())].clone(),
            Values::Uniform(low, high) => round(rng.random_range(*low..*high)),
            Values::LogUniform(low, high) => round(rng.random_range(low.ln()..high.ln()).exp()),
            Values::RandInt(low, high) => rng.random_range(*low..=*high).to_string(),
        }
    }
}

/// What `patron tune` was asked.
#[derive(Debug, Clone)]
pub struct TuneRequest {
    /// The base config.
    pub config: PathBuf,
    /// `--set` overrides every trial shares.
    pub overrides: Vec<String>,
    /// The searched keys.
    pub search: Vec<Axis>,
    /// Trials drawn at random from the grid (`None`, or as many as the grid: all of it);
    /// required when a key takes a range.
    pub trials: Option<usize>,
    /// Seed of that draw.
    pub seed: u64,
    /// Ranking metric (`None`: the config's `train.early_stopping.metric`).
    pub metric: Option<StopMetric>,
    /// Where the trials and the leaderboard go (`None`: `checkpoints/<config>-tune-<time>`).
    pub output_dir: Option<PathBuf>,
    /// Set (e.g. by a Ctrl-C handler) to stop after the current epoch of the current trial.
    pub stop: Arc<AtomicBool>,
}

/// One finished trial.
#[derive(Debug, Clone)]
pub struct Trial {
    /// 1-based trial number.
    pub number: usize,
    /// The searched keys' values, in the order of the search.
    pub values: Vec<String>,
    /// Its run directory (`None`: it diverged before its first checkpoint, and none is
    /// left).
    pub run_dir: Option<PathBuf>,
    /// How it ended.
    pub result: TrialResult,
    /// Wall-clock seconds it took.
    pub seconds: f64,
}

/// How a trial ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialResult {
    /// Trained: its best epoch and that epoch's validation metrics.
    Trained {
        /// Best epoch (1-based).
        best_epoch: usize,
        /// Epochs trained.
        epochs: usize,
        /// The best epoch's validation metrics.
        valid: EpochRow,
    },
    /// Training diverged (non-finite loss); the message says where.
    Diverged(String),
}

/// A finished search.
#[derive(Debug, Clone)]
pub struct TuneOutcome {
    /// Where the trials and leaderboard are.
    pub dir: PathBuf,
    /// The ranking metric.
    pub metric: StopMetric,
    /// Trials, best first (diverged ones last).
    pub ranked: Vec<Trial>,
    /// The leaderboard as markdown.
    pub leaderboard: String,
}

/// A search as `search.json` keeps it.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    /// The base config, as given.
    config: PathBuf,
    /// Its text when the search started (a resume refuses a changed file).
    config_text: String,
    /// `--set` overrides every trial shares.
    overrides: Vec<String>,
    /// The searched keys.
    keys: Vec<String>,
    /// The ranking metric.
    metric: StopMetric,
    /// Every trial's values, in trial order.
    plan: Vec<Vec<String>>,
    /// The finished trials.
    done: Vec<SavedTrial>,
}

/// A finished trial in `search.json` (its run directory is `trial-NN` beside it).
#[derive(Debug, Serialize, Deserialize)]
struct SavedTrial {
    number: usize,
    result: TrialResult,
    seconds: f64,
}

fn trial_dir(dir: &Path, number: usize) -> PathBuf {
    dir.join(format!("trial-{number:02}"))
}

/// Run the search: check every trial's config first (a bad key or value fails before any
/// training), then train the trials one after another.
pub fn tune(request: &TuneRequest, backend: &Backend, progress: &Progress) -> Result<TuneOutcome> {
    let combos = plan(request)?;
    // Every trial's config resolved once, up front: a bad key or value fails before any
    // training, and the trials train with these.
    let configs = combos
        .iter()
        .map(|values| Config::resolve(&request.config, &trial_overrides(request, values)))
        .collect::<Result<Vec<Resolved>>>()?;
    // A text kind's defaulted metric depends on the target the data holds (rmse for a
    // number): the first trial's checks say which.
    let resolved = match configs.first() {
        Some(first)
            if request.metric.is_none() && first.config.train.early_stopping.metric_defaulted =>
        {
            Some(train::validate(first)?.config.train.early_stopping.metric)
        }
        _ => None,
    };
    let watched: Vec<StopMetric> = configs
        .iter()
        .map(|r| {
            let stop = &r.config.train.early_stopping;
            match resolved {
                Some(metric) if stop.metric_defaulted => metric,
                _ => stop.metric,
            }
        })
        .collect();
    let metric = match request.metric {
        Some(metric) => metric,
        None if watched.windows(2).any(|w| w[0] != w[1]) => {
            return Err(PatronError::Usage(
                "the trials stop early on different metrics; rank them with --metric".into(),
            ));
        }
        // The plan has at least one trial.
        None => watched[0],
    };
    let dir = match &request.output_dir {
        Some(dir) => dir.clone(),
        None => train::default_run_dir(&request.config, "-tune"),
    };
    if dir.exists() && std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_some()) {
        return Err(PatronError::Usage(format!(
            "{}: already exists; choose a new --output-dir, or continue that search with --resume",
            dir.display()
        )));
    }
    let config_text = std::fs::read_to_string(&request.config)
        .map_err(|e| PatronError::io(&request.config, e))?;
    std::fs::create_dir_all(&dir).map_err(|e| PatronError::io(&dir, e))?;
    let saved = Saved {
        config: request.config.clone(),
        config_text,
        overrides: request.overrides.clone(),
        keys: request.search.iter().map(|a| a.key.clone()).collect(),
        metric,
        plan: combos,
        done: Vec::new(),
    };
    let configs = configs.into_iter().map(Some).collect();
    run_trials(&dir, request, saved, configs, false, backend, progress)
}

/// A saved search, checked and ready to continue (`patron tune --resume`).
#[derive(Debug)]
pub struct SavedSearch {
    dir: PathBuf,
    saved: Saved,
}

impl SavedSearch {
    /// Read the search in `dir`: it must have a `search.json` whose trials fit its plan, and
    /// its base config must read as it did when the search started.
    pub fn open(dir: &Path) -> Result<SavedSearch> {
        let path = dir.join(files::SEARCH);
        if !path.is_file() {
            return Err(PatronError::checkpoint(
                dir,
                "has no search.json: pass the directory that `patron tune` wrote",
            ));
        }
        let saved: Saved = read_json(&path)?;
        let fits = saved.plan.iter().all(|v| v.len() == saved.keys.len())
            && saved
                .done
                .iter()
                .all(|t| (1..=saved.plan.len()).contains(&t.number));
        if !fits {
            return Err(PatronError::checkpoint(
                &path,
                "is damaged: its trials do not match its plan",
            ));
        }
        let now = std::fs::read_to_string(&saved.config)
            .map_err(|e| PatronError::io(&saved.config, e))?;
        if now != saved.config_text {
            return Err(PatronError::config(
                saved.config.display().to_string(),
                "changed since the search started; restore it, or start a new search",
            ));
        }
        Ok(SavedSearch {
            dir: dir.to_path_buf(),
            saved,
        })
    }

    /// The model kind every trial trains (`None` when the search varies `model.kind`), for
    /// choosing a backend before [`resume`].
    pub fn model_kind(&self) -> Result<Option<ModelKind>> {
        let saved = &self.saved;
        if saved.keys.iter().any(|k| k == "model.kind") {
            return Ok(None);
        }
        Ok(Some(
            Config::load(&saved.config, &saved.overrides)?.model.kind,
        ))
    }
}

/// Continue a saved search: the finished trials are kept, an interrupted one resumes from
/// its last epoch checkpoint, and the rest run.
pub fn resume(
    search: SavedSearch,
    stop: Arc<AtomicBool>,
    backend: &Backend,
    progress: &Progress,
) -> Result<TuneOutcome> {
    let SavedSearch { dir, saved } = search;
    let request = TuneRequest {
        config: saved.config.clone(),
        overrides: saved.overrides.clone(),
        search: saved
            .keys
            .iter()
            .enumerate()
            .map(|(i, key)| Axis {
                key: key.clone(),
                values: Values::List(saved.plan.iter().map(|v| v[i].clone()).collect()),
            })
            .collect(),
        trials: None,
        seed: 0,
        metric: Some(saved.metric),
        output_dir: Some(dir.clone()),
        stop,
    };
    progress.line(&format!(
        "resuming {}: {} of {} trials finished",
        dir.display(),
        saved.done.len(),
        saved.plan.len()
    ));
    // Resolved as each trial starts: the base config file is read again.
    let configs = vec![None; saved.plan.len()];
    run_trials(&dir, &request, saved, configs, true, backend, progress)
}

/// Train the trials of `saved` that are not finished, recording each in `search.json` and
/// the leaderboard as it ends; `configs` holds each trial's resolved config where the
/// search already resolved it (a fresh search; a resumed one resolves them here).
fn run_trials(
    dir: &Path,
    request: &TuneRequest,
    mut saved: Saved,
    mut configs: Vec<Option<Resolved>>,
    resuming: bool,
    backend: &Backend,
    progress: &Progress,
) -> Result<TuneOutcome> {
    let metric = saved.metric;
    let combos = saved.plan.clone();
    let finished = |saved: &Saved| -> Vec<Trial> {
        saved
            .done
            .iter()
            .map(|t| Trial {
                number: t.number,
                values: combos[t.number - 1].clone(),
                run_dir: Some(trial_dir(dir, t.number)).filter(|d| d.exists()),
                result: t.result.clone(),
                seconds: t.seconds,
            })
            .collect()
    };
    write_json(&dir.join(files::SEARCH), &saved)?;
    for (i, values) in combos.iter().enumerate() {
        let number = i + 1;
        if saved.done.iter().any(|t| t.number == number) {
            continue;
        }
        progress.line(&format!(
            "trial {number}/{}: {}",
            combos.len(),
            setting(request, values).join(" ")
        ));
        let run_dir = trial_dir(dir, number);
        // A trial stopped mid-way continues from its last epoch checkpoint.
        let interrupted = run_dir.exists();
        if interrupted && read_manifest(&run_dir)?.status == RunStatus::Complete {
            return Err(PatronError::checkpoint(
                &run_dir,
                "finished but the search did not record it; remove it to train that trial again, then resume",
            ));
        }
        let config = match configs[i].take() {
            Some(resolved) => resolved,
            None => Config::resolve(&request.config, &trial_overrides(request, values))?,
        };
        let train_request = TrainRequest {
            config: Some(config),
            overrides: Vec::new(),
            output_dir: Some(run_dir.clone()),
            resume: interrupted.then(|| run_dir.clone()),
            force: false,
            stop: request.stop.clone(),
        };
        let started = std::time::Instant::now();
        let result = match train::train(&train_request, backend, progress) {
            Ok(outcome) => {
                let value = outcome.best.metric(metric);
                let leads = rank(&finished(&saved), metric)
                    .first()
                    .is_none_or(|best| match &best.result {
                        TrialResult::Trained { valid, .. } => {
                            let previous = valid.metric(metric);
                            if metric.higher_is_better() {
                                value > previous
                            } else {
                                value < previous
                            }
                        }
                        TrialResult::Diverged(_) => true,
                    });
                progress.line(&format!(
                    "trial {number}: valid_{} {value:.4} at epoch {}{}",
                    metric.name(),
                    outcome.best_epoch,
                    if leads { " (best so far)" } else { "" }
                ));
                TrialResult::Trained {
                    best_epoch: outcome.best_epoch,
                    epochs: outcome.epochs_run,
                    valid: outcome.best,
                }
            }
            Err(PatronError::Diverged(message)) => {
                progress.line(&format!("trial {number} diverged: {message}"));
                TrialResult::Diverged(message)
            }
            Err(e) if !resuming && saved.done.is_empty() && !run_dir.exists() => {
                // Failed before anything was written (the data does not fit the config):
                // leave no empty search directory behind.
                let _ = std::fs::remove_dir_all(dir);
                return Err(e);
            }
            Err(e) => {
                // Stopped (Ctrl-C) or failed: keep the leaderboard of the finished trials.
                write_leaderboard(dir, request, metric, &finished(&saved))?;
                let board = dir.join(files::LEADERBOARD_CSV);
                let context = format!(
                    "the search stopped in trial {number} of {}; the trials before it are ranked in {}; continue with `patron tune --resume {}`",
                    combos.len(),
                    board.display(),
                    dir.display()
                );
                return Err(match e {
                    // The trial's own hint (`patron train --resume`) gives way to the
                    // search's.
                    PatronError::Interrupted(m) => PatronError::Interrupted(format!(
                        "{}; {context}",
                        m.split(';').next().unwrap_or(&m)
                    )),
                    other => other,
                });
            }
        };
        saved.done.push(SavedTrial {
            number,
            result,
            seconds: started.elapsed().as_secs_f64(),
        });
        write_json(&dir.join(files::SEARCH), &saved)?;
        write_leaderboard(dir, request, metric, &finished(&saved))?;
    }
    let ranked = rank(&finished(&saved), metric);
    let leaderboard = markdown(request, metric, &ranked);
    Ok(TuneOutcome {
        dir: dir.to_path_buf(),
        metric,
        ranked,
        leaderboard,
    })
}

/// The trials' values: the whole grid of the listed values in order, or `trials` of it
/// drawn at random; with a range among the keys, `trials` draws of every key.
fn plan(request: &TuneRequest) -> Result<Vec<Vec<String>>> {
    if request.search.is_empty() {
        return Err(PatronError::Usage(
            "nothing to search: give at least one --search KEY=VALUE|VALUE".into(),
        ));
    }
    for (i, axis) in request.search.iter().enumerate() {
        if request.search[..i].iter().any(|a| a.key == axis.key) {
            return Err(PatronError::Usage(format!(
                "--search {} is given twice; list all its values in one --search",
                axis.key
            )));
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(request.seed);
    let lists: Option<Vec<&Vec<String>>> = request
        .search
        .iter()
        .map(|axis| match &axis.values {
            Values::List(list) => Some(list),
            _ => None,
        })
        .collect();
    let Some(lists) = lists else {
        // A range has no grid: every trial draws each key.
        return match request.trials {
            Some(n) if n > 0 => Ok((0..n)
                .map(|_| request.search.iter().map(|a| a.draw(&mut rng)).collect())
                .collect()),
            _ => Err(PatronError::Usage(
                "a uniform, loguniform or randint --search needs --trials N (N >= 1)".into(),
            )),
        };
    };
    let mut grid: Vec<Vec<String>> = vec![Vec::new()];
    for list in lists {
        grid = grid
            .into_iter()
            .flat_map(|prefix| {
                list.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push(v.clone());
                    next
                })
            })
            .collect();
    }
    match request.trials {
        Some(0) => Err(PatronError::Usage("--trials must be at least 1".into())),
        Some(n) if n < grid.len() => {
            let mut picked: Vec<usize> = (0..grid.len()).collect();
            picked.shuffle(&mut rng);
            picked.truncate(n);
            // Trials run in grid order, whichever were drawn.
            picked.sort_unstable();
            Ok(picked.into_iter().map(|i| grid[i].clone()).collect())
        }
        _ => Ok(grid),
    }
}

/// A trial's values as `KEY=VALUE` settings.
fn setting(request: &TuneRequest, values: &[String]) -> Vec<String> {
    request
        .search
        .iter()
        .zip(values)
        .map(|(axis, v)| format!("{}={v}", axis.key))
        .collect()
}

/// The shared overrides, then the trial's values (later `--set`s win).
fn trial_overrides(request: &TuneRequest, values: &[String]) -> Vec<String> {
    let mut overrides = request.overrides.clone();
    overrides.extend(setting(request, values));
    overrides
}

/// Trials best first by `metric`; diverged ones last, in trial order.
fn rank(trials: &[Trial], metric: StopMetric) -> Vec<Trial> {
    let score = |t: &Trial| match &t.result {
        TrialResult::Trained { valid, .. } => {
            let v = valid.metric(metric);
            // NaN (an undefined metric) sorts with the diverged trials.
            if v.is_nan() {
                f64::NEG_INFINITY
            } else if metric.higher_is_better() {
                v
            } else {
                -v
            }
        }
        TrialResult::Diverged(_) => f64::NEG_INFINITY,
    };
    let mut ranked = trials.to_vec();
    // Stable: ties keep trial order.
    ranked.sort_by(|a, b| score(b).total_cmp(&score(a)));
    ranked
}

/// Columns of a classification leaderboard after the searched keys.
const VALID_COLUMNS: &[&str] = &[
    "valid_loss",
    "valid_auc_roc",
    "valid_auc_pr",
    "valid_accuracy",
    "valid_macro_f1",
];

/// Columns of a regression leaderboard after the searched keys.
const REGRESSION_COLUMNS: &[&str] = &["valid_loss", "valid_rmse", "valid_mae"];

/// The validation columns the trials measured: a regression's, or a classifier's.
fn valid_columns(trials: &[Trial]) -> &'static [&'static str] {
    let regression = trials.iter().any(|t| match &t.result {
        TrialResult::Trained { valid, .. } => valid.valid.contains_key("valid_rmse"),
        TrialResult::Diverged(_) => false,
    });
    if regression {
        REGRESSION_COLUMNS
    } else {
        VALID_COLUMNS
    }
}

/// Each trial's cells, as [`header`] names them.
fn rows(metric: StopMetric, ranked: &[Trial], columns: &[&str]) -> Vec<Vec<String>> {
    ranked
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut row = vec![(i + 1).to_string(), t.number.to_string()];
            row.extend(t.values.iter().cloned());
            match &t.result {
                TrialResult::Trained {
                    best_epoch,
                    epochs,
                    valid,
                } => {
                    row.push(format!("{:.6}", valid.metric(metric)));
                    row.push(best_epoch.to_string());
                    row.push(epochs.to_string());
                    row.extend(columns.iter().map(|&c| format!("{:.6}", valid.get(c))));
                }
                TrialResult::Diverged(_) => {
                    row.push("diverged".into());
                    row.extend(std::iter::repeat_n(String::new(), 2 + columns.len()));
                }
            }
            row.push(format!("{:.1}", t.seconds));
            row.push(
                t.run_dir
                    .as_ref()
                    .map_or(String::new(), |d| d.display().to_string()),
            );
            row
        })
        .collect()
}

/// The leaderboard's columns: rank, trial, the searched keys, the ranking metric, best
/// epoch, epochs trained, the best epoch's validation metrics, seconds, run directory.
fn header(request: &TuneRequest, metric: StopMetric, columns: &[&str]) -> Vec<String> {
    let mut header = vec!["rank".to_string(), "trial".to_string()];
    header.extend(request.search.iter().map(|a| a.key.clone()));
    header.push(format!("valid_{}", metric.name()));
    header.extend(["best_epoch".to_string(), "epochs".to_string()]);
    header.extend(columns.iter().map(|c| c.to_string()));
    header.extend(["seconds".to_string(), "run_dir".to_string()]);
    header
}

fn markdown(request: &TuneRequest, metric: StopMetric, ranked: &[Trial]) -> String {
    let line = |cells: &[String]| format!("| {} |\n", cells.join(" | ").replace('\n', " "));
    let columns = valid_columns(ranked);
    let header = header(request, metric, columns);
    let mut out = line(&header);
    out.push_str(&line(&vec!["---".to_string(); header.len()]));
    for row in rows(metric, ranked, columns) {
        out.push_str(&line(&row));
    }
    out
}

/// Rewrite leaderboard.csv and leaderboard.md with the trials done so far.
fn write_leaderboard(
    dir: &Path,
    request: &TuneRequest,
    metric: StopMetric,
    done: &[Trial],
) -> Result<()> {
    let ranked = rank(done, metric);
    let mut csv = String::new();
    let columns = valid_columns(&ranked);
    let rows = rows(metric, &ranked, columns);
    for row in std::iter::once(header(request, metric, columns)).chain(rows) {
        let cells: Vec<Cow<str>> = row.iter().map(|c| csv_field(c)).collect();
        csv.push_str(&cells.join(","));
        csv.push('\n');
    }
    write_atomic(&dir.join(files::LEADERBOARD_CSV), csv.as_bytes())?;
    write_atomic(
        &dir.join(files::LEADERBOARD_MD),
        markdown(request, metric, &ranked).as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(search: &[&str], trials: Option<usize>) -> TuneRequest {
        TuneRequest {
            config: "c.toml".into(),
            overrides: vec!["train.epochs=2".into()],
            search: search.iter().map(|s| Axis::parse(s).unwrap()).collect(),
            trials,
            seed: 7,
            metric: None,
            output_dir: None,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    #[test]
    fn search_specs_parse_toml_values_split_on_bars() {
        let axis = Axis::parse("model.hidden=[64]|[256, 128]").unwrap();
        assert_eq!(axis.key, "model.hidden");
        assert_eq!(
            axis.values,
            Values::List(vec!["[64]".into(), "[256, 128]".into()])
        );
        let range = |spec: &str| Axis::parse(spec).unwrap().values;
        assert_eq!(range("a=uniform(0.1, 0.5)"), Values::Uniform(0.1, 0.5));
        assert_eq!(
            range("a=loguniform(1e-4,1e-2)"),
            Values::LogUniform(1e-4, 1e-2)
        );
        assert_eq!(range("a=randint(8,64)"), Values::RandInt(8, 64));
        for bad in [
            "model.hidden",
            "=1|2",
            "train.seed=1||2",
            "train.seed=",
            "a=uniform(0.5,0.1)",
            "a=loguniform(0,1)",
            "a=randint(1.5,3)",
            "a=uniform(x,1)",
        ] {
            assert!(Axis::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_are_drawn_by_seed_within_their_bounds() {
        let r = request(
            &[
                "lr=loguniform(1e-4,1e-2)",
                "p=uniform(0.1,0.5)",
                "n=randint(2,4)",
                "k=a|b",
            ],
            Some(200),
        );
        let trials = plan(&r).unwrap();
        assert_eq!(trials.len(), 200);
        assert_eq!(
            trials,
            plan(&r).unwrap(),
            "the same seed draws the same trials"
        );
        let mut small_lr = 0;
        for t in &trials {
            let lr: f64 = t[0].parse().unwrap();
            let p: f64 = t[1].parse().unwrap();
            let n: i64 = t[2].parse().unwrap();
            assert!(
                (1e-4..=1e-2).contains(&lr) && (0.1..=0.5).contains(&p),
                "{t:?}"
            );
            assert!((2..=4).contains(&n) && ["a", "b"].contains(&t[3].as_str()));
            // Floats stay TOML floats, rounded to 4 significant digits.
            assert!(t[0].contains(['.', 'e']) && t[0].len() <= 12, "{t:?}");
            small_lr += usize::from(lr < 1e-3);
        }
        // Log-uniform: half the draws in each decade.
        assert!(
            (70..130).contains(&small_lr),
            "{small_lr} of 200 below 1e-3"
        );
        // A range has no grid to run whole.
        assert!(plan(&request(&["lr=loguniform(1e-4,1e-2)"], None)).is_err());
    }

    #[test]
    fn the_plan_is_the_grid_or_a_seeded_draw_from_it() {
        let r = request(&["a=1|2", "b=x|y|z"], None);
        let grid = plan(&r).unwrap();
        assert_eq!(grid.len(), 6);
        assert_eq!(grid[0], ["1", "x"]);
        assert_eq!(grid[5], ["2", "z"]);
        assert_eq!(
            trial_overrides(&r, &grid[4]),
            ["train.epochs=2", "a=2", "b=y"]
        );
        let drawn = plan(&request(&["a=1|2", "b=x|y|z"], Some(3))).unwrap();
        assert_eq!(drawn.len(), 3);
        assert!(drawn.iter().all(|d| grid.contains(d)));
        assert!(drawn.windows(2).all(|w| w[0] != w[1]));
        // The same seed draws the same trials; more trials than the grid is the grid.
        assert_eq!(
            drawn,
            plan(&request(&["a=1|2", "b=x|y|z"], Some(3))).unwrap()
        );
        assert_eq!(plan(&request(&["a=1|2"], Some(10))).unwrap().len(), 2);
        assert!(plan(&request(&["a=1|2"], Some(0))).is_err());
        assert!(plan(&request(&["a=1", "a=2"], None)).is_err());
        assert!(plan(&request(&[], None)).is_err());
    }
}
