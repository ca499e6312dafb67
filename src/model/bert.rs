//! `text_encoder`: a pretrained BERT-family encoder (BERT, MiniLM) read from a Hugging
//! Face model directory (`config.json`, `model.safetensors`), pooled ([CLS] through BERT's
//! pooler, or the mean of the real tokens) under a dropout and a linear classifier.
//!
//! The module's field names are the Hugging Face keys (`encoder.layer.N.attention...`), so
//! loading needs three renames only; like `transformers`' BERT it is post-norm, with exact
//! GELU, LayerNorm's epsilon from `config.json` and padded keys masked out.

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear,
    LinearConfig,
};
use burn::store::{
    BurnToPyTorchAdapter, KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore,
};
use burn::tensor::activation::{softmax, tanh};
use burn::tensor::{Bool, DType, Device, Int, Tensor, TensorData};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{PatronError, Result};
use crate::model::dropout;

/// The shape of a BERT encoder, as `config.json` gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertShape {
    /// Token vocabulary.
    pub vocab_size: usize,
    /// Width of every hidden state.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Positions the model knows.
    pub max_position_embeddings: usize,
    /// Token types (segments).
    pub type_vocab_size: usize,
    /// LayerNorm's epsilon.
    pub layer_norm_eps: f64,
    /// Dropout of hidden states, the default of `model.dropout`.
    pub hidden_dropout_prob: f64,
    /// Dropout of attention probabilities.
    pub attention_probs_dropout_prob: f64,
}

impl BertShape {
    /// The shape in `config.json` of a model directory; another architecture, another
    /// activation or a shape that does not add up is an error naming the file.
    pub fn read(dir: &Path) -> Result<BertShape> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            PatronError::data(
                &path,
                format!("cannot be read ({e}); a model directory needs it"),
            )
        })?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| PatronError::data(&path, format!("is not valid JSON: {e}")))?;
        let model_type = value["model_type"].as_str().unwrap_or("");
        if model_type != "bert" {
            return Err(PatronError::data(
                &path,
                format!(
                    "model_type is {model_type:?}; text_encoder reads BERT-family models (model_type \"bert\": BERT, MiniLM, bert-base-chinese)"
                ),
            ));
        }
        let act = value["hidden_act"].as_str().unwrap_or("gelu");
        if act != "gelu" {
            return Err(PatronError::data(
                &path,
                format!("hidden_act is {act:?}; only \"gelu\" is supported"),
            ));
        }
        if value["position_embedding_type"]
            .as_str()
            .is_some_and(|p| p != "absolute")
        {
            return Err(PatronError::data(
                &path,
                "position_embedding_type is not \"absolute\"; only absolute positions are supported",
            ));
        }
        let shape: BertShape = serde_json::from_value(value)
            .map_err(|e| PatronError::data(&path, format!("is not a BERT config: {e}")))?;
        if shape.num_attention_heads == 0
            || !shape.hidden_size.is_multiple_of(shape.num_attention_heads)
        {
            return Err(PatronError::data(
                &path,
                format!(
                    "hidden_size {} is not a multiple of num_attention_heads {}",
                    shape.hidden_size, shape.num_attention_heads
                ),
            ));
        }
        Ok(shape)
    }
}

/// Word, position and token-type embeddings, summed and normalized.
#[derive(Module, Debug)]
pub struct Embeddings {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    token_type_embeddings: Embedding,
    layer_norm: LayerNorm,
}

/// Query, key and value projections of one layer.
#[derive(Module, Debug)]
pub struct SelfAttention {
    query: Linear,
    key: Linear,
    value: Linear,
}

/// The projection after attention, added to its input and normalized.
#[derive(Module, Debug)]
pub struct AddNorm {
    dense: Linear,
    layer_norm: LayerNorm,
}

/// Attention of one layer.
#[derive(Module, Debug)]
pub struct Attention {
    self_attn: SelfAttention,
    output: AddNorm,
}

/// The feed-forward widening of one layer.
#[derive(Module, Debug)]
pub struct Intermediate {
    dense: Linear,
}

/// One post-norm encoder layer.
#[derive(Module, Debug)]
pub struct Layer {
    attention: Attention,
    intermediate: Intermediate,
    output: AddNorm,
}

