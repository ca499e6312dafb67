//! `text_transformer`: a small pre-norm Transformer encoder over a subword vocabulary
//! learned from the training split.

use burn::module::Module;
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear,
};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::config::Pooling;
use crate::data::text::special;
use crate::model::{ModelSpec, TextSpec, run_head};

/// A small pre-norm Transformer encoder over subword ids with learned positions, pooled
/// (mean over real tokens, or the CLS state), then a head.
#[derive(Module, Debug)]
pub struct TextTransformer {
    tokens: Embedding,
    positions: Embedding,
    encoder: TransformerEncoder,
    norm: LayerNorm,
    layers: Vec<Linear>,
    output: Linear,
    dropout: Dropout,
    cls_pooling: bool,
}

impl TextTransformer {
    /// Logits of padded ids `[batch, length]` (id 0 is padding).
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<2> {
        let [batch, length] = ids.dims();
        let device = ids.device();
        let pad = ids.clone().equal_elem(special::PAD as i64);
        let positions = Tensor::<1, Int>::arange(0..length as i64, &device)
            .reshape([1, length])
            .repeat_dim(0, batch);
        let x = self.tokens.forward(ids) + self.positions.forward(positions);
        let x = self.encoder.forward(
            TransformerEncoderInput::new(crate::model::dropout::apply(&self.dropout, x))
                .mask_pad(pad.clone()),
        );
        let x = self.norm.forward(x);
        let dim = x.dims()[2];
        let pooled = if self.cls_pooling {
            x.slice([0..batch, 0..1, 0..dim]).reshape([batch, dim])
        } else {
            let keep = pad.bool_not().float().unsqueeze_dim::<3>(2);
            let count = keep.clone().sum_dim(1).reshape([batch, 1]).clamp_min(1.0);
            (x * keep).sum_dim(1).reshape([batch, dim]) / count
        };
        run_head(&self.layers, &self.output, &self.dropout, pooled)
    }
}

/// A fresh Transformer of `spec`'s shape `t` on `device`.
pub(super) fn init(spec: &ModelSpec, t: &TextSpec, device: &Device) -> TextTransformer {
    let (layers, output) = spec.head(t.dim, device);
    TextTransformer {
        tokens: EmbeddingConfig::new(t.vocab, t.dim).init(device),
        positions: EmbeddingConfig::new(t.max_length.max(1), t.dim).init(device),
        encoder: TransformerEncoderConfig::new(t.dim, 4 * t.dim, t.heads, t.layers)
            .with_dropout(spec.dropout)
            .with_norm_first(true)
            .init(device),
        norm: LayerNormConfig::new(t.dim).init(device),
        layers,
        output,
        dropout: DropoutConfig::new(spec.dropout).init(),
        cls_pooling: t.pooling == Pooling::Cls,
    }
}

/// Padded ids `[rows, longest]` of token lists (ids already include CLS), `pad` filling
/// the rest ([`crate::model::ModelSpec::pad_id`]).
pub fn padded_ids(tokens: &[&[u32]], pad: u32, device: &Device) -> Tensor<2, Int> {
    let longest = tokens.iter().map(|t| t.len()).max().unwrap_or(1).max(1);
    let mut ids = vec![pad as i64; tokens.len() * longest];
    for (r, t) in tokens.iter().enumerate() {
        for (c, &id) in t.iter().enumerate() {
            ids[r * longest + c] = id as i64;
        }
    }
    Tensor::<2, Int>::from_data(TensorData::new(ids, [tokens.len(), longest]), device)
}
