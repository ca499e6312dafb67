//! Crossed columns: a category paired with another column's coarse bin, read as one
//! category. An interaction of two columns that a tree finds in one split (the month and
//! the day of month of a bank's calling campaign) takes the network more rows than a small
//! table has. A pair is crossed when its cells explain the training target better than an
//! additive model of every column does, out of fold: the FAST test of Lou et al. (KDD 2013,
//! "Accurate intelligible models with pairwise interactions"), for a target of classes.

/// Coarse bins of a number in a cross: few enough that a cell of a category keeps rows.
pub const CROSS_BINS: usize = 4;
/// Bins of a number in the additive model the pairs are judged against.
pub const ADDITIVE_BINS: usize = 16;
/// Standard errors by which a pair's cells must save log loss over the additive model for
/// the pair to be crossed: a test of the saving against chance, so a small table's noise
/// does not pass where a large table's small saving does. Measured on the training rows of
/// eleven two-class tables, split seeds 1..5 (README "Results", "Crossed columns"): the
/// bank's month and day 3.2-4.0, the churn table's international plan and calls 5.8-6.3,
/// no pair of the other nine above 2.7.
pub const CROSS_T: f64 = 3.0;
/// A cell's offset is shrunk toward the additive model as if it held this much more
/// weight (p(1-p) of a row), so a cell of a few rows moves little.
const CROSS_SMOOTHING: f64 = 10.0;
/// A column of more levels than this is not crossed (too few rows per cell).
pub const MAX_CROSS_LEVELS: usize = 64;
/// Folds of the additive model whose held-out logits the cells are judged against.
const FOLDS: usize = 5;
/// Passes of block Newton steps over the columns: each row has one level per column, so
/// a column's levels update independently given the others.
const SWEEPS: usize = 15;
/// L2 penalty of the additive model's weights (scikit-learn's C = 1).
const L2: f64 = 1.0;

/// A column's level in each training row (0: missing), and the number of levels.
#[derive(Debug, Clone)]
pub struct Levels {
    /// One level per training row, below `count`.
    pub of_row: Vec<u32>,
    /// Levels the column can take.
    pub count: usize,
}

impl Levels {
    /// Levels from one value per row: equal values share a level (0 for `None`).
    pub fn of_keys(keys: &[Option<u32>]) -> Levels {
        let count = keys.iter().flatten().max().map_or(1, |&k| k as usize + 2);
        Levels {
            of_row: keys.iter().map(|k| k.map_or(0, |k| k + 1)).collect(),
            count,
        }
    }
}

/// The edges that cut a number into `bins` bins, from its sorted training values: each
/// value its own bin when it has at most `bins` of them, else at its quantiles. A value's
/// bin is the number of these edges at or below it ([`bin_of`]).
pub fn cut_edges(sorted: &[f64], bins: usize) -> Vec<f64> {
    let mut distinct = sorted.to_vec();
    distinct.dedup();
    if distinct.len() <= bins {
        return distinct.into_iter().skip(1).collect();
    }
    let edges = super::binning::quantile_edges(sorted, bins);
    edges[1..edges.len() - 1].to_vec()
}

/// The bin of `x` among `edges` ([`cut_edges`]).
pub fn bin_of(edges: &[f64], x: f64) -> u32 {
    edges.partition_point(|&e| e <= x) as u32
}

/// The classes of the training rows, and how many logits a row has: one for two classes
/// (the positive class's log-odds), one per class for more.
#[derive(Debug, Clone)]
pub struct Classes {
    /// Each row's class index.
    pub of_row: Vec<usize>,
    /// Number of classes (at least 2).
    pub count: usize,
}

impl Classes {
    fn logits(&self) -> usize {
        if self.count == 2 { 1 } else { self.count }
    }

    /// A row's probabilities (of the positive class, or of each class) from its logits `z`.
    fn probabilities(&self, z: &[f64], out: &mut [f64]) {
        if let [z] = z {
            out[0] = 1.0 / (1.0 + (-z).exp());
            return;
        }
        let top = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut total = 0.0;
        for (o, &v) in out.iter_mut().zip(z) {
            *o = (v - top).exp();
            total += *o;
        }
        out.iter_mut().for_each(|o| *o /= total);
    }

    /// Whether row `i` is of the class logit `j` stands for (1) or not (0).
    fn is(&self, i: usize, j: usize) -> f64 {
        let class = if self.count == 2 { 1 } else { j };
        f64::from(u8::from(self.of_row[i] == class))
    }