/// The stack of layers.
#[derive(Module, Debug)]
pub struct Encoder {
    layer: Vec<Layer>,
}

/// BERT's pooler: the [CLS] state through a dense layer and tanh.
#[derive(Module, Debug)]
pub struct Pooler {
    dense: Linear,
}

/// Exact GELU, `x * (1 + erf(x / sqrt 2)) / 2`. On flex it runs as one host pass
/// ([`host_gelu`] when scoring, [`host_gelu_trained`] under autodiff); elsewhere (wgpu)
/// it is written out as tensor operations, so autodiff differentiates it exactly (Burn's
/// own `gelu` has the same forward, but its backward is the derivative of the tanh
/// approximation, where PyTorch's is exact).
fn gelu(x: Tensor<3>) -> Tensor<3> {
    let device = x.device();
    // Devices compare equal with or without autodiff.
    if x.dtype() == DType::F32 && device == Device::flex() {
        return if device.is_autodiff() {
            host_gelu_trained(x)
        } else {
            host_gelu(x)
        };
    }
    written_gelu(x)
}

/// GELU as tensor operations: `x * (1 + erf(x / sqrt 2)) / 2`.
fn written_gelu(x: Tensor<3>) -> Tensor<3> {
    x.clone()
        * x.div_scalar(std::f32::consts::SQRT_2)
            .erf()
            .add_scalar(1.0)
            .mul_scalar(0.5)
}

/// GELU in one pass over the tensor's own buffer on the compute pool, for scoring on flex:
/// the written-out form is five passes, and libm's scalar `erff` (with the `expf` it calls)
/// was a fifth of a MiniLM's scoring time.
fn host_gelu(x: Tensor<3>) -> Tensor<3> {
    let device = x.device();
    // `into_data` hands over the buffer when nothing else holds it (no copy).
    let mut data = x.into_data();
    let Ok(values) = data.as_mut_slice::<f32>() else {
        unreachable!("an f32 tensor reads as f32");
    };
    values.par_chunks_mut(1 << 14).for_each(|chunk| {
        for v in chunk {
            *v *= normal_cdf(*v);
        }
    });
    Tensor::from_data(data, &device)
}

/// GELU under autodiff on flex, with its exact derivative and one saved tensor: the host
/// computes the derivative `g = Phi(x) + x phi(x)` and the rest `r = gelu(x) - x g` in
/// one pass, and the graph records `x * g + r` with `g` and `r` constants, so the backward
/// pass is `grad * g`. The written-out form records five operations and keeps three
/// feed-forward activations per layer for its backward, with libm's scalar `erff` forward
/// and `expf` backward.
fn host_gelu_trained(x: Tensor<3>) -> Tensor<3> {
    let shape = x.shape();
    let data = x.clone().detach().into_data();
    let Ok(values) = data.as_slice::<f32>() else {
        unreachable!("an f32 tensor reads as f32");
    };
    let mut g = vec![0f32; values.len()];
    let mut r = vec![0f32; values.len()];
    const CHUNK: usize = 1 << 14;
    g.par_chunks_mut(CHUNK)
        .zip(r.par_chunks_mut(CHUNK))
        .zip(values.par_chunks(CHUNK))
        .for_each(|((g, r), x)| {
            for i in 0..x.len() {
                let v = x[i];
                let cdf = normal_cdf(v);
                let pdf = (-0.5 * v * v).exp() * FRAC_1_SQRT_2PI;
                g[i] = cdf + v * pdf;
                r[i] = v * cdf - v * g[i];
            }
        });
    // Tensors made from data on the autodiff device need no gradient: constants.
    let device = x.device();
    let constant =
        |values: Vec<f32>| Tensor::<3>::from_data(TensorData::new(values, shape.clone()), &device);
    x * constant(g) + constant(r)
}

