//! One optimiser step's batch split into micro-batches whose forward and
//! backward passes run at the same time, each in a rayon pool of its own
//! (gradient accumulation, survey §5's large-batch training on one device).
//! A step of one micro-batch is the one-pool case: the trainer has one path.
//!
//! Why: on CPU, Burn 0.21's Flex backend runs its matmuls on every thread but
//! its element-wise ops, softmax, dropout masks and GELU on one, so a training
//! step keeps ~1.2 of 2 cores busy (`perf stat`, docs/benchmarks.md).
//! Micro-batches that run side by side keep all cores busy. Each micro-batch
//! runs on its own copy of the model ([`burn::module::Module::fork`], as
//! Burn's multi-device training does), so each has its own autodiff graph;
//! the gradients are summed with Burn's [`GradientsAccumulator`].
//! [`MicroBatchPools`] runs them.
//!
//! The caller scales each micro-batch's loss so that the sum is the loss it
//! wants: `1 / k` each gives the mean of the micro-batch means (gradient
//! accumulation), and weighting each by its share of the examples gives the
//! full batch's gradient exactly for losses that are means over examples.
//! Contrastive losses are not: each micro-batch is a shard of the step and
//! gathers the others' embeddings ([`CollectiveGather`]), so its negatives
//! are the whole batch's and the summed gradients are the whole batch's.

use std::sync::Arc;

use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use vlp_data::ShardGather;

use crate::error::{Result, TrainError};
use crate::gather::{lock_collective, CollectiveGather};

/// Thread pools that run a step's micro-batches side by side, one pool per
/// micro-batch, sharing the global rayon pool's thread count (at least one
/// thread each). The pools live as long as the training run, so their
/// threads keep their allocator caches from step to step.
///
/// A pool per micro-batch is also what keeps this free of deadlocks: Burn's
/// autodiff holds a graph's lock through its whole backward pass, whose
/// matmuls wait on rayon jobs, so a rayon thread that picked up another
/// micro-batch's backward while waiting could block on that lock for good.
pub struct MicroBatchPools {
    pools: Vec<rayon::ThreadPool>,
}

impl MicroBatchPools {
    /// How many micro-batches a step runs.
    pub fn len(&self) -> usize {
        self.pools.len()
    }

    /// Whether there are no pools (never, for pools from [`Self::new`] with `count ≥ 1`).
    pub fn is_empty(&self) -> bool {
        self.pools.is_empty()
    }

