//! A numeric target: one output per row (plus one per `model.quantiles` entry, trained
//! with the pinball loss), a squared-error, Huber, Poisson or Tweedie loss, predictions in
//! the target's units, and the regression `report.json` (errors, rank correlation, how
//! much of the total target the top-scored rows hold, and the intervals' coverage).

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use crate::config::{CalibrationMethod, ClassWeight, Config, Loss, TargetTransform, Threshold};
use crate::data::preprocess::NumericTarget;
use crate::error::{PatronError, Result};
use crate::task::calibration::Calibration;
use crate::task::{
    CrossValidation, Decision, Monitored, OutputColumn, Pool, Report, Scores, Task, ValidScores,
    group_rows,
};

/// The `metrics.csv` columns of a regression run.
pub const REGRESSION_HISTORY: &[&str] = &[
    "epoch",
    "lr",
    "train_loss",
    "valid_loss",
    "valid_rmse",
    "valid_mae",
    "seconds",
];

/// Largest log-link output turned into a prediction (e^40 is far past any spend).
const MAX_LOG: f64 = 40.0;

/// The regression task over a fitted numeric target.
#[derive(Debug, Clone)]
pub struct Regression {
    target: NumericTarget,
}

impl Regression {
    /// The task of a run whose target was fitted as `target`.
    pub fn new(target: NumericTarget) -> Self {
        Regression { target }
    }

    /// Fit how the network learns the target on the training rows' values: the
    /// transform, then standardization (identity link) or division by the mean (log
    /// link, so the output starts near 0). Values a loss cannot take are errors naming
    /// the loss and the row (numbered from 1 as in the file). `decimal_comma`: the column
    /// writes them with a decimal comma, recorded for reading it again.
    pub fn fit_target(
        values: &[f32],
        train_rows: &[usize],
        config: &Config,
        path: &Path,
        decimal_comma: bool,
    ) -> Result<NumericTarget> {
        let (transform, loss) = (config.data.target_transform, config.train.loss);
        let name = &config.data.target;
        for (r, &y) in values.iter().enumerate() {
            let y = f64::from(y);
            if transform == TargetTransform::Log1p && y <= -1.0 {
                return Err(PatronError::data(
                    path,
                    format!(
                        "target column {name:?} is {y} at row {}; data.target_transform = \"log1p\" needs values above -1",
                        r + 1
                    ),
                ));
            }
            if loss.log_link() && y < 0.0 {
                return Err(PatronError::data(
                    path,
                    format!(
                        "target column {name:?} is negative ({y}) at row {}; train.loss = \"{}\" needs values of 0 or more (use \"mse\" or \"huber\")",
                        r + 1,
                        loss.as_str()
                    ),
                ));
            }
        }
        let t: Vec<f64> = train_rows
            .iter()
            .map(|&r| transform_value(transform, f64::from(values[r])))
            .collect();
        let n = t.len().max(1) as f64;
        let mean = t.iter().sum::<f64>() / n;
        let (center, scale) = if loss.log_link() {
            (0.0, mean)
        } else {
            let var = t.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            (mean, var.sqrt())
        };
        if !(scale.is_finite() && scale > 0.0) {
            return Err(PatronError::data(
                path,
                format!(
                    "target column {name:?} is {} on the training rows; there is nothing to learn",
                    if loss.log_link() {
                        "zero everywhere"
                    } else {
                        "constant"
                    }
                ),
            ));
        }
        Ok(NumericTarget {
            transform,
            loss,
            center,
            scale,
            huber_delta: config.train.huber_delta,
            tweedie_power: config.train.tweedie_power,
            quantiles: config.model.quantiles.clone(),
            decimal_comma,
        })
    }

    /// Outputs per row: the value, then one per quantile.
    fn width(&self) -> usize {
        1 + self.target.quantiles.len()
    }

    /// The quantile heads' pinball loss of one row, on the scaled target.
    fn host_pinball(&self, heads: &[f64], y: f64) -> f64 {
        heads
            .iter()
            .zip(&self.target.quantiles)
            .map(|(&q, &tau)| {
                let d = y - q;
                if d >= 0.0 { tau * d } else { (tau - 1.0) * d }
            })
            .sum()
    }

