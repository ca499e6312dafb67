//! Probability calibration fitted on the validation split (Platt or temperature scaling),
//! so that `score` is a probability a campaign can budget with even after class weighting.

use serde::{Deserialize, Serialize};

use crate::config::CalibrationMethod;

/// Maps a model logit z to a probability sigmoid(a z + b).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// How it was fitted.
    pub method: CalibrationMethod,
    /// Slope on the logit (1 / temperature).
    pub a: f64,
    /// Intercept (0 for temperature scaling).
    pub b: f64,
    /// A regression target with a log1p transform: Duan's smearing factor multiplying
    /// exp of the predicted ln(1 + y) (1, and not written, otherwise).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub smearing: f64,
    /// A regression with `model.quantiles`: the shift added to each quantile head (on
    /// the scaled target) so that its share of validation rows below it is its quantile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quantile_shifts: Vec<f64>,
}

fn one() -> f64 {
    1.0
}

fn is_one(x: &f64) -> bool {
    *x == 1.0
}

/// The logistic function.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

impl Calibration {
    /// No calibration: the model's own probabilities.
    pub fn identity() -> Self {
        Calibration {
            method: CalibrationMethod::None,
            a: 1.0,
            b: 0.0,
            smearing: 1.0,
            quantile_shifts: Vec::new(),
        }
    }

    /// The calibrated probability of one logit.
    pub fn apply(&self, logit: f64) -> f64 {
        sigmoid(self.a * logit + self.b)
    }

    /// Calibrated log-odds of `class` from one row's logits: `a z + b` (negated for the
    /// negative class) with two classes; with more, the temperature-scaled logit of the
    /// class against the log-sum-exp of the others (unlike the log-probability, it does
    /// not saturate when the class is nearly certain).
    pub fn log_odds(&self, z: &[f64], class: usize) -> f64 {
        if let [z] = z {
            let l = self.a * z + self.b;
            return if class == 1 { l } else { -l };
        }
        let scaled = |j: usize| self.a * z[j];
        let rest = (0..z.len()).filter(|&j| j != class);
        let max = rest.clone().map(scaled).fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = rest.map(|j| (scaled(j) - max).exp()).sum();
        scaled(class) - max - sum.ln()
    }

