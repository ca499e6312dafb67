//! Scoring with an exported run: batched logits, streaming `predict`, and `evaluate`.

pub mod drift;
pub mod explain;
pub mod importance;
pub mod predictions;
pub mod reasons;
pub mod session;
pub mod shard;

use std::path::Path;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use burn::tensor::{Device, Tensor, TensorData};

use crate::data::preprocess::{Encoded, InputRun, Preprocessor, missing_column, raw_texts};
use crate::data::{ChunkReader, Format, ReadOptions, SheetChoice, Table, segment_columns};
use crate::error::{PatronError, Result};
use crate::model::host_mlp::{FirstLayerPart, HostMlp};
use crate::model::{
    InputKind, Inputs, ModelSpec, Network, TabularInputs, bags, bags_into, padded_ids,
};
use crate::run::{files, parse_verified};
use crate::score::drift::{DriftCounter, DriftReport, Profile};
use crate::score::predictions::{Layout, PredictionWriter, ScoredChunk};
use crate::score::reasons::{Outcome, Reasons};
use crate::score::session::{Evaluation, Scored, Session};
use crate::task::Pool;

/// Rows `evaluate` reads at a time.
const EVALUATE_CHUNK_ROWS: usize = 65_536;

/// Rows per forward pass when scoring.
pub const SCORE_BATCH: usize = 4096;
/// Texts per forward pass of the Transformer (attention memory grows with the square of
/// the length).
const TRANSFORMER_BATCH: usize = 32;

/// A network ready to score on a device: `text_bag`'s table is copied to the host once,
/// since bags are summed there, and on the flex CPU backend the MLP heads run as the fused
/// host forward of [`HostMlp`]. A cross-validated run's scorer holds each fold model and
/// pools their logits by the task's rule ([`Pool`]).
///
/// It holds its own handles to the network's weights, so a scorer with its own table is
/// `Scorer<'static>`; training's borrows the host table it keeps updating.
pub struct Scorer<'a> {
    members: Vec<Member<'a>>,
    pool: Pool,
    spec: ModelSpec,
    device: Device,
}

/// One network of a scorer.
struct Member<'a> {
    network: Network,
    table: Option<std::borrow::Cow<'a, [f32]>>,
    host: Option<HostHead>,
}

/// What scoring runs on the host instead of through Burn.
enum HostHead {
    /// The tabular MLP with its category embeddings (`[rows * dim]`) and, once folded
    /// ([`Scorer::fold_categories`]), each embedding row's share of the first layer
    /// (`[rows * first_width]`).
    Tabular {
        mlp: HostMlp,
        embedding: Vec<f32>,
        folded: Option<Vec<f32>>,
        /// Once [`Scorer::fold_sparse`] ran: the first layer over the numeric inputs
        /// outside the runs, the runs, and the row of `folded` where their weights start
        /// (added where set as category shares are; [`run_shares`] numbers them).
        sparse: Option<(FirstLayerPart, Vec<InputRun>, i64)>,
    },
    /// The head of `text_bag` (the bags are summed on the host anyway).
    Bag(HostMlp),
}

impl Scorer<'static> {
    /// A scorer of a loaded network on `device` (no autodiff).
    pub fn new(network: &Network, spec: &ModelSpec, device: &Device) -> Result<Self> {
        Self::ensemble(std::slice::from_ref(network), spec, Pool::Mean, device)
    }

    /// A scorer of an ensemble's networks (one: a plain scorer) pooled by `pool`.
    pub fn ensemble(
        networks: &[Network],
        spec: &ModelSpec,
        pool: Pool,
        device: &Device,
    ) -> Result<Self> {
        let members = networks
            .iter()
            .map(|network| {
                let table = match network {
                    Network::Bag(bag) => Some(std::borrow::Cow::Owned(bag.host_table()?)),
                    _ => None,
                };
                Member::build(network, table, device)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Scorer {
            members,
            pool,
            spec: spec.clone(),
            device: device.clone(),
        })
    }
}

impl Scorer<'_> {
    /// Fold each tabular member's category embeddings into its first layer, given where
    /// each categorical column's rows of the embedding table start (`offsets`, as
    /// `Preprocessor::category_offsets` gives them): a category's share of the first
    /// layer is then one precomputed row added, not its embedding times the weights. On
    /// the bank model that is 144 of the first layer's 210 inputs (BENCHMARKS.md).
    pub fn fold_categories(mut self, offsets: &[i64]) -> Self {
        let (numeric, dim, rows) = (
            self.spec.numeric_width,
            self.spec.embedding_dim,
            self.spec.embedding_rows,
        );
        if offsets.len() != self.spec.categorical_count {
            return self;
        }
        for member in &mut self.members {
            let Some(HostHead::Tabular {
                mlp,
                embedding,
                folded,
                ..
            }) = &mut member.host
            else {
                continue;
            };
            let width = mlp.first_width();
            let mut shares = vec![0f32; rows * width];
            for (j, &start) in offsets.iter().enumerate() {
                let end = offsets.get(j + 1).map_or(rows, |&e| e as usize);
                for i in (start as usize)..end.min(rows) {
                    let share = &mut shares[i * width..(i + 1) * width];
                    for (d, &e) in embedding[i * dim..(i + 1) * dim].iter().enumerate() {
                        let weights = mlp.first_weights(numeric + j * dim + d);
                        share.iter_mut().zip(weights).for_each(|(s, w)| *s += e * w);
                    }
                }
            }
            *folded = Some(shares);
        }
        self
    }

    /// Leave the numeric inputs of `runs` (as `Preprocessor::sparse_inputs` gives them: bins
    /// and exact-value flags) out of each tabular member's first-layer product and add the
    /// weights of those set instead, in the same pass as its category shares (their weights
    /// join the folded table). A row's bins are mostly 1s and 0s: the leading 1s are one
    /// precomputed sum of their weights, the fraction one weighted row. On the bank config
    /// that leaves 6 of the 152 numeric inputs to the product. Needs
    /// [`Scorer::fold_categories`] first.
    pub fn fold_sparse(mut self, runs: &[InputRun]) -> Self {
        let numeric = self.spec.numeric_width;
        let span = |run: &InputRun| match run {
            InputRun::Bins(r) | InputRun::Flags(r) => r.clone(),
        };
        if runs.is_empty() || runs.iter().any(|run| span(run).end > numeric) {
            return self;
        }
        for member in &mut self.members {
            if let Some(HostHead::Tabular {
                mlp,
                folded: Some(folded),
                sparse,
                ..
            }) = &mut member.host
            {
                let width = mlp.first_width();
                let base = (folded.len() / width) as i64;
                for run in runs {
                    if let InputRun::Bins(r) = run {
                        // Row b - 1: the sum of the first b bins' weights (in f64, so the
                        // sum of 16 rows is as exact as the product's).
                        let mut sum = vec![0f64; width];
                        for i in r.clone() {
                            sum.iter_mut()
                                .zip(mlp.first_weights(i))
                                .for_each(|(s, &w)| *s += f64::from(w));
                            folded.extend(sum.iter().map(|&s| s as f32));
                        }
                    }
                    for i in span(run) {
                        folded.extend_from_slice(mlp.first_weights(i));
                    }
                }
                let keep = (0..numeric)
                    .filter(|i| !runs.iter().any(|run| span(run).contains(i)))
                    .collect();
                *sparse = Some((mlp.first_part(keep), runs.to_vec(), base));
            }
        }
        self
    }
}

