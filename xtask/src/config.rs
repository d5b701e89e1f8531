//! The pre-training run's configuration: a TOML file (`--config FILE`),
//! overridden by flags, written back to `runs/<name>/config.toml`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::objectives_config::ObjectivesConfig;
use crate::presets::Preset;
use vlp_data::synthetic::{DetectorConfig, NUM_DETECTOR_LABELS};
use vlp_data::{AnswerVocabulary, SpecialTokens};
use vlp_features::{
    BatchNormMode, BoxGeometry, GridEmbeddingsConfig, PatchEmbeddingsConfig,
    RegionEmbeddingsConfig, ResNetConfig, ResNetLayout, VisualEmbeddingsConfig,
};
use vlp_models::{
    BertConfig, DualEncoderConfig, DualEncoderPooling, DualStreamConfig, DualStreamKind,
    EncoderDecoderConfig, FusionConfig, PrefixLmConfig, SingleStreamConfig,
};
use vlp_objectives::{
    AlbefPretrainerConfig, ClipPretrainerConfig, DualStreamPretrainerConfig, SimVlmArchitecture,
    SimVlmPretrainerConfig, UniterPretrainerConfig,
};

/// Everything a pre-training run depends on. Every field has a default; a
/// config file need only name what it changes. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainConfig {
    /// Seed of the synthetic world, the initialisation, masking and sampling.
    pub seed: u64,
    /// Optimiser steps.
    pub steps: usize,
    /// Image-text pairs per step.
    pub batch_size: usize,
    /// Micro-batches per step (1: the whole batch in one pass). Their forward
    /// and backward passes run at the same time on the CPU threads, which
    /// Burn's CPU backends leave half idle outside matmuls (see
    /// docs/benchmarks.md); on a GPU keep 1. Each is drawn as a batch of
    /// `batch_size / micro_batches` pairs with its share of
    /// `data.fused_pairs`; the step's loss is the mean of theirs, so
    /// contrastive and matching negatives come from within a micro-batch.
    /// With dropout the masks' draws interleave across threads, so runs are
    /// not bit-for-bit reproducible.
    pub micro_batches: usize,
    /// Peak AdamW learning rate (after linear warm-up; linear decay to 0).
    pub learning_rate: f64,
    /// Warm-up steps.
    pub warmup_steps: usize,
    pub weight_decay: f64,
    /// Log a metrics line every this many steps.
    pub log_every: usize,
    /// Number of held-out test pairs in the retrieval evaluation, and of
    /// held-out images captioned by captioning models.
    pub eval_candidates: usize,
    /// Beam size of held-out captioning (1: greedy).
    pub caption_beam_size: usize,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub objectives: ObjectivesConfig,
}

/// Synthetic world, tokenizer and masking settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Side of the square images in pixels.
    pub image_size: usize,
    /// Longest caption in tokens, `[CLS]`/`[SEP]` included.
    pub max_text_len: usize,
    /// Vocabulary size of the WordPiece tokenizer trained on the world's corpus.
    pub tokenizer_vocab_size: usize,
    /// Scenes whose captions and questions train the tokenizer.
    pub tokenizer_corpus_scenes: usize,
    /// Fraction of text tokens MLM predicts.
    pub mlm_probability: f64,
    /// Probability that an ITM example is turned into a negative pair.
    pub itm_negative_probability: f64,
    /// Examples of each batch that also go through the fused pass (ITM, and
    /// MLM on the matched ones); ITC always uses the whole batch.
    pub fused_pairs: usize,
    /// Fill half of each batch with hard-negative twins (same layout, one
    /// attribute changed) of the other half.
    pub hard_negative_twins: bool,
    /// Length of the synthetic detector's region features (`model.visual = "regions"`).
    pub region_feature_size: usize,
    /// Noise standard deviation of the synthetic detector's features.
    pub region_feature_noise: f32,
}

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
}

/// ResNet layout of grid features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CnnLayout {
    Resnet18,
    Resnet50,
}

/// A part of the model that can be frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    TextEmbeddings,
    Visual,
    Encoder,
}

