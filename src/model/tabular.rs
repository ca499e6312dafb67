//! `tabular_mlp`: standardized numeric inputs and category embeddings through an MLP.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

use crate::data::preprocess::Encoded;
use crate::error::{PatronError, Result};
use crate::model::host_mlp::HostMlp;
use crate::model::{ModelSpec, NumericEmbeddingSpec, run_head};

/// MLP with ReLU and dropout after each hidden layer, one logit out.
///
/// With `model.ensemble = k > 1` it is a TabM-mini ensemble (Gorishniy et al., ICLR 2025):
/// member i scales the input by its own vector `r_i` (random signs at initialization),
/// the hidden layers are shared, and each member has its own output layer; the members
/// are trained together (their losses averaged) and their logits averaged at scoring.
#[derive(Module, Debug)]
pub struct TabularMlp {
    embedding: Option<Embedding>,
    periodic: Option<Periodic>,
    ple: Option<PleLinear>,
    layers: Vec<Linear>,
    output: Linear,
    dropout: Dropout,
    /// Ensemble members' input scalings `[k, input width]`.
    adapters: Option<Param<Tensor<2>>>,
    /// Ensemble members' output weights `[k, last width, outputs]`.
    heads: Option<Param<Tensor<3>>>,
    /// Ensemble members' output biases `[k, 1, outputs]`.
    head_bias: Option<Param<Tensor<3>>>,
}

/// Periodic embeddings of numeric values (PLR: Gorishniy et al., "On Embeddings for
/// Numerical Features in Tabular Deep Learning", NeurIPS 2022): each column's standardized
/// value `x` becomes `[cos(2 pi c x), sin(2 pi c x)]` over its learned frequencies `c`,
/// then its own linear layer and ReLU. An MLP fed raw values fits smooth functions of
/// them; these let it fit sharp and periodic ones, where gradient-boosted trees win.
#[derive(Module, Debug)]
pub struct Periodic {
    /// Where each embedded value sits in the dense inputs.
    columns: Vec<usize>,
    /// `[columns, frequencies]`.
    frequencies: Param<Tensor<2>>,
    /// `[columns, 2 * frequencies, dim]`: each column's own linear layer.
    weight: Param<Tensor<3>>,
    /// `[columns, 1, dim]`.
    bias: Param<Tensor<3>>,
}

impl Periodic {
    fn init(columns: &[usize], k: usize, d: usize, scale: f64, device: &Device) -> Periodic {
        let n = columns.len();
        let bound = 1.0 / ((2 * k) as f64).sqrt();
        let uniform = Distribution::Uniform(-bound, bound);
        Periodic {
            columns: columns.to_vec(),
            frequencies: Param::from_tensor(Tensor::random(
                [n, k],
                Distribution::Normal(0.0, scale),
                device,
            )),
            weight: Param::from_tensor(Tensor::random([n, 2 * k, d], uniform, device)),
            bias: Param::from_tensor(Tensor::random([n, 1, d], uniform, device)),
        }
    }

    /// `[batch, columns * dim]` of the dense inputs `[batch, width]`.
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [batch, _] = x.dims();
        let n = self.columns.len();
        let index: Vec<i64> = self.columns.iter().map(|&c| c as i64).collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(index, [n]), &x.device());
        // [batch, n, k]
        let angles = x.select(1, index).unsqueeze_dim::<3>(2)
            * self.frequencies.val().unsqueeze_dim(0)
            * (2.0 * std::f64::consts::PI);
        let features = Tensor::cat(vec![angles.clone().cos(), angles.sin()], 2);
        // [n, batch, 2k] x [n, 2k, d]: each column through its own layer.
        let h = relu(features.swap_dims(0, 1).matmul(self.weight.val()) + self.bias.val());
        let d = h.dims()[2];
        h.swap_dims(0, 1).reshape([batch, n * d])
    }
}

/// Each numeric column's encoded inputs (value, missing indicator, piecewise-linear bins)
/// through its own linear layer and ReLU: a learned projection of the piecewise-linear
/// encoding (PLE-linear in Gorishniy et al. 2022).
#[derive(Module, Debug)]
pub struct PleLinear {
    /// First dense input of each column.
    starts: Vec<usize>,
    /// Each column's layer, `[its inputs, dim]`.
    layers: Vec<Linear>,
}

impl PleLinear {
    fn init(starts: &[usize], lens: &[usize], dim: usize, device: &Device) -> PleLinear {
        PleLinear {
            starts: starts.to_vec(),
            layers: lens
                .iter()
                .map(|&len| LinearConfig::new(len, dim).init(device))
                .collect(),
        }
    }

