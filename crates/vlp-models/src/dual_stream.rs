//! Dual-stream fusion (ViLBERT, LXMERT): a text stack and a visual stack
//! with no shared parameters, joined by cross-modal layers.
//!
//! - **ViLBERT** (vilbert-multi-task, `bert_base_6layer_6conect`): the text
//!   stack's first `L_t − C` layers run alone, then `C` times a co-attentional
//!   block ([`CoAttentionLayer`], `c_layer`) followed by one text layer and
//!   one visual layer. The visual stack has its own width (1024 in base).
//! - **LXMERT**: `l` language layers and `r` object-relationship layers run
//!   alone, then `x` cross-modality layers ([`CrossModalityLayer`],
//!   `x_layers`).
//!
//! Text starts with its `[CLS]` (`[CLS_T]`); a learned `[CLS_V]` is
//! prepended to the image tokens. [`DualStreamModel::encode_text`] and
//! [`DualStreamModel::encode_image`] run one stream alone (its own layers,
//! no cross-modal layer): the unimodal embeddings of contrastive learning
//! and retrieval.

use burn::module::Param;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use vlp_data::VisualBatch;
use vlp_features::{
    TextEmbeddings, TextEmbeddingsConfig, VisualEmbeddings, VisualEmbeddingsConfig, VisualTokens,
};

use crate::co_attention::{CoAttentionLayer, CoAttentionLayerConfig};
use crate::config_error::{check_heads, or_panic, ConfigError};
use crate::cross_modality::{CrossModalityLayer, CrossModalityLayerConfig};
use crate::layer::TransformerLayer;
use crate::mask::AttentionMask;
use crate::size::{validate_two_towers, TransformerSize};

/// Which cross-modal layers join the streams. Serialised in lower case
/// (`"vilbert"`, `"lxmert"`, as `co_attention` is written); the variant
/// names are read too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DualStreamKind {
    /// Co-attentional blocks interleaved with the last layers of each stream;
    /// matching reads `[CLS_T] ⊙ [CLS_V]` after the poolers.
    #[serde(alias = "Vilbert")]
    Vilbert,
    /// Cross-modality layers after both streams; matching reads
    /// `[pooled [CLS_T]; [CLS_V]]`. Needs `vision.hidden_size == text.hidden_size`.
    #[serde(alias = "Lxmert")]
    Lxmert,
}

/// Configuration of [`DualStreamModel`]. The defaults are a tiny ViLBERT-like
/// model for CPU tests; [`DualStreamConfig::vilbert_base`] and
/// [`DualStreamConfig::lxmert_base`] are the published sizes.
#[derive(Config, Debug)]
pub struct DualStreamConfig {
    /// Vocabulary size of the tokenizer.
    pub vocab_size: usize,
    /// The visual extractor; its `hidden_size` must equal `vision.hidden_size`.
    pub visual: VisualEmbeddingsConfig,
    /// Which cross-modal layers join the streams.
    #[config(default = "DualStreamKind::Vilbert")]
    pub kind: DualStreamKind,
    /// The text stack (ViLBERT: all its layers, the last `num_cross_layers`
    /// interleaved with co-attention; LXMERT: `l` layers). Its dropout is
    /// also the embeddings' and the cross-modal layers'. Default: 128 wide,
    /// 4 heads, inner 512, 2 layers, post-norm (as BERT), dropout 0.1.
    #[config(default = "TransformerSize::new().with_norm_first(false)")]
    pub text: TransformerSize,
    /// The visual stack (ViLBERT: all, the last `num_cross_layers` after a
    /// co-attention each; LXMERT: `r` layers); same default as `text`.
    #[config(default = "TransformerSize::new().with_norm_first(false)")]
    pub vision: TransformerSize,
    /// Width and heads of ViLBERT's co-attention (unused by LXMERT, whose
    /// cross-attention has the streams' width and heads).
    #[config(default = 128)]
    pub bi_hidden_size: usize,
    /// Heads of ViLBERT's co-attention.
    #[config(default = 4)]
    pub bi_num_heads: usize,
    /// Cross-modal layers (ViLBERT: co-attentional blocks; LXMERT: `x`).
    /// Zero gives two independent streams.
    #[config(default = 2)]
    pub num_cross_layers: usize,
    /// Longest text the position table covers.
    #[config(default = 64)]
    pub max_text_len: usize,
    /// LayerNorm epsilon of every layer.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
}

