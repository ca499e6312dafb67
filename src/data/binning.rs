//! Bin edges of the piecewise-linear encoding of a numeric column: quantiles of the
//! column, or the split points of a small regression tree grown on the column against the
//! target (Gorishniy et al., NeurIPS 2022, "target-aware" bins), which put edges where the
//! target changes instead of where the rows happen to be dense.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// The target values of the training rows a tree is grown against.
#[derive(Debug, Clone, Copy)]
pub struct BinTarget<'a> {
    /// One value per row of the table: a class index, or a number for regression.
    pub values: &'a [f32],
    /// Number of classes; 0 for a numeric target.
    pub classes: usize,
}

/// Fewest training rows a tree bin may hold: enough that an edge is not one row's noise.
const MAX_MIN_LEAF: usize = 64;
const MIN_MIN_LEAF: usize = 16;
/// A split must remove this share of a standardized target's squared error per row
/// (scikit-learn's `min_impurity_decrease`, as the paper's reference code sets it).
const MIN_GAIN_PER_ROW: f64 = 1e-4;

/// Edges at `bins` quantiles of sorted values, duplicates removed; empty when fewer than
/// two distinct edges remain or `bins < 2`.
pub fn quantile_edges(sorted: &[f64], bins: usize) -> Vec<f64> {
    let mut edges: Vec<f64> = Vec::new();
    if bins >= 2 {
        for i in 0..=bins {
            let q = quantile(sorted, i as f64 / bins as f64);
            if edges.last().is_none_or(|&last| q > last) {
                edges.push(q);
            }
        }
    }
    if edges.len() < 2 {
        edges.clear();
    }
    edges
}

/// Share of the rows the most frequent value must hold for [`point_mass_edges`] to bin the
/// other values apart (about a third: then it took a third of the bins, collapsed into
/// one; 0.33 as measured, so a column at 33.4 % in one split is not left out in another).
const POINT_MASS_SHARE: f64 = 0.33;

/// The edges a number's bins get (`quantile` are its [`quantile_edges`]): those, unless
/// its most frequent value holds at least 33 % of the rows and more than `bins` other
/// values remain (a zero-inflated amount, a count that is mostly 0 or 1, "days since the
/// last call" that is -1 for most customers). Then they are the quantiles of the other
/// values plus the frequent value itself, so the rest get every bin instead of the few the
/// point mass left them. Measured on eleven tables (README "Results"): bank +0.0015,
/// Adult +0.0008, CDNOW +0.0012, lending +0.0033, none below -0.0001.
pub fn point_mass_edges(sorted: &[f64], quantile: Vec<f64>, bins: usize) -> Vec<f64> {
    if quantile.is_empty() || quantile.len() > bins {
        return quantile;
    }
    let Some(mass) = sorted.chunk_by(|a, b| a == b).max_by_key(|run| run.len()) else {
        return quantile;
    };
    let (value, share) = (mass[0], mass.len() as f64 / sorted.len() as f64);
    let rest: Vec<f64> = sorted.iter().copied().filter(|&x| x != value).collect();
    if share < POINT_MASS_SHARE || rest.chunk_by(|a, b| a == b).count() <= bins {
        return quantile;
    }
    let mut edges = quantile_edges(&rest, bins);
    edges.push(value);
    edges.sort_by(f64::total_cmp);
    edges.dedup();
    edges
}

/// The values of a number that get a 0/1 input each beside its bins, in ascending order,
/// or none. Two kinds of column get them (at most `most` distinct values either way):
/// - where repeated values merged the quantile edges (fewer than `bins` bins) and at least
///   `bins` distinct values fall between the edges: a zero-inflated amount (a capital gain:
///   0 for 92 % of the rows, a hundred distinct amounts above) gets two bins, within which
///   specific amounts mean different things;
/// - whole numbers with more distinct values than `bins` but at most twice as many (a day of
///   the month, a code, a small count): each bin spans two or three values whose effects
///   need not lie on a line (a campaign's calling days).
///
/// The flags let the MLP tell such values apart as a tree's splits do. A column with more
/// distinct values is closer to continuous, and its flags would each see a few rows.
pub fn exact_values(sorted: &[f64], edges: &[f64], bins: usize, most: usize) -> Vec<f64> {
    if most == 0 || bins < 2 {
        return Vec::new();
    }
    let values: Vec<f64> = sorted.chunk_by(|a, b| a == b).map(|run| run[0]).collect();
    if values.len() > most {
        return Vec::new();
    }
    let merged =
        edges.len() <= bins && values.iter().filter(|v| !edges.contains(v)).count() >= bins;
    let small_integers =
        (bins + 1..=2 * bins).contains(&values.len()) && values.iter().all(|v| v.fract() == 0.0);
    if merged || small_integers {
        values
    } else {
        Vec::new()
    }
}

