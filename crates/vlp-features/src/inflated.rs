//! I3D inflation (Carreira & Zisserman 2017): a 2-D convolution becomes a
//! 3-D one whose kernel repeats the 2-D kernel over `k` time steps, divided
//! by `k`, so that a clip of one repeated image gives the 2-D response at
//! every time step; ImageNet weights thus initialise a video stem.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv3d, Conv3dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d, PaddingConfig3d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::batch_norm::BatchNormMode;
use crate::resnet::ResNet;

/// Why a convolution cannot be inflated.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InflateError {
    /// Time padding is `k/2` on both sides, so `k` must be odd.
    #[error("time kernel {0} is not odd: the inflated convolution pads k/2 frames on each side")]
    EvenTimeKernel(usize),
    /// Burn's 3-D convolution pads symmetrically only.
    #[error("2-D padding {0:?} is asymmetric; Burn's Conv3d pads each side equally")]
    AsymmetricPadding(PaddingConfig2d),
}

/// `[O, I, kh, kw]` → `[O, I, k, kh, kw]` with every time slice the 2-D
/// kernel divided by `k`, bias copied; stride 1 and padding `k/2` in time,
/// the spatial stride, dilation, groups and padding of `conv`. The new
/// parameters are fresh (not tied to `conv`).
pub fn inflate_conv2d<B: Backend>(
    conv: &Conv2d<B>,
    time_kernel: usize,
) -> Result<Conv3d<B>, InflateError> {
    if time_kernel.is_multiple_of(2) {
        return Err(InflateError::EvenTimeKernel(time_kernel));
    }
    let time_pad = time_kernel / 2;
    let [kh, kw] = conv.kernel_size;
    let padding = match &conv.padding {
        PaddingConfig2d::Valid => PaddingConfig3d::Explicit(time_pad, 0, 0),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            PaddingConfig3d::Explicit(time_pad, *top, *left)
        }
        PaddingConfig2d::Same if conv.stride == [1, 1] && kh % 2 == 1 && kw % 2 == 1 => {
            PaddingConfig3d::Explicit(time_pad, kh / 2, kw / 2)
        }
        other => return Err(InflateError::AsymmetricPadding(other.clone())),
    };
    let weight = conv
        .weight
        .val()
        .detach()
        .unsqueeze_dim::<5>(2)
        .repeat_dim(2, time_kernel)
        .div_scalar(time_kernel as f64)
        // A leaf again: an autodiff backend tracks only leaves as parameters.
        .detach();
    Ok(Conv3d {
        weight: Param::from_tensor(weight),
        bias: conv
            .bias
            .as_ref()
            .map(|b| Param::from_tensor(b.val().detach())),
        stride: [1, conv.stride[0], conv.stride[1]],
        kernel_size: [time_kernel, kh, kw],
        dilation: [1, conv.dilation[0], conv.dilation[1]],
        groups: conv.groups,
        padding,
    })
}

/// [`inflate_conv2d`] for a convolution that moves one frame at a time
/// (temporal stride 1), written as a 2-D convolution over stacked frames:
/// `[O, I, kh, kw]` → `[O, k·I, kh, kw]` whose `j`-th block of `I` input
/// channels is the 2-D kernel divided by `k`. Fed the `k` frames
/// `t − k/2 ..= t + k/2` concatenated along channels (frame-major, zero
/// frames beyond the clip), it computes the inflated 3-D convolution's
/// output at step `t` with Burn's 2-D convolution, which every backend tunes
/// (ViViT's tubelet embedding with I3D's initialisation). The new
/// parameters are fresh (not tied to `conv`).
pub fn inflate_conv2d_channels<B: Backend>(
    conv: &Conv2d<B>,
    time_kernel: usize,
) -> Result<Conv2d<B>, InflateError> {
    if time_kernel.is_multiple_of(2) {
        return Err(InflateError::EvenTimeKernel(time_kernel));
    }
    let weight = conv
        .weight
        .val()
        .detach()
        .repeat_dim(1, time_kernel)
        .div_scalar(time_kernel as f64)
        // A leaf again: an autodiff backend tracks only leaves as parameters.
        .detach();
    Ok(Conv2d {
        weight: Param::from_tensor(weight),
        bias: conv
            .bias
            .as_ref()
            .map(|b| Param::from_tensor(b.val().detach())),
        stride: conv.stride,
        kernel_size: conv.kernel_size,
        dilation: conv.dilation,
        groups: conv.groups,
        padding: conv.padding.clone(),
    })
}

