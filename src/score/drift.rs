//! Population drift (`patron drift`): how far new data has moved from what the model was
//! trained on, by the population stability index (PSI) of each input column and of the
//! scores, the check scorecards and propensity models are monitored with. Training saves
//! a [`Profile`] (`profile.json`): each column's shares over deciles of its training values
//! (plus a missing bucket), or over its categories (index 0: missing or unseen), and the
//! shares of the held-out scores over their deciles (more than two classes: of each
//! predicted class). A text run profiles the number of tokens per text instead of columns.

use serde::{Deserialize, Serialize};

use crate::data::dates::format_day;
use crate::data::preprocess::{Encoded, Feature, Preprocessor, Slot};
use crate::task::{self, Monitored};

/// The one column a text run profiles: how many token ids each text gives the model (the
/// texts themselves have no fixed buckets).
pub const TEXT_LENGTH: &str = "tokens per text";

/// Shares below this count as this in PSI, so an empty bucket on one side is a large
/// finite term rather than an infinite one.
const MIN_SHARE: f64 = 1e-4;

/// A PSI below this is read as stable.
pub const STABLE_BELOW: f64 = 0.1;
/// A PSI from this on is read as a major shift (between the two: a moderate one).
pub const MAJOR_FROM: f64 = 0.25;

/// What the model was trained on, for later drift checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Layout version of this file.
    pub version: u32,
    /// Training rows profiled.
    pub rows: usize,
    /// Each input column in feature order (text runs: tokens per text).
    pub features: Vec<Buckets>,
    /// The held-out scores.
    pub score: Buckets,
}

/// A column's (or the scores') buckets and the share of rows in each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Buckets {
    /// Column name (`score` for the scores).
    pub name: String,
    /// Inner bucket edges of a number (values up to an edge fall below it); empty for
    /// categories and classes.
    pub edges: Vec<f64>,
    /// Share of rows per bucket: `edges.len() + 1` value buckets then a missing one for a
    /// number; one per category index or class otherwise.
    pub shares: Vec<f64>,
}

/// Bucket counts of one column over some rows.
#[derive(Debug, Clone)]
pub struct Counts(Vec<u64>);

impl Buckets {
    /// Deciles of `values` (`None`: missing) as edges, and the shares over them.
    fn of_numbers(name: &str, values: &[Option<f64>]) -> Buckets {
        let mut present: Vec<f64> = values.iter().flatten().copied().collect();
        present.sort_by(f64::total_cmp);
        // The d-th decile edge is the last value of the d-th tenth of the sorted values.
        let mut edges: Vec<f64> = (1..10)
            .filter_map(|d| {
                present
                    .get((d * present.len() / 10).checked_sub(1)?)
                    .copied()
            })
            .collect();
        edges.dedup();
        let mut buckets = Buckets {
            name: name.to_string(),
            edges,
            shares: Vec::new(),
        };
        let mut counts = buckets.empty();
        for v in values {
            buckets.count_number(&mut counts, *v);
        }
        buckets.shares = counts.shares();
        buckets
    }

    /// Shares of each index in `0..n` among `indices`.
    fn of_indices(name: &str, indices: &[usize], n: usize) -> Buckets {
        let mut counts = Counts(vec![0; n]);
        for &i in indices {
            counts.0[i.min(n - 1)] += 1;
        }
        Buckets {
            name: name.to_string(),
            edges: Vec::new(),
            shares: counts.shares(),
        }
    }

    /// Zero counts over these buckets (a number's are known from its edges before its
    /// shares are).
    pub fn empty(&self) -> Counts {
        Counts(vec![0; self.shares.len().max(self.edges.len() + 2)])
    }

    /// Count a number (`None`: missing, the last bucket).
    pub fn count_number(&self, counts: &mut Counts, value: Option<f64>) {
        let bucket = match value {
            Some(v) => self.edges.partition_point(|&e| e < v),
            None => self.edges.len() + 1,
        };
        counts.0[bucket] += 1;
    }

    /// Count a category index or class (out of range: the last bucket).
    pub fn count_index(&self, counts: &mut Counts, index: usize) {
        let last = counts.0.len() - 1;
        counts.0[index.min(last)] += 1;
    }

    /// The population stability index of `counts` against these shares:
    /// sum of (actual - expected) ln(actual / expected), shares floored at 1e-4.
    pub fn psi(&self, counts: &Counts) -> f64 {
        let actual = counts.shares();
        self.shares
            .iter()
            .zip(&actual)
            .map(|(&e, &a)| {
                let (e, a) = (e.max(MIN_SHARE), a.max(MIN_SHARE));
                (a - e) * (a / e).ln()
            })
            .sum()
    }
}