/// Geometry vector of a region box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeometryKind {
    /// LXMERT: x1, y1, x2, y2.
    Lxmert4,
    /// ViLBERT: x1, y1, x2, y2, area.
    Vilbert5,
    /// UNITER: x1, y1, x2, y2, w, h, w·h.
    Uniter7,
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
        co_attention: CoAttentionKind,
        text_layers: usize,
        visual_layers: usize,
        cross_layers: usize,
        /// Width of the vision stack (default: `model.hidden_size`).
        #[serde(default)]
        visual_hidden_size: Option<usize>,
        #[serde(default)]
        visual_num_heads: Option<usize>,
        #[serde(default)]
        visual_intermediate_size: Option<usize>,
        /// Width of ViLBERT's co-attention (default: the vision width).
        #[serde(default)]
        bi_hidden_size: Option<usize>,
        #[serde(default)]
        bi_num_heads: Option<usize>,
    },
    /// ALBEF: a text encoder and an image encoder, then fusion layers whose
    /// cross-attention reads the image; text and fusion use the `[model]` widths.
    Fusion {
        text_layers: usize,
        fusion_layers: usize,
        image_layers: usize,
        /// Width of the image encoder (default: `model.hidden_size`).
        #[serde(default)]
        image_hidden_size: Option<usize>,
        #[serde(default)]
        image_num_heads: Option<usize>,
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
        text_layers: usize,
        image_layers: usize,
        /// Width of the text tower (default: `model.hidden_size`).
        #[serde(default)]
        text_hidden_size: Option<usize>,
        #[serde(default)]
        text_num_heads: Option<usize>,
        #[serde(default)]
        text_intermediate_size: Option<usize>,
        projection_dim: usize,
        /// "clip" (last text token, image class token) or "mean".
        #[serde(default)]
        pooling: PoolingKind,
    },
    /// SimVLM's encoder-decoder: an encoder over `[image; text prefix]`, a
    /// decoder (causal self-attention, cross-attention to the encoder) over
    /// the rest of the text; trained with PrefixLM, evaluated by captioning.
    EncoderDecoder {
        encoder_layers: usize,
        decoder_layers: usize,
    },
    /// PrefixLM in one stack (`model.num_layers`): bidirectional over image
    /// and text prefix, causal over the rest; evaluated by captioning.
    PrefixLm {},
}

fn default_momentum() -> f64 {
    0.995
}

fn default_distill_alpha() -> f64 {
    0.4
}

/// The cross-modal layers of a dual-stream model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CoAttentionKind {
    /// ViLBERT: co-attentional blocks, each stream's queries over the other's keys.
    Vilbert,
    /// LXMERT: cross-modality layers (shared cross-attention both ways, then
    /// self-attention and feed-forward per stream).
    Lxmert,
}

/// How a dual encoder pools each modality.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolingKind {
    /// CLIP's: the last text token, the image class token.
    #[default]
    Clip,
    /// The mean of the non-padding tokens.
    Mean,
}

impl Default for Architecture {
    fn default() -> Self {
        Architecture::SingleStream {}
    }
}

impl Architecture {
    /// The `kind` name.
    pub fn name(&self) -> &'static str {
        match self {
            Architecture::SingleStream {} => "single_stream",
            Architecture::DualStream { .. } => "dual_stream",
            Architecture::Fusion { .. } => "fusion",
            Architecture::DualEncoder { .. } => "dual_encoder",
            Architecture::EncoderDecoder { .. } => "encoder_decoder",
            Architecture::PrefixLm {} => "prefix_lm",
        }
    }
}

