//! More than two classes: one logit per class, softmax cross-entropy, temperature
//! scaling, per-class offsets chosen for the best validation macro-F1, and the multiclass
//! `report.json`.

use std::collections::BTreeMap;

use burn::tensor::Tensor;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};

use crate::config::{CalibrationMethod, Threshold};
use crate::task::calibration::Calibration;
use crate::task::metrics::{
    ClassMetrics, MulticlassMetrics, auc_roc, average_precision, confusion_matrix, decide,
    fit_class_offsets, one_vs_rest, per_class, softmax_rows,
};
use crate::task::{
    CLASSIFICATION_HISTORY, CrossValidation, Decision, Monitored, OutputColumn, Pool, Report,
    Scores, Task, ValidScores, classification_scores, group_rows,
};

/// The multiclass task over its labels, sorted by name.
#[derive(Debug, Clone)]
pub struct Multiclass {
    labels: Vec<String>,
}

impl Multiclass {
    /// The task over `labels`.
    pub fn new(labels: &[String]) -> Self {
        Multiclass {
            labels: labels.to_vec(),
        }
    }

    fn k(&self) -> usize {
        self.labels.len()
    }
}

impl Task for Multiclass {
    fn name(&self) -> &'static str {
        "multiclass"
    }

    fn outputs(&self) -> usize {
        self.k()
    }

    fn targets(&self, labels: &[f32]) -> Vec<f32> {
        let k = self.k();
        let mut out = vec![0f32; labels.len() * k];
        for (r, &y) in labels.iter().enumerate() {
            out[r * k + y as usize] = 1.0;
        }
        out
    }

    fn loss(&self, logits: Tensor<2>, targets: Tensor<2>, weights: Tensor<1>) -> Tensor<1> {
        weighted_cross_entropy(logits, targets, weights)
    }

    /// ROC AUC and average precision are one-vs-rest means over the classes.
    fn validate(&self, logits: &[f64], labels: &[f32]) -> ValidScores {
        let k = self.k();
        let p = softmax_rows(logits, k);
        let m = MulticlassMetrics::compute(&p, labels, k, &[]);
        classification_scores(
            m.log_loss,
            one_vs_rest(&p, labels, k, auc_roc),
            one_vs_rest(&p, labels, k, average_precision),
            m.accuracy,
            m.macro_f1,
        )
    }

    fn ranking(&self, logits: &[f64], labels: &[f32]) -> f64 {
        let k = self.k();
        one_vs_rest(&softmax_rows(logits, k), labels, k, auc_roc)
    }

    fn watched(&self) -> &'static str {
        "valid_macro_f1"
    }

    fn history_columns(&self) -> &'static [&'static str] {
        CLASSIFICATION_HISTORY
    }

    fn fit(
        &self,
        method: CalibrationMethod,
        threshold: Threshold,
        logits: &[f64],
        labels: &[f32],
    ) -> (Calibration, Decision) {
        let calibration = Calibration::fit_softmax(method, logits, labels, self.k());
        let offsets = match threshold {
            Threshold::F1 => {
                fit_class_offsets(&self.probabilities(&calibration, logits), labels, self.k())
            }
            Threshold::At(_) => vec![0.0; self.k()],
        };
        (calibration, Decision::Offsets(offsets))
    }

    fn probabilities(&self, calibration: &Calibration, logits: &[f64]) -> Vec<f64> {
        logits
            .chunks_exact(self.k())
            .flat_map(|row| calibration.apply_softmax(row))
            .collect()
    }

    fn uncalibrated(&self, logits: &[f64]) -> Vec<f64> {
        softmax_rows(logits, self.k())
    }

    fn pool(&self) -> Pool {
        Pool::Softmax(self.k())
    }

    fn decide(&self, probs: &[f64], decision: &Decision) -> Vec<usize> {
        decide(probs, self.k(), decision.offsets())
    }

    fn probability_of(&self, probs: &[f64], row: usize, class: usize) -> f64 {
        probs[row * self.k() + class]
    }

    fn report(
        &self,
        scores: &Scores,
        decision: &Decision,
        evaluated_on: &str,
        segments: &[(String, Vec<String>)],
    ) -> Report {
        let Scores { probs, labels, .. } = *scores;
        Report::Multiclass(
            MulticlassReport::new(
                probs,
                labels,
                &self.labels,
                decision.offsets(),
                evaluated_on,
            )
            .with_segments(segments, probs, labels),
        )
    }

    fn monitored(&self) -> Monitored {
        Monitored::Class(self.k())
    }

    fn logit_names(&self) -> Vec<String> {
        (0..self.k()).map(|j| format!("logit_{j}")).collect()
    }

    fn output_columns(&self) -> Vec<OutputColumn> {
        let scores = self
            .labels
            .iter()
            .map(|l| OutputColumn::Score(format!("p_{l}")));
        std::iter::once(OutputColumn::Prediction)
            .chain(scores)
            .collect()
    }

    fn positive_label(&self) -> String {
        String::new()
    }

    fn describe_target(&self) -> String {
        format!("{} classes", self.k())
    }

    fn describe_predictions(&self, counts: &[usize]) -> String {
        let counts: Vec<String> = self
            .labels
            .iter()
            .zip(counts)
            .map(|(label, n)| format!("{n} {label:?}"))
            .collect();
        format!("predicted: {}", counts.join(", "))
    }
}

/// Weighted softmax cross-entropy of logits `[batch, k]` against one-hot targets.
pub fn weighted_cross_entropy(
    logits: Tensor<2>,
    one_hot: Tensor<2>,
    weights: Tensor<1>,
) -> Tensor<1> {
    let rows = weights.dims()[0];
    let ll = (log_softmax(logits, 1) * one_hot)
        .sum_dim(1)
        .reshape([rows]);
    (ll * weights).mean().neg()
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
    /// k-fold cross-validation's per-fold figures (a cross-validated run's report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cv: Option<CrossValidation>,
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
            cv: None,
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
}
