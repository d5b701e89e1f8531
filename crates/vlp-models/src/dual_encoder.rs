//! Dual encoder (CLIP): a causal text transformer and an image transformer
//! with no fusion at all, each projected (linear, no bias) into one shared
//! space where a learned `logit_scale` turns cosine similarities into
//! contrastive logits.
//!
//! The text tower is CLIP's ([`ClipTextTransformer`]: causal self-attention,
//! pre-norm, final LayerNorm). CLIP pools the text at its end-of-text token,
//! which its tokenizer puts last; here the text is pooled at its last
//! non-padding token — the same position for CLIP-tokenised text, and the
//! closing `[SEP]` for the project's WordPiece tokenizer — so no token id
//! is configured. Texts are padded on the right. Under causal attention that
//! last token is the only one that has seen the whole text.
//!
//! The image tower reads any visual extractor's tokens (patches, grid cells,
//! regions), prepends CLIP's `class_embedding`, and pools that token through
//! `post_layernorm`, so region features pool the same way as pixels.
//! [`DualEncoderPooling::Mean`] averages the real tokens of both towers
//! instead.

use burn::module::Param;
use burn::nn::{Initializer, LayerNorm, Linear, LinearConfig};
use burn::prelude::*;
use vlp_data::VisualBatch;
use vlp_features::{PatchEmbeddingsConfig, VisualEmbeddings, VisualEmbeddingsConfig, VisualTokens};

use crate::clip_text::{ClipTextConfig, ClipTextTransformer};
use crate::clip_vision::init_clip_vision_stack;
use crate::config_error::{or_panic, ConfigError};
use crate::encoder::TransformerEncoder;
use crate::feed_forward::Activation;
use crate::pooling::mean_pool;
use crate::size::{validate_two_towers, TransformerSize};

/// How each tower becomes one vector. Serialised in lower case (`"clip"`,
/// `"mean"`, as `pooling` is written); the variant names are read too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DualEncoderPooling {
    /// CLIP: the text's last real token, the image's class token.
    #[default]
    #[serde(alias = "Clip")]
    Clip,
    /// The mean of the real tokens of each tower.
    #[serde(alias = "Mean")]
    Mean,
}

/// Configuration of [`DualEncoderModel`]. The defaults are a tiny model for
/// CPU tests; [`DualEncoderConfig::clip_base`] is CLIP ViT-B/16.
#[derive(Config, Debug)]
pub struct DualEncoderConfig {
    /// Vocabulary size of the tokenizer.
    pub vocab_size: usize,
    /// The visual extractor; its `hidden_size` must equal `vision.hidden_size`.
    pub visual: VisualEmbeddingsConfig,
    /// The text tower (CLIP's: pre-norm, causal). Default: 128 wide, 4
    /// heads, inner 512, 2 layers, no dropout.
    #[config(default = "TransformerSize::new().with_dropout(0.0)")]
    pub text: TransformerSize,
    /// Longest text the position table covers (CLIP: 77).
    #[config(default = 64)]
    pub max_text_len: usize,
    /// The image tower over the extractor's tokens. Default: 128 wide, 4
    /// heads, inner 512, 2 layers, pre-norm, no dropout.
    #[config(default = "TransformerSize::new().with_dropout(0.0)")]
    pub vision: TransformerSize,
    /// Width of the shared embedding space.
    #[config(default = 128)]
    pub projection_dim: usize,
    /// Initial `logit_scale` = ln(1 / 0.07).
    #[config(default = 2.6592)]
    pub logit_scale_init: f64,
    /// LayerNorm epsilon of both towers.
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
    /// Feed-forward non-linearity of both towers (CLIP's `quick_gelu`).
    #[config(default = "Activation::QuickGelu")]
    pub activation: Activation,
    /// How each tower becomes one vector.
    #[config(default = "DualEncoderPooling::Clip")]
    pub pooling: DualEncoderPooling,
}

