//! Unimodal encoders followed by fusion layers (ALBEF): a text encoder (the
//! first BERT layers), an image encoder (its own pre-norm transformer over
//! the visual tokens, ViT-B/16 in base), and fusion layers — BERT's last
//! layers with a `crossattention` block from the text to the image — that
//! turn the unimodal text into the multimodal sequence matching and MLM
//! read.
//!
//! The text reaches the image only through the fusion layers' cross-attention:
//! [`FusionModel::encode_text`] never sees an image, so contrastive learning
//! can align the unimodal embeddings before fusion ("align before fuse").

use burn::prelude::*;
use vlp_data::VisualBatch;
use vlp_features::{
    PatchEmbeddingsConfig, TextEmbeddings, TextEmbeddingsConfig, VisualEmbeddings,
    VisualEmbeddingsConfig, VisualTokens,
};

use crate::config_error::{or_panic, ConfigError};
use crate::encoder::{TransformerEncoder, TransformerEncoderConfig};
use crate::layer::CrossContext;
use crate::mask::AttentionMask;
use crate::size::{validate_two_towers, TransformerSize};

/// Configuration of [`FusionModel`]. The defaults are a tiny model for CPU
/// tests; [`FusionConfig::albef_base`] is the published size.
#[derive(Config, Debug)]
pub struct FusionConfig {
    /// Vocabulary size of the tokenizer.
    pub vocab_size: usize,
    /// The visual extractor; its `hidden_size` must equal `vision.hidden_size`.
    pub visual: VisualEmbeddingsConfig,
    /// The text side: width, heads, inner width, norm placement and
    /// dropout of the text encoder and the fusion layers, and the text-only
    /// layers (`num_layers`; ALBEF: BERT layers 0–5). Its dropout is also
    /// the embeddings'. Default: 128 wide, 4 heads, inner 512, 2 layers,
    /// post-norm (BERT), dropout 0.1.
    #[config(default = "TransformerSize::new().with_norm_first(false)")]
    pub text: TransformerSize,
    /// Fusion layers with cross-attention to the image (ALBEF: BERT layers 6–11).
    #[config(default = 2)]
    pub num_fusion_layers: usize,
    /// The image encoder. Default: 128 wide, 4 heads, inner 512, 2 layers,
    /// pre-norm with a final LayerNorm (ViT), dropout 0.1.
    #[config(default = "TransformerSize::new()")]
    pub vision: TransformerSize,
    /// Longest text the position table covers.
    #[config(default = 64)]
    pub max_text_len: usize,
    /// LayerNorm epsilon of the BERT side.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// LayerNorm epsilon of the image encoder (timm's ViT: 1e-6).
    #[config(default = 1e-6)]
    pub vision_layer_norm_eps: f64,
}

/// ALBEF's backbone without its heads.
#[derive(Module, Debug)]
pub struct FusionModel<B: Backend> {
    /// `text_encoder.bert.embeddings`.
    pub embeddings: TextEmbeddings<B>,
    /// Post-norm BERT layers, text only.
    pub text_encoder: TransformerEncoder<B>,
    /// The visual extractor (`visual_encoder.patch_embed`, `cls_token`, `pos_embed`).
    pub visual: VisualEmbeddings<B>,
    /// Pre-norm layers with a final LayerNorm (`visual_encoder.blocks`, `.norm`).
    pub visual_encoder: TransformerEncoder<B>,
    /// Post-norm BERT layers with `crossattention` to the image.
    pub fusion: TransformerEncoder<B>,
}

/// Output of [`FusionModel::fuse`].
#[derive(Debug, Clone)]
pub struct FusionOutput<B: Backend> {
    /// `[B, T, H]` multimodal text tokens.
    pub text: Tensor<B, 3>,
    /// `[B, H]` the fused `[CLS]` (ALBEF's ITM head reads it directly; no pooler).
    pub pooled: Tensor<B, 2>,
}

impl FusionConfig {
    /// ALBEF-base: BERT-base (12 layers, 768, 12 heads, 3072, 512 positions)
    /// split 6 text + 6 fusion, and a ViT-B/16 image encoder at 224 pixels
    /// (12 layers, 768, 12 heads, 3072, LayerNorm eps 1e-6).
    pub fn albef_base(vocab_size: usize) -> Self {
        Self::new(
            vocab_size,
            VisualEmbeddingsConfig::Patches(PatchEmbeddingsConfig::new(224, 16, 768)),
        )
        .with_text(TransformerSize::of(768, 12, 3072, 6).with_norm_first(false))
        .with_num_fusion_layers(6)
        .with_vision(TransformerSize::of(768, 12, 3072, 12))
        .with_max_text_len(512)
    }

    /// Whether the values can build a model; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_two_towers(&self.visual, &self.text, &self.vision)
    }

    /// # Panics
    ///
    /// When [`validate`](Self::validate) fails, with its message.
    pub fn init<B: Backend>(&self, device: &B::Device) -> FusionModel<B> {
        or_panic(self.validate());
        let (text, vision) = (&self.text, &self.vision);
        let text_layer = text.layer().with_layer_norm_eps(self.layer_norm_eps);
        let image_layer = vision
            .layer()
            .with_layer_norm_eps(self.vision_layer_norm_eps);
        let fusion_layer = text_layer
            .clone()
            .with_cross_attention(true)
            .with_context_size(Some(vision.hidden_size));
        FusionModel {
            embeddings: TextEmbeddingsConfig::new(self.vocab_size, text.hidden_size)
                .with_max_position_embeddings(self.max_text_len)
                .with_layer_norm_eps(self.layer_norm_eps)
                .with_dropout(text.dropout)
                .init(device),
            text_encoder: text.encoder(text_layer).init(device),
            visual: self.visual.init(device),
            visual_encoder: vision.encoder(image_layer).init(device),
            fusion: TransformerEncoderConfig::new(fusion_layer, self.num_fusion_layers)
                .init(device),
        }
    }
}

