//! Captioning as an objective (survey §4.2 PrefixLM and §4.8): next-token
//! cross-entropy of a decoder or a PrefixLM stack (its metrics are in
//! [`crate::caption_metrics`]).

use burn::prelude::*;

use crate::error::{shape_error, Result};
use crate::loss::cross_entropy_with_ignore;

/// Label value of positions that carry no loss (PyTorch's `ignore_index`).
pub const IGNORE_LABEL: i64 = -100;

/// Language-modelling loss: mean cross-entropy over the labelled positions.
///
/// `logits` `[B, T, V]` where position `t` predicts `labels[b, t]` (shift
/// before calling: BLIP compares `logits[:, :-1]` with `ids[:, 1:]`);
/// `labels` `[B, T]` with negative values (e.g. [`IGNORE_LABEL`]) for
/// padding and prompt tokens. `label_smoothing` `ε ∈ [0, 1]` (BLIP: 0.1;
/// 0 for plain cross-entropy), as `torch.nn.functional.cross_entropy`.
/// Nothing labelled → 0.
pub fn lm_loss<B: Backend>(
    logits: Tensor<B, 3>,
    labels: Tensor<B, 2, Int>,
    label_smoothing: f64,
) -> Result<Tensor<B, 1>> {
    let [batch, steps, vocab] = logits.dims();
    if labels.dims() != [batch, steps] {
        return Err(shape_error(
            "LM labels",
            format!("[{batch}, {steps}] (as the logits)"),
            &labels.dims(),
        ));
    }
    cross_entropy_with_ignore(
        logits.reshape([batch * steps, vocab]),
        labels.reshape([batch * steps]),
        label_smoothing,
        "LM labels",
    )
}

/// PrefixLM loss: [`lm_loss`] restricted to the suffix, the positions
/// `t ≥ split[b]` of each row (`split` `[B]`, the first suffix position as
/// the data side sampled it); the prefix is context only.
pub fn prefix_lm_loss<B: Backend>(
    logits: Tensor<B, 3>,
    labels: Tensor<B, 2, Int>,
    split: Tensor<B, 1, Int>,
    label_smoothing: f64,
) -> Result<Tensor<B, 1>> {
    let [batch, steps] = labels.dims();
    if split.dims() != [batch] {
        return Err(shape_error(
            "PrefixLM split points",
            format!("[{batch}]"),
            &split.dims(),
        ));
    }
    let positions = Tensor::<B, 1, Int>::arange(0..steps as i64, &labels.device())
        .reshape([1, steps])
        .expand([batch, steps]);
    let prefix = positions.lower(split.reshape([batch, 1]).expand([batch, steps]));
    lm_loss(
        logits,
        labels.mask_fill(prefix, IGNORE_LABEL),
        label_smoothing,
    )
}
