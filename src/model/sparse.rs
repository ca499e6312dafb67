//! Sparse training of `text_bag`'s n-gram table: only the rows a batch touched get a
//! gradient and an optimizer update, as in fastText and PyTorch's sparse `EmbeddingBag`.
//!
//! Burn's `Embedding` backward builds a dense gradient over the whole table and AdamW then
//! updates every row on every step, which measured 50-190x slower than PyTorch for a
//! hashed table. Here the table lives on the host; a batch's bags enter the
//! autodiff graph as a leaf tensor, Burn trains the head, and the leaf's gradient is
//! scattered back into the touched rows with a lazy Adam (moments of untouched rows are
//! left alone, like `torch.optim.SparseAdam`).

use rayon::prelude::*;

use crate::data::text::{BagWeights, bag_row};
use crate::error::{PatronError, Result};

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPS: f32 = 1e-8;
/// `slot_of` of a row the current batch has not touched.
const NO_SLOT: u32 = u32::MAX;

/// The host copy of the table and its lazy Adam state.
#[derive(Debug, Clone)]
pub struct SparseTable {
    /// Row width.
    pub dim: usize,
    /// Row-major `[rows, dim]` weights.
    pub weights: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    step: u64,
    /// Scratch: row -> slot of the batch's gradient buffer (`NO_SLOT` when untouched);
    /// a direct index rather than a hash map, since every id of a batch looks it up.
    slot_of: Vec<u32>,
    /// Scratch: the rows the batch touched, in slot order.
    touched: Vec<u32>,
    grad: Vec<f32>,
}

impl SparseTable {
    /// A table with fresh optimizer state.
    pub fn new(weights: Vec<f32>, dim: usize) -> Self {
        let len = weights.len();
        SparseTable {
            dim,
            weights,
            m: vec![0.0; len],
            v: vec![0.0; len],
            step: 0,
            slot_of: Vec::new(),
            touched: Vec::new(),
            grad: Vec::new(),
        }
    }

    /// One lazy Adam step: `bag_grads` is the loss gradient `[texts * dim]` with respect to
    /// each text's bag; each id of a text receives its share in the bag (`weights`).
    pub fn step(&mut self, tokens: &[&[u32]], bag_grads: &[f32], weights: BagWeights, lr: f64) {
        let dim = self.dim;
        let rows = self.weights.len() / dim;
        if self.slot_of.len() != rows {
            self.slot_of = vec![NO_SLOT; rows];
        }
        self.touched.clear();
        self.grad.clear();
        for (r, ids) in tokens.iter().enumerate() {
            if ids.is_empty() {
                continue;
            }
            let g = &bag_grads[r * dim..(r + 1) * dim];
            let shares = weights.shares(ids);
            for &id in ids.iter() {
                let share = BagWeights::share_of(id, shares);
                let row = bag_row(id);
                let mut slot = self.slot_of[row] as usize;
                if slot == NO_SLOT as usize {
                    slot = self.touched.len();
                    self.slot_of[row] = slot as u32;
                    self.touched.push(row as u32);
                    self.grad.resize((slot + 1) * dim, 0.0);
                }
                let acc = &mut self.grad[slot * dim..(slot + 1) * dim];
                for (a, &x) in acc.iter_mut().zip(g) {
                    *a += x * share;
                }
            }
        }
        self.step += 1;
        let t = self.step as i32;
        let adam = Adam {
            c1: 1.0 - BETA1.powi(t),
            c2: 1.0 - BETA2.powi(t),
            lr: lr as f32,
        };
        // The rows' updates are independent and bound by memory latency (random rows of
        // three tables far larger than the caches), so they are split across the compute
        // pool: more threads keep more row loads in flight.
        // `weights` is public: the moments' lengths are checked, not assumed, since the
        // unsafe row access below relies on all three arrays being `[rows * dim]`.
        assert!(
            self.m.len() == rows * dim
                && self.v.len() == rows * dim
                && self.weights.len() == rows * dim,
            "weights and moments of one [rows, dim] shape"
        );
        let rows_of = RowsOf {
            weights: self.weights.as_mut_ptr(),
            m: self.m.as_mut_ptr(),
            v: self.v.as_mut_ptr(),
            rows,
            dim,
        };
        self.touched
            .par_chunks(UPDATE_CHUNK)
            .zip(self.grad.par_chunks(UPDATE_CHUNK * dim))
            .for_each(|(touched, grads)| {
                for (j, (&row, g)) in touched.iter().zip(grads.chunks_exact(dim)).enumerate() {
                    if let Some(&ahead) = touched.get(j + PREFETCH_AHEAD) {
                        rows_of.prefetch(ahead as usize);
                    }
                    // SAFETY: `touched` holds each row once (`slot_of` deduplicates), so no
                    // other task has this row, and `row` is below `rows` (an id of the table).
                    let (w, m, v) = unsafe { rows_of.row(row as usize) };
                    adam.update(w, m, v, g);
                }
            });
        for &row in &self.touched {
            self.slot_of[row as usize] = NO_SLOT;
        }
    }