impl<'a> Member<'a> {
    fn build(
        network: &Network,
        table: Option<std::borrow::Cow<'a, [f32]>>,
        device: &Device,
    ) -> Result<Self> {
        // Only flex: ndarray stays Burn's own forward end to end (the reference the host
        // forward is tested against), and wgpu keeps the work on the GPU.
        let host = if *device == Device::flex() {
            match network {
                Network::Tabular(m) => m.to_host()?.map(|(mlp, embedding)| HostHead::Tabular {
                    mlp,
                    embedding,
                    folded: None,
                    sparse: None,
                }),
                Network::Bag(m) => Some(HostHead::Bag(m.host_head()?)),
                Network::Transformer(_) | Network::Encoder(_) => None,
            }
        } else {
            None
        };
        Ok(Member {
            network: network.clone(),
            table,
            host,
        })
    }
}

impl<'a> Scorer<'a> {
    /// A scorer of a network whose bag table is already on the host (training).
    pub fn with_table(
        network: &Network,
        spec: &ModelSpec,
        table: Option<&'a [f32]>,
        device: &Device,
    ) -> Result<Self> {
        let table = table.map(std::borrow::Cow::Borrowed);
        Ok(Scorer {
            members: vec![Member::build(network, table, device)?],
            pool: Pool::Mean,
            spec: spec.clone(),
            device: device.clone(),
        })
    }

    /// Whether the MLP head runs as the fused host forward.
    #[cfg(test)]
    fn on_host(&self) -> bool {
        self.members.iter().all(|m| m.host.is_some())
    }

    /// Logits of encoded rows, `[rows * outputs]` row-major: an ensemble's pooled.
    pub fn logits(&self, encoded: &Encoded) -> Result<Vec<f64>> {
        if let [one] = self.members.as_slice() {
            return self.logits_of(one, encoded, None);
        }
        // The members share their preprocessing, so their runs: what they read around the
        // runs is prepared once.
        let prepared = self
            .members
            .iter()
            .find_map(|m| SparseInputs::of(m, encoded));
        let each = self
            .members
            .iter()
            .map(|m| self.logits_of(m, encoded, prepared.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        Ok(self.pool.combine(&each))
    }

    /// The logits of member `k` (from 0) alone: a cross-validated run's fold model `k`.
    pub fn member_logits(&self, k: usize, encoded: &Encoded) -> Result<Vec<f64>> {
        self.logits_of(&self.members[k], encoded, None)
    }

    /// The logits of one member (`prepared`: its sparse inputs, if already gathered).
    fn logits_of(
        &self,
        member: &Member,
        encoded: &Encoded,
        prepared: Option<&SparseInputs>,
    ) -> Result<Vec<f64>> {
        if let Some(host) = &member.host {
            return Ok(self.host_logits(member, host, encoded, prepared));
        }
        let network = &member.network;
        let device = &self.device;
        let outputs = self.spec.outputs;
        let mut out = vec![0f64; encoded.rows * outputs];
        let mut put = |rows: &[usize], z: Tensor<2>| -> Result<()> {
            let values = z
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| PatronError::Internal(format!("reading scores: {e:?}")))?;
            for (i, &r) in rows.iter().enumerate() {
                for j in 0..outputs {
                    out[r * outputs + j] = f64::from(values[i * outputs + j]);
                }
            }
            Ok(())
        };
        // By what the network reads: a new kind that reads token ids is batched as the
        // Transformer is.
        match network.input_kind() {
            InputKind::Tabular => {
                let inputs = TabularInputs::from_encoded(encoded, &self.spec, device);
                for start in (0..encoded.rows).step_by(SCORE_BATCH) {
                    let end = (start + SCORE_BATCH).min(encoded.rows);
                    let z = network.forward(Inputs::Tabular(inputs.slice(start, end)));
                    put(&(start..end).collect::<Vec<_>>(), z)?;
                }
            }
            InputKind::Bags => {
                let table = member.table.as_deref().unwrap_or(&[]);
                let dim = self.spec.text.as_ref().map_or(1, |t| t.dim);
                let shares = self.spec.bag_weights();
                let rows: Vec<usize> = (0..encoded.rows).collect();
                for chunk in rows.chunks(SCORE_BATCH) {
                    let docs: Vec<&[u32]> = chunk
                        .iter()
                        .map(|&r| encoded.tokens[r].as_slice())
                        .collect();
                    let bags = Tensor::<2>::from_data(
                        TensorData::new(bags(table, dim, &docs, shares), [docs.len(), dim]),
                        device,
                    );
                    put(chunk, network.forward(Inputs::Bags(bags)))?;
                }
            }
            InputKind::Tokens => {
                // Similar lengths together: far less padding.
                let mut rows: Vec<usize> = (0..encoded.rows).collect();
                rows.sort_by_key(|&r| encoded.tokens[r].len());
                for chunk in rows.chunks(TRANSFORMER_BATCH) {
                    let docs: Vec<&[u32]> = chunk
                        .iter()
                        .map(|&r| encoded.tokens[r].as_slice())
                        .collect();
                    let ids = padded_ids(&docs, self.spec.pad_id(), device);
                    put(chunk, network.forward(Inputs::Tokens(ids)))?;
                }
            }
        }
        Ok(out)
    }
}

impl Scorer<'_> {
    /// The fused host forward of a tabular network, its category embeddings
    /// (`[rows * dim]`) and `dim`, when scoring runs on the host (flex) and the scorer
    /// holds one network.
    pub fn tabular_host(&self) -> Option<(&HostMlp, &[f32], usize)> {
        match self.members.as_slice() {
            [
                Member {
                    host: Some(HostHead::Tabular { mlp, embedding, .. }),
                    ..
                },
            ] => Some((mlp, embedding.as_slice(), self.spec.embedding_dim)),
            _ => None,
        }
    }