/// CLIP's towers, projections and temperature (Hugging Face `CLIPModel`
/// names, `vision_model.*` flattened: `class_embedding`, `pre_layrnorm`,
/// `vision_encoder`, `post_layernorm`).
#[derive(Module, Debug)]
pub struct DualEncoderModel<B: Backend> {
    /// The causal text tower.
    pub text_model: ClipTextTransformer<B>,
    /// The visual extractor feeding the image tower.
    pub visual: VisualEmbeddings<B>,
    /// `[1, 1, Hv]`.
    pub class_embedding: Param<Tensor<B, 3>>,
    /// LayerNorm before the image layers.
    pub pre_layrnorm: LayerNorm<B>,
    /// Pre-norm layers without a final LayerNorm.
    pub vision_encoder: TransformerEncoder<B>,
    /// LayerNorm of the pooled image token.
    pub post_layernorm: LayerNorm<B>,
    /// Pooled text → shared space, no bias.
    pub text_projection: Linear<B>,
    /// Pooled image → shared space, no bias.
    pub visual_projection: Linear<B>,
    /// `[1]`: similarities are scaled by its exponential.
    pub logit_scale: Param<Tensor<B, 1>>,
    /// How each tower becomes one vector.
    #[module(skip)]
    pub pooling: DualEncoderPooling,
}

/// CLIP clamps the logit scale at 100 (a temperature no lower than 0.01).
const MAX_LOGIT_SCALE: f64 = 4.605_170_185_988_092; // ln 100

impl DualEncoderConfig {
    /// CLIP ViT-B/16 (`openai/clip-vit-base-patch16`): text 12 layers, 512
    /// wide, 8 heads, inner 2048, 77 positions, vocabulary 49408; vision
    /// 224-pixel images in 16-pixel patches, 12 layers, 768 wide, 12 heads,
    /// inner 3072; projections to 512.
    pub fn clip_base(vocab_size: usize) -> Self {
        Self::new(
            vocab_size,
            VisualEmbeddingsConfig::Patches(
                PatchEmbeddingsConfig::new(224, 16, 768).with_dropout(0.0),
            ),
        )
        .with_text(TransformerSize::of(512, 8, 2048, 12).with_dropout(0.0))
        .with_max_text_len(77)
        .with_vision(TransformerSize::of(768, 12, 3072, 12).with_dropout(0.0))
        .with_projection_dim(512)
    }

    /// Whether the values can build a model; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_two_towers(&self.visual, &self.text, &self.vision)?;
        if !self.text.norm_first {
            return Err(ConfigError::new(
                "text.norm_first",
                false,
                "CLIP's text tower is pre-norm",
            ));
        }
        if self.max_text_len == 0 {
            return Err(ConfigError::new(
                "max_text_len",
                0,
                "the text needs at least one position",
            ));
        }
        Ok(())
    }

    /// # Panics
    ///
    /// When [`validate`](Self::validate) fails, with its message.
    pub fn init<B: Backend>(&self, device: &B::Device) -> DualEncoderModel<B> {
        or_panic(self.validate());
        let (text, vision) = (&self.text, &self.vision);
        let projection = |width| {
            LinearConfig::new(width, self.projection_dim)
                .with_bias(false)
                .init(device)
        };
        let text_model = ClipTextConfig::new(
            self.vocab_size,
            text.hidden_size,
            text.num_layers,
            text.num_attention_heads,
            text.intermediate_size,
        )
        .with_max_position_embeddings(self.max_text_len)
        .with_layer_norm_eps(self.layer_norm_eps)
        .with_activation(self.activation)
        .with_dropout(text.dropout)
        .init(device);
        let visual = self.visual.init(device);
        let class_embedding = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        }
        .init([1, 1, vision.hidden_size], device);
        let (pre_layrnorm, vision_encoder, post_layernorm) =
            init_clip_vision_stack(vision, self.layer_norm_eps, self.activation, device);
        DualEncoderModel {
            text_model,
            visual,
            class_embedding,
            pre_layrnorm,
            vision_encoder,
            post_layernorm,
            text_projection: projection(text.hidden_size),
            visual_projection: projection(vision.hidden_size),
            logit_scale: Initializer::Constant {
                value: self.logit_scale_init,
            }
            .init([1], device),
            pooling: self.pooling,
        }
    }
}