/// The layers joining the streams.
#[derive(Module, Debug)]
pub enum CrossModalLayers<B: Backend> {
    /// ViLBERT's `c_layer`.
    CoAttention(Vec<CoAttentionLayer<B>>),
    /// LXMERT's `x_layers`.
    CrossModality(Vec<CrossModalityLayer<B>>),
}

/// Text embeddings, visual extractor + `[CLS_V]`, two stacks, the
/// cross-modal layers and the poolers.
#[derive(Module, Debug)]
pub struct DualStreamModel<B: Backend> {
    /// Text embeddings.
    pub embeddings: TextEmbeddings<B>,
    /// The visual extractor.
    pub visual: VisualEmbeddings<B>,
    /// `[1, 1, Hv]`: the learned `[CLS_V]`.
    pub visual_cls: Param<Tensor<B, 3>>,
    /// Text stack (`encoder.layer` in both ViLBERT and LXMERT).
    pub layer: Vec<TransformerLayer<B>>,
    /// Visual stack (ViLBERT's `v_layer`, LXMERT's `r_layers`).
    pub v_layer: Vec<TransformerLayer<B>>,
    /// The layers joining the streams.
    pub cross: CrossModalLayers<B>,
    /// `[CLS_T]` pooler: ViLBERT's `t_pooler` (`H → Hbi`, ReLU), LXMERT's
    /// `pooler` (`H → H`, tanh).
    pub t_pooler: Linear<B>,
    /// ViLBERT's `v_pooler` (`Hv → Hbi`, ReLU); LXMERT has none.
    pub v_pooler: Option<Linear<B>>,
    /// Which cross-modal layers join the streams.
    #[module(skip)]
    pub kind: DualStreamKind,
}

/// Output of [`DualStreamModel::fuse`].
#[derive(Debug, Clone)]
pub struct DualStreamOutput<B: Backend> {
    /// `[B, T, H]` contextual text tokens (`[CLS_T]` first).
    pub text: Tensor<B, 3>,
    /// `[B, 1 + V, Hv]` contextual image tokens (`[CLS_V]` first).
    pub image: Tensor<B, 3>,
    /// `[B, P]` pooled `[CLS_T]` (ViLBERT `P = Hbi`, LXMERT `P = H`).
    pub pooled_text: Tensor<B, 2>,
    /// `[B, P]` pooled `[CLS_V]` (ViLBERT `P = Hbi`; LXMERT: `[CLS_V]` itself, `Hv`).
    pub pooled_image: Tensor<B, 2>,
    /// `[B, F]` the pair's representation for matching heads: ViLBERT's
    /// product `pooled_text ⊙ pooled_image`, LXMERT's concatenation
    /// (width [`DualStreamConfig::pooled_size`]).
    pub pooled: Tensor<B, 2>,
}

impl DualStreamConfig {
    /// ViLBERT-base (vilbert-multi-task `bert_base_6layer_6conect.json`):
    /// BERT-base text (12 layers, 768, 12 heads, 3072), a 6-layer visual
    /// stream (1024 wide, 8 heads, inner 1024), 6 co-attentional blocks
    /// (bi_hidden 1024, 8 heads) joining text layers 6–11 with visual layers
    /// 0–5; 2048-d regions with 5-d geometry; 512 positions.
    pub fn vilbert_base(vocab_size: usize) -> Self {
        use vlp_features::{BoxGeometry, RegionEmbeddingsConfig};
        Self::new(
            vocab_size,
            VisualEmbeddingsConfig::Regions(
                RegionEmbeddingsConfig::new(2048, 1024).with_geometry(BoxGeometry::CornersArea5),
            ),
        )
        .with_kind(DualStreamKind::Vilbert)
        .with_text(TransformerSize::of(768, 12, 3072, 12).with_norm_first(false))
        .with_vision(TransformerSize::of(1024, 8, 1024, 6).with_norm_first(false))
        .with_bi_hidden_size(1024)
        .with_bi_num_heads(8)
        .with_num_cross_layers(6)
        .with_max_text_len(512)
    }

