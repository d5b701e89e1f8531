//! The model a configuration describes, whatever its architecture (survey
//! §3), built with seeded initialisation and handed to code written once for
//! all of them (training, evaluation, listing): [`with_model`] and
//! [`ModelTask`]. The family configurations of vlp-models and
//! vlp-objectives are derived from [`PretrainConfig`] here.

use std::path::Path;

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use vlp_data::synthetic::NUM_DETECTOR_LABELS;
use vlp_data::{AnswerVocabulary, SpecialTokens};
use vlp_features::{
    set_trainable, BatchNormMode, FramePatchEmbeddingsConfig, GridEmbeddingsConfig,
    PatchEmbeddingsConfig, RegionEmbeddingsConfig, ResNetConfig, VisualEmbeddingsConfig,
};
use vlp_models::{
    BertModel, ConfigError as ModelConfigError, DualEncoderConfig, DualStreamConfig,
    EncoderDecoderConfig, FusionConfig, HeroConfig, PrefixLmConfig, SingleStreamConfig,
    SingleStreamModel, TransformerSize,
};
use vlp_objectives::{
    AlbefPretrainer, AlbefPretrainerConfig, ClipPretrainer, ClipPretrainerConfig,
    DualStreamPretrainer, DualStreamPretrainerConfig, HeroPretrainer, HeroPretrainerConfig,
    Pretrainer, SimVlmArchitecture, SimVlmPretrainer, SimVlmPretrainerConfig, UniterPretrainer,
    UniterPretrainerConfig,
};

use crate::config::{Architecture, Component, PretrainConfig, VisualKind};
use crate::error::{ConfigError, Result, TrainError};
use crate::eval::Evaluate;

