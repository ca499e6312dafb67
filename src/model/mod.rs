//! The networks: the tabular MLP, the fastText-style `text_bag`, the small
//! `text_transformer` and the pretrained `text_encoder` (BERT), behind one [`Network`] type
//! the training loop and scoring share.
//!
//! One model type serves every backend; the `Device` it is built on decides where it runs.

pub mod bert;
pub mod dropout;
pub mod host_mlp;
pub mod sparse;
pub mod tabular;
pub mod text_bag;
pub mod transformer;

use std::path::Path;

use burn::module::Module;
use burn::nn::{Dropout, Linear, LinearConfig};
use burn::store::{ModuleRecord, ModuleSnapshot, SafetensorsStore};
use burn::tensor::activation::relu;
use burn::tensor::{Bytes, Device, Int, Tensor};
use serde::{Deserialize, Serialize};

pub use tabular::{TabularInputs, TabularMlp};
pub use text_bag::{TextBag, bags, bags_into};
pub use transformer::{TextTransformer, padded_ids};

use crate::config::{ModelConfig, ModelKind, NumericEmbedding, Pooling};
use crate::data::preprocess::{Preprocessor, Slot, Tokenizer};
use crate::data::text::{BagWeights, special};
use crate::error::{PatronError, Result};

/// Everything needed to rebuild the network before loading weights (saved in the manifest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Dense inputs (numeric values and missing indicators).
    pub numeric_width: usize,
    /// Categorical inputs.
    pub categorical_count: usize,
    /// Rows of the shared embedding table.
    pub embedding_rows: usize,
    /// Width of each categorical embedding.
    pub embedding_dim: usize,
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// Dropout probability.
    pub dropout: f64,
    /// Members of the tabular ensemble (1: a plain MLP; absent in older manifests).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub ensemble: usize,
    /// Logits out: 1 for two classes, otherwise one per class.
    #[serde(default = "one")]
    pub outputs: usize,
    /// The tabular MLP's learned embedding of numeric columns, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numeric_embedding: Option<NumericEmbeddingSpec>,
    /// The text network's shape (text models only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextSpec>,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

/// Shape of the tabular MLP's learned embedding of numeric columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NumericEmbeddingSpec {
    /// PLR: periodic features of each value through a per-column linear layer.
    Periodic {
        /// Where each numeric column's standardized value sits in the dense inputs.
        columns: Vec<usize>,
        /// Learned frequencies per column.
        frequencies: usize,
        /// Width of each column's embedding.
        dim: usize,
        /// Standard deviation of the initial frequencies.
        scale: f64,
    },
    /// Each column's encoded inputs through a per-column linear layer.
    PleLinear {
        /// First dense input of each numeric column.
        starts: Vec<usize>,
        /// Dense inputs of each numeric column (value, missing indicator, bins).
        lens: Vec<usize>,
        /// Width of each column's embedding.
        dim: usize,
    },
}

impl NumericEmbeddingSpec {
    /// Width of the embedding of all columns.
    pub fn width(&self) -> usize {
        match self {
            NumericEmbeddingSpec::Periodic { columns, dim, .. } => columns.len() * dim,
            NumericEmbeddingSpec::PleLinear { starts, dim, .. } => starts.len() * dim,
        }
    }
}

/// Learned frequencies of each column's periodic embedding.
const PERIODIC_FREQUENCIES: usize = 16;

/// Shape of a text network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextSpec {
    /// `text_bag` or `text_transformer`.
    pub kind: ModelKind,
    /// Rows of the token embedding table (hash buckets or vocabulary size).
    pub vocab: usize,
    /// Width of the token embeddings.
    pub dim: usize,
    /// Longest token sequence (positions of the Transformer).
    pub max_length: usize,
    /// Transformer layers.
    pub layers: usize,
    /// Transformer attention heads.
    pub heads: usize,
    /// Transformer pooling.
    pub pooling: Pooling,
    /// `text_encoder`: where it started from and what it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<Pretrained>,
    /// `text_encoder`: the embeddings and this many first layers are not trained.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub freeze_layers: usize,
    /// The id that pads a batch: a `text_encoder` tokenizer's `[PAD]`, else 0 (absent in
    /// older manifests, whose models all pad with 0).
    #[serde(default, skip_serializing_if = "is_zero_id")]
    pub pad_id: u32,
    /// `text_bag`: how a text's ids share its bag (its `BagFeatures`' weights; absent in
    /// older manifests, whose bags normalize all ids together).
    #[serde(default, skip_serializing_if = "is_joint")]
    pub bag: BagWeights,
}

