//! Single-stream fusion (UNITER, ViLT): text tokens and image patches are
//! concatenated into one sequence and share every attention layer.
//!
//! The same stack also encodes each modality alone (text only, image only),
//! which gives the unimodal embeddings contrastive objectives and fast
//! retrieval need without a second set of weights.

use burn::prelude::*;
use vlp_data::VisualBatch;
use vlp_features::{TextEmbeddings, VisualEmbeddings, VisualEmbeddingsConfig, VisualTokens};

use crate::config_error::ConfigError;
use crate::encoder::TransformerEncoder;
use crate::pooler::{Pooler, PoolerConfig};
use crate::size::{init_one_stack, validate_one_stack, TransformerSize};

/// Configuration of [`SingleStreamModel`]. The defaults are the tiny model
/// `cargo xtask pretrain` trains on the synthetic world.
#[derive(Config, Debug)]
pub struct SingleStreamConfig {
    /// Vocabulary size of the tokenizer.
    pub vocab_size: usize,
    /// The visual extractor (patches or regions); its `hidden_size` must
    /// equal `transformer.hidden_size`.
    pub visual: VisualEmbeddingsConfig,
    /// The shared stack: 128 wide, 4 heads, inner 512, 4 layers, pre-norm
    /// (ViT/ViLT; post-norm is BERT's and UNITER's), dropout 0.1.
    #[config(default = "TransformerSize::new().with_num_layers(4)")]
    pub transformer: TransformerSize,
    /// Longest text the position table covers.
    #[config(default = 64)]
    pub max_text_len: usize,
}

/// Text embeddings + a visual extractor + one shared transformer + pooler.
#[derive(Module, Debug)]
pub struct SingleStreamModel<B: Backend> {
    /// Text embeddings.
    pub embeddings: TextEmbeddings<B>,
    /// The visual extractor.
    pub visual: VisualEmbeddings<B>,
    /// The stack shared by both modalities.
    pub encoder: TransformerEncoder<B>,
    /// The `[CLS]` pooler.
    pub pooler: Pooler<B>,
}

/// Output of the merged (fused) pass.
#[derive(Debug, Clone)]
pub struct FusedOutput<B: Backend> {
    /// `[B, T, H]` contextual text tokens.
    pub text: Tensor<B, 3>,
    /// `[B, V, H]` contextual image tokens.
    pub image: Tensor<B, 3>,
    /// `[B, H]` pooled first text token (`[CLS]`).
    pub pooled: Tensor<B, 2>,
}

impl SingleStreamConfig {
    /// Whether the values can build a model; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_one_stack(&self.visual, &self.transformer)
    }

    /// # Panics
    ///
    /// When [`validate`](Self::validate) fails, with its message.
    pub fn init<B: Backend>(&self, device: &B::Device) -> SingleStreamModel<B> {
        let (embeddings, visual, encoder) = init_one_stack(
            self.vocab_size,
            self.max_text_len,
            &self.visual,
            &self.transformer,
            device,
        );
        SingleStreamModel {
            embeddings,
            visual,
            encoder,
            pooler: PoolerConfig::new(self.transformer.hidden_size).init(device),
        }
    }
}

impl<B: Backend> SingleStreamModel<B> {
    /// `[B, T]` ids → `[B, T, H]` text embeddings.
    pub fn embed_text(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.embeddings.forward(ids)
    }

    /// Pixels or regions → `[B, V, H]` image tokens (with their padding).
    pub fn embed_image(&self, visual: &VisualBatch<B>) -> VisualTokens<B> {
        self.visual.forward(visual)
    }

    /// Text alone through the stack: `[B, T, H]` embeddings, `[B, T]` padding → `[B, T, H]`.
    pub fn encode_text(&self, text: Tensor<B, 3>, padding: Tensor<B, 2, Bool>) -> Tensor<B, 3> {
        self.encoder.forward(text, Some(padding))
    }

    /// Image alone through the stack: `[B, V, H]` → `[B, V, H]`.
    pub fn encode_image(&self, image: VisualTokens<B>) -> Tensor<B, 3> {
        self.encoder.forward(image.tokens, image.padding)
    }

