//! Contrastive negatives from a data-parallel step's whole batch (survey
//! §5: large-batch pre-training; CLIP trains on the global batch of every
//! device): [`CollectiveGather`], the [`ShardGather`] of the shards of one
//! step that run side by side in this process ([`crate::MicroBatchPools`]),
//! through Burn's collective all-reduce (`burn::collective`, its peers
//! local threads).
//!
//! Burn 0.21 has no all-gather: each shard writes its rows into zeros of
//! the global batch's shape and the shards' tensors are summed. The sum
//! carries no gradient, so this shard's rows are put back as live ones
//! whose gradient is scaled by the shard count: the backward of an
//! all-gather (open_clip's `gather_with_grad`) sums every shard's gradient
//! for a shard's rows, and every shard computes the same global loss, so
//! that sum is the shard count times this shard's own; no collective is
//! needed in the backward.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use burn::collective::{self, CollectiveConfig, PeerId, ReduceOperation};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::TensorPrimitive;
use vlp_data::ShardGather;

/// Burn's collective peers live in one server per backend type and
/// process: one data-parallel step at a time uses it (runs side by side in
/// one process, such as tests, take turns step by step).
static COLLECTIVE_STEP: Mutex<()> = Mutex::new(());

/// Holds the process's collective server for one step. A step that
/// panicked left its peers registered; the next one starts from a reset.
pub(crate) fn lock_collective<B: AutodiffBackend>() -> MutexGuard<'static, ()> {
    COLLECTIVE_STEP.lock().unwrap_or_else(|poisoned| {
        collective::reset_collective::<B::InnerBackend>();
        COLLECTIVE_STEP.clear_poison();
        poisoned.into_inner()
    })
}

/// One shard of a step of `shards` shards: its rows `rows` of the global
/// batch's `total`. It joins the collective at its first gather (all shards
/// of the step must gather, or none) and leaves it at [`Self::finish`].
pub struct CollectiveGather<B: AutodiffBackend> {
    peer: PeerId,
    shards: usize,
    rows: Range<usize>,
    total: usize,
    device: B::Device,
    registered: AtomicBool,
}

impl<B: AutodiffBackend> CollectiveGather<B> {
    /// The gathers of a step whose shards have `sizes` rows each, in order,
    /// shard `i` on `devices[i % devices.len()]`.
    pub fn for_step(sizes: &[usize], devices: &[B::Device]) -> Vec<Self> {
        let total = sizes.iter().sum();
        let mut start = 0;
        sizes
            .iter()
            .enumerate()
            .map(|(index, &size)| {
                start += size;
                Self {
                    peer: PeerId::from(index as u32),
                    shards: sizes.len(),
                    rows: start - size..start,
                    total,
                    device: devices[index % devices.len()].clone(),
                    registered: AtomicBool::new(false),
                }
            })
            .collect()
    }

    /// Leaves the collective, if a gather joined it.
    pub fn finish(&self) {
        if self.registered.swap(false, Ordering::AcqRel) {
            collective::finish_collective::<B::InnerBackend>(self.peer)
                .unwrap_or_else(|err| panic!("shard {} cannot leave the step: {err:?}", self.peer));
        }
    }

    fn register(&self) {
        if !self.registered.swap(true, Ordering::AcqRel) {
            let config = CollectiveConfig::default().with_num_devices(self.shards);
            collective::register::<B::InnerBackend>(self.peer, self.device.clone(), config)
                .unwrap_or_else(|err| panic!("shard {} cannot join the step: {err:?}", self.peer));
        }
    }
}

impl<B: AutodiffBackend> fmt::Debug for CollectiveGather<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CollectiveGather")
            .field("peer", &self.peer)
            .field("shards", &self.shards)
            .field("rows", &self.rows)
            .field("total", &self.total)
            .finish()
    }
}

impl<B: AutodiffBackend> ShardGather<B> for CollectiveGather<B> {
    fn rows(&self) -> Range<usize> {
        self.rows.clone()
    }