impl Counts {
    /// Rows counted.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Each bucket's share of the rows (all 0 when none were counted).
    fn shares(&self) -> Vec<f64> {
        let total = self.total().max(1) as f64;
        self.0.iter().map(|&c| c as f64 / total).collect()
    }
}

/// How a PSI reads: "stable", "moderate shift" or "major shift".
pub fn verdict(psi: f64) -> &'static str {
    if psi < STABLE_BELOW {
        "stable"
    } else if psi < MAJOR_FROM {
        "moderate shift"
    } else {
        "major shift"
    }
}

/// A number's value as the model sees it (its scaled input), or `None` when missing (the
/// missing indicator is set; a column with no missing training values has none, and a
/// missing value then reads as its median).
fn number(encoded: &Encoded, r: usize, start: usize, feature: &Feature) -> Option<f64> {
    let row = &encoded.numeric[r * encoded.numeric_width..];
    let missing = matches!(
        feature,
        Feature::Numeric {
            missing_indicator: true,
            ..
        }
    ) && row[start + 1] == 1.0;
    (!missing).then_some(f64::from(row[start]))
}

/// A category's index within its column (0: missing or unseen).
fn category(encoded: &Encoded, r: usize, index: usize, offset: i64) -> usize {
    (encoded.categorical[r * encoded.categorical_count + index] - offset) as usize
}

/// The profile of the training rows of `encoded` and the held-out `scores` (one per row for
/// two classes) or `predicted` classes (more).
pub fn profile(
    pre: &Preprocessor,
    encoded: &Encoded,
    train_rows: &[usize],
    scores: &[f64],
    predicted: &[usize],
) -> Profile {
    let offsets = pre.category_offsets();
    let features = if pre.text.is_some() {
        let lengths: Vec<Option<f64>> = train_rows
            .iter()
            .map(|&r| Some(encoded.tokens[r].len() as f64))
            .collect();
        vec![Buckets::of_numbers(TEXT_LENGTH, &lengths)]
    } else {
        pre.features
            .iter()
            .zip(pre.slots())
            .map(|(feature, slot)| match slot {
                Slot::Numeric { start, .. } => {
                    let values: Vec<Option<f64>> = train_rows
                        .iter()
                        .map(|&r| number(encoded, r, start, feature))
                        .collect();
                    Buckets::of_numbers(feature.name(), &values)
                }
                Slot::Categorical { index } => {
                    let indices: Vec<usize> = train_rows
                        .iter()
                        .map(|&r| category(encoded, r, index, offsets[index]))
                        .collect();
                    Buckets::of_indices(feature.name(), &indices, feature.categories().len() + 1)
                }
            })
            .collect()
    };
    let score = match task::for_run(pre).monitored() {
        Monitored::Score(per_row) => {
            let values: Vec<Option<f64>> =
                scores.iter().step_by(per_row).map(|&s| Some(s)).collect();
            Buckets::of_numbers("score", &values)
        }
        Monitored::Class(classes) => Buckets::of_indices("predicted class", predicted, classes),
    };
    Profile {
        version: 1,
        rows: train_rows.len(),
        features,
        score,
    }
}

impl Profile {
    /// Whether this profile describes `pre`'s columns (a hand-edited or mismatched file
    /// would otherwise compare the wrong buckets): the error says what differs.
    pub fn matches(&self, pre: &Preprocessor) -> std::result::Result<(), String> {
        let expected: Vec<&str> = if pre.text.is_some() {
            vec![TEXT_LENGTH]
        } else {
            pre.features.iter().map(Feature::name).collect()
        };
        let found: Vec<&str> = self.features.iter().map(|b| b.name.as_str()).collect();
        if found != expected {
            return Err(format!(
                "profiles the columns {found:?}, but the run reads {expected:?}"
            ));
        }
        for b in self.features.iter().chain([&self.score]) {
            let numeric = b.shares.len() == b.edges.len() + 2;
            if !(numeric || b.edges.is_empty()) || b.shares.is_empty() {
                return Err(format!("has malformed buckets for {:?}", b.name));
            }
        }
        Ok(())
    }
}

/// Running bucket counts of new data against a profile.
pub struct DriftCounter<'a> {
    profile: &'a Profile,
    pre: &'a Preprocessor,
    offsets: Vec<i64>,
    features: Vec<Counts>,
    /// Per feature: present values outside its training range ([`Preprocessor::past_range`]).
    past_range: Vec<u64>,
    score: Counts,
    /// What the run's task watches of its outputs.
    monitored: Monitored,
}

