//! Masked vision modelling (survey §4.3): recover what was hidden in the
//! masked regions or patches from the fused outputs at those positions.
//!
//! - Feature regression (UNITER MRFR): [`MvmRegressionHead`] maps back to the
//!   feature space through the transpose of the region input projection, and
//!   [`feature_regression_loss`] is the squared error averaged over every
//!   element (UNITER returns `mse_loss(reduction='none')`, `[N, F]`, and its
//!   training loop takes `.mean()`).
//! - Feature classification (UNITER MRC / MRC-kl): [`MvmClassificationHead`]
//!   predicts the detector's classes; [`feature_classification_hard_loss`]
//!   is cross-entropy to the detector's arg-max over the foreground columns,
//!   [`feature_classification_kl_loss`] is `KL(detector ‖ softmax(pred))`
//!   over all columns, background included.
//! - Masked patch prediction (ViLT): the targets are each masked patch's
//!   mean RGB in 256 bins per channel (`vlp_data::patch_rgb_targets`, on the
//!   host), [`masked_patch_loss`] is the cross-entropy over the `N × 3`
//!   channel targets of [`MppHead`].
//!
//! Every loss of an empty batch (`N = 0`: nothing masked) is 0, not NaN.

use burn::module::Param;
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, log_softmax};

use crate::error::{shape_error, value_error};
use crate::loss::cross_entropy;

/// Number of bins per colour channel of ViLT's masked patch prediction.
pub const RGB_BINS: usize = 256;

/// Configuration of [`MvmRegressionHead`].
#[derive(Config, Debug)]
pub struct MvmRegressionHeadConfig {
    /// Width `H` of the fused image tokens.
    pub hidden_size: usize,
    /// Width `F` of the visual features being reconstructed.
    pub feature_size: usize,
    /// LayerNorm epsilon (1e-12).
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
}

/// UNITER's `RegionFeatureRegression`: `LN(GELU(dense(h))) · W + bias`, with
/// `W` the region input projection's weight shared, not copied, so the
/// regression decodes through the same map the encoder read the features with.
#[derive(Module, Debug)]
pub struct MvmRegressionHead<B: Backend> {
    /// `H → H` transform.
    pub dense: Linear<B>,
    /// LayerNorm after the GELU.
    pub layer_norm: LayerNorm<B>,
    /// `[F]` output bias.
    pub bias: Param<Tensor<B, 1>>,
}

impl MvmRegressionHeadConfig {
    /// The head (its output weight is passed to `forward`).
    pub fn init<B: Backend>(&self, device: &B::Device) -> MvmRegressionHead<B> {
        MvmRegressionHead {
            dense: LinearConfig::new(self.hidden_size, self.hidden_size).init(device),
            layer_norm: LayerNormConfig::new(self.hidden_size)
                .with_epsilon(self.layer_norm_eps)
                .init(device),
            bias: Initializer::Zeros.init([self.feature_size], device),
        }
    }
}

impl<B: Backend> MvmRegressionHead<B> {
    /// `masked_hidden` `[N, H]` and `input_projection_weight` `[F, H]` (the
    /// weight of the region embedding's `Linear` `F → H`, Burn's `[in, out]`
    /// layout) → reconstructed features `[N, F]`.
    pub fn forward(
        &self,
        masked_hidden: Tensor<B, 2>,
        input_projection_weight: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        let transformed = self
            .layer_norm
            .forward(gelu(self.dense.forward(masked_hidden)));
        transformed.matmul(input_projection_weight.transpose()) + self.bias.val().unsqueeze::<2>()
    }
}

/// Masked feature regression loss: `mean((pred − target)²)` over all `N × F`
/// elements (UNITER's reduction); `pred`, `target` `[N, F]`.
pub fn feature_regression_loss<B: Backend>(
    pred: Tensor<B, 2>,
    target: Tensor<B, 2>,
) -> crate::Result<Tensor<B, 1>> {
    if pred.dims() != target.dims() {
        return Err(shape_error(
            "feature regression target",
            format!("{:?} (as the prediction)", pred.dims()),
            &target.dims(),
        ));
    }
    if pred.dims().contains(&0) {
        return Ok(Tensor::zeros([1], &pred.device()));
    }
    Ok((pred - target).powi_scalar(2).mean())
}

/// Configuration of [`MvmClassificationHead`].
#[derive(Config, Debug)]
pub struct MvmClassificationHeadConfig {
    /// Width `H` of the fused image tokens.
    pub hidden_size: usize,
    /// Number of outputs: the detector's classes with background (UNITER:
    /// 1601 for the Visual Genome detector), so both the hard and the KL
    /// losses can use it.
    pub num_classes: usize,
    /// LayerNorm epsilon (1e-12).
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
}

