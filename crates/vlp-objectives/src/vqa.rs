//! VQA as an objective (survey §4.8): a multi-label answer classifier over
//! the pooled fused output, trained with binary cross-entropy against the
//! VQA soft scores `min(1, #annotators agreeing / 3)` (UNITER, ViLT).

use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::gelu;

use crate::error::shape_error;

/// Configuration of [`VqaHead`].
#[derive(Config, Debug)]
pub struct VqaHeadConfig {
    /// Width `H` of the fused `[CLS]`.
    pub hidden_size: usize,
    /// Size `A` of the answer vocabulary.
    pub num_answers: usize,
    /// LayerNorm epsilon (1e-12).
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
}

/// UNITER's / ViLT's answer classifier:
/// `Linear(H, 2H) → GELU → LayerNorm(2H) → Linear(2H, A)`.
#[derive(Module, Debug)]
pub struct VqaHead<B: Backend> {
    /// `H → 2H`.
    pub dense: Linear<B>,
    /// LayerNorm over `2H` after the GELU.
    pub layer_norm: LayerNorm<B>,
    /// `2H → A` answer logits.
    pub classifier: Linear<B>,
}

impl VqaHeadConfig {
    /// The head, initialised on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> VqaHead<B> {
        let wide = 2 * self.hidden_size;
        VqaHead {
            dense: LinearConfig::new(self.hidden_size, wide).init(device),
            layer_norm: LayerNormConfig::new(wide)
                .with_epsilon(self.layer_norm_eps)
                .init(device),
            classifier: LinearConfig::new(wide, self.num_answers).init(device),
        }
    }
}

impl<B: Backend> VqaHead<B> {
    /// `pooled` `[B, H]` → answer logits `[B, A]`.
    pub fn forward(&self, pooled: Tensor<B, 2>) -> Tensor<B, 2> {
        self.classifier
            .forward(self.layer_norm.forward(gelu(self.dense.forward(pooled))))
    }
}

fn check_pair(logits: &[usize; 2], scores: &[usize; 2]) -> crate::Result<()> {
    if logits != scores {
        return Err(shape_error(
            "VQA soft scores",
            format!("{logits:?} (as the answer logits)"),
            scores,
        ));
    }
    Ok(())
}

/// `BCE-with-logits(logits, soft_scores)` averaged over all `B × A` entries
/// and multiplied by `A` (UNITER's and ViLT's scale: the sum over answers,
/// averaged over questions). `logits`, `soft_scores` `[B, A]`; empty batch → 0.
pub fn vqa_bce_loss<B: Backend>(
    logits: Tensor<B, 2>,
    soft_scores: Tensor<B, 2>,
) -> crate::Result<Tensor<B, 1>> {
    let dims = logits.dims();
    check_pair(&dims, &soft_scores.dims())?;
    if dims.contains(&0) {
        return Ok(Tensor::zeros([1], &logits.device()));
    }
    // max(x, 0) − x·y + ln(1 + e^{−|x|}): no overflow for large |x|.
    let bce = logits.clone().clamp_min(0.0) - logits.clone() * soft_scores
        + logits.abs().neg().exp().log1p();
    Ok(bce.mean().mul_scalar(dims[1] as f64))
}

/// VQA accuracy `[1]`: the mean over questions of the soft score of the
/// arg-max answer, on the device. `logits`, `soft_scores` `[B, A]`; empty
/// batch → 0.
pub fn vqa_score<B: Backend>(
    logits: Tensor<B, 2>,
    soft_scores: Tensor<B, 2>,
) -> crate::Result<Tensor<B, 1>> {
    let dims = logits.dims();
    check_pair(&dims, &soft_scores.dims())?;
    if dims.contains(&0) {
        return Ok(Tensor::zeros([1], &logits.device()));
    }
    let best = logits.argmax(1);
    Ok(soft_scores.gather(1, best).mean())
}
