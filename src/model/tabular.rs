//! `tabular_mlp`: standardized numeric inputs and category embeddings through an MLP.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, Linear};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::preprocess::Encoded;
use crate::error::{PatronError, Result};
use crate::model::host_mlp::HostMlp;
use crate::model::{ModelSpec, run_head};

/// MLP with ReLU and dropout after each hidden layer, one logit out.
#[derive(Module, Debug)]
pub struct TabularMlp {
    embedding: Option<Embedding>,
    layers: Vec<Linear>,
    output: Linear,
    dropout: Dropout,
}

/// A fresh tabular MLP of `spec`'s shape on `device`.
pub(super) fn init(spec: &ModelSpec, device: &Device) -> TabularMlp {
    let embedding = (spec.categorical_count > 0)
        .then(|| EmbeddingConfig::new(spec.embedding_rows, spec.embedding_dim).init(device));
    let (layers, output) = spec.head(spec.input_width(), device);
    TabularMlp {
        embedding,
        layers,
        output,
        dropout: DropoutConfig::new(spec.dropout).init(),
    }
}

impl TabularMlp {
    /// Logits `[batch, outputs]`.
    pub fn forward(&self, inputs: TabularInputs) -> Tensor<2> {
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
        let x = if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Tensor::cat(parts, 1)
        };
        run_head(&self.layers, &self.output, &self.dropout, x)
    }

    /// The head on the host and a host copy of the category embeddings (`[rows * dim]`,
    /// empty without categories), for scoring on the CPU ([`HostMlp`]).
    pub fn to_host(&self) -> Result<(HostMlp, Vec<f32>)> {
        let embedding = match &self.embedding {
            Some(e) => e
                .weight
                .val()
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| {
                    PatronError::Internal(format!("reading the category embeddings: {e:?}"))
                })?,
            None => Vec::new(),
        };
        Ok((HostMlp::new(&self.layers, &self.output)?, embedding))
    }
}

/// Tabular rows on a device.
#[derive(Debug, Clone)]
pub struct TabularInputs {
    /// `[batch, numeric_width]`, absent when there are no numeric inputs.
    pub numeric: Option<Tensor<2>>,
    /// `[batch, categorical_count]` embedding rows, absent when there are no categories.
    pub categorical: Option<Tensor<2, Int>>,
}

impl TabularInputs {
    /// Move encoded rows onto a device (once per dataset or chunk, not per batch).
    pub fn from_encoded(e: &Encoded, spec: &ModelSpec, device: &Device) -> TabularInputs {
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
        TabularInputs {
            numeric,
            categorical,
        }
    }

    /// The rows at `index` (a 1-D Int tensor on the same device).
    pub fn select(&self, index: &Tensor<1, Int>) -> TabularInputs {
        TabularInputs {
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
    pub fn slice(&self, start: usize, end: usize) -> TabularInputs {
        TabularInputs {
            numeric: self.numeric.as_ref().map(|t| t.clone().slice(start..end)),
            categorical: self
                .categorical
                .as_ref()
                .map(|t| t.clone().slice(start..end)),
        }
    }
}
