//! A run's per-epoch history: the rows of `metrics.csv`, written by training and read
//! back by `patron report`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::StopMetric;
use crate::error::{PatronError, Result};

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
    /// Mean weighted training loss.
    pub train_loss: f64,
    /// Unweighted validation log loss (raw probabilities).
    pub valid_loss: f64,
    /// Validation ROC AUC.
    pub valid_auc_roc: f64,
    /// Validation average precision.
    pub valid_auc_pr: f64,
    /// Seconds the epoch took.
    pub seconds: f64,
    /// Validation accuracy.
    #[serde(default)]
    pub valid_accuracy: f64,
    /// Validation macro-F1.
    #[serde(default)]
    pub valid_macro_f1: f64,
}

impl EpochRow {
    /// The validation value of `m` at this epoch.
    pub fn metric(&self, m: StopMetric) -> f64 {
        match m {
            StopMetric::AucRoc => self.valid_auc_roc,
            StopMetric::AucPr => self.valid_auc_pr,
            StopMetric::LogLoss => self.valid_loss,
            StopMetric::MacroF1 => self.valid_macro_f1,
            StopMetric::Accuracy => self.valid_accuracy,
        }
    }
}

/// `metrics.csv` of a history.
pub fn metrics_csv(history: &[EpochRow]) -> String {
    // New columns go at the end so scripts reading the first six keep working.
    let mut out = String::from(
        "epoch,lr,train_loss,valid_loss,valid_auc_roc,seconds,valid_accuracy,valid_macro_f1\n",
    );
    for r in history {
        out.push_str(&format!(
            "{},{:e},{:.6},{:.6},{:.6},{:.3},{:.6},{:.6}\n",
            r.epoch,
            r.lr,
            r.train_loss,
            r.valid_loss,
            r.valid_auc_roc,
            r.seconds,
            r.valid_accuracy,
            r.valid_macro_f1
        ));
    }
    out
}

/// Read `metrics.csv` back.
pub fn parse_metrics(bytes: Vec<u8>, path: &Path) -> Result<Vec<EpochRow>> {
    let bad = |line: usize| PatronError::checkpoint(path, format!("line {line} is damaged"));
    let text =
        String::from_utf8(bytes).map_err(|_| PatronError::checkpoint(path, "is not UTF-8"))?;
    text.lines()
        .enumerate()
        .skip(1)
        .map(|(i, line)| {
            let v: Vec<f64> = line
                .split(',')
                .map(|x| x.parse::<f64>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| bad(i + 1))?;
            // Runs written before the accuracy / macro-F1 columns have six.
            if v.len() != 6 && v.len() != 8 {
                return Err(bad(i + 1));
            }
            Ok(EpochRow {
                epoch: v[0] as usize,
                lr: v[1],
                train_loss: v[2],
                valid_loss: v[3],
                valid_auc_roc: v[4],
                // Not in metrics.csv; the report does not chart it.
                valid_auc_pr: f64::NAN,
                seconds: v[5],
                valid_accuracy: v.get(6).copied().unwrap_or(f64::NAN),
                valid_macro_f1: v.get(7).copied().unwrap_or(f64::NAN),
            })
        })
        .collect()
}
