//! Seeded, optionally stratified train / validation / test splits.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use std::path::Path;

use crate::config::SplitConfig;
use crate::data::preprocess::missing_column;
use crate::data::{ReadOptions, Table};
use crate::error::{PatronError, Result};

/// Row indices of each split, each sorted ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Rows the model and the preprocessing are fitted on.
    pub train: Vec<usize>,
    /// Rows for early stopping, calibration and the decision threshold.
    pub valid: Vec<usize>,
    /// Held-out rows for the final report.
    pub test: Vec<usize>,
    /// k-fold cross-validation (`split.folds`): the rows of `train`, cut into folds (each
    /// sorted); `valid` is then empty. Empty without cross-validation.
    pub folds: Vec<Vec<usize>>,
}

impl Split {
    /// Fold `k`'s view (from 0): the other folds train, fold `k` validates; the test rows
    /// stay.
    pub fn fold(&self, k: usize) -> Split {
        let held = &self.folds[k];
        Split {
            train: self
                .train
                .iter()
                .copied()
                .filter(|r| held.binary_search(r).is_err())
                .collect(),
            valid: held.clone(),
            test: self.test.clone(),
            folds: Vec::new(),
        }
    }

    /// The fold (from 0) of every row of `train`, in `train`'s order.
    pub fn fold_of_train_rows(&self) -> Vec<usize> {
        self.train
            .iter()
            .map(|r| {
                self.folds
                    .iter()
                    .position(|f| f.binary_search(r).is_ok())
                    .unwrap_or(0)
            })
            .collect()
    }
}

/// The split for k-fold cross-validation: the training and validation rows of `split`
/// together, dealt into `k` folds stratum by stratum after a shuffle seeded by `seed`, so
/// each fold keeps the class balance (or the spread of a numeric target's quantile bins).
pub fn with_folds(split: Split, strata: &[usize], k: usize, seed: u64) -> Split {
    let mut pool: Vec<usize> = split.train.iter().chain(&split.valid).copied().collect();
    pool.sort_unstable();
    let count = pool.iter().map(|&r| strata[r] + 1).max().unwrap_or(1);
    let mut groups = vec![Vec::new(); count];
    for &r in &pool {
        groups[strata[r]].push(r);
    }
    // A seed of its own, so the folds do not repeat the split's shuffle.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_F01D);
    let mut folds = vec![Vec::new(); k];
    let mut next = 0;
    for mut rows in groups {
        rows.shuffle(&mut rng);
        // Dealt on from where the last stratum stopped, so fold sizes differ by one at most.
        for r in rows {
            folds[next % k].push(r);
            next += 1;
        }
    }
    for fold in &mut folds {
        fold.sort_unstable();
    }
    Split {
        train: pool,
        valid: Vec::new(),
        test: split.test,
        folds,
    }
}

