//! The single-stream pre-training model: backbone + MLM, ITM and ITC heads,
//! and one step's losses.

use burn::prelude::*;
use vlp_data::{PretrainBatch, VisualBatch};
use vlp_features::VisualTokens;
use vlp_models::{SingleStreamConfig, SingleStreamModel};

use crate::itc::{itc_loss, ItcHead, ItcHeadConfig};
use crate::itm::{itm_loss, ItmHead, ItmHeadConfig};
use crate::loss::accuracy;
use crate::mlm::{gather_positions, mlm_loss, MlmHead, MlmHeadConfig};
use crate::pretrainer::{ObjectiveOutput, PretrainOutput, Pretrainer, RetrievalModel};

/// Configuration of [`SingleStreamPretrainer`].
#[derive(Config, Debug)]
pub struct SingleStreamPretrainerConfig {
    pub model: SingleStreamConfig,
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
pub struct SingleStreamPretrainer<B: Backend> {
    pub backbone: SingleStreamModel<B>,
    pub mlm_head: MlmHead<B>,
    pub itm_head: ItmHead<B>,
    pub itc_head: ItcHead<B>,
    pub mlm_weight: f64,
    pub itm_weight: f64,
    pub itc_weight: f64,
}

impl SingleStreamPretrainerConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> SingleStreamPretrainer<B> {
        let hidden = self.model.hidden_size;
        SingleStreamPretrainer {
            backbone: self.model.init(device),
            mlm_head: MlmHeadConfig::new(hidden, self.model.vocab_size).init(device),
            itm_head: ItmHeadConfig::new(hidden).init(device),
            itc_head: ItcHeadConfig::new(hidden)
                .with_embed_dim(self.itc_embed_dim)
                .with_temperature(self.itc_temperature)
                .init(device),
            mlm_weight: self.mlm_weight,
            itm_weight: self.itm_weight,
            itc_weight: self.itc_weight,
        }
    }
}

/// Mean of the non-padding tokens: `[B, S, H]`, `[B, S]` (`true` at padding) → `[B, H]`.
///
/// Contrastive embeddings pool every token rather than reading `[CLS]`: at
/// initialisation `[CLS]` carries almost nothing of its sequence, and ITC
/// then sits at chance for hundreds of steps before attention learns to
/// gather content into it; the mean carries content from the first step.
pub fn mean_pool<B: Backend>(
    hidden: Tensor<B, 3>,
    padding: Option<Tensor<B, 2, Bool>>,
) -> Tensor<B, 2> {
    let [batch, seq_len, width] = hidden.dims();
    match padding {
        None => hidden.mean_dim(1).reshape([batch, width]),
        Some(padding) => {
            let keep = padding.bool_not().float().reshape([batch, seq_len, 1]);
            let counts = keep.clone().sum_dim(1).clamp_min(1.0);
            ((hidden * keep).sum_dim(1) / counts).reshape([batch, width])
        }
    }
}

impl<B: Backend> Pretrainer<B> for SingleStreamPretrainer<B> {
    /// ITC on the unimodal mean-pooled embeddings; ITM and MLM on one fused pass
    /// over the batch's matching pairs with masked text.
    fn forward(&self, batch: &PretrainBatch<B>) -> PretrainOutput<B> {
        let backbone = &self.backbone;
        let text = backbone.embed_text(batch.text_ids.clone());
        let image = backbone.embed_image(&batch.visual);

        let text_pooled = mean_pool(
            backbone.encode_text(text, batch.text_padding.clone()),
            Some(batch.text_padding.clone()),
        );
        let image_pooled = mean_pool(backbone.encode_image(image.clone()), image.padding.clone());
        let itc_logits = self.itc_head.logits(
            self.itc_head.embed_text(text_pooled),
            self.itc_head.embed_image(image_pooled),
        );
        let [rows, _] = itc_logits.dims();
        let diagonal = Tensor::<B, 1, Int>::arange(0..rows as i64, &itc_logits.device());
        let itc = ObjectiveOutput {
            name: "itc",
            metric: accuracy(itc_logits.clone().detach(), diagonal),
            metric_name: "accuracy",
            loss: itc_loss(itc_logits),
        };

        // One fused pass serves both MLM and ITM: the matching examples pair
        // masked texts with images (half of them mismatched). MLM is scored on
        // the matched pairs only, as in UNITER; ITM sees ~15% of the words
        // masked, which the matching decision does not need.
        let masked_text = backbone.embed_text(batch.mlm_ids.clone());
        let fused = backbone.fuse(
            masked_text.select(0, batch.itm_text.clone()),
            batch.text_padding.clone().select(0, batch.itm_text.clone()),
            VisualTokens {
                tokens: image.tokens.select(0, batch.itm_image.clone()),
                padding: image
                    .padding
                    .map(|padding| padding.int().select(0, batch.itm_image.clone()).bool()),
            },
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

impl<B: Backend> RetrievalModel<B> for SingleStreamPretrainer<B> {
    /// Unit text embeddings `[N, D]` for retrieval, from the text-only pass.
    fn embed_text(&self, ids: Tensor<B, 2, Int>, padding: Tensor<B, 2, Bool>) -> Tensor<B, 2> {
        let hidden = self
            .backbone
            .encode_text(self.backbone.embed_text(ids), padding.clone());
        self.itc_head.embed_text(mean_pool(hidden, Some(padding)))
    }

    /// Unit image embeddings `[N, D]` for retrieval, from the image-only pass.
    fn embed_image(&self, visual: &VisualBatch<B>) -> Tensor<B, 2> {
        let image = self.backbone.embed_image(visual);
        let padding = image.padding.clone();
        let hidden = self.backbone.encode_image(image);
        self.itc_head.embed_image(mean_pool(hidden, padding))
    }
}
