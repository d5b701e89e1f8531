//! ResNet backbone (He et al. 2016) in torchvision's layout, without the
//! classifier: `[B, C, H, W] → [B, C_out, H/32, W/32]`.
//!
//! Field names follow torchvision's state-dict keys (`conv1`, `bn1`,
//! `layer1.0.conv1`, …, `layer4.2.bn3`), so loading its weights is a key
//! table. One deviation: torchvision's `downsample` is an `nn.Sequential`
//! (`downsample.0` conv, `downsample.1` BN); Burn's derive cannot name fields
//! `0`/`1`, so here they are `downsample.conv` and `downsample.bn` (remap
//! `downsample\.0\.` → `downsample.conv.` and `downsample\.1\.` →
//! `downsample.bn.`; `num_batches_tracked` has no counterpart). Burn's
//! PyTorch adapter maps BN `weight`/`bias` to `gamma`/`beta`.
//!
//! Bottlenecks carry their stride on the 3×3 convolution (torchvision's
//! "ResNet v1.5").

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::batch_norm::BatchNormMode;

/// Block type and depth of a [`ResNet`]. Serialised as torchvision names
/// them (`"resnet18"`, `"resnet50"`, as `model.cnn_layout` is written); the
/// variant names are read too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ResNetLayout {
    /// Basic blocks (two 3×3 convolutions), `[2, 2, 2, 2]` per stage.
    #[serde(rename = "resnet18", alias = "ResNet18")]
    ResNet18,
    /// Bottlenecks (1×1, 3×3, 1×1 with expansion 4), `[3, 4, 6, 3]` per stage.
    #[serde(rename = "resnet50", alias = "ResNet50")]
    ResNet50,
}

impl ResNetLayout {
    fn blocks_per_stage(self) -> [usize; 4] {
        match self {
            Self::ResNet18 => [2, 2, 2, 2],
            Self::ResNet50 => [3, 4, 6, 3],
        }
    }

    /// Output channels of a block relative to its inner width.
    fn expansion(self) -> usize {
        match self {
            Self::ResNet18 => 1,
            Self::ResNet50 => 4,
        }
    }
}

/// Configuration of [`ResNet`].
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// Block type and depth.
    pub layout: ResNetLayout,
    /// Channels of the stem and of the first stage's blocks; the stages use
    /// 1, 2, 4 and 8 times this (torchvision: 64).
    #[config(default = 64)]
    pub base_width: usize,
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Batch-normalisation behaviour of every BN layer.
    #[config(default = "BatchNormMode::Trainable")]
    pub batch_norm: BatchNormMode,
}

/// The four-stage ResNet trunk: `[B, C, H, W] → [B, out_channels, H/32, W/32]`
/// (sides rounded up at each of the five stride-2 steps).
#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    /// 7×7 stride-2 stem convolution, no bias.
    pub conv1: Conv2d<B>,
    /// BN after the stem convolution.
    pub bn1: BatchNorm<B>,
    /// 3×3 stride-2 max pooling.
    pub maxpool: MaxPool2d,
    /// Stride 1.
    pub layer1: Vec<Block<B>>,
    /// Stride 2.
    pub layer2: Vec<Block<B>>,
    /// Stride 2.
    pub layer3: Vec<Block<B>>,
    /// Stride 2.
    pub layer4: Vec<Block<B>>,
    /// Training BN or frozen running statistics, for every BN layer.
    #[module(skip)]
    pub batch_norm: BatchNormMode,
}

/// One residual block. A basic block has `conv1` (3×3, strided) and `conv2`
/// (3×3); a bottleneck has `conv1` (1×1), `conv2` (3×3, strided) and
/// `conv3` (1×1, ×4 channels). Both read
/// `relu(bn_last(conv_last(…relu(bn1(conv1(x)))…)) + shortcut(x))`.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    /// First convolution.
    pub conv1: Conv2d<B>,
    /// BN after `conv1`.
    pub bn1: BatchNorm<B>,
    /// Second convolution.
    pub conv2: Conv2d<B>,
    /// BN after `conv2`.
    pub bn2: BatchNorm<B>,
    /// Bottlenecks only.
    pub conv3: Option<Conv2d<B>>,
    /// Bottlenecks only.
    pub bn3: Option<BatchNorm<B>>,
    /// Projection shortcut where the stride or the width changes.
    pub downsample: Option<Downsample<B>>,
}

/// Projection shortcut: 1×1 strided convolution and BN (torchvision's
/// `downsample.0` and `downsample.1`).
#[derive(Module, Debug)]
pub struct Downsample<B: Backend> {
    /// 1×1 strided convolution.
    pub conv: Conv2d<B>,
    /// BN after it.
    pub bn: BatchNorm<B>,
}