    /// Row `i`'s log loss at logits `z`.
    fn loss(&self, i: usize, z: &[f64], scratch: &mut [f64]) -> f64 {
        self.probabilities(z, scratch);
        let p = if self.count == 2 {
            if self.of_row[i] == 1 {
                scratch[0]
            } else {
                1.0 - scratch[0]
            }
        } else {
            scratch[self.of_row[i]]
        };
        -p.clamp(1e-6, 1.0).ln()
    }

    /// The log-odds (or log shares) of the classes among `rows`.
    fn base(&self, rows: &[usize]) -> Vec<f64> {
        let m = self.logits();
        let share = |class: usize| {
            let hits = rows.iter().filter(|&&i| self.of_row[i] == class).count();
            (hits as f64 / rows.len().max(1) as f64).clamp(1e-4, 1.0 - 1e-4)
        };
        if m == 1 {
            let p = share(1);
            vec![(p / (1.0 - p)).ln()]
        } else {
            (0..m).map(|c| share(c).ln()).collect()
        }
    }
}

/// Held-out logits (`classes.logits()` per row) of an L2-penalized additive logistic (or
/// softmax) model of `columns`, one weight per level and logit: each row's from the model
/// fitted on the other folds (row i is in fold i mod 5).
pub fn additive_out_of_fold(columns: &[Levels], classes: &Classes) -> Vec<f64> {
    let (n, m) = (classes.of_row.len(), classes.logits());
    let mut held_out = vec![0.0; n * m];
    let mut p = vec![0.0; m];
    for fold in 0..FOLDS {
        let fit: Vec<usize> = (0..n).filter(|i| i % FOLDS != fold).collect();
        let base = classes.base(&fit);
        let mut weights: Vec<Vec<f64>> = columns.iter().map(|c| vec![0.0; c.count * m]).collect();
        let mut z: Vec<f64> = (0..n).flat_map(|_| base.iter().copied()).collect();
        for _ in 0..SWEEPS {
            for (c, w) in columns.iter().zip(&mut weights) {
                let mut grad = vec![0.0; c.count * m];
                let mut hess = vec![0.0; c.count * m];
                for &i in &fit {
                    classes.probabilities(&z[i * m..(i + 1) * m], &mut p);
                    let at = c.of_row[i] as usize * m;
                    for j in 0..m {
                        grad[at + j] += classes.is(i, j) - p[j];
                        hess[at + j] += p[j] * (1.0 - p[j]);
                    }
                }
                let step: Vec<f64> = (0..c.count * m)
                    .map(|l| (grad[l] - L2 * w[l]) / (hess[l] + L2))
                    .collect();
                for (wl, s) in w.iter_mut().zip(&step) {
                    *wl += s;
                }
                for (i, &level) in c.of_row.iter().enumerate() {
                    let at = level as usize * m;
                    for j in 0..m {
                        z[i * m + j] += step[at + j];
                    }
                }
            }
        }
        for i in (0..n).filter(|i| i % FOLDS == fold) {
            held_out[i * m..(i + 1) * m].copy_from_slice(&z[i * m..(i + 1) * m]);
        }
    }
    held_out
}

/// Log loss per row saved by giving each cell of `a` x `b` its own offsets on top of the
/// logits `z` ([`additive_out_of_fold`]): each row's offsets are a Newton step on the
/// other rows of its cell, shrunk by [`CROSS_SMOOTHING`] (leave-one-out, so a cell that
/// only fits its own rows' noise gains nothing).
pub fn pair_gain(a: &Levels, b: &Levels, z: &[f64], classes: &Classes) -> PairGain {
    let (n, m) = (classes.of_row.len(), classes.logits());
    let cell = |i: usize| (a.of_row[i] as usize * b.count + b.of_row[i] as usize) * m;
    let mut residual = vec![0.0; a.count * b.count * m];
    let mut weight = vec![0.0; a.count * b.count * m];
    let mut p = vec![0.0; m];
    for i in 0..n {
        classes.probabilities(&z[i * m..(i + 1) * m], &mut p);
        for j in 0..m {
            residual[cell(i) + j] += classes.is(i, j) - p[j];
            weight[cell(i) + j] += p[j] * (1.0 - p[j]);
        }
    }
    let (mut sum, mut squares) = (0.0, 0.0);
    let mut moved = vec![0.0; m];
    for i in 0..n {
        let row = &z[i * m..(i + 1) * m];
        classes.probabilities(row, &mut p);
        for j in 0..m {
            let (r, w) = (classes.is(i, j) - p[j], p[j] * (1.0 - p[j]));
            let at = cell(i) + j;
            moved[j] = row[j] + (residual[at] - r) / (weight[at] - w + CROSS_SMOOTHING);
        }
        let gain = classes.loss(i, row, &mut p) - classes.loss(i, &moved, &mut p);
        sum += gain;
        squares += gain * gain;
    }
    let n = n.max(2) as f64;
    let mean = sum / n;
    let sd = ((squares / n - mean * mean).max(0.0) * n / (n - 1.0)).sqrt();
    PairGain {
        mean,
        t: if sd > 0.0 {
            mean / (sd / n.sqrt())
        } else {
            0.0
        },
    }
}

