//! Permutation feature importance: how much the task's ranking figure on validation (ROC
//! AUC; the one-vs-rest mean for more than two classes) drops when one input
//! column's values are shuffled across rows (all of its model inputs together: the scaled
//! value, missing indicator and bins of a number; the category index of a category).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::preprocess::{Encoded, Preprocessor, Slot};
use crate::error::Result;
use crate::score::Scorer;
use crate::task::Task;

/// Shuffles per feature; the spread over them says how stable the estimate is.
pub const REPEATS: usize = 5;

/// Importance of one input column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureImportance {
    /// Column name.
    pub feature: String,
    /// Mean drop in validation ROC AUC when the column is shuffled.
    pub auc_drop: f64,
    /// Standard deviation of that drop over the repeats.
    pub std: f64,
}

/// Importance of every feature, most important first.
pub fn permutation_importance(
    scorer: &Scorer,
    task: &dyn Task,
    pre: &Preprocessor,
    valid: &Encoded,
    labels: &[f32],
    seed: u64,
) -> Result<Vec<FeatureImportance>> {
    let score = |z: &[f64]| task.ranking(z, labels);
    let base = score(&scorer.logits(valid)?);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (width, n_cat) = (valid.numeric_width, valid.categorical_count);
    let mut out = Vec::new();
    for (feature, slot) in pre.features.iter().zip(pre.slots()) {
        let mut drops = Vec::with_capacity(REPEATS);
        for _ in 0..REPEATS {
            let mut order: Vec<usize> = (0..valid.rows).collect();
            order.shuffle(&mut rng);
            let mut shuffled = valid.clone();
            for (row, &from) in order.iter().enumerate() {
                match slot {
                    Slot::Numeric { start, len } => {
                        let (dst, src) = (row * width + start, from * width + start);
                        shuffled.numeric[dst..dst + len]
                            .copy_from_slice(&valid.numeric[src..src + len]);
                    }
                    Slot::Categorical { index } => {
                        shuffled.categorical[row * n_cat + index] =
                            valid.categorical[from * n_cat + index];
                    }
                }
            }
            let z = scorer.logits(&shuffled)?;
            drops.push(base - score(&z));
        }
        let mean = drops.iter().sum::<f64>() / REPEATS as f64;
        let var = drops.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / REPEATS as f64;
        out.push(FeatureImportance {
            feature: feature.name().to_string(),
            auc_drop: mean,
            std: var.sqrt(),
        });
    }
    out.sort_by(|a, b| b.auc_drop.total_cmp(&a.auc_drop));
    Ok(out)
}