    /// A quantile head's output in the target's units: the scaled target is linear in
    /// both links (a log link's heads are not exponentiated, so they can reach 0, and are
    /// clipped there), and a monotone transform maps quantiles exactly, with no smearing.
    fn quantile(&self, q: f64) -> f64 {
        let NumericTarget { center, scale, .. } = self.target;
        let t = if self.target.loss.log_link() {
            (scale * q).max(0.0)
        } else {
            center + scale * q
        };
        match self.target.transform {
            TargetTransform::None => t,
            TargetTransform::Log1p => t.min(MAX_LOG).exp_m1(),
        }
    }

    /// Each row's scores: the prediction, then its quantiles (each head shifted by its
    /// `shifts` entry, if any) in increasing order (sorted, so they never cross).
    fn scores(&self, logits: &[f64], smearing: f64, shifts: &[f64]) -> Vec<f64> {
        let width = self.width();
        let shift = |j: usize| shifts.get(j).copied().unwrap_or(0.0);
        let mut out = Vec::with_capacity(logits.len());
        for row in logits.chunks_exact(width) {
            out.push(self.predict(row[0], smearing));
            let start = out.len();
            out.extend(
                row[1..]
                    .iter()
                    .enumerate()
                    .map(|(j, &q)| self.quantile(q + shift(j))),
            );
            out[start..].sort_by(f64::total_cmp);
        }
        out
    }

    /// The column name of a quantile: `q10` for 0.1, `q97.5` for 0.975.
    fn quantile_name(q: f64) -> String {
        let percent = format!("{:.4}", q * 100.0);
        format!("q{}", percent.trim_end_matches('0').trim_end_matches('.'))
    }

    /// The target as the network learns it.
    fn scaled(&self, y: f64) -> f64 {
        let t = transform_value(self.target.transform, y);
        (t - self.target.center) / self.target.scale
    }

    /// The prediction of one output in the target's units; `smearing` corrects the
    /// back-transform of a log1p target (1: none).
    fn predict(&self, z: f64, smearing: f64) -> f64 {
        let t = self.transformed(z);
        match self.target.transform {
            TargetTransform::None => t,
            TargetTransform::Log1p => t.min(MAX_LOG).exp() * smearing - 1.0,
        }
    }

    /// The predicted transformed target of one output.
    fn transformed(&self, z: f64) -> f64 {
        let NumericTarget { center, scale, .. } = self.target;
        if self.target.loss.log_link() {
            scale * z.min(MAX_LOG).exp()
        } else {
            center + scale * z
        }
    }

    /// The loss of one row on the host, as [`Task::loss`] computes it on the device.
    fn host_loss(&self, z: f64, y: f64) -> f64 {
        let NumericTarget {
            huber_delta: delta,
            tweedie_power: p,
            ..
        } = self.target;
        match self.target.loss {
            Loss::Mse => (z - y).powi(2),
            Loss::Huber => {
                let a = (z - y).abs();
                let quad = a.min(delta);
                0.5 * quad * quad + delta * (a - quad)
            }
            Loss::Poisson => z.min(MAX_LOG).exp() - y * z,
            Loss::Tweedie => {
                let z = z.min(MAX_LOG);
                -y * ((1.0 - p) * z).exp() / (1.0 - p) + ((2.0 - p) * z).exp() / (2.0 - p)
            }
        }
    }

    /// Each row's prediction (its first output).
    fn predictions(&self, logits: &[f64], smearing: f64) -> Vec<f64> {
        logits
            .chunks_exact(self.width())
            .map(|row| self.predict(row[0], smearing))
            .collect()
    }
}

/// A target value after `transform`.
fn transform_value(transform: TargetTransform, y: f64) -> f64 {
    match transform {
        TargetTransform::None => y,
        TargetTransform::Log1p => y.ln_1p(),
    }
}