/// Model settings (see `vlp_models::SingleStreamConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// The architecture family and its own settings.
    pub architecture: Architecture,
    /// Visual features: "patches", "grid" or "regions".
    pub visual: VisualKind,
    /// Grid features: ResNet layout, "resnet18" or "resnet50".
    pub cnn_layout: CnnLayout,
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
    pub patch_size: usize,
    /// Box geometry of region features: "lxmert4", "vilbert5" or "uniter7".
    pub box_geometry: GeometryKind,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub dropout: f64,
    /// Pre-norm layers when true, post-norm when false.
    pub norm_first: bool,
    /// Width of the contrastive embedding space.
    pub itc_embed_dim: usize,
    /// Initial contrastive temperature.
    pub itc_temperature: f64,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            steps: 850,
            batch_size: 96,
            micro_batches: 1,
            learning_rate: 2e-3,
            warmup_steps: 50,
            weight_decay: 0.01,
            log_every: 10,
            eval_candidates: 1000,
            caption_beam_size: 3,
            data: DataConfig::default(),
            model: ModelConfig::default(),
            objectives: ObjectivesConfig::default(),
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            image_size: 64,
            max_text_len: 40,
            tokenizer_vocab_size: 200,
            tokenizer_corpus_scenes: 2000,
            mlm_probability: 0.15,
            itm_negative_probability: 0.5,
            fused_pairs: 32,
            hard_negative_twins: false,
            region_feature_size: DetectorConfig::default().feature_size,
            region_feature_noise: DetectorConfig::default().feature_noise,
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            architecture: Architecture::default(),
            visual: VisualKind::Patches,
            cnn_layout: CnnLayout::Resnet18,
            cnn_base_width: 64,
            cnn_frozen_batch_norm: false,
            frozen: Vec::new(),
            max_position_embeddings: None,
            patch_size: 16,
            box_geometry: GeometryKind::Uniter7,
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

