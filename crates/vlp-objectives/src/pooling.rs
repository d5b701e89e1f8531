//! Pooling of a token sequence into one vector per row.

use burn::prelude::*;

/// Mean of the non-padding tokens: `[B, S, H]`, `[B, S]` (`true` at padding) → `[B, H]`.
///
/// Contrastive embeddings pool every token rather than reading `[CLS]`: at
/// initialisation `[CLS]` carries almost nothing of its sequence, and ITC
/// then sits at chance for hundreds of steps before attention learns to
/// gather content into it; the mean carries content from the first step.
pub fn mean_pool<B: Backend>(
    hidden: Tensor<B, 3>,
    padding: Option<Tensor<B, 2, Bool>>,
) -> Tensor<B, 2> {
    let [batch, seq_len, width] = hidden.dims();
    match padding {
        None => hidden.mean_dim(1).reshape([batch, width]),
        Some(padding) => {
            let keep = padding.bool_not().float().reshape([batch, seq_len, 1]);
            let counts = keep.clone().sum_dim(1).clamp_min(1.0);
            ((hidden * keep).sum_dim(1) / counts).reshape([batch, width])
        }
    }
}
