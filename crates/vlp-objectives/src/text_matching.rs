//! The masked-text → MLM → ITM block (survey §4.1 MLM, §4.4 ITM) that the
//! single-stream ([`UniterPretrainer`](crate::UniterPretrainer)),
//! dual-stream ([`DualStreamPretrainer`](crate::DualStreamPretrainer)) and
//! fusion ([`AlbefPretrainer`](crate::AlbefPretrainer)) pre-trainers share:
//! the step's ITM pairs are fused once, with masked text, and that one pass
//! serves both heads. MLM reads the fused text at the batch's masked
//! positions (the matched pairs come first, so those positions address
//! them); ITM reads the fused pair representation.
//!
//! The heads stay fields of each pre-trainer (`mlm_head`, `itm_head`), so
//! checkpoints keep their keys; this block builds them (MLM first, then ITM:
//! the order their parameters are drawn in) and runs them.

use burn::prelude::*;
use vlp_data::PretrainBatch;
use vlp_features::VisualTokens;
use vlp_models::{DualStreamModel, FusionModel, SingleStreamModel};

use crate::itm::{itm_loss, ItmHead, ItmHeadConfig};
use crate::mlm::{gather_positions, mlm_loss, MlmHead, MlmHeadConfig};
use crate::pretrainer::ObjectiveOutput;

/// Sizes of the MLM and ITM heads of a pre-trainer.
#[derive(Config, Debug)]
pub struct TextMatchingConfig {
    /// Width `H` of the fused text tokens the MLM head reads.
    pub hidden_size: usize,
    /// Vocabulary size `V`; the MLM decoder is tied to the `[V, H]` word
    /// embeddings.
    pub vocab_size: usize,
    /// Width of the fused pair representation the ITM head reads (`H` for
    /// a fused `[CLS]`; the dual-stream pooled pair may differ).
    pub pooled_size: usize,
    /// LayerNorm epsilon of the MLM head (BERT: 1e-12).
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
}

impl TextMatchingConfig {
    /// The MLM head (`H → H → V`, decoder tied).
    pub fn init_mlm<B: Backend>(&self, device: &B::Device) -> MlmHead<B> {
        MlmHeadConfig::new(self.hidden_size, self.vocab_size)
            .with_layer_norm_eps(self.layer_norm_eps)
            .init(device)
    }

    /// The ITM head (`pooled_size → 2`).
    pub fn init_itm<B: Backend>(&self, device: &B::Device) -> ItmHead<B> {
        ItmHeadConfig::new(self.pooled_size).init(device)
    }

    /// Both heads, MLM first: the order their parameters draw from the
    /// backend's generator (a seeded run depends on it).
    pub fn init<B: Backend>(&self, device: &B::Device) -> (MlmHead<B>, ItmHead<B>) {
        let mlm = self.init_mlm(device);
        (mlm, self.init_itm(device))
    }
}

/// A backbone whose cross-modal layers fuse text with image tokens: what
/// [`TextMatching::forward`] runs its pairs through.
pub trait FusePairs<B: Backend> {
    /// Text tokens `[P, T, H]` with padding `[P, T]` (`true` at padding) and
    /// `P` images → contextual text `[P, T, H]` and the fused pair `[P, Hp]`.
    fn fuse_pairs(
        &self,
        text: Tensor<B, 3>,
        padding: Tensor<B, 2, Bool>,
        image: VisualTokens<B>,
    ) -> (Tensor<B, 3>, Tensor<B, 2>);

    /// The `[V, H]` word embeddings (the MLM decoder is tied to them).
    fn word_embeddings(&self) -> Tensor<B, 2>;
}

/// [`FusePairs`] for backbones with `fuse` and `embeddings`.
macro_rules! fuse_pairs {
    ($($model:ident),*) => {$(
        impl<B: Backend> FusePairs<B> for $model<B> {
            fn fuse_pairs(
                &self,
                text: Tensor<B, 3>,
                padding: Tensor<B, 2, Bool>,
                image: VisualTokens<B>,
            ) -> (Tensor<B, 3>, Tensor<B, 2>) {
                let fused = self.fuse(text, padding, image);
                (fused.text, fused.pooled)
            }

            fn word_embeddings(&self) -> Tensor<B, 2> {
                self.embeddings.word_embedding_weight()
            }
        }
    )*};
}

fuse_pairs!(SingleStreamModel, DualStreamModel, FusionModel);

/// The ITM pairs of one step: text rows `[P]`, image rows `[P]` of the batch
/// and their labels `[P]` (1 = match). Matched pairs come first.
#[derive(Debug, Clone)]
pub struct ItmPairRows<B: Backend> {
    /// Batch row of each pair's text.
    pub text: Tensor<B, 1, Int>,
    /// Batch row of each pair's image.
    pub image: Tensor<B, 1, Int>,
    /// 1 where the pair matches, else 0.
    pub labels: Tensor<B, 1, Int>,
}

