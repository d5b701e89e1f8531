//! The tiny model configurations of the learning and parity tests, one
//! builder per family (survey §3: single-stream, dual-stream, fusion, dual
//! encoder, encoder-decoder and PrefixLM), all 32 wide with 4 heads and no
//! dropout, so that a change of a configuration's shape touches this file
//! alone.

use vlp_data::synthetic::DetectorConfig;
use vlp_features::{PatchEmbeddingsConfig, RegionEmbeddingsConfig, VisualEmbeddingsConfig};
use vlp_models::{
    DualEncoderConfig, DualStreamConfig, DualStreamKind, EncoderDecoderConfig, FusionConfig,
    PrefixLmConfig, SingleStreamConfig, TransformerSize,
};
use vlp_objectives::UniterObjectives;

use crate::batchers::IMAGE_SIZE;

/// Hidden width of the tiny models.
pub const WIDTH: usize = 32;
/// Attention heads of the tiny models.
const HEADS: usize = 4;
/// Feed-forward width of the tiny models.
const INTERMEDIATE: usize = 64;

/// A stack of `layers` layers, 32 wide, 4 heads, inner width 64, no
/// dropout (pre-norm unless changed).
fn tiny_size(width: usize, layers: usize) -> TransformerSize {
    TransformerSize::of(width, HEADS, INTERMEDIATE, layers).with_dropout(0.0)
}

/// ViT patches of 8 pixels of the tiny worlds' images, `width` wide, no dropout.
pub fn tiny_patches(width: usize) -> VisualEmbeddingsConfig {
    VisualEmbeddingsConfig::Patches(
        PatchEmbeddingsConfig::new(IMAGE_SIZE, 8, width).with_dropout(0.0),
    )
}

/// The default detector's regions, `width` wide, no dropout.
pub fn tiny_regions(width: usize) -> VisualEmbeddingsConfig {
    VisualEmbeddingsConfig::Regions(
        RegionEmbeddingsConfig::new(DetectorConfig::default().feature_size, width)
            .with_dropout(0.0),
    )
}

/// A single-stream transformer of `num_layers` layers, 32 wide, 4 heads,
/// no dropout.
pub fn tiny_single_stream(
    vocab_size: usize,
    visual: VisualEmbeddingsConfig,
    num_layers: usize,
) -> SingleStreamConfig {
    SingleStreamConfig::new(vocab_size, visual).with_transformer(tiny_size(WIDTH, num_layers))
}

/// MLM, ITM and ITC summed, as `cargo xtask pretrain` trains by default.
pub fn mlm_itm_itc() -> UniterObjectives {
    UniterObjectives::new()
        .with_mlm(1.0)
        .with_itm(1.0)
        .with_itc(1.0)
}

/// A dual-stream model of `kind` (ViLBERT co-attention or LXMERT
/// cross-modality layers): two text and two visual layers, one cross layer;
/// the visual stream as wide as `visual`'s embeddings.
pub fn tiny_dual_stream(
    vocab_size: usize,
    kind: DualStreamKind,
    visual: VisualEmbeddingsConfig,
) -> DualStreamConfig {
    let v_hidden = visual.hidden_size();
    DualStreamConfig::new(vocab_size, visual)
        .with_kind(kind)
        .with_text(tiny_size(WIDTH, 2).with_norm_first(false))
        .with_vision(tiny_size(v_hidden, 2).with_norm_first(false))
        .with_bi_hidden_size(WIDTH)
        .with_bi_num_heads(HEADS)
        .with_num_cross_layers(1)
}

/// An ALBEF fusion model: one text layer, one fusion layer, a two-layer
/// image encoder.
pub fn tiny_fusion(vocab_size: usize, visual: VisualEmbeddingsConfig) -> FusionConfig {
    FusionConfig::new(vocab_size, visual)
        .with_text(tiny_size(WIDTH, 1).with_norm_first(false))
        .with_num_fusion_layers(1)
        .with_vision(tiny_size(WIDTH, 2))
}

/// A CLIP dual encoder, both towers and the projection 32 wide.
pub fn tiny_dual_encoder(vocab_size: usize, visual: VisualEmbeddingsConfig) -> DualEncoderConfig {
    DualEncoderConfig::new(vocab_size, visual)
        .with_text(tiny_size(WIDTH, 2))
        .with_vision(tiny_size(WIDTH, 2))
        .with_projection_dim(WIDTH)
}

/// A SimVLM encoder-decoder (the configuration's default depths).
pub fn tiny_encoder_decoder(
    vocab_size: usize,
    visual: VisualEmbeddingsConfig,
) -> EncoderDecoderConfig {
    EncoderDecoderConfig::new(vocab_size, visual).with_transformer(tiny_size(WIDTH, 2))
}

/// A SimVLM PrefixLM stack of two layers.
pub fn tiny_prefix_lm(vocab_size: usize, visual: VisualEmbeddingsConfig) -> PrefixLmConfig {
    PrefixLmConfig::new(vocab_size, visual).with_transformer(tiny_size(WIDTH, 2))
}
