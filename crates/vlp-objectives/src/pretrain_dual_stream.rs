//! The dual-stream pre-training model (ViLBERT, LXMERT): backbone + MLM,
//! ITM and ITC heads, and one step's losses.

use burn::prelude::*;
use vlp_data::{PretrainBatch, VisualBatch};
use vlp_models::{mean_pool, DualStreamConfig, DualStreamModel};

use crate::itc::{gather_pairs, itc_objective, ItcHead, ItcHeadConfig};
use crate::itm::ItmHead;
use crate::mlm::MlmHead;
use crate::pretrainer::{PretrainOutput, Pretrainer, RetrievalModel};
use crate::text_matching::{TextMatching, TextMatchingConfig};

/// Configuration of [`DualStreamPretrainer`].
#[derive(Config, Debug)]
pub struct DualStreamPretrainerConfig {
    /// The dual-stream backbone (ViLBERT or LXMERT).
    pub model: DualStreamConfig,
    /// Width of the contrastive embedding space.
    #[config(default = 128)]
    pub itc_embed_dim: usize,
    /// Initial ITC temperature.
    #[config(default = 0.07)]
    pub itc_temperature: f64,
    /// Weights of the three losses in the total.
    #[config(default = 1.0)]
    pub mlm_weight: f64,
    /// Weight of ITM in the total loss.
    #[config(default = 1.0)]
    pub itm_weight: f64,
    /// Weight of ITC in the total loss.
    #[config(default = 1.0)]
    pub itc_weight: f64,
}

/// ViLBERT / LXMERT: the dual-stream backbone with MLM, ITM and ITC heads.
#[derive(Module, Debug)]
pub struct DualStreamPretrainer<B: Backend> {
    /// Text and image streams with their cross-modal layers.
    pub backbone: DualStreamModel<B>,
    /// MLM on the fused text stream (see [`crate::text_matching`]).
    pub mlm_head: MlmHead<B>,
    /// Reads the fused pair: `[CLS_T] ⊙ [CLS_V]` (ViLBERT) or their
    /// concatenation (LXMERT).
    pub itm_head: ItmHead<B>,
    /// Projects the text (`H`) and image (`Hv`) streams, widths may differ.
    pub itc_head: ItcHead<B>,
    /// Weight of MLM in the total loss.
    pub mlm_weight: f64,
    /// Weight of ITM in the total loss.
    pub itm_weight: f64,
    /// Weight of ITC in the total loss.
    pub itc_weight: f64,
}

impl DualStreamPretrainerConfig {
    /// The backbone, then the MLM and ITM heads, then the ITC head.
    pub fn init<B: Backend>(&self, device: &B::Device) -> DualStreamPretrainer<B> {
        let model = &self.model;
        let backbone = model.init(device);
        let (mlm_head, itm_head) = TextMatchingConfig::new(
            model.text.hidden_size,
            model.vocab_size,
            model.pooled_size(),
        )
        .with_layer_norm_eps(model.layer_norm_eps)
        .init(device);
        DualStreamPretrainer {
            backbone,
            mlm_head,
            itm_head,
            itc_head: ItcHeadConfig::new(model.text.hidden_size)
                .with_image_hidden_size(Some(model.vision.hidden_size))
                .with_embed_dim(self.itc_embed_dim)
                .with_temperature(self.itc_temperature)
                .init(device),
            mlm_weight: self.mlm_weight,
            itm_weight: self.itm_weight,
            itc_weight: self.itc_weight,
        }
    }
}

impl<B: Backend> Pretrainer<B> for DualStreamPretrainer<B> {
    /// ITC on each stream alone (mean-pooled, no cross-modal layer); ITM and
    /// MLM on one pass of both streams with their cross-modal layers over the
    /// batch's matching pairs with masked text (MLM scored on the matched
    /// pairs, as in [`UniterPretrainer`](crate::UniterPretrainer)).
    fn forward(&self, batch: &PretrainBatch<B>) -> PretrainOutput<B> {
        let backbone = &self.backbone;
        let image = backbone.embed_image(&batch.visual);

        let text_pooled = mean_pool(
            backbone.encode_text(
                backbone.embed_text(batch.text_ids.clone()),
                batch.text_padding.clone(),
            ),
            Some(batch.text_padding.clone()),
        );
        let image_pooled = mean_pool(backbone.encode_image(image.clone()), image.padding.clone());
        let (text_embeddings, image_embeddings) = gather_pairs(
            batch,
            self.itc_head.embed_text(text_pooled),
            self.itc_head.embed_image(image_pooled),
        );
        let itc = itc_objective(self.itc_head.logits(text_embeddings, image_embeddings));

        let masked_text = backbone.embed_text(batch.mlm_ids.clone());
        let heads = TextMatching::both(
            (&self.mlm_head, self.mlm_weight),
            (&self.itm_head, self.itm_weight),
        );
        let mut objectives = heads.forward(batch, masked_text, image, backbone);
        objectives.push((self.itc_weight, itc));
        PretrainOutput::weighted(objectives, None).expect("MLM, ITM and ITC")
    }

    fn temperature(&self) -> Option<f32> {
        Some(self.itc_head.temperature().into_scalar().elem())
    }
}

impl<B: Backend> RetrievalModel<B> for DualStreamPretrainer<B> {
    /// Unit text embeddings `[N, D]` from the text stream alone.
    fn embed_text(&self, ids: Tensor<B, 2, Int>, padding: Tensor<B, 2, Bool>) -> Tensor<B, 2> {
        let hidden = self
            .backbone
            .encode_text(self.backbone.embed_text(ids), padding.clone());
        self.itc_head.embed_text(mean_pool(hidden, Some(padding)))
    }

    /// Unit image embeddings `[N, D]` from the visual stream alone.
    fn embed_image(&self, visual: &VisualBatch<B>) -> Tensor<B, 2> {
        let image = self.backbone.embed_image(visual);
        let padding = image.padding.clone();
        let hidden = self.backbone.encode_image(image);
        self.itc_head.embed_image(mean_pool(hidden, padding))
    }
}