impl<B: Backend> ItmPairRows<B> {
    /// The batcher's pairs (random negatives).
    pub fn of_batch(batch: &PretrainBatch<B>) -> Self {
        Self {
            text: batch.itm_text.clone(),
            image: batch.itm_image.clone(),
            labels: batch.itm_labels.clone(),
        }
    }

    /// The pairs' text tokens `[P, T, H]` and padding `[P, T]` from the
    /// batch's `[B, T, H]` and `[B, T]`.
    pub fn select_text(
        &self,
        text: Tensor<B, 3>,
        padding: Tensor<B, 2, Bool>,
    ) -> (Tensor<B, 3>, Tensor<B, 2, Bool>) {
        (
            text.select(0, self.text.clone()),
            padding.select(0, self.text.clone()),
        )
    }

    /// The pairs' image tokens (padding included) from the batch's.
    pub fn select_image(&self, image: VisualTokens<B>) -> VisualTokens<B> {
        select_images(image, self.image.clone())
    }
}

/// The rows `indices` `[N]` of a batch of image tokens, padding included.
pub fn select_images<B: Backend>(
    image: VisualTokens<B>,
    indices: Tensor<B, 1, Int>,
) -> VisualTokens<B> {
    VisualTokens {
        tokens: image.tokens.select(0, indices.clone()),
        padding: image
            .padding
            .map(|padding| padding.int().select(0, indices).bool()),
    }
}

/// The heads of the block, borrowed from a pre-trainer, each with its weight
/// in the step's loss; a head left `None` is skipped (UNITER builds and runs
/// only the heads of its chosen objectives).
#[derive(Debug, Clone, Copy)]
pub struct TextMatching<'a, B: Backend> {
    /// MLM head and weight.
    pub mlm: Option<(&'a MlmHead<B>, f64)>,
    /// ITM head and weight.
    pub itm: Option<(&'a ItmHead<B>, f64)>,
}

impl<'a, B: Backend> TextMatching<'a, B> {
    /// Both heads, each at its weight.
    pub fn both(mlm: (&'a MlmHead<B>, f64), itm: (&'a ItmHead<B>, f64)) -> Self {
        Self {
            mlm: Some(mlm),
            itm: Some(itm),
        }
    }

    /// The block end to end on the batch's own ITM pairs: their rows of
    /// `masked_text` `[B, T, H]` (the embedded or encoded `mlm_ids`, padding
    /// `text_padding`) and of `image`, fused by `backbone`, then
    /// [`objectives`](Self::objectives).
    pub fn forward(
        &self,
        batch: &PretrainBatch<B>,
        masked_text: Tensor<B, 3>,
        image: VisualTokens<B>,
        backbone: &impl FusePairs<B>,
    ) -> Vec<(f64, ObjectiveOutput<B>)> {
        let pairs = ItmPairRows::of_batch(batch);
        let (text, padding) = pairs.select_text(masked_text, batch.text_padding.clone());
        let (text, pooled) = backbone.fuse_pairs(text, padding, pairs.select_image(image));
        self.objectives(text, pooled, backbone.word_embeddings(), batch, &pairs)
    }

    /// MLM, then ITM, on one fused pass over `pairs`: `text` `[P, T, H]`
    /// contextual text tokens, `pooled` `[P, Hp]` the fused pair; MLM at the
    /// batch's `mlm_positions` against `mlm_labels`, its decoder tied to
    /// `word_embeddings` `[V, H]`; ITM against `pairs.labels`. Returns
    /// `(weight, objective)` for each head present.
    pub fn objectives(
        &self,
        text: Tensor<B, 3>,
        pooled: Tensor<B, 2>,
        word_embeddings: Tensor<B, 2>,
        batch: &PretrainBatch<B>,
        pairs: &ItmPairRows<B>,
    ) -> Vec<(f64, ObjectiveOutput<B>)> {
        let mut out = Vec::with_capacity(2);
        if let Some((head, weight)) = self.mlm {
            let hidden = gather_positions(text, batch.mlm_positions.clone());
            let logits = head.forward(hidden, word_embeddings);
            let mlm =
                ObjectiveOutput::classification("mlm", logits, batch.mlm_labels.clone(), mlm_loss);
            out.push((weight, mlm));
        }
        if let Some((head, weight)) = self.itm {
            let logits = head.forward(pooled);
            let itm =
                ObjectiveOutput::classification("itm", logits, pairs.labels.clone(), itm_loss);
            out.push((weight, itm));
        }
        out
    }
}