/// The vlp-models and vlp-objectives configurations of each family.
impl PretrainConfig {
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
                    ResNetConfig::new(m.cnn_layout)
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
                    .with_geometry(m.box_geometry)
                    .with_dropout(m.dropout),
            ),
            VisualKind::Frames => VisualEmbeddingsConfig::Frames(
                FramePatchEmbeddingsConfig::new(
                    PatchEmbeddingsConfig::new(self.data.image_size, m.patch_size, width)
                        .with_dropout(m.dropout),
                )
                .with_max_frames(self.data.num_frames)
                .with_time_kernel(m.time_kernel),
            ),
        }
    }

    /// A stack `hidden` wide with `heads` heads, inner width `intermediate`
    /// and `layers` layers, with `model.dropout` and `model.norm_first`.
    fn size(
        &self,
        hidden: usize,
        heads: usize,
        intermediate: usize,
        layers: usize,
    ) -> TransformerSize {
        TransformerSize::of(hidden, heads, intermediate, layers)
            .with_dropout(self.model.dropout)
            .with_norm_first(self.model.norm_first)
    }

    /// Rows of the text position table.
    pub fn text_positions(&self) -> usize {
        self.model
            .max_position_embeddings
            .unwrap_or(self.data.max_text_len)
    }

    /// The single-stream model and the heads of `[objectives]`, for a
    /// tokenizer of `vocab_size` ids.
    pub fn pretrainer(&self, vocab_size: usize) -> UniterPretrainerConfig {
        let m = &self.model;
        let model = SingleStreamConfig::new(vocab_size, self.visual())
            .with_transformer(self.size(
                m.hidden_size,
                m.num_heads,
                m.intermediate_size,
                m.num_layers,
            ))
            .with_max_text_len(self.text_positions());
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
            .with_kind(co_attention)
            // Both streams are post-norm, as BERT.
            .with_text(
                self.size(m.hidden_size, m.num_heads, m.intermediate_size, text_layers)
                    .with_norm_first(false),
            )
            .with_vision(
                self.size(
                    visual_width,
                    visual_heads,
                    visual_intermediate_size.unwrap_or(m.intermediate_size),
                    visual_layers,
                )
                .with_norm_first(false),
            )
            .with_bi_hidden_size(bi_hidden_size.unwrap_or(visual_width))
            .with_bi_num_heads(bi_num_heads.unwrap_or(visual_heads))
            .with_num_cross_layers(cross_layers)
            .with_max_text_len(self.text_positions());
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
            // ALBEF: a post-norm BERT text side, a pre-norm ViT image side.
            .with_text(
                self.size(m.hidden_size, m.num_heads, m.intermediate_size, text_layers)
                    .with_norm_first(false),
            )
            .with_num_fusion_layers(fusion_layers)
            .with_vision(
                self.size(
                    image_width,
                    image_num_heads.unwrap_or(m.num_heads),
                    image_intermediate_size.unwrap_or(m.intermediate_size),
                    image_layers,
                )
                .with_norm_first(true),
            )
            .with_max_text_len(self.text_positions());
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
            // CLIP's towers are pre-norm without dropout.
            .with_text(
                TransformerSize::of(
                    text_hidden_size.unwrap_or(m.hidden_size),
                    text_num_heads.unwrap_or(m.num_heads),
                    text_intermediate_size.unwrap_or(m.intermediate_size),
                    text_layers,
                )
                .with_dropout(0.0),
            )
            .with_max_text_len(self.text_positions())
            .with_vision(
                TransformerSize::of(
                    m.hidden_size,
                    m.num_heads,
                    m.intermediate_size,
                    image_layers,
                )
                .with_dropout(0.0),
            )
            .with_projection_dim(projection_dim)
            .with_logit_scale_init((1.0 / m.itc_temperature).ln())
            .with_pooling(pooling);
        Some(ClipPretrainerConfig::new(model))
    }

    /// The HERO model and heads (`architecture.kind = "hero"`).
    pub fn hero(&self, vocab_size: usize) -> Option<HeroPretrainerConfig> {
        let m = &self.model;
        let Architecture::Hero {
            temporal_layers,
            fom,
        } = m.architecture
        else {
            return None;
        };
        let stack = |layers| self.size(m.hidden_size, m.num_heads, m.intermediate_size, layers);
        let model = HeroConfig::new(vocab_size, self.visual())
            .with_cross_modal(stack(m.num_layers))
            .with_temporal(stack(temporal_layers))
            .with_max_text_len(self.text_positions());
        let weights = self.objectives.fixed();
        Some(
            HeroPretrainerConfig::new(model)
                .with_itc_embed_dim(m.itc_embed_dim)
                .with_itc_temperature(m.itc_temperature)
                .with_mlm_weight(weights.mlm)
                .with_vtm_weight(weights.itm)
                .with_vtc_weight(weights.itc)
                .with_fom_weight(fom),
        )
    }

    /// The SimVLM model (encoder-decoder or PrefixLM stack, as the
    /// architecture says), for a tokenizer of `vocab_size` ids.
    pub fn simvlm(&self, vocab_size: usize, special: SpecialTokens) -> SimVlmPretrainerConfig {
        SimVlmPretrainerConfig::new(
            self.simvlm_architecture(vocab_size),
            special.cls,
            special.sep,
        )
    }

    /// The SimVLM layout with its sizes.
    fn simvlm_architecture(&self, vocab_size: usize) -> SimVlmArchitecture {
        let m = &self.model;
        match m.architecture {
            Architecture::EncoderDecoder {
                encoder_layers,
                decoder_layers,
            } => SimVlmArchitecture::EncoderDecoder(
                EncoderDecoderConfig::new(vocab_size, self.visual())
                    .with_transformer(self.size(
                        m.hidden_size,
                        m.num_heads,
                        m.intermediate_size,
                        encoder_layers,
                    ))
                    .with_num_decoder_layers(decoder_layers)
                    .with_max_text_len(self.text_positions()),
            ),
            _ => SimVlmArchitecture::PrefixLm(
                PrefixLmConfig::new(vocab_size, self.visual())
                    .with_transformer(self.size(
                        m.hidden_size,
                        m.num_heads,
                        m.intermediate_size,
                        m.num_layers,
                    ))
                    .with_max_text_len(self.text_positions()),
            ),
        }
    }

    /// Whether the vlp-models configuration of the family can build a
    /// model (heads that divide their widths, room for the cross-modal
    /// layers, …); the error names the library's key
    /// (`vision.num_attention_heads`).
    pub fn validate_model(&self) -> Result<(), ModelConfigError> {
        let vocab = self.data.tokenizer_vocab_size;
        match &self.model.architecture {
            Architecture::SingleStream {} => self.pretrainer(vocab).model.validate(),
            Architecture::DualStream { .. } => {
                unwrap_family(self.dual_stream(vocab)).model.validate()
            }
            Architecture::Fusion { .. } => unwrap_family(self.fusion(vocab)).model.validate(),
            Architecture::DualEncoder { .. } => {
                unwrap_family(self.dual_encoder(vocab)).model.validate()
            }
            Architecture::Hero { .. } => unwrap_family(self.hero(vocab)).validate(),
            Architecture::EncoderDecoder { .. } | Architecture::PrefixLm {} => {
                match self.simvlm_architecture(vocab) {
                    SimVlmArchitecture::EncoderDecoder(model) => model.validate(),
                    SimVlmArchitecture::PrefixLm(model) => model.validate(),
                }
            }
        }
    }
}