/// Nats per training row by which a column's exact values must predict the class better
/// than its bins do (leave-one-out) for [`telling_values`] to flag them.
const TELLING_GAIN: f64 = 0.05;
/// Rows a value needs to get a flag from [`telling_values`]: a value seen once says nothing
/// about the next row that has it.
const TELLING_COUNT: usize = 2;
/// Weight, in rows, of a value's bin in the estimate of its class shares.
const TELLING_SMOOTHING: f64 = 10.0;

/// The values of a number that get a flag each because its exact values tell the classes
/// apart far better than its bins: a salary converted to dollars from round figures in
/// each country's currency, whose exact amount names the currency. The test is
/// leave-one-out on the training rows `pairs` (sorted by value, a class index beside each):
/// each row's class probability from the other rows of its value (shrunk toward its bin's)
/// against from the other rows of its bin; flags where the mean log gain is at least
/// `TELLING_GAIN` nats. At most `most` values, the most frequent, each held by at least
/// `TELLING_COUNT` rows. A column of a few values in one bin passes when it alone is a
/// strong predictor (DNA's bases beside a splice junction); its flags then add inputs for
/// what the scaled value already says, which lowered the log loss there. No two-class table
/// measured has such a column (README "Results": "Exact values that name the class").
pub fn telling_values(
    pairs: &[(f64, f32)],
    edges: &[f64],
    classes: usize,
    most: usize,
) -> Vec<f64> {
    let n = pairs.len();
    if most == 0 || classes < 2 || n < 2 {
        return Vec::new();
    }
    let class = |y: f32| (y.max(0.0) as usize).min(classes - 1);
    let bin = |x: f64| {
        let inner = edges.len().saturating_sub(2);
        edges
            .partition_point(|&e| e <= x)
            .saturating_sub(1)
            .min(inner)
    };
    let mut prior = vec![0.0; classes];
    let mut in_bin = vec![vec![0.0; classes]; edges.len().max(1)];
    for &(x, y) in pairs {
        prior[class(y)] += 1.0;
        in_bin[bin(x)][class(y)] += 1.0;
    }
    prior.iter_mut().for_each(|p| *p /= n as f64);
    let bin_rows: Vec<f64> = in_bin.iter().map(|c| c.iter().sum()).collect();
    let mut gain = 0.0;
    let mut runs: Vec<(usize, f64)> = Vec::new();
    let mut in_value = vec![0.0; classes];
    for run in pairs.chunk_by(|a, b| a.0 == b.0) {
        let b = bin(run[0].0);
        in_value.fill(0.0);
        for &(_, y) in run {
            in_value[class(y)] += 1.0;
        }
        let rows = run.len() as f64;
        for &(_, y) in run {
            let k = class(y);
            let p_bin = (in_bin[b][k] - 1.0 + prior[k]) / bin_rows[b];
            let p_value =
                (in_value[k] - 1.0 + TELLING_SMOOTHING * p_bin) / (rows - 1.0 + TELLING_SMOOTHING);
            gain += p_value.ln() - p_bin.ln();
        }
        if run.len() >= TELLING_COUNT {
            runs.push((run.len(), run[0].0));
        }
    }
    if gain / (n as f64) < TELLING_GAIN {
        return Vec::new();
    }
    runs.sort_by_key(|&(rows, _)| std::cmp::Reverse(rows));
    let mut values: Vec<f64> = runs.iter().take(most).map(|&(_, x)| x).collect();
    values.sort_by(f64::total_cmp);
    values
}