    /// A member's logits through the fused host forward: each tile's inputs are assembled
    /// (numeric values and category embeddings, or bags) right before it runs.
    fn host_logits(
        &self,
        member: &Member,
        host: &HostHead,
        encoded: &Encoded,
        prepared: Option<&SparseInputs>,
    ) -> Vec<f64> {
        // Each row's categories are its embedding rows: the fold's tables cover them.
        let z = match host {
            HostHead::Tabular {
                mlp,
                folded: Some(folded),
                sparse,
                ..
            } => {
                let (k, count, width) = (
                    encoded.numeric_width,
                    encoded.categorical_count,
                    mlp.first_width(),
                );
                // With folded runs: the first layer's part without them, what the rows read
                // (gathered here unless the ensemble did), and where their weights start in
                // `folded`.
                let local;
                let folded_runs = match (sparse, prepared) {
                    (Some((part, _, base)), Some(inputs)) => Some((part, inputs, *base)),
                    (Some((part, runs, base)), None) => {
                        local = SparseInputs::new(encoded, part.keep(), runs);
                        Some((part, &local, *base))
                    }
                    (None, _) => None,
                };
                mlp.logits_after_first(encoded.rows, |range, buf| {
                    match folded_runs {
                        Some((part, inputs, _)) => {
                            let w = inputs.width;
                            part.apply(&inputs.kept[range.start * w..range.end * w], buf)
                        }
                        None => mlp.first_of_prefix(
                            &encoded.numeric[range.start * k..range.end * k],
                            k,
                            buf,
                        ),
                    }
                    let (mut shares, mut scaled): (Vec<i64>, Vec<(i64, f32)>) = Default::default();
                    for (r, dst) in range.zip(buf.chunks_exact_mut(width)) {
                        let categories = &encoded.categorical[r * count..(r + 1) * count];
                        let Some((_, inputs, base)) = folded_runs else {
                            add_shares(dst, folded, categories, &[], width);
                            continue;
                        };
                        // A row's set runs are shares of the folded table too, added with
                        // its categories in one pass.
                        let ones = &inputs.ones[inputs.ones_at[r]..inputs.ones_at[r + 1]];
                        shares.clear();
                        shares.extend_from_slice(categories);
                        shares.extend(ones.iter().map(|&j| base + j));
                        let other = &inputs.other[inputs.other_at[r]..inputs.other_at[r + 1]];
                        scaled.clear();
                        scaled.extend(other.iter().map(|&(j, x)| (base + j, x)));
                        add_shares(dst, folded, &shares, &scaled, width);
                    }
                })
            }
            HostHead::Tabular { mlp, embedding, .. } => {
                let dim = self.spec.embedding_dim;
                mlp.logits(encoded.rows, |range, buf| {
                    tabular_inputs(encoded, embedding, dim, range, buf)
                })
            }
            HostHead::Bag(mlp) => {
                let table = member.table.as_deref().unwrap_or(&[]);
                let dim = mlp.inputs();
                let shares = self.spec.bag_weights();
                mlp.logits(encoded.rows, |range, buf| {
                    let docs: Vec<&[u32]> =
                        encoded.tokens[range].iter().map(Vec::as_slice).collect();
                    bags_into(table, dim, &docs, shares, buf);
                })
            }
        };
        z.into_iter().map(f64::from).collect()
    }
}

/// What the members with folded runs read of a batch, gathered once for all of them: the
/// numeric inputs outside the runs (`[rows * width]`), and each row's shares of the runs'
/// rows of the folded table, numbered from their first: whole ones (row `r`'s at
/// `ones[ones_at[r]..ones_at[r + 1]]`) and weighted ones (`other`, likewise).
struct SparseInputs {
    kept: Vec<f32>,
    width: usize,
    ones: Vec<i64>,
    ones_at: Vec<usize>,
    other: Vec<(i64, f32)>,
    other_at: Vec<usize>,
}

impl SparseInputs {
    /// The inputs of `encoded` a member with folded runs reads (`None` for another member).
    fn of(member: &Member, encoded: &Encoded) -> Option<SparseInputs> {
        match &member.host {
            Some(HostHead::Tabular {
                folded: Some(_),
                sparse: Some((part, runs, _)),
                ..
            }) => Some(SparseInputs::new(encoded, part.keep(), runs)),
            _ => None,
        }
    }