/// What crossing a pair saves ([`pair_gain`]).
#[derive(Debug, Clone, Copy)]
pub struct PairGain {
    /// Mean log loss saved per row, in nats.
    pub mean: f64,
    /// The mean over its standard error: how far from chance the saving is.
    pub t: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stream of numbers in [0, 1).
    fn uniform(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*seed >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Three columns of 6, 4 and 3 levels, and a class of `count` that `a` and `b` decide
    /// together 60 % of the time (their sum modulo `count`), `c` on its own 25 % of the
    /// time, and chance the rest: no additive model of the three predicts the sum.
    fn interacting(count: usize) -> ([Levels; 3], Classes) {
        let mut seed = 7;
        let n = 4000;
        let mut column = |levels: f64| -> Vec<Option<u32>> {
            (0..n)
                .map(|_| Some((uniform(&mut seed) * levels) as u32))
                .collect()
        };
        let (a, b, c) = (column(6.0), column(4.0), column(3.0));
        let of_row = (0..n)
            .map(|i| {
                let decided = (a[i].unwrap() + b[i].unwrap()) as usize % count;
                let u = uniform(&mut seed);
                if u < 0.6 {
                    decided
                } else if u < 0.85 {
                    c[i].unwrap() as usize % count
                } else {
                    (uniform(&mut seed) * count as f64) as usize
                }
            })
            .collect();
        let levels = [&a, &b, &c].map(|k| Levels::of_keys(k));
        (levels, Classes { of_row, count })
    }

    #[test]
    fn a_pair_whose_cells_decide_the_class_gains_and_two_additive_columns_do_not() {
        for count in [2, 3] {
            let ([a, b, c], classes) = interacting(count);
            let z = additive_out_of_fold(&[a.clone(), b.clone(), c.clone()], &classes);
            let crossed = pair_gain(&a, &b, &z, &classes);
            assert!(
                crossed.mean > 0.05 && crossed.t > CROSS_T,
                "{count} classes: a x b gains {crossed:?}"
            );
            for (name, g) in [
                ("a x c", pair_gain(&a, &c, &z, &classes)),
                ("b x c", pair_gain(&b, &c, &z, &classes)),
            ] {
                assert!(g.t < CROSS_T, "{count} classes: {name} gains {g:?}");
            }
            // The additive model learned c: its held-out logits beat the class shares'.
            let m = classes.logits();
            let rows: Vec<usize> = (0..classes.of_row.len()).collect();
            let base = classes.base(&rows);
            let mut scratch = vec![0.0; m];
            let (mut additive, mut constant) = (0.0, 0.0);
            for i in rows {
                additive += classes.loss(i, &z[i * m..(i + 1) * m], &mut scratch);
                constant += classes.loss(i, &base, &mut scratch);
            }
            assert!(additive < constant, "{additive} against {constant}");
        }
    }

    #[test]
    fn a_number_is_cut_at_its_quartiles_or_at_each_of_a_few_values() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(cut_edges(&sorted, CROSS_BINS), vec![25.75, 50.5, 75.25]);
        assert_eq!(bin_of(&[25.75, 50.5, 75.25], 1.0), 0);
        assert_eq!(bin_of(&[25.75, 50.5, 75.25], 50.5), 2);
        assert_eq!(bin_of(&[25.75, 50.5, 75.25], 1e9), 3);
        assert_eq!(cut_edges(&[0.0, 0.0, 1.0, 1.0, 1.0], CROSS_BINS), vec![1.0]);
        assert_eq!(bin_of(&[1.0], 0.0), 0);
        assert_eq!(bin_of(&[1.0], 1.0), 1);
    }
}
