//! CLIP's vision tower (`CLIPVisionTransformer`): patches from a
//! convolution without bias, a learned class embedding and positions,
//! LayerNorm before the pre-norm layers (`pre_layrnorm`, transformers'
//! spelling) and on the pooled class token (`post_layernorm`).

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig};
use burn::prelude::*;

use crate::encoder::{TransformerEncoder, TransformerEncoderConfig};
use crate::feed_forward::Activation;
use crate::layer::TransformerLayerConfig;

/// Configuration of [`ClipVisionTransformer`] (transformers' `CLIPVisionConfig`).
#[derive(Config, Debug)]
pub struct ClipVisionConfig {
    pub image_size: usize,
    pub patch_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    #[config(default = 3)]
    pub channels: usize,
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
    #[config(default = "Activation::QuickGelu")]
    pub activation: Activation,
}

impl ClipVisionConfig {
    pub fn num_patches(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> ClipVisionTransformer<B> {
        assert!(
            self.image_size.is_multiple_of(self.patch_size),
            "patch size {} does not divide image size {}",
            self.patch_size,
            self.image_size
        );
        let hidden = self.hidden_size;
        let norm = || {
            LayerNormConfig::new(hidden)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let layer = TransformerLayerConfig::new(hidden, self.num_heads, self.intermediate_size)
            .with_dropout(0.0)
            .with_norm_first(true)
            .with_layer_norm_eps(self.layer_norm_eps)
            .with_activation(self.activation);
        let encoder = TransformerEncoder {
            // CLIP normalises only the pooled token after the layers.
            final_norm: None,
            ..TransformerEncoderConfig::new(layer, self.num_layers).init(device)
        };
        let normal = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        ClipVisionTransformer {
            embeddings: ClipVisionEmbeddings {
                class_embedding: normal.init([hidden], device),
                patch_embedding: Conv2dConfig::new([self.channels, hidden], [self.patch_size; 2])
                    .with_stride([self.patch_size; 2])
                    .with_bias(false)
                    .init(device),
                position_embedding: EmbeddingConfig::new(1 + self.num_patches(), hidden)
                    .with_initializer(normal)
                    .init(device),
            },
            pre_layrnorm: norm(),
            encoder,
            post_layernorm: norm(),
        }
    }
}

/// `[B, C, S, S]` → `[B, 1 + P, H]`: the class embedding, then one token per
/// patch in row-major order, plus learned positions.
#[derive(Module, Debug)]
pub struct ClipVisionEmbeddings<B: Backend> {
    /// `[H]`.
    pub class_embedding: Param<Tensor<B, 1>>,
    /// `[H, C, p, p]`, stride `p`, no bias.
    pub patch_embedding: Conv2d<B>,
    /// `[1 + P, H]`.
    pub position_embedding: Embedding<B>,
}

impl<B: Backend> ClipVisionEmbeddings<B> {
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 3> {
        let [batch, _, _, _] = images.dims();
        let [tokens, hidden] = self.position_embedding.weight.dims();
        let patches = self.patch_embedding.forward(images); // [B, H, h, w]
        let [_, _, h, w] = patches.dims();
        assert_eq!(
            1 + h * w,
            tokens,
            "image size differs from the configured one"
        );
        let patches = patches.reshape([batch, hidden, h * w]).swap_dims(1, 2);
        let class = self
            .class_embedding
            .val()
            .reshape([1, 1, hidden])
            .expand([batch, 1, hidden]);
        Tensor::cat(vec![class, patches], 1) + self.position_embedding.weight.val().unsqueeze()
    }
}

/// The vision tower; its encoder has no final LayerNorm.
#[derive(Module, Debug)]
pub struct ClipVisionTransformer<B: Backend> {
    pub embeddings: ClipVisionEmbeddings<B>,
    pub pre_layrnorm: LayerNorm<B>,
    pub encoder: TransformerEncoder<B>,
    pub post_layernorm: LayerNorm<B>,
}

/// Output of [`ClipVisionTransformer::forward`].
#[derive(Debug, Clone)]
pub struct ClipVisionOutput<B: Backend> {
    /// `[B, 1 + P, H]`, straight from the last layer.
    pub last_hidden_state: Tensor<B, 3>,
    /// `[B, H]`: `post_layernorm` of the class token.
    pub pooled: Tensor<B, 2>,
}

impl<B: Backend> ClipVisionTransformer<B> {
    pub fn forward(&self, images: Tensor<B, 4>) -> ClipVisionOutput<B> {
        let x = self.pre_layrnorm.forward(self.embeddings.forward(images));
        let last_hidden_state = self.encoder.forward(x, None);
        let [batch, _, hidden] = last_hidden_state.dims();
        let class = last_hidden_state
            .clone()
            .narrow(1, 0, 1)
            .reshape([batch, hidden]);
        ClipVisionOutput {
            last_hidden_state,
            pooled: self.post_layernorm.forward(class),
        }
    }
}
