//! Per-row reasons (`patron predict --reasons K`): what in each row moved its prediction
//! most. An effect is how far the calibrated log-odds of the predicted class fall when one
//! thing is taken out and the row is scored again, the model otherwise unchanged (for a
//! regression, how far the prediction falls, in the target's units: signed, since a thing
//! can push the value up or down):
//! - tabular runs: one input column set to a typical value (its training median, or its
//!   most frequent category): the "what if this customer were ordinary here" occlusion
//!   behind the reason codes of credit and churn scores;
//! - text runs: one word (a CJK character, an emoji) removed wherever it occurs.
//!
//! Effects are not additive across reasons when the network combines them.

use std::borrow::Cow;
use std::collections::HashSet;

use rayon::prelude::*;

use crate::data::Table;
use crate::data::preprocess::{Encoded, Preprocessor, Slot, TextPreprocess, raw_texts};
use crate::data::text::{normalize, unit_spans};
use crate::error::Result;
use crate::score::{Scorer, tabular_inputs};
use crate::task::Task;
use crate::task::calibration::Calibration;

/// One reason: what was taken out (a column name, or a word) and its effect in log-odds
/// toward the predicted class; `None` is an empty place.
pub type Reason<'a> = Option<(Cow<'a, str>, f64)>;

/// Texts whose variants are scored at a time (bounds the memory of the variants).
const TEXT_ROWS_PER_PASS: usize = 512;

/// What the reasons of a run are measured against.
pub struct Reasons {
    count: usize,
    kind: Kind,
}

enum Kind {
    Tabular {
        /// One per input column (a cross is not one: it moves with its columns).
        probes: Vec<Probe>,
        /// The reference row's numeric inputs and category indices.
        numeric: Vec<f32>,
        categorical: Vec<i64>,
    },
    Text(TextPreprocess),
}

/// What a column set to its typical value changes: its own inputs, and the category input
/// of each cross that reads it ([`crate::data::preprocess::CrossOcclusion`]).
struct Probe {
    name: String,
    slot: Slot,
    /// (category input, embedding row each of the cross's rows moves to, from its first).
    crosses: Vec<(usize, Vec<i64>)>,
}

impl Probe {
    /// Where row `r`'s `index`-th category input moves (itself where this probe leaves it).
    fn moved(&self, encoded: &Encoded, r: usize, index: usize, to: &[i64]) -> i64 {
        let from = encoded.categorical[r * encoded.categorical_count + index];
        to.get((from - to[0]) as usize).copied().unwrap_or(from)
    }
}

/// What the reasons of a chunk's rows are measured on.
pub struct Outcome<'a> {
    /// The rows' logits, `[rows * outputs]`.
    pub logits: &'a [f64],
    /// Network outputs per row.
    pub outputs: usize,
    /// Each row's predicted class (empty for a regression).
    pub predicted: &'a [usize],
    /// How logits become calibrated log-odds (or predictions).
    pub calibration: &'a Calibration,
    /// The run's task, which says what an effect moves.
    pub task: &'a dyn Task,
}

impl Outcome<'_> {
    /// What row `r`'s reasons move (the log-odds of its predicted class, or its
    /// prediction), from the `i`-th row of logits `z`.
    fn odds(&self, z: &[f64], i: usize, r: usize) -> f64 {
        let k = self.outputs;
        let class = self.predicted.get(r).copied().unwrap_or(0);
        self.task
            .effect(self.calibration, &z[i * k..(i + 1) * k], class)
    }

    /// How far row `r`'s log-odds fall when it scores `z[i]` instead.
    fn fall(&self, z: &[f64], i: usize, r: usize) -> f64 {
        self.odds(self.logits, r, r) - self.odds(z, i, r)
    }
}

