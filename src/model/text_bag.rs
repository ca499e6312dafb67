//! `text_bag`: fastText-style bags of hashed word and character n-grams, summed on the
//! host from a table that gets sparse updates (`sparse`), then a linear or small MLP head.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::{Device, Distribution, Tensor};

use crate::data::text::{BagWeights, bag_row};
use crate::error::{PatronError, Result};
use crate::model::host_mlp::HostMlp;
use crate::model::sparse::{PREFETCH_AHEAD, prefetch_row};
use crate::model::{ModelSpec, TextSpec, run_head};

/// fastText-style classifier: the length-normalized sum of the hashed n-gram embeddings of
/// a text ([`bags`], weighted by `data::text::BagWeights`), then a linear (or small MLP)
/// head. The table is trained outside autodiff with sparse updates (see `sparse`); it is a
/// parameter so it is saved and loaded with the head.
#[derive(Module, Debug)]
pub struct TextBag {
    /// `[buckets, dim]` n-gram embeddings.
    pub table: Param<Tensor<2>>,
    layers: Vec<Linear>,
    output: Linear,
    dropout: Dropout,
}

impl TextBag {
    /// Logits of bags `[batch, dim]`.
    pub fn forward(&self, bags: Tensor<2>) -> Tensor<2> {
        run_head(&self.layers, &self.output, &self.dropout, bags)
    }

    /// A host copy of the embedding table, row-major `[buckets * dim]` (bags are summed
    /// on the host, in training and in scoring).
    pub fn host_table(&self) -> Result<Vec<f32>> {
        // A device can fail to hand back a large table (a software adapter's buffer
        // limits): an error to report, not a panic.
        let read = |e: String| PatronError::Internal(format!("reading the n-gram table: {e}"));
        self.table
            .val()
            .try_into_data()
            .map_err(|e| {
                read(
                    e.to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" "),
                )
            })?
            .try_to_vec::<f32>()
            .map_err(|e| read(format!("{e:?}")))
    }

    /// The head on the host, for scoring on the CPU ([`HostMlp`]).
    pub fn host_head(&self) -> Result<HostMlp> {
        HostMlp::new(&self.layers, &self.output)
    }

    /// Width of the table's rows.
    pub fn dim(&self) -> usize {
        self.table.val().dims()[1]
    }

    /// The same network with another embedding table.
    pub fn with_table(mut self, table: Tensor<2>) -> Self {
        self.table = Param::from_tensor(table);
        self
    }
}

/// A fresh `text_bag` of `spec`'s shape `t` on `device`.
pub(super) fn init(spec: &ModelSpec, t: &TextSpec, device: &Device) -> TextBag {
    // fastText's initialization of the input table.
    let bound = 1.0 / t.dim as f64;
    let table = Tensor::<2>::random(
        [t.vocab, t.dim],
        Distribution::Uniform(-bound, bound),
        device,
    );
    let (layers, output) = spec.head(t.dim, device);
    TextBag {
        table: Param::from_tensor(table),
        layers,
        output,
        dropout: DropoutConfig::new(spec.dropout).init(),
    }
}

/// The bag of each text `[rows * dim]`: the sum of its ids' rows times their shares
/// (`weights`), from a host copy of the table (an empty text gives zeros).
pub fn bags(table: &[f32], dim: usize, tokens: &[&[u32]], weights: BagWeights) -> Vec<f32> {
    let mut out = vec![0f32; tokens.len() * dim];
    bags_into(table, dim, tokens, weights, &mut out);
    out
}

/// [`bags`] written into `out` (`[tokens.len() * dim]`, overwritten).
pub fn bags_into(
    table: &[f32],
    dim: usize,
    tokens: &[&[u32]],
    weights: BagWeights,
    out: &mut [f32],
) {
    assert_eq!(out.len(), tokens.len() * dim, "one bag of {dim} per text");
    out.fill(0.0);
    for (r, ids) in tokens.iter().enumerate() {
        if ids.is_empty() {
            continue;
        }
        let acc = &mut out[r * dim..(r + 1) * dim];
        let shares = weights.shares(ids);
        for (j, &id) in ids.iter().enumerate() {
            if let Some(&ahead) = ids.get(j + PREFETCH_AHEAD) {
                prefetch_row(table, bag_row(ahead), dim);
            }
            let row = bag_row(id);
            let share = BagWeights::share_of(id, shares);
            for (a, &w) in acc.iter_mut().zip(&table[row * dim..(row + 1) * dim]) {
                *a += w * share;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bags_are_length_normalized_sums() {
        // Rows: 0 -> (1, 0), 1 -> (0, 2), 2 -> (4, 4).
        let table = [1.0, 0.0, 0.0, 2.0, 4.0, 4.0];
        let docs: [&[u32]; 3] = [&[0, 0, 2, 1], &[1], &[]];
        let b = bags(&table, 2, &docs, BagWeights::default());
        // (2 * row0 + row2 + row1) / sqrt(4) = (6, 6) / 2.
        assert_eq!(&b[0..2], &[3.0, 3.0]);
        assert_eq!(&b[2..4], &[0.0, 2.0]);
        assert_eq!(&b[4..6], &[0.0, 0.0]);
    }

    #[test]
    fn bags_weigh_tagged_character_ngrams_as_a_block() {
        use crate::data::text::CHAR_TAG;
        let table = [1.0, 0.0, 0.0, 2.0, 4.0, 4.0];
        let weights = BagWeights {
            char_weight: Some(0.5),
        };
        // One word (row 0) and four character n-grams (rows 2, 2, 1, 1): the word counts
        // 1/sqrt(1), each n-gram 0.5/sqrt(4).
        let doc: &[u32] = &[0, CHAR_TAG | 2, CHAR_TAG | 2, CHAR_TAG | 1, CHAR_TAG | 1];
        let b = bags(&table, 2, &[doc], weights);
        assert_eq!(b, vec![1.0 + 0.25 * 8.0, 0.25 * 12.0]);
    }
}
