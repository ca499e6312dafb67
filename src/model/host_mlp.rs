//! A fused forward pass of the MLP heads on the host, for scoring on the flex CPU backend.
//!
//! Burn runs each layer over the whole batch as separate operations (a matmul into a freshly
//! zeroed output, the bias add, ReLU), each a pass over activations of megabytes that no
//! cache holds, and splits every matmul across the threads. Here each tile of rows goes
//! through every layer while its activations stay in the core's L2: the bias is the GEMM's
//! starting value, ReLU runs on the tile in place, and whole tiles run in parallel on the
//! compute pool. On the bench's 64-256-128-1 MLP at batch 4096 this measured 1.0-1.4M rows/s
//! through Burn's forward on flex against 1.75-2.0M here (BENCHMARKS.md).

use std::ops::Range;

use burn::nn::Linear;
use rayon::prelude::*;

use crate::error::{PatronError, Result};

/// Rows per tile: 256 rows of 256 units are 256 KiB of activations, inside a core's L2.
const TILE: usize = 256;

/// One dense layer: `weight` row-major `[inputs, outputs]`, as Burn's `Linear` stores it.
struct Dense {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

impl Dense {
    fn from_linear(linear: &Linear) -> Result<Dense> {
        let read = |data: burn::tensor::TensorData| {
            data.try_to_vec::<f32>()
                .map_err(|e| PatronError::Internal(format!("reading a layer's weights: {e:?}")))
        };
        let [inputs, outputs] = linear.weight.val().dims();
        let weight = read(linear.weight.val().into_data())?;
        let bias = match &linear.bias {
            Some(b) => read(b.val().into_data())?,
            None => vec![0.0; outputs],
        };
        Ok(Dense {
            weight,
            bias,
            inputs,
            outputs,
        })
    }

    /// `dst [m, outputs] = bias + lhs [m, inputs] x weight`, single-threaded (tiles are the
    /// unit of parallelism).
    fn apply(&self, lhs: &[f32], dst: &mut [f32]) {
        self.apply_prefix(lhs, self.inputs, dst);
    }