/// The drift of one column (or the scores).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDrift {
    /// Column name.
    pub name: String,
    /// Population stability index against training.
    pub psi: f64,
    /// "stable", "moderate shift" or "major shift".
    pub verdict: String,
    /// The buckets, readable: value ranges in the column's own units, categories, classes.
    pub buckets: Vec<String>,
    /// Share of training rows per bucket.
    pub training: Vec<f64>,
    /// Share of the new rows per bucket.
    pub new: Vec<f64>,
    /// A number's training minimum and maximum (absent for categories, dates, text and runs
    /// of format 11 and older).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_range: Option<[f64; 2]>,
    /// Share of the new rows whose value lies outside `training_range`: the model reads
    /// each as the nearest end of it (`data.clip_numeric`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub past_range: Option<f64>,
}

/// What `patron drift` found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// Rows of new data.
    pub rows: u64,
    /// Training rows the profile holds.
    pub training_rows: usize,
    /// The scores' drift (more than two classes: the predicted classes').
    pub score: ColumnDrift,
    /// Each input column's drift, largest first (text runs: tokens per text).
    pub features: Vec<ColumnDrift>,
}

impl<'a> DriftCounter<'a> {
    /// Empty counts for the run's profile.
    pub fn new(profile: &'a Profile, pre: &'a Preprocessor) -> DriftCounter<'a> {
        DriftCounter {
            profile,
            pre,
            offsets: pre.category_offsets(),
            features: profile.features.iter().map(Buckets::empty).collect(),
            past_range: vec![0; pre.features.len()],
            score: profile.score.empty(),
            monitored: task::for_run(pre).monitored(),
        }
    }

    /// Count a chunk: its encoded rows, and their scores (two classes) or predicted classes.
    pub fn add(&mut self, encoded: &Encoded, scores: &[f64], predicted: &[usize]) {
        if let (Some(_), Some(buckets), Some(counts)) = (
            &self.pre.text,
            self.profile.features.first(),
            self.features.first_mut(),
        ) {
            for tokens in &encoded.tokens {
                buckets.count_number(counts, Some(tokens.len() as f64));
            }
        }
        let features = self.pre.features.iter().zip(self.pre.slots());
        for ((feature, slot), (buckets, counts)) in
            features.zip(self.profile.features.iter().zip(&mut self.features))
        {
            for r in 0..encoded.rows {
                match slot {
                    Slot::Numeric { start, .. } => {
                        buckets.count_number(counts, number(encoded, r, start, feature))
                    }
                    Slot::Categorical { index } => buckets
                        .count_index(counts, category(encoded, r, index, self.offsets[index])),
                }
            }
        }
        match self.monitored {
            Monitored::Score(per_row) => {
                for &s in scores.iter().step_by(per_row) {
                    self.profile.score.count_number(&mut self.score, Some(s));
                }
            }
            Monitored::Class(_) => {
                for &c in predicted {
                    self.profile.score.count_index(&mut self.score, c);
                }
            }
        }
    }

    /// Count a chunk's values outside their training range, per feature
    /// ([`Preprocessor::past_range`]).
    pub fn add_past_range(&mut self, counts: &[u64]) {
        for (total, n) in self.past_range.iter_mut().zip(counts) {
            *total += n;
        }
    }

    /// The PSI of every column and of the scores.
    pub fn report(&self) -> DriftReport {
        // The scores and text lengths are never missing: their (empty) missing bucket is
        // left out of the shares shown.
        let drift = |buckets: &Buckets, counts: &Counts, labels: Vec<String>| {
            let psi = buckets.psi(counts);
            let (mut training, mut new) = (buckets.shares.clone(), counts.shares());
            training.truncate(labels.len());
            new.truncate(labels.len());
            ColumnDrift {
                name: buckets.name.clone(),
                psi,
                verdict: verdict(psi).into(),
                buckets: labels,
                training,
                new,
                training_range: None,
                past_range: None,
            }
        };
        let rows = self.score.total().max(1) as f64;
        let mut features: Vec<ColumnDrift> = self
            .profile
            .features
            .iter()
            .zip(&self.features)
            .enumerate()
            .map(|(i, (b, c))| {
                let labels = match self.pre.features.get(i) {
                    Some(feature) if feature.is_categorical() => {
                        std::iter::once("(missing or unseen)".to_string())
                            .chain(feature.categories().iter().cloned())
                            .collect()
                    }
                    Some(feature) => {
                        let show = |x| {
                            if feature.is_date() {
                                format_day(x)
                            } else {
                                significant(x)
                            }
                        };
                        range_labels(&b.edges, |z| feature.unscale(z).map(show), true)
                    }
                    // A text run's tokens per text.
                    None => range_labels(&b.edges, |z| Some(significant(z)), false),
                };
                let mut column = drift(b, c, labels);
                if let Some(Feature::Numeric {
                    range: Some(range), ..
                }) = self.pre.features.get(i)
                {
                    column.training_range = Some(*range);
                    column.past_range = Some(self.past_range[i] as f64 / rows);
                }
                column
            })
            .collect();
        features.sort_by(|a, b| b.psi.total_cmp(&a.psi));
        let score_labels = match self.monitored {
            Monitored::Score(_) => {
                range_labels(&self.profile.score.edges, |z| Some(significant(z)), false)
            }
            Monitored::Class(_) => self.pre.labels.clone(),
        };
        DriftReport {
            rows: self.score.total(),
            training_rows: self.profile.rows,
            score: drift(&self.profile.score, &self.score, score_labels),
            features,
        }
    }
}