fn is_zero_id(id: &u32) -> bool {
    *id == 0
}

fn is_joint(weights: &BagWeights) -> bool {
    *weights == BagWeights::default()
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The pretrained encoder a `text_encoder` run started from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pretrained {
    /// The model directory (`model.pretrained`), as given.
    pub dir: std::path::PathBuf,
    /// SHA-256 of its `model.safetensors`.
    pub sha256: String,
    /// The encoder's shape from its `config.json`.
    pub shape: bert::BertShape,
}

impl ModelSpec {
    /// The id that pads a batch of token ids.
    pub fn pad_id(&self) -> u32 {
        self.text.as_ref().map_or(special::PAD, |t| t.pad_id)
    }

    /// How a `text_bag` text's ids share its bag (the default for other kinds, which
    /// have no bags).
    pub fn bag_weights(&self) -> BagWeights {
        self.text
            .as_ref()
            .map_or_else(BagWeights::default, |t| t.bag)
    }

    /// A `text_encoder`'s number of encoder layers; `None` for other kinds.
    pub fn encoder_layers(&self) -> Option<usize> {
        let pretrained = self.text.as_ref()?.pretrained.as_ref()?;
        Some(pretrained.shape.num_hidden_layers)
    }

    /// The spec for a fitted preprocessing, a model config and the `outputs` (logits per
    /// row) the task needs; a `text_encoder` reads its model directory's shape and hashes
    /// its weights.
    pub fn new(pre: &Preprocessor, config: &ModelConfig, outputs: usize) -> Result<Self> {
        let pretrained = match (&config.pretrained, config.kind) {
            (Some(dir), ModelKind::TextEncoder) => {
                let shape = bert::BertShape::read(dir)?;
                if config.freeze_layers > shape.num_hidden_layers {
                    return Err(PatronError::config(
                        "model.freeze_layers",
                        format!(
                            "is {}, but the model has {} layers",
                            config.freeze_layers, shape.num_hidden_layers
                        ),
                    ));
                }
                Some(Pretrained {
                    dir: dir.clone(),
                    sha256: bert::check_pretrained(dir, &shape)?,
                    shape,
                })
            }
            _ => None,
        };
        let text = pre.text.as_ref().map(|t| TextSpec {
            kind: config.kind,
            vocab: match (&t.tokenizer, &pretrained) {
                (_, Some(p)) => p.shape.vocab_size,
                (Tokenizer::HashedNgrams(b), _) => b.buckets,
                (Tokenizer::Subwords(v), _) => v.size(),
                (Tokenizer::Pretrained(_), None) => 0,
            },
            dim: pretrained
                .as_ref()
                .map_or(config.embedding_dim, |p| p.shape.hidden_size),
            max_length: config.max_length,
            layers: pretrained
                .as_ref()
                .map_or(config.layers, |p| p.shape.num_hidden_layers),
            heads: pretrained
                .as_ref()
                .map_or(config.heads, |p| p.shape.num_attention_heads),
            pooling: config.pooling,
            pretrained,
            freeze_layers: config.freeze_layers,
            pad_id: match &t.tokenizer {
                Tokenizer::Pretrained(p) => p.pad_id(),
                _ => special::PAD,
            },
            bag: match &t.tokenizer {
                Tokenizer::HashedNgrams(b) => b.weights(),
                _ => BagWeights::default(),
            },
        });
        // Each numeric feature's dense inputs, its standardized value first.
        let (starts, lens): (Vec<usize>, Vec<usize>) = pre
            .slots()
            .into_iter()
            .filter_map(|slot| match slot {
                Slot::Numeric { start, len } => Some((start, len)),
                Slot::Categorical { .. } => None,
            })
            .unzip();
        let dim = config.numeric_embedding_dim;
        let numeric_embedding = match config.numeric_embedding {
            _ if text.is_some() || starts.is_empty() => None,
            NumericEmbedding::None => None,
            NumericEmbedding::Periodic => Some(NumericEmbeddingSpec::Periodic {
                columns: starts,
                frequencies: PERIODIC_FREQUENCIES,
                dim,
                scale: config.numeric_frequency_scale,
            }),
            NumericEmbedding::PleLinear => {
                Some(NumericEmbeddingSpec::PleLinear { starts, lens, dim })
            }
        };
        Ok(ModelSpec {
            numeric_width: pre.numeric_width(),
            categorical_count: pre.categorical_count(),
            embedding_rows: pre.embedding_rows(),
            embedding_dim: config.embedding_dim,
            hidden: config.hidden.clone(),
            dropout: config.dropout_for(pre.regression.is_some()),
            ensemble: if text.is_some() { 1 } else { config.ensemble },
            outputs,
            numeric_embedding,
            text,
        })
    }

    /// Width of the first layer's input.
    pub fn input_width(&self) -> usize {
        let embedded = self.numeric_embedding.as_ref().map_or(0, |e| e.width());
        self.numeric_width + embedded + self.categorical_count * self.embedding_dim
    }

    /// A freshly initialized network on `device` (seed the device first for
    /// reproducibility).
    pub fn init(&self, device: &Device) -> Network {
        match &self.text {
            None => Network::Tabular(tabular::init(self, device)),
            Some(t) if t.kind == ModelKind::TextTransformer => {
                Network::Transformer(transformer::init(self, t, device))
            }
            Some(TextSpec {
                pretrained: Some(p),
                pooling,
                pad_id,
                ..
            }) => Network::Encoder(
                bert::Bert::init(
                    &p.shape,
                    self.outputs,
                    self.dropout,
                    *pooling == Pooling::Cls,
                    device,
                )
                .with_pad_id(*pad_id),
            ),
            Some(t) => Network::Bag(text_bag::init(self, t, device)),
        }
    }

    /// A network to start training: [`ModelSpec::init`], with a `text_encoder`'s
    /// pretrained weights loaded (their hash must still be the one the spec recorded).
    pub fn init_pretrained(&self, device: &Device) -> Result<Network> {
        let mut network = self.init(device);
        if let (Network::Encoder(bert), Some(p)) = (
            &mut network,
            self.text.as_ref().and_then(|t| t.pretrained.as_ref()),
        ) {
            let sha256 = bert.load_pretrained(&p.dir)?;
            if sha256 != p.sha256 {
                return Err(PatronError::data(
                    p.dir.join("model.safetensors"),
                    "changed since this run started; start a new run",
                ));
            }
        }
        Ok(self.frozen(network))
    }

    /// `network` with the layers `model.freeze_layers` keeps out of training marked so
    /// (after any loading, which may reset the marks).
    fn frozen(&self, network: Network) -> Network {
        match (network, &self.text) {
            (Network::Encoder(bert), Some(t)) if t.freeze_layers > 0 => {
                Network::Encoder(bert.freeze(t.freeze_layers))
            }
            (network, _) => network,
        }
    }

    /// A network of this shape on `device` with the weights of burnpack `bytes` (read
    /// from `path`, which errors name).
    pub fn load(&self, device: &Device, bytes: Vec<u8>, path: &Path) -> Result<Network> {
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
            .map_err(|e| PatronError::checkpoint(path, format!("cannot decode weights: {e:?}")))?;
        let bad = |e: burn::store::RecordError| {
            PatronError::checkpoint(path, format!("weights do not fit the model: {e:?}"))
        };
        Ok(match self.init(device) {
            Network::Tabular(m) => Network::Tabular(m.try_load_record(record).map_err(bad)?),
            Network::Bag(m) => Network::Bag(m.try_load_record(record).map_err(bad)?),
            Network::Transformer(m) => {
                Network::Transformer(m.try_load_record(record).map_err(bad)?)
            }
            Network::Encoder(m) => {
                self.frozen(Network::Encoder(m.try_load_record(record).map_err(bad)?))
            }
        })
    }

    /// Hidden layers and output layer over an input of `width`.
    pub(crate) fn head(&self, mut width: usize, device: &Device) -> (Vec<Linear>, Linear) {
        let mut layers = Vec::new();
        for &h in &self.hidden {
            layers.push(LinearConfig::new(width, h).init(device));
            width = h;
        }
        (layers, LinearConfig::new(width, self.outputs).init(device))
    }
}

/// Any of patron's networks.
// One network lives per run and moves between steps by value; boxing a variant would not
// fit Burn's Module derive.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Network {
    /// The tabular MLP.
    Tabular(TabularMlp),
    /// The fastText-style bag of n-grams.
    Bag(TextBag),
    /// The Transformer encoder.
    Transformer(TextTransformer),
    /// The pretrained BERT encoder.
    Encoder(bert::Bert),
}