/// A bias-free convolution with torchvision's initialisation (Kaiming normal,
/// fan-out, ReLU gain).
fn conv<B: Backend>(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    device: &B::Device,
) -> Conv2d<B> {
    let pad = kernel / 2;
    Conv2dConfig::new(channels, [kernel; 2])
        .with_stride([stride; 2])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .with_initializer(Initializer::KaimingNormal {
            gain: 2f64.sqrt(),
            fan_out_only: true,
        })
        .init(device)
}

fn norm<B: Backend>(channels: usize, device: &B::Device) -> BatchNorm<B> {
    BatchNormConfig::new(channels).init(device)
}

impl ResNetConfig {
    /// Channels of the output feature map (512 for ResNet-18, 2048 for
    /// ResNet-50 at the default width).
    pub fn out_channels(&self) -> usize {
        self.base_width * 8 * self.layout.expansion()
    }

    /// Builds the trunk with torchvision's initialisation.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ResNet<B> {
        let width = self.base_width;
        let [n1, n2, n3, n4] = self.layout.blocks_per_stage();
        let mut in_channels = width;
        let mut stage = |planes: usize, blocks: usize, stride: usize| {
            let stage: Vec<Block<B>> = (0..blocks)
                .map(|i| {
                    let block =
                        self.block(in_channels, planes, if i == 0 { stride } else { 1 }, device);
                    in_channels = planes * self.layout.expansion();
                    block
                })
                .collect();
            stage
        };
        let layer1 = stage(width, n1, 1);
        let layer2 = stage(width * 2, n2, 2);
        let layer3 = stage(width * 4, n3, 2);
        let layer4 = stage(width * 8, n4, 2);
        ResNet {
            conv1: conv([self.in_channels, width], 7, 2, device),
            bn1: norm(width, device),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1,
            layer2,
            layer3,
            layer4,
            batch_norm: self.batch_norm,
        }
    }

    fn block<B: Backend>(
        &self,
        in_channels: usize,
        planes: usize,
        stride: usize,
        device: &B::Device,
    ) -> Block<B> {
        let out_channels = planes * self.layout.expansion();
        let downsample = (stride != 1 || in_channels != out_channels).then(|| Downsample {
            conv: conv([in_channels, out_channels], 1, stride, device),
            bn: norm(out_channels, device),
        });
        match self.layout {
            ResNetLayout::ResNet18 => Block {
                conv1: conv([in_channels, planes], 3, stride, device),
                bn1: norm(planes, device),
                conv2: conv([planes, planes], 3, 1, device),
                bn2: norm(planes, device),
                conv3: None,
                bn3: None,
                downsample,
            },
            ResNetLayout::ResNet50 => Block {
                conv1: conv([in_channels, planes], 1, 1, device),
                bn1: norm(planes, device),
                conv2: conv([planes, planes], 3, stride, device),
                bn2: norm(planes, device),
                conv3: Some(conv([planes, out_channels], 1, 1, device)),
                bn3: Some(norm(out_channels, device)),
                downsample,
            },
        }
    }
}

impl<B: Backend> ResNet<B> {
    /// `[B, C, H, W] → [B, out_channels, H/32, W/32]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        let bn = self.batch_norm;
        let x = relu(bn.forward(&self.bn1, self.conv1.forward(images)));
        let x = self.maxpool.forward(x);
        [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
            .into_iter()
            .flatten()
            .fold(x, |x, block| block.forward(x, bn))
    }

    /// Channels of the output feature map.
    pub fn out_channels(&self) -> usize {
        let last = self
            .layer4
            .last()
            .expect("a ResNet has four non-empty stages");
        let conv = last.conv3.as_ref().unwrap_or(&last.conv2);
        conv.weight.dims()[0]
    }
}

impl<B: Backend> Block<B> {
    /// `[B, C_in, H, W] → [B, C_out, H/s, W/s]`.
    pub fn forward(&self, input: Tensor<B, 4>, bn: BatchNormMode) -> Tensor<B, 4> {
        let shortcut = match &self.downsample {
            Some(down) => bn.forward(&down.bn, down.conv.forward(input.clone())),
            None => input.clone(),
        };
        let x = relu(bn.forward(&self.bn1, self.conv1.forward(input)));
        let mut x = bn.forward(&self.bn2, self.conv2.forward(x));
        if let (Some(conv3), Some(bn3)) = (&self.conv3, &self.bn3) {
            x = bn.forward(bn3, conv3.forward(relu(x)));
        }
        relu(x + shortcut)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::module::{ModuleVisitor, Param};
    use burn::tensor::Distribution;

    /// Each float tensor's dotted key and element count, as a state dict lists them.
    #[derive(Default)]
    pub(crate) struct Keys {
        path: Vec<String>,
        pub(crate) entries: Vec<(String, usize)>,
    }

    impl<B: Backend> ModuleVisitor<B> for Keys {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.entries
                .push((self.path.join("."), param.shape().num_elements()));
        }
    }