    fn new(encoded: &Encoded, keep: &[usize], runs: &[InputRun]) -> SparseInputs {
        let k = encoded.numeric_width;
        let mut inputs = SparseInputs {
            kept: Vec::with_capacity(encoded.rows * keep.len()),
            width: keep.len(),
            ones: Vec::with_capacity(encoded.rows * runs.len()),
            ones_at: Vec::with_capacity(encoded.rows + 1),
            other: Vec::with_capacity(encoded.rows * runs.len()),
            other_at: Vec::with_capacity(encoded.rows + 1),
        };
        inputs.ones_at.push(0);
        inputs.other_at.push(0);
        for row in encoded.numeric.chunks_exact(k.max(1)).take(encoded.rows) {
            inputs.kept.extend(keep.iter().map(|&i| row[i]));
            run_shares(row, runs, &mut inputs.ones, &mut inputs.other);
            inputs.ones_at.push(inputs.ones.len());
            inputs.other_at.push(inputs.other.len());
        }
        inputs
    }
}

/// The shares of `row`'s `runs` in the folded table's rows of the runs (numbered from
/// their first; [`Scorer::fold_sparse`] lays them out): whole ones appended to `ones`,
/// weighted ones with their weight to `other`.
/// - Flags (a run's weight rows): each 1 is its row. Each block of 16 is tested at once
///   (vectorized) and only a block with a non-zero value is walked: a column's flags have
///   one set at most, at a random place, so testing them one by one cost a branch miss a
///   column and a compare a flag.
/// - Bins (the sums of their first 1, 2, ... weight rows, then the weight rows): the
///   leading 1s are one sum, any other value its weight row times the value.
fn run_shares(row: &[f32], runs: &[InputRun], ones: &mut Vec<i64>, other: &mut Vec<(i64, f32)>) {
    const BLOCK: usize = 16;
    let mut first = 0;
    for run in runs {
        match run {
            InputRun::Flags(r) => {
                for (b, block) in row[r.clone()].chunks(BLOCK).enumerate() {
                    if !block.iter().fold(false, |any, &x| any | (x != 0.0)) {
                        continue;
                    }
                    for (j, &x) in block.iter().enumerate() {
                        let at = (first + b * BLOCK + j) as i64;
                        if x == 1.0 {
                            ones.push(at);
                        } else if x != 0.0 {
                            other.push((at, x));
                        }
                    }
                }
                first += r.len();
            }
            InputRun::Bins(r) => {
                let bins = &row[r.clone()];
                let lead = bins.iter().take_while(|&&x| x == 1.0).count();
                if lead > 0 {
                    ones.push((first + lead - 1) as i64);
                }
                for (j, &x) in bins.iter().enumerate().skip(lead) {
                    if x != 0.0 {
                        other.push(((first + r.len() + j) as i64, x));
                    }
                }
                first += 2 * r.len();
            }
        }
    }
}

/// Add the folded first-layer shares of a row's category `rows` (of `folded`, `width`
/// values each) and its `scaled` rows times their weights to `dst`. A lane block at a time,
/// summed in registers and stored once: adding one share after another stored the row once
/// per category and took a fifth of scoring an ensemble. The build targets plain x86-64;
/// where the CPU has them (checked at run time) the loop runs on AVX-512's 32 registers,
/// 128 lanes at a time (each share read as 512 contiguous bytes), or on AVX2's.
fn add_shares(dst: &mut [f32], folded: &[f32], rows: &[i64], scaled: &[(i64, f32)], width: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            unsafe { add_shares_avx512(dst, folded, rows, scaled, width) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            unsafe { add_shares_avx2(dst, folded, rows, scaled, width) };
            return;
        }
    }
    add_lanes::<16>(dst, folded, rows, scaled, width, 0);
}

/// [`add_shares`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn add_shares_avx512(
    dst: &mut [f32],
    folded: &[f32],
    rows: &[i64],
    scaled: &[(i64, f32)],
    width: usize,
) {
    let done = add_lanes::<128>(dst, folded, rows, scaled, width, 0);
    add_lanes::<16>(dst, folded, rows, scaled, width, done);
}

/// [`add_shares`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn add_shares_avx2(
    dst: &mut [f32],
    folded: &[f32],
    rows: &[i64],
    scaled: &[(i64, f32)],
    width: usize,
) {
    add_lanes::<16>(dst, folded, rows, scaled, width, 0);
}

/// The loop of [`add_shares`] from lane `from` on, `LANES` at a time, inlined into each
/// CPU's version; the last `width % LANES` lanes are left when `LANES > 16`, and done one
/// by one otherwise. Returns where it stopped.
#[inline(always)]
fn add_lanes<const LANES: usize>(
    dst: &mut [f32],
    folded: &[f32],
    rows: &[i64],
    scaled: &[(i64, f32)],
    width: usize,
    from: usize,
) -> usize {
    let lanes = |i: i64, at: usize| -> &[f32; LANES] {
        let start = i as usize * width + at;
        folded[start..start + LANES]
            .try_into()
            .expect("a lane block")
    };
    let end = from + (width - from) / LANES * LANES;
    for at in (from..end).step_by(LANES) {
        let mut acc = [0f32; LANES];
        acc.copy_from_slice(&dst[at..at + LANES]);
        for &i in rows {
            for (a, s) in acc.iter_mut().zip(lanes(i, at)) {
                *a += s;
            }
        }
        for &(i, x) in scaled {
            for (a, s) in acc.iter_mut().zip(lanes(i, at)) {
                *a += x * s;
            }
        }
        dst[at..at + LANES].copy_from_slice(&acc);
    }
    if LANES > 16 {
        return end;
    }
    for at in end..width {
        let whole: f32 = rows.iter().map(|&i| folded[i as usize * width + at]).sum();
        let weighted: f32 = scaled
            .iter()
            .map(|&(i, x)| x * folded[i as usize * width + at])
            .sum();
        dst[at] += whole + weighted;
    }
    width
}