impl<B: Backend> DualEncoderModel<B> {
    /// The text tower: `ids` `[B, T]`, `padding` `[B, T]` (right-padded) →
    /// `[B, T, Ht]` after the final LayerNorm.
    pub fn encode_text(&self, ids: Tensor<B, 2, Int>, padding: Tensor<B, 2, Bool>) -> Tensor<B, 3> {
        self.text_model.forward(ids, padding).last_hidden_state
    }

    /// The image tower: pixels or regions → `[B, 1 + V, Hv]` tokens, class
    /// token first (never padding), with the extractor's padding after it.
    pub fn encode_image(&self, visual: &VisualBatch<B>) -> VisualTokens<B> {
        let image = self.visual.forward(visual);
        let [batch, _, width] = image.tokens.dims();
        let class = self.class_embedding.val().expand([batch, 1, width]);
        let padding = image.padding.map(|padding| {
            let class = Tensor::<B, 2, Int>::zeros([batch, 1], &padding.device());
            Tensor::cat(vec![class, padding.int()], 1).bool()
        });
        let x = self
            .pre_layrnorm
            .forward(Tensor::cat(vec![class, image.tokens], 1));
        VisualTokens {
            tokens: self.vision_encoder.forward(x, padding.clone()),
            padding,
        }
    }

    /// `[B, T, Ht]` text tokens with their `[B, T]` padding → `[B, Ht]`.
    pub fn pool_text(&self, hidden: Tensor<B, 3>, padding: Tensor<B, 2, Bool>) -> Tensor<B, 2> {
        match self.pooling {
            DualEncoderPooling::Mean => mean_pool(hidden, Some(padding)),
            DualEncoderPooling::Clip => {
                let [batch, _, width] = hidden.dims();
                let last = padding
                    .bool_not()
                    .float()
                    .sum_dim(1)
                    .int()
                    .sub_scalar(1)
                    .clamp_min(0)
                    .reshape([batch, 1, 1])
                    .expand([batch, 1, width]);
                hidden.gather(1, last).reshape([batch, width])
            }
        }
    }

    /// Encoded image tokens (from [`encode_image`](Self::encode_image)) → `[B, Hv]`.
    pub fn pool_image(&self, image: VisualTokens<B>) -> Tensor<B, 2> {
        let [batch, len, width] = image.tokens.dims();
        let pooled = match self.pooling {
            DualEncoderPooling::Clip => image.tokens.narrow(1, 0, 1).reshape([batch, width]),
            DualEncoderPooling::Mean => {
                // No padding is all-visible padding (not `None`, whose mean
                // is computed another way): the sum over the count, as ever.
                let padding = image.padding.unwrap_or_else(|| {
                    Tensor::<B, 2, Int>::zeros([batch, len], &image.tokens.device()).bool()
                });
                mean_pool(image.tokens, Some(padding))
            }
        };
        self.post_layernorm.forward(pooled)
    }

    /// Projected, not normalised, text features `[B, D]`.
    pub fn text_features(
        &self,
        ids: Tensor<B, 2, Int>,
        padding: Tensor<B, 2, Bool>,
    ) -> Tensor<B, 2> {
        let hidden = self.encode_text(ids, padding.clone());
        self.text_projection
            .forward(self.pool_text(hidden, padding))
    }

    /// Projected, not normalised, image features `[B, D]`.
    pub fn image_features(&self, visual: &VisualBatch<B>) -> Tensor<B, 2> {
        let pooled = self.pool_image(self.encode_image(visual));
        self.visual_projection.forward(pooled)
    }

