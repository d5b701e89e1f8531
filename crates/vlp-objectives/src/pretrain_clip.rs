//! The CLIP pre-training model: a dual encoder and image-text contrastive
//! learning alone, at CLIP's learned logit scale (initialised to ln(1/0.07),
//! clamped at ln 100).

use burn::prelude::*;
use vlp_data::{PretrainBatch, VisualBatch};
use vlp_models::{DualEncoderConfig, DualEncoderModel};

use crate::itc::{gather_pairs, itc_objective};
use crate::loss::l2_normalize;
use crate::pretrainer::{PretrainOutput, Pretrainer, RetrievalModel};

/// Configuration of [`ClipPretrainer`]; the projections and the logit scale
/// (`logit_scale_init`) belong to the [`DualEncoderConfig`].
#[derive(Config, Debug)]
pub struct ClipPretrainerConfig {
    /// The two towers.
    pub model: DualEncoderConfig,
}

/// CLIP: a dual encoder trained by ITC alone.
#[derive(Module, Debug)]
pub struct ClipPretrainer<B: Backend> {
    /// Text and image towers with their projections and logit scale.
    pub backbone: DualEncoderModel<B>,
}

impl ClipPretrainerConfig {
    /// The pre-trainer, initialised on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ClipPretrainer<B> {
        ClipPretrainer {
            backbone: self.model.init(device),
        }
    }
}

impl<B: Backend> Pretrainer<B> for ClipPretrainer<B> {
    /// Symmetric InfoNCE over the batch's pairs: `exp(logit_scale) · cos(text, image)`.
    fn forward(&self, batch: &PretrainBatch<B>) -> PretrainOutput<B> {
        let (text, image) = gather_pairs(
            batch,
            self.embed_text(batch.text_ids.clone(), batch.text_padding.clone()),
            self.embed_image(&batch.visual),
        );
        let scale = self.backbone.logit_scale().exp().unsqueeze::<2>();
        let itc = itc_objective(text.matmul(image.transpose()) * scale);
        PretrainOutput {
            loss: itc.loss.clone(),
            objectives: vec![itc],
            momentum_embeddings: None,
        }
    }

    /// `1 / exp(logit_scale)`.
    fn temperature(&self) -> Option<f32> {
        Some(self.backbone.logit_scale().neg().exp().into_scalar().elem())
    }
}

impl<B: Backend> RetrievalModel<B> for ClipPretrainer<B> {
    fn embed_text(&self, ids: Tensor<B, 2, Int>, padding: Tensor<B, 2, Bool>) -> Tensor<B, 2> {
        l2_normalize(self.backbone.text_features(ids, padding))
    }

    fn embed_image(&self, visual: &VisualBatch<B>) -> Tensor<B, 2> {
        l2_normalize(self.backbone.image_features(visual))
    }
}