    /// `dst [m, outputs] = bias + lhs [m, k] x weight[..k]`: the layer with only its first
    /// `k` inputs given (the others count as zero).
    fn apply_prefix(&self, lhs: &[f32], k: usize, dst: &mut [f32]) {
        assert!(k <= self.inputs, "at most {} inputs", self.inputs);
        let m = dst.len() / self.outputs;
        assert_eq!(
            dst.len(),
            m * self.outputs,
            "output rows of {} values",
            self.outputs
        );
        assert_eq!(lhs.len(), m * k, "input rows of {k} values");
        assert_eq!(self.weight.len(), self.inputs * self.outputs);
        for row in dst.chunks_exact_mut(self.outputs) {
            row.copy_from_slice(&self.bias);
        }
        if m == 0 || k == 0 {
            return;
        }
        let n = self.outputs as isize;
        // SAFETY: the asserts above bound every element gemm reads or writes: dst is m x n
        // with row stride n, lhs m x k with row stride k, the first k rows of weight k x n
        // with row stride n, all with unit column stride, and the three slices do not
        // overlap (one is &mut).
        unsafe {
            gemm::gemm(
                m,
                self.outputs,
                k,
                dst.as_mut_ptr(),
                1,
                n,
                true,
                lhs.as_ptr(),
                1,
                k as isize,
                self.weight.as_ptr(),
                1,
                n,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

/// The first layer of a [`HostMlp`] over some of its inputs only, for rows whose other
/// inputs are mostly zero and cheaper added one by one (a number's exact-value flags).
pub struct FirstLayerPart {
    dense: Dense,
    keep: Vec<usize>,
}

impl FirstLayerPart {
    /// The inputs it reads, in the order [`FirstLayerPart::apply`] takes them.
    pub fn keep(&self) -> &[usize] {
        &self.keep
    }

    /// `dst [n, first_width] = bias + kept [n, keep.len()] x their weights`: rows of the
    /// kept inputs only, gathered by the caller (once for all members of an ensemble).
    pub fn apply(&self, kept: &[f32], dst: &mut [f32]) {
        self.dense.apply(kept, dst);
    }
}

/// Hidden layers (ReLU after each) and the output layer of a network, copied to the host.
pub struct HostMlp {
    layers: Vec<Dense>,
}

impl HostMlp {
    /// Host copies of `hidden` and `output` (weights are read once, wherever they live).
    pub fn new(hidden: &[Linear], output: &Linear) -> Result<HostMlp> {
        let layers = hidden
            .iter()
            .chain(std::iter::once(output))
            .map(Dense::from_linear)
            .collect::<Result<Vec<_>>>()?;
        Ok(HostMlp { layers })
    }

    /// Width of an input row.
    pub fn inputs(&self) -> usize {
        self.layers[0].inputs
    }

    /// Logits per row.
    pub fn outputs(&self) -> usize {
        self.layers.last().map_or(0, |l| l.outputs)
    }

    /// Logits `[rows * outputs]` of `rows` rows; `fill(range, buf)` writes the inputs of the
    /// rows in `range` into `buf` (`[range.len() * inputs]`, row-major). Tiles run in parallel
    /// on the current rayon pool.
    pub fn logits(&self, rows: usize, fill: impl Fn(Range<usize>, &mut [f32]) + Sync) -> Vec<f32> {
        self.tiles(rows, self.inputs(), fill, |n, input, a, b, dst| {
            self.layers[0].apply(
                &input[..n * self.inputs()],
                &mut a[..n * self.first_width()],
            );
            self.after_first(n, a, b, dst);
        })
    }

    /// Width of the first layer's output.
    pub fn first_width(&self) -> usize {
        self.layers[0].outputs
    }

    /// The first layer's weights of input `i`: what one unit of that input adds to each
    /// first-layer output.
    pub fn first_weights(&self, i: usize) -> &[f32] {
        let width = self.first_width();
        &self.layers[0].weight[i * width..(i + 1) * width]
    }

    /// The first layer's weights, `[inputs * first_width]`: input `i`'s are row `i`, as
    /// [`HostMlp::first_weights`] gives them.
    pub fn first_weight_rows(&self) -> &[f32] {
        &self.layers[0].weight
    }

    /// The first layer over the inputs `keep` only (the others count as zero).
    pub fn first_part(&self, keep: Vec<usize>) -> FirstLayerPart {
        let first = &self.layers[0];
        let mut weight = Vec::with_capacity(keep.len() * first.outputs);
        for &i in &keep {
            weight.extend_from_slice(self.first_weights(i));
        }
        FirstLayerPart {
            dense: Dense {
                weight,
                bias: first.bias.clone(),
                inputs: keep.len(),
                outputs: first.outputs,
            },
            keep,
        }
    }

    /// The first layer's outputs before activation of rows given only their first `k`
    /// inputs (`prefix`, `[n * k]`) into `dst` (`[n * first_width]`): the bias plus those
    /// inputs' share, to which the caller adds the rest's.
    pub fn first_of_prefix(&self, prefix: &[f32], k: usize, dst: &mut [f32]) {
        self.layers[0].apply_prefix(prefix, k, dst);
    }

    /// The first layer's outputs before their activation (`[rows * first_width]`), with
    /// rows filled as for [`HostMlp::logits`]. With them, a row whose inputs change in a
    /// few places needs only those inputs' weights, not the whole first product.
    pub fn first_layer(
        &self,
        rows: usize,
        fill: impl Fn(Range<usize>, &mut [f32]) + Sync,
    ) -> Vec<f32> {
        let inputs = self.inputs();
        let width = self.first_width();
        let mut out = vec![0f32; rows * width];
        out.par_chunks_mut(TILE * width).enumerate().for_each_init(
            || vec![0f32; TILE * inputs],
            |input, (tile, dst)| {
                let start = tile * TILE;
                let n = dst.len() / width;
                fill(start..start + n, &mut input[..n * inputs]);
                self.layers[0].apply(&input[..n * inputs], dst);
            },
        );
        out
    }

    /// Logits of rows given their first-layer outputs before activation: `fill(range, buf)`
    /// writes those of the rows in `range` (`[range.len() * first_width]`). The same as
    /// [`HostMlp::logits`] of the inputs they came from.
    pub fn logits_after_first(
        &self,
        rows: usize,
        fill: impl Fn(Range<usize>, &mut [f32]) + Sync,
    ) -> Vec<f32> {
        // The filled buffer is the first activations' own: no copy.
        self.tiles(rows, self.first_width(), fill, |n, first, a, _, dst| {
            self.after_first(n, first, a, dst);
        })
    }

    /// Run `rows` rows in tiles, in parallel: `fill` writes a tile's `width` values per row,
    /// then `run(n, filled, a, b, dst)` computes the logits of its `n` rows; the filled
    /// buffer and the two scratch buffers each have room for a tile of the widest layer.
    fn tiles(
        &self,
        rows: usize,
        width: usize,
        fill: impl Fn(Range<usize>, &mut [f32]) + Sync,
        run: impl Fn(usize, &mut [f32], &mut [f32], &mut [f32], &mut [f32]) + Sync,
    ) -> Vec<f32> {
        let outputs = self.outputs();
        let widest = self.layers.iter().map(|l| l.outputs).max().unwrap_or(0);
        let mut out = vec![0f32; rows * outputs];
        out.par_chunks_mut(TILE * outputs)
            .enumerate()
            .for_each_init(
                || {
                    (
                        vec![0f32; TILE * width.max(widest)],
                        vec![0f32; TILE * widest],
                        vec![0f32; TILE * widest],
                    )
                },
                |(filled, a, b), (tile, dst)| {
                    let start = tile * TILE;
                    let n = dst.len() / outputs;
                    fill(start..start + n, &mut filled[..n * width]);
                    run(n, filled, a, b, dst);
                },
            );
        out
    }

    /// `n` rows of a tile from their first layer's outputs (in `a`, before activation) to
    /// the logits: with no hidden layer they are the logits; otherwise ReLU, then the
    /// remaining layers, activations ping-ponging between `a` and `b`.
    fn after_first(&self, n: usize, a: &mut [f32], b: &mut [f32], dst: &mut [f32]) {
        let mut width = self.first_width();
        if self.layers.len() == 1 {
            dst.copy_from_slice(&a[..n * width]);
            return;
        }
        a[..n * width].iter_mut().for_each(|v| *v = v.max(0.0));
        let (mut current, mut next) = (a, b);
        let last = self.layers.len() - 1;
        for layer in &self.layers[1..last] {
            let h = &mut next[..n * layer.outputs];
            layer.apply(&current[..n * width], h);
            h.iter_mut().for_each(|v| *v = v.max(0.0));
            width = layer.outputs;
            std::mem::swap(&mut current, &mut next);
        }
        self.layers[last].apply(&current[..n * width], dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;
    use burn::tensor::{Device, Distribution, Tensor, TensorData};

    /// Burn's own forward, the reference: Linear, ReLU, ..., Linear.
    fn burn_forward(hidden: &[Linear], output: &Linear, x: Tensor<2>) -> Vec<f32> {
        let mut x = x;
        for layer in hidden {
            x = burn::tensor::activation::relu(layer.forward(x));
        }
        output.forward(x).into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn matches_burns_forward_across_tiles_and_a_partial_tile() {
        let device = Device::flex();
        device.seed(7);
        let dims = [13, 40, 24, 3];
        let hidden: Vec<Linear> = dims
            .windows(2)
            .take(2)
            .map(|d| LinearConfig::new(d[0], d[1]).init(&device))
            .collect();
        let output = LinearConfig::new(24, 3).init(&device);
        // Three full tiles and a partial one.
        let rows = 3 * TILE + 37;
        let x = Tensor::<2>::random([rows, 13], Distribution::Normal(0.0, 2.0), &device);
        let host_x = x.clone().into_data().try_to_vec::<f32>().unwrap();
        let expected = burn_forward(&hidden, &output, x);

        let mlp = HostMlp::new(&hidden, &output).unwrap();
        assert_eq!((mlp.inputs(), mlp.outputs()), (13, 3));
        let got = mlp.logits(rows, |range, buf| {
            buf.copy_from_slice(&host_x[range.start * 13..range.end * 13])
        });
        assert_eq!(got.len(), rows * 3);
        let worst = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "largest difference {worst}");
        // Not all zero or all equal: ReLU and the bias both matter here.
        assert!(got.iter().any(|&v| v > 0.1) && got.iter().any(|&v| v < -0.1));
    }

    #[test]
    fn the_forward_splits_after_the_first_layer() {
        let device = Device::flex();
        device.seed(11);
        // A narrow first layer before a wide one: the scratch buffers must hold the widest.
        let dims = [5, 3, 40, 2];
        let hidden: Vec<Linear> = dims
            .windows(2)
            .take(2)
            .map(|d| LinearConfig::new(d[0], d[1]).init(&device))
            .collect();
        let output = LinearConfig::new(40, 2).init(&device);
        let mlp = HostMlp::new(&hidden, &output).unwrap();
        let rows = TILE + 9;
        let x: Vec<f32> = (0..rows * 5)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 4.0)
            .collect();
        let fill = |range: Range<usize>, buf: &mut [f32]| {
            buf.copy_from_slice(&x[range.start * 5..range.end * 5])
        };
        let whole = mlp.logits(rows, fill);
        let first = mlp.first_layer(rows, fill);
        assert_eq!(first.len(), rows * 3);
        let split = mlp.logits_after_first(rows, |range, buf| {
            buf.copy_from_slice(&first[range.start * 3..range.end * 3])
        });
        assert_eq!(split, whole);
        // One more unit of input 2 moves the first layer by that input's weights.
        let bumped = mlp.first_layer(1, |_, buf| {
            buf.copy_from_slice(&x[..5]);
            buf[2] += 1.0;
        });
        for (j, w) in mlp.first_weights(2).iter().enumerate() {
            assert!((bumped[j] - first[j] - w).abs() < 1e-5);
        }
    }

    #[test]
    fn a_linear_model_without_hidden_layers() {
        let device = Device::flex();
        let mut output = LinearConfig::new(2, 1).init(&device);
        output.weight = burn::module::Param::from_tensor(Tensor::<2>::from_data(
            TensorData::new(vec![2.0f32, -1.0], [2, 1]),
            &device,
        ));
        output.bias = Some(burn::module::Param::from_tensor(Tensor::<1>::from_data(
            TensorData::new(vec![0.5f32], [1]),
            &device,
        )));
        let mlp = HostMlp::new(&[], &output).unwrap();
        let rows = [[1.0f32, 1.0], [3.0, -2.0], [0.0, 0.0]];
        let got = mlp.logits(3, |range, buf| {
            for (dst, r) in buf.chunks_exact_mut(2).zip(range) {
                dst.copy_from_slice(&rows[r]);
            }
        });
        assert_eq!(got, vec![1.5, 8.5, 0.5]);
    }
}