/// Write the host network's inputs of the rows `range` of `encoded` into `buf`: each row's
/// numeric values, then the embedding (`dim` wide) of each of its categories.
pub fn tabular_inputs(
    encoded: &Encoded,
    embedding: &[f32],
    dim: usize,
    range: std::ops::Range<usize>,
    buf: &mut [f32],
) {
    let (width, count) = (encoded.numeric_width, encoded.categorical_count);
    let row_width = width + count * dim;
    assert_eq!(
        buf.len(),
        range.len() * row_width,
        "encoded rows fit the network"
    );
    for (r, dst) in range.zip(buf.chunks_exact_mut(row_width)) {
        let (numeric, categories) = dst.split_at_mut(width);
        numeric.copy_from_slice(&encoded.numeric[r * width..(r + 1) * width]);
        let indices = &encoded.categorical[r * count..(r + 1) * count];
        for (slot, &i) in categories.chunks_exact_mut(dim).zip(indices) {
            let i = i as usize;
            slot.copy_from_slice(&embedding[i * dim..(i + 1) * dim]);
        }
    }
}

/// What `predict` did.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictSummary {
    /// Rows scored.
    pub rows: usize,
    /// Rows predicted as each class, in label order.
    pub class_counts: Vec<usize>,
}

/// A chunk of input: its first row's 0-based index, its rows, and their model inputs
/// (`None` for a text chunk, tokenized by the caller).
type Prepared = (usize, Table, Option<Encoded>);

/// Chunks read (and tabular ones preprocessed) on a thread of their own, one chunk ahead
/// of the scoring: the parse and the tabular preprocessing are single-threaded, so done in
/// turn with the scoring they left one of two cores idle (1M-row bank CSV, 2 cores: median
/// 2.26 s -> 1.94 s, peak RSS 168 -> 210 MB). Text chunks are tokenized by the caller, in
/// parallel (200k texts: 1.84-2.18 s when tokenized here -> 1.59-1.89 s).
struct ReadAhead {
    chunks: Option<Receiver<Result<Prepared>>>,
    worker: Option<JoinHandle<()>>,
}

impl ReadAhead {
    fn start(mut reader: ChunkReader, pre: &Preprocessor, input: &Path) -> ReadAhead {
        let (pre, input) = (pre.clone(), input.to_path_buf());
        // A rendezvous channel: one chunk is prepared while another is scored, no more (a
        // one-slot buffer measured no faster and held a third chunk).
        let (send, chunks) = sync_channel(0);
        let worker = std::thread::spawn(move || {
            loop {
                let offset = reader.rows_read;
                let next = match reader.next_chunk() {
                    // Texts are left to the caller: tokenizing spreads over the compute
                    // pool there, and this thread would wait on a pool worker that is
                    // itself waiting for this chunk.
                    Ok(Some(chunk)) if pre.text.is_some() => Ok((offset, chunk, None)),
                    Ok(Some(chunk)) => pre
                        .transform(&chunk, offset, &input)
                        .map(|encoded| (offset, chunk, Some(encoded))),
                    Ok(None) => break,
                    Err(e) => Err(e),
                };
                let failed = next.is_err();
                // A closed channel: the scoring stopped on an error of its own.
                if send.send(next).is_err() || failed {
                    break;
                }
            }
        });
        ReadAhead {
            chunks: Some(chunks),
            worker: Some(worker),
        }
    }
}

impl Iterator for ReadAhead {
    type Item = Result<Prepared>;

