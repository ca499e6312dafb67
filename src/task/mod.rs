//! What is predicted and how it is judged. Each task ([`binary`], [`multiclass`],
//! [`regression`]) is one implementation of [`Task`]: target encoding, the loss,
//! validation metrics, calibration, the decision rule and its section of `report.json`.
//! Nothing outside this folder branches on the number of classes; a new task is one new
//! file plus its line in [`for_target`] (and its pages in `report/`).

pub mod binary;
pub mod calibration;
pub mod labels;
pub mod metrics;
pub mod multiclass;
pub mod regression;

use std::collections::BTreeMap;

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::config::{CalibrationMethod, ClassWeight, Threshold};
use crate::data::preprocess::{NumericTarget, Preprocessor};
use crate::task::binary::{Binary, BinaryReport};
use crate::task::calibration::Calibration;
use crate::task::multiclass::{Multiclass, MulticlassReport};
use crate::task::regression::{Regression, RegressionReport};

/// What a run predicts and how it is judged.
pub trait Task: Send + Sync + std::fmt::Debug {
    /// `binary`, `multiclass` or `regression`, as in `report.json`'s `task`.
    fn name(&self) -> &'static str;
    /// Logits the network gives per row.
    fn outputs(&self) -> usize;
    /// Training targets `[rows * outputs]` of class indices (or target values).
    fn targets(&self, labels: &[f32]) -> Vec<f32>;
    /// The weighted training loss of a batch's logits `[batch, outputs]`, averaged.
    fn loss(&self, logits: Tensor<2>, targets: Tensor<2>, weights: Tensor<1>) -> Tensor<1>;
    /// The validation figures of one epoch, from logits (`[rows * outputs]`).
    fn validate(&self, logits: &[f64], labels: &[f32]) -> ValidScores;
    /// The columns of `metrics.csv`: `epoch`, `lr`, `train_loss`, `seconds` and the names
    /// [`Task::validate`] gives, in file order.
    fn history_columns(&self) -> &'static [&'static str];
    /// The figure permutation importance watches fall, from logits: ROC AUC (the
    /// one-vs-rest mean for more classes), or minus the RMSE for a regression.
    fn ranking(&self, logits: &[f64], labels: &[f32]) -> f64;
    /// The `metrics.csv` column an epoch's progress line shows besides the loss.
    fn watched(&self) -> &'static str;
    /// Calibration and decision rule (`threshold`'s) fitted on the validation logits.
    fn fit(
        &self,
        method: CalibrationMethod,
        threshold: Threshold,
        logits: &[f64],
        labels: &[f32],
    ) -> (Calibration, Decision);
    /// Calibrated probabilities: one score per row for two classes, else `[rows * classes]`.
    fn probabilities(&self, calibration: &Calibration, logits: &[f64]) -> Vec<f64>;
    /// Probabilities before calibration, shaped as [`Task::probabilities`].
    fn uncalibrated(&self, logits: &[f64]) -> Vec<f64>;
    /// How a cross-validated ensemble's members' logits make the run's logits.
    fn pool(&self) -> Pool;
    /// The predicted class of each row of `probs`.
    fn decide(&self, probs: &[f64], decision: &Decision) -> Vec<usize>;
    /// The probability of `class` for `row` of `probs`.
    fn probability_of(&self, probs: &[f64], row: usize, class: usize) -> f64;
    /// What a per-row reason moves, from one row's logits `z`: the calibrated log-odds
    /// of `class`, or for a regression the prediction in the target's units.
    fn effect(&self, calibration: &Calibration, z: &[f64], class: usize) -> f64 {
        calibration.log_odds(z, class)
    }
    /// Per-row loss weights of training rows (`labels` as [`Task::targets`] reads them).
    fn row_weights(&self, labels: &[f32], mode: ClassWeight) -> Vec<f32> {
        class_weights(labels, mode, self.outputs())
    }
    /// Whether a reason's effect counts either way (a regression: a column can push the
    /// value up or down), rather than only toward the predicted class.
    fn signed_effects(&self) -> bool {
        false
    }
    /// Whether text runs get explanations (phrases per class, confident mistakes).
    fn explains_texts(&self) -> bool {
        true
    }
    /// The report of scored rows, with the metrics of each value of the `segments` columns
    /// (one value per scored row).
    fn report(
        &self,
        scores: &Scores,
        decision: &Decision,
        evaluated_on: &str,
        segments: &[(String, Vec<String>)],
    ) -> Report;
    /// Names of the logit columns of `test_predictions.csv`.
    fn logit_names(&self) -> Vec<String>;
    /// The columns a predictions file gives this task, in order; the scores of a row
    /// ([`Task::probabilities`]) fill its score columns in turn.
    fn output_columns(&self) -> Vec<OutputColumn>;
    /// What `patron drift` watches of the task's outputs.
    fn monitored(&self) -> Monitored;
    /// The positive class of a binary task (the manifest's `positive`); empty otherwise.
    fn positive_label(&self) -> String;
    /// The target in words, for `patron validate` (`positive "yes"`, `3 classes`).
    fn describe_target(&self) -> String;
    /// How many rows were predicted as what, in words, from the count of each class.
    fn describe_predictions(&self, counts: &[usize]) -> String;
}