/// Configuration of [`InflatedStem`].
#[derive(Config, Debug)]
pub struct InflatedStemConfig {
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Output channels (ResNet's stem width).
    #[config(default = 64)]
    pub out_channels: usize,
    /// Odd temporal extent of the 7×7 convolution.
    #[config(default = 5)]
    pub time_kernel: usize,
    /// Temporal stride of the convolution.
    #[config(default = 1)]
    pub time_stride: usize,
    /// Batch-normalisation behaviour of the stem's BN.
    #[config(default = "BatchNormMode::Trainable")]
    pub batch_norm: BatchNormMode,
}

/// ResNet's stem in 3-D: `k×7×7` convolution (stride `(s_t, 2, 2)`), BN,
/// ReLU and a `1×3×3` max pool (stride `(1, 2, 2)`):
/// `[B, C, T, H, W] → [B, C_out, T/s_t, H/4, W/4]`. Field names are the
/// ResNet stem's, so [`InflatedStem::from_resnet`] is a copy.
#[derive(Module, Debug)]
pub struct InflatedStem<B: Backend> {
    /// `k×7×7` convolution, no bias.
    pub conv1: Conv3d<B>,
    /// BN after the convolution.
    pub bn1: BatchNorm<B>,
    /// Spatial only, applied to each time step.
    pub maxpool: MaxPool2d,
    /// Training BN or frozen running statistics.
    #[module(skip)]
    pub batch_norm: BatchNormMode,
}

impl InflatedStemConfig {
    /// Builds the stem; an even `time_kernel` is an error.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<InflatedStem<B>, InflateError> {
        if self.time_kernel.is_multiple_of(2) {
            return Err(InflateError::EvenTimeKernel(self.time_kernel));
        }
        let t = self.time_kernel;
        Ok(InflatedStem {
            conv1: Conv3dConfig::new([self.in_channels, self.out_channels], [t, 7, 7])
                .with_stride([self.time_stride, 2, 2])
                .with_padding(PaddingConfig3d::Explicit(t / 2, 3, 3))
                .with_bias(false)
                .init(device),
            bn1: BatchNormConfig::new(self.out_channels).init(device),
            maxpool: stem_pool(),
            batch_norm: self.batch_norm,
        })
    }
}