    fn next(&mut self) -> Option<Result<Prepared>> {
        if let Ok(next) = self.chunks.as_ref()?.recv() {
            return Some(next);
        }
        // The worker hung up: at the end of the input, or by panicking, which must not
        // pass for the end.
        self.chunks = None;
        match self.worker.take().map(JoinHandle::join) {
            Some(Err(_)) => Some(Err(PatronError::Internal(
                "the thread reading the input stopped unexpectedly".into(),
            ))),
            _ => None,
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // Closing the channel first lets a worker blocked on a full channel finish.
        self.chunks = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// What `predict` reads and writes besides the run.
#[derive(Debug, Clone)]
pub struct PredictRequest {
    /// CSV, Parquet or Arrow to score (`-`: CSV on stdin, or one text per line for a text
    /// run, unless `input_format` says otherwise).
    pub input: std::path::PathBuf,
    /// The input's format, where not told by its extension (standard input).
    pub input_format: Option<Format>,
    /// CSV, Parquet or Arrow by extension (`-`: CSV on stdout unless `output_format`).
    pub output: std::path::PathBuf,
    /// The output's format (standard output; a file's must match its extension).
    pub output_format: Option<Format>,
    /// Rows read and scored at a time.
    pub batch_size: usize,
    /// Reasons per row (0: none); see [`Reasons`].
    pub reasons: usize,
    /// Input columns copied into the predictions.
    pub keep: Vec<String>,
    /// The workbook sheet to read (`--sheet`; default: the one the run was trained on
    /// where the workbook has it, else the first).
    pub sheet: Option<String>,
}

/// How a file scored with a run is read: as training read its data, with `sheet`
/// (`--sheet`) naming a workbook's sheet where given.
fn read_options(pre: &Preprocessor, sheet: Option<&str>) -> ReadOptions {
    let mut read = pre.read_options();
    if let Some(sheet) = sheet {
        read.sheet = SheetChoice::Named(sheet.to_string());
    }
    read
}

/// Score the request's input chunk by chunk and write its output. A file output is
/// written under a temporary name and renamed at the end.
pub fn predict(session: &Session, request: &PredictRequest) -> Result<PredictSummary> {
    let run = session.run();
    let (input, output) = (request.input.as_path(), request.output.as_path());
    if output != Path::new("-") {
        refuse_same_file(input, output)?;
    }
    let pre = &run.preprocess;
    let reasons = (request.reasons > 0).then(|| Reasons::new(pre, request.reasons));
    let batch_size = request.batch_size;
    let reader = match (&pre.text, request.input_format) {
        (Some(text), None) if input == Path::new("-") => {
            ChunkReader::open_lines(&text.columns, batch_size)
        }
        (_, format) => {
            let read = read_options(pre, request.sheet.as_deref());
            ChunkReader::open_as(input, format, read, batch_size)?
        }
    };
    let input_schema = reader.typed_schema();
    let outputs = run.manifest.model.outputs;
    let layout = Layout {
        id: pre.id.clone(),
        kept: request.keep.clone(),
        outputs: run.task.output_columns(),
        reasons: reasons.as_ref().map_or(0, Reasons::count),
    };
    let mut writer = PredictionWriter::create(
        output,
        request.output_format,
        &layout,
        input_schema.as_ref(),
    )?;
    let mut summary = PredictSummary {
        rows: 0,
        class_counts: vec![0; pre.labels.len()],
    };
    for next in ReadAhead::start(reader, pre, input) {
        let (offset, chunk, encoded) = next?;
        let encoded = match encoded {
            Some(encoded) => encoded,
            None => pre.transform(&chunk, offset, input)?,
        };
        let Scored {
            logits: z,
            probs: scores,
            predicted,
        } = session.score_encoded(&encoded)?;
        let ids = match &pre.id {
            Some(column) => Some(id_column(&chunk, column, input)?),
            None => None,
        };
        let kept = request
            .keep
            .iter()
            .map(|column| kept_column(&chunk, column, input))
            .collect::<Result<_>>()?;
        let typed = layout
            .input_columns()
            .map(|column| chunk.typed_column(column))
            .collect();
        summary.rows += encoded.rows;
        for &c in &predicted {
            summary.class_counts[c] += 1;
        }
        let reasons = match &reasons {
            Some(reasons) => {
                let outcome = Outcome {
                    logits: &z,
                    outputs,
                    predicted: &predicted,
                    calibration: &run.calibration,
                    task: run.task.as_ref(),
                };
                reasons.of(session.scorer(), &chunk, &encoded, &outcome)?
            }
            None => Vec::new(),
        };
        writer.write(ScoredChunk {
            offset,
            ids,
            kept,
            typed,
            scores,
            labels: predicted.iter().map(|&c| pre.labels[c].as_str()).collect(),
            reasons,
        })?;
    }
    writer.finish()?;
    Ok(summary)
}

/// The run's id column of a chunk, missing cells empty.
pub fn id_column(chunk: &Table, column: &str, input: &Path) -> Result<Vec<String>> {
    let cells = chunk.cells(column).ok_or_else(|| {
        PatronError::data(
            input,
            format!("id column {column:?} not found; the run's config names it as data.id"),
        )
    })?;
    Ok(cells
        .into_iter()
        .map(|c| c.unwrap_or("").to_string())
        .collect())
}

/// A `--keep` column of a chunk as written (`None`: a missing cell).
fn kept_column(chunk: &Table, column: &str, input: &Path) -> Result<Vec<Option<String>>> {
    match chunk.cells(column) {
        Some(cells) => Ok(cells.into_iter().map(|c| c.map(str::to_string)).collect()),
        None => Err(missing_column(
            input,
            "--keep",
            column,
            &chunk.column_names(),
        )),
    }
}

/// Scoring must never overwrite its own input.
fn refuse_same_file(input: &Path, output: &Path) -> Result<()> {
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize())
        && a == b
    {
        return Err(PatronError::data(
            output,
            "is the input file; choose another --output",
        ));
    }
    if output.is_dir() {
        return Err(PatronError::data(
            output,
            "is a directory; --output takes a .csv or .parquet file name",
        ));
    }
    Ok(())
}

/// How far `data` (CSV, Parquet, Arrow or a workbook's sheet, `sheet` as in
/// [`PredictRequest`]; `-`: CSV on stdin, or one text per line for a text run) has drifted
/// from the run's training data: the PSI of each input column and of the scores, read and
/// scored in chunks like `predict`.
pub fn drift(session: &Session, data: &Path, sheet: Option<&str>) -> Result<DriftReport> {
    let run = session.run();
    if !run.manifest.files.contains_key(files::PROFILE) {
        return Err(PatronError::checkpoint(
            &run.dir,
            "has no profile.json (an earlier patron trained it); train it again to check drift",
        ));
    }
    let profile: Profile = parse_verified(&run.dir, &run.manifest, files::PROFILE)?;
    let pre = &run.preprocess;
    profile
        .matches(pre)
        .map_err(|why| PatronError::checkpoint(run.dir.join(files::PROFILE), why))?;
    let reader = match &pre.text {
        Some(text) if data == Path::new("-") => {
            ChunkReader::open_lines(&text.columns, EVALUATE_CHUNK_ROWS)
        }
        _ => ChunkReader::open(data, read_options(pre, sheet), EVALUATE_CHUNK_ROWS)?,
    };
    let mut counter = DriftCounter::new(&profile, pre);
    for next in ReadAhead::start(reader, pre, data) {
        let (offset, chunk, encoded) = next?;
        let encoded = match encoded {
            Some(encoded) => encoded,
            None => pre.transform(&chunk, offset, data)?,
        };
        if pre.text.is_none() {
            counter.add_past_range(&pre.past_range(&chunk, offset, data)?);
        }
        let scored = session.score_encoded(&encoded)?;
        counter.add(&encoded, &scored.probs, &scored.predicted);
    }
    let report = counter.report();
    if report.rows == 0 {
        return Err(PatronError::data(data, "has no data rows"));
    }
    Ok(report)
}

/// Rows of a labelled file that `evaluate` left out because their target is blank.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Unlabelled {
    /// How many.
    pub rows: usize,
    /// The first one's row in the file (from 1).
    pub first: Option<usize>,
}

/// Score a labelled file with a run, read in chunks like `predict` (`sheet` as in
/// [`PredictRequest`]). Rows whose target is
/// blank are scored but left out of the evaluation, as training leaves them out.
pub fn evaluate(
    session: &Session,
    data: &Path,
    sheet: Option<&str>,
) -> Result<(Evaluation, Unlabelled)> {
    let run = session.run();
    let pre = &run.preprocess;
    // Read and scored in chunks like `predict`, so memory stays flat in the file's size:
    // only the scores, labels, segment values and (text runs) texts are kept.
    let reader = ChunkReader::open(data, read_options(pre, sheet), EVALUATE_CHUNK_ROWS)?;
    let (mut z, mut labels, mut texts) = (Vec::new(), Vec::new(), Vec::new());
    let mut segments: Vec<(String, Vec<String>)> = Vec::new();
    let mut unlabelled = Unlabelled::default();
    for next in ReadAhead::start(reader, pre, data) {
        let (offset, chunk, encoded) = next?;
        let targets = pre.encode_target(&chunk, offset, data)?;
        let encoded = match encoded {
            Some(encoded) => encoded,
            None => pre.transform(&chunk, offset, data)?,
        };
        let chunk_z = session.scorer().logits(&encoded)?;
        let width = chunk_z.len() / targets.len().max(1);
        let mut kept = Vec::with_capacity(targets.len());
        for (r, target) in targets.iter().enumerate() {
            match target {
                Some(y) => {
                    kept.push(r);
                    labels.push(*y);
                    z.extend_from_slice(&chunk_z[r * width..(r + 1) * width]);
                }
                None => {
                    unlabelled.rows += 1;
                    unlabelled.first.get_or_insert(offset + r + 1);
                }
            }
        }
        let values = segment_columns(
            &chunk,
            &run.config.report.segments,
            &pre.read_options(),
            data,
            false,
        )?;
        let values = values
            .into_iter()
            .map(|(name, all)| (name, kept.iter().map(|&r| all[r].clone()).collect()));
        if segments.is_empty() {
            segments = values.collect();
        } else {
            for ((_, all), (_, more)) in segments.iter_mut().zip(values) {
                all.extend(more);
            }
        }
        if let Some(text) = &pre.text {
            texts.extend(raw_texts(&chunk, &text.columns, &kept));
        }
    }
    if labels.is_empty() {
        let why = if unlabelled.rows > 0 {
            format!(
                "target column {:?} is blank on every row; evaluate needs labelled rows",
                pre.target
            )
        } else {
            "has no data rows (only a header)".to_string()
        };
        return Err(PatronError::data(data, why));
    }
    let evaluated = if data == Path::new("-") {
        "standard input".to_string()
    } else {
        data.display().to_string()
    };
    let evaluation = session.evaluation(&z, labels, evaluated, segments, &texts)?;
    Ok((evaluation, unlabelled))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ModelKind, Pooling};
    use crate::model::TextSpec;
    use rand::{Rng, SeedableRng};