impl PretrainConfig {
    /// A preset, then a TOML file on top of it (each optional); errors name
    /// the preset or file and the offending key.
    pub fn from_layers(preset: Option<&Preset>, file: Option<&Path>) -> Result<Self, String> {
        let mut merged = toml::Table::new();
        if let Some(preset) = preset {
            let table: toml::Table = toml::from_str(preset.toml).map_err(|err| {
                format!(
                    "invalid preset {}: {}",
                    preset.name,
                    one_line(&err.to_string())
                )
            })?;
            merge(&mut merged, table);
        }
        let mut source = preset.map(|p| format!("preset {}", p.name));
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|err| format!("cannot read config file {}: {err}", path.display()))?;
            let table: toml::Table = toml::from_str(&text).map_err(|err| {
                format!(
                    "invalid config file {}: {}",
                    path.display(),
                    one_line(&err.to_string())
                )
            })?;
            merge(&mut merged, table);
            source = Some(format!("config file {}", path.display()));
        }
        let source = source.unwrap_or_else(|| "defaults".into());
        let config = PretrainConfig::deserialize(merged)
            .map_err(|err| format!("invalid {source}: {}", one_line(&err.to_string())))?;
        config
            .validate()
            .map_err(|err| format!("invalid {source}: {err}"))?;
        Ok(config)
    }

    /// Reads a TOML file; errors name the file and the offending key.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        Self::from_layers(None, Some(path))
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }

    /// Checks values that would otherwise fail deep inside a run.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("log_every", self.log_every),
            ("eval_candidates", self.eval_candidates),
            ("caption_beam_size", self.caption_beam_size),
            ("data.fused_pairs", self.data.fused_pairs),
            ("model.hidden_size", self.model.hidden_size),
            ("model.num_layers", self.model.num_layers),
            ("model.num_heads", self.model.num_heads),
            ("model.patch_size", self.model.patch_size),
            ("data.region_feature_size", self.data.region_feature_size),
            ("model.cnn_base_width", self.model.cnn_base_width),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(format!("{key} must be positive"));
        }
        if self.batch_size < 2 {
            return Err("batch_size must be at least 2 (contrastive and matching objectives need negatives)".into());
        }
        if self.micro_batches == 0
            || !self.batch_size.is_multiple_of(self.micro_batches)
            || self.batch_size / self.micro_batches < 2
        {
            return Err(format!(
                "micro_batches ({}) must divide batch_size ({}) into micro-batches of at least 2 pairs",
                self.micro_batches, self.batch_size
            ));
        }
        if !self.model.hidden_size.is_multiple_of(self.model.num_heads) {
            return Err(format!(
                "model.hidden_size ({}) must be a multiple of model.num_heads ({})",
                self.model.hidden_size, self.model.num_heads
            ));
        }
        if !self.data.image_size.is_multiple_of(self.model.patch_size) {
            return Err(format!(
                "model.patch_size ({}) must divide data.image_size ({})",
                self.model.patch_size, self.data.image_size
            ));
        }
        if self.model.visual == VisualKind::Grid && !self.data.image_size.is_multiple_of(32) {
            return Err(format!(
                "data.image_size ({}) must be a multiple of 32 for grid features (ResNet stride)",
                self.data.image_size
            ));
        }
        if let Some(rows) = self.model.max_position_embeddings {
            if rows < self.data.max_text_len {
                return Err(format!(
                    "model.max_position_embeddings ({rows}) must cover data.max_text_len ({})",
                    self.data.max_text_len
                ));
            }
        }
        if self.data.max_text_len < 3 {
            return Err("data.max_text_len must be at least 3".into());
        }
        for (key, value) in [
            ("data.mlm_probability", self.data.mlm_probability),
            (
                "data.itm_negative_probability",
                self.data.itm_negative_probability,
            ),
            ("model.dropout", self.model.dropout),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("{key} must be within [0, 1], got {value}"));
            }
        }
        if self.learning_rate <= 0.0 || self.model.itc_temperature <= 0.0 {
            return Err("learning_rate and model.itc_temperature must be positive".into());
        }
        if let Some(albef) = self.fusion(self.data.tokenizer_vocab_size) {
            albef
                .validate()
                .map_err(|err| format!("model.architecture.{err}"))?;
            if albef.queue_size > 0 && self.micro_batches > 1 {
                return Err(format!(
                    "micro_batches ({}) needs model.architecture.queue_size = 0: the momentum \
                     model and queue are updated from one whole batch per step",
                    self.micro_batches
                ));
            }
        }
        self.objectives
            .validate(&self.model.architecture, self.model.visual)
    }

    /// Takes the text tower's sizes from a Hugging Face BERT `config.json`
    /// (post-norm layers, its position table), so that the checkpoint loads.
    pub fn adopt_bert(&mut self, bert: &BertConfig) {
        let m = &mut self.model;
        m.hidden_size = bert.hidden_size;
        m.num_layers = bert.num_layers;
        m.num_heads = bert.num_heads;
        m.intermediate_size = bert.intermediate_size;
        m.norm_first = false;
        m.max_position_embeddings = Some(bert.max_position_embeddings);
    }

    /// The synthetic detector region-based models read, if the model uses regions.
    pub fn detector(&self) -> Option<DetectorConfig> {
        (self.model.visual == VisualKind::Regions).then(|| DetectorConfig {
            feature_size: self.data.region_feature_size,
            feature_noise: self.data.region_feature_noise,
            ..DetectorConfig::default()
        })
    }

    /// The visual extractor the model reads images with, at the model's width.
    pub fn visual(&self) -> VisualEmbeddingsConfig {
        self.visual_of_width(self.model.hidden_size)
    }

    /// The visual extractor, producing tokens `width` wide.
    pub fn visual_of_width(&self, width: usize) -> VisualEmbeddingsConfig {
        let m = &self.model;
        match m.visual {
            VisualKind::Patches => VisualEmbeddingsConfig::Patches(
                PatchEmbeddingsConfig::new(self.data.image_size, m.patch_size, width)
                    .with_dropout(m.dropout),
            ),
            VisualKind::Grid => VisualEmbeddingsConfig::Grid(
                GridEmbeddingsConfig::new(
                    ResNetConfig::new(match m.cnn_layout {
                        CnnLayout::Resnet18 => ResNetLayout::ResNet18,
                        CnnLayout::Resnet50 => ResNetLayout::ResNet50,
                    })
                    .with_base_width(m.cnn_base_width)
                    .with_batch_norm(if m.cnn_frozen_batch_norm {
                        BatchNormMode::Frozen
                    } else {
                        BatchNormMode::Trainable
                    }),
                    width,
                )
                .with_dropout(m.dropout),
            ),
            VisualKind::Regions => VisualEmbeddingsConfig::Regions(
                RegionEmbeddingsConfig::new(self.data.region_feature_size, width)
                    .with_geometry(match m.box_geometry {
                        GeometryKind::Lxmert4 => BoxGeometry::Corners4,
                        GeometryKind::Vilbert5 => BoxGeometry::CornersArea5,
                        GeometryKind::Uniter7 => BoxGeometry::CornersSizeArea7,
                    })
                    .with_dropout(m.dropout),
            ),
        }
    }

    /// Rows of the text position table.
    fn text_positions(&self) -> usize {
        self.model
            .max_position_embeddings
            .unwrap_or(self.data.max_text_len)
    }

    /// The single-stream model and the heads of `[objectives]`, for a
    /// tokenizer of `vocab_size` ids.
    pub fn pretrainer(&self, vocab_size: usize) -> UniterPretrainerConfig {
        let m = &self.model;
        let model = SingleStreamConfig::new(vocab_size, self.visual())
            .with_hidden_size(m.hidden_size)
            .with_num_layers(m.num_layers)
            .with_num_heads(m.num_heads)
            .with_intermediate_size(m.intermediate_size)
            .with_max_text_len(self.text_positions())
            .with_dropout(m.dropout)
            .with_norm_first(m.norm_first);
        UniterPretrainerConfig::new(model, self.objectives.uniter())
            .with_num_region_classes(NUM_DETECTOR_LABELS)
            .with_num_answers(AnswerVocabulary::synthetic().len())
            .with_itc_embed_dim(m.itc_embed_dim)
            .with_itc_temperature(m.itc_temperature)
    }

    /// The ViLBERT/LXMERT model and heads (`architecture.kind = "dual_stream"`).
    pub fn dual_stream(&self, vocab_size: usize) -> Option<DualStreamPretrainerConfig> {
        let m = &self.model;
        let Architecture::DualStream {
            co_attention,
            text_layers,
            visual_layers,
            cross_layers,
            visual_hidden_size,
            visual_num_heads,
            visual_intermediate_size,
            bi_hidden_size,
            bi_num_heads,
        } = m.architecture
        else {
            return None;
        };
        let visual_width = visual_hidden_size.unwrap_or(m.hidden_size);
        let visual_heads = visual_num_heads.unwrap_or(m.num_heads);
        let model = DualStreamConfig::new(vocab_size, self.visual_of_width(visual_width))
            .with_kind(match co_attention {
                CoAttentionKind::Vilbert => DualStreamKind::Vilbert,
                CoAttentionKind::Lxmert => DualStreamKind::Lxmert,
            })
            .with_hidden_size(m.hidden_size)
            .with_num_heads(m.num_heads)
            .with_intermediate_size(m.intermediate_size)
            .with_num_text_layers(text_layers)
            .with_v_hidden_size(visual_width)
            .with_v_num_heads(visual_heads)
            .with_v_intermediate_size(visual_intermediate_size.unwrap_or(m.intermediate_size))
            .with_num_visual_layers(visual_layers)
            .with_bi_hidden_size(bi_hidden_size.unwrap_or(visual_width))
            .with_bi_num_heads(bi_num_heads.unwrap_or(visual_heads))
            .with_num_cross_layers(cross_layers)
            .with_max_text_len(self.text_positions())
            .with_dropout(m.dropout);
        let weights = self.objectives.fixed();
        Some(
            DualStreamPretrainerConfig::new(model)
                .with_itc_embed_dim(m.itc_embed_dim)
                .with_itc_temperature(m.itc_temperature)
                .with_mlm_weight(weights.mlm)
                .with_itm_weight(weights.itm)
                .with_itc_weight(weights.itc),
        )
    }

    /// The ALBEF model and heads (`architecture.kind = "fusion"`).
    pub fn fusion(&self, vocab_size: usize) -> Option<AlbefPretrainerConfig> {
        let m = &self.model;
        let Architecture::Fusion {
            text_layers,
            fusion_layers,
            image_layers,
            image_hidden_size,
            image_num_heads,
            image_intermediate_size,
            queue_size,
            momentum,
            distill_alpha,
        } = m.architecture
        else {
            return None;
        };
        let image_width = image_hidden_size.unwrap_or(m.hidden_size);
        let model = FusionConfig::new(vocab_size, self.visual_of_width(image_width))
            .with_hidden_size(m.hidden_size)
            .with_num_heads(m.num_heads)
            .with_intermediate_size(m.intermediate_size)
            .with_num_text_layers(text_layers)
            .with_num_fusion_layers(fusion_layers)
            .with_image_hidden_size(image_width)
            .with_image_num_heads(image_num_heads.unwrap_or(m.num_heads))
            .with_image_intermediate_size(image_intermediate_size.unwrap_or(m.intermediate_size))
            .with_num_image_layers(image_layers)
            .with_max_text_len(self.text_positions())
            .with_dropout(m.dropout);
        let weights = self.objectives.fixed();
        Some(
            AlbefPretrainerConfig::new(model)
                .with_itc_embed_dim(m.itc_embed_dim)
                .with_itc_temperature(m.itc_temperature)
                .with_mlm_weight(weights.mlm)
                .with_itm_weight(weights.itm)
                .with_itc_weight(weights.itc)
                .with_queue_size(queue_size)
                .with_momentum(momentum)
                .with_distill_alpha(distill_alpha),
        )
    }

    /// The CLIP model (`architecture.kind = "dual_encoder"`).
    pub fn dual_encoder(&self, vocab_size: usize) -> Option<ClipPretrainerConfig> {
        let m = &self.model;
        let Architecture::DualEncoder {
            text_layers,
            image_layers,
            text_hidden_size,
            text_num_heads,
            text_intermediate_size,
            projection_dim,
            pooling,
        } = m.architecture
        else {
            return None;
        };
        let model = DualEncoderConfig::new(vocab_size, self.visual())
            .with_text_hidden_size(text_hidden_size.unwrap_or(m.hidden_size))
            .with_text_num_heads(text_num_heads.unwrap_or(m.num_heads))
            .with_text_intermediate_size(text_intermediate_size.unwrap_or(m.intermediate_size))
            .with_text_num_layers(text_layers)
            .with_max_text_len(self.text_positions())
            .with_vision_hidden_size(m.hidden_size)
            .with_vision_num_heads(m.num_heads)
            .with_vision_intermediate_size(m.intermediate_size)
            .with_vision_num_layers(image_layers)
            .with_projection_dim(projection_dim)
            .with_logit_scale_init((1.0 / m.itc_temperature).ln())
            .with_pooling(match pooling {
                PoolingKind::Clip => DualEncoderPooling::Clip,
                PoolingKind::Mean => DualEncoderPooling::Mean,
            });
        Some(ClipPretrainerConfig::new(model))
    }

    /// The SimVLM model (encoder-decoder or PrefixLM stack, as the
    /// architecture says), for a tokenizer of `vocab_size` ids.
    pub fn simvlm(&self, vocab_size: usize, special: SpecialTokens) -> SimVlmPretrainerConfig {
        let m = &self.model;
        let architecture = match m.architecture {
            Architecture::EncoderDecoder {
                encoder_layers,
                decoder_layers,
            } => SimVlmArchitecture::EncoderDecoder(
                EncoderDecoderConfig::new(vocab_size, self.visual())
                    .with_hidden_size(m.hidden_size)
                    .with_num_encoder_layers(encoder_layers)
                    .with_num_decoder_layers(decoder_layers)
                    .with_num_heads(m.num_heads)
                    .with_intermediate_size(m.intermediate_size)
                    .with_max_text_len(self.text_positions())
                    .with_dropout(m.dropout)
                    .with_norm_first(m.norm_first),
            ),
            _ => SimVlmArchitecture::PrefixLm(
                PrefixLmConfig::new(vocab_size, self.visual())
                    .with_hidden_size(m.hidden_size)
                    .with_num_layers(m.num_layers)
                    .with_num_heads(m.num_heads)
                    .with_intermediate_size(m.intermediate_size)
                    .with_max_text_len(self.text_positions())
                    .with_dropout(m.dropout)
                    .with_norm_first(m.norm_first),
            ),
        };
        SimVlmPretrainerConfig::new(architecture, special.cls, special.sep)
    }
}