    pub(crate) fn keys<B: Backend, M: Module<B>>(module: &M) -> Keys {
        let mut keys = Keys::default();
        module.visit(&mut keys);
        keys
    }

    /// Parameters as PyTorch counts them: BN running statistics are buffers.
    fn trainable_count(keys: &Keys) -> usize {
        keys.entries
            .iter()
            .filter(|(key, _)| !key.ends_with("running_mean") && !key.ends_with("running_var"))
            .map(|(_, n)| n)
            .sum()
    }

    #[test]
    fn output_is_stride_32_with_the_layouts_width() {
        let device = Default::default();
        let images = Tensor::<NdArray, 4>::random([2, 3, 64, 96], Distribution::Default, &device);
        for (layout, channels) in [(ResNetLayout::ResNet18, 64), (ResNetLayout::ResNet50, 256)] {
            let config = ResNetConfig::new(layout).with_base_width(8);
            let resnet = config.init::<NdArray>(&device);
            assert_eq!(config.out_channels(), channels);
            assert_eq!(resnet.out_channels(), channels);
            assert_eq!(resnet.forward(images.clone()).dims(), [2, channels, 2, 3]);
        }
    }

    // torchvision (checked with 0.29.2): resnet18 has 11,689,512 parameters and resnet50
    // 25,557,032; their fc layers have 512·1000 + 1000 = 513,000 and
    // 2048·1000 + 1000 = 2,049,000, leaving 11,176,512 and 23,508,032.
    // By formula for ResNet-18 (convs without bias, BN = 2C):
    // stem 3·64·49 + 128 = 9,536; layer1 4·(64·64·9 + 128) = 147,968;
    // layer2 128·64·9 + 3·128·128·9 + 4·256 + (128·64 + 256) = 525,568;
    // layer3 2,099,712; layer4 8,393,728; total 11,176,512.
    #[test]
    fn parameter_counts_match_torchvision_without_fc() {
        let device = Default::default();
        for (layout, expected) in [
            (ResNetLayout::ResNet18, 11_176_512),
            (ResNetLayout::ResNet50, 23_508_032),
        ] {
            let resnet = ResNetConfig::new(layout).init::<NdArray>(&device);
            assert_eq!(trainable_count(&keys(&resnet)), expected, "{layout:?}");
        }
    }

    #[test]
    fn keys_follow_torchvision() {
        let device = Default::default();
        let resnet = ResNetConfig::new(ResNetLayout::ResNet50)
            .with_base_width(8)
            .init::<NdArray>(&device);
        let keys: Vec<String> = keys(&resnet).entries.into_iter().map(|(k, _)| k).collect();
        for key in [
            "conv1.weight",
            "bn1.gamma",
            "bn1.running_var",
            "layer1.0.conv1.weight",
            "layer1.0.conv3.weight",
            "layer1.0.bn3.beta",
            "layer1.0.downsample.conv.weight",
            "layer1.0.downsample.bn.running_mean",
            "layer3.5.conv2.weight",
            "layer4.2.bn3.gamma",
        ] {
            assert!(keys.iter().any(|k| k == key), "missing {key}");
        }
        assert!(!keys.iter().any(|k| k == "layer1.1.downsample.conv.weight"));
        assert!(!keys.iter().any(|k| k.ends_with("conv1.bias")));
    }

    #[test]
    fn strided_convolution_sits_where_torchvision_puts_it() {
        let device = Default::default();
        let basic = ResNetConfig::new(ResNetLayout::ResNet18)
            .with_base_width(8)
            .init::<NdArray>(&device);
        assert_eq!(basic.layer2[0].conv1.stride, [2, 2]);
        assert_eq!(basic.layer2[0].conv2.stride, [1, 1]);
        let bottleneck = ResNetConfig::new(ResNetLayout::ResNet50)
            .with_base_width(8)
            .init::<NdArray>(&device);
        assert_eq!(bottleneck.layer2[0].conv1.stride, [1, 1]);
        assert_eq!(bottleneck.layer2[0].conv2.stride, [2, 2]);
        assert_eq!(
            bottleneck.layer2[0]
                .downsample
                .as_ref()
                .unwrap()
                .conv
                .stride,
            [2, 2]
        );
    }
}