/// Quantile by linear interpolation of a sorted slice (0 when empty).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Edges from a tree of at most `bins` leaves grown best-first on `(value, target)` pairs
/// sorted by value: the column's minimum, the split points (midway between neighbouring
/// values), its maximum. Empty when no split pays (the column then enters as its scaled
/// value only).
pub fn tree_edges(pairs: &[(f64, f32)], classes: usize, bins: usize) -> Vec<f64> {
    let n = pairs.len();
    if bins < 2 || n < 2 {
        return Vec::new();
    }
    debug_assert!(
        pairs.is_sorted_by(|a, b| a.0 <= b.0),
        "pairs sorted by value"
    );
    let xs: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let dims = prefix_sums(pairs, classes);
    let min_leaf = (n / (2 * bins)).clamp(MIN_MIN_LEAF, MAX_MIN_LEAF);
    let min_gain = MIN_GAIN_PER_ROW * n as f64;
    let mut leaves = 1;
    let mut heap = BinaryHeap::new();
    let mut cuts = Vec::new();
    heap.extend(best_split(&xs, &dims, 0, n, min_leaf));
    while leaves < bins {
        let Some(split) = heap.pop() else { break };
        if split.gain < min_gain {
            break;
        }
        cuts.push((xs[split.at - 1] + xs[split.at]) / 2.0);
        leaves += 1;
        heap.extend(best_split(&xs, &dims, split.lo, split.at, min_leaf));
        heap.extend(best_split(&xs, &dims, split.at, split.hi, min_leaf));
    }
    if cuts.is_empty() {
        return Vec::new();
    }
    cuts.sort_by(f64::total_cmp);
    let mut edges = Vec::with_capacity(cuts.len() + 2);
    edges.push(xs[0]);
    edges.extend(cuts);
    edges.push(xs[n - 1]);
    edges
}

/// Prefix sums of the target's dimensions over the sorted rows (`sums[d][i]`: rows
/// `0..i`): a class indicator per class (one for two classes), or the standardized number.
fn prefix_sums(pairs: &[(f64, f32)], classes: usize) -> Vec<Vec<f64>> {
    let encode: Box<dyn Fn(f32, usize) -> f64> = match classes {
        0 => {
            let n = pairs.len() as f64;
            let mean = pairs.iter().map(|p| f64::from(p.1)).sum::<f64>() / n;
            let var = pairs
                .iter()
                .map(|p| (f64::from(p.1) - mean).powi(2))
                .sum::<f64>()
                / n;
            let sd = if var > 0.0 { var.sqrt() } else { 1.0 };
            Box::new(move |y, _| (f64::from(y) - mean) / sd)
        }
        2 => Box::new(|y, _| f64::from(u8::from(y as usize == 1))),
        _ => Box::new(|y, d| f64::from(u8::from(y as usize == d))),
    };
    let dims = if classes > 2 { classes } else { 1 };
    (0..dims)
        .map(|d| {
            let mut sums = Vec::with_capacity(pairs.len() + 1);
            let mut acc = 0.0;
            sums.push(acc);
            for p in pairs {
                acc += encode(p.1, d);
                sums.push(acc);
            }
            sums
        })
        .collect()
}

/// A candidate split of the sorted rows `lo..hi` at `at` and the squared error it removes.
struct Split {
    gain: f64,
    lo: usize,
    at: usize,
    hi: usize,
}