impl<B: Backend> FusionModel<B> {
    /// `[B, T]` ids → `[B, T, H]` text embeddings.
    pub fn embed_text(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.embeddings.forward(ids)
    }

    /// Pixels or regions → `[B, V, Hi]` image tokens with their padding.
    pub fn embed_image(&self, visual: &VisualBatch<B>) -> VisualTokens<B> {
        self.visual.forward(visual)
    }

    /// The text encoder: `[B, T, H]` embeddings, `[B, T]` padding → `[B, T, H]`.
    pub fn encode_text(&self, text: Tensor<B, 3>, padding: Tensor<B, 2, Bool>) -> Tensor<B, 3> {
        self.text_encoder.forward(text, Some(padding))
    }

    /// The image encoder: tokens from [`embed_image`](Self::embed_image) →
    /// `[B, V, Hi]` (same padding).
    pub fn encode_image(&self, image: VisualTokens<B>) -> Tensor<B, 3> {
        self.visual_encoder.forward(image.tokens, image.padding)
    }

    /// The fusion layers: the encoded text `[B, T, H]` (from
    /// [`encode_text`](Self::encode_text)) with its `padding` `[B, T]`
    /// attends to the encoded image (`image.tokens` `[B, V, Hi]` from
    /// [`encode_image`](Self::encode_image), with its padding).
    pub fn fuse(
        &self,
        text: Tensor<B, 3>,
        padding: Tensor<B, 2, Bool>,
        image: VisualTokens<B>,
    ) -> FusionOutput<B> {
        let context = CrossContext {
            hidden: image.tokens,
            bias: image
                .padding
                .and_then(|padding| AttentionMask::padding(padding).bias()),
        };
        let text = self.fusion.forward_with_context(
            text,
            AttentionMask::padding(padding).bias(),
            Some(&context),
        );
        let [batch, _, width] = text.dims();
        let pooled = text.clone().narrow(1, 0, 1).reshape([batch, width]);
        FusionOutput { text, pooled }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::{TensorData, Tolerance};

    type B = NdArray;

    fn build(fusion_layers: usize) -> FusionModel<B> {
        FusionConfig::new(
            20,
            VisualEmbeddingsConfig::Patches(
                PatchEmbeddingsConfig::new(16, 8, 24).with_dropout(0.0),
            ),
        )
        .with_text(
            TransformerSize::of(16, 2, 32, 2)
                .with_norm_first(false)
                .with_dropout(0.0),
        )
        .with_num_fusion_layers(fusion_layers)
        .with_vision(TransformerSize::of(24, 3, 48, 2).with_dropout(0.0))
        .init(&Default::default())
    }

    fn fused(model: &FusionModel<B>, ids: Vec<i64>, seed: u64) -> FusionOutput<B> {
        let device = Default::default();
        let len = ids.len();
        let real = ids.iter().filter(|&&id| id != 0).count();
        let padding = Tensor::<B, 2, Bool>::from_data(
            TensorData::new((0..len).map(|t| t >= real).collect::<Vec<_>>(), [1, len]),
            &device,
        );
        let text = model.encode_text(
            model.embed_text(Tensor::from_data(TensorData::new(ids, [1, len]), &device)),
            padding.clone(),
        );
        // Its own generator: the image of a seed is the same in every call.
        let image = model.embed_image(&VisualBatch::Images(vlp_test_support::uniform(
            [1, 3, 16, 16],
            seed,
            &device,
        )));
        let padding_v = image.padding.clone();
        let encoded = VisualTokens {
            tokens: model.encode_image(image),
            padding: padding_v,
        };
        model.fuse(text, padding, encoded)
    }

    #[test]
    fn text_sees_the_image_only_through_the_fusion_cross_attention() {
        let model = build(2);
        let a = fused(&model, vec![2, 5, 6, 3], 1);
        let b = fused(&model, vec![2, 5, 6, 3], 2);
        assert_eq!(a.text.dims(), [1, 4, 16]);
        assert_eq!(a.pooled.dims(), [1, 16]);
        assert!((a.text.clone() - b.text).abs().max().into_scalar() > 1e-4);

        // Silencing the cross-attention outputs cuts the image off entirely.
        let mut cut = model.clone();
        for layer in cut.fusion.layer.iter_mut() {
            let cross = layer.cross_attention.as_mut().unwrap();
            cross.output.weight = cross.output.weight.clone().map(|w| w.zeros_like());
            let bias = cross.output.bias.take().unwrap();
            cross.output.bias = Some(bias.map(|b| b.zeros_like()));
        }
        let a = fused(&cut, vec![2, 5, 6, 3], 1);
        let b = fused(&cut, vec![2, 5, 6, 3], 2);
        a.text
            .into_data()
            .assert_approx_eq::<f32>(&b.text.into_data(), Tolerance::absolute(1e-6));

        // Without fusion layers the output is the text encoder's.
        let model = build(0);
        let a = fused(&model, vec![2, 5, 6, 3], 1);
        let b = fused(&model, vec![2, 5, 6, 3], 2);
        a.text
            .into_data()
            .assert_approx_eq::<f32>(&b.text.into_data(), Tolerance::absolute(1e-6));
    }

    #[test]
    fn text_padding_changes_nothing() {
        let model = build(2);
        let short = fused(&model, vec![2, 5, 6, 3], 1);
        let long = fused(&model, vec![2, 5, 6, 3, 0, 0], 1);
        long.text
            .narrow(1, 0, 4)
            .into_data()
            .assert_approx_eq::<f32>(&short.text.into_data(), Tolerance::absolute(1e-5));
    }
}