/// The standard normal distribution function, `(1 + erf(x / sqrt 2)) / 2`: GELU is
/// `x` times it.
fn normal_cdf(x: f32) -> f32 {
    0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `1 / sqrt(2 pi)`, the standard normal density at 0.
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// erf as a rational function of `x` clamped to [-4, 4] (the f32 approximation of Eigen
/// and XLA): within 5e-7 of the exact value everywhere, branch-free, so the loop above
/// vectorizes.
fn erf(x: f32) -> f32 {
    const ALPHA: [f32; 7] = [
        -2.726_142_3e-10,
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_6e-3,
        -1.609_603_3e-2,
    ];
    const BETA: [f32; 5] = [
        -1.456_607_2e-5,
        -2.133_740_6e-4,
        -1.682_827e-3,
        -7.373_329_2e-3,
        -1.426_474e-2,
    ];
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = x * ALPHA[1..].iter().fold(ALPHA[0], |p, &a| p * x2 + a);
    let q = BETA[1..].iter().fold(BETA[0], |q, &b| q * x2 + b);
    p / q
}

/// Check that the weights in `dir` load into an encoder of `shape` (before a run directory
/// is made, so bad weights leave nothing behind); returns their SHA-256.
pub fn check_pretrained(dir: &Path, shape: &BertShape) -> Result<String> {
    Bert::init(shape, 1, 0.0, true, &Device::flex()).load_pretrained(dir)
}

/// A BERT encoder with a classifier.
#[derive(Module, Debug)]
pub struct Bert {
    embeddings: Embeddings,
    encoder: Encoder,
    pooler: Pooler,
    classifier: Linear,
    dropout: Dropout,
    attention_dropout: Dropout,
    heads: usize,
    cls_pooling: bool,
    /// The id that pads a batch (its tokenizer's `[PAD]`).
    pad_id: usize,
}

impl Bert {
    /// A freshly initialized encoder of `shape` with a classifier of `outputs` logits.
    pub fn init(
        shape: &BertShape,
        outputs: usize,
        dropout: f64,
        cls_pooling: bool,
        device: &Device,
    ) -> Bert {
        let h = shape.hidden_size;
        let norm = || {
            LayerNormConfig::new(h)
                .with_epsilon(shape.layer_norm_eps)
                .init(device)
        };
        let linear = |i: usize, o: usize| LinearConfig::new(i, o).init(device);
        let layer = || Layer {
            attention: Attention {
                self_attn: SelfAttention {
                    query: linear(h, h),
                    key: linear(h, h),
                    value: linear(h, h),
                },
                output: AddNorm {
                    dense: linear(h, h),
                    layer_norm: norm(),
                },
            },
            intermediate: Intermediate {
                dense: linear(h, shape.intermediate_size),
            },
            output: AddNorm {
                dense: linear(shape.intermediate_size, h),
                layer_norm: norm(),
            },
        };
        Bert {
            embeddings: Embeddings {
                word_embeddings: EmbeddingConfig::new(shape.vocab_size, h).init(device),
                position_embeddings: EmbeddingConfig::new(shape.max_position_embeddings, h)
                    .init(device),
                token_type_embeddings: EmbeddingConfig::new(shape.type_vocab_size.max(1), h)
                    .init(device),
                layer_norm: norm(),
            },
            encoder: Encoder {
                layer: (0..shape.num_hidden_layers).map(|_| layer()).collect(),
            },
            pooler: Pooler {
                dense: linear(h, h),
            },
            classifier: linear(h, outputs),
            dropout: DropoutConfig::new(dropout).init(),
            attention_dropout: DropoutConfig::new(shape.attention_probs_dropout_prob).init(),
            heads: shape.num_attention_heads,
            cls_pooling,
            pad_id: 0,
        }
    }

    /// The encoder with `pad_id` as the id that pads (0 unless set).
    pub fn with_pad_id(mut self, pad_id: u32) -> Bert {
        self.pad_id = pad_id as usize;
        self
    }

    /// The encoder with its embeddings and first `layers` layers kept out of training.
    pub fn freeze(mut self, layers: usize) -> Bert {
        self.embeddings = self.embeddings.no_grad();
        self.encoder.layer = self
            .encoder
            .layer
            .into_iter()
            .enumerate()
            .map(|(i, layer)| if i < layers { layer.no_grad() } else { layer })
            .collect();
        self
    }

    /// The encoder's last hidden states `[batch, length, hidden]` of padded ids
    /// `[batch, length]`; `pad` marks the padding (true), which no token attends to.
    pub fn encode(&self, ids: Tensor<2, Int>, pad: Tensor<2, Bool>) -> Tensor<3> {
        let [batch, length] = ids.dims();
        let device = ids.device();
        let positions = Tensor::<1, Int>::arange(0..length as i64, &device)
            .reshape([1, length])
            .repeat_dim(0, batch);
        let types = Tensor::<2, Int>::zeros([batch, length], &device);
        let e = &self.embeddings;
        let x = e.word_embeddings.forward(ids)
            + e.position_embeddings.forward(positions)
            + e.token_type_embeddings.forward(types);
        let mut x = dropout::apply(&self.dropout, e.layer_norm.forward(x));
        // [batch, 1, 1, length]: every query of every head ignores the padded keys.
        let mask = pad.reshape([batch, 1, 1, length]);
        for layer in &self.encoder.layer {
            x = self.layer(layer, x, mask.clone());
        }
        x
    }

    fn layer(&self, layer: &Layer, x: Tensor<3>, mask: Tensor<4, Bool>) -> Tensor<3> {
        let [batch, length, hidden] = x.dims();
        let (heads, width) = (self.heads, hidden / self.heads);
        let split = |t: Tensor<3>| t.reshape([batch, length, heads, width]).swap_dims(1, 2);
        let a = &layer.attention.self_attn;
        let q = split(a.query.forward(x.clone()));
        let k = split(a.key.forward(x.clone()));
        let v = split(a.value.forward(x.clone()));
        let scores = q.matmul(k.swap_dims(2, 3)) / (width as f64).sqrt();
        let scores = scores.mask_fill(mask.expand([batch, heads, length, length]), f32::MIN);
        let probs = dropout::apply(&self.attention_dropout, softmax(scores, 3));
        let context = probs
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch, length, hidden]);
        let out = &layer.attention.output;
        let attended = out
            .layer_norm
            .forward(dropout::apply(&self.dropout, out.dense.forward(context)) + x);
        let widened = gelu(layer.intermediate.dense.forward(attended.clone()));
        let out = &layer.output;
        out.layer_norm
            .forward(dropout::apply(&self.dropout, out.dense.forward(widened)) + attended)
    }

    /// The pooled representation `[batch, hidden]` of hidden states: BERT's pooler over
    /// [CLS], or the mean of the real tokens' states.
    pub fn pool(&self, x: Tensor<3>, pad: Tensor<2, Bool>) -> Tensor<2> {
        let [batch, _, hidden] = x.dims();
        if self.cls_pooling {
            let cls = x.narrow(1, 0, 1).reshape([batch, hidden]);
            tanh(self.pooler.dense.forward(cls))
        } else {
            let keep = pad.bool_not().float().unsqueeze_dim::<3>(2);
            let count = keep.clone().sum_dim(1).reshape([batch, 1]).clamp_min(1.0);
            (x * keep).sum_dim(1).reshape([batch, hidden]) / count
        }
    }

    /// Logits `[batch, outputs]` of padded ids `[batch, length]`.
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<2> {
        let pad = ids.clone().equal_elem(self.pad_id as i64);
        let states = self.encode(ids, pad.clone());
        let pooled = self.pool(states, pad);
        self.classifier
            .forward(dropout::apply(&self.dropout, pooled))
    }

    /// Load the pretrained weights of `model.safetensors` in `dir` (f16 and bf16 cast to
    /// f32); the classifier (and a missing pooler) keep their fresh weights. Returns the
    /// file's SHA-256.
    pub fn load_pretrained(&mut self, dir: &Path) -> Result<String> {
        let path = dir.join("model.safetensors");
        let bytes = std::fs::read(&path).map_err(|e| {
            PatronError::data(
                &path,
                format!(
                    "cannot be read ({e}); a model directory needs its weights as model.safetensors"
                ),
            )
        })?;
        let sha256 = format!("{:x}", Sha256::digest(&bytes));
        let remap = KeyRemapper::from_patterns(vec![
            (r"^bert\.", ""),
            (r"\.LayerNorm\.", ".layer_norm."),
            (r"\.attention\.self\.", ".attention.self_attn."),
        ])
        .expect("valid patterns");
        let mut store = SafetensorsStore::from_bytes(Some(bytes))
            .with_from_adapter(PyTorchToBurnAdapter)
            .remap(remap)
            .allow_partial(true)
            .validate(true);
        let applied = self
            .load_from(&mut store)
            .map_err(|e| PatronError::data(&path, format!("does not fit config.json: {e}")))?;
        let missing: Vec<&String> = applied
            .missing
            .iter()
            .map(|(key, _)| key)
            .filter(|k| !k.starts_with("classifier.") && !k.starts_with("pooler."))
            .collect();
        if let Some(first) = missing.first() {
            return Err(PatronError::data(
                &path,
                format!(
                    "has no weights for {first} (and {} more); is it a BERT model of config.json's shape?",
                    missing.len() - 1
                ),
            ));
        }
        if let Some(error) = applied.errors.first() {
            return Err(PatronError::data(
                &path,
                format!("does not fit config.json: {error}"),
            ));
        }
        Ok(sha256)
    }

    /// The weights as a Hugging Face `BertForSequenceClassification` `model.safetensors`:
    /// PyTorch's names (`bert.` prefix, `LayerNorm`, `attention.self`) and layouts (linear
    /// weights `[out, in]`). A binary task's one logit `z` becomes the two logits `(0, z)`,
    /// whose softmax is sigmoid(z).
    pub fn to_hf_safetensors(&self, metadata: &[(&str, String)]) -> Result<Vec<u8>> {
        let mut bert = self.clone();
        let [hidden, outputs] = bert.classifier.weight.val().dims();
        if outputs == 1 {
            let weight = bert.classifier.weight.val();
            let zeros = weight.zeros_like();
            let bias = match &bert.classifier.bias {
                Some(b) => b.val(),
                None => Tensor::zeros([1], &weight.device()),
            };
            bert.classifier = Linear {
                weight: Param::from_tensor(Tensor::cat(vec![zeros, weight], 1)),
                bias: Some(Param::from_tensor(Tensor::cat(
                    vec![bias.zeros_like(), bias],
                    0,
                ))),
            };
            debug_assert_eq!(bert.classifier.weight.val().dims(), [hidden, 2]);
        }
        let remap = KeyRemapper::from_patterns(vec![
            (r"^(embeddings|encoder|pooler)\.", "bert.$1."),
            (r"\.layer_norm\.", ".LayerNorm."),
            (r"\.attention\.self_attn\.", ".attention.self."),
        ])
        .expect("valid patterns");
        let mut store = SafetensorsStore::from_bytes(None)
            .with_to_adapter(BurnToPyTorchAdapter)
            .remap(remap);
        for (key, value) in metadata {
            store = store.metadata(*key, value.clone());
        }
        let fail = |e: String| PatronError::Internal(format!("encoding safetensors: {e}"));
        bert.save_into(&mut store)
            .map_err(|e| fail(e.to_string()))?;
        store.get_bytes().map_err(|e| fail(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::hf_tokenizer::PretrainedTokenizer;
    use crate::model::padded_ids;

    /// The host GELUs agree with the written-out form (libm's erf) over the range
    /// activations take: scoring's values, and training's values and gradient.
    #[test]
    fn host_gelus_match_the_exact_form() {
        let xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.005).collect();
        let n = xs.len();
        let input =
            |device: &Device| Tensor::<1>::from_floats(xs.as_slice(), device).reshape([1, 1, n]);
        let values = |t: Tensor<3>| t.into_data().try_to_vec::<f32>().unwrap();
        let largest = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max)
        };
        let flex = Device::flex();
        let exact = values(written_gelu(input(&flex)));
        let scored = values(gelu(input(&flex)));
        assert!(largest(&scored, &exact) < 3e-6, "scoring");
        // Both in one graph, differentiated once.
        let autodiff = Device::flex().autodiff();
        let (a, b) = (
            input(&autodiff).require_grad(),
            input(&autodiff).require_grad(),
        );
        let (ya, yb) = (gelu(a.clone()), written_gelu(b.clone()));
        let grads = (ya.clone().sum() + yb.clone().sum()).backward();
        let (trained, written) = (values(ya), values(yb));
        let trained_grad = values(a.grad(&grads).unwrap());
        let written_grad = values(b.grad(&grads).unwrap());
        assert!(largest(&trained, &written) < 3e-6, "training values");
        assert!(
            largest(&trained_grad, &written_grad) < 3e-6,
            "training gradient"
        );
        // The exact derivative, not the tanh approximation's (-0.086099 at x = -2).
        let at = |x: f32| trained_grad[((x / 0.005) as i32 + 2000) as usize];
        assert!((at(-2.0) - -0.085_232).abs() < 1e-5, "{}", at(-2.0));
        assert_eq!(erf(0.0), 0.0);
        assert!((erf(1.0) - 0.842_700_8).abs() < 5e-7);
        assert!((erf(-2.5) + 0.999_593).abs() < 5e-7);
        assert_eq!(erf(9.0), erf(4.0));
    }

    /// The tiny random BERT of tests/fixtures (scripts/make_bert_fixture.py) gives the hidden
    /// states and pooled outputs of PyTorch + transformers within 1e-4.
    #[test]
    fn matches_transformers_on_the_tiny_fixture() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_bert");
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap();
        let device = Device::flex();
        let shape = BertShape::read(&dir).unwrap();
        let mut bert = Bert::init(&shape, 2, 0.0, true, &device);
        let sha = bert.load_pretrained(&dir).unwrap();
        assert_eq!(sha.len(), 64);
        let tokenizer = PretrainedTokenizer::from_dir(&dir, 24).unwrap();
        let batch: Vec<Vec<u32>> = expected["batch"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ids| {
                ids.as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_u64().unwrap() as u32)
                    .collect()
            })
            .collect();
        let texts = expected["texts"].as_array().unwrap();
        for (ids, text) in batch.iter().zip(texts) {
            assert_eq!(&tokenizer.encode(text.as_str().unwrap()), ids);
        }
        let refs: Vec<&[u32]> = batch.iter().map(Vec::as_slice).collect();
        let ids = padded_ids(&refs, 0, &device);
        let pad = ids.clone().equal_elem(0);
        let states = bert.encode(ids, pad.clone());
        let pooled = bert.pool(states.clone(), pad);
        let states: Vec<f32> = states.into_data().try_to_vec::<f32>().unwrap();
        let want: Vec<f32> = expected["last_hidden_state"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s.as_array().unwrap().iter())
            .flat_map(|r| r.as_array().unwrap().iter())
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(states.len(), want.len());
        let worst = states
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "hidden states differ by {worst}");
        let pooled: Vec<f32> = pooled.into_data().try_to_vec::<f32>().unwrap();
        let want: Vec<f32> = expected["pooler_output"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter())
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let worst = pooled
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "pooled outputs differ by {worst}");
    }

    /// Padding with the tokenizer's pad id is masked whatever the id: a batch padded with 7
    /// by an encoder told 7 pads scores as one padded with 0 by the default encoder.
    #[test]
    fn the_pad_id_masks_whatever_its_value() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_bert");
        let device = Device::flex();
        let shape = BertShape::read(&dir).unwrap();
        let mut bert = Bert::init(&shape, 2, 0.0, true, &device);
        bert.load_pretrained(&dir).unwrap();
        let docs: [&[u32]; 2] = [&[2, 11, 12, 3], &[2, 13, 3]];
        let logits = |bert: &Bert, pad: u32| -> Vec<f32> {
            let z = bert.forward(padded_ids(&docs, pad, &device));
            z.into_data().try_to_vec::<f32>().unwrap()
        };
        let zero = logits(&bert, 0);
        let seven = bert.clone().with_pad_id(7);
        assert_eq!(logits(&seven, 7), zero);
        // Told nothing, 7 is a token like any other and the short text changes.
        assert_ne!(logits(&bert, 7), zero);
    }

    #[test]
    fn other_architectures_and_bad_shapes_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        std::fs::write(&config, r#"{"model_type": "gpt2"}"#).unwrap();
        let e = BertShape::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains("gpt2"), "{e}");
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_bert");
        let mut shape = BertShape::read(&fixture).unwrap();
        // A config that says 3 layers where the weights have 2.
        shape.num_hidden_layers = 3;
        let mut bert = Bert::init(&shape, 2, 0.0, true, &Device::flex());
        let e = bert.load_pretrained(&fixture).unwrap_err().to_string();
        assert!(
            e.contains("model.safetensors") && e.contains("encoder.layer.2"),
            "{e}"
        );
        // A hidden size that does not match the weights.
        let mut shape = BertShape::read(&fixture).unwrap();
        shape.intermediate_size = 48;
        let mut bert = Bert::init(&shape, 2, 0.0, true, &Device::flex());
        let e = bert.load_pretrained(&fixture).unwrap_err().to_string();
        assert!(e.contains("model.safetensors"), "{e}");
    }
}