fn stem_pool() -> MaxPool2d {
    MaxPool2dConfig::new([3, 3])
        .with_strides([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init()
}

impl<B: Backend> InflatedStem<B> {
    /// The stem of `resnet` inflated over `time_kernel` frames (odd) with
    /// temporal stride `time_stride`; BN and pooling are copied.
    pub fn from_resnet(
        resnet: &ResNet<B>,
        time_kernel: usize,
        time_stride: usize,
    ) -> Result<Self, InflateError> {
        let mut conv1 = inflate_conv2d(&resnet.conv1, time_kernel)?;
        conv1.stride[0] = time_stride;
        Ok(Self {
            conv1,
            bn1: resnet.bn1.clone(),
            maxpool: resnet.maxpool.clone(),
            batch_norm: resnet.batch_norm,
        })
    }

    /// `[B, C, T, H, W] → [B, C_out, T', H/4, W/4]`.
    pub fn forward(&self, clip: Tensor<B, 5>) -> Tensor<B, 5> {
        let x = relu(self.batch_norm.forward(&self.bn1, self.conv1.forward(clip)));
        let [batch, channels, frames, height, width] = x.dims();
        let x = x
            .swap_dims(1, 2)
            .reshape([batch * frames, channels, height, width]);
        let x = self.maxpool.forward(x);
        let [_, _, height, width] = x.dims();
        x.reshape([batch, frames, channels, height, width])
            .swap_dims(1, 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resnet::{ResNetConfig, ResNetLayout};
    use burn::backend::NdArray;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::Distribution;

    /// `[B, C, H, W]` repeated over `frames` time steps: `[B, C, T, H, W]`.
    fn constant_clip(image: Tensor<NdArray, 4>, frames: usize) -> Tensor<NdArray, 5> {
        image.unsqueeze_dim::<5>(2).repeat_dim(2, frames)
    }

    fn max_gap(a: Tensor<NdArray, 4>, b: Tensor<NdArray, 4>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    #[test]
    fn a_constant_clip_gives_the_2d_response_at_every_unpadded_step() {
        let device = Default::default();
        let conv = Conv2dConfig::new([3, 4], [3, 3])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init::<NdArray>(&device);
        let image = Tensor::<NdArray, 4>::random([2, 3, 9, 8], Distribution::Default, &device);
        let expected = conv.forward(image.clone()); // [2, 4, 5, 4]
        for time_kernel in [1, 3, 5] {
            let inflated = inflate_conv2d(&conv, time_kernel).unwrap();
            let frames = 6;
            let out = inflated.forward(constant_clip(image.clone(), frames));
            assert_eq!(out.dims(), [2, 4, frames, 5, 4]);
            // Steps whose window stays inside the clip (no zero padding).
            for t in time_kernel / 2..frames - time_kernel / 2 {
                let step = out
                    .clone()
                    .slice([0..2, 0..4, t..t + 1, 0..5, 0..4])
                    .reshape([2, 4, 5, 4]);
                let gap = max_gap(step, expected.clone());
                assert!(gap < 1e-5, "k = {time_kernel}, t = {t}: {gap}");
            }
        }
    }

    #[test]
    fn the_channel_inflation_is_the_3d_inflation_on_stacked_frames() {
        let device = Default::default();
        let conv = Conv2dConfig::new([3, 4], [2, 2])
            .with_stride([2, 2])
            .init::<NdArray>(&device);
        let clip = Tensor::<NdArray, 5>::random([2, 3, 5, 6, 6], Distribution::Default, &device);
        let time_kernel = 3;
        let expected = inflate_conv2d(&conv, time_kernel)
            .unwrap()
            .forward(clip.clone());
        let flat = inflate_conv2d_channels(&conv, time_kernel).unwrap();
        // Zero frames before and after, then each step's window as channels.
        let zero = Tensor::<NdArray, 5>::zeros([2, 3, 1, 6, 6], &device);
        let padded = Tensor::cat(vec![zero.clone(), clip, zero], 2);
        for t in 0..5 {
            let window = padded
                .clone()
                .slice([0..2, 0..3, t..t + time_kernel])
                .swap_dims(1, 2)
                .reshape([2, 3 * time_kernel, 6, 6]);
            let step = expected
                .clone()
                .slice([0..2, 0..4, t..t + 1])
                .reshape([2, 4, 3, 3]);
            let gap = max_gap(flat.forward(window), step);
            assert!(gap < 1e-5, "t = {t}: {gap}");
        }
        assert_eq!(
            inflate_conv2d_channels(&conv, 2).unwrap_err(),
            InflateError::EvenTimeKernel(2)
        );
    }

    #[test]
    fn an_inflated_resnet_stem_matches_the_2d_stem_on_a_constant_clip() {
        let device = Default::default();
        let resnet = ResNetConfig::new(ResNetLayout::ResNet18)
            .with_base_width(8)
            .with_batch_norm(BatchNormMode::Frozen)
            .init::<NdArray>(&device);
        let image = Tensor::<NdArray, 4>::random([1, 3, 32, 32], Distribution::Default, &device);
        let bn = resnet.batch_norm;
        let expected = resnet.maxpool.forward(relu(
            bn.forward(&resnet.bn1, resnet.conv1.forward(image.clone())),
        ));
        let stem = InflatedStem::from_resnet(&resnet, 3, 1).unwrap();
        let out = stem.forward(constant_clip(image, 4));
        assert_eq!(out.dims(), [1, 8, 4, 8, 8]);
        for t in 1..3 {
            let step = out
                .clone()
                .slice([0..1, 0..8, t..t + 1, 0..8, 0..8])
                .reshape([1, 8, 8, 8]);
            assert!(max_gap(step, expected.clone()) < 1e-5);
        }
    }

    #[test]
    fn configured_stem_shapes_and_errors() {
        let device = Default::default();
        let stem = InflatedStemConfig::new()
            .with_out_channels(8)
            .with_time_kernel(3)
            .with_time_stride(2)
            .init::<NdArray>(&device)
            .unwrap();
        let clip = Tensor::<NdArray, 5>::random([2, 3, 8, 32, 32], Distribution::Default, &device);
        assert_eq!(stem.forward(clip).dims(), [2, 8, 4, 8, 8]);

        let even = InflatedStemConfig::new()
            .with_time_kernel(4)
            .init::<NdArray>(&device);
        assert_eq!(even.unwrap_err(), InflateError::EvenTimeKernel(4));
        let lopsided = Conv2dConfig::new([3, 4], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 0, 1, 1))
            .init::<NdArray>(&device);
        assert!(matches!(
            inflate_conv2d(&lopsided, 3),
            Err(InflateError::AsymmetricPadding(_))
        ));
    }
}