/// Labels of number buckets: "<= e" for each edge (written in raw units by `raw`, a date as
/// its day; a clipped edge reads "...") then "> last edge", and "missing" when the buckets
/// have one.
fn range_labels(edges: &[f64], raw: impl Fn(f64) -> Option<String>, missing: bool) -> Vec<String> {
    let show = |e: f64| raw(e).unwrap_or_else(|| "...".to_string());
    let mut labels: Vec<String> = edges.iter().map(|&e| format!("<= {}", show(e))).collect();
    labels.push(match edges.last() {
        Some(&e) => format!("> {}", show(e)),
        None => "all".into(),
    });
    if missing {
        labels.push("missing".into());
    }
    labels
}

/// A number to 4 significant digits.
fn significant(x: f64) -> String {
    let rounded: f64 = format!("{x:.3e}").parse().unwrap_or(x);
    rounded.to_string()
}

impl DriftReport {
    /// A markdown table: the scores first, then the columns, largest PSI first.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "{} rows against {} training rows; PSI < {STABLE_BELOW}: stable, < {MAJOR_FROM}: moderate shift, else major shift\n\n| column | PSI | reading | rows outside the training range |\n|---|---|---|---|\n",
            self.rows, self.training_rows
        );
        for d in std::iter::once(&self.score).chain(&self.features) {
            out.push_str(&format!(
                "| {} | {:.4} | {} | {} |\n",
                d.name,
                d.psi,
                d.verdict,
                d.outside(self.rows)
            ));
        }
        out
    }
}

impl ColumnDrift {
    /// How many of the `rows` new values lie outside the training range, and that range, in
    /// words (empty where the column has none).
    pub fn outside(&self, rows: u64) -> String {
        match (self.past_range, self.training_range) {
            (Some(share), Some([lo, hi])) => format!(
                "{} ({:.2} %) of {} to {}",
                (share * rows as f64).round(),
                100.0 * share,
                significant(lo),
                significant(hi)
            ),
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_is_zero_for_the_same_shares_and_grows_with_a_shift() {
        let values: Vec<Option<f64>> = (0..1000).map(|i| Some(f64::from(i))).collect();
        let b = Buckets::of_numbers("x", &values);
        assert_eq!(b.edges.len(), 9);
        assert!(b.shares[..10].iter().all(|&s| (s - 0.1).abs() < 1e-12));
        assert_eq!(b.shares[10], 0.0);
        let mut same = b.empty();
        for v in &values {
            b.count_number(&mut same, *v);
        }
        assert!(b.psi(&same).abs() < 1e-12);
        // Half the rows moved to the top decile: sum of (a - e) ln(a / e) by hand.
        let mut shifted = b.empty();
        for i in 0..1000 {
            b.count_number(
                &mut shifted,
                Some(if i < 500 { 999.0 } else { f64::from(i) }),
            );
        }
        let a: Vec<f64> = (0..10)
            .map(|d| {
                if d < 5 {
                    1e-4
                } else if d < 9 {
                    0.1
                } else {
                    0.6
                }
            })
            .collect();
        let expected: f64 = a.iter().map(|&a| (a - 0.1) * (a / 0.1).ln()).sum();
        assert!(
            (b.psi(&shifted) - expected).abs() < 1e-9,
            "{}",
            b.psi(&shifted)
        );
        assert_eq!(verdict(b.psi(&shifted)), "major shift");
        // Missing values land in their own bucket.
        let mut missing = b.empty();
        b.count_number(&mut missing, None);
        assert_eq!(missing.0[10], 1);
    }

    #[test]
    fn ties_and_categories_bucket_consistently() {
        // 80 % of the rows share one value: the deduplicated edges still cover the rest.
        let values: Vec<Option<f64>> = (0..100)
            .map(|i| Some(if i < 80 { -1.0 } else { f64::from(i) }))
            .collect();
        let b = Buckets::of_numbers("pdays", &values);
        assert!(b.edges.windows(2).all(|w| w[0] < w[1]), "{:?}", b.edges);
        assert!((b.shares[0] - 0.8).abs() < 1e-12, "{:?}", b.shares);
        let c = Buckets::of_indices("job", &[0, 1, 1, 2, 2, 2], 3);
        assert_eq!(c.shares, [1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]);
        let mut unseen = c.empty();
        c.count_index(&mut unseen, 7);
        assert_eq!(unseen.0, [0, 0, 1]);
    }
}
