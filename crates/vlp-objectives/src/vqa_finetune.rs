//! VQA fine-tuning (survey §6, downstream tasks; UNITER §3.3, Chen et al.
//! 2020): the pre-trained single-stream backbone reads the question and the
//! image in one merged pass, and a fresh two-layer answer classifier on the
//! fused `[CLS]` ([`VqaHead`]) is trained with binary cross-entropy against
//! the VQA soft scores of the dataset's answer vocabulary.

use burn::prelude::*;
use vlp_data::{VisualBatch, VqaBatch};
use vlp_models::SingleStreamModel;

use crate::pretrainer::{ObjectiveOutput, PretrainOutput};
use crate::vqa::{vqa_bce_loss, vqa_score, VqaHead, VqaHeadConfig};

/// A single-stream model with an answer classifier: UNITER's VQA model.
#[derive(Module, Debug)]
pub struct UniterVqa<B: Backend> {
    /// The (pre-trained) single-stream transformer.
    pub backbone: SingleStreamModel<B>,
    /// The answer classifier over the pooled fused `[CLS]`.
    pub vqa_head: VqaHead<B>,
}

impl<B: Backend> UniterVqa<B> {
    /// `backbone` with a freshly initialised `head` (its `hidden_size` the
    /// backbone's; drawn from the backend's generator after the backbone).
    pub fn new(backbone: SingleStreamModel<B>, head: &VqaHeadConfig, device: &B::Device) -> Self {
        Self {
            backbone,
            vqa_head: head.init(device),
        }
    }

    /// Answer logits `[Q, A]` of questions `ids`, `padding` `[Q, T]` about
    /// image row `i` of `visual` (`Q` rows) each.
    pub fn logits(
        &self,
        ids: Tensor<B, 2, Int>,
        padding: Tensor<B, 2, Bool>,
        visual: &VisualBatch<B>,
    ) -> Tensor<B, 2> {
        let image = self.backbone.embed_image(visual);
        let fused = self
            .backbone
            .fuse(self.backbone.embed_text(ids), padding, image);
        self.vqa_head.forward(fused.pooled)
    }

    /// The fine-tuning loss of `questions` about `visual` (row `i` asks
    /// about image row `i`), with the VQA accuracy (soft score) of the
    /// arg-max answers as its metric, as one objective named `vqa`.
    pub fn forward(
        &self,
        questions: &VqaBatch<B>,
        visual: &VisualBatch<B>,
    ) -> crate::Result<PretrainOutput<B>> {
        let logits = self.logits(questions.ids.clone(), questions.padding.clone(), visual);
        let loss = vqa_bce_loss(logits.clone(), questions.soft_targets.clone())?;
        Ok(PretrainOutput {
            loss: loss.clone(),
            objectives: vec![ObjectiveOutput {
                name: "vqa",
                metric: vqa_score(logits.detach(), questions.soft_targets.clone())?,
                metric_name: "accuracy",
                loss,
            }],
            momentum_embeddings: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use vlp_features::{PatchEmbeddingsConfig, VisualEmbeddingsConfig};
    use vlp_models::{SingleStreamConfig, TransformerSize};

    /// An inference backend: Burn applies dropout only under autodiff, so
    /// two passes over the same inputs agree.
    type B = NdArray;

    /// The logits are the head applied to the fused pooled `[CLS]` of the
    /// backbone's merged pass, and the loss is the BCE of those logits.
    #[test]
    fn logits_are_the_head_over_the_fused_cls() {
        let device = Default::default();
        B::seed(&device, 3);
        let visual = VisualEmbeddingsConfig::Patches(PatchEmbeddingsConfig::new(8, 4, 16));
        let backbone = SingleStreamConfig::new(30, visual)
            .with_transformer(TransformerSize::of(16, 2, 32, 1))
            .with_max_text_len(6)
            .init::<B>(&device);
        let model = UniterVqa::new(backbone, &VqaHeadConfig::new(16, 5), &device);
        let ids = Tensor::<B, 2, Int>::from_ints([[2, 7, 9, 3], [2, 11, 3, 0]], &device);
        let padding = ids.clone().equal_elem(0);
        let pixels = Tensor::<B, 4>::random(
            [2, 3, 8, 8],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let visual = VisualBatch::Images(pixels);
        let logits = model.logits(ids.clone(), padding.clone(), &visual);
        assert_eq!(logits.dims(), [2, 5]);
        let image = model.backbone.embed_image(&visual);
        let fused = model.backbone.fuse(
            model.backbone.embed_text(ids.clone()),
            padding.clone(),
            image,
        );
        let expected = model.vqa_head.forward(fused.pooled);
        let diff = (logits.clone() - expected).abs().max().into_scalar();
        assert!(diff < 1e-6, "{diff}");

        let soft_targets = Tensor::<B, 2>::from_floats(
            [[0.0, 1.0, 0.0, 0.3, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0]],
            &device,
        );
        let batch = VqaBatch {
            ids,
            padding,
            soft_targets: soft_targets.clone(),
        };
        let output = model.forward(&batch, &visual).unwrap();
        let reference = vqa_bce_loss(logits, soft_targets).unwrap();
        let diff = (output.loss - reference).abs().into_scalar();
        assert!(diff < 1e-6, "{diff}");
        assert_eq!(output.objectives[0].name, "vqa");
    }
}