    /// Merged attention over `[text; image]`: every token attends to every
    /// non-padding token of both modalities.
    pub fn fuse(
        &self,
        text: Tensor<B, 3>,
        padding: Tensor<B, 2, Bool>,
        image: VisualTokens<B>,
    ) -> FusedOutput<B> {
        let [_, text_len, _] = text.dims();
        let [_, image_len, _] = image.tokens.dims();
        let (tokens, padding) = merged(text, padding, image);
        let hidden = self.encoder.forward(tokens, Some(padding));
        let text = hidden.clone().narrow(1, 0, text_len);
        let image = hidden.narrow(1, text_len, image_len);
        let pooled = self.pooler.forward(text.clone());
        FusedOutput {
            text,
            image,
            pooled,
        }
    }

    /// The last layer's attention probabilities in the merged pass of
    /// [`fuse`](Self::fuse): `[B, heads, T + V, T + V]`, text positions
    /// first; a row is what one token reads, padding columns are 0.
    pub fn fused_attention(
        &self,
        text: Tensor<B, 3>,
        padding: Tensor<B, 2, Bool>,
        image: VisualTokens<B>,
    ) -> Tensor<B, 4> {
        let (tokens, padding) = merged(text, padding, image);
        self.encoder
            .last_attention(tokens, Some(padding))
            .expect("a single-stream model has at least one layer")
    }
}

