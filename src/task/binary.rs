//! Two classes: one logit per row, binary cross-entropy, Platt scaling, a decision
//! threshold (fitted for the best validation F1, or fixed by `train.threshold`), and the
//! binary `report.json`.

use std::collections::BTreeMap;

use burn::tensor::Tensor;
use burn::tensor::activation::log_sigmoid;
use serde::{Deserialize, Serialize};

use crate::config::{CalibrationMethod, Threshold};
use crate::task::calibration::{Calibration, sigmoid};
use crate::task::metrics::{
    BinaryMetrics, Confusion, MulticlassMetrics, auc_roc, average_precision, best_f1_threshold,
    log_loss,
};
use crate::task::{
    CLASSIFICATION_HISTORY, CrossValidation, Decision, Monitored, OutputColumn, Pool, Report,
    Scores, Task, ValidScores, classification_scores, group_rows,
};

/// The binary task; the second label is the positive class.
#[derive(Debug, Clone)]
pub struct Binary {
    labels: Vec<String>,
}

impl Binary {
    /// The task over `[negative, positive]`.
    pub fn new(labels: &[String]) -> Self {
        Binary {
            labels: labels.to_vec(),
        }
    }

    fn positive(&self) -> &str {
        self.labels.get(1).map_or("", String::as_str)
    }
}

impl Task for Binary {
    fn name(&self) -> &'static str {
        "binary"
    }

    fn outputs(&self) -> usize {
        1
    }

    fn targets(&self, labels: &[f32]) -> Vec<f32> {
        labels.to_vec()
    }

    fn loss(&self, logits: Tensor<2>, targets: Tensor<2>, weights: Tensor<1>) -> Tensor<1> {
        let rows = weights.dims()[0];
        weighted_bce(logits.reshape([rows]), targets.reshape([rows]), weights)
    }

    fn validate(&self, logits: &[f64], labels: &[f32]) -> ValidScores {
        let p = self.uncalibrated(logits);
        let two: Vec<f64> = p.iter().flat_map(|&p| [1.0 - p, p]).collect();
        let m = MulticlassMetrics::compute(&two, labels, 2, &[]);
        classification_scores(
            log_loss(&p, labels),
            auc_roc(&p, labels),
            average_precision(&p, labels),
            m.accuracy,
            m.macro_f1,
        )
    }

    fn ranking(&self, logits: &[f64], labels: &[f32]) -> f64 {
        auc_roc(logits, labels)
    }

    fn watched(&self) -> &'static str {
        "valid_auc_roc"
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
        let calibration = Calibration::fit(method, logits, labels);
        let threshold = match threshold {
            Threshold::F1 => best_f1_threshold(&self.probabilities(&calibration, logits), labels).0,
            Threshold::At(t) => t,
        };
        (calibration, Decision::Threshold(threshold))
    }

    fn probabilities(&self, calibration: &Calibration, logits: &[f64]) -> Vec<f64> {
        logits.iter().map(|&z| calibration.apply(z)).collect()
    }

    fn uncalibrated(&self, logits: &[f64]) -> Vec<f64> {
        logits.iter().map(|&z| sigmoid(z)).collect()
    }

    fn pool(&self) -> Pool {
        Pool::Sigmoid
    }

    fn decide(&self, probs: &[f64], decision: &Decision) -> Vec<usize> {
        let threshold = decision.threshold();
        probs.iter().map(|&p| usize::from(p >= threshold)).collect()
    }

    fn probability_of(&self, probs: &[f64], row: usize, class: usize) -> f64 {
        if class == 1 {
            probs[row]
        } else {
            1.0 - probs[row]
        }
    }

    fn report(
        &self,
        scores: &Scores,
        decision: &Decision,
        evaluated_on: &str,
        segments: &[(String, Vec<String>)],
    ) -> Report {
        let Scores { probs, raw, labels } = *scores;
        Report::Binary(
            BinaryReport::new(
                probs,
                raw,
                labels,
                decision.threshold(),
                self.positive(),
                evaluated_on,
            )
            .with_segments(segments, probs, labels),
        )
    }

    fn monitored(&self) -> Monitored {
        Monitored::Score(1)
    }

    fn logit_names(&self) -> Vec<String> {
        vec!["logit".into()]
    }

    fn output_columns(&self) -> Vec<OutputColumn> {
        vec![
            OutputColumn::Score("score".into()),
            OutputColumn::Prediction,
        ]
    }

    fn positive_label(&self) -> String {
        self.positive().to_string()
    }

    fn describe_target(&self) -> String {
        format!("positive {:?}", self.positive())
    }

    fn describe_predictions(&self, counts: &[usize]) -> String {
        let positives = counts.get(1).copied().unwrap_or(0);
        format!("{positives} predicted {:?}", self.positive())
    }
}