    /// Pools for `count` micro-batches.
    pub fn new(count: usize) -> Result<Self> {
        let threads = (rayon::current_num_threads() / count.max(1)).max(1);
        let pools = (0..count)
            .map(|index| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(move |thread| format!("micro-batch-{index}-{thread}"))
                    .build()
                    .map_err(TrainError::from)
            })
            .collect::<Result<_>>()?;
        Ok(Self { pools })
    }

    /// Runs `step` on every micro-batch at the same time, each on a fork of
    /// `model` in its pool on its device (micro-batch `i` on
    /// `devices[i % devices.len()]`: data parallelism across devices, as
    /// Burn's multi-device training runs it), and returns the summed
    /// gradients, on `devices[0]`, of the losses it
    /// returns (`[1]` each) with each micro-batch's other output, in the
    /// order of `micro_batches`, whose examples number `sizes`. With more
    /// than one, `step` gets each micro-batch's gather over the others
    /// (every micro-batch must gather alike, or none). The first error of
    /// any micro-batch is returned; there must be one micro-batch per pool.
    pub fn accumulate_gradients<B, M, T, V, F>(
        &self,
        model: &M,
        devices: &[B::Device],
        micro_batches: Vec<T>,
        sizes: &[usize],
        step: F,
    ) -> Result<(GradientsParams, Vec<V>)>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        T: Send,
        V: Send,
        F: Fn(&M, T, Option<Arc<dyn ShardGather<B>>>) -> Result<(Tensor<B, 1>, V)> + Sync,
    {
        if micro_batches.len() != self.pools.len() || sizes.len() != self.pools.len() {
            return Err(TrainError::MicroBatchCount {
                given: micro_batches.len(),
                pools: self.pools.len(),
            });
        }
        let (_collective, gathers) = match self.pools.len() {
            1 => (None, vec![None]),
            _ => (
                Some(lock_collective::<B>()),
                CollectiveGather::<B>::for_step(sizes, devices)
                    .into_iter()
                    .map(|gather| Some(Arc::new(gather)))
                    .collect(),
            ),
        };
        let step = &step;
        let results: Vec<Result<(GradientsParams, V)>> = std::thread::scope(|scope| {
            let workers: Vec<_> = micro_batches
                .into_iter()
                .zip(&self.pools)
                .zip(gathers)
                .enumerate()
                .map(|(index, ((batch, pool), gather))| {
                    let copy = model.clone();
                    let device = &devices[index % devices.len()];
                    let main = &devices[0];
                    scope.spawn(move || {
                        pool.install(|| {
                            // Fresh leaves: this micro-batch's graph shares no
                            // node with the others'.
                            let copy = copy.fork(device);
                            let shard = gather.clone().map(|g| g as Arc<dyn ShardGather<B>>);
                            let result = step(&copy, batch, shard).map(|(loss, value)| {
                                let grads = GradientsParams::from_grads(loss.backward(), &copy);
                                let grads = match device == main {
                                    true => grads,
                                    false => grads.to_device(main, &copy),
                                };
                                (grads, value)
                            });
                            if let Some(gather) = gather {
                                gather.finish();
                            }
                            result
                        })
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| match worker.join() {
                    Ok(result) => result,
                    Err(panic) => std::panic::resume_unwind(panic),
                })
                .collect()
        });
        let mut accumulator = GradientsAccumulator::new();
        let mut values = Vec::with_capacity(results.len());
        for result in results {
            let (grads, value) = result?;
            accumulator.accumulate(model, grads);
            values.push(value);
        }
        Ok((accumulator.grads(), values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::{Distribution, TensorData, Tolerance};

    type B = Autodiff<Flex>;

    fn squared_error(model: &Linear<B>, x: Tensor<B, 2>, y: Tensor<B, 2>) -> Tensor<B, 1> {
        (model.forward(x) - y).powi_scalar(2).mean().reshape([1])
    }

    fn weight_grad(model: &Linear<B>, grads: &mut GradientsParams) -> TensorData {
        grads
            .remove::<Flex, 2>(model.weight.id)
            .expect("the weight has a gradient")
            .into_data()
    }

    #[test]
    fn summed_micro_batch_gradients_equal_the_full_batch_gradient() {
        let device = Default::default();
        let model = LinearConfig::new(5, 3).init::<B>(&device);
        let x = Tensor::<B, 2>::random([8, 5], Distribution::Normal(0.0, 1.0), &device);
        let y = Tensor::<B, 2>::random([8, 3], Distribution::Normal(0.0, 1.0), &device);
        let full_loss = squared_error(&model, x.clone(), y.clone());
        let mut full = GradientsParams::from_grads(full_loss.backward(), &model);
        let expected = weight_grad(&model, &mut full);

        // Uneven micro-batches (2, 6): each mean weighted by its share.
        let halves = vec![(0..2, 0.25f32), (2..8, 0.75)];
        let pools = MicroBatchPools::new(2).unwrap();
        let (mut grads, shares) = pools
            .accumulate_gradients(
                &model,
                std::slice::from_ref(&device),
                halves,
                &[2, 6],
                |copy, (rows, share), _| {
                    let loss =
                        squared_error(copy, x.clone().slice(rows.clone()), y.clone().slice(rows));
                    Ok((loss * share, share))
                },
            )
            .unwrap();
        assert_eq!(shares, vec![0.25, 0.75]);
        let summed = weight_grad(&model, &mut grads);
        summed.assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-6));
    }

    #[test]
    fn an_error_in_one_micro_batch_or_a_count_mismatch_is_returned() {
        let device = Default::default();
        let model = LinearConfig::new(2, 1).init::<B>(&device);
        let pools = MicroBatchPools::new(2).unwrap();
        let wrong = pools.accumulate_gradients(
            &model,
            std::slice::from_ref(&device),
            vec![0],
            &[1],
            |copy, _, _| {
                Ok((
                    copy.forward(Tensor::<B, 2>::ones([1, 2], &device))
                        .sum()
                        .reshape([1]),
                    (),
                ))
            },
        );
        assert!(wrong
            .unwrap_err()
            .to_string()
            .contains("1 micro-batches for 2"));
        let result = pools.accumulate_gradients(
            &model,
            std::slice::from_ref(&device),
            vec![0, 1],
            &[1, 1],
            |copy, index, _| {
                if index == 1 {
                    return Err(TrainError::LoaderStopped);
                }
                let x = Tensor::<B, 2>::ones([1, 2], &device);
                Ok((copy.forward(x).sum().reshape([1]), ()))
            },
        );
        assert!(matches!(result.unwrap_err(), TrainError::LoaderStopped));
    }
}