    /// Fit on validation logits and 0/1 labels by Newton's method on the log loss.
    /// Targets are smoothed as in Platt (1999) so a perfectly separated validation split
    /// does not drive the slope to infinity.
    pub fn fit(method: CalibrationMethod, logits: &[f64], labels: &[f32]) -> Self {
        if method == CalibrationMethod::None || logits.is_empty() {
            return Calibration::identity();
        }
        let n_pos = labels.iter().filter(|&&y| y > 0.5).count() as f64;
        let n_neg = labels.len() as f64 - n_pos;
        if n_pos == 0.0 || n_neg == 0.0 {
            return Calibration::identity();
        }
        let hi = (n_pos + 1.0) / (n_pos + 2.0);
        let lo = 1.0 / (n_neg + 2.0);
        let targets: Vec<f64> = labels
            .iter()
            .map(|&y| if y > 0.5 { hi } else { lo })
            .collect();
        let with_intercept = method == CalibrationMethod::Platt;
        let (mut a, mut b) = (1.0f64, 0.0f64);
        let loss = |a: f64, b: f64| -> f64 {
            logits
                .iter()
                .zip(&targets)
                .map(|(&z, &t)| {
                    let p = sigmoid(a * z + b).clamp(1e-15, 1.0 - 1e-15);
                    -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
                })
                .sum()
        };
        let mut current = loss(a, b);
        for _ in 0..100 {
            // Gradient and Hessian of the summed log loss in (a, b).
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
            for (&z, &t) in logits.iter().zip(&targets) {
                let p = sigmoid(a * z + b);
                let d = p - t;
                let w = p * (1.0 - p);
                ga += d * z;
                gb += d;
                haa += w * z * z;
                hab += w * z;
                hbb += w;
            }
            let (da, db) = if with_intercept {
                let det = haa * hbb - hab * hab;
                if det.abs() < 1e-18 {
                    break;
                }
                ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det)
            } else {
                (ga / haa, 0.0)
            };
            // Backtracking keeps every step a descent step.
            let mut step = 1.0;
            let mut improved = false;
            while step > 1e-6 {
                let (na, nb) = (a - step * da, b - step * db);
                let l = loss(na, nb);
                if l <= current {
                    improved = (current - l) > 1e-12 * current.max(1.0);
                    a = na;
                    b = nb;
                    current = l;
                    break;
                }
                step /= 2.0;
            }
            if !improved {
                break;
            }
        }
        if !(a.is_finite() && b.is_finite()) {
            return Calibration::identity();
        }
        Calibration {
            method,
            a,
            b,
            smearing: 1.0,
            quantile_shifts: Vec::new(),
        }
    }

    /// Class probabilities of one row of multiclass logits: softmax(a z). The intercept is
    /// unused: a multiclass model is calibrated by temperature only.
    pub fn apply_softmax(&self, logits: &[f64]) -> Vec<f64> {
        let scaled: Vec<f64> = logits.iter().map(|&z| self.a * z).collect();
        crate::task::metrics::softmax_rows(&scaled, logits.len())
    }

    /// Temperature scaling of multiclass logits (`[rows * k]`): the slope `a = 1 / T` that
    /// minimizes the validation log loss, by golden-section search on log a. `Platt` has no
    /// multiclass form, so it also fits a temperature.
    pub fn fit_softmax(
        method: CalibrationMethod,
        logits: &[f64],
        labels: &[f32],
        k: usize,
    ) -> Self {
        if method == CalibrationMethod::None || labels.is_empty() {
            return Calibration::identity();
        }
        let loss = |log_a: f64| -> f64 {
            let a = log_a.exp();
            logits
                .chunks_exact(k)
                .zip(labels)
                .map(|(row, &y)| {
                    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let sum: f64 = row.iter().map(|&z| (a * (z - max)).exp()).sum();
                    -(a * (row[y as usize] - max) - sum.ln())
                })
                .sum()
        };
        let (mut lo, mut hi) = (-4.0f64, 4.0f64);
        let g = (5f64.sqrt() - 1.0) / 2.0;
        for _ in 0..60 {
            let (x1, x2) = (hi - g * (hi - lo), lo + g * (hi - lo));
            if loss(x1) <= loss(x2) {
                hi = x2;
            } else {
                lo = x1;
            }
        }
        let a = ((lo + hi) / 2.0).exp();
        if !a.is_finite() || loss(a.ln()) > loss(0.0) {
            return Calibration::identity();
        }
        Calibration {
            method: CalibrationMethod::Temperature,
            a,
            b: 0.0,
            smearing: 1.0,
            quantile_shifts: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::metrics::{log_loss, softmax_rows};

    #[test]
    fn log_odds_match_the_calibrated_probabilities() {
        let platt = Calibration {
            method: CalibrationMethod::Platt,
            a: 0.8,
            b: -0.3,
            smearing: 1.0,
            quantile_shifts: Vec::new(),
        };
        for z in [-4.0, 0.0, 2.5] {
            let p = platt.apply(z);
            assert!((sigmoid(platt.log_odds(&[z], 1)) - p).abs() < 1e-12);
            assert!((sigmoid(platt.log_odds(&[z], 0)) - (1.0 - p)).abs() < 1e-12);
        }
        let temperature = Calibration {
            method: CalibrationMethod::Temperature,
            a: 0.5,
            b: 0.0,
            smearing: 1.0,
            quantile_shifts: Vec::new(),
        };
        let z = [1.0, -2.0, 3.0];
        let p = softmax_rows(&[0.5, -1.0, 1.5], 3);
        for (k, &pk) in p.iter().enumerate() {
            let expected = (pk / (1.0 - pk)).ln();
            assert!((temperature.log_odds(&z, k) - expected).abs() < 1e-12);
        }
    }

    #[test]
    fn platt_undoes_a_shifted_and_scaled_logit() {
        // True probability sigmoid(z); the model reports 3 z + 2 (overconfident, biased).
        let mut logits = Vec::new();
        let mut labels = Vec::new();
        for i in 0..4000 {
            let z = (i as f64 / 4000.0) * 8.0 - 4.0;
            let p = sigmoid(z);
            // Deterministic labels with the right frequency: a low-discrepancy sequence.
            let u = (i as f64 * 0.618_033_988_75).fract();
            labels.push(if u < p { 1.0 } else { 0.0 });
            logits.push(3.0 * z + 2.0);
        }
        let c = Calibration::fit(CalibrationMethod::Platt, &logits, &labels);
        assert!((c.a - 1.0 / 3.0).abs() < 0.05, "{c:?}");
        assert!((c.b + 2.0 / 3.0).abs() < 0.1, "{c:?}");
        let raw: Vec<f64> = logits.iter().map(|&z| sigmoid(z)).collect();
        let cal: Vec<f64> = logits.iter().map(|&z| c.apply(z)).collect();
        assert!(log_loss(&cal, &labels) < log_loss(&raw, &labels));
        let t = Calibration::fit(CalibrationMethod::Temperature, &logits, &labels);
        assert_eq!(t.b, 0.0);
        assert!(t.a < 1.0 && t.a > 0.0, "{t:?}");
        let none = Calibration::fit(CalibrationMethod::None, &logits, &labels);
        assert_eq!(none, Calibration::identity());
    }

    #[test]
    fn temperature_undoes_overconfident_softmax() {
        // True class probabilities softmax(z); the model reports 4 z.
        let mut logits = Vec::new();
        let mut labels = Vec::new();
        for i in 0..3000 {
            let t = i as f64 / 3000.0;
            let z = [2.0 * t - 1.0, 0.0, 1.0 - 2.0 * t];
            let p = crate::task::metrics::softmax_rows(&z, 3);
            let u = (i as f64 * 0.618_033_988_75).fract();
            let y = if u < p[0] {
                0
            } else if u < p[0] + p[1] {
                1
            } else {
                2
            };
            labels.push(y as f32);
            logits.extend(z.iter().map(|v| 4.0 * v));
        }
        let c = Calibration::fit_softmax(CalibrationMethod::Platt, &logits, &labels, 3);
        assert!((c.a - 0.25).abs() < 0.05, "{c:?}");
        let row = c.apply_softmax(&logits[..3]);
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
