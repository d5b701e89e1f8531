//! Loss primitives shared by the objectives.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use crate::error::{shape_error, value_error, Result};

/// Mean cross-entropy of `logits` `[N, C]` against class ids `targets` `[N]`
/// over the rows whose target is not negative: a negative target marks a
/// padding row (shape-stable batches pad their gathered targets, see
/// `vlp_data::TargetSlots`). No counted row (or `N = 0`) has loss 0, so a
/// step with nothing to predict contributes nothing instead of NaN. Nothing
/// is read back to the host.
pub fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    smoothed_cross_entropy(logits, targets, 0.0)
}

/// [`cross_entropy`] with label smoothing `ε` (no checks).
fn smoothed_cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    label_smoothing: f64,
) -> Tensor<B, 1> {
    let [rows, _] = logits.dims();
    if rows == 0 {
        return Tensor::zeros([1], &logits.device());
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
    (per_row * weights.clone()).sum() / weights.sum().clamp_min(1.0)
}

/// Fraction `[1]` of the rows of `logits` `[N, C]` with a target (not
/// negative) whose arg-max is the target (0 when there is none). Computed
/// on the device: a training step reads nothing back for it.
pub fn accuracy<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    let [rows, _] = logits.dims();
    let device = logits.device();
    if rows == 0 {
        return Tensor::zeros([1], &device);
    }
    let keep = targets.clone().greater_equal_elem(0).int();
    let predicted = logits.argmax(1).reshape([rows]);
    let correct = predicted.equal(targets).int() * keep.clone();
    correct.sum().float() / keep.sum().float().clamp_min(1.0)
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
    Ok(smoothed_cross_entropy(logits, targets, label_smoothing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_with_a_negative_target_are_padding() {
        type B = burn::backend::NdArray;
        let device = Default::default();
        let logits = Tensor::<B, 2>::from_floats(
            [[2.0, 0.5, -1.0], [0.1, 0.2, 3.0], [9.0, -9.0, 0.0]],
            &device,
        );
        let targets = |ids: [i64; 3]| Tensor::<B, 1, Int>::from_ints(ids, &device);
        let value = |t: Tensor<B, 1>| t.into_scalar().elem::<f32>();
        // Closed form over the two real rows: −mean(log softmax at the target).
        let nll = |row: [f32; 3], target: usize| {
            let total: f32 = row.iter().map(|x| x.exp()).sum();
            total.ln() - row[target]
        };
        let expected = (nll([2.0, 0.5, -1.0], 0) + nll([0.1, 0.2, 3.0], 1)) / 2.0;
        let loss = value(cross_entropy(logits.clone(), targets([0, 1, -1])));
        assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
        // Row 0 right, row 1 wrong, row 2 (right by arg-max) not counted.
        assert_eq!(value(accuracy(logits.clone(), targets([0, 1, -1]))), 0.5);
        assert_eq!(value(accuracy(logits.clone(), targets([-1, -1, -1]))), 0.0);
        assert_eq!(value(cross_entropy(logits, targets([-1, -1, -1]))), 0.0);
    }
}