/// The task of a run: a regression for a numeric target, else by its class labels (two
/// are binary, more are multiclass).
pub fn for_target(labels: &[String], numeric: Option<&NumericTarget>) -> Box<dyn Task> {
    match numeric {
        Some(target) => Box::new(Regression::new(target.clone())),
        None if labels.len() <= 2 => Box::new(Binary::new(labels)),
        None => Box::new(Multiclass::new(labels)),
    }
}

/// The task of a run from its fitted preprocessing (which holds the target encoding).
pub fn for_run(pre: &Preprocessor) -> Box<dyn Task> {
    for_target(&pre.labels, pre.regression.as_ref())
}

/// A column of the predictions file that the task fills.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputColumn {
    /// `prediction`: the decided label.
    Prediction,
    /// A score column, by name.
    Score(String),
}

/// What `patron drift` watches of a task's outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Monitored {
    /// The calibrated score (the first of this many per row), in deciles.
    Score(usize),
    /// The predicted class, one bucket for each of this many classes.
    Class(usize),
}

/// A run's decision rule, fitted on validation.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Two classes: positive at or above this calibrated score.
    Threshold(f64),
    /// More classes: offsets added to each class's log-probability before the argmax
    /// (empty: the most probable class; a regression has nothing to decide).
    Offsets(Vec<f64>),
}

impl Decision {
    /// The decision a manifest records (its `threshold`, else its `class_offsets`).
    pub fn recorded(threshold: Option<f64>, offsets: Option<&[f64]>) -> Decision {
        match (threshold, offsets) {
            (Some(t), _) => Decision::Threshold(t),
            (None, Some(o)) => Decision::Offsets(o.to_vec()),
            (None, None) => Decision::Offsets(Vec::new()),
        }
    }

    /// The binary threshold (0.5 for a rule without one).
    pub fn threshold(&self) -> f64 {
        match self {
            Decision::Threshold(t) => *t,
            Decision::Offsets(_) => 0.5,
        }
    }

    /// The class offsets (none for a threshold).
    pub fn offsets(&self) -> &[f64] {
        match self {
            Decision::Offsets(o) => o,
            Decision::Threshold(_) => &[],
        }
    }
}

/// Per-row loss weights, normalized to mean 1 over the training rows: `balanced` gives
/// each class the same total weight (n / (k n_c)).
fn class_weights(labels: &[f32], mode: ClassWeight, classes: usize) -> Vec<f32> {
    match mode {
        ClassWeight::None => vec![1.0; labels.len()],
        ClassWeight::Balanced => {
            let n = labels.len() as f64;
            let mut counts = vec![0usize; classes.max(2)];
            for &y in labels {
                counts[y as usize] += 1;
            }
            let k = counts.iter().filter(|&&c| c > 0).count().max(1) as f64;
            labels
                .iter()
                .map(|&y| (n / (k * counts[y as usize].max(1) as f64)) as f32)
                .collect()
        }
    }
}

/// How an ensemble's members' logits make one set of logits: a classification averages
/// its members' probabilities (before calibration, which is fitted on the pooled logits'
/// scale) and returns the logits of that mean; a regression averages the network outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// One logit per row: the logit of the mean sigmoid.
    Sigmoid,
    /// `k` logits per row: the log of the mean softmax (its softmax is the mean).
    Softmax(usize),
    /// The mean of each output.
    Mean,
}