    /// LXMERT-base (Hugging Face `LxmertConfig()`): 768 wide, 12 heads,
    /// inner 3072; l = 9 language, r = 5 object-relationship, x = 5
    /// cross-modality layers; 2048-d regions with 4-d boxes; 512 positions.
    pub fn lxmert_base(vocab_size: usize) -> Self {
        use vlp_features::{BoxGeometry, RegionEmbeddingsConfig};
        Self::new(
            vocab_size,
            VisualEmbeddingsConfig::Regions(
                RegionEmbeddingsConfig::new(2048, 768).with_geometry(BoxGeometry::Corners4),
            ),
        )
        .with_kind(DualStreamKind::Lxmert)
        .with_text(TransformerSize::of(768, 12, 3072, 9).with_norm_first(false))
        .with_vision(TransformerSize::of(768, 12, 3072, 5).with_norm_first(false))
        .with_bi_hidden_size(768)
        .with_bi_num_heads(12)
        .with_num_cross_layers(5)
        .with_max_text_len(512)
    }

    /// Width of [`DualStreamOutput::pooled`].
    pub fn pooled_size(&self) -> usize {
        match self.kind {
            DualStreamKind::Vilbert => self.bi_hidden_size,
            DualStreamKind::Lxmert => self.text.hidden_size + self.vision.hidden_size,
        }
    }

