//! Parameter groups of a `text_encoder`: no weight decay on biases and LayerNorm (as the
//! PyTorch reference and Hugging Face's Trainer do), the head's own learning rate and
//! layer-wise learning-rate decay. Other kinds train every parameter alike.

use burn::module::ParamGroup;
use burn::optim::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};
use burn::optim::{AdamWConfig, ModuleOptimizer};

use super::fused_adamw::FusedAdamW;
use crate::config::TrainConfig;
use crate::model::ModelSpec;

/// Parameter paths as the optimizer sees them: the `Network` variant, then the fields.
const NO_DECAY: &str = r"^Encoder\..*(\.bias|\.layer_norm\.(gamma|beta))$";
const HEAD: &str = r"^Encoder\.(pooler|classifier)\.";
const EMBEDDINGS: &str = r"^Encoder\.embeddings\.";

fn group(pattern: &str) -> ParamGroup {
    ParamGroup::from_regex(pattern).expect("the group patterns are valid regexes")
}

/// AdamW with `train.weight_decay`. A `text_encoder` takes the fused AdamW of
/// [`FusedAdamW`] with PyTorch's epsilon (1e-8, where Burn's default is 1e-5), as the
/// reference fine-tune does, and its biases and LayerNorm weights decay not at all.
pub fn optimizer(cfg: &TrainConfig, spec: &ModelSpec) -> ModuleOptimizer {
    if spec.encoder_layers().is_none() {
        return AdamWConfig::new()
            .with_weight_decay(cfg.weight_decay as f32)
            .init();
    }
    let optim = ModuleOptimizer::from(FusedAdamW::new(1e-8, cfg.weight_decay as f32));
    if cfg.weight_decay > 0.0 {
        optim.with_group(group(NO_DECAY), FusedAdamW::new(1e-8, 0.0), None)
    } else {
        optim
    }
}

/// Each parameter group's learning rate as a multiple of the scheduled one.
pub struct LearningRates {
    /// Later groups take precedence (Burn's rule), so the head comes last.
    scales: Vec<(ParamGroup, f64)>,
}

impl LearningRates {
    /// The groups `train.head_learning_rate` and `train.layer_decay` make for `spec`.
    pub fn new(cfg: &TrainConfig, spec: &ModelSpec) -> LearningRates {
        let mut scales = Vec::new();
        if let Some(layers) = spec.encoder_layers() {
            if cfg.layer_decay < 1.0 {
                // Layer i of L trains at decay^(L-1-i); the embeddings at decay^L.
                scales.push((group(EMBEDDINGS), cfg.layer_decay.powi(layers as i32)));
                for i in 0..layers {
                    let pattern = format!(r"^Encoder\.encoder\.layer\.{i}\.");
                    let scale = cfg.layer_decay.powi((layers - 1 - i) as i32);
                    scales.push((group(&pattern), scale));
                }
            }
            if let Some(head) = cfg.head_learning_rate {
                scales.push((group(HEAD), head / cfg.learning_rate));
            }
        }
        LearningRates { scales }
    }

    /// The learning rate of every parameter when the schedule is at `lr`.
    pub fn at(&self, lr: f64) -> ModuleLearningRate {
        self.scales
            .iter()
            .fold(ModuleLrScheduler::new(lr), |s, (g, scale)| {
                s.with_group(g.clone(), lr * scale)
            })
            .step()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::Tensor;

    use crate::config::{ModelKind, Pooling};
    use crate::model::bert::BertShape;
    use crate::model::{Pretrained, TextSpec};

    /// Every trainable parameter's path, as the optimizer builds it.
    struct Paths {
        stack: Vec<String>,
        found: Vec<(String, burn::module::ParamId)>,
    }
    impl ModuleVisitor for Paths {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.stack.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.stack.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.found.push((self.stack.join("."), param.id));
        }
    }

    #[test]
    fn groups_split_an_encoder_by_layer_head_and_decay() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_bert");
        let shape = BertShape::read(&dir).unwrap();
        assert_eq!(shape.num_hidden_layers, 2);
        let spec = ModelSpec {
            numeric_width: 0,
            categorical_count: 0,
            embedding_rows: 0,
            embedding_dim: 0,
            hidden: Vec::new(),
            dropout: 0.0,
            ensemble: 1,
            numeric_embedding: None,
            outputs: 2,
            text: Some(TextSpec {
                kind: ModelKind::TextEncoder,
                vocab: shape.vocab_size,
                dim: shape.hidden_size,
                max_length: 16,
                layers: shape.num_hidden_layers,
                heads: shape.num_attention_heads,
                pooling: Pooling::Cls,
                pretrained: Some(Pretrained {
                    dir,
                    sha256: String::new(),
                    shape,
                }),
                freeze_layers: 0,
                pad_id: 0,
                bag: Default::default(),
            }),
        };
        let network = spec.init(&burn::tensor::Device::flex());
        let mut paths = Paths {
            stack: Vec::new(),
            found: Vec::new(),
        };
        network.visit(&mut paths);
        let count = |pattern: &str| {
            let g = group(pattern);
            paths
                .found
                .iter()
                .filter(|(p, id)| g.matches(id, Some(p)))
                .count()
        };
        // Per layer: 6 linear biases and 2 LayerNorms; the embeddings' LayerNorm; the
        // pooler's and the classifier's biases.
        assert_eq!(
            count(NO_DECAY),
            2 * (6 + 2 * 2) + 2 + 2,
            "{:?}",
            paths.found
        );
        assert_eq!(count(HEAD), 4);
        assert_eq!(count(EMBEDDINGS), 5);

        let cfg = TrainConfig {
            learning_rate: 1e-4,
            head_learning_rate: Some(1e-3),
            layer_decay: 0.5,
            ..TrainConfig::default()
        };
        let rates = LearningRates::new(&cfg, &spec).at(1e-4);
        let lr_of = |needle: &str| {
            let (p, id) = paths
                .found
                .iter()
                .find(|(p, _)| p.contains(needle))
                .unwrap();
            rates.lr_from_param(*id, Some(p))
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(lr_of("classifier.weight"), 1e-3));
        assert!(close(lr_of("pooler.dense.bias"), 1e-3));
        assert!(close(lr_of("layer.1.intermediate.dense.weight"), 1e-4));
        assert!(close(
            lr_of("layer.0.attention.self_attn.query.weight"),
            5e-5
        ));
        assert!(close(lr_of("word_embeddings.weight"), 2.5e-5));
        // Off by default: one rate for all.
        let plain = LearningRates::new(&TrainConfig::default(), &spec);
        assert!(plain.scales.is_empty());
    }
}
