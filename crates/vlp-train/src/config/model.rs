//! `[model]`: the architecture family (survey §3: single-stream, dual-stream,
//! fusion, dual encoder, encoder-decoder, PrefixLM) with its own keys, the
//! visual features (survey §2.1: regions, grids, patches) and the shared
//! transformer widths.

use serde::{Deserialize, Serialize};
use vlp_features::{BoxGeometry, ResNetLayout};
use vlp_models::{DualEncoderPooling, DualStreamKind};

/// What the model sees of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VisualKind {
    /// ViT patches of the rendered pixels, trained end to end.
    Patches,
    /// CNN grid cells of the rendered pixels (ResNet, end to end by default).
    Grid,
    /// The synthetic world's frozen-detector regions.
    Regions,
    /// ViT patches of every frame of the synthetic world's motion clips
    /// (`data.num_frames` frames, captions of their motion): video-language
    /// pre-training with any architecture that reads visual tokens.
    Frames,
}

/// A part of the model that can be frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    /// The text embeddings (words, positions, token types).
    TextEmbeddings,
    /// The visual extractor.
    Visual,
    /// The shared transformer stack.
    Encoder,
}

/// How text and image meet (survey §3), with the settings only that
/// family has: `[model.architecture]` with `kind = "…"`. The shared keys of
/// `[model]` (widths, heads, visual features) apply to every kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Architecture {
    /// One transformer over `[text; image]` (UNITER, ViLT): `model.num_layers`.
    SingleStream {},
    /// Separate text and vision stacks joined by cross-modal layers
    /// (ViLBERT co-attention, LXMERT cross-modality layers); the text stack
    /// uses the `[model]` widths.
    DualStream {
        /// "vilbert" (co-attentional blocks) or "lxmert" (cross-modality layers).
        co_attention: DualStreamKind,
        /// Layers of the text stack.
        text_layers: usize,
        /// Layers of the vision stack.
        visual_layers: usize,
        /// Cross-modal layers (ViLBERT: the co-attentional blocks, each
        /// before one of the last text and vision layers).
        cross_layers: usize,
        /// Width of the vision stack (default: `model.hidden_size`).
        #[serde(default)]
        visual_hidden_size: Option<usize>,
        /// Heads of the vision stack (default: `model.num_heads`).
        #[serde(default)]
        visual_num_heads: Option<usize>,
        /// Feed-forward width of the vision stack (default: `model.intermediate_size`).
        #[serde(default)]
        visual_intermediate_size: Option<usize>,
        /// Width of ViLBERT's co-attention (default: the vision width).
        #[serde(default)]
        bi_hidden_size: Option<usize>,
        /// Heads of ViLBERT's co-attention (default: the vision heads).
        #[serde(default)]
        bi_num_heads: Option<usize>,
    },
    /// ALBEF: a text encoder and an image encoder, then fusion layers whose
    /// cross-attention reads the image; text and fusion use the `[model]` widths.
    Fusion {
        /// Text-only layers.
        text_layers: usize,
        /// Fusion layers (cross-attention to the image).
        fusion_layers: usize,
        /// Layers of the image encoder.
        image_layers: usize,
        /// Width of the image encoder (default: `model.hidden_size`).
        #[serde(default)]
        image_hidden_size: Option<usize>,
        /// Heads of the image encoder (default: `model.num_heads`).
        #[serde(default)]
        image_num_heads: Option<usize>,
        /// Feed-forward width of the image encoder (default: `model.intermediate_size`).
        #[serde(default)]
        image_intermediate_size: Option<usize>,
        /// ALBEF's momentum distillation: ITC also contrasts against the
        /// last `queue_size` pairs embedded by an EMA copy of the unimodal
        /// encoders (ALBEF: 65536); 0 (default) turns it off.
        #[serde(default)]
        queue_size: usize,
        /// EMA coefficient of the momentum copy (default 0.995).
        #[serde(default = "default_momentum")]
        momentum: f64,
        /// Weight of the momentum copy's soft ITC targets (default 0.4).
        #[serde(default = "default_distill_alpha")]
        distill_alpha: f64,
    },
    /// CLIP: a causal text transformer and an image transformer, no fusion,
    /// projections into a shared space; the image tower uses the `[model]` widths.
    DualEncoder {
        /// Layers of the text tower.
        text_layers: usize,
        /// Layers of the image tower.
        image_layers: usize,
        /// Width of the text tower (default: `model.hidden_size`).
        #[serde(default)]
        text_hidden_size: Option<usize>,
        /// Heads of the text tower (default: `model.num_heads`).
        #[serde(default)]
        text_num_heads: Option<usize>,
        /// Feed-forward width of the text tower (default: `model.intermediate_size`).
        #[serde(default)]
        text_intermediate_size: Option<usize>,
        /// Width of the shared embedding space.
        projection_dim: usize,
        /// "clip" (last text token, image class token) or "mean".
        #[serde(default)]
        pooling: DualEncoderPooling,
    },
    /// SimVLM's encoder-decoder: an encoder over `[image; text prefix]`, a
    /// decoder (causal self-attention, cross-attention to the encoder) over
    /// the rest of the text; trained with PrefixLM, evaluated by captioning.
    EncoderDecoder {
        /// Encoder layers.
        encoder_layers: usize,
        /// Decoder layers.
        decoder_layers: usize,
    },
    /// PrefixLM in one stack (`model.num_layers`): bidirectional over image
    /// and text prefix, causal over the rest; evaluated by captioning.
    PrefixLm {},
    /// HERO on clips (`model.visual = "frames"`): `model.num_layers`
    /// cross-modal layers over the caption and every frame's patch tokens,
    /// then a temporal transformer over the frames; MLM, video-text
    /// matching (`objectives.itm`), video-text contrastive (`objectives.itc`)
    /// and frame order modelling.
    Hero {
        /// Layers of the temporal transformer (HERO: 3).
        temporal_layers: usize,
        /// Weight of frame order modelling (default 1; 0 leaves it out):
        /// only this family has FOM, so its weight lives here.
        #[serde(default = "default_fom")]
        fom: f64,
    },
}