impl Reasons {
    /// Up to `count` reasons per row (for a tabular run, at most one per input column).
    pub fn new(pre: &Preprocessor, count: usize) -> Reasons {
        match &pre.text {
            Some(text) => Reasons {
                count,
                kind: Kind::Text(text.clone()),
            },
            None => {
                let (numeric, categorical) = pre.reference_row();
                let occlusions = pre.cross_occlusions();
                let probes: Vec<Probe> = pre
                    .features
                    .iter()
                    .zip(pre.slots())
                    .enumerate()
                    .filter(|(_, (f, _))| f.is_column())
                    .map(|(i, (f, slot))| Probe {
                        name: f.name().to_string(),
                        slot,
                        crosses: occlusions
                            .iter()
                            .filter(|o| o.column == i)
                            .map(|o| (o.input, o.to.clone()))
                            .collect(),
                    })
                    .collect();
                Reasons {
                    count: count.min(probes.len()),
                    kind: Kind::Tabular {
                        probes,
                        numeric,
                        categorical,
                    },
                }
            }
        }
    }

    /// Reasons given per row.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The strongest reasons of every row of `chunk` (`[rows * count]`, row-major, largest
    /// effect first, ties in column or text order), from the rows' `encoded` inputs and
    /// their `outcome`. Only a positive effect is a reason (one that does not push toward
    /// the prediction is no reason for it; for a regression any non-zero effect is, the
    /// largest by size first); a row with fewer leaves its last places empty.
    pub fn of<'a>(
        &'a self,
        scorer: &Scorer,
        chunk: &Table,
        encoded: &Encoded,
        outcome: &Outcome,
    ) -> Result<Vec<Reason<'a>>> {
        let mut out = Vec::with_capacity(encoded.rows * self.count);
        match &self.kind {
            Kind::Tabular {
                probes,
                numeric,
                categorical,
            } => {
                let reference = (numeric.as_slice(), categorical.as_slice());
                let effects = column_effects(scorer, encoded, probes, reference, outcome)?;
                for row in effects.chunks_exact(probes.len().max(1)) {
                    let named = probes
                        .iter()
                        .zip(row)
                        .map(|(p, &e)| (Cow::from(p.name.as_str()), e));
                    self.strongest(named, outcome.task.signed_effects(), &mut out);
                }
            }
            Kind::Text(text) => {
                for row in word_effects(scorer, chunk, text, outcome)? {
                    let row = row.into_iter().map(|(w, e)| (Cow::from(w), e));
                    self.strongest(row, outcome.task.signed_effects(), &mut out);
                }
            }
        }
        Ok(out)
    }

    /// Append the `count` largest positive effects of one row (`signed`: the largest by
    /// size, either sign), then empty places.
    fn strongest<'a>(
        &self,
        effects: impl Iterator<Item = (Cow<'a, str>, f64)>,
        signed: bool,
        out: &mut Vec<Reason<'a>>,
    ) {
        let keep = |e: f64| if signed { e != 0.0 } else { e > 0.0 };
        let size = |e: f64| if signed { e.abs() } else { e };
        let mut positive: Vec<(Cow<'a, str>, f64)> = effects.filter(|(_, e)| keep(*e)).collect();
        // Stable: equal effects keep their order.
        positive.sort_by(|a, b| size(b.1).total_cmp(&size(a.1)));
        positive.truncate(self.count);
        let empty = self.count - positive.len();
        out.extend(positive.into_iter().map(Some));
        out.extend(std::iter::repeat_n(None, empty));
    }
}