/// Overlays `top` on `base`, table by table.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(top)) => merge(base, top),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_unknown_keys() {
        let config = PretrainConfig::default();
        let parsed: PretrainConfig = toml::from_str(&config.to_toml()).unwrap();
        assert_eq!(parsed, config);
        let partial: PretrainConfig =
            toml::from_str("steps = 5\n[model]\nhidden_size = 64\n").unwrap();
        assert_eq!(
            (partial.steps, partial.model.hidden_size, partial.batch_size),
            (5, 64, config.batch_size)
        );
        let err = toml::from_str::<PretrainConfig>("[model]\nhiden_size = 64\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("hiden_size"), "{err}");
    }

    #[test]
    fn validation_names_the_key() {
        let mut config = PretrainConfig::default();
        config.model.num_heads = 3;
        assert!(config.validate().unwrap_err().contains("model.num_heads"));
        let mut config = PretrainConfig::default();
        config.data.mlm_probability = 1.5;
        assert!(config
            .validate()
            .unwrap_err()
            .contains("data.mlm_probability"));
        for (batch_size, micro_batches) in [(96, 0), (96, 5), (4, 4)] {
            let config = PretrainConfig {
                batch_size,
                micro_batches,
                ..PretrainConfig::default()
            };
            let err = config.validate().unwrap_err();
            assert!(
                err.starts_with(&format!("micro_batches ({micro_batches})")),
                "{err}"
            );
        }
    }

    #[test]
    fn fusion_momentum_settings_default_off_and_map_to_the_pretrainer() {
        let fusion = "[model.architecture]\nkind = \"fusion\"\ntext_layers = 1\n\
                      fusion_layers = 1\nimage_layers = 1\n";
        let off: PretrainConfig = toml::from_str(fusion).unwrap();
        let albef = off.fusion(100).unwrap();
        assert_eq!(
            (albef.queue_size, albef.momentum, albef.distill_alpha),
            (0, 0.995, 0.4)
        );
        let on: PretrainConfig = toml::from_str(&format!(
            "{fusion}queue_size = 64\nmomentum = 0.99\ndistill_alpha = 0.3\n"
        ))
        .unwrap();
        assert_eq!(toml::from_str::<PretrainConfig>(&on.to_toml()).unwrap(), on);
        let albef = on.fusion(100).unwrap();
        assert_eq!(
            (albef.queue_size, albef.momentum, albef.distill_alpha),
            (64, 0.99, 0.3)
        );
        let bad: PretrainConfig =
            toml::from_str(&format!("{fusion}queue_size = 64\nmomentum = 1.5\n")).unwrap();
        let err = bad.validate().unwrap_err();
        assert!(err.contains("model.architecture.momentum"), "{err}");
        let mut split = on.clone();
        split.micro_batches = 2;
        let err = split.validate().unwrap_err();
        assert!(err.contains("queue_size = 0"), "{err}");
        split.micro_batches = 1;
        assert_eq!(split.validate(), Ok(()));
        let base =
            PretrainConfig::from_layers(crate::presets::find("albef-base").ok(), None).unwrap();
        let albef = base.fusion(100).unwrap();
        assert_eq!(
            (albef.queue_size, albef.momentum, albef.distill_alpha),
            (65536, 0.995, 0.4)
        );
    }

    #[test]
    fn architecture_settings_are_typed_and_round_trip() {
        let dual = "[model.architecture]\nkind = \"dual_stream\"\nco_attention = \"vilbert\"\n\
                    text_layers = 2\nvisual_layers = 1\ncross_layers = 1\n";
        let config: PretrainConfig = toml::from_str(dual).unwrap();
        assert_eq!(config.model.architecture.name(), "dual_stream");
        let parsed: PretrainConfig = toml::from_str(&config.to_toml()).unwrap();
        assert_eq!(parsed, config);
        for (text, needle) in [
            (format!("{dual}visual_layer = 3\n"), "visual_layer"),
            (dual.replace("vilbert", "visualbert"), "visualbert"),
            (
                dual.replace("dual_stream", "triple_stream"),
                "triple_stream",
            ),
            (dual.replace("cross_layers = 1\n", ""), "cross_layers"),
            (
                "[model.architecture]\nkind = \"fusion\"\ntext_layers = 1\n\
                 fusion_layers = 1\nimage_layers = 1\nqueue = 8\n"
                    .into(),
                "queue",
            ),
        ] {
            let err = toml::from_str::<PretrainConfig>(&text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{needle} not in {err}");
        }
    }
}