impl Task for Regression {
    fn name(&self) -> &'static str {
        "regression"
    }

    fn outputs(&self) -> usize {
        self.width()
    }

    fn targets(&self, labels: &[f32]) -> Vec<f32> {
        // The scaled target once per output: the value's and each quantile head's.
        labels
            .iter()
            .flat_map(|&y| std::iter::repeat_n(self.scaled(f64::from(y)) as f32, self.width()))
            .collect()
    }

    fn loss(&self, logits: Tensor<2>, targets: Tensor<2>, weights: Tensor<1>) -> Tensor<1> {
        let rows = weights.dims()[0];
        let mut pinball: Option<Tensor<1>> = None;
        for (j, &tau) in self.target.quantiles.iter().enumerate() {
            let column = |t: &Tensor<2>| t.clone().slice([0..rows, j + 1..j + 2]).reshape([rows]);
            let d = column(&targets) - column(&logits);
            // tau * max(d, 0) + (1 - tau) * max(-d, 0).
            let head = relu(d.clone()).mul_scalar(tau) + relu(d.neg()).mul_scalar(1.0 - tau);
            pinball = Some(match pinball {
                Some(sum) => sum + head,
                None => head,
            });
        }
        let (z, y) = if self.width() == 1 {
            (logits.reshape([rows]), targets.reshape([rows]))
        } else {
            (
                logits.slice([0..rows, 0..1]).reshape([rows]),
                targets.slice([0..rows, 0..1]).reshape([rows]),
            )
        };
        let NumericTarget {
            huber_delta: delta,
            tweedie_power: p,
            ..
        } = self.target;
        let per_row = match self.target.loss {
            Loss::Mse => (z - y).powf_scalar(2.0),
            Loss::Huber => {
                // Quadratic up to delta, linear past it, without a mask.
                let a = (z - y).abs();
                let quad = a.clone().clamp_max(delta);
                quad.clone().powf_scalar(2.0).mul_scalar(0.5) + (a - quad).mul_scalar(delta)
            }
            Loss::Poisson => {
                let z = z.clamp_max(MAX_LOG);
                z.clone().exp() - y * z
            }
            Loss::Tweedie => {
                let z = z.clamp_max(MAX_LOG);
                let rise = z.clone().mul_scalar(1.0 - p).exp() * y;
                rise.div_scalar(p - 1.0) + z.mul_scalar(2.0 - p).exp().div_scalar(2.0 - p)
            }
        };
        let per_row = match pinball {
            Some(heads) => per_row + heads,
            None => per_row,
        };
        (per_row * weights).mean()
    }

    fn validate(&self, logits: &[f64], labels: &[f32]) -> ValidScores {
        let n = labels.len().max(1) as f64;
        let loss = logits
            .chunks_exact(self.width())
            .zip(labels)
            .map(|(row, &y)| {
                let y = self.scaled(f64::from(y));
                self.host_loss(row[0], y) + self.host_pinball(&row[1..], y)
            })
            .sum::<f64>()
            / n;
        let predictions = self.predictions(logits, 1.0);
        let (rmse, mae) = errors(&predictions, labels);
        [
            ("valid_loss", loss),
            ("valid_rmse", rmse),
            ("valid_mae", mae),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn history_columns(&self) -> &'static [&'static str] {
        REGRESSION_HISTORY
    }

    fn ranking(&self, logits: &[f64], labels: &[f32]) -> f64 {
        -errors(&self.predictions(logits, 1.0), labels).0
    }

    fn watched(&self) -> &'static str {
        "valid_rmse"
    }

    fn fit(
        &self,
        _method: CalibrationMethod,
        _threshold: Threshold,
        logits: &[f64],
        labels: &[f32],
    ) -> (Calibration, Decision) {
        let mut calibration = Calibration::identity();
        if self.target.transform == TargetTransform::Log1p && !logits.is_empty() {
            // exp of a predicted mean log is a median; one factor scales it back to a mean:
            // the one that fits 1 + y on the validation rows with the least squared error.
            // Where the residuals do not depend on the prediction it is Duan's smearing
            // (the mean exponentiated residual); where they do (zero-heavy spend: a few
            // large residuals among many small ones), Duan's factor multiplied every
            // prediction by them (CDNOW: test RMSE 218 against 94 for ridge).
            let (fitted, square) = logits.chunks_exact(self.width()).zip(labels).fold(
                (0.0, 0.0),
                |(fitted, square), (row, &y)| {
                    let e = self.transformed(row[0]).min(MAX_LOG).exp();
                    (fitted + (1.0 + f64::from(y)) * e, square + e * e)
                },
            );
            let factor = fitted / square;
            if factor.is_finite() && factor > 0.0 {
                calibration.smearing = factor;
            }
        }
        if !labels.is_empty() {
            // Conformalized quantile regression (Romano et al., 2019), one side per head:
            // a network that fits its training rows closely predicts quantiles that are
            // too narrow on new rows; shifting each head by the matching quantile of its
            // validation residuals restores its share.
            let rows: Vec<&[f64]> = logits.chunks_exact(self.width()).collect();
            calibration.quantile_shifts = self
                .target
                .quantiles
                .iter()
                .enumerate()
                .map(|(j, &tau)| {
                    let mut residuals: Vec<f64> = rows
                        .iter()
                        .zip(labels)
                        .map(|(row, &y)| self.scaled(f64::from(y)) - row[1 + j])
                        .collect();
                    residuals.sort_by(f64::total_cmp);
                    let at = (tau * residuals.len() as f64).ceil() as usize;
                    residuals[at.clamp(1, residuals.len()) - 1]
                })
                .collect();
        }
        (calibration, Decision::Offsets(Vec::new()))
    }

    fn probabilities(&self, calibration: &Calibration, logits: &[f64]) -> Vec<f64> {
        self.scores(logits, calibration.smearing, &calibration.quantile_shifts)
    }

    fn uncalibrated(&self, logits: &[f64]) -> Vec<f64> {
        self.scores(logits, 1.0, &[])
    }

    fn pool(&self) -> Pool {
        Pool::Mean
    }

    fn decide(&self, _probs: &[f64], _decision: &Decision) -> Vec<usize> {
        Vec::new()
    }

    fn probability_of(&self, probs: &[f64], row: usize, _class: usize) -> f64 {
        probs[row * self.width()]
    }

    fn effect(&self, calibration: &Calibration, z: &[f64], _class: usize) -> f64 {
        self.predict(z[0], calibration.smearing)
    }

    fn row_weights(&self, labels: &[f32], _mode: ClassWeight) -> Vec<f32> {
        vec![1.0; labels.len()]
    }

    fn signed_effects(&self) -> bool {
        true
    }

    fn explains_texts(&self) -> bool {
        false
    }

    fn report(
        &self,
        scores: &Scores,
        _decision: &Decision,
        evaluated_on: &str,
        segments: &[(String, Vec<String>)],
    ) -> Report {
        let width = self.width();
        let predictions: Vec<f64> = scores.probs.iter().step_by(width).copied().collect();
        let mut report = RegressionReport::new(&predictions, scores.labels, evaluated_on);
        if width > 1 {
            report.intervals = Some(Intervals::measure(
                &self.target.quantiles,
                scores.probs,
                scores.labels,
            ));
        }
        report.loss = self.target.loss.as_str().to_string();
        report.target_transform = match self.target.transform {
            TargetTransform::None => "none",
            TargetTransform::Log1p => "log1p",
        }
        .to_string();
        for (name, values) in segments {
            let groups = group_rows(values)
                .into_iter()
                .map(|(value, rows)| {
                    let p: Vec<f64> = rows.iter().map(|&i| predictions[i]).collect();
                    let y: Vec<f32> = rows.iter().map(|&i| scores.labels[i]).collect();
                    RegressionSegment {
                        value,
                        n: rows.len(),
                        mean_target: mean(y.iter().map(|&v| f64::from(v))),
                        mean_prediction: mean(p.iter().copied()),
                        rmse: errors(&p, &y).0,
                    }
                })
                .collect();
            report.segments.insert(name.clone(), groups);
        }
        Report::Regression(report)
    }

    fn logit_names(&self) -> Vec<String> {
        let heads = self.target.quantiles.iter();
        std::iter::once("output".to_string())
            .chain(heads.map(|&q| format!("output_{}", Self::quantile_name(q))))
            .collect()
    }

    fn output_columns(&self) -> Vec<OutputColumn> {
        let heads = self.target.quantiles.iter();
        std::iter::once(OutputColumn::Score("prediction".into()))
            .chain(heads.map(|&q| OutputColumn::Score(Self::quantile_name(q))))
            .collect()
    }

    fn monitored(&self) -> Monitored {
        Monitored::Score(self.width())
    }

    fn positive_label(&self) -> String {
        String::new()
    }

    fn describe_target(&self) -> String {
        format!("regression, loss {}", self.target.loss.as_str())
    }

    fn describe_predictions(&self, _counts: &[usize]) -> String {
        "regression".into()
    }
}