    /// The optimizer state (step count and moments) for a resumable checkpoint: a copy,
    /// since the next step updates the moments in place while the checkpoint is written.
    pub fn state_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + 8 * self.m.len());
        out.extend_from_slice(b"PSPA");
        out.extend_from_slice(&(self.dim as u32).to_le_bytes());
        out.extend_from_slice(&self.step.to_le_bytes());
        out.extend(self.m.iter().chain(&self.v).flat_map(|x| x.to_le_bytes()));
        out
    }

    /// Restore the optimizer state saved by [`state_bytes`](Self::state_bytes).
    pub fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        let len = self.m.len();
        let damaged = || {
            PatronError::Internal(
                "sparse optimizer state does not fit the embedding table (damaged checkpoint)"
                    .into(),
            )
        };
        if bytes.len() != 16 + 8 * len || &bytes[..4] != b"PSPA" {
            return Err(damaged());
        }
        let dim = u32::from_le_bytes(bytes[4..8].try_into().map_err(|_| damaged())?);
        if dim as usize != self.dim {
            return Err(damaged());
        }
        self.step = u64::from_le_bytes(bytes[8..16].try_into().map_err(|_| damaged())?);
        let floats = bytes[16..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        for (i, x) in floats.enumerate() {
            if i < len {
                self.m[i] = x;
            } else {
                self.v[i - len] = x;
            }
        }
        Ok(())
    }
}

/// Touched rows per task of the parallel update (a batch of 32 texts touches 1,000-10,000).
const UPDATE_CHUNK: usize = 256;

/// Adam's bias corrections and rate for one step.
struct Adam {
    c1: f32,
    c2: f32,
    lr: f32,
}

impl Adam {
    /// Update one row and its moments with its gradient `g`.
    #[inline(always)]
    fn update(&self, w: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
        // Zipped row slices let the compiler drop the bounds checks and vectorize.
        for (((w, m), v), &g) in w.iter_mut().zip(m).zip(v).zip(g) {
            *m = BETA1 * *m + (1.0 - BETA1) * g;
            *v = BETA2 * *v + (1.0 - BETA2) * g * g;
            let m_hat = *m / self.c1;
            let v_hat = *v / self.c2;
            *w -= self.lr * m_hat / (v_hat.sqrt() + EPS);
        }
    }
}

/// The weights and moments of a `[rows, dim]` table, shared by the tasks of one update,
/// each of which owns a disjoint set of rows.
struct RowsOf {
    weights: *mut f32,
    m: *mut f32,
    v: *mut f32,
    rows: usize,
    dim: usize,
}

// SAFETY: the pointers are only dereferenced through `row`, whose callers guarantee that
// no two threads use the same row at once.
unsafe impl Sync for RowsOf {}

impl RowsOf {
    /// Row `row` of the weights and both moments.
    ///
    /// # Safety
    /// No other live reference may point into the same row.
    #[allow(clippy::mut_from_ref)] // disjoint rows, see above
    unsafe fn row(&self, row: usize) -> (&mut [f32], &mut [f32], &mut [f32]) {
        assert!(row < self.rows, "row {row} of a table of {}", self.rows);
        let at = row * self.dim;
        // SAFETY: `at + dim` is within each `[rows * dim]` array (checked above), and the
        // caller guarantees exclusive use of the row.
        unsafe {
            (
                std::slice::from_raw_parts_mut(self.weights.add(at), self.dim),
                std::slice::from_raw_parts_mut(self.m.add(at), self.dim),
                std::slice::from_raw_parts_mut(self.v.add(at), self.dim),
            )
        }
    }

    /// Start loading row `row` of all three arrays into cache.
    fn prefetch(&self, row: usize) {
        if row >= self.rows {
            return;
        }
        for array in [self.weights, self.m, self.v] {
            // No reference is made: other tasks hold rows of these arrays mutably.
            prefetch_span(array.wrapping_add(row * self.dim), self.dim);
        }
    }
}

/// How many rows ahead of its use a row is prefetched: enough to cover a memory access
/// while a row's work (tens of ns) runs.
pub(crate) const PREFETCH_AHEAD: usize = 6;

/// Ask the CPU to start loading row `row` of a `[rows, dim]` table into cache. Rows of a
/// hashed n-gram table are touched at random, so without this every row costs a full
/// memory latency (the fastText-shaped case was bound by it: 1.0M -> 1.3-1.7M ids/s).
#[inline(always)]
pub(crate) fn prefetch_row(table: &[f32], row: usize, dim: usize) {
    prefetch_span(table[row * dim..(row + 1) * dim].as_ptr(), dim);
}

