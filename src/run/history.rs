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