/// The mean of some values (0 for none).
fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Root mean squared and mean absolute error of predictions against targets.
pub fn errors(predictions: &[f64], targets: &[f32]) -> (f64, f64) {
    let n = targets.len().max(1) as f64;
    let (mut se, mut ae) = (0.0, 0.0);
    for (&p, &y) in predictions.iter().zip(targets) {
        let d = p - f64::from(y);
        se += d * d;
        ae += d.abs();
    }
    ((se / n).sqrt(), ae / n)
}

/// Ranks from 1, ties given their mean rank.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &r in &order[i..=j] {
            ranks[r] = rank;
        }
        i = j + 1;
    }
    ranks
}

/// Pearson correlation (0 when either side is constant).
fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let (ma, mb) = (mean(a.iter().copied()), mean(b.iter().copied()));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma).powi(2);
        bb += (y - mb).powi(2);
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa * bb).sqrt()
    }
}

/// Spearman's rank correlation.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// Row indices ordered by prediction, highest first (ties by row order): the order of
/// the decile figures and of the value-gains curve.
pub fn by_prediction(predictions: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..predictions.len()).collect();
    order.sort_by(|&a, &b| predictions[b].total_cmp(&predictions[a]).then(a.cmp(&b)));
    order
}

/// The share of the total target held by each tenth of the rows ordered by prediction,
/// highest predictions first (ties broken by row order); `None` when the total is not
/// positive, where a share means nothing.
pub fn decile_shares(predictions: &[f64], targets: &[f32]) -> Option<Vec<f64>> {
    let total: f64 = targets.iter().map(|&y| f64::from(y)).sum();
    if total <= 0.0 || targets.is_empty() {
        return None;
    }
    let order = by_prediction(predictions);
    let n = order.len();
    Some(
        (0..10)
            .map(|d| {
                let rows = &order[d * n / 10..(d + 1) * n / 10];
                rows.iter().map(|&r| f64::from(targets[r])).sum::<f64>() / total
            })
            .collect(),
    )
}

