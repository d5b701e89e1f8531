//! CLIP's vision tower (`CLIPVisionTransformer`): patches from a
//! convolution without bias, a learned class embedding and positions,
//! LayerNorm before the pre-norm layers (`pre_layrnorm`, transformers'
//! spelling) and on the pooled class token (`post_layernorm`).

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig};
use burn::prelude::*;
use vlp_features::{patch_projection, patch_tokens};

use crate::config_error::{check_heads, check_patches, or_panic, ConfigError};
use crate::encoder::TransformerEncoder;
use crate::feed_forward::Activation;
use crate::size::TransformerSize;

/// Configuration of [`ClipVisionTransformer`] (transformers' `CLIPVisionConfig`).
#[derive(Config, Debug)]
pub struct ClipVisionConfig {
    /// Side of the square input images in pixels (`image_size`).
    pub image_size: usize,
    /// Side of the square patches; must divide `image_size` (`patch_size`).
    pub patch_size: usize,
    /// Token width (`hidden_size`).
    pub hidden_size: usize,
    /// Layers (`num_hidden_layers`).
    pub num_layers: usize,
    /// Attention heads (`num_attention_heads`).
    pub num_heads: usize,
    /// Feed-forward inner width (`intermediate_size`).
    pub intermediate_size: usize,
    /// Input channels (`num_channels`).
    #[config(default = 3)]
    pub channels: usize,
    /// LayerNorm epsilon (`layer_norm_eps`).
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
    /// Feed-forward non-linearity (`hidden_act`).
    #[config(default = "Activation::QuickGelu")]
    pub activation: Activation,
}

/// CLIP's vision stack around its tokens, shared by [`ClipVisionTransformer`]
/// and the dual encoder's image tower: `pre_layrnorm`, layers of `size`
/// without a final LayerNorm, `post_layernorm` (applied to the pooled
/// token), initialised in that order.
pub(crate) fn init_clip_vision_stack<B: Backend>(
    size: &TransformerSize,
    layer_norm_eps: f64,
    activation: Activation,
    device: &B::Device,
) -> (LayerNorm<B>, TransformerEncoder<B>, LayerNorm<B>) {
    let norm = || {
        LayerNormConfig::new(size.hidden_size)
            .with_epsilon(layer_norm_eps)
            .init(device)
    };
    let pre_layrnorm = norm();
    let encoder = TransformerEncoder {
        // CLIP normalises only the pooled token after the layers.
        final_norm: None,
        ..size.encoder_with(layer_norm_eps, activation).init(device)
    };
    (pre_layrnorm, encoder, norm())
}

impl ClipVisionConfig {
    /// Patches per image.
    pub fn num_patches(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }

    /// The stack's size: CLIP's vision layers are pre-norm, without dropout.
    pub fn size(&self) -> TransformerSize {
        TransformerSize::of(
            self.hidden_size,
            self.num_heads,
            self.intermediate_size,
            self.num_layers,
        )
        .with_dropout(0.0)
    }

    /// Whether the values can build a model; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_patches("", self.image_size, self.patch_size)?;
        check_heads("hidden_size", self.hidden_size, "num_heads", self.num_heads)
    }

    /// The vision tower.
    ///
    /// # Panics
    ///
    /// When [`validate`](Self::validate) fails, with its message.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ClipVisionTransformer<B> {
        or_panic(self.validate());
        // The layers draw their weights before the embeddings (the order
        // seeded models were built in).
        let (pre_layrnorm, encoder, post_layernorm) =
            init_clip_vision_stack(&self.size(), self.layer_norm_eps, self.activation, device);
        let hidden = self.hidden_size;
        let normal = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        let embeddings = ClipVisionEmbeddings {
            class_embedding: normal.init([hidden], device),
            patch_embedding: patch_projection(self.channels, hidden, self.patch_size, false)
                .init(device),
            position_embedding: EmbeddingConfig::new(1 + self.num_patches(), hidden)
                .with_initializer(normal)
                .init(device),
        };
        ClipVisionTransformer {
            embeddings,
            pre_layrnorm,
            encoder,
            post_layernorm,
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
    /// `images` `[B, C, S, S]` at the configured size → `[B, 1 + P, H]`.
    ///
    /// # Panics
    ///
    /// If the images are not of the configured size (CLIP's position table
    /// is not resampled).
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 3> {
        let [batch, _, _, _] = images.dims();
        let [tokens, hidden] = self.position_embedding.weight.dims();
        let (patches, rows, cols) = patch_tokens(&self.patch_embedding, images);
        assert_eq!(
            1 + rows * cols,
            tokens,
            "image size differs from the configured one"
        );
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
    /// Class embedding, patches and positions.
    pub embeddings: ClipVisionEmbeddings<B>,
    /// LayerNorm before the layers (transformers spells it `pre_layrnorm`).
    pub pre_layrnorm: LayerNorm<B>,
    /// Pre-norm layers without a final LayerNorm.
    pub encoder: TransformerEncoder<B>,
    /// LayerNorm of the pooled class token.
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
    /// `images` `[B, C, S, S]` → [`ClipVisionOutput`].
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
