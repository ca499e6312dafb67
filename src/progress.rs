//! Training progress: indicatif bars (epoch and batch, with loss and ETA) on a terminal,
//! plain lines otherwise or with `--quiet`. Everything goes to stderr so stdout stays
//! machine-readable.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where progress is shown.
pub struct Progress {
    bars: Option<Bars>,
}

struct Bars {
    multi: MultiProgress,
    epochs: ProgressBar,
    batches: ProgressBar,
}

impl Progress {
    /// Bars when stderr is a terminal and not `quiet`; plain lines otherwise.
    pub fn new(quiet: bool) -> Self {
        let bars = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let epochs = multi.add(ProgressBar::new(0));
            epochs.set_style(
                ProgressStyle::with_template("epoch {pos}/{len} [{bar:30}] {msg} ETA {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            let batches = multi.add(ProgressBar::new(0));
            batches.set_style(
                ProgressStyle::with_template("  batch {pos}/{len} [{bar:30}] loss {msg} {per_sec}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            Bars {
                multi,
                epochs,
                batches,
            }
        });
        Progress { bars }
    }

    /// Show a line of information (above the bars when they are drawn).
    pub fn line(&self, text: &str) {
        match &self.bars {
            Some(b) => {
                let _ = b.multi.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    /// Training covers epochs `done + 1 ..= total`.
    pub fn start(&self, done: usize, total: usize) {
        if let Some(b) = &self.bars {
            b.epochs.set_length(total as u64);
            b.epochs.set_position(done as u64);
            b.epochs.reset_eta();
        }
    }

    /// A new epoch with `batches` steps begins.
    pub fn epoch_start(&self, batches: usize) {
        if let Some(b) = &self.bars {
            b.batches.set_length(batches as u64);
            b.batches.set_position(0);
        }
    }

    /// `done` batches of this epoch are finished; `loss` is the running mean when known.
    pub fn batch(&self, done: usize, loss: Option<f64>) {
        if let Some(b) = &self.bars {
            b.batches.set_position(done as u64);
            if let Some(l) = loss {
                b.batches.set_message(format!("{l:.4}"));
            }
        }
    }

    /// An epoch finished; `summary` is its one-line result.
    pub fn epoch_end(&self, summary: &str) {
        match &self.bars {
            Some(b) => {
                let _ = b.multi.println(summary);
                b.epochs.inc(1);
            }
            None => eprintln!("{summary}"),
        }
    }

    /// Remove the bars.
    pub fn finish(&self) {
        if let Some(b) = &self.bars {
            b.batches.finish_and_clear();
            b.epochs.finish_and_clear();
        }
    }
}
