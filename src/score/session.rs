//! A scoring session: a loaded, verified run ready to score tables. `predict`, `evaluate`,
//! `drift`, reasons, importance, explanations and training's final scores all go through
//! one, so they cannot drift apart. It owns everything it needs (no borrowed lifetimes),
//! so a long-lived process can keep one.

use std::path::Path;

use burn::tensor::Device;

use crate::data::Table;
use crate::data::preprocess::Encoded;
use crate::error::Result;
use crate::run::{LoadedRun, load_run};
use crate::score::Scorer;
use crate::score::explain::{ScoredTexts, TextExplanations, explain};
use crate::task::calibration::Calibration;
use crate::task::{Decision, Report, Scores};

/// A run and its network, ready to score.
pub struct Session {
    run: LoadedRun,
    scorer: Scorer<'static>,
}

/// Rows a session scored.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Logits, `[rows * outputs]`.
    pub logits: Vec<f64>,
    /// Calibrated probabilities (see [`crate::task::Task::probabilities`]).
    pub probs: Vec<f64>,
    /// The decided class of each row.
    pub predicted: Vec<usize>,
}

/// Labelled rows judged by a session: what `patron evaluate` and the end of training
/// report.
pub struct Evaluation {
    /// The evaluated rows, in words (`test`, `valid`, a file, `standard input`).
    pub evaluated: String,
    /// Calibrated probabilities.
    pub probs: Vec<f64>,
    /// Probabilities before calibration.
    pub raw: Vec<f64>,
    /// Class index of every row.
    pub labels: Vec<f32>,
    /// Values of the run's `report.segments` columns, per row.
    pub segments: Vec<(String, Vec<String>)>,
    /// Text runs: what the model reads in these texts.
    pub explanations: Option<TextExplanations>,
    /// The task's report of these rows.
    pub report: Report,
}

impl Session {
    /// A session of `run` on `device` (no autodiff).
    pub fn new(run: LoadedRun, device: &Device) -> Result<Session> {
        let scorer = Scorer::ensemble(&run.models, &run.manifest.model, run.task.pool(), device)?
            .fold_categories(&run.preprocess.category_offsets())
            .fold_sparse(&run.preprocess.sparse_inputs());
        Ok(Session { run, scorer })
    }

    /// Load and verify the run in `dir`, and open a session of it on `device`.
    pub fn open(dir: &Path, device: &Device) -> Result<Session> {
        Session::new(load_run(dir, device)?, device)
    }

    /// The same network with the calibration and decision rule fitted on validation
    /// (training fits them after scoring validation with the session).
    pub fn calibrated(mut self, calibration: Calibration, decision: Decision) -> Session {
        self.run.calibration = calibration;
        // The run's manifest records the rule too, as a loaded run's does.
        self.run.manifest.set_decision(&decision);
        self.run.decision = decision;
        self
    }

    /// The run scored.
    pub fn run(&self) -> &LoadedRun {
        &self.run
    }

    /// The network on its device: logits of encoded rows.
    pub fn scorer(&self) -> &Scorer<'static> {
        &self.scorer
    }

    /// The model inputs of a table's rows; `offset` is its first row's index in
    /// `source`, for messages.
    pub fn encode(&self, table: &Table, offset: usize, source: &Path) -> Result<Encoded> {
        self.run.preprocess.transform(table, offset, source)
    }

    /// Score encoded rows: logits, calibrated probabilities, decided classes.
    pub fn score_encoded(&self, encoded: &Encoded) -> Result<Scored> {
        let logits = self.scorer.logits(encoded)?;
        Ok(self.scored(logits))
    }

    /// Score a table's rows (see [`Session::encode`]).
    pub fn score(&self, table: &Table, offset: usize, source: &Path) -> Result<Scored> {
        self.score_encoded(&self.encode(table, offset, source)?)
    }

    /// Probabilities and decisions of logits the session's network gave.
    pub fn scored(&self, logits: Vec<f64>) -> Scored {
        let task = self.run.task.as_ref();
        let probs = task.probabilities(&self.run.calibration, &logits);
        let predicted = task.decide(&probs, &self.run.decision);
        Scored {
            logits,
            probs,
            predicted,
        }
    }

    /// Judge labelled rows from their logits: probabilities, the task's report with the
    /// `segments` columns' figures, and for a text run what the model reads in `texts`.
    pub fn evaluation(
        &self,
        logits: &[f64],
        labels: Vec<f32>,
        evaluated: String,
        segments: Vec<(String, Vec<String>)>,
        texts: &[String],
    ) -> Result<Evaluation> {
        let run = &self.run;
        let task = run.task.as_ref();
        let probs = task.probabilities(&run.calibration, logits);
        let raw = task.uncalibrated(logits);
        let scores = Scores {
            probs: &probs,
            raw: &raw,
            labels: &labels,
        };
        let report = task.report(&scores, &run.decision, &evaluated, &segments);
        let explanations = match &run.preprocess.text {
            Some(text) if task.explains_texts() => Some(explain(
                &self.scorer,
                text,
                run.manifest.model.outputs,
                &ScoredTexts {
                    texts,
                    labels: &labels,
                    probs: &probs,
                    classes: &run.preprocess.labels,
                    task,
                    decision: &run.decision,
                },
            )?),
            _ => None,
        };
        Ok(Evaluation {
            evaluated,
            probs,
            raw,
            labels,
            segments,
            explanations,
            report,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_can_live_in_a_long_running_process() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Session>();
    }
}
