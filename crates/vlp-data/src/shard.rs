//! A batch as one shard of a data-parallel step (survey §5: large-batch
//! pre-training; CLIP and ALBEF take contrastive negatives from the global
//! batch). A step's global batch is split into shards that run side by side
//! (micro-batches on one device, or one per device); each shard computes
//! its per-pair objectives on its own rows, but the contrastive objectives
//! need every shard's embeddings: [`ShardGather`] reaches them.

use std::fmt::Debug;
use std::ops::Range;

use burn::tensor::{backend::Backend, Tensor};

/// The global batch's rows, seen from one shard of a data-parallel step.
///
/// Every shard of a step must call [`Self::gather`] the same number of
/// times, in the same order, with tensors of the same width: each call is a
/// collective operation that waits for every shard's.
pub trait ShardGather<B: Backend>: Debug + Send + Sync {
    /// This shard's rows in the gathered tensors.
    fn rows(&self) -> Range<usize>;

    /// `[n, D]` rows of this shard → `[N, D]` the rows of every shard in
    /// order, this shard's at [`Self::rows`]. The other shards' rows are
    /// constants; this shard's carry the gradient of every shard's copy of
    /// the loss: the backward of an all-gather sums the shards' gradients
    /// for a shard's rows, and when every shard computes the same global
    /// loss that sum is the shard count times its own.
    fn gather(&self, rows: Tensor<B, 2>) -> Tensor<B, 2>;
}