/// Mean prediction and mean target in each tenth of the rows ordered by prediction,
/// highest first: calibration for a regression.
pub fn decile_means(predictions: &[f64], targets: &[f32]) -> Vec<(f64, f64)> {
    let order = by_prediction(predictions);
    let n = order.len();
    (0..10)
        .map(|d| &order[d * n / 10..(d + 1) * n / 10])
        .filter(|rows| !rows.is_empty())
        .map(|rows| {
            (
                mean(rows.iter().map(|&r| predictions[r])),
                mean(rows.iter().map(|&r| f64::from(targets[r]))),
            )
        })
        .collect()
}

/// The metrics of a regression report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionMetrics {
    /// Root mean squared error, in the target's units.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Coefficient of determination against predicting the evaluated rows' mean.
    pub r2: f64,
    /// Spearman's rank correlation of predictions and targets.
    pub spearman: f64,
    /// Mean prediction.
    pub mean_prediction: f64,
    /// Mean target.
    pub mean_target: f64,
    /// Share of the total target held by the tenth of rows with the highest predictions
    /// (`null` when the total is not positive).
    pub top10_share: Option<f64>,
}

/// `report.json` of a regression task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionReport {
    /// Always `regression`.
    pub task: String,
    /// Rows scored.
    pub n: usize,
    /// Metric values.
    pub metrics: RegressionMetrics,
    /// Share of the total target in each tenth of the rows by prediction, highest first
    /// (`null` when the total is not positive).
    pub decile_share: Option<Vec<f64>>,
    /// The loss trained.
    pub loss: String,
    /// The target transform (`none` or `log1p`).
    pub target_transform: String,
    /// With `model.quantiles`: how often the evaluated rows fell below each predicted
    /// quantile and inside the outermost two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intervals: Option<Intervals>,
    /// Which rows were scored: `test`, `valid` (when no test split) or a file path.
    pub evaluated_on: String,
    /// Figures per value of each `report.segments` column.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub segments: BTreeMap<String, Vec<RegressionSegment>>,
    /// k-fold cross-validation's per-fold figures (a cross-validated run's report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cv: Option<CrossValidation>,
}