fn default_momentum() -> f64 {
    0.995
}

fn default_distill_alpha() -> f64 {
    0.4
}

fn default_fom() -> f64 {
    1.0
}

impl Default for Architecture {
    fn default() -> Self {
        Architecture::SingleStream {}
    }
}

impl VisualKind {
    /// The name in `model.visual`.
    pub fn name(self) -> &'static str {
        match self {
            VisualKind::Patches => "patches",
            VisualKind::Grid => "grid",
            VisualKind::Regions => "regions",
            VisualKind::Frames => "frames",
        }
    }
}

impl Architecture {
    /// The objective keys of an architecture with a fixed objective set
    /// (their weights can be changed); `None` for the single stream, which
    /// offers every objective of [`super::OBJECTIVES`].
    pub fn offered_objectives(&self) -> Option<&'static [&'static str]> {
        match self {
            Architecture::SingleStream {} => None,
            Architecture::DualStream { .. }
            | Architecture::Fusion { .. }
            | Architecture::Hero { .. } => Some(&["mlm", "itm", "itc"]),
            Architecture::DualEncoder { .. } => Some(&["itc"]),
            Architecture::EncoderDecoder { .. } | Architecture::PrefixLm {} => Some(&[]),
        }
    }

    /// The `kind` name.
    pub fn name(&self) -> &'static str {
        match self {
            Architecture::SingleStream {} => "single_stream",
            Architecture::DualStream { .. } => "dual_stream",
            Architecture::Fusion { .. } => "fusion",
            Architecture::DualEncoder { .. } => "dual_encoder",
            Architecture::EncoderDecoder { .. } => "encoder_decoder",
            Architecture::PrefixLm {} => "prefix_lm",
            Architecture::Hero { .. } => "hero",
        }
    }
}

/// Model settings (see `vlp_models::SingleStreamConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// The architecture family and its own settings.
    pub architecture: Architecture,
    /// Visual features: "patches", "grid", "regions" or "frames" (clips).
    pub visual: VisualKind,
    /// Grid features: ResNet layout, "resnet18" or "resnet50".
    pub cnn_layout: ResNetLayout,
    /// Grid features: width of the ResNet's first stage (64 = torchvision).
    pub cnn_base_width: usize,
    /// Grid features: BatchNorm with running statistics and fixed affine
    /// parameters (as detectors and ResNets fine-tuned at small batch do).
    pub cnn_frozen_batch_norm: bool,
    /// Components whose parameters are not trained: "text_embeddings",
    /// "visual", "encoder".
    pub frozen: Vec<Component>,
    /// Rows of the text position table (default: `data.max_text_len`);
    /// a checkpoint to start from fixes it (BERT: 512).
    pub max_position_embeddings: Option<usize>,
    /// Patch features: side of the square patches in pixels.
    pub patch_size: usize,
    /// Frame features: frames each patch token sees, odd (1: every frame on
    /// its own; 3: its neighbours too, the patch projection inflated as
    /// I3D inflates a 2-D stem, so a token can see motion).
    pub time_kernel: usize,
    /// Box geometry of region features: "lxmert4", "vilbert5" or "uniter7".
    pub box_geometry: BoxGeometry,
    /// Token width (the text stack's, or the image tower's in a dual encoder;
    /// the family keys above say which widths default to it).
    pub hidden_size: usize,
    /// Layers of the single-stream and PrefixLM stacks.
    pub num_layers: usize,
    /// Attention heads; must divide `hidden_size`.
    pub num_heads: usize,
    /// Feed-forward inner width.
    pub intermediate_size: usize,
    /// Dropout of the embeddings, the visual extractor and the layers
    /// (the dual encoder's towers have none, as CLIP's).
    pub dropout: f64,
    /// Pre-norm layers when true, post-norm when false.
    pub norm_first: bool,
    /// Width of the contrastive embedding space.
    pub itc_embed_dim: usize,
    /// Initial contrastive temperature.
    pub itc_temperature: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            architecture: Architecture::default(),
            visual: VisualKind::Patches,
            cnn_layout: ResNetLayout::ResNet18,
            cnn_base_width: 64,
            cnn_frozen_batch_norm: false,
            frozen: Vec::new(),
            max_position_embeddings: None,
            patch_size: 16,
            time_kernel: 1,
            box_geometry: BoxGeometry::CornersSizeArea7,
            hidden_size: 128,
            num_layers: 3,
            num_heads: 4,
            intermediate_size: 256,
            // The synthetic world never repeats an epoch, so there is nothing
            // to regularise; dropout would cost ~15% of the step time.
            dropout: 0.0,
            norm_first: true,
            itc_embed_dim: 128,
            itc_temperature: 0.07,
        }
    }
}
