//! Seeded, optionally stratified train / validation / test splits.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::config::SplitConfig;

/// Row indices of each split, each sorted ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Rows the model and the preprocessing are fitted on.
    pub train: Vec<usize>,
    /// Rows for early stopping, calibration and the decision threshold.
    pub valid: Vec<usize>,
    /// Held-out rows for the final report.
    pub test: Vec<usize>,
}

/// Split rows by their class indices. With `stratify`, each class is split separately so all
/// three parts keep the class balance.
pub fn split_rows(labels: &[f32], config: &SplitConfig) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let groups: Vec<Vec<usize>> = if config.stratify {
        // Labels are class indices (0/1 for a binary task).
        let classes = labels.iter().map(|&y| y as usize + 1).max().unwrap_or(1);
        let mut groups = vec![Vec::new(); classes.max(2)];
        for (i, &y) in labels.iter().enumerate() {
            groups[y as usize].push(i);
        }
        groups
    } else {
        vec![(0..labels.len()).collect()]
    };
    let mut split = Split {
        train: Vec::new(),
        valid: Vec::new(),
        test: Vec::new(),
    };
    for mut rows in groups {
        rows.shuffle(&mut rng);
        let n = rows.len();
        let n_test = (n as f64 * config.test).round() as usize;
        let n_valid = (n as f64 * config.valid).round() as usize;
        let n_valid = n_valid.min(n - n_test.min(n));
        split.test.extend(&rows[..n_test.min(n)]);
        split
            .valid
            .extend(&rows[n_test.min(n)..(n_test + n_valid).min(n)]);
        split.train.extend(&rows[(n_test + n_valid).min(n)..]);
    }
    split.train.sort_unstable();
    split.valid.sort_unstable();
    split.test.sort_unstable();
    split
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_split_is_a_seeded_partition_keeping_the_balance() {
        let labels: Vec<f32> = (0..1000)
            .map(|i| if i % 10 == 0 { 1.0 } else { 0.0 })
            .collect();
        let cfg = SplitConfig::default();
        let s = split_rows(&labels, &cfg);
        assert_eq!(s.test.len(), 200);
        assert_eq!(s.valid.len(), 100);
        assert_eq!(s.train.len(), 700);
        let pos = |rows: &[usize]| rows.iter().filter(|&&r| labels[r] > 0.5).count();
        assert_eq!(pos(&s.test), 20);
        assert_eq!(pos(&s.valid), 10);
        let mut all: Vec<usize> = [s.train.clone(), s.valid.clone(), s.test.clone()].concat();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert_eq!(s, split_rows(&labels, &cfg));
        let other = split_rows(&labels, &SplitConfig { seed: 7, ..cfg });
        assert_ne!(s.test, other.test);
    }
}