    /// `[batch, columns * dim]` of the dense inputs `[batch, width]`.
    fn forward(&self, x: &Tensor<2>) -> Tensor<2> {
        let parts = self
            .starts
            .iter()
            .zip(&self.layers)
            .map(|(&start, layer)| {
                let len = layer.weight.val().dims()[0];
                relu(layer.forward(x.clone().narrow(1, start, len)))
            })
            .collect();
        Tensor::cat(parts, 1)
    }
}

/// A fresh tabular MLP of `spec`'s shape on `device`.
pub(super) fn init(spec: &ModelSpec, device: &Device) -> TabularMlp {
    let embedding = (spec.categorical_count > 0)
        .then(|| EmbeddingConfig::new(spec.embedding_rows, spec.embedding_dim).init(device));
    let (layers, output) = spec.head(spec.input_width(), device);
    let (mut adapters, mut heads, mut head_bias) = (None, None, None);
    let k = spec.ensemble;
    if k > 1 {
        let width = spec.input_width();
        let signs = Tensor::<2>::random([k, width], Distribution::Bernoulli(0.5), device);
        adapters = Some(Param::from_tensor(signs.mul_scalar(2.0).sub_scalar(1.0)));
        // Each member's output layer starts as the shared one's initialization would.
        let last = spec.hidden.last().copied().unwrap_or(width);
        let bound = 1.0 / (last as f64).sqrt();
        let uniform = Distribution::Uniform(-bound, bound);
        heads = Some(Param::from_tensor(Tensor::<3>::random(
            [k, last, spec.outputs],
            uniform,
            device,
        )));
        head_bias = Some(Param::from_tensor(Tensor::<3>::random(
            [k, 1, spec.outputs],
            uniform,
            device,
        )));
    }
    TabularMlp {
        embedding,
        periodic: match &spec.numeric_embedding {
            Some(NumericEmbeddingSpec::Periodic {
                columns,
                frequencies,
                dim,
                scale,
            }) => Some(Periodic::init(columns, *frequencies, *dim, *scale, device)),
            _ => None,
        },
        ple: match &spec.numeric_embedding {
            Some(NumericEmbeddingSpec::PleLinear { starts, lens, dim }) => {
                Some(PleLinear::init(starts, lens, *dim, device))
            }
            _ => None,
        },
        layers,
        output,
        dropout: DropoutConfig::new(spec.dropout).init(),
        adapters,
        heads,
        head_bias,
    }
}

impl TabularMlp {
    /// Ensemble members (1: a plain MLP).
    pub fn members(&self) -> usize {
        self.adapters.as_ref().map_or(1, |a| a.val().dims()[0])
    }

    /// Logits `[batch, outputs]`: an ensemble's mean over its members.
    pub fn forward(&self, inputs: TabularInputs) -> Tensor<2> {
        if self.members() > 1 {
            let z = self.forward_members(inputs);
            let [batch, _, outputs] = z.dims();
            return z.mean_dim(1).reshape([batch, outputs]);
        }
        run_head(
            &self.layers,
            &self.output,
            &self.dropout,
            self.inputs(inputs),
        )
    }

    /// Each ensemble member's logits `[batch, members, outputs]`.
    pub fn forward_members(&self, inputs: TabularInputs) -> Tensor<3> {
        let x = self.inputs(inputs);
        let (Some(adapters), Some(heads), Some(bias)) =
            (&self.adapters, &self.heads, &self.head_bias)
        else {
            return run_head(&self.layers, &self.output, &self.dropout, x).unsqueeze_dim(1);
        };
        let k = adapters.val().dims()[0];
        // [batch, k, width]: each member sees the input scaled by its own vector.
        let mut h = x.unsqueeze_dim::<3>(1).repeat_dim(1, k) * adapters.val().unsqueeze_dim(0);
        for layer in &self.layers {
            h = crate::model::dropout::apply(&self.dropout, relu(layer.forward(h)));
        }
        // [k, batch, last] x [k, last, outputs]: each member's own output layer.
        let z = h.swap_dims(0, 1).matmul(heads.val()) + bias.val();
        z.swap_dims(0, 1)
    }

