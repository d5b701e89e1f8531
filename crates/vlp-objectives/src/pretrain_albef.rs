//! The ALBEF pre-training model: unimodal encoders, fusion layers, and the
//! MLM, ITM and ITC heads. ITC aligns the unimodal embeddings before fusion;
//! ITM reads the fused `[CLS]`; MLM predicts masked words through the fusion
//! layers.

use burn::prelude::*;
use vlp_data::{PretrainBatch, VisualBatch};
use vlp_features::VisualTokens;
use vlp_models::{FusionConfig, FusionModel};

use crate::itc::{ItcHead, ItcHeadConfig};
use crate::itm::{itm_loss, ItmHead, ItmHeadConfig};
use crate::loss::accuracy;
use crate::mlm::{gather_positions, mlm_loss, MlmHead, MlmHeadConfig};
use crate::pooling::mean_pool;
use crate::pretrain_dual_stream::{itc_objective, select_images};
use crate::pretrainer::{ObjectiveOutput, PretrainOutput, Pretrainer, RetrievalModel};

/// Configuration of [`AlbefPretrainer`] (ALBEF: 256-d contrastive space, τ 0.07).
#[derive(Config, Debug)]
pub struct AlbefPretrainerConfig {
    pub model: FusionConfig,
    #[config(default = 256)]
    pub itc_embed_dim: usize,
    #[config(default = 0.07)]
    pub itc_temperature: f64,
    #[config(default = 1.0)]
    pub mlm_weight: f64,
    #[config(default = 1.0)]
    pub itm_weight: f64,
    #[config(default = 1.0)]
    pub itc_weight: f64,
}

#[derive(Module, Debug)]
pub struct AlbefPretrainer<B: Backend> {
    pub backbone: FusionModel<B>,
    pub mlm_head: MlmHead<B>,
    pub itm_head: ItmHead<B>,
    pub itc_head: ItcHead<B>,
    pub mlm_weight: f64,
    pub itm_weight: f64,
    pub itc_weight: f64,
}

impl AlbefPretrainerConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> AlbefPretrainer<B> {
        let model = &self.model;
        AlbefPretrainer {
            backbone: model.init(device),
            mlm_head: MlmHeadConfig::new(model.hidden_size, model.vocab_size)
                .with_layer_norm_eps(model.layer_norm_eps)
                .init(device),
            itm_head: ItmHeadConfig::new(model.hidden_size).init(device),
            itc_head: ItcHeadConfig::new(model.hidden_size)
                .with_image_hidden_size(Some(model.image_hidden_size))
                .with_embed_dim(self.itc_embed_dim)
                .with_temperature(self.itc_temperature)
                .init(device),
            mlm_weight: self.mlm_weight,
            itm_weight: self.itm_weight,
            itc_weight: self.itc_weight,
        }
    }
}

impl<B: Backend> Pretrainer<B> for AlbefPretrainer<B> {
    /// ITC on the mean-pooled unimodal encoders' outputs; ITM and MLM on one
    /// pass of the fusion layers over the batch's matching pairs with masked
    /// text, the image encoded once for both.
    fn forward(&self, batch: &PretrainBatch<B>) -> PretrainOutput<B> {
        let backbone = &self.backbone;
        let padding = batch.text_padding.clone();
        let text =
            backbone.encode_text(backbone.embed_text(batch.text_ids.clone()), padding.clone());
        let image_tokens = backbone.embed_image(&batch.visual);
        let image = VisualTokens {
            padding: image_tokens.padding.clone(),
            tokens: backbone.encode_image(image_tokens),
        };
        let itc = itc_objective(
            self.itc_head.logits(
                self.itc_head
                    .embed_text(mean_pool(text, Some(padding.clone()))),
                self.itc_head
                    .embed_image(mean_pool(image.tokens.clone(), image.padding.clone())),
            ),
        );

        let masked_text =
            backbone.encode_text(backbone.embed_text(batch.mlm_ids.clone()), padding.clone());
        let fused = backbone.fuse(
            masked_text.select(0, batch.itm_text.clone()),
            padding.select(0, batch.itm_text.clone()),
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
        }
    }

    fn temperature(&self) -> Option<f32> {
        Some(self.itc_head.temperature().into_scalar().elem())
    }
}

impl<B: Backend> RetrievalModel<B> for AlbefPretrainer<B> {
    /// Unit text embeddings `[N, D]` from the text encoder.
    fn embed_text(&self, ids: Tensor<B, 2, Int>, padding: Tensor<B, 2, Bool>) -> Tensor<B, 2> {
        let hidden = self
            .backbone
            .encode_text(self.backbone.embed_text(ids), padding.clone());
        self.itc_head.embed_text(mean_pool(hidden, Some(padding)))
    }

    /// Unit image embeddings `[N, D]` from the image encoder.
    fn embed_image(&self, visual: &VisualBatch<B>) -> Tensor<B, 2> {
        let image = self.backbone.embed_image(visual);
        let padding = image.padding.clone();
        let hidden = self.backbone.encode_image(image);
        self.itc_head.embed_image(mean_pool(hidden, padding))
    }
}