/// Weighted binary cross-entropy on logits, averaged over the batch.
pub fn weighted_bce(logits: Tensor<1>, targets: Tensor<1>, weights: Tensor<1>) -> Tensor<1> {
    // y log s(z) + (1 - y) log s(-z) = log s(z) - (1 - y) z, since log s(-z) = log s(z) - z.
    let ll = log_sigmoid(logits.clone()) - logits * targets.neg().add_scalar(1.0);
    (ll * weights).mean().neg()
}

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
    /// k-fold cross-validation's per-fold figures (a cross-validated run's report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cv: Option<CrossValidation>,
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
            cv: None,
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
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn weighted_bce_and_its_gradient_match_the_textbook_form() {
        let device = Device::flex().autodiff();
        let z = [0.3f32, -1.2, 30.0, -30.0, 2.0];
        let y = [1.0f32, 0.0, 0.0, 1.0, 1.0];
        let w = [1.0f32, 2.0, 1.0, 1.0, 0.5];
        let logits =
            Tensor::<1>::from_data(TensorData::new(z.to_vec(), [5]), &device).require_grad();
        let loss = weighted_bce(
            logits.clone(),
            Tensor::from_data(TensorData::new(y.to_vec(), [5]), &device),
            Tensor::from_data(TensorData::new(w.to_vec(), [5]), &device),
        );
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        // -mean(w * (y ln s(z) + (1 - y) ln(1 - s(z)))), with ln(1 - s(z)) = -z - ln(1 + e^-z)
        // so that z = +-30 stays finite.
        let expected: f64 = z
            .iter()
            .zip(&y)
            .zip(&w)
            .map(|((&z, &y), &w)| {
                let (z, y, w) = (f64::from(z), f64::from(y), f64::from(w));
                let log_s = -(1.0 + (-z).exp()).ln();
                let log_1_minus_s = -z - (1.0 + (-z).exp()).ln();
                -w * (y * log_s + (1.0 - y) * log_1_minus_s)
            })
            .sum::<f64>()
            / 5.0;
        let got = f64::from(loss.clone().into_scalar::<f32>());
        assert!(
            (got - expected).abs() < 1e-5 * expected,
            "{got} vs {expected}"
        );
        // d loss / d z = w (s(z) - y) / n.
        let grads = loss.backward();
        let g = logits
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for i in 0..5 {
            let want = f64::from(w[i]) * (sigmoid(f64::from(z[i])) - f64::from(y[i])) / 5.0;
            assert!(
                (f64::from(g[i]) - want).abs() < 1e-6,
                "z {}: {} vs {want}",
                z[i],
                g[i]
            );
        }
    }

    #[test]
    fn the_threshold_is_fitted_for_f1_or_fixed() {
        let t = Binary::new(&["no".into(), "yes".into()]);
        // Admitting down to 0.4 catches all three positives with one false positive
        // (F1 6/7): the best F1 cut sits below 0.5, where a fixed 0.5 keeps one positive.
        let p = [0.9, 0.6, 0.45, 0.4, 0.3, 0.1];
        let z: Vec<f64> = p.iter().map(|&p: &f64| (p / (1.0 - p)).ln()).collect();
        let y = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0];
        let (_, d) = t.fit(CalibrationMethod::None, Threshold::F1, &z, &y);
        assert!((d.threshold() - 0.4).abs() < 1e-9, "{d:?}");
        let (_, d) = t.fit(CalibrationMethod::None, Threshold::At(0.5), &z, &y);
        assert_eq!(d, Decision::Threshold(0.5));
        assert_eq!(t.decide(&p, &d), vec![1, 1, 0, 0, 0, 0]);
    }
}