impl Pool {
    /// The rule in words, for exported metadata.
    pub fn rule(self) -> &'static str {
        match self {
            Pool::Sigmoid => "logit of the mean of the members' sigmoid(logit)",
            Pool::Softmax(_) => "log of the mean of the members' softmax(logits)",
            Pool::Mean => "mean of the members' outputs",
        }
    }

    /// The pooled logits of `members` (each `[rows * outputs]`, the same shape).
    pub fn combine(self, members: &[Vec<f64>]) -> Vec<f64> {
        let Some(first) = members.first() else {
            return Vec::new();
        };
        let n = members.len() as f64;
        match self {
            Pool::Mean => (0..first.len())
                .map(|i| members.iter().map(|m| m[i]).sum::<f64>() / n)
                .collect(),
            Pool::Sigmoid => (0..first.len())
                .map(|i| {
                    let p = members
                        .iter()
                        .map(|m| calibration::sigmoid(m[i]))
                        .sum::<f64>()
                        / n;
                    let p = p.clamp(1e-15, 1.0 - 1e-15);
                    (p / (1.0 - p)).ln()
                })
                .collect(),
            Pool::Softmax(k) => {
                let mut out = vec![0f64; first.len()];
                for m in members {
                    for (dst, row) in out.chunks_exact_mut(k).zip(m.chunks_exact(k)) {
                        let top = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        let sum: f64 = row.iter().map(|z| (z - top).exp()).sum();
                        for (d, z) in dst.iter_mut().zip(row) {
                            *d += (z - top).exp() / sum / n;
                        }
                    }
                }
                out.iter().map(|p| p.max(1e-300).ln()).collect()
            }
        }
    }
}

/// The cross-validated figures of a k-fold run: each fold model's validation metrics at
/// its best epoch, by their name without `valid_` (`auc_roc`, `loss`, `rmse`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossValidation {
    /// Folds (models in the ensemble).
    pub folds: usize,
    /// Each metric's mean, standard deviation (over folds, n - 1) and value per fold.
    pub metrics: BTreeMap<String, FoldFigures>,
}

/// One metric over the folds of a cross-validated run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldFigures {
    /// Mean over folds.
    pub mean: f64,
    /// Sample standard deviation over folds.
    pub std: f64,
    /// The value of each fold, fold 1 first.
    pub per_fold: Vec<f64>,
}

impl CrossValidation {
    /// The figures of folds whose best epochs scored `per_fold` (validation metrics by
    /// their `metrics.csv` column names).
    pub fn new(per_fold: &[ValidScores]) -> CrossValidation {
        let mut metrics = BTreeMap::new();
        if let Some(first) = per_fold.first() {
            for name in first.keys() {
                let values: Vec<f64> = per_fold
                    .iter()
                    .map(|v| v.get(name).copied().unwrap_or(f64::NAN))
                    .collect();
                let n = values.len() as f64;
                let mean = values.iter().sum::<f64>() / n;
                let var =
                    values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
                let short = name.strip_prefix("valid_").unwrap_or(name).to_string();
                metrics.insert(
                    short,
                    FoldFigures {
                        mean,
                        std: var.sqrt(),
                        per_fold: values,
                    },
                );
            }
        }
        CrossValidation {
            folds: per_fold.len(),
            metrics,
        }
    }
}

/// Validation figures of one epoch, by their `metrics.csv` column name.
pub type ValidScores = BTreeMap<String, f64>;

/// The `metrics.csv` columns of a classification task. New columns go at the end so
/// scripts reading the first six keep working.
pub const CLASSIFICATION_HISTORY: &[&str] = &[
    "epoch",
    "lr",
    "train_loss",
    "valid_loss",
    "valid_auc_roc",
    "seconds",
    "valid_accuracy",
    "valid_macro_f1",
];

