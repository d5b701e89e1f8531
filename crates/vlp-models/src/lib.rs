//! vlp-models: transformer building blocks and vision-language fusion models.
//!
//! - [`AttentionMask`]: the one builder of padding, causal, prefix and
//!   cross-attention masks.
//! - [`MultiHeadAttention`] (self, cross, and cached for decoding),
//!   [`FeedForward`], [`TransformerLayer`] (pre- or post-norm, optionally
//!   with cross-attention) and [`TransformerEncoder`].
//! - [`SingleStreamModel`]: merged attention over text and image tokens.
//! - [`HeroModel`] (video): a cross-modal transformer over the caption and
//!   every frame's patch tokens, then a temporal transformer over the
//!   frames (HERO).
//! - [`DualStreamModel`] (ViLBERT's [`CoAttentionLayer`]s, LXMERT's
//!   [`CrossModalityLayer`]s), [`FusionModel`] (ALBEF: unimodal encoders,
//!   then fusion layers with cross-attention) and [`DualEncoderModel`]
//!   (CLIP: no fusion), each with its `-base` configuration.
//! - [`TransformerSize`]: width, heads, inner width, depth, norm placement
//!   and dropout of one stack, nested in every family's config (`text`,
//!   `vision`, or `transformer` for one-stack models); every config has a
//!   `validate` returning a [`ConfigError`] that names the key.
//! - [`Pooler`]: BERT's `[CLS]` pooler; [`mean_pool`] and [`l2_normalize`]
//!   for sentence embeddings (e.g. mean-pooled [`BertModel`] output).
//! - Generative models (SimVLM): [`TransformerDecoder`] (causal
//!   self-attention + cross-attention, [`DecoderCache`] for incremental
//!   decoding), [`EncoderDecoderModel`] (encoder over `[image; text prefix]`,
//!   decoder over the rest), [`PrefixLmModel`] (one stack, prefix mask),
//!   [`LmHead`] tied to the word embeddings; [`greedy`] and [`beam_search`]
//!   over any [`NextTokenModel`].
//! - Hugging Face checkpoints (safetensors), built from the parts above:
//!   [`BertModel`] (the text tower, e.g. all-MiniLM-L6-v2), [`ViTModel`],
//!   [`ClipModel`] (vision and causal text towers, projections); import
//!   errors ([`ImportError`]) name every missing, unexpected or misshapen key.
//!
//! # Inference
//!
//! Burn's dropout is active only on an autodiff backend. Train on
//! `Autodiff<Flex>` (or another autodiff backend); run inference on the
//! inner backend, either by building or loading the model there
//! (`BertModel::<Flex>::from_pretrained`) or with `model.valid()`, which
//! returns the same weights on the inner backend. Otherwise a Hugging Face
//! model keeps its 0.1 dropout at inference and its outputs are noisy (see
//! [`BertModel`]). `cargo xtask embed` (and `cargo run --release -p
//! vlp-train --example embed_sentences`) embeds sentences with
//! all-MiniLM-L6-v2 (from `cargo xtask assets`) this way.

mod attention;
mod bert;
mod clip;
mod clip_text;
mod clip_vision;
mod co_attention;
mod config_error;
mod cross_modality;
mod decoder;
mod dual_encoder;
mod dual_stream;
mod encoder;
mod encoder_decoder;
mod feed_forward;
mod fusion;
mod generate;
mod hero;
mod import;
mod layer;
mod lm_head;
mod mask;
mod pooler;
mod pooling;
mod prefix_lm;
mod single_stream;
mod size;
mod vit;

pub use attention::{KeyValue, MultiHeadAttention, MultiHeadAttentionConfig};
pub use bert::{BertConfig, BertModel, BertOutput};
pub use clip::{ClipConfig, ClipModel, ClipOutput};
pub use clip_text::{ClipTextConfig, ClipTextEmbeddings, ClipTextOutput, ClipTextTransformer};
pub use clip_vision::{
    ClipVisionConfig, ClipVisionEmbeddings, ClipVisionOutput, ClipVisionTransformer,
};
pub use co_attention::{BiAttention, BiOutput, CoAttentionLayer, CoAttentionLayerConfig};
pub use config_error::ConfigError;
pub use cross_modality::{CrossModalityLayer, CrossModalityLayerConfig};
pub use decoder::{DecoderCache, TransformerDecoder, TransformerDecoderConfig};
pub use dual_encoder::{DualEncoderConfig, DualEncoderModel, DualEncoderPooling};
pub use dual_stream::{
    CrossModalLayers, DualStreamConfig, DualStreamKind, DualStreamModel, DualStreamOutput,
};
pub use encoder::{TransformerEncoder, TransformerEncoderConfig};
pub use encoder_decoder::{EncoderDecoderConfig, EncoderDecoderModel, EncoderDecoderState};
pub use feed_forward::{Activation, FeedForward, FeedForwardConfig};
pub use fusion::{FusionConfig, FusionModel, FusionOutput};
pub use generate::{beam_search, greedy, BeamSearchConfig, Generated, NextTokenModel};
pub use hero::{clip_frames, HeroConfig, HeroModel, HeroOutput};
pub use import::{ImportError, ImportReport, KeyMismatch, ShapeMismatch};
pub use layer::{CrossContext, TransformerLayer, TransformerLayerConfig};
pub use lm_head::{LmHead, LmHeadConfig};
pub use mask::{AttentionMask, HIDDEN};
pub use pooler::{PooledOutput, Pooler, PoolerConfig};
pub use pooling::{l2_normalize, mean_pool};
pub use prefix_lm::{PrefixLmConfig, PrefixLmModel, PrefixLmState};
pub use single_stream::{FusedOutput, SingleStreamConfig, SingleStreamModel};
pub use size::TransformerSize;
pub use vit::{ViTConfig, ViTModel, ViTOutput};
