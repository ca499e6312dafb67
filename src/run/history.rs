//! A run's per-epoch history: the rows of `metrics.csv`, written by training and read
//! back by `patron report`.

use std::collections::BTreeMap;
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
    /// Seconds the epoch took.
    pub seconds: f64,
    /// Validation metrics by their `metrics.csv` column name (`valid_loss`,
    /// `valid_auc_roc`, ...), as the run's task computed them.
    #[serde(flatten)]
    pub valid: BTreeMap<String, f64>,
}

impl EpochRow {
    /// The validation value of `m` at this epoch (NaN when the task does not compute it).
    pub fn metric(&self, m: StopMetric) -> f64 {
        self.get(m.column())
    }

    /// The validation metric in column `name` (NaN when absent).
    pub fn get(&self, name: &str) -> f64 {
        self.valid.get(name).copied().unwrap_or(f64::NAN)
    }
}

/// Columns every history has before and among the task's validation metrics.
const EPOCH: &str = "epoch";
const LR: &str = "lr";
const TRAIN_LOSS: &str = "train_loss";
const SECONDS: &str = "seconds";

/// `metrics.csv` of a history, in the column order the task gives (`columns` names every
/// column, `epoch,lr,train_loss,...,seconds,...`).
pub fn metrics_csv(history: &[EpochRow], columns: &[&str]) -> String {
    let mut out = format!("{}\n", columns.join(","));
    for r in history {
        let cells: Vec<String> = columns
            .iter()
            .map(|&c| match c {
                EPOCH => r.epoch.to_string(),
                LR => format!("{:e}", r.lr),
                TRAIN_LOSS => format!("{:.6}", r.train_loss),
                SECONDS => format!("{:.3}", r.seconds),
                name => format!("{:.6}", r.get(name)),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// Read `metrics.csv` back, by its header's column names.
pub fn parse_metrics(bytes: Vec<u8>, path: &Path) -> Result<Vec<EpochRow>> {
    let bad = |line: usize| PatronError::checkpoint(path, format!("line {line} is damaged"));
    let text =
        String::from_utf8(bytes).map_err(|_| PatronError::checkpoint(path, "is not UTF-8"))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or_else(|| bad(1))?.split(',').collect();
    for required in [EPOCH, LR, TRAIN_LOSS, SECONDS] {
        if !header.contains(&required) {
            return Err(bad(1));
        }
    }
    lines
        .enumerate()
        .map(|(i, line)| {
            let v: Vec<f64> = line
                .split(',')
                .map(|x| x.parse::<f64>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| bad(i + 2))?;
            if v.len() != header.len() {
                return Err(bad(i + 2));
            }
            let mut row = EpochRow {
                epoch: 0,
                lr: 0.0,
                train_loss: 0.0,
                seconds: 0.0,
                valid: BTreeMap::new(),
            };
            for (&name, value) in header.iter().zip(v) {
                match name {
                    EPOCH => row.epoch = value as usize,
                    LR => row.lr = value,
                    TRAIN_LOSS => row.train_loss = value,
                    SECONDS => row.seconds = value,
                    name => {
                        row.valid.insert(name.to_string(), value);
                    }
                }
            }
            Ok(row)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::CLASSIFICATION_HISTORY as COLUMNS;

    #[test]
    fn metrics_csv_keeps_its_layout_and_reads_back_by_name() {
        let valid = [
            ("valid_loss", 0.25),
            ("valid_auc_roc", 0.875),
            ("valid_auc_pr", 0.5),
            ("valid_accuracy", 0.75),
            ("valid_macro_f1", 0.625),
        ];
        let row = EpochRow {
            epoch: 3,
            lr: 0.001,
            train_loss: 0.5,
            seconds: 1.25,
            valid: valid.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        };
        let csv = metrics_csv(std::slice::from_ref(&row), COLUMNS);
        assert_eq!(
            csv,
            "epoch,lr,train_loss,valid_loss,valid_auc_roc,seconds,valid_accuracy,valid_macro_f1\n\
             3,1e-3,0.500000,0.250000,0.875000,1.250,0.750000,0.625000\n"
        );
        let back = parse_metrics(csv.into_bytes(), Path::new("metrics.csv")).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!((back[0].epoch, back[0].seconds), (3, 1.25));
        assert_eq!(back[0].metric(StopMetric::AucRoc), 0.875);
        // Not a metrics.csv column: not read back.
        assert!(back[0].metric(StopMetric::AucPr).is_nan());
        // A run from before the accuracy and macro-F1 columns.
        let old = "epoch,lr,train_loss,valid_loss,valid_auc_roc,seconds\n1,1e-3,0.5,0.4,0.8,1.0\n";
        let old = parse_metrics(old.as_bytes().to_vec(), Path::new("m")).unwrap();
        assert_eq!(old[0].metric(StopMetric::LogLoss), 0.4);
        assert!(old[0].metric(StopMetric::MacroF1).is_nan());
        let short = "epoch,lr,train_loss,valid_loss,valid_auc_roc,seconds\n1,1e-3,0.5\n";
        assert!(parse_metrics(short.as_bytes().to_vec(), Path::new("m")).is_err());
    }
}
