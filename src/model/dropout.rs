//! Dropout with its keep-mask drawn on the host by a small, fast generator.
//!
//! Burn's `Dropout` draws its Bernoulli mask element by element through a generic sampler
//! on a ChaCha generator: profiling the bank config's training on flex put 27 % of the
//! time there (`ElementRandom::random`, `Distribution::sampler`, `chacha20`). Here the mask
//! (0 or 1/keep, the rescaling folded in) comes from SplitMix64, four 16-bit lanes per draw, and
//! enters the graph as one constant multiply. The module keeps Burn's `Dropout` as its
//! field, so saved weights are unchanged; only its `prob` and training flag are read.

use std::sync::Mutex;

use burn::nn::Dropout;
use burn::tensor::{Tensor, TensorData};

/// The generator's state; reseeded by the training loop at each epoch so a resumed run
/// draws the same masks as an uninterrupted one.
static STATE: Mutex<u64> = Mutex::new(0x853C_49E6_748F_EA9B);

/// Restart the mask sequence from `seed`.
pub fn reseed(seed: u64) {
    *STATE.lock().unwrap_or_else(|e| e.into_inner()) = seed;
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` mask values: 1 / keep with probability `keep` (to 1/65536), else 0. Each 64-bit draw
/// gives four 16-bit lanes, filled without branches so the loop stays cheap.
fn mask(n: usize, keep: f64) -> Vec<f32> {
    let threshold = (keep * 65_536.0).round() as u64;
    let scale = (1.0 / keep) as f32;
    let mut out = vec![0f32; n.div_ceil(4) * 4];
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    for quad in out.chunks_exact_mut(4) {
        let r = splitmix64(&mut state);
        for (i, v) in quad.iter_mut().enumerate() {
            let lane = (r >> (16 * i)) & 0xFFFF;
            *v = scale * f32::from(u8::from(lane < threshold));
        }
    }
    out.truncate(n);
    out
}

/// Apply `dropout` to `x`: only while training (an autodiff device, the layer's training
/// flag set) and with a positive probability; otherwise `x` unchanged.
pub fn apply<const D: usize>(dropout: &Dropout, x: Tensor<D>) -> Tensor<D> {
    if dropout.prob <= 0.0 || !dropout.training.is_enabled() || !x.device().is_autodiff() {
        return x;
    }
    let shape = x.shape();
    let values = mask(shape.num_elements(), 1.0 - dropout.prob);
    let m = Tensor::<D>::from_data(TensorData::new(values, shape), &x.device());
    x * m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_the_expected_share_and_repeat_after_reseeding() {
        reseed(7);
        let a = mask(100_001, 0.7);
        assert_eq!(a.len(), 100_001);
        let kept = a.iter().filter(|&&v| v > 0.0).count() as f64 / a.len() as f64;
        assert!((kept - 0.7).abs() < 0.01, "{kept}");
        // Kept values are rescaled so the expectation is unchanged.
        assert!(a.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-6));
        reseed(7);
        assert_eq!(mask(100_001, 0.7), a);
    }
}