    fn spec(text: Option<TextSpec>, hidden: Vec<usize>, outputs: usize) -> ModelSpec {
        ModelSpec {
            numeric_width: 5,
            categorical_count: 3,
            embedding_rows: 20,
            embedding_dim: 4,
            hidden,
            dropout: 0.2,
            ensemble: 1,
            numeric_embedding: None,
            outputs,
            text,
        }
    }

    /// `rows` random tabular rows of 5 numbers and 3 categories, column `j`'s category
    /// drawn from `categories(j)`.
    fn random_rows(
        seed: u64,
        rows: usize,
        categories: impl Fn(usize) -> std::ops::Range<i64>,
    ) -> Encoded {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Encoded {
            rows,
            numeric_width: 5,
            categorical_count: 3,
            numeric: (0..rows * 5)
                .map(|_| rng.random::<f32>() * 4.0 - 2.0)
                .collect(),
            categorical: (0..rows * 3)
                .map(|i| rng.random_range(categories(i % 3)))
                .collect(),
            tokens: Vec::new(),
        }
    }

    /// Logits of the same network through Burn's forward on ndarray and through the host
    /// forward on flex.
    fn both_ways(spec: &ModelSpec, encoded: &Encoded) -> (Vec<f64>, Vec<f64>) {
        #[allow(deprecated)] // the reference path, as `--backend ndarray` runs it
        let reference = Device::ndarray();
        reference.seed(3);
        let network = spec.init(&reference);
        let burn = Scorer::new(&network, spec, &reference).unwrap();
        assert!(!burn.on_host());
        let host = Scorer::new(&network, spec, &Device::flex()).unwrap();
        assert!(host.on_host());
        (burn.logits(encoded).unwrap(), host.logits(encoded).unwrap())
    }

