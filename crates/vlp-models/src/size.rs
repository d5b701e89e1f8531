//! The size of one transformer stack — width, heads, feed-forward width,
//! depth, norm placement, dropout (the survey's §2.2 backbone
//! hyper-parameters) — written once and nested in every family's config,
//! as Hugging Face nests `text_config` and `vision_config`. A family with
//! two towers holds a `text` and a `vision` size, so the visual width is
//! always spelled `vision.hidden_size`.

use burn::prelude::*;
use vlp_features::{
    TextEmbeddings, TextEmbeddingsConfig, VisualEmbeddings, VisualEmbeddingsConfig,
};

use crate::config_error::{check_heads, check_visual, dotted, or_panic, ConfigError};
use crate::encoder::{TransformerEncoder, TransformerEncoderConfig};
use crate::feed_forward::Activation;
use crate::layer::TransformerLayerConfig;

/// Width, heads, inner width, depth, norm placement and dropout of one
/// transformer stack. The defaults are the tiny stack the synthetic world
/// trains (128 wide, 4 heads, inner 512, 2 layers, pre-norm, dropout 0.1).
#[derive(Config, Debug, PartialEq)]
pub struct TransformerSize {
    /// Token width.
    #[config(default = 128)]
    pub hidden_size: usize,
    /// Attention heads; must divide `hidden_size`.
    #[config(default = 4)]
    pub num_attention_heads: usize,
    /// Feed-forward inner width (4 × hidden in BERT and ViT).
    #[config(default = 512)]
    pub intermediate_size: usize,
    /// Number of layers.
    #[config(default = 2)]
    pub num_layers: usize,
    /// Pre-norm (`x + f(LN(x))`, ViT, CLIP, SimVLM) when true, post-norm
    /// (`LN(x + f(x))`, BERT, UNITER) when false.
    #[config(default = true)]
    pub norm_first: bool,
    /// Dropout on attention probabilities and on every residual branch.
    #[config(default = 0.1)]
    pub dropout: f64,
}

impl TransformerSize {
    /// `hidden` wide, `heads` heads, inner width `intermediate`, `layers`
    /// layers (pre-norm, dropout 0.1 unless changed).
    pub fn of(hidden: usize, heads: usize, intermediate: usize, layers: usize) -> Self {
        Self::new()
            .with_hidden_size(hidden)
            .with_num_attention_heads(heads)
            .with_intermediate_size(intermediate)
            .with_num_layers(layers)
    }

    /// Whether the heads split the width; `prefix` names the size in the
    /// error's key (`"vision"` gives `vision.hidden_size`; `""` none).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        check_heads(
            &dotted(prefix, "hidden_size"),
            self.hidden_size,
            &dotted(prefix, "num_attention_heads"),
            self.num_attention_heads,
        )
    }

    /// One layer of this size (GELU, LayerNorm epsilon 1e-12 unless changed).
    pub fn layer(&self) -> TransformerLayerConfig {
        TransformerLayerConfig::new(
            self.hidden_size,
            self.num_attention_heads,
            self.intermediate_size,
        )
        .with_dropout(self.dropout)
        .with_norm_first(self.norm_first)
    }

    /// The stack: `num_layers` copies of `layer` (from [`layer`](Self::layer),
    /// with any further settings), a final LayerNorm when pre-norm.
    pub fn encoder(&self, layer: TransformerLayerConfig) -> TransformerEncoderConfig {
        TransformerEncoderConfig::new(layer, self.num_layers)
    }

    /// The stack with the layers' LayerNorm epsilon and activation set (as
    /// Hugging Face configs give them).
    pub fn encoder_with(
        &self,
        layer_norm_eps: f64,
        activation: Activation,
    ) -> TransformerEncoderConfig {
        self.encoder(
            self.layer()
                .with_layer_norm_eps(layer_norm_eps)
                .with_activation(activation),
        )
    }
}

/// What the one-stack families (single-stream, PrefixLM, encoder-decoder)
/// validate: the stack's heads, and a visual extractor as wide as the
/// stack. Keys are named under `transformer`.
pub(crate) fn validate_one_stack(
    visual: &VisualEmbeddingsConfig,
    transformer: &TransformerSize,
) -> Result<(), ConfigError> {
    check_visual(visual, "transformer.hidden_size", transformer.hidden_size)?;
    transformer.validate("transformer")
}

/// What the two-tower families (dual-stream, fusion, dual encoder)
/// validate: both towers' heads, and a visual extractor as wide as the
/// `vision` tower.
pub(crate) fn validate_two_towers(
    visual: &VisualEmbeddingsConfig,
    text: &TransformerSize,
    vision: &TransformerSize,
) -> Result<(), ConfigError> {
    check_visual(visual, "vision.hidden_size", vision.hidden_size)?;
    text.validate("text")?;
    vision.validate("vision")
}

/// The parts the one-stack families start with, initialised in this order
/// (their parameter order): text embeddings over `vocab_size` with
/// `max_text_len` positions, the visual extractor, and a stack of
/// `transformer`'s size.
pub(crate) fn init_one_stack<B: Backend>(
    vocab_size: usize,
    max_text_len: usize,
    visual: &VisualEmbeddingsConfig,
    transformer: &TransformerSize,
    device: &B::Device,
) -> (
    TextEmbeddings<B>,
    VisualEmbeddings<B>,
    TransformerEncoder<B>,
) {
    or_panic(validate_one_stack(visual, transformer));
    let embeddings = TextEmbeddingsConfig::new(vocab_size, transformer.hidden_size)
        .with_max_position_embeddings(max_text_len)
        .with_dropout(transformer.dropout)
        .init(device);
    let visual = visual.init(device);
    let encoder = transformer.encoder(transformer.layer()).init(device);
    (embeddings, visual, encoder)
}