/// Work to do with a freshly built model of any architecture.
pub trait ModelTask<B: AutodiffBackend> {
    /// What the task returns.
    type Output;

    /// Does the work on `model`.
    fn run<M>(self, model: M) -> Self::Output
    where
        M: AutodiffModule<B> + Pretrainer<B> + 'static,
        M::InnerModule: Evaluate<B::InnerBackend> + Pretrainer<B::InnerBackend>;
}

/// Builds the model `config` describes for a tokenizer of `vocab_size` ids
/// with `special` tokens
/// (seeded initialisation; frozen components applied; the text tower loaded
/// from `init_text`, a Hugging Face BERT folder, when given) and runs `task` on it.
pub fn with_model<B: AutodiffBackend, T: ModelTask<B>>(
    config: &PretrainConfig,
    vocab_size: usize,
    special: SpecialTokens,
    init_text: Option<&Path>,
    device: &B::Device,
    task: T,
) -> Result<T::Output> {
    B::seed(device, config.seed);
    let architecture = config.model.architecture.name();
    if init_text.is_some() && !matches!(config.model.architecture, Architecture::SingleStream {}) {
        return Err(ConfigError::invalid(
            "init_text",
            format!(
                "--init-text is supported for the single_stream architecture only, not {architecture}"
            ),
        )
        .into());
    }
    if !config.model.frozen.is_empty()
        && !matches!(config.model.architecture, Architecture::SingleStream {})
    {
        return Err(ConfigError::invalid(
            "model.frozen",
            format!(
                "model.frozen is supported for the single_stream architecture only, not {architecture}"
            ),
        )
        .into());
    }
    Ok(match &config.model.architecture {
        Architecture::SingleStream {} => {
            let mut model: UniterPretrainer<B> = config.pretrainer(vocab_size).init(device)?;
            if let Some(dir) = init_text {
                model.backbone =
                    init_text_from_bert(model.backbone, &dir.join("model.safetensors"))?;
            }
            task.run(freeze(model, &config.model.frozen))
        }
        Architecture::DualStream { .. } => {
            let model: DualStreamPretrainer<B> =
                unwrap_family(config.dual_stream(vocab_size)).init(device);
            task.run(model)
        }
        Architecture::Fusion { .. } => {
            let model: AlbefPretrainer<B> =
                unwrap_family(config.fusion(vocab_size)).init(device)?;
            task.run(model)
        }
        Architecture::DualEncoder { .. } => {
            let model: ClipPretrainer<B> =
                unwrap_family(config.dual_encoder(vocab_size)).init(device);
            task.run(model)
        }
        Architecture::EncoderDecoder { .. } | Architecture::PrefixLm {} => {
            let model: SimVlmPretrainer<B> = config.simvlm(vocab_size, special).init(device);
            task.run(model)
        }
        Architecture::Hero { .. } => {
            let model: HeroPretrainer<B> = unwrap_family(config.hero(vocab_size)).init(device);
            task.run(model)
        }
    })
}

/// The family's configuration, which exists because the match arm checked the kind.
fn unwrap_family<T>(config: Option<T>) -> T {
    config.expect("the architecture kind was matched")
}

/// Loads a BERT checkpoint into the text embeddings, transformer and
/// pooler of `backbone`; errors list missing, unexpected and mis-shaped keys.
fn init_text_from_bert<B: Backend>(
    backbone: SingleStreamModel<B>,
    path: &Path,
) -> Result<SingleStreamModel<B>> {
    let mut bert = BertModel {
        embeddings: backbone.embeddings,
        encoder: backbone.encoder,
        pooler: Some(backbone.pooler),
    };
    bert.load_safetensors(path)
        .map_err(|err| TrainError::Import {
            path: path.to_path_buf(),
            message: err.to_string(),
        })?;
    Ok(SingleStreamModel {
        embeddings: bert.embeddings,
        encoder: bert.encoder,
        pooler: bert.pooler.expect("the pooler was given"),
        visual: backbone.visual,
    })
}

/// Stops the gradient of every parameter of the `frozen` components.
fn freeze<B: Backend>(mut model: UniterPretrainer<B>, frozen: &[Component]) -> UniterPretrainer<B> {
    for component in frozen {
        let backbone = model.backbone;
        model.backbone = match component {
            Component::TextEmbeddings => SingleStreamModel {
                embeddings: set_trainable(backbone.embeddings, false),
                ..backbone
            },
            Component::Visual => SingleStreamModel {
                visual: set_trainable(backbone.visual, false),
                ..backbone
            },
            Component::Encoder => SingleStreamModel {
                encoder: set_trainable(backbone.encoder, false),
                ..backbone
            },
        };
    }
    model
}