    /// Whether the values can build a model; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_two_towers(&self.visual, &self.text, &self.vision)?;
        match self.kind {
            DualStreamKind::Vilbert => {
                check_heads(
                    "bi_hidden_size",
                    self.bi_hidden_size,
                    "bi_num_heads",
                    self.bi_num_heads,
                )?;
                let room = self.text.num_layers.min(self.vision.num_layers);
                if self.num_cross_layers > room {
                    return Err(ConfigError::new(
                        "num_cross_layers",
                        self.num_cross_layers,
                        format!(
                            "each co-attentional block precedes a text and a visual layer; \
                             there are {} and {}",
                            self.text.num_layers, self.vision.num_layers
                        ),
                    ));
                }
            }
            DualStreamKind::Lxmert => {
                if self.vision.hidden_size != self.text.hidden_size {
                    return Err(ConfigError::new(
                        "vision.hidden_size",
                        self.vision.hidden_size,
                        format!(
                            "LXMERT's streams share one width, text.hidden_size = {}",
                            self.text.hidden_size
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// # Panics
    ///
    /// When [`validate`](Self::validate) fails, with its message.
    pub fn init<B: Backend>(&self, device: &B::Device) -> DualStreamModel<B> {
        or_panic(self.validate());
        let stack = |size: &TransformerSize| {
            let layer = size.layer().with_layer_norm_eps(self.layer_norm_eps);
            (0..size.num_layers)
                .map(|_| layer.init(device))
                .collect::<Vec<_>>()
        };
        let (text, vision, dropout) = (&self.text, &self.vision, self.text.dropout);
        let cross = match self.kind {
            DualStreamKind::Vilbert => {
                let config = CoAttentionLayerConfig::new(
                    text.hidden_size,
                    vision.hidden_size,
                    self.bi_hidden_size,
                    self.bi_num_heads,
                    text.intermediate_size,
                    vision.intermediate_size,
                )
                .with_dropout(dropout)
                .with_layer_norm_eps(self.layer_norm_eps);
                CrossModalLayers::CoAttention(
                    (0..self.num_cross_layers)
                        .map(|_| config.init(device))
                        .collect(),
                )
            }
            DualStreamKind::Lxmert => {
                let config = CrossModalityLayerConfig::new(
                    text.hidden_size,
                    text.num_attention_heads,
                    text.intermediate_size,
                )
                .with_dropout(dropout)
                .with_layer_norm_eps(self.layer_norm_eps);
                CrossModalLayers::CrossModality(
                    (0..self.num_cross_layers)
                        .map(|_| config.init(device))
                        .collect(),
                )
            }
        };
        let (t_pooler, v_pooler) = match self.kind {
            DualStreamKind::Vilbert => (
                LinearConfig::new(text.hidden_size, self.bi_hidden_size).init(device),
                Some(LinearConfig::new(vision.hidden_size, self.bi_hidden_size).init(device)),
            ),
            DualStreamKind::Lxmert => (
                LinearConfig::new(text.hidden_size, text.hidden_size).init(device),
                None,
            ),
        };
        DualStreamModel {
            embeddings: TextEmbeddingsConfig::new(self.vocab_size, text.hidden_size)
                .with_max_position_embeddings(self.max_text_len)
                .with_layer_norm_eps(self.layer_norm_eps)
                .with_dropout(dropout)
                .init(device),
            visual: self.visual.init(device),
            visual_cls: Initializer::Normal {
                mean: 0.0,
                std: 0.02,
            }
            .init([1, 1, vision.hidden_size], device),
            layer: stack(text),
            v_layer: stack(vision),
            cross,
            t_pooler,
            v_pooler,
            kind: self.kind,
        }
    }
}

/// The padding bias of a key sequence, `None` when nothing is padded.
fn key_bias<B: Backend>(padding: Option<Tensor<B, 2, Bool>>) -> Option<Tensor<B, 4>> {
    padding.and_then(|padding| AttentionMask::padding(padding).bias())
}

/// The first token of `[B, S, W]` → `[B, W]`.
fn first<B: Backend>(hidden: Tensor<B, 3>) -> Tensor<B, 2> {
    let [batch, _, width] = hidden.dims();
    hidden.narrow(1, 0, 1).reshape([batch, width])
}

impl<B: Backend> DualStreamModel<B> {
    /// `[B, T]` ids → `[B, T, H]` text embeddings.
    pub fn embed_text(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.embeddings.forward(ids)
    }

    /// Pixels or regions → `[B, 1 + V, Hv]` image tokens with `[CLS_V]`
    /// first (never padding) and the extractor's padding after it.
    pub fn embed_image(&self, visual: &VisualBatch<B>) -> VisualTokens<B> {
        let image = self.visual.forward(visual);
        let [batch, _, width] = image.tokens.dims();
        let cls = self.visual_cls.val().expand([batch, 1, width]);
        // Concatenated as integers: bools made in different ways may have
        // different dtypes, which `cat` rejects.
        let padding = image.padding.map(|padding| {
            let cls = Tensor::<B, 2, Int>::zeros([batch, 1], &padding.device());
            Tensor::cat(vec![cls, padding.int()], 1).bool()
        });
        VisualTokens {
            tokens: Tensor::cat(vec![cls, image.tokens], 1),
            padding,
        }
    }

    /// The text stream alone, every text layer and no cross-modal one:
    /// `[B, T, H]` embeddings, `[B, T]` padding → `[B, T, H]`.
    pub fn encode_text(&self, text: Tensor<B, 3>, padding: Tensor<B, 2, Bool>) -> Tensor<B, 3> {
        let bias = key_bias(Some(padding));
        self.layer
            .iter()
            .fold(text, |x, layer| layer.forward(x, bias.clone()))
    }

    /// The visual stream alone: tokens from [`embed_image`](Self::embed_image)
    /// → `[B, 1 + V, Hv]`.
    pub fn encode_image(&self, image: VisualTokens<B>) -> Tensor<B, 3> {
        let bias = key_bias(image.padding);
        self.v_layer
            .iter()
            .fold(image.tokens, |x, layer| layer.forward(x, bias.clone()))
    }

    /// Both streams with their cross-modal layers: text embeddings `[B, T, H]`
    /// with `padding` `[B, T]`, image tokens from
    /// [`embed_image`](Self::embed_image) → [`DualStreamOutput`].
    pub fn fuse(
        &self,
        text: Tensor<B, 3>,
        padding: Tensor<B, 2, Bool>,
        image: VisualTokens<B>,
    ) -> DualStreamOutput<B> {
        let text_bias = key_bias(Some(padding));
        let image_bias = key_bias(image.padding);
        let run = |layers: &[TransformerLayer<B>], x, bias: &Option<Tensor<B, 4>>| {
            layers
                .iter()
                .fold(x, |x, layer| layer.forward(x, bias.clone()))
        };
        let (text, image) = match &self.cross {
            CrossModalLayers::CoAttention(blocks) => {
                let text_alone = self.layer.len() - blocks.len();
                let image_alone = self.v_layer.len() - blocks.len();
                let mut text = run(&self.layer[..text_alone], text, &text_bias);
                let mut image = run(&self.v_layer[..image_alone], image.tokens, &image_bias);
                for (i, block) in blocks.iter().enumerate() {
                    (text, image) =
                        block.forward(text, text_bias.clone(), image, image_bias.clone());
                    text = self.layer[text_alone + i].forward(text, text_bias.clone());
                    image = self.v_layer[image_alone + i].forward(image, image_bias.clone());
                }
                (text, image)
            }
            CrossModalLayers::CrossModality(layers) => {
                let text = run(&self.layer, text, &text_bias);
                let image = run(&self.v_layer, image.tokens, &image_bias);
                layers.iter().fold((text, image), |(text, image), layer| {
                    layer.forward(text, text_bias.clone(), image, image_bias.clone())
                })
            }
        };
        let text_cls = self.t_pooler.forward(first(text.clone()));
        let image_cls = first(image.clone());
        let (pooled_text, pooled_image, pooled) = match &self.v_pooler {
            Some(v_pooler) => {
                let pooled_text = relu(text_cls);
                let pooled_image = relu(v_pooler.forward(image_cls));
                let pooled = pooled_text.clone() * pooled_image.clone();
                (pooled_text, pooled_image, pooled)
            }
            None => {
                let pooled_text = text_cls.tanh();
                let pooled = Tensor::cat(vec![pooled_text.clone(), image_cls.clone()], 1);
                (pooled_text, image_cls, pooled)
            }
        };
        DualStreamOutput {
            text,
            image,
            pooled_text,
            pooled_image,
            pooled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::{TensorData, Tolerance};
    use vlp_data::RegionTensors;
    use vlp_features::RegionEmbeddingsConfig;
    use vlp_test_support::uniform;

    type B = NdArray;

    /// Text 16 wide, image 24 wide (ViLBERT) or 16 (LXMERT), 3 regions of 6 features.
    fn config(kind: DualStreamKind, cross: usize) -> DualStreamConfig {
        let v_hidden = if kind == DualStreamKind::Vilbert {
            24
        } else {
            16
        };
        DualStreamConfig::new(
            20,
            VisualEmbeddingsConfig::Regions(
                RegionEmbeddingsConfig::new(6, v_hidden).with_dropout(0.0),
            ),
        )
        .with_kind(kind)
        .with_text(
            TransformerSize::of(16, 2, 32, 3)
                .with_norm_first(false)
                .with_dropout(0.0),
        )
        .with_vision(
            TransformerSize::of(v_hidden, 2, 20, 2)
                .with_norm_first(false)
                .with_dropout(0.0),
        )
        .with_bi_hidden_size(12)
        .with_bi_num_heads(3)
        .with_num_cross_layers(cross)
    }

    /// Regions drawn from a generator of their own: the same for a seed in
    /// every call, whatever other tests draw meanwhile.
    fn regions(seed: u64, padded: Vec<i64>) -> VisualBatch<B> {
        let device = Default::default();
        let count = padded.len();
        VisualBatch::Regions(RegionTensors {
            features: uniform([1, count, 6], 2 * seed, &device),
            boxes: uniform([1, count, 4], 2 * seed + 1, &device),
            padding: Tensor::<B, 2, Int>::from_data(TensorData::new(padded, [1, count]), &device)
                .bool(),
            soft_labels: None,
        })
    }

    fn ids(values: Vec<i64>) -> Tensor<B, 2, Int> {
        let len = values.len();
        Tensor::from_data(TensorData::new(values, [1, len]), &Default::default())
    }

    fn padding(values: Vec<bool>) -> Tensor<B, 2, Bool> {
        let len = values.len();
        Tensor::from_data(TensorData::new(values, [1, len]), &Default::default())
    }

    fn max_diff(a: Tensor<B, 3>, b: Tensor<B, 3>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// Text outputs of one text under two images.
    fn text_under_two_images(model: &DualStreamModel<B>) -> (DualStreamOutput<B>, f32) {
        let text = model.embed_text(ids(vec![2, 5, 6, 3]));
        let a = model.fuse(
            text.clone(),
            padding(vec![false; 4]),
            model.embed_image(&regions(1, vec![0, 0, 0])),
        );
        let b = model.fuse(
            text,
            padding(vec![false; 4]),
            model.embed_image(&regions(2, vec![0, 0, 0])),
        );
        let moved = max_diff(a.text.clone(), b.text);
        (a, moved)
    }

    #[test]
    fn without_cross_layers_the_image_cannot_reach_the_text() {
        for kind in [DualStreamKind::Vilbert, DualStreamKind::Lxmert] {
            let model = config(kind, 0).init::<B>(&Default::default());
            let (out, moved) = text_under_two_images(&model);
            assert!(moved < 1e-6, "{kind:?}: text moved by {moved}");
            // And the fused text is then exactly the text stream alone.
            let alone = model.encode_text(
                model.embed_text(ids(vec![2, 5, 6, 3])),
                padding(vec![false; 4]),
            );
            out.text
                .into_data()
                .assert_approx_eq::<f32>(&alone.into_data(), Tolerance::absolute(1e-6));

            let model = config(kind, 2).init::<B>(&Default::default());
            let (_, moved) = text_under_two_images(&model);
            assert!(
                moved > 1e-4,
                "{kind:?}: cross layers let text see the image"
            );
        }
    }

    #[test]
    fn invalid_configurations_name_their_key() {
        let key = |config: DualStreamConfig| config.validate().unwrap_err().key;
        assert!(config(DualStreamKind::Vilbert, 2).validate().is_ok());
        assert!(config(DualStreamKind::Lxmert, 2).validate().is_ok());
        let wider = |mut config: DualStreamConfig| {
            config.vision.hidden_size = 24;
            config
        };
        assert_eq!(
            key(wider(config(DualStreamKind::Lxmert, 1))),
            "visual.hidden_size"
        );
        assert_eq!(
            key(config(DualStreamKind::Vilbert, 1).with_kind(DualStreamKind::Lxmert)),
            "vision.hidden_size"
        );
        assert_eq!(key(config(DualStreamKind::Vilbert, 3)), "num_cross_layers");
        assert_eq!(
            key(config(DualStreamKind::Vilbert, 1).with_bi_num_heads(5)),
            "bi_hidden_size"
        );
        let headless = |mut config: DualStreamConfig| {
            config.text.num_attention_heads = 0;
            config
        };
        assert_eq!(
            key(headless(config(DualStreamKind::Vilbert, 1))),
            "text.num_attention_heads"
        );
    }

    #[test]
    fn shapes_and_pooled_widths() {
        for kind in [DualStreamKind::Vilbert, DualStreamKind::Lxmert] {
            let config = config(kind, 2);
            let model = config.init::<B>(&Default::default());
            let (out, _) = text_under_two_images(&model);
            let v = config.vision.hidden_size;
            assert_eq!(out.text.dims(), [1, 4, 16]);
            assert_eq!(out.image.dims(), [1, 4, v], "[CLS_V] + 3 regions");
            assert_eq!(out.pooled.dims(), [1, config.pooled_size()]);
            let image = model.encode_image(model.embed_image(&regions(1, vec![0, 0, 1])));
            assert_eq!(image.dims(), [1, 4, v]);
        }
        assert_eq!(config(DualStreamKind::Vilbert, 2).pooled_size(), 12);
        assert_eq!(config(DualStreamKind::Lxmert, 2).pooled_size(), 32);
    }

    #[test]
    fn padding_of_either_stream_changes_nothing() {
        for kind in [DualStreamKind::Vilbert, DualStreamKind::Lxmert] {
            let model = config(kind, 2).init::<B>(&Default::default());
            let (reference, _) = text_under_two_images(&model);
            // Same text with two padding tokens, same image with a padded
            // fourth region of arbitrary content.
            let text = model.embed_text(ids(vec![2, 5, 6, 3, 0, 0]));
            let image = match regions(1, vec![0, 0, 0]) {
                VisualBatch::Regions(r) => {
                    let device = Default::default();
                    VisualBatch::Regions(RegionTensors {
                        features: Tensor::cat(
                            vec![r.features, uniform([1, 1, 6], 100, &device)],
                            1,
                        ),
                        boxes: Tensor::cat(vec![r.boxes, uniform([1, 1, 4], 101, &device)], 1),
                        padding: Tensor::<B, 2, Int>::from_data(
                            TensorData::new(vec![0i64, 0, 0, 1], [1, 4]),
                            &device,
                        )
                        .bool(),
                        soft_labels: None,
                    })
                }
                _ => unreachable!("regions() gives regions"),
            };
            let padded = model.fuse(
                text,
                padding(vec![false, false, false, false, true, true]),
                model.embed_image(&image),
            );
            let tolerance = Tolerance::absolute(1e-5);
            padded
                .text
                .narrow(1, 0, 4)
                .into_data()
                .assert_approx_eq::<f32>(&reference.text.into_data(), tolerance);
            padded
                .image
                .narrow(1, 0, 4)
                .into_data()
                .assert_approx_eq::<f32>(&reference.image.into_data(), tolerance);
            padded
                .pooled
                .into_data()
                .assert_approx_eq::<f32>(&reference.pooled.into_data(), tolerance);
        }
    }
}