    /// The logit scale in use, `[1]`, clamped at ln 100 as CLIP does.
    pub fn logit_scale(&self) -> Tensor<B, 1> {
        self.logit_scale.val().clamp_max(MAX_LOGIT_SCALE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::{Distribution, TensorData, Tolerance};
    use vlp_data::RegionTensors;
    use vlp_features::RegionEmbeddingsConfig;

    type B = NdArray;

    fn model(pooling: DualEncoderPooling) -> DualEncoderModel<B> {
        DualEncoderConfig::new(
            20,
            VisualEmbeddingsConfig::Regions(RegionEmbeddingsConfig::new(6, 24).with_dropout(0.0)),
        )
        .with_text(TransformerSize::of(16, 2, 32, 2).with_dropout(0.0))
        .with_max_text_len(8)
        .with_vision(TransformerSize::of(24, 3, 48, 2).with_dropout(0.0))
        .with_projection_dim(10)
        .with_pooling(pooling)
        .init(&Default::default())
    }

    fn text(ids: Vec<i64>, real: usize) -> (Tensor<B, 2, Int>, Tensor<B, 2, Bool>) {
        let device = Default::default();
        let len = ids.len();
        (
            Tensor::from_data(TensorData::new(ids, [1, len]), &device),
            Tensor::from_data(
                TensorData::new((0..len).map(|t| t >= real).collect::<Vec<_>>(), [1, len]),
                &device,
            ),
        )
    }

    #[test]
    fn text_pools_at_its_last_real_token_and_ignores_padding() {
        for pooling in [DualEncoderPooling::Clip, DualEncoderPooling::Mean] {
            let model = model(pooling);
            let (ids, padding) = text(vec![2, 5, 6, 3], 4);
            let short = model.text_features(ids, padding);
            let (ids, padding) = text(vec![2, 5, 6, 3, 9, 9], 4);
            let long = model.text_features(ids, padding);
            assert_eq!(short.dims(), [1, 10]);
            long.into_data()
                .assert_approx_eq::<f32>(&short.clone().into_data(), Tolerance::absolute(1e-5));
            // Causal: the last token sees the first, so changing it moves the pooled text.
            let (ids, padding) = text(vec![7, 5, 6, 3], 4);
            let moved = (model.text_features(ids, padding) - short).abs().max();
            assert!(moved.into_scalar() > 1e-4, "{pooling:?}");
        }
        // CLIP pooling reads the last real token: the hidden state at position 3.
        let model = model(DualEncoderPooling::Clip);
        let (ids, padding) = text(vec![2, 5, 6, 3, 9], 4);
        let hidden = model.encode_text(ids, padding.clone());
        model
            .pool_text(hidden.clone(), padding)
            .into_data()
            .assert_approx_eq::<f32>(
                &hidden.narrow(1, 3, 1).reshape([1, 16]).into_data(),
                Tolerance::absolute(1e-7),
            );
    }

    #[test]
    fn images_pool_their_class_token_and_ignore_padded_regions() {
        let device = Default::default();
        let model = model(DualEncoderPooling::Clip);
        let regions = |count: usize, padded: Vec<i64>, features: Tensor<B, 3>| {
            VisualBatch::Regions(RegionTensors {
                features,
                boxes: Tensor::ones([1, count, 4], &device).mul_scalar(0.5),
                padding: Tensor::<B, 2, Int>::from_data(
                    TensorData::new(padded, [1, count]),
                    &device,
                )
                .bool(),
                soft_labels: None,
            })
        };
        let features = Tensor::<B, 3>::random([1, 2, 6], Distribution::Default, &device);
        let two = model.image_features(&regions(2, vec![0, 0], features.clone()));
        let extra = Tensor::random([1, 1, 6], Distribution::Default, &device);
        let padded = model.image_features(&regions(
            3,
            vec![0, 0, 1],
            Tensor::cat(vec![features.clone(), extra.clone()], 1),
        ));
        assert_eq!(two.dims(), [1, 10]);
        padded
            .into_data()
            .assert_approx_eq::<f32>(&two.clone().into_data(), Tolerance::absolute(1e-5));
        let three = model.image_features(&regions(
            3,
            vec![0, 0, 0],
            Tensor::cat(vec![features, extra], 1),
        ));
        assert!((three - two).abs().max().into_scalar() > 1e-4);
        assert!((model.logit_scale().into_scalar() - 2.6592).abs() < 1e-6);
    }
}