    /// The network's input: numeric values, then each category's embedding.
    fn inputs(&self, inputs: TabularInputs) -> Tensor<2> {
        let mut parts = Vec::with_capacity(3);
        if let Some(x) = inputs.numeric {
            if let Some(periodic) = &self.periodic {
                parts.push(periodic.forward(x.clone()));
            }
            if let Some(ple) = &self.ple {
                parts.push(ple.forward(&x));
            }
            parts.push(x);
        }
        if let (Some(embedding), Some(index)) = (&self.embedding, inputs.categorical) {
            let [batch, count] = index.dims();
            let e = embedding.forward(index);
            let width = e.dims()[2];
            parts.push(e.reshape([batch, count * width]));
        }
        if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Tensor::cat(parts, 1)
        }
    }

    /// The head on the host and a host copy of the category embeddings (`[rows * dim]`,
    /// empty without categories), for scoring on the CPU ([`HostMlp`]); `None` for an
    /// ensemble or a numeric embedding, which score through Burn's forward.
    pub fn to_host(&self) -> Result<Option<(HostMlp, Vec<f32>)>> {
        if self.members() > 1 || self.periodic.is_some() || self.ple.is_some() {
            return Ok(None);
        }
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
        Ok(Some((HostMlp::new(&self.layers, &self.output)?, embedding)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelSpec;

    /// Both numeric embeddings widen the input by columns x dim, move the logits with a
    /// column's value, score through Burn, and come back equal from saved weights.
    #[test]
    fn numeric_embeddings_embed_each_column_and_round_trip() {
        let device = Device::flex();
        // Two numeric columns: one of 3 inputs (value, 2 bins), one of 2 (value, missing).
        let embeddings = [
            NumericEmbeddingSpec::Periodic {
                columns: vec![0, 3],
                frequencies: 4,
                dim: 5,
                scale: 0.5,
            },
            NumericEmbeddingSpec::PleLinear {
                starts: vec![0, 3],
                lens: vec![3, 2],
                dim: 5,
            },
        ];
        for embedding in embeddings {
            device.seed(7);
            let spec = ModelSpec {
                numeric_width: 5,
                categorical_count: 1,
                embedding_rows: 4,
                embedding_dim: 3,
                hidden: vec![8],
                dropout: 0.0,
                ensemble: 1,
                numeric_embedding: Some(embedding.clone()),
                outputs: 1,
                text: None,
            };
            assert_eq!(spec.input_width(), 5 + 2 * 5 + 3);
            let net = init(&spec, &device);
            assert!(net.to_host().unwrap().is_none(), "{embedding:?}");
            let rows: Vec<f32> = vec![0.5, 1.0, 0.0, -1.2, 0.0, 0.5, 1.0, 0.0, 0.8, 0.0];
            let encoded = Encoded {
                rows: 2,
                numeric_width: 5,
                categorical_count: 1,
                numeric: rows,
                categorical: vec![1, 1],
                tokens: Vec::new(),
            };
            let logits = |net: &TabularMlp| -> Vec<f32> {
                let inputs = TabularInputs::from_encoded(&encoded, &spec, &device);
                net.forward(inputs).into_data().try_to_vec::<f32>().unwrap()
            };
            let z = logits(&net);
            // The rows differ only in the second column's value.
            assert!((z[0] - z[1]).abs() > 1e-5, "{embedding:?}: {z:?}");
            let bytes = crate::model::Network::Tabular(net).to_bytes().unwrap();
            let loaded = spec
                .load(&device, bytes, std::path::Path::new("model.bpk"))
                .unwrap();
            let crate::model::Network::Tabular(loaded) = loaded else {
                panic!("a tabular network");
            };
            assert_eq!(logits(&loaded), z, "{embedding:?}");
        }
    }

    #[test]
    fn an_ensemble_scores_the_mean_of_its_members() {
        let device = Device::flex();
        device.seed(5);
        let spec = ModelSpec {
            numeric_width: 4,
            categorical_count: 2,
            embedding_rows: 10,
            embedding_dim: 3,
            hidden: vec![8, 6],
            dropout: 0.0,
            ensemble: 3,
            numeric_embedding: None,
            outputs: 2,
            text: None,
        };
        let net = init(&spec, &device);
        assert_eq!(net.members(), 3);
        assert!(
            net.to_host().unwrap().is_none(),
            "an ensemble scores through Burn"
        );
        let encoded = Encoded {
            rows: 5,
            numeric_width: 4,
            categorical_count: 2,
            numeric: (0..20).map(|i| (i as f32 - 10.0) / 7.0).collect(),
            categorical: vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 0],
            tokens: Vec::new(),
        };
        let inputs = TabularInputs::from_encoded(&encoded, &spec, &device);
        let members: Vec<f32> = net
            .forward_members(inputs.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let mean: Vec<f32> = net.forward(inputs).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!((members.len(), mean.len()), (5 * 3 * 2, 5 * 2));
        for row in 0..5 {
            for o in 0..2 {
                let m = (0..3).map(|i| members[(row * 3 + i) * 2 + o]).sum::<f32>() / 3.0;
                assert!((m - mean[row * 2 + o]).abs() < 1e-6);
            }
        }
        // The members differ: each has its own input scaling and output layer.
        assert!((members[0] - members[2]).abs() > 1e-4);
        let plain = ModelSpec {
            ensemble: 1,
            numeric_embedding: None,
            ..spec
        };
        assert_eq!(init(&plain, &device).members(), 1);
    }
}