    fn assert_close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-5, "largest difference {worst}");
        assert!(a.iter().any(|&z| z.abs() > 0.05), "logits all near zero");
    }

    #[test]
    fn folded_categories_score_as_the_embeddings_do() {
        // Three categorical columns owning embedding rows 0..7, 7..13 and 13..20.
        let offsets = [0i64, 7, 13];
        let ends = [7i64, 13, 20];
        let encoded = random_rows(5, 600, |j| offsets[j]..ends[j]);
        let spec = spec(None, vec![16, 8], 3);
        let device = Device::flex();
        device.seed(6);
        let network = spec.init(&device);
        let plain = Scorer::new(&network, &spec, &device).unwrap();
        let folded = Scorer::new(&network, &spec, &device)
            .unwrap()
            .fold_categories(&offsets);
        assert!(matches!(
            folded.members[0].host,
            Some(HostHead::Tabular {
                folded: Some(_),
                ..
            })
        ));
        assert_close(
            &plain.logits(&encoded).unwrap(),
            &folded.logits(&encoded).unwrap(),
        );
        // Numeric input 1 as flags and 2..5 as bins taken out of the product and added
        // where non-zero: the same logits (the rows' values there are any number, not
        // only the patterns encoding writes).
        let runs = [InputRun::Flags(1..2), InputRun::Bins(2..5)];
        let folded_runs = Scorer::new(&network, &spec, &device)
            .unwrap()
            .fold_categories(&offsets)
            .fold_sparse(&runs);
        assert!(matches!(
            folded_runs.members[0].host,
            Some(HostHead::Tabular {
                sparse: Some(_),
                ..
            })
        ));
        let mut sparse = encoded.clone();
        sparse.numeric.iter_mut().step_by(3).for_each(|x| *x = 0.0);
        // Ones, as flags are encoded, take the shares' path.
        let mut ones = encoded.clone();
        ones.numeric.iter_mut().step_by(2).for_each(|x| *x = 1.0);
        // Bins as encoding writes them: 0 to 3 leading 1s, then a fraction, then 0s.
        let mut thermometer = encoded.clone();
        for (r, row) in thermometer.numeric.chunks_exact_mut(5).enumerate() {
            let lead = r % 4;
            for (j, bin) in row[2..5].iter_mut().enumerate() {
                *bin = match j.cmp(&lead) {
                    std::cmp::Ordering::Less => 1.0,
                    std::cmp::Ordering::Equal => (r % 7) as f32 / 7.0,
                    std::cmp::Ordering::Greater => 0.0,
                };
            }
        }
        for rows in [&encoded, &sparse, &ones, &thermometer] {
            assert_close(
                &plain.logits(rows).unwrap(),
                &folded_runs.logits(rows).unwrap(),
            );
        }
        // Runs past the numeric inputs leave the scorer as it was.
        let past = Scorer::new(&network, &spec, &device)
            .unwrap()
            .fold_categories(&offsets)
            .fold_sparse(&[InputRun::Bins(3..6)]);
        assert!(matches!(
            past.members[0].host,
            Some(HostHead::Tabular { sparse: None, .. })
        ));
        // Offsets that do not match the columns leave the scorer as it was.
        let unchanged = Scorer::new(&network, &spec, &device)
            .unwrap()
            .fold_categories(&[0, 7]);
        assert!(matches!(
            unchanged.members[0].host,
            Some(HostHead::Tabular { folded: None, .. })
        ));
    }

    #[test]
    fn shares_add_up_at_every_width() {
        // 128-lane blocks, 16-lane blocks and single lanes: 200 = 128 + 4 * 16 + 8.
        for width in [8, 16, 200, 256] {
            let table: Vec<f32> = (0..6 * width)
                .map(|i| ((i * 29 % 17) as f32 - 8.0) / 8.0)
                .collect();
            let (rows, scaled) = ([4i64, 1, 4], [(2i64, 0.25f32), (5, -1.5)]);
            let mut dst: Vec<f32> = (0..width).map(|i| i as f32 / 10.0).collect();
            let expected: Vec<f32> = (0..width)
                .map(|j| {
                    let whole: f32 = rows.iter().map(|&i| table[i as usize * width + j]).sum();
                    let weighted: f32 = scaled
                        .iter()
                        .map(|&(i, x)| x * table[i as usize * width + j])
                        .sum();
                    dst[j] + whole + weighted
                })
                .collect();
            add_shares(&mut dst, &table, &rows, &scaled, width);
            for (got, want) in dst.iter().zip(&expected) {
                assert!((got - want).abs() < 1e-5, "width {width}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn an_ensemble_scores_its_members_pooled() {
        let encoded = random_rows(4, 50, |_| 0..20);
        let spec = spec(None, vec![8], 3);
        let device = Device::flex();
        let members: Vec<Network> = (0..3)
            .map(|seed| {
                device.seed(seed);
                spec.init(&device)
            })
            .collect();
        let each: Vec<Vec<f64>> = members
            .iter()
            .map(|m| {
                Scorer::new(m, &spec, &device)
                    .unwrap()
                    .logits(&encoded)
                    .unwrap()
            })
            .collect();
        assert_ne!(each[0], each[1], "the members differ");
        let pool = Pool::Softmax(3);
        let ensemble = Scorer::ensemble(&members, &spec, pool, &device).unwrap();
        assert!(
            ensemble.tabular_host().is_none(),
            "reasons probe the pooled scores"
        );
        let pooled = ensemble.logits(&encoded).unwrap();
        assert_eq!(pooled, pool.combine(&each));
        assert_eq!(ensemble.member_logits(1, &encoded).unwrap(), each[1]);
        let one = Scorer::ensemble(&members[..1], &spec, pool, &device).unwrap();
        assert_eq!(
            one.logits(&encoded).unwrap(),
            each[0],
            "one member is not pooled"
        );
    }

    #[test]
    fn tabular_host_forward_matches_burn_with_categories_and_classes() {
        let rows = 700;
        let encoded = random_rows(1, rows, |_| 0..20);
        let spec = spec(None, vec![16, 8], 3);
        let (burn, host) = both_ways(&spec, &encoded);
        assert_eq!(burn.len(), rows * 3);
        assert_close(&burn, &host);
    }

    #[test]
    fn text_bag_host_forward_matches_burn_with_empty_texts() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let rows = 300;
        let tokens: Vec<Vec<u32>> = (0..rows)
            .map(|r| {
                let n = if r % 7 == 0 {
                    0
                } else {
                    rng.random_range(1..30)
                };
                (0..n).map(|_| rng.random_range(0..1000)).collect()
            })
            .collect();
        let encoded = Encoded {
            rows,
            tokens,
            ..Encoded::default()
        };
        let text = TextSpec {
            kind: ModelKind::TextBag,
            vocab: 1000,
            dim: 8,
            max_length: 64,
            layers: 1,
            heads: 1,
            pooling: Pooling::Mean,
            pretrained: None,
            freeze_layers: 0,
            pad_id: 0,
            bag: Default::default(),
        };
        let spec = spec(Some(text), vec![6], 1);
        let (burn, host) = both_ways(&spec, &encoded);
        assert_eq!(burn.len(), rows);
        assert_close(&burn, &host);
    }
}
