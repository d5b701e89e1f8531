//! The masked vision objectives of the single-stream pre-trainer on its
//! fused pass (survey §4.2): UNITER's masked region feature regression
//! (MRFR) and classification (MRC, MRC-kl), and ViLT's masked patch
//! prediction (MPP).

use burn::prelude::*;
use vlp_data::{PretrainBatch, VisualBatch};
use vlp_features::{VisualEmbeddings, VisualTokens};
use vlp_models::FusedOutput;

use crate::error::{ObjectiveError, Result};
use crate::loss::accuracy;
use crate::mlm::gather_positions;
use crate::mvm::{
    feature_classification_hard_loss, feature_classification_kl_loss, feature_regression_loss,
    patch_bin_loss, RGB_BINS,
};
use crate::pretrainer::ObjectiveOutput;
use crate::uniter::UniterPretrainer;
use crate::uniter_objectives::UniterObjectives;

/// A loss of region class logits `[M, C]` against detector probabilities
/// `[M, C]`.
type ClassLoss<B> = fn(Tensor<B, 2>, Tensor<B, 2>) -> Result<Tensor<B, 1>>;

/// The part of the batch that `objective` reads, or an error naming both.
fn needs<'a, T>(part: Option<&'a T>, objective: &'static str, what: &'static str) -> Result<&'a T> {
    part.ok_or(ObjectiveError::MissingBatchPart {
        objective,
        part: what,
    })
}

impl<B: Backend> UniterPretrainer<B> {
    /// `[F, H]` feature projection of the region embeddings: MRFR's tied
    /// output layer.
    fn region_projection(&self) -> Result<Tensor<B, 2>> {
        match &self.backbone.visual {
            VisualEmbeddings::Regions(regions) => Ok(regions.feature_projection.weight.val()),
            _ => Err(ObjectiveError::Unsupported(
                "masked region objectives need a region model (model.visual = regions)".into(),
            )),
        }
    }

    /// MRFR, MRC and MRC-kl on the masked regions of the matched pairs.
    pub(crate) fn masked_regions(
        &self,
        o: &UniterObjectives,
        batch: &PretrainBatch<B>,
        fused: &FusedOutput<B>,
        out: &mut Vec<(f64, ObjectiveOutput<B>)>,
    ) -> Result<()> {
        let mvm = needs(batch.mvm.as_ref(), "mrfr/mrc/mrc_kl", "region_masking")?;
        let hidden = gather_positions(fused.image.clone(), mvm.positions.clone());
        let [m, _] = hidden.dims();
        if let (Some(head), true) = (&self.mrfr_head, o.mrfr > 0.0) {
            let loss = feature_regression_loss(
                head.forward(hidden.clone(), self.region_projection()?),
                mvm.feature_targets.clone(),
            )?;
            out.push((
                o.mrfr,
                ObjectiveOutput {
                    name: "mrfr",
                    metric: loss.clone().detach(),
                    metric_name: "mse",
                    loss,
                },
            ));
        }
        let targets = mvm.soft_label_targets.clone();
        let [_, classes] = targets.dims();
        // The detector's most likely foreground class, in the head's layout
        // (background at 0): what both classification metrics score against.
        let argmax = (m > 0).then(|| {
            targets
                .clone()
                .slice([0..m, 1..classes])
                .argmax(1)
                .reshape([m])
                .add_scalar(1)
        });
        let classifiers: [(_, _, _, ClassLoss<B>); 2] = [
            (
                "mrc",
                &self.mrc_head,
                o.mrc,
                feature_classification_hard_loss,
            ),
            (
                "mrc_kl",
                &self.mrc_kl_head,
                o.mrc_kl,
                feature_classification_kl_loss,
            ),
        ];
        for (name, head, weight, loss) in classifiers {
            let Some(head) = head.as_ref().filter(|_| weight > 0.0) else {
                continue;
            };
            let logits = head.forward(hidden.clone());
            let metric = match &argmax {
                Some(argmax) => accuracy(logits.clone().detach(), argmax.clone()),
                None => Tensor::zeros([1], &logits.device()),
            };
            out.push((
                weight,
                ObjectiveOutput {
                    name,
                    metric,
                    metric_name: "accuracy",
                    loss: loss(logits, targets.clone())?,
                },
            ));
        }
        Ok(())
    }

    /// The batch's images with their masked patches embedded as the mask
    /// embedding (MPP's fused input).
    pub(crate) fn masked_patch_tokens(&self, batch: &PretrainBatch<B>) -> Result<VisualTokens<B>> {
        let mpp = needs(batch.mpp.as_ref(), "mpp", "patch_masking")?;
        match (&self.backbone.visual, &batch.visual) {
            (VisualEmbeddings::Patches(patches), VisualBatch::Images(images)) => Ok(VisualTokens {
                tokens: patches.forward_masked(images.clone(), mpp.patch_mask.clone()),
                padding: None,
            }),
            _ => Err(ObjectiveError::Unsupported(
                "the mpp objective needs a patch model and pixel images".into(),
            )),
        }
    }

    /// MPP on the masked patches of the matched pairs: 256-bin mean colour
    /// per channel; the metric is the bin accuracy over all `M × 3` channels.
    pub(crate) fn mpp(
        &self,
        batch: &PretrainBatch<B>,
        fused: &FusedOutput<B>,
    ) -> Result<ObjectiveOutput<B>> {
        let mpp = needs(batch.mpp.as_ref(), "mpp", "patch_masking")?;
        let head = self.mpp_head.as_ref().ok_or(ObjectiveError::Unsupported(
            "objective mpp was not configured, so its head was not built".into(),
        ))?;
        let logits = head.forward(gather_positions(fused.image.clone(), mpp.positions.clone()));
        let [m, _, _] = logits.dims();
        Ok(ObjectiveOutput {
            name: "mpp",
            metric: accuracy(
                logits.clone().detach().reshape([m * 3, RGB_BINS]),
                mpp.rgb_targets.clone().reshape([m * 3]),
            ),
            metric_name: "accuracy",
            // `vlp_data` builds the bins from bytes: nothing to check on the device.
            loss: patch_bin_loss(logits, mpp.rgb_targets.clone())?,
        })
    }
}