impl Network {
    /// The weights as burnpack bytes. The inner module is saved, so a tabular run's file is
    /// the same as before the text models existed.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        fn bytes<M: Module>(m: &M) -> Result<Vec<u8>> {
            let bytes = m
                .clone()
                .into_record()
                .into_bytes()
                .map_err(|e| PatronError::Internal(format!("serializing weights: {e:?}")))?;
            Ok(bytes.to_vec())
        }
        match self {
            Network::Tabular(m) => bytes(m),
            Network::Bag(m) => bytes(m),
            Network::Transformer(m) => bytes(m),
            Network::Encoder(m) => bytes(m),
        }
    }

    /// The weights as a safetensors file with `metadata`. The inner module is saved, so
    /// tensor names carry no enum variant prefix (`run::export` lists them).
    pub fn to_safetensors(&self, metadata: &[(&str, String)]) -> Result<Vec<u8>> {
        let mut store = SafetensorsStore::from_bytes(None);
        for (key, value) in metadata {
            store = store.metadata(*key, value.clone());
        }
        let saved = match self {
            Network::Tabular(m) => m.save_into(&mut store),
            Network::Bag(m) => m.save_into(&mut store),
            Network::Transformer(m) => m.save_into(&mut store),
            Network::Encoder(m) => m.save_into(&mut store),
        };
        saved.map_err(|e| PatronError::Internal(format!("encoding safetensors: {e}")))?;
        store
            .get_bytes()
            .map_err(|e| PatronError::Internal(format!("encoding safetensors: {e}")))
    }

    /// What the network reads.
    pub fn input_kind(&self) -> InputKind {
        match self {
            Network::Tabular(_) => InputKind::Tabular,
            Network::Bag(_) => InputKind::Bags,
            Network::Transformer(_) | Network::Encoder(_) => InputKind::Tokens,
        }
    }

    /// Training logits: each ensemble member's `[batch * members, outputs]` (rows
    /// `b * members + i`), and the number of members, whose losses are averaged.
    pub fn forward_members(&self, inputs: Inputs) -> (Tensor<2>, usize) {
        match (self, inputs) {
            (Network::Tabular(m), Inputs::Tabular(x)) if m.members() > 1 => {
                let z = m.forward_members(x);
                let [batch, members, outputs] = z.dims();
                (z.reshape([batch * members, outputs]), members)
            }
            (network, inputs) => (network.forward(inputs), 1),
        }
    }

    /// Logits `[batch, outputs]` (an ensemble's mean over its members).
    pub fn forward(&self, inputs: Inputs) -> Tensor<2> {
        match (self, inputs) {
            (Network::Tabular(m), Inputs::Tabular(x)) => m.forward(x),
            (Network::Bag(m), Inputs::Bags(x)) => m.forward(x),
            (Network::Transformer(m), Inputs::Tokens(x)) => m.forward(x),
            (Network::Encoder(m), Inputs::Tokens(x)) => m.forward(x),
            _ => unreachable!("inputs are built from the same spec as the network"),
        }
    }
}

/// Hidden layers with ReLU and dropout, then the output layer.
pub(crate) fn run_head(
    layers: &[Linear],
    output: &Linear,
    dropout: &Dropout,
    mut x: Tensor<2>,
) -> Tensor<2> {
    for layer in layers {
        x = crate::model::dropout::apply(dropout, relu(layer.forward(x)));
    }
    output.forward(x)
}

/// What a network reads, which decides how rows are batched for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// Numeric values and category indices ([`TabularInputs`]).
    Tabular,
    /// Bags of n-gram embeddings summed on the host ([`bags`]).
    Bags,
    /// Padded token ids ([`padded_ids`]).
    Tokens,
}

/// A batch of model inputs on a device.
// Tensor handles only: the size difference is a few pointers, not data.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Inputs {
    /// Tabular rows.
    Tabular(TabularInputs),
    /// Averaged n-gram embeddings `[batch, dim]` (`text_bag`).
    Bags(Tensor<2>),
    /// Padded subword ids `[batch, length]` (`text_transformer`).
    Tokens(Tensor<2, Int>),
}
