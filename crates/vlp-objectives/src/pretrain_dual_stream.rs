//! The dual-stream pre-training model (ViLBERT, LXMERT): backbone + MLM,
//! ITM and ITC heads, and one step's losses.

use burn::prelude::*;
use vlp_data::{PretrainBatch, VisualBatch};
use vlp_features::VisualTokens;
use vlp_models::{DualStreamConfig, DualStreamModel};

use crate::itc::{itc_loss, ItcHead, ItcHeadConfig};
use crate::itm::{itm_loss, ItmHead, ItmHeadConfig};
use crate::loss::accuracy;
use crate::mlm::{gather_positions, mlm_loss, MlmHead, MlmHeadConfig};
use crate::pooling::mean_pool;
use crate::pretrainer::{ObjectiveOutput, PretrainOutput, Pretrainer, RetrievalModel};

/// Configuration of [`DualStreamPretrainer`].
#[derive(Config, Debug)]
pub struct DualStreamPretrainerConfig {
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
    #[config(default = 1.0)]
    pub itm_weight: f64,
    #[config(default = 1.0)]
    pub itc_weight: f64,
}

#[derive(Module, Debug)]
pub struct DualStreamPretrainer<B: Backend> {
    pub backbone: DualStreamModel<B>,
    pub mlm_head: MlmHead<B>,
    /// Reads the fused pair: `[CLS_T] ⊙ [CLS_V]` (ViLBERT) or their
    /// concatenation (LXMERT).
    pub itm_head: ItmHead<B>,
    /// Projects the text (`H`) and image (`Hv`) streams, widths may differ.
    pub itc_head: ItcHead<B>,
    pub mlm_weight: f64,
    pub itm_weight: f64,
    pub itc_weight: f64,
}

impl DualStreamPretrainerConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> DualStreamPretrainer<B> {
        let model = &self.model;
        DualStreamPretrainer {
            backbone: model.init(device),
            mlm_head: MlmHeadConfig::new(model.hidden_size, model.vocab_size)
                .with_layer_norm_eps(model.layer_norm_eps)
                .init(device),
            itm_head: ItmHeadConfig::new(model.pooled_size()).init(device),
            itc_head: ItcHeadConfig::new(model.hidden_size)
                .with_image_hidden_size(Some(model.v_hidden_size))
                .with_embed_dim(self.itc_embed_dim)
                .with_temperature(self.itc_temperature)
                .init(device),
            mlm_weight: self.mlm_weight,
            itm_weight: self.itm_weight,
            itc_weight: self.itc_weight,
        }
    }
}

/// The rows `indices` `[N]` of a batch of image tokens.
pub(crate) fn select_images<B: Backend>(
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

/// ITC on `[B, B]` text→image logits whose diagonal holds the pairs.
pub(crate) fn itc_objective<B: Backend>(logits: Tensor<B, 2>) -> ObjectiveOutput<B> {
    let [rows, _] = logits.dims();
    let diagonal = Tensor::<B, 1, Int>::arange(0..rows as i64, &logits.device());
    ObjectiveOutput {
        name: "itc",
        metric: accuracy(logits.clone().detach(), diagonal),
        metric_name: "accuracy",
        loss: itc_loss(logits),
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
        let itc = itc_objective(self.itc_head.logits(
            self.itc_head.embed_text(text_pooled),
            self.itc_head.embed_image(image_pooled),
        ));

        let masked_text = backbone.embed_text(batch.mlm_ids.clone());
        let fused = backbone.fuse(
            masked_text.select(0, batch.itm_text.clone()),
            batch.text_padding.clone().select(0, batch.itm_text.clone()),
            select_images(image, batch.itm_image.clone()),
        );
        let masked_hidden = gather_positions(fused.text, batch.mlm_positions.clone());
        let mlm_logits = self
            .mlm_head
            .forward(masked_hidden, backbone.embeddings.word_embedding_weight());
        let mlm = ObjectiveOutput {
            name: "mlm",
            metric: accuracy(mlm_logits.clone().detach(), batch.mlm_labels.clone()),
            metric_name: "accuracy",
            loss: mlm_loss(mlm_logits, batch.mlm_labels.clone()),
        };

        let itm_logits = self.itm_head.forward(fused.pooled);
        let itm = ObjectiveOutput {
            name: "itm",
            metric: accuracy(itm_logits.clone().detach(), batch.itm_labels.clone()),
            metric_name: "accuracy",
            loss: itm_loss(itm_logits, batch.itm_labels.clone()),
        };

        let loss = mlm.loss.clone().mul_scalar(self.mlm_weight)
            + itm.loss.clone().mul_scalar(self.itm_weight)
            + itc.loss.clone().mul_scalar(self.itc_weight);
        PretrainOutput {
            loss,
            objectives: vec![mlm, itm, itc],
            momentum_embeddings: None,
        }
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
