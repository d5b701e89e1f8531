//! Loss primitives shared by the objectives.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use crate::error::{shape_error, value_error, Result};

/// Mean cross-entropy of `logits` `[N, C]` against class ids `targets` `[N]`.
/// An empty batch (`N = 0`) has loss 0, so a step with nothing to predict
/// contributes nothing instead of NaN.
pub fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    let [rows, _] = logits.dims();
    if rows == 0 {
        return Tensor::zeros([1], &logits.device());
    }
    let log_probs = log_softmax(logits, 1);
    log_probs.gather(1, targets.reshape([rows, 1])).mean().neg()
}

/// Fraction of rows of `logits` `[N, C]` whose arg-max is the target (0 when empty).
pub fn accuracy<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> f32 {
    let [rows, _] = logits.dims();
    if rows == 0 {
        return 0.0;
    }
    let predicted = logits.argmax(1).reshape([rows]);
    predicted
        .equal(targets)
        .int()
        .sum()
        .into_scalar()
        .elem::<f32>()
        / rows as f32
}

pub use vlp_models::l2_normalize;

/// Mean cross-entropy of `logits` `[N, C]` against `targets` `[N]` over the
/// rows whose target is not negative (negative = ignore), with label
/// smoothing `ε` as `torch.nn.functional.cross_entropy`:
/// `(1 − ε) · nll + ε · mean_c(−log p_c)`. No counted row → 0.
/// `what` names the targets in the error for a class id `≥ C`.
pub fn cross_entropy_with_ignore<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    label_smoothing: f64,
    what: &'static str,
) -> Result<Tensor<B, 1>> {
    let [rows, classes] = logits.dims();
    if targets.dims() != [rows] {
        return Err(shape_error(what, format!("[{rows}]"), &targets.dims()));
    }
    if !(0.0..=1.0).contains(&label_smoothing) {
        return Err(value_error(
            "label smoothing",
            format!("must lie in [0, 1], got {label_smoothing}"),
        ));
    }
    if rows == 0 {
        return Ok(Tensor::zeros([1], &logits.device()));
    }
    let too_large = targets
        .clone()
        .greater_equal_elem(classes as i64)
        .any()
        .into_scalar()
        .elem::<bool>();
    if too_large {
        return Err(value_error(
            what,
            format!("class ids must be < {classes} (or negative to ignore)"),
        ));
    }
    let keep = targets.clone().greater_equal_elem(0);
    let weights = keep.clone().float();
    let log_probs = log_softmax(logits, 1);
    let safe_targets = targets.mask_fill(keep.bool_not(), 0);
    let nll = log_probs
        .clone()
        .gather(1, safe_targets.reshape([rows, 1]))
        .reshape([rows])
        .neg();
    let per_row = if label_smoothing > 0.0 {
        let uniform = log_probs.mean_dim(1).reshape([rows]).neg();
        nll.mul_scalar(1.0 - label_smoothing) + uniform.mul_scalar(label_smoothing)
    } else {
        nll
    };
    let count = weights.clone().sum().clamp_min(1.0);
    Ok((per_row * weights).sum() / count)
}