/// UNITER's `RegionClassification`: `classifier(LN(GELU(dense(h))))`.
#[derive(Module, Debug)]
pub struct MvmClassificationHead<B: Backend> {
    /// `H → H` transform.
    pub dense: Linear<B>,
    /// LayerNorm after the GELU.
    pub layer_norm: LayerNorm<B>,
    /// `H → C` class logits.
    pub classifier: Linear<B>,
}

impl MvmClassificationHeadConfig {
    /// The head, initialised on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> MvmClassificationHead<B> {
        MvmClassificationHead {
            dense: LinearConfig::new(self.hidden_size, self.hidden_size).init(device),
            layer_norm: LayerNormConfig::new(self.hidden_size)
                .with_epsilon(self.layer_norm_eps)
                .init(device),
            classifier: LinearConfig::new(self.hidden_size, self.num_classes).init(device),
        }
    }
}

impl<B: Backend> MvmClassificationHead<B> {
    /// `masked_hidden` `[N, H]` → class logits `[N, C']`.
    pub fn forward(&self, masked_hidden: Tensor<B, 2>) -> Tensor<B, 2> {
        let transformed = self
            .layer_norm
            .forward(gelu(self.dense.forward(masked_hidden)));
        self.classifier.forward(transformed)
    }
}

/// Hard-label masked feature classification: cross-entropy (mean over `N`)
/// to the detector's most likely foreground class.
///
/// `detector_probs` `[N, C + 1]` has the background at column 0. `logits`
/// is either `[N, C + 1]` (UNITER's layout: the head also scores the
/// background, and the target is `1 + argmax(probs[:, 1..])`, so background
/// never is a target but still takes part in the softmax) or `[N, C]` (a
/// head without a background output; the target is `argmax(probs[:, 1..])`).
pub fn feature_classification_hard_loss<B: Backend>(
    logits: Tensor<B, 2>,
    detector_probs: Tensor<B, 2>,
) -> crate::Result<Tensor<B, 1>> {
    let [rows, width] = detector_probs.dims();
    let [logit_rows, classes] = logits.dims();
    if width < 2 || logit_rows != rows || (classes != width && classes + 1 != width) {
        return Err(shape_error(
            "hard-label classification logits",
            format!("[{rows}, {width}] or [{rows}, {}] for detector probabilities [{rows}, {width}] (background at column 0, at least one class)", width.saturating_sub(1)),
            &[logit_rows, classes],
        ));
    }
    if rows == 0 {
        return Ok(Tensor::zeros([1], &logits.device()));
    }
    let foreground = detector_probs
        .slice([0..rows, 1..width])
        .argmax(1)
        .reshape([rows]);
    let targets = if classes == width {
        foreground + 1
    } else {
        foreground
    };
    Ok(cross_entropy(logits, targets))
}

/// Soft-label masked feature classification: `KL(p ‖ softmax(logits))` with
/// `p = detector_probs`, both `[N, C']` over the same columns, background
/// included (UNITER keeps it in both). Terms with `p = 0` contribute 0
/// (`0 · ln 0 = 0`, as `torch.nn.functional.kl_div`). UNITER's reduction:
/// the mean over all `N × C'` elements (`kl_div(reduction='none').mean()`),
/// i.e. the per-row KL divided by `C'`.
pub fn feature_classification_kl_loss<B: Backend>(
    logits: Tensor<B, 2>,
    detector_probs: Tensor<B, 2>,
) -> crate::Result<Tensor<B, 1>> {
    if logits.dims() != detector_probs.dims() {
        return Err(shape_error(
            "soft-label classification logits",
            format!(
                "{:?} (as the detector probabilities)",
                detector_probs.dims()
            ),
            &logits.dims(),
        ));
    }
    if logits.dims().contains(&0) {
        return Ok(Tensor::zeros([1], &logits.device()));
    }
    let log_q = log_softmax(logits, 1);
    let zero = detector_probs.clone().lower_equal_elem(0.0);
    let log_p = detector_probs.clone().mask_fill(zero, 1.0).log();
    Ok((detector_probs * (log_p - log_q)).mean())
}

/// Configuration of [`MppHead`].
#[derive(Config, Debug)]
pub struct MppHeadConfig {
    /// Width `H` of the fused patch tokens.
    pub hidden_size: usize,
    /// LayerNorm epsilon (1e-12).
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
}