/// Validation figures of a classification task: log loss of the uncalibrated
/// probabilities, ROC AUC and average precision (one-vs-rest means for more classes),
/// accuracy and macro-F1 of the most probable class.
pub(crate) fn classification_scores(
    loss: f64,
    auc_roc: f64,
    auc_pr: f64,
    accuracy: f64,
    macro_f1: f64,
) -> ValidScores {
    [
        ("valid_loss", loss),
        ("valid_auc_roc", auc_roc),
        ("valid_auc_pr", auc_pr),
        ("valid_accuracy", accuracy),
        ("valid_macro_f1", macro_f1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The report of a run or an evaluation: its JSON is exactly the inner report's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Report {
    /// A numeric target.
    Regression(RegressionReport),
    /// More than two classes.
    Multiclass(MulticlassReport),
    /// Two classes.
    Binary(BinaryReport),
}

/// Rows a run scored, as a report judges them.
pub struct Scores<'a> {
    /// Calibrated probabilities: one per row for two classes, else `[rows * classes]`
    /// (a regression: the predictions).
    pub probs: &'a [f64],
    /// The same before calibration.
    pub raw: &'a [f64],
    /// The class index of each row (a regression: its target).
    pub labels: &'a [f32],
}

impl Report {
    /// Take the segment and cross-validation figures of `old`, a report of the same task
    /// (`patron report` rebuilds a report without the rows' segment values or the folds).
    pub fn keep_segments(&mut self, old: Report) {
        match (self, old) {
            (Report::Binary(new), Report::Binary(old)) => {
                (new.segments, new.cv) = (old.segments, old.cv)
            }
            (Report::Multiclass(new), Report::Multiclass(old)) => {
                (new.segments, new.cv) = (old.segments, old.cv)
            }
            (Report::Regression(new), Report::Regression(old)) => {
                (new.segments, new.cv) = (old.segments, old.cv)
            }
            _ => {}
        }
    }

    /// Record a cross-validated run's per-fold figures.
    pub fn set_cv(&mut self, cv: CrossValidation) {
        let slot = match self {
            Report::Binary(r) => &mut r.cv,
            Report::Multiclass(r) => &mut r.cv,
            Report::Regression(r) => &mut r.cv,
        };
        *slot = Some(cv);
    }

    /// A cross-validated run's per-fold figures.
    pub fn cv(&self) -> Option<&CrossValidation> {
        match self {
            Report::Binary(r) => r.cv.as_ref(),
            Report::Multiclass(r) => r.cv.as_ref(),
            Report::Regression(r) => r.cv.as_ref(),
        }
    }

    /// Rows scored.
    pub fn n(&self) -> usize {
        match self {
            Report::Binary(r) => r.n,
            Report::Multiclass(r) => r.n,
            Report::Regression(r) => r.n,
        }
    }

    /// Which rows were scored.
    pub fn evaluated_on(&self) -> &str {
        match self {
            Report::Binary(r) => &r.evaluated_on,
            Report::Multiclass(r) => &r.evaluated_on,
            Report::Regression(r) => &r.evaluated_on,
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
            Report::Regression(r) => vec![
                ("rmse", r.metrics.rmse),
                ("mae", r.metrics.mae),
                ("r2", r.metrics.r2),
                ("spearman", r.metrics.spearman),
            ],
        }
    }
}

/// Segment values listed per column; rarer values are grouped as `(other)`.
const MAX_SEGMENTS: usize = 25;

/// The rows of each distinct value of `values`, largest groups first; past
/// `MAX_SEGMENTS` the rarest values are grouped as `(other)`.
pub(crate) fn group_rows(values: &[String]) -> Vec<(String, Vec<usize>)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn two_labels_are_binary_and_more_are_multiclass() {
        let binary = for_target(&labels(&["no", "yes"]), None);
        assert_eq!((binary.name(), binary.outputs()), ("binary", 1));
        assert_eq!(binary.positive_label(), "yes");
        assert_eq!(
            binary.output_columns(),
            vec![
                OutputColumn::Score("score".into()),
                OutputColumn::Prediction
            ]
        );
        let three = for_target(&labels(&["a", "b", "c"]), None);
        assert_eq!((three.name(), three.outputs()), ("multiclass", 3));
        assert_eq!(three.positive_label(), "");
        assert_eq!(three.logit_names(), ["logit_0", "logit_1", "logit_2"]);
        assert_eq!(three.monitored(), Monitored::Class(3));
    }

    #[test]
    fn targets_and_decisions_follow_the_task() {
        let binary = for_target(&labels(&["no", "yes"]), None);
        assert_eq!(binary.targets(&[1.0, 0.0]), [1.0, 0.0]);
        // Class 1 from the threshold on, inclusive.
        let decided = binary.decide(&[0.2, 0.4, 0.41, 0.9], &Decision::Threshold(0.4));
        assert_eq!(decided, [0, 1, 1, 1]);
        assert!((binary.probability_of(&[0.2], 0, 0) - 0.8).abs() < 1e-12);

        let three = for_target(&labels(&["a", "b", "c"]), None);
        assert_eq!(three.targets(&[2.0, 0.0]), [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
        let probs = [0.5, 0.3, 0.2, 0.1, 0.45, 0.45];
        assert_eq!(three.decide(&probs, &Decision::Offsets(Vec::new())), [0, 1]);
        // The argmax, until an offset favours class 2 on the close row.
        let offsets = Decision::Offsets(vec![0.0, 0.0, 0.1]);
        assert_eq!(three.decide(&probs, &offsets), [0, 2]);
    }

    #[test]
    fn balanced_weights_equalize_classes() {
        let y = [1.0, 0.0, 0.0, 0.0];
        let w = class_weights(&y, ClassWeight::Balanced, 2);
        assert_eq!(w, vec![2.0, 2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0]);
        let total: f32 = w.iter().sum();
        assert!((total - 4.0).abs() < 1e-6);
        // A regression weighs every row the same.
        let target = NumericTarget {
            transform: crate::config::TargetTransform::None,
            loss: crate::config::Loss::Mse,
            center: 0.0,
            scale: 1.0,
            huber_delta: 1.0,
            tweedie_power: 1.5,
            quantiles: Vec::new(),
            decimal_comma: false,
        };
        let regression = for_target(&[], Some(&target));
        assert_eq!(
            regression.row_weights(&[3.5, 0.0], ClassWeight::Balanced),
            [1.0, 1.0]
        );
    }

    #[test]
    fn pooling_averages_the_members_probabilities() {
        let sigmoid = calibration::sigmoid;
        // Two rows; member probabilities 0.5 / 0.75 and 0.1 / 0.3.
        let logit = |p: f64| (p / (1.0 - p)).ln();
        let members = vec![vec![0.0, logit(0.1)], vec![logit(0.75), logit(0.3)]];
        let z = Pool::Sigmoid.combine(&members);
        assert!((sigmoid(z[0]) - 0.625).abs() < 1e-12, "{z:?}");
        assert!((sigmoid(z[1]) - 0.2).abs() < 1e-12, "{z:?}");
        // Three classes, one row: the softmax of the pooled logits is the mean softmax.
        let a = vec![2.0, 0.0, -1.0];
        let b = vec![-1.0, 1.0, 3.0];
        let softmax = |z: &[f64]| {
            let s: f64 = z.iter().map(|v| v.exp()).sum();
            z.iter().map(|v| v.exp() / s).collect::<Vec<f64>>()
        };
        let pooled = softmax(&Pool::Softmax(3).combine(&[a.clone(), b.clone()]));
        let (pa, pb) = (softmax(&a), softmax(&b));
        for j in 0..3 {
            assert!((pooled[j] - (pa[j] + pb[j]) / 2.0).abs() < 1e-12);
        }
        assert_eq!(
            Pool::Mean.combine(&[vec![1.0, 4.0], vec![3.0, -2.0]]),
            [2.0, 1.0]
        );
    }

    #[test]
    fn cross_validation_figures_are_each_metrics_mean_and_spread() {
        let fold = |auc: f64, loss: f64| -> ValidScores {
            [("valid_auc_roc", auc), ("valid_loss", loss)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect()
        };
        let cv = CrossValidation::new(&[fold(0.7, 0.3), fold(0.8, 0.5), fold(0.9, 0.4)]);
        assert_eq!(cv.folds, 3);
        let auc = &cv.metrics["auc_roc"];
        assert!((auc.mean - 0.8).abs() < 1e-12);
        assert!((auc.std - 0.1).abs() < 1e-12, "sample std: {}", auc.std);
        assert_eq!(auc.per_fold, [0.7, 0.8, 0.9]);
        assert!((cv.metrics["loss"].mean - 0.4).abs() < 1e-12);
        // `patron report` carries these over from report.json, so they must read back to
        // the same bits (serde_json's default float parser was one unit off on this one).
        let fold_rmse = 105.607_873_233_318_83;
        let text = serde_json::to_string(&fold_rmse).unwrap();
        assert_eq!(serde_json::from_str::<f64>(&text).unwrap(), fold_rmse);
    }

    #[test]
    fn a_manifest_decision_reads_back() {
        assert_eq!(
            Decision::recorded(Some(0.3), None),
            Decision::Threshold(0.3)
        );
        let offsets = Decision::recorded(None, Some(&[0.0, 0.2]));
        assert_eq!(offsets.offsets(), [0.0, 0.2]);
        assert_eq!(offsets.threshold(), 0.5);
    }
}