/// Each row's effect of each column (`[rows * columns]`). Rows already at the typical
/// value have no effect to measure (most rows, for a column dominated by one category):
/// only the others are scored again.
fn column_effects(
    scorer: &Scorer,
    encoded: &Encoded,
    probes: &[Probe],
    reference: (&[f32], &[i64]),
    outcome: &Outcome,
) -> Result<Vec<f64>> {
    let columns = probes.len();
    let mut effects = vec![0f64; encoded.rows * columns];
    // On the host, every row's first layer is computed once; a probe changes one column's
    // inputs, so it adds their weights times the change instead of redoing the product.
    let host = scorer.tabular_host().map(|(mlp, embedding, dim)| {
        let first = mlp.first_layer(encoded.rows, |range, buf| {
            tabular_inputs(encoded, embedding, dim, range, buf)
        });
        (mlp, embedding, dim, first)
    });
    for (c, probe) in probes.iter().enumerate() {
        let differ: Vec<usize> = (0..encoded.rows)
            .filter(|&r| !at_reference(encoded, r, probe, reference))
            .collect();
        if differ.is_empty() {
            continue;
        }
        let z = match &host {
            Some((mlp, embedding, dim, first)) => {
                let moved = |range: std::ops::Range<usize>, buf: &mut [f32]| {
                    let width = mlp.first_width();
                    for (&r, dst) in differ[range].iter().zip(buf.chunks_exact_mut(width)) {
                        dst.copy_from_slice(&first[r * width..(r + 1) * width]);
                        for (input, change) in
                            input_changes(encoded, r, probe, reference, embedding, *dim)
                        {
                            let weights = mlp.first_weights(input);
                            dst.iter_mut()
                                .zip(weights)
                                .for_each(|(d, w)| *d += change * w);
                        }
                    }
                };
                let z = mlp.logits_after_first(differ.len(), moved);
                z.into_iter().map(f64::from).collect()
            }
            None => {
                let mut moved = encoded.subset(&differ);
                set_reference(&mut moved, probe, reference);
                scorer.logits(&moved)?
            }
        };
        for (i, &r) in differ.iter().enumerate() {
            effects[r * columns + c] = outcome.fall(&z, i, r);
        }
    }
    Ok(effects)
}

/// The network inputs row `r` changes when `probe`'s column is set to the reference, and
/// by how much: (input position, new value - row value). A category's inputs are its
/// embedding, after the numeric block.
fn input_changes(
    encoded: &Encoded,
    r: usize,
    probe: &Probe,
    (numeric, categorical): (&[f32], &[i64]),
    embedding: &[f32],
    dim: usize,
) -> Vec<(usize, f32)> {
    let width = encoded.numeric_width;
    let row_category = |index: usize| encoded.categorical[r * encoded.categorical_count + index];
    let embedding_change = |index: usize, from: i64, to: i64| {
        (0..dim).map(move |k| {
            let (from, to) = (from as usize, to as usize);
            let change = embedding[to * dim + k] - embedding[from * dim + k];
            (width + index * dim + k, change)
        })
    };
    let mut changes: Vec<(usize, f32)> = match probe.slot {
        Slot::Numeric { start, len } => (start..start + len)
            .map(|i| (i, numeric[i] - encoded.numeric[r * width + i]))
            .collect(),
        Slot::Categorical { index } => {
            embedding_change(index, row_category(index), categorical[index]).collect()
        }
    };
    for (index, to) in &probe.crosses {
        let moved = probe.moved(encoded, r, *index, to);
        changes.extend(embedding_change(*index, row_category(*index), moved));
    }
    changes.into_iter().filter(|&(_, d)| d != 0.0).collect()
}

/// Whether row `r` already holds the inputs `probe` would set.
fn at_reference(
    encoded: &Encoded,
    r: usize,
    probe: &Probe,
    (numeric, categorical): (&[f32], &[i64]),
) -> bool {
    let crosses_stay = probe.crosses.iter().all(|(index, to)| {
        probe.moved(encoded, r, *index, to)
            == encoded.categorical[r * encoded.categorical_count + index]
    });
    crosses_stay
        && match probe.slot {
            Slot::Numeric { start, len } => {
                let at = r * encoded.numeric_width + start;
                encoded.numeric[at..at + len] == numeric[start..start + len]
            }
            Slot::Categorical { index } => {
                encoded.categorical[r * encoded.categorical_count + index] == categorical[index]
            }
        }
}