/// ViLT's masked patch prediction head: `decoder(LN(GELU(dense(h))))` with
/// `3 × 256` outputs read channel-major (red bins, green bins, blue bins).
#[derive(Module, Debug)]
pub struct MppHead<B: Backend> {
    /// `H → H` transform.
    pub dense: Linear<B>,
    /// LayerNorm after the GELU.
    pub layer_norm: LayerNorm<B>,
    /// `H → 3 × 256` bin logits.
    pub decoder: Linear<B>,
}

impl MppHeadConfig {
    /// The head, initialised on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> MppHead<B> {
        MppHead {
            dense: LinearConfig::new(self.hidden_size, self.hidden_size).init(device),
            layer_norm: LayerNormConfig::new(self.hidden_size)
                .with_epsilon(self.layer_norm_eps)
                .init(device),
            decoder: LinearConfig::new(self.hidden_size, 3 * RGB_BINS).init(device),
        }
    }
}

impl<B: Backend> MppHead<B> {
    /// `masked_hidden` `[N, H]` → bin logits `[N, 3, 256]`.
    pub fn forward(&self, masked_hidden: Tensor<B, 2>) -> Tensor<B, 3> {
        let [rows, _] = masked_hidden.dims();
        let transformed = self
            .layer_norm
            .forward(gelu(self.dense.forward(masked_hidden)));
        self.decoder
            .forward(transformed)
            .reshape([rows, 3, RGB_BINS])
    }
}

/// Masked patch prediction loss: mean cross-entropy over the `N × 3` channel
/// targets. `logits` `[N, 3, 256]` (channel-major, as ViLT stacks its
/// `768` outputs), `targets` `[N, 3]` bins (`vlp_data::patch_rgb_targets`)
/// at the masked patches; negative bins mark padding rows, left out. A bin
/// of 256 or more is an error, which costs a read of one value back from
/// the device; the MPP objective reads nothing, as `vlp_data` builds its
/// bins from bytes.
pub fn masked_patch_loss<B: Backend>(
    logits: Tensor<B, 3>,
    targets: Tensor<B, 2, Int>,
) -> crate::Result<Tensor<B, 1>> {
    let out_of_range = targets
        .clone()
        .greater_equal_elem(RGB_BINS as i64)
        .any()
        .into_scalar();
    if out_of_range.elem::<bool>() {
        return Err(value_error(
            "masked patch prediction targets",
            format!("bins must lie in 0..{RGB_BINS} (negative: padding)"),
        ));
    }
    patch_bin_loss(logits, targets)
}

/// [`masked_patch_loss`] for bins known to lie below 256 (the shapes are
/// checked, the values not).
pub(crate) fn patch_bin_loss<B: Backend>(
    logits: Tensor<B, 3>,
    targets: Tensor<B, 2, Int>,
) -> crate::Result<Tensor<B, 1>> {
    let [rows, channels, bins] = logits.dims();
    if channels != 3 || bins != RGB_BINS || targets.dims() != [rows, 3] {
        return Err(shape_error(
            "masked patch prediction logits / targets",
            format!("[N, 3, {RGB_BINS}] and [N, 3]"),
            &[rows, channels, bins],
        ));
    }
    Ok(cross_entropy(
        logits.reshape([rows * 3, RGB_BINS]),
        targets.reshape([rows * 3]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray;

    #[test]
    fn mpp_logits_are_channel_major() {
        let _serial = crate::test_serial();
        let device = Default::default();
        B::seed(&device, 0);
        let mut head = MppHeadConfig::new(4).init::<B>(&device);
        head.decoder.weight = Param::from_tensor(Tensor::zeros([4, 3 * RGB_BINS], &device));
        let bias: Vec<f32> = (0..3 * RGB_BINS).map(|k| k as f32).collect();
        head.decoder.bias = Some(Param::from_tensor(Tensor::from_floats(
            bias.as_slice(),
            &device,
        )));
        let logits = head.forward(Tensor::<B, 2>::ones([2, 4], &device));
        assert_eq!(logits.dims(), [2, 3, RGB_BINS]);
        // Output k of the decoder is channel k / 256, bin k % 256.
        let green_7 = logits.slice([1..2, 1..2, 7..8]).into_scalar();
        assert_eq!(green_7, (RGB_BINS + 7) as f32);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let device = Default::default();
        let logits = Tensor::<B, 2>::zeros([2, 4], &device);
        let probs = Tensor::<B, 2>::zeros([2, 7], &device);
        assert!(feature_classification_hard_loss(logits.clone(), probs.clone()).is_err());
        assert!(feature_classification_kl_loss(logits, probs).is_err());
    }
}