/// How the predicted quantiles held on the evaluated rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intervals {
    /// The quantiles predicted (`model.quantiles`).
    pub quantiles: Vec<f64>,
    /// Share of rows at or below each predicted quantile (ideally the quantile itself).
    pub below: Vec<f64>,
    /// Share of rows between the lowest and the highest predicted quantile (ideally their
    /// difference, 0.8 for `[0.1, 0.9]`).
    pub coverage: f64,
    /// Mean width of that interval, in the target's units.
    pub mean_width: f64,
}

impl Intervals {
    /// Measure `scores` (per row: the prediction, then each quantile) against `targets`.
    pub fn measure(quantiles: &[f64], scores: &[f64], targets: &[f32]) -> Intervals {
        let width = 1 + quantiles.len();
        let n = targets.len().max(1) as f64;
        let rows = || scores.chunks_exact(width).zip(targets);
        let below = (0..quantiles.len())
            .map(|j| rows().filter(|(s, y)| f64::from(**y) <= s[1 + j]).count() as f64 / n)
            .collect();
        let inside = rows()
            .filter(|(s, y)| (s[1]..=s[width - 1]).contains(&f64::from(**y)))
            .count();
        let spread: f64 = rows().map(|(s, _)| s[width - 1] - s[1]).sum();
        Intervals {
            quantiles: quantiles.to_vec(),
            below,
            coverage: inside as f64 / n,
            mean_width: spread / n,
        }
    }
}

/// The evaluated rows sharing one value of a segment column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionSegment {
    /// The column value (`(missing)` for blanks, `(other)` for the rarest values grouped).
    pub value: String,
    /// Rows.
    pub n: usize,
    /// Mean target.
    pub mean_target: f64,
    /// Mean prediction.
    pub mean_prediction: f64,
    /// RMSE within the segment.
    pub rmse: f64,
}