    fn gather(&self, rows: Tensor<B, 2>) -> Tensor<B, 2> {
        let [n, width] = rows.dims();
        assert_eq!(n, self.rows.len(), "a shard gathers its own rows");
        self.register();
        let placed = Tensor::<B::InnerBackend, 2>::zeros([self.total, width], &rows.device())
            .slice_assign([self.rows.clone(), 0..width], rows.clone().inner());
        let summed = collective::all_reduce::<B::InnerBackend>(
            self.peer,
            placed.into_primitive().tensor(),
            ReduceOperation::Sum,
        )
        .unwrap_or_else(|err| panic!("shard {} cannot gather: {err:?}", self.peer));
        let gathered =
            Tensor::<B, 2>::from_inner(Tensor::from_primitive(TensorPrimitive::Float(summed)));
        // The value of `rows`, the gradient of every shard's loss copy.
        let constant = rows.clone().detach();
        let live = constant.clone() + (rows - constant) * self.shards as f32;
        gathered.slice_assign([self.rows.clone(), 0..width], live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::module::{AutodiffModule, ModuleVisitor, Param};
    use burn::optim::GradientsParams;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use vlp_data::PretrainBatch;
    use vlp_objectives::Pretrainer;

    use crate::build::{with_model, ModelTask};
    use crate::config::OBJECTIVES;
    use crate::{data, presets, Evaluate, MicroBatchPools, PretrainConfig};

    type B = Autodiff<Flex>;
    type Inner = Flex;

    /// Every parameter's gradient in `grads`, in the module's order.
    struct Flatten<'a> {
        grads: &'a GradientsParams,
        values: Vec<f32>,
    }

    impl ModuleVisitor<B> for Flatten<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(grad) = self.grads.get::<Inner, D>(param.id) {
                self.values
                    .extend(grad.into_data().to_vec::<f32>().unwrap());
            }
        }
    }

    /// Rows `rows` of the parts of `batch` a contrastive objective reads.
    fn rows(batch: &PretrainBatch<B>, rows: Range<usize>) -> PretrainBatch<B> {
        let visual = batch.visual.slice_rows(rows.start, rows.end);
        PretrainBatch {
            visual,
            text_ids: batch.text_ids.clone().slice(rows.clone()),
            text_padding: batch.text_padding.clone().slice(rows),
            ..batch.clone()
        }
    }

    /// The summed gradients of a step on `batch` as `shards` micro-batches
    /// (each loss weighted `1 / shards`, as the trainer does), gathering
    /// contrastive negatives across them or not.
    struct ShardedGradients {
        batch: vlp_data::HostPretrainBatch,
    }

    impl ModelTask<B> for ShardedGradients {
        type Output = Vec<(usize, bool, Vec<f32>)>;

        fn run<M>(self, model: M) -> Self::Output
        where
            M: AutodiffModule<B> + Pretrainer<B> + 'static,
            M::InnerModule: Evaluate<Inner> + Pretrainer<Inner>,
        {
            crate::materialize(&model);
            let device = Default::default();
            let batch = self.batch.to_device::<B>(&device);
            let [size, _] = batch.text_ids.dims();
            let mut runs = Vec::new();
            for (shards, gather) in [(1, true), (2, true), (2, false)] {
                let pools = MicroBatchPools::new(shards).unwrap();
                let part = size / shards;
                let parts: Vec<_> = (0..shards).map(|s| s * part..(s + 1) * part).collect();
                let (grads, _) = pools
                    .accumulate_gradients(
                        &model,
                        std::slice::from_ref(&device),
                        parts,
                        &vec![part; shards],
                        |copy, range, shard| {
                            let shard_batch = PretrainBatch {
                                shard: shard.filter(|_| gather),
                                ..rows(&batch, range)
                            };
                            let loss = copy.forward(&shard_batch).loss / shards as f32;
                            Ok((loss, ()))
                        },
                    )
                    .unwrap();
                let mut flatten = Flatten {
                    grads: &grads,
                    values: Vec::new(),
                };
                model.visit(&mut flatten);
                runs.push((shards, gather, flatten.values));
            }
            runs
        }
    }

    /// Two shards of a step that gather their contrastive negatives give
    /// the gradient of the whole batch (so the same update), for a dual
    /// encoder (CLIP) and a single-stream model with ITC (UNITER); without
    /// the gather each shard's negatives are its own and the gradient is
    /// clearly another.
    #[test]
    fn two_shards_give_the_whole_batch_gradient_contrastive_negatives_included() {
        for preset in ["clip-tiny", "uniter-tiny"] {
            let mut config =
                PretrainConfig::from_layers(Some(presets::find(preset).unwrap()), None).unwrap();
            if preset == "uniter-tiny" {
                for spec in OBJECTIVES {
                    let weight = if spec.key == "itc" { 1.0 } else { 0.0 };
                    config.objectives = config.objectives.with(spec.key, weight);
                }
            }
            let tokenizer = data::tokenizer(&config, None).unwrap();
            let batcher = data::batcher(&config, tokenizer.clone()).unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let mut state = batcher.train_draws().unwrap();
            let host = batcher
                .train_batch(&mut state, 8, false, 0, &mut rng)
                .unwrap();
            let device = Default::default();
            let runs = with_model::<B, _>(
                &config,
                tokenizer.vocab_size(),
                tokenizer.special(),
                None,
                &device,
                ShardedGradients { batch: host },
            )
            .unwrap();
            let whole = &runs[0].2;
            let scale = whole.iter().fold(0f32, |m, g| m.max(g.abs()));
            let differs = |got: &[f32]| {
                got.iter()
                    .zip(whole)
                    .fold(0f32, |m, (g, w)| m.max((g - w).abs()))
                    / scale
            };
            assert!(
                scale > 1e-4,
                "{preset}: the gradient is not empty ({scale})"
            );
            assert_eq!(runs[1].2.len(), whole.len());
            let gathered = differs(&runs[1].2);
            let local = differs(&runs[2].2);
            eprintln!("{preset}: |Δgrad| / max|grad|: gathered {gathered:.1e}, local negatives {local:.1e}");
            assert!(
                gathered < 1e-5,
                "{preset}: gathered shards differ by {gathered}"
            );
            assert!(
                local > 1e-2,
                "{preset}: local negatives differ by only {local}"
            );
        }
    }
}