/// `[text; image]` tokens `[B, T + V, H]` and their padding `[B, T + V]`.
fn merged<B: Backend>(
    text: Tensor<B, 3>,
    padding: Tensor<B, 2, Bool>,
    image: VisualTokens<B>,
) -> (Tensor<B, 3>, Tensor<B, 2, Bool>) {
    let [batch, _, _] = text.dims();
    let [_, image_len, _] = image.tokens.dims();
    // Concatenated as integers: backends may store bools created in
    // different ways with different dtypes, which `cat` rejects.
    let image_padding = match image.padding {
        Some(padding) => padding.int(),
        None => Tensor::<B, 2, Int>::zeros([batch, image_len], &text.device()),
    };
    let padding = Tensor::cat(vec![padding.int(), image_padding], 1).bool();
    (Tensor::cat(vec![text, image.tokens], 1), padding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::{Distribution, TensorData, Tolerance};
    use vlp_data::RegionTensors;
    use vlp_features::{PatchEmbeddingsConfig, RegionEmbeddingsConfig};
    use vlp_test_support::uniform;

    fn config(visual: VisualEmbeddingsConfig) -> SingleStreamConfig {
        SingleStreamConfig::new(20, visual)
            .with_transformer(TransformerSize::of(16, 2, 32, 2).with_dropout(0.0))
    }

    fn model() -> SingleStreamModel<NdArray> {
        config(VisualEmbeddingsConfig::Patches(
            PatchEmbeddingsConfig::new(16, 8, 16).with_dropout(0.0),
        ))
        .init(&Default::default())
    }

    fn pixels(values: Tensor<NdArray, 4>) -> VisualBatch<NdArray> {
        VisualBatch::Images(values)
    }

    fn ids(values: Vec<i64>, len: usize) -> Tensor<NdArray, 2, Int> {
        Tensor::from_data(TensorData::new(values, [1, len]), &Default::default())
    }

    fn padding(values: Vec<bool>) -> Tensor<NdArray, 2, Bool> {
        let len = values.len();
        Tensor::from_data(TensorData::new(values, [1, len]), &Default::default())
    }

    #[test]
    fn fused_text_depends_on_the_image_and_ignores_padding() {
        let model = model();
        let device = Default::default();
        let image_a = model.embed_image(&pixels(uniform([1, 3, 16, 16], 1, &device)));
        let image_b = model.embed_image(&pixels(uniform([1, 3, 16, 16], 2, &device)));
        let text = model.embed_text(ids(vec![2, 5, 6, 3], 4));
        let out_a = model.fuse(text.clone(), padding(vec![false; 4]), image_a.clone());
        let out_b = model.fuse(text.clone(), padding(vec![false; 4]), image_b);
        assert_eq!(out_a.text.dims(), [1, 4, 16]);
        assert_eq!(out_a.image.dims(), [1, 5, 16]);
        assert_eq!(out_a.pooled.dims(), [1, 16]);
        let moved = (out_a.text.clone() - out_b.text).abs().max().into_scalar();
        assert!(moved > 1e-4, "merged attention lets text see the image");

        let padded_text = model.embed_text(ids(vec![2, 5, 6, 3, 0, 0], 6));
        let padded = model.fuse(
            padded_text,
            padding(vec![false, false, false, false, true, true]),
            image_a,
        );
        padded
            .text
            .narrow(1, 0, 4)
            .into_data()
            .assert_approx_eq::<f32>(&out_a.text.into_data(), Tolerance::absolute(1e-5));
        padded
            .pooled
            .into_data()
            .assert_approx_eq::<f32>(&out_a.pooled.into_data(), Tolerance::absolute(1e-5));
    }

    #[test]
    fn unimodal_passes_see_one_modality() {
        let model = model();
        let text = model.encode_text(
            model.embed_text(ids(vec![2, 7, 3], 3)),
            padding(vec![false; 3]),
        );
        assert_eq!(text.dims(), [1, 3, 16]);
        let image = model.encode_image(
            model.embed_image(&pixels(Tensor::zeros([2, 3, 16, 16], &Default::default()))),
        );
        assert_eq!(image.dims(), [2, 5, 16]);
    }

    #[test]
    fn padded_regions_are_invisible_to_the_text() {
        let device = Default::default();
        let model: SingleStreamModel<NdArray> = config(VisualEmbeddingsConfig::Regions(
            RegionEmbeddingsConfig::new(6, 16).with_dropout(0.0),
        ))
        .init(&device);
        let features = Tensor::<NdArray, 3>::random([1, 3, 6], Distribution::Default, &device);
        let boxes = Tensor::<NdArray, 3>::random([1, 3, 4], Distribution::Default, &device);
        let regions =
            |features: Tensor<NdArray, 3>, boxes: Tensor<NdArray, 3>, padded: Vec<i64>| {
                VisualBatch::Regions(RegionTensors {
                    features,
                    boxes,
                    padding: Tensor::<NdArray, 2, Int>::from_data(
                        TensorData::new(padded, [1, 3]),
                        &device,
                    )
                    .bool(),
                    soft_labels: None,
                })
            };
        let text = model.embed_text(ids(vec![2, 5, 6, 3], 4));
        let with_two = model.fuse(
            text.clone(),
            padding(vec![false; 4]),
            model.embed_image(&regions(features.clone(), boxes.clone(), vec![0, 0, 1])),
        );
        // Changing the padded region's feature and box changes nothing.
        let changed_features = features.clone().slice_assign(
            [0..1, 2..3, 0..6],
            Tensor::random([1, 1, 6], Distribution::Default, &device),
        );
        let changed_boxes = boxes.clone().slice_assign(
            [0..1, 2..3, 0..4],
            Tensor::random([1, 1, 4], Distribution::Default, &device),
        );
        let changed = model.fuse(
            text.clone(),
            padding(vec![false; 4]),
            model.embed_image(&regions(changed_features, changed_boxes, vec![0, 0, 1])),
        );
        changed.text.into_data().assert_approx_eq::<f32>(
            &with_two.text.clone().into_data(),
            Tolerance::absolute(1e-5),
        );
        // Unmasking it does.
        let with_three = model.fuse(
            text,
            padding(vec![false; 4]),
            model.embed_image(&regions(features, boxes, vec![0, 0, 0])),
        );
        let moved = (with_three.text - with_two.text).abs().max().into_scalar();
        assert!(moved > 1e-4);
    }

    /// The merged pass's last-layer attention: rows are distributions over
    /// the real tokens of both modalities, and the last layer's input is the
    /// one `fuse` feeds it (its attention changes with the image).
    #[test]
    fn fused_attention_rows_are_distributions_over_real_tokens() {
        let model = model();
        let device = Default::default();
        let image = |seed| model.embed_image(&pixels(uniform([1, 3, 16, 16], seed, &device)));
        let text = model.embed_text(ids(vec![2, 5, 6, 3, 0], 5));
        let mask = padding(vec![false, false, false, false, true]);
        let probs = model.fused_attention(text.clone(), mask.clone(), image(1));
        assert_eq!(probs.dims(), [1, 2, 10, 10]);
        let sums = probs.clone().sum_dim(3);
        sums.into_data().assert_approx_eq::<f32>(
            &TensorData::ones::<f32, _>([1, 2, 10, 1]),
            Tolerance::absolute(1e-5),
        );
        let padded = probs.clone().slice([0..1, 0..2, 0..10, 4..5]);
        assert!(padded.abs().max().into_scalar() < 1e-6);
        let other = model.fused_attention(text, mask, image(2));
        assert!((probs - other).abs().max().into_scalar() > 1e-4);
    }
}