/// Set one column's inputs of every row to the reference's, and move the crosses that
/// read it.
fn set_reference(encoded: &mut Encoded, probe: &Probe, (numeric, categorical): (&[f32], &[i64])) {
    let (width, n_cat) = (encoded.numeric_width, encoded.categorical_count);
    for r in 0..encoded.rows {
        for (index, to) in &probe.crosses {
            encoded.categorical[r * n_cat + index] = probe.moved(encoded, r, *index, to);
        }
        match probe.slot {
            Slot::Numeric { start, len } => {
                let at = r * width + start;
                encoded.numeric[at..at + len].copy_from_slice(&numeric[start..start + len]);
            }
            Slot::Categorical { index } => {
                encoded.categorical[r * n_cat + index] = categorical[index];
            }
        }
    }
}

/// Each row's words with their effects, in text order. A word is a unit the model reads
/// (the first `max_units` of the normalized text) that holds a letter, a digit or a
/// non-ASCII symbol such as an emoji; it is removed wherever it occurs in that window.
fn word_effects(
    scorer: &Scorer,
    chunk: &Table,
    text: &TextPreprocess,
    outcome: &Outcome,
) -> Result<Vec<Vec<(String, f64)>>> {
    let rows: Vec<usize> = (0..chunk.height()).collect();
    let limit = text.tokenizer.max_units();
    let texts = raw_texts(chunk, &text.columns, &rows);
    let mut effects: Vec<Vec<(String, f64)>> = Vec::with_capacity(rows.len());
    // A few hundred rows at a time: their variants (one text per word) are built,
    // tokenized and scored together, in parallel, and then dropped.
    for (g, group) in texts.chunks(TEXT_ROWS_PER_PASS).enumerate() {
        let variants: Vec<Vec<(String, String)>> = group
            .par_iter()
            .map(|raw| without_each_word(&normalize(raw), limit))
            .collect();
        let tokens: Vec<Vec<u32>> = variants
            .par_iter()
            .flat_map_iter(|row| row.iter().map(|(_, t)| text.tokenizer.ids(t)))
            .collect();
        let z = scorer.logits(&Encoded {
            rows: tokens.len(),
            tokens,
            ..Encoded::default()
        })?;
        let mut i = 0;
        for (j, row) in variants.into_iter().enumerate() {
            let r = g * TEXT_ROWS_PER_PASS + j;
            let row_effects = row.into_iter().map(|(word, _)| {
                i += 1;
                (word, outcome.fall(&z, i - 1, r))
            });
            effects.push(row_effects.collect());
        }
    }
    Ok(effects)
}

/// Each distinct word among the first `limit` units of a normalized text, with the text
/// as the model would read it without that word (each occurrence blanked out, so its
/// neighbours do not become a new pair).
fn without_each_word(text: &str, limit: usize) -> Vec<(String, String)> {
    let spans = unit_spans(text);
    let window = &spans[..spans.len().min(limit)];
    let seen_end = window.last().map_or(0, |s| s.end);
    let read = &text[..seen_end];
    let mut done = HashSet::new();
    let mut out = Vec::new();
    for span in window {
        let word = &text[span.clone()];
        if !word.chars().any(|c| c.is_alphanumeric() || !c.is_ascii()) || !done.insert(word) {
            continue;
        }
        let mut without = String::with_capacity(read.len());
        let mut last = 0;
        for other in window.iter().filter(|s| &text[(*s).clone()] == word) {
            without.push_str(&read[last..other.start]);
            without.push(' ');
            last = other.end;
        }
        without.push_str(&read[last..]);
        out.push((word.to_string(), without));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_word_is_blanked_wherever_it_occurs_in_the_read_window() {
        let variants = without_each_word("good, very good 😀 不好 ok", 7);
        let words: Vec<&str> = variants.iter().map(|(w, _)| w.as_str()).collect();
        // "," is no word; "good" once; CJK characters one by one; "ok" is past 7 units.
        assert_eq!(words, ["good", "very", "😀", "不", "好"]);
        assert_eq!(variants[0].1, " , very   😀 不好");
        assert_eq!(variants[3].1, "good, very good 😀  好");
        assert!(without_each_word("", 8).is_empty());
        assert!(without_each_word("!!! ...", 8).is_empty());
    }
}
