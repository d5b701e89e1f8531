//! Loss primitives shared by the objectives.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

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

/// Rows scaled to unit L2 norm (norms below 1e-12 are clamped, as
/// `torch.nn.functional.normalize`).
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}