/// Split rows by their strata (a class index, or a quantile bin of a numeric target).
/// With `stratify`, each stratum is split separately so all three parts keep the balance.
pub fn split_rows(strata: &[usize], config: &SplitConfig) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let groups: Vec<Vec<usize>> = if config.stratify {
        let count = strata.iter().map(|&s| s + 1).max().unwrap_or(1);
        let mut groups = vec![Vec::new(); count.max(2)];
        for (i, &s) in strata.iter().enumerate() {
            groups[s].push(i);
        }
        groups
    } else {
        vec![(0..strata.len()).collect()]
    };
    let mut split = Split {
        train: Vec::new(),
        valid: Vec::new(),
        test: Vec::new(),
        folds: Vec::new(),
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

/// The split a column gives: each row's cell is `train`, `valid` or `test` (any case,
/// spaces around ignored); any other value, or a blank, is an error naming the row (rows
/// numbered from 1, as in the file).
pub fn split_from_column(
    table: &Table,
    column: &str,
    read: &ReadOptions,
    path: &Path,
) -> Result<Split> {
    let cells = table
        .cells(column)
        .ok_or_else(|| missing_column(path, "split.column", column, &table.column_names()))?;
    let mut split = Split {
        train: Vec::new(),
        valid: Vec::new(),
        test: Vec::new(),
        folds: Vec::new(),
    };
    for (r, cell) in cells.iter().enumerate() {
        let value = read.clean(*cell).unwrap_or("");
        let rows = match value.to_ascii_lowercase().as_str() {
            "train" => &mut split.train,
            "valid" => &mut split.valid,
            "test" => &mut split.test,
            _ => {
                return Err(PatronError::data(
                    path,
                    format!(
                        "split column {column:?} holds {value:?} at row {}; each row must be train, valid or test",
                        r + 1
                    ),
                ));
            }
        };
        rows.push(r);
    }
    Ok(split)
}

/// `row,split` lines of a split (rows from 0, in file order), for `split.export`; with
/// folds, a third column `fold` gives each training row's fold (from 1; empty for test).
/// `file_rows` maps the split's rows to the file's where some were left out (they are
/// then absent).
pub fn split_csv(split: &Split, file_rows: Option<&[usize]>) -> String {
    let rows = split.train.len() + split.valid.len() + split.test.len();
    let mut names = vec![""; rows];
    for (part, name) in [
        (&split.train, "train"),
        (&split.valid, "valid"),
        (&split.test, "test"),
    ] {
        for &r in part {
            names[r] = name;
        }
    }
    let mut folds = vec![String::new(); rows];
    for (k, fold) in split.folds.iter().enumerate() {
        for &r in fold {
            folds[r] = (k + 1).to_string();
        }
    }
    let cv = !split.folds.is_empty();
    let mut out = String::from(if cv {
        "row,split,fold\n"
    } else {
        "row,split\n"
    });
    for (r, name) in names.iter().enumerate() {
        let row = file_rows.map_or(r, |f| f[r]);
        if cv {
            out.push_str(&format!("{row},{name},{}\n", folds[r]));
        } else {
            out.push_str(&format!("{row},{name}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_split_is_a_seeded_partition_keeping_the_balance() {
        let labels: Vec<usize> = (0..1000).map(|i| usize::from(i % 10 == 0)).collect();
        let cfg = SplitConfig::default();
        let s = split_rows(&labels, &cfg);
        assert_eq!(s.test.len(), 200);
        assert_eq!(s.valid.len(), 100);
        assert_eq!(s.train.len(), 700);
        let pos = |rows: &[usize]| rows.iter().filter(|&&r| labels[r] == 1).count();
        assert_eq!(pos(&s.test), 20);
        assert_eq!(pos(&s.valid), 10);
        let mut all: Vec<usize> = [s.train.clone(), s.valid.clone(), s.test.clone()].concat();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert_eq!(s, split_rows(&labels, &cfg));
        let other = split_rows(&labels, &SplitConfig { seed: 7, ..cfg });
        assert_ne!(s.test, other.test);
    }

    #[test]
    fn a_split_column_gives_the_rows_and_refuses_other_values() {
        let (_d, p, t) =
            crate::data::test_table("x,fold\n1,train\n2, Test\n3,valid\n4,TRAIN\n5,test\n");
        let read = ReadOptions::new(b',', &[]);
        let s = split_from_column(&t, "fold", &read, &p).unwrap();
        assert_eq!(
            (s.train, s.valid, s.test),
            (vec![0, 3], vec![2], vec![1, 4])
        );
        let s = split_from_column(&t, "fold", &read, &p).unwrap();
        assert_eq!(
            split_csv(&s, None),
            "row,split\n0,train\n1,test\n2,valid\n3,train\n4,test\n"
        );
        // Rows left out of the table (a blank target) are absent, the others keep theirs.
        assert_eq!(
            split_csv(&s, Some(&[0, 2, 3, 6, 7])),
            "row,split\n0,train\n2,test\n3,valid\n6,train\n7,test\n"
        );

        let (_d, p, t) = crate::data::test_table("x,fold\n1,train\n2,dev\n");
        let err = split_from_column(&t, "fold", &read, &p).unwrap_err();
        assert!(err.to_string().contains("\"dev\" at row 2"), "{err}");
        let (_d, p, t) = crate::data::test_table("x,fold\n1,train\n2,\n");
        let err = split_from_column(&t, "fold", &read, &p).unwrap_err();
        assert!(err.to_string().contains("\"\" at row 2"), "{err}");
        let err = split_from_column(&t, "folds", &read, &p).unwrap_err();
        assert!(err.to_string().contains("split.column"), "{err}");
    }

    #[test]
    fn folds_partition_the_non_test_rows_keeping_the_balance() {
        let labels: Vec<usize> = (0..1000).map(|i| usize::from(i % 10 == 0)).collect();
        let s = with_folds(split_rows(&labels, &SplitConfig::default()), &labels, 5, 1);
        assert_eq!(s.test.len(), 200);
        assert!(s.valid.is_empty());
        assert_eq!(s.train.len(), 800);
        let mut all = s.folds.concat();
        all.sort_unstable();
        assert_eq!(all, s.train, "every training row in exactly one fold");
        for fold in &s.folds {
            assert_eq!(fold.len(), 160);
            assert_eq!(fold.iter().filter(|&&r| labels[r] == 1).count(), 16);
        }
        let view = s.fold(2);
        assert_eq!(view.valid, s.folds[2]);
        assert_eq!(view.train.len(), 640);
        assert!(
            view.train
                .iter()
                .all(|r| s.folds[2].binary_search(r).is_err())
        );
        let of = s.fold_of_train_rows();
        assert!(
            s.train
                .iter()
                .zip(&of)
                .all(|(r, &k)| s.folds[k].contains(r))
        );
        assert!(split_csv(&s, None).starts_with("row,split,fold\n"));
        let other = with_folds(split_rows(&labels, &SplitConfig::default()), &labels, 5, 2);
        assert_ne!(s.folds, other.folds, "the seed draws the folds");
    }
}
