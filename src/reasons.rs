//! Per-row reasons (`patron predict --reasons K`): the input columns that moved each row's
//! prediction most. A column's effect is how far the log-odds of the predicted class fall
//! when that column alone is set to a typical value (its training median, or its most
//! frequent category), the model otherwise unchanged: the "what if this customer were
//! ordinary here" occlusion behind the reason codes of credit and churn scores. Effects are
//! in calibrated log-odds, so they add up in the same units as the score moves; they are
//! not additive across columns when the network combines them.

use crate::calibration::Calibration;
use crate::error::{PatronError, Result};
use crate::inference::Scorer;
use crate::preprocess::{Encoded, Preprocessor, Slot};

/// One reason: a feature's index in the run's features, and its effect in log-odds toward
/// the predicted class.
pub type Reason = (usize, f64);

/// What the reasons of a run are measured against.
pub struct Reasons {
    names: Vec<String>,
    slots: Vec<Slot>,
    /// The reference row's numeric inputs and category indices.
    numeric: Vec<f32>,
    categorical: Vec<i64>,
    count: usize,
}

impl Reasons {
    /// Up to `count` reasons per row (at most one per input column) for a tabular run.
    pub fn new(pre: &Preprocessor, count: usize) -> Result<Reasons> {
        if pre.text.is_some() {
            return Err(PatronError::Usage(
                "--reasons explains tabular runs; a text run's explanations.json lists the phrases that move its scores".into(),
            ));
        }
        let (numeric, categorical) = pre.reference_row();
        Ok(Reasons {
            names: pre.features.iter().map(|f| f.name().to_string()).collect(),
            slots: pre.slots(),
            numeric,
            categorical,
            count: count.min(pre.features.len()),
        })
    }

    /// Reasons given per row.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The column name of a feature index.
    pub fn name(&self, feature: usize) -> &str {
        &self.names[feature]
    }

    /// The strongest reasons of every row (`[rows * count]`, row-major, largest effect
    /// first, ties in column order), from the rows' `logits` (`[rows * outputs]`) and
    /// `predicted` classes; `None` fills a row's places past its last column with a
    /// positive effect (one that does not push toward the prediction is no reason for it).
    /// Scores the rows once more per input column.
    pub fn of(
        &self,
        scorer: &Scorer,
        encoded: &Encoded,
        logits: &[f64],
        outputs: usize,
        calibration: &Calibration,
        predicted: &[usize],
    ) -> Result<Vec<Option<Reason>>> {
        let rows = encoded.rows;
        let columns = self.slots.len();
        // The log-odds of row r's predicted class from the i-th row of logits `z`.
        let odds = |z: &[f64], i: usize, r: usize| {
            log_odds(
                calibration,
                &z[i * outputs..(i + 1) * outputs],
                predicted[r],
            )
        };
        // Rows already at the typical value have no effect to measure (most rows, for a
        // column dominated by one category): only the others are scored again.
        let mut effects = vec![0f64; rows * columns];
        for (c, &slot) in self.slots.iter().enumerate() {
            let differ: Vec<usize> = (0..rows)
                .filter(|&r| !self.at_reference(encoded, r, slot))
                .collect();
            if differ.is_empty() {
                continue;
            }
            let mut probe = encoded.subset(&differ);
            self.set_reference(&mut probe, slot);
            let z = scorer.logits(&probe)?;
            for (i, &r) in differ.iter().enumerate() {
                effects[r * columns + c] = odds(logits, r, r) - odds(&z, i, r);
            }
        }
        let mut out = Vec::with_capacity(rows * self.count);
        let mut order: Vec<usize> = Vec::with_capacity(columns);
        for row in effects.chunks_exact(columns) {
            order.clear();
            order.extend(0..columns);
            // Stable: equal effects keep column order.
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            out.extend(
                order[..self.count]
                    .iter()
                    .map(|&c| (row[c] > 0.0).then_some((c, row[c]))),
            );
        }
        Ok(out)
    }

    /// Whether row `r` already holds the reference row's inputs in `slot`.
    fn at_reference(&self, encoded: &Encoded, r: usize, slot: Slot) -> bool {
        match slot {
            Slot::Numeric { start, len } => {
                let at = r * encoded.numeric_width + start;
                encoded.numeric[at..at + len] == self.numeric[start..start + len]
            }
            Slot::Categorical { index } => {
                encoded.categorical[r * encoded.categorical_count + index]
                    == self.categorical[index]
            }
        }
    }

    /// Set one feature's inputs of every row to the reference row's.
    fn set_reference(&self, encoded: &mut Encoded, slot: Slot) {
        let (width, n_cat) = (encoded.numeric_width, encoded.categorical_count);
        for r in 0..encoded.rows {
            match slot {
                Slot::Numeric { start, len } => {
                    let at = r * width + start;
                    encoded.numeric[at..at + len]
                        .copy_from_slice(&self.numeric[start..start + len]);
                }
                Slot::Categorical { index } => {
                    encoded.categorical[r * n_cat + index] = self.categorical[index];
                }
            }
        }
    }
}

/// Calibrated log-odds of class `class` from one row's logits: `a z + b` (negated for the
/// negative class) with two classes; with more, the temperature-scaled logit of the class
/// against the log-sum-exp of the others.
fn log_odds(calibration: &Calibration, z: &[f64], class: usize) -> f64 {
    if let [z] = z {
        let l = calibration.a * z + calibration.b;
        return if class == 1 { l } else { -l };
    }
    let scaled = |j: usize| calibration.a * z[j];
    let rest = (0..z.len()).filter(|&j| j != class);
    let max = rest.clone().map(scaled).fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = rest.map(|j| (scaled(j) - max).exp()).sum();
    scaled(class) - (max + sum.ln())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibration::sigmoid;
    use crate::config::CalibrationMethod;
    use crate::metrics::softmax_rows;

    #[test]
    fn log_odds_match_the_calibrated_probabilities() {
        let platt = Calibration {
            method: CalibrationMethod::Platt,
            a: 0.8,
            b: -0.3,
        };
        for z in [-4.0, 0.0, 2.5] {
            let p = platt.apply(z);
            assert!((sigmoid(log_odds(&platt, &[z], 1)) - p).abs() < 1e-12);
            assert!((sigmoid(log_odds(&platt, &[z], 0)) - (1.0 - p)).abs() < 1e-12);
        }
        let temperature = Calibration {
            method: CalibrationMethod::Temperature,
            a: 0.5,
            b: 0.0,
        };
        let z = [1.0, -2.0, 3.0];
        let p = softmax_rows(&[0.5, -1.0, 1.5], 3);
        for (k, &pk) in p.iter().enumerate() {
            let expected = (pk / (1.0 - pk)).ln();
            assert!((log_odds(&temperature, &z, k) - expected).abs() < 1e-12);
        }
    }
}
