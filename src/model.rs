//! The tabular model: an MLP over [numeric inputs ++ categorical embeddings].
//!
//! One model type serves every backend; the `Device` it is built on decides where it runs.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::preprocess::{Encoded, Preprocessor};

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
}

impl ModelSpec {
    /// The spec for a fitted preprocessing and a model config.
    pub fn new(pre: &Preprocessor, config: &ModelConfig) -> Self {
        ModelSpec {
            numeric_width: pre.numeric_width(),
            categorical_count: pre.categorical_count(),
            embedding_rows: pre.embedding_rows(),
            embedding_dim: config.embedding_dim,
            hidden: config.hidden.clone(),
            dropout: config.dropout,
        }
    }

    /// Width of the first layer's input.
    pub fn input_width(&self) -> usize {
        self.numeric_width + self.categorical_count * self.embedding_dim
    }

    /// A freshly initialized model on `device` (seed the device first for reproducibility).
    pub fn init(&self, device: &Device) -> TabularMlp {
        let embedding = (self.categorical_count > 0)
            .then(|| EmbeddingConfig::new(self.embedding_rows, self.embedding_dim).init(device));
        let mut layers = Vec::new();
        let mut width = self.input_width();
        for &h in &self.hidden {
            layers.push(LinearConfig::new(width, h).init(device));
            width = h;
        }
        TabularMlp {
            embedding,
            layers,
            output: LinearConfig::new(width, 1).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

/// MLP with ReLU and dropout after each hidden layer, one logit out.
#[derive(Module, Debug)]
pub struct TabularMlp {
    embedding: Option<Embedding>,
    layers: Vec<Linear>,
    output: Linear,
    dropout: Dropout,
}

/// A batch of model inputs on a device.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// `[batch, numeric_width]`, absent when there are no numeric inputs.
    pub numeric: Option<Tensor<2>>,
    /// `[batch, categorical_count]` embedding rows, absent when there are no categories.
    pub categorical: Option<Tensor<2, Int>>,
}

impl Inputs {
    /// Move encoded rows onto a device (once per dataset or chunk, not per batch).
    pub fn from_encoded(e: &Encoded, spec: &ModelSpec, device: &Device) -> Inputs {
        let numeric = (spec.numeric_width > 0).then(|| {
            Tensor::<2>::from_data(
                TensorData::new(e.numeric.clone(), [e.rows, spec.numeric_width]),
                device,
            )
        });
        let categorical = (spec.categorical_count > 0).then(|| {
            Tensor::<2, Int>::from_data(
                TensorData::new(e.categorical.clone(), [e.rows, spec.categorical_count]),
                device,
            )
        });
        Inputs {
            numeric,
            categorical,
        }
    }

    /// The rows at `index` (a 1-D Int tensor on the same device).
    pub fn select(&self, index: &Tensor<1, Int>) -> Inputs {
        Inputs {
            numeric: self
                .numeric
                .as_ref()
                .map(|t| t.clone().select(0, index.clone())),
            categorical: self
                .categorical
                .as_ref()
                .map(|t| t.clone().select(0, index.clone())),
        }
    }

    /// Rows `start..end`.
    pub fn slice(&self, start: usize, end: usize) -> Inputs {
        Inputs {
            numeric: self.numeric.as_ref().map(|t| t.clone().slice(start..end)),
            categorical: self
                .categorical
                .as_ref()
                .map(|t| t.clone().slice(start..end)),
        }
    }
}

impl TabularMlp {
    /// Logits `[batch, 1]`.
    pub fn forward(&self, inputs: Inputs) -> Tensor<2> {
        let mut parts = Vec::with_capacity(2);
        if let Some(x) = inputs.numeric {
            parts.push(x);
        }
        if let (Some(embedding), Some(index)) = (&self.embedding, inputs.categorical) {
            let [batch, count] = index.dims();
            let e = embedding.forward(index);
            let width = e.dims()[2];
            parts.push(e.reshape([batch, count * width]));
        }
        let mut x = if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Tensor::cat(parts, 1)
        };
        for layer in &self.layers {
            x = self.dropout.forward(relu(layer.forward(x)));
        }
        self.output.forward(x)
    }
}