impl PartialEq for Split {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Split {}
impl PartialOrd for Split {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Split {
    /// Larger gain first; ties go to the leftmost split, so the edges are deterministic.
    fn cmp(&self, other: &Self) -> Ordering {
        self.gain
            .total_cmp(&other.gain)
            .then(other.lo.cmp(&self.lo))
            .then(other.at.cmp(&self.at))
    }
}

/// The split of rows `lo..hi` (between two different values, each side at least
/// `min_leaf` rows) that removes the most squared error, if any.
fn best_split(
    xs: &[f64],
    sums: &[Vec<f64>],
    lo: usize,
    hi: usize,
    min_leaf: usize,
) -> Option<Split> {
    if hi - lo < 2 * min_leaf {
        return None;
    }
    let sum = |d: &Vec<f64>, a: usize, b: usize| d[b] - d[a];
    let whole: f64 = sums
        .iter()
        .map(|d| sum(d, lo, hi).powi(2) / (hi - lo) as f64)
        .sum();
    let mut best: Option<Split> = None;
    for at in lo + min_leaf..=hi - min_leaf {
        if xs[at - 1] == xs[at] {
            continue;
        }
        let (nl, nr) = ((at - lo) as f64, (hi - at) as f64);
        let gain = sums
            .iter()
            .map(|d| sum(d, lo, at).powi(2) / nl + sum(d, at, hi).powi(2) / nr)
            .sum::<f64>()
            - whole;
        if best.as_ref().is_none_or(|b| gain > b.gain) {
            best = Some(Split { gain, lo, at, hi });
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_mass_leaves_every_bin_to_the_other_values() {
        // -1 for 80 % of the rows, 40 other values: quantiles give at most 5 edges, the rule
        // 18 (-1, then 17 over the other values).
        let mut xs: Vec<f64> = vec![-1.0; 800];
        xs.extend((0..200).map(|i| f64::from(i % 40) * 3.0 + 1.0));
        xs.sort_by(f64::total_cmp);
        let quantile = quantile_edges(&xs, 16);
        assert!(quantile.len() <= 5, "{quantile:?}");
        let edges = point_mass_edges(&xs, quantile, 16);
        assert_eq!(edges.len(), 18, "{edges:?}");
        assert_eq!((edges[0], edges[1], edges[17]), (-1.0, 1.0, 118.0));
        // A mode of a quarter of the rows, or few other values: the quantiles stay.
        let mut quarter: Vec<f64> = vec![0.0; 250];
        quarter.extend((1..=750).map(f64::from));
        quarter.sort_by(f64::total_cmp);
        let q = quantile_edges(&quarter, 16);
        assert_eq!(point_mass_edges(&quarter, q.clone(), 16), q);
        let mut few: Vec<f64> = vec![0.0; 800];
        few.extend((0..200).map(|i| f64::from(i % 10) + 1.0));
        few.sort_by(f64::total_cmp);
        let q = quantile_edges(&few, 16);
        assert_eq!(point_mass_edges(&few, q.clone(), 16), q);
    }

    #[test]
    fn exact_values_only_where_ties_hide_many_values() {
        // 0 for 80 rows, then 20 distinct amounts (two of them twice): 2 bins of 4 asked.
        let mut xs = vec![0.0; 80];
        xs.extend((1..=20).map(f64::from));
        xs.extend([5.0, 7.0]);
        xs.sort_by(f64::total_cmp);
        let edges = quantile_edges(&xs, 4);
        assert_eq!(edges, vec![0.0, 20.0]);
        let all: Vec<f64> = (0..=20).map(f64::from).collect();
        assert_eq!(exact_values(&xs, &edges, 4, 21), all);
        // More distinct values than flags allowed: a continuous column, left to its bins.
        assert!(exact_values(&xs, &edges, 4, 20).is_empty());
        assert!(exact_values(&xs, &edges, 4, 0).is_empty());
        // Fewer distinct values between the edges than bins: the bins already tell them apart.
        let few: Vec<f64> = [0.0; 80].into_iter().chain([1.0, 2.0, 3.0]).collect();
        assert!(exact_values(&few, &quantile_edges(&few, 4), 4, 8).is_empty());
        // No edge merged: quantile bins as they are.
        let even: Vec<f64> = (0..=100).map(f64::from).collect();
        assert!(exact_values(&even, &quantile_edges(&even, 4), 4, 8).is_empty());
    }

    #[test]
    fn telling_values_where_the_exact_value_names_the_class() {
        // 300 values on 3 rows each (and 50 on one): the class is the value's remainder
        // by 3, which a bin of about 19 neighbouring values cannot see.
        let mut pairs: Vec<(f64, f32)> = (0..300)
            .flat_map(|v| [(f64::from(v), (v % 3) as f32); 3])
            .chain((300..350).map(|v| (f64::from(v), 0.0)))
            .collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let xs: Vec<f64> = pairs.iter().map(|p| p.0).collect();
        let edges = quantile_edges(&xs, 16);
        assert!(exact_values(&xs, &edges, 16, 256).is_empty());
        let flags = telling_values(&pairs, &edges, 3, 256);
        // The 256 most frequent: values seen once never get one.
        assert_eq!(flags.len(), 256);
        assert!(
            flags.is_sorted() && flags.iter().all(|&v| v < 300.0),
            "{flags:?}"
        );
        assert_eq!(telling_values(&pairs, &edges, 3, 400).len(), 300);
        assert!(telling_values(&pairs, &edges, 3, 0).is_empty());
        // The same values with classes by range: the bins already tell them apart.
        let smooth: Vec<(f64, f32)> = pairs
            .iter()
            .map(|&(x, _)| (x, if x < 150.0 { 0.0 } else { 1.0 }))
            .collect();
        assert!(telling_values(&smooth, &edges, 2, 256).is_empty());
        // Classes unrelated to the value (a fixed pattern over rows, not values): none.
        let noise: Vec<(f64, f32)> = pairs
            .iter()
            .enumerate()
            .map(|(i, &(x, _))| (x, ((i * 7) % 3) as f32))
            .collect();
        assert!(telling_values(&noise, &edges, 3, 256).is_empty());
    }

    #[test]
    fn exact_values_for_whole_numbers_with_up_to_twice_as_many_values_as_bins() {
        // Days of the month, each on 10 rows: 16 bins span about two days each.
        let days: Vec<f64> = (1..=31).flat_map(|d| [f64::from(d); 10]).collect();
        let edges = quantile_edges(&days, 16);
        assert_eq!(edges.len(), 17, "no edge merged: {edges:?}");
        let all: Vec<f64> = (1..=31).map(f64::from).collect();
        assert_eq!(exact_values(&days, &edges, 16, 256), all);
        // Still within `most`.
        assert!(exact_values(&days, &edges, 16, 30).is_empty());
        // Not whole numbers: a measurement, left to its bins.
        let halves: Vec<f64> = days.iter().map(|d| d + 0.5).collect();
        assert!(exact_values(&halves, &quantile_edges(&halves, 16), 16, 256).is_empty());
        // More than twice as many values as bins, or no more than the bins: none.
        let many: Vec<f64> = (1..=33).flat_map(|d| [f64::from(d); 10]).collect();
        assert!(exact_values(&many, &quantile_edges(&many, 16), 16, 256).is_empty());
        let few: Vec<f64> = (1..=16).flat_map(|d| [f64::from(d); 10]).collect();
        assert!(exact_values(&few, &quantile_edges(&few, 16), 16, 256).is_empty());
    }

    #[test]
    fn quantile_edges_drop_repeats() {
        let xs: Vec<f64> = (0..100).map(|i| f64::from(i / 80)).collect();
        assert_eq!(quantile_edges(&xs, 4), vec![0.0, 1.0]);
        assert!(quantile_edges(&[3.0; 10], 4).is_empty());
        let even: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(quantile_edges(&even, 4), vec![0.0, 25.0, 50.0, 75.0, 100.0]);
    }

    #[test]
    fn tree_edges_fall_where_the_target_changes() {
        // The positive rate jumps at 30 and at 70 and is flat elsewhere: the tree's two
        // edges sit at those steps, not at the quartiles.
        let pairs: Vec<(f64, f32)> = (0..1000)
            .map(|i| {
                let x = f64::from(i) / 10.0;
                let rate = if x < 30.0 {
                    0.1
                } else if x < 70.0 {
                    0.6
                } else {
                    0.2
                };
                // A deterministic pattern with that share of positives.
                let y = f32::from(u8::from((i * 7919 % 100) as f64 / 100.0 < rate));
                (x, y)
            })
            .collect();
        let edges = tree_edges(&pairs, 2, 3);
        assert_eq!(edges.len(), 4, "{edges:?}");
        assert_eq!(edges[0], 0.0);
        assert!((edges[1] - 29.95).abs() < 0.5, "{edges:?}");
        assert!((edges[2] - 69.95).abs() < 0.5, "{edges:?}");
        assert_eq!(edges[3], 99.9);
        // A target unrelated to the value gives no edges; a regression target is standardized.
        let flat: Vec<(f64, f32)> = (0..1000).map(|i| (f64::from(i), 5.0)).collect();
        assert!(tree_edges(&flat, 0, 8).is_empty());
        let step: Vec<(f64, f32)> = (0..1000)
            .map(|i| (f64::from(i), if i < 400 { 1e6 } else { 3e6 }))
            .collect();
        assert_eq!(tree_edges(&step, 0, 2), vec![0.0, 399.5, 999.0]);
    }

    #[test]
    fn multiclass_trees_split_on_any_class() {
        // Classes 0 and 1 alternate below 500 and class 2 fills the rest: the mean class
        // index would also step there, so the test uses the one-hot dimensions' view that
        // no split inside the alternating half pays.
        let pairs: Vec<(f64, f32)> = (0..1000)
            .map(|i| (f64::from(i), if i >= 500 { 2.0 } else { (i % 2) as f32 }))
            .collect();
        assert_eq!(tree_edges(&pairs, 3, 2), vec![0.0, 499.5, 999.0]);
        assert_eq!(tree_edges(&pairs, 3, 4), vec![0.0, 499.5, 999.0]);
    }
}