impl RegressionReport {
    /// The report of predictions against targets.
    pub fn new(predictions: &[f64], targets: &[f32], evaluated_on: &str) -> Self {
        let (rmse, mae) = errors(predictions, targets);
        let y: Vec<f64> = targets.iter().map(|&v| f64::from(v)).collect();
        let mean_target = mean(y.iter().copied());
        let total_var = y.iter().map(|v| (v - mean_target).powi(2)).sum::<f64>();
        let residual = rmse * rmse * y.len() as f64;
        let decile_share = decile_shares(predictions, targets);
        RegressionReport {
            task: "regression".into(),
            n: predictions.len(),
            metrics: RegressionMetrics {
                rmse,
                mae,
                r2: if total_var > 0.0 {
                    1.0 - residual / total_var
                } else {
                    0.0
                },
                spearman: spearman(predictions, &y),
                mean_prediction: mean(predictions.iter().copied()),
                mean_target,
                top10_share: decile_share.as_ref().map(|d| d[0]),
            },
            decile_share,
            loss: String::new(),
            target_transform: String::new(),
            intervals: None,
            evaluated_on: evaluated_on.to_string(),
            segments: BTreeMap::new(),
            cv: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn task(loss: Loss, transform: TargetTransform) -> Regression {
        Regression::new(NumericTarget {
            transform,
            loss,
            center: 10.0,
            scale: 2.0,
            huber_delta: 1.0,
            tweedie_power: 1.5,
            quantiles: Vec::new(),
            decimal_comma: false,
        })
    }

    #[test]
    fn device_losses_match_the_host_form() {
        let device = Device::flex().autodiff();
        let z = [0.3f32, -1.2, 2.5, -0.1, 1.0];
        let y = [1.0f32, 0.0, 0.2, 3.0, 1.0];
        for loss in [Loss::Mse, Loss::Huber, Loss::Poisson, Loss::Tweedie] {
            let t = task(loss, TargetTransform::None);
            let tensor = |v: &[f32]| {
                Tensor::<2>::from_data(TensorData::new(v.to_vec(), [v.len(), 1]), &device)
            };
            let w = Tensor::<1>::from_data(TensorData::new(vec![1.0f32; 5], [5]), &device);
            let got = f64::from(t.loss(tensor(&z), tensor(&y), w).into_scalar::<f32>());
            let want = z
                .iter()
                .zip(&y)
                .map(|(&z, &y)| t.host_loss(f64::from(z), f64::from(y)))
                .sum::<f64>()
                / 5.0;
            assert!((got - want).abs() < 1e-5, "{loss:?}: {got} vs {want}");
        }
        // Huber: quadratic inside delta, linear outside.
        let t = task(Loss::Huber, TargetTransform::None);
        assert!((t.host_loss(0.5, 0.0) - 0.125).abs() < 1e-12);
        assert!((t.host_loss(3.0, 0.0) - 2.5).abs() < 1e-12);
    }

    #[test]
    fn outputs_map_back_to_the_target_units() {
        let t = task(Loss::Mse, TargetTransform::None);
        assert_eq!(t.targets(&[12.0, 8.0]), [1.0, -1.0]);
        assert_eq!(t.uncalibrated(&[1.0, -0.5]), [12.0, 9.0]);
        // A log link never predicts below zero.
        let t = task(Loss::Tweedie, TargetTransform::None);
        let p = t.uncalibrated(&[-30.0, 0.0]);
        assert!(p[0] > 0.0 && p[0] < 1e-9);
        assert!((p[1] - 2.0).abs() < 1e-12);
        // log1p: the smearing factor scales exp of the predicted log.
        let t = task(Loss::Mse, TargetTransform::Log1p);
        let z = (2.0f64.ln() - 10.0) / 2.0;
        assert!((t.uncalibrated(&[z])[0] - 1.0).abs() < 1e-9);
        let cal = Calibration {
            smearing: 1.5,
            ..Calibration::identity()
        };
        assert!((t.probabilities(&cal, &[z])[0] - 2.0).abs() < 1e-9);
    }

    #[test]
    fn quantile_heads_train_on_the_pinball_loss_and_never_cross() {
        let t = Regression::new(NumericTarget {
            quantiles: vec![0.1, 0.9],
            ..task(Loss::Mse, TargetTransform::None).target
        });
        assert_eq!(t.outputs(), 3);
        assert_eq!(t.targets(&[12.0]), [1.0, 1.0, 1.0]);
        assert_eq!(
            t.output_columns(),
            [
                OutputColumn::Score("prediction".into()),
                OutputColumn::Score("q10".into()),
                OutputColumn::Score("q90".into())
            ]
        );
        assert_eq!(Regression::quantile_name(0.975), "q97.5");
        // Crossed heads come out sorted.
        assert_eq!(t.uncalibrated(&[0.0, 1.0, -1.0]), [10.0, 8.0, 12.0]);
        // Validation shifts each head to its share: targets 1..=10 (scaled -4.5..0),
        // heads all at -2.5 (target 5); a tenth of the rows at or below -4.5 + shift.
        let y: Vec<f32> = (1..=10).map(|v| v as f32).collect();
        let logits: Vec<f64> = std::iter::repeat_n([0.0, -2.5, -2.5], 10)
            .flatten()
            .collect();
        let (cal, _) = t.fit(CalibrationMethod::None, Threshold::F1, &logits, &y);
        assert_eq!(cal.quantile_shifts, [-2.0, 2.0]);
        assert_eq!(&t.probabilities(&cal, &logits)[..3], [10.0, 1.0, 9.0]);
        // The device loss: the value's squared error plus each head's pinball loss.
        let device = Device::flex().autodiff();
        let z = [0.5f32, 0.0, 2.0];
        let logits = Tensor::<2>::from_data(TensorData::new(z.to_vec(), [1, 3]), &device);
        let targets = Tensor::<2>::from_data(TensorData::new(vec![1.0f32; 3], [1, 3]), &device);
        let w = Tensor::<1>::from_data(TensorData::new(vec![1.0f32], [1]), &device);
        let got = f64::from(t.loss(logits, targets, w).into_scalar::<f32>());
        // 0.5^2 + 0.1 * (1 - 0) + 0.1 * (2 - 1)
        assert!((got - 0.45).abs() < 1e-6, "{got}");
        assert!((t.host_pinball(&[0.0, 2.0], 1.0) - 0.2).abs() < 1e-12);
        let i = Intervals::measure(&[0.1, 0.9], &[5.0, 1.0, 9.0, 5.0, 4.0, 6.0], &[2.0, 7.0]);
        assert_eq!(
            (i.below.clone(), i.coverage, i.mean_width),
            (vec![0.0, 0.5], 0.5, 5.0)
        );
    }

    #[test]
    fn smearing_does_not_scale_every_prediction_by_a_few_large_residuals() {
        // Eight rows predict 0 and are 0; one predicts 0 and is 99 (a surprise spender);
        // one predicts 99 and is 99. Duan's mean of exp(residual), (8 + 100 + 1) / 10 =
        // 10.9, would predict 9.9 for every row predicted 0 and 1,089 for the last; the
        // least-squares factor stays near 1.
        let t = task(Loss::Mse, TargetTransform::Log1p);
        let mut y = vec![0.0f32; 8];
        y.extend([99.0, 99.0]);
        let to_z = |log: f64| (log - 10.0) / 2.0;
        let mut z = vec![to_z(0.0); 9];
        z.push(to_z(100f64.ln()));
        let (cal, _) = t.fit(CalibrationMethod::None, Threshold::F1, &z, &y);
        // (8 * 1 + 100 * 1 + 100 * 100) / (8 + 1 + 100 * 100) = 10108 / 10009.
        assert!(
            (cal.smearing - 10108.0 / 10009.0).abs() < 1e-9,
            "{}",
            cal.smearing
        );
        let p = t.probabilities(&cal, &z);
        assert!(p[0].abs() < 0.02 && (p[9] - 100.0).abs() < 0.1, "{p:?}");
    }

    #[test]
    fn smearing_recovers_the_mean_of_a_skewed_target() {
        // Every row predicts the mean log; the targets spread around it.
        let t = task(Loss::Mse, TargetTransform::Log1p);
        let y: Vec<f32> = [0.0f64, 1.0, 3.0, 7.0].iter().map(|&v| v as f32).collect();
        let mean_log = y.iter().map(|&v| f64::from(v).ln_1p()).sum::<f64>() / 4.0;
        let z = vec![(mean_log - 10.0) / 2.0; 4];
        let (cal, _) = t.fit(CalibrationMethod::None, Threshold::F1, &z, &y);
        let p = t.probabilities(&cal, &z);
        assert!((p[0] - 2.75).abs() < 1e-9, "{p:?}");
        assert!(t.uncalibrated(&z)[0] < 2.0);
    }

    #[test]
    fn the_report_measures_errors_ranks_and_shares() {
        let targets: Vec<f32> = (0..20).map(|i| if i >= 18 { 50.0 } else { 0.0 }).collect();
        let predictions: Vec<f64> = (0..20).map(|i| i as f64).collect();
        let r = RegressionReport::new(&predictions, &targets, "test");
        // The two highest predictions hold all the target.
        assert_eq!(r.metrics.top10_share, Some(1.0));
        let shares = r.decile_share.as_ref().unwrap();
        assert_eq!(shares.len(), 10);
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Ranks 1..20 against 9.5 (18 times) and 19.5 (twice): r = sqrt(180 / 665).
        assert!((r.metrics.spearman - (180.0f64 / 665.0).sqrt()).abs() < 1e-12);
        assert_eq!(r.metrics.mean_target, 5.0);
        let perfect: Vec<f64> = targets.iter().map(|&y| f64::from(y)).collect();
        let r = RegressionReport::new(&perfect, &targets, "test");
        assert_eq!((r.metrics.rmse, r.metrics.r2), (0.0, 1.0));
        assert!((r.metrics.spearman - 1.0).abs() < 1e-12);
        // Without a positive total there are no shares.
        assert_eq!(decile_shares(&[1.0, 2.0], &[-1.0, 1.0]), None);
        assert_eq!(ranks(&[3.0, 1.0, 3.0]), [2.5, 1.0, 2.5]);
    }
}