/// Prefetch the `len` floats from `start`, one cache line (16 floats) at a time.
#[inline(always)]
fn prefetch_span(start: *const f32, len: usize) {
    #[cfg(target_arch = "x86_64")]
    for offset in (0..len).step_by(16) {
        // SAFETY: a prefetch is only a hint to the cache; it reads nothing and cannot fault,
        // and `wrapping_add` keeps the address computation itself defined.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                start.wrapping_add(offset).cast::<i8>(),
            )
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (start, len);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::text::CHAR_TAG;

    #[test]
    fn updates_only_touched_rows() {
        let mut t = SparseTable::new(vec![0.5; 4 * 2], 2);
        let docs: [&[u32]; 2] = [&[1, 1, 3], &[]];
        t.step(&docs, &[1.0, -1.0, 9.0, 9.0], BagWeights::default(), 0.1);
        // Untouched rows 0 and 2 keep their values.
        assert_eq!(&t.weights[0..2], &[0.5, 0.5]);
        assert_eq!(&t.weights[4..6], &[0.5, 0.5]);
        // Adam's first step moves each touched coordinate by lr against the gradient's sign.
        assert!((t.weights[2] - 0.4).abs() < 1e-5, "{:?}", t.weights);
        assert!((t.weights[3] - 0.6).abs() < 1e-5);
        assert!((t.weights[6] - 0.4).abs() < 1e-5);
    }

    #[test]
    fn parallel_update_of_many_rows_matches_a_plain_lazy_adam() {
        // Enough distinct rows for several tasks of the parallel update, ids repeated
        // within and across texts; a third of them tagged as character n-grams, whose
        // block weighs apart, and whose rows the untagged ids share.
        let (rows, dim) = (5_000usize, 4usize);
        let start: Vec<f32> = (0..rows * dim)
            .map(|i| (i % 97) as f32 / 97.0 - 0.5)
            .collect();
        let mut table = SparseTable::new(start.clone(), dim);
        let weights = BagWeights {
            char_weight: Some(0.5),
        };
        let texts: Vec<Vec<u32>> = (0..40u32)
            .map(|t| {
                (0..60u32)
                    .map(|j| {
                        let row = (t * 7_919 + j * 131 + j * j) % rows as u32;
                        if j % 3 == 0 { row | CHAR_TAG } else { row }
                    })
                    .collect()
            })
            .collect();
        let docs: Vec<&[u32]> = texts.iter().map(Vec::as_slice).collect();
        let grads: Vec<f32> = (0..docs.len() * dim)
            .map(|i| (i % 13) as f32 - 6.0)
            .collect();

        // The reference: accumulate each row's gradient in the same order, then Adam row
        // by row, one thread.
        let (mut w, mut m, mut v) = (start, vec![0f32; rows * dim], vec![0f32; rows * dim]);
        for step in 1..=2 {
            let mut acc = std::collections::BTreeMap::<u32, Vec<f32>>::new();
            for (r, ids) in docs.iter().enumerate() {
                let (word, char) = weights.shares(ids);
                assert!(word != char);
                for &id in ids.iter() {
                    let share = if id & CHAR_TAG == 0 { word } else { char };
                    let a = acc
                        .entry(bag_row(id) as u32)
                        .or_insert_with(|| vec![0.0; dim]);
                    for (a, &g) in a.iter_mut().zip(&grads[r * dim..(r + 1) * dim]) {
                        *a += g * share;
                    }
                }
            }
            let (c1, c2) = (1.0 - BETA1.powi(step), 1.0 - BETA2.powi(step));
            for (&row, g) in &acc {
                for (k, &g) in g.iter().enumerate() {
                    let i = row as usize * dim + k;
                    m[i] = BETA1 * m[i] + (1.0 - BETA1) * g;
                    v[i] = BETA2 * v[i] + (1.0 - BETA2) * g * g;
                    w[i] -= 0.01 * (m[i] / c1) / ((v[i] / c2).sqrt() + EPS);
                }
            }
            table.step(&docs, &grads, weights, 0.01);
            assert!(acc.len() > 4 * UPDATE_CHUNK, "{} rows touched", acc.len());
        }
        assert_eq!(table.weights, w);
        assert_eq!((table.m, table.v), (m, v));
    }

    #[test]
    fn state_round_trips() {
        let mut t = SparseTable::new(vec![0.0; 6], 3);
        t.step(&[&[0, 1]], &[1.0, 2.0, 3.0], BagWeights::default(), 0.01);
        let bytes = t.state_bytes();
        let mut u = SparseTable::new(t.weights.clone(), 3);
        u.load_state(&bytes).unwrap();
        t.step(&[&[1]], &[1.0, 1.0, 1.0], BagWeights::default(), 0.01);
        u.step(&[&[1]], &[1.0, 1.0, 1.0], BagWeights::default(), 0.01);
        assert_eq!(t.weights, u.weights);
        assert!(u.load_state(&bytes[..10]).is_err());
    }
}
