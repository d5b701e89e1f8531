//! The single-stream (UNITER-style) pre-training model, whose objectives are
//! chosen in its configuration: MLM, ITM (random or ALBEF hard negatives),
//! ITC, the three masked region objectives (MRFR, MRC, MRC-kl), ViLT's masked
//! patch prediction (MPP), WRA and VQA,
//! summed with weights, or one drawn per step (`Pretrainer::forward_step`,
//! UNITER's task sampling). Heads of objectives that are off are not built.
//!
//! One fused pass over the ITM pairs serves MLM, ITM, MVM, MPP and WRA; VQA has its own fused
//! pass over (question, image) pairs; ITC and the hard-negative sampling read
//! the unimodal passes.

use burn::prelude::*;
use vlp_data::{PretrainBatch, VisualBatch};
use vlp_features::VisualTokens;
use vlp_models::{mean_pool, SingleStreamConfig, SingleStreamModel};

use crate::error::ObjectiveError;
use crate::itc::{gather_pairs, itc_objective, own_pairs, ItcHead, ItcHeadConfig};
use crate::itm::{hard_negative_indices, ItmHead};
use crate::loss::l2_normalize;
use crate::mixing::WeightedObjective;
use crate::mlm::MlmHead;
use crate::mvm::{
    MppHead, MppHeadConfig, MvmClassificationHead, MvmClassificationHeadConfig, MvmRegressionHead,
    MvmRegressionHeadConfig,
};
use crate::pretrainer::{ObjectiveOutput, PretrainOutput, Pretrainer, RankBy, RetrievalModel};
use crate::text_matching::{
    select_images, FusePairs, ItmPairRows, TextMatching, TextMatchingConfig,
};
use crate::uniter_objectives::UniterObjectives;
use crate::vqa::{vqa_bce_loss, vqa_score, VqaHead, VqaHeadConfig};
use crate::wra::fused_wra_objective;

/// Configuration of [`UniterPretrainer`].
#[derive(Config, Debug)]
pub struct UniterPretrainerConfig {
    /// The single-stream backbone.
    pub model: SingleStreamConfig,
    /// Which objectives train, at which weights.
    pub objectives: UniterObjectives,
    /// Detector classes, background included (`C + 1`), for MRC / MRC-kl.
    #[config(default = 0)]
    pub num_region_classes: usize,
    /// Answers of the VQA head.
    #[config(default = 0)]
    pub num_answers: usize,
    /// Width of the contrastive embedding space.
    #[config(default = 128)]
    pub itc_embed_dim: usize,
    /// Initial ITC temperature.
    #[config(default = 0.07)]
    pub itc_temperature: f64,
}

/// The single-stream backbone with the heads of its chosen objectives
/// (`None` where an objective is off).
#[derive(Module, Debug)]
pub struct UniterPretrainer<B: Backend> {
    /// Embeddings and the one transformer over text and image tokens.
    pub backbone: SingleStreamModel<B>,
    /// MLM (see [`crate::text_matching`]).
    pub mlm_head: Option<MlmHead<B>>,
    /// ITM on the fused `[CLS]`.
    pub itm_head: Option<ItmHead<B>>,
    /// ITC projections (ITC or hard negatives).
    pub itc_head: Option<ItcHead<B>>,
    /// Masked region feature regression.
    pub mrfr_head: Option<MvmRegressionHead<B>>,
    /// Masked region classification, hard labels.
    pub mrc_head: Option<MvmClassificationHead<B>>,
    /// Masked region classification, KL.
    pub mrc_kl_head: Option<MvmClassificationHead<B>>,
    /// Masked patch prediction.
    pub mpp_head: Option<MppHead<B>>,
    /// VQA answer classifier.
    pub vqa_head: Option<VqaHead<B>>,
    /// The configured objectives and weights.
    pub objectives: UniterObjectives,
}

/// Errors of a configuration that cannot be built.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UniterConfigError {
    /// Every weight is 0.
    #[error("no objective has a positive weight")]
    NoObjective,
    /// Hard negatives asked for without ITM.
    #[error("objectives.itm_hard needs objectives.itm > 0")]
    HardNegativesWithoutItm,
    /// A masked region objective (named) on a patch model.
    #[error("objectives.{0} needs detector regions (model.visual = regions)")]
    NeedsRegions(&'static str),
    /// A masked patch objective (named) on a region model.
    #[error("objectives.{0} needs image patches (model.visual = patches)")]
    NeedsPatches(&'static str),
    /// A region classification objective (named) without classes.
    #[error("objectives.{0} needs num_region_classes >= 2 (background and one class)")]
    NeedsRegionClasses(&'static str),
    /// VQA without answers.
    #[error("objectives.vqa needs num_answers > 0")]
    NeedsAnswers,
}

impl UniterPretrainerConfig {
    /// Checks that the chosen objectives can be built.
    pub fn validate(&self) -> Result<(), UniterConfigError> {
        let o = &self.objectives;
        let weights = [
            o.mlm, o.itm, o.itc, o.mrfr, o.mrc, o.mrc_kl, o.mpp, o.wra, o.vqa,
        ];
        if !weights.iter().any(|&w| w > 0.0) {
            return Err(UniterConfigError::NoObjective);
        }
        if o.itm_hard && o.itm <= 0.0 {
            return Err(UniterConfigError::HardNegativesWithoutItm);
        }
        let regions = matches!(
            self.model.visual,
            vlp_features::VisualEmbeddingsConfig::Regions(_)
        );
        for (name, weight) in [("mrfr", o.mrfr), ("mrc", o.mrc), ("mrc_kl", o.mrc_kl)] {
            if weight > 0.0 && !regions {
                return Err(UniterConfigError::NeedsRegions(name));
            }
        }
        let patches = matches!(
            self.model.visual,
            vlp_features::VisualEmbeddingsConfig::Patches(_)
        );
        if o.mpp > 0.0 && !patches {
            return Err(UniterConfigError::NeedsPatches("mpp"));
        }
        for (name, weight) in [("mrc", o.mrc), ("mrc_kl", o.mrc_kl)] {
            if weight > 0.0 && self.num_region_classes < 2 {
                return Err(UniterConfigError::NeedsRegionClasses(name));
            }
        }
        if o.vqa > 0.0 && self.num_answers == 0 {
            return Err(UniterConfigError::NeedsAnswers);
        }
        Ok(())
    }

    /// Builds the model: the backbone, then the heads of the objectives
    /// that are on, in field order. With MPP on, the patch embeddings get
    /// their mask embedding. Errors as [`Self::validate`].
    pub fn init<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<UniterPretrainer<B>, UniterConfigError> {
        self.validate()?;
        let o = &self.objectives;
        let hidden = self.model.transformer.hidden_size;
        let on = |weight: f64| weight > 0.0;
        let feature_size = match &self.model.visual {
            vlp_features::VisualEmbeddingsConfig::Regions(regions) => regions.feature_size,
            _ => 0,
        };
        let mut model = self.model.clone();
        if let vlp_features::VisualEmbeddingsConfig::Patches(patches) = &mut model.visual {
            patches.mask_embedding |= on(o.mpp);
        }
        let text_matching = TextMatchingConfig::new(hidden, self.model.vocab_size, hidden);
        Ok(UniterPretrainer {
            backbone: model.init(device),
            mlm_head: on(o.mlm).then(|| text_matching.init_mlm(device)),
            itm_head: on(o.itm).then(|| text_matching.init_itm(device)),
            itc_head: o.scores_itc().then(|| {
                ItcHeadConfig::new(hidden)
                    .with_embed_dim(self.itc_embed_dim)
                    .with_temperature(self.itc_temperature)
                    .init(device)
            }),
            mrfr_head: on(o.mrfr)
                .then(|| MvmRegressionHeadConfig::new(hidden, feature_size).init(device)),
            mrc_head: on(o.mrc).then(|| {
                MvmClassificationHeadConfig::new(hidden, self.num_region_classes).init(device)
            }),
            mrc_kl_head: on(o.mrc_kl).then(|| {
                MvmClassificationHeadConfig::new(hidden, self.num_region_classes).init(device)
            }),
            mpp_head: on(o.mpp).then(|| MppHeadConfig::new(hidden).init(device)),
            vqa_head: on(o.vqa).then(|| VqaHeadConfig::new(hidden, self.num_answers).init(device)),
            objectives: o.clone(),
        })
    }
}

impl<B: Backend> UniterPretrainer<B> {
    /// ALBEF's pairs over the batch's first `F` rows (`F` = its fused pairs):
    /// `F` positives `(i, i)`, then text `i` with a hard negative image, then
    /// image `j` with a hard negative text, sampled from the detached ITC
    /// similarities with the diagonal zeroed.
    fn hard_pairs(
        &self,
        batch: &PretrainBatch<B>,
        itc_logits: Tensor<B, 2>,
    ) -> crate::Result<ItmPairRows<B>> {
        let [fused] = batch.itm_text.dims();
        let device = itc_logits.device();
        let similarity = itc_logits.detach().slice([0..fused, 0..fused]);
        let uniform = batch.uniforms.clone().slice([0..2, 0..fused]);
        let (image_for_text, text_for_image) = hard_negative_indices(similarity, uniform, 0.0)?;
        let rows = Tensor::<B, 1, Int>::arange(0..fused as i64, &device);
        Ok(ItmPairRows {
            text: Tensor::cat(vec![rows.clone(), rows.clone(), text_for_image], 0),
            image: Tensor::cat(vec![rows.clone(), image_for_text, rows], 0),
            labels: Tensor::cat(
                vec![
                    Tensor::ones([fused], &device),
                    Tensor::zeros([2 * fused], &device),
                ],
                0,
            ),
        })
    }

    /// VQA on a fused pass over (question, image) pairs.
    fn vqa(
        &self,
        batch: &PretrainBatch<B>,
        image: &VisualTokens<B>,
    ) -> crate::Result<ObjectiveOutput<B>> {
        let vqa = batch.vqa.as_ref().ok_or(ObjectiveError::MissingBatchPart {
            objective: "vqa",
            part: "vqa_answers",
        })?;
        let head = self.vqa_head.as_ref().ok_or(ObjectiveError::Unsupported(
            "objective vqa was not configured, so its head was not built".into(),
        ))?;
        let [questions, _] = vqa.ids.dims();
        let rows = Tensor::<B, 1, Int>::arange(0..questions as i64, &vqa.ids.device());
        let fused = self.backbone.fuse(
            self.backbone.embed_text(vqa.ids.clone()),
            vqa.padding.clone(),
            select_images(image.clone(), rows),
        );
        let logits = head.forward(fused.pooled);
        Ok(ObjectiveOutput {
            name: "vqa",
            metric: vqa_score(logits.clone().detach(), vqa.soft_targets.clone())?,
            metric_name: "vqa_score",
            loss: vqa_bce_loss(logits, vqa.soft_targets.clone())?,
        })
    }
}

impl<B: Backend> UniterPretrainer<B> {
    /// One step's losses with `objectives` (weights as in the summed loss)
    /// instead of the configured ones: a step of per-step task sampling
    /// ([`UniterObjectives::of_step`]). Errors if an objective's head was
    /// not built (its configured weight is 0).
    pub fn forward_with(
        &self,
        batch: &PretrainBatch<B>,
        o: &UniterObjectives,
    ) -> crate::Result<PretrainOutput<B>> {
        if let Some(name) = self.missing_head(o) {
            return Err(ObjectiveError::Unsupported(format!(
                "objective {name} was not configured, so its head was not built"
            )));
        }
        let backbone = &self.backbone;
        let image = backbone.embed_image(&batch.visual);
        let mut out: Vec<(f64, ObjectiveOutput<B>)> = Vec::new();

        let itc_logits = self
            .itc_head
            .as_ref()
            .filter(|_| o.scores_itc())
            .map(|head| {
                let text = backbone.encode_text(
                    backbone.embed_text(batch.text_ids.clone()),
                    batch.text_padding.clone(),
                );
                let text = mean_pool(text, Some(batch.text_padding.clone()));
                let image_pooled =
                    mean_pool(backbone.encode_image(image.clone()), image.padding.clone());
                let (text, image) =
                    gather_pairs(batch, head.embed_text(text), head.embed_image(image_pooled));
                head.logits(text, image)
            });
        if let (Some(logits), true) = (&itc_logits, o.itc > 0.0) {
            out.push((o.itc, itc_objective(logits.clone())));
        }

        if o.fuses_pairs() {
            let pairs = match (&itc_logits, o.itm_hard) {
                (Some(logits), true) => self.hard_pairs(batch, own_pairs(batch, logits.clone()))?,
                _ => ItmPairRows::of_batch(batch),
            };
            // Masked inputs only where an objective predicts them: ITM and
            // WRA alone see the clean text and regions.
            let text_ids = if o.mlm > 0.0 {
                &batch.mlm_ids
            } else {
                &batch.text_ids
            };
            let fused_image = match (&batch.mvm, o.masks_regions()) {
                (Some(mvm), true) => backbone.embed_image(&mvm.visual),
                _ if o.mpp > 0.0 => self.masked_patch_tokens(batch)?,
                _ => image.clone(),
            };
            let text_padding = batch.text_padding.clone().select(0, pairs.text.clone());
            let fused_image = pairs.select_image(fused_image);
            let image_padding = fused_image.padding.clone();
            let fused = backbone.fuse(
                backbone.embed_text(text_ids.clone().select(0, pairs.text.clone())),
                text_padding.clone(),
                fused_image,
            );
            // Matched pairs come first in both pairings (row i = text i with
            // image i), so the batch's MLM and MVM positions address them.
            let heads = TextMatching {
                mlm: self
                    .mlm_head
                    .as_ref()
                    .filter(|_| o.mlm > 0.0)
                    .map(|head| (head, o.mlm)),
                itm: self
                    .itm_head
                    .as_ref()
                    .filter(|_| o.itm > 0.0)
                    .map(|head| (head, o.itm)),
            };
            out.extend(heads.objectives(
                fused.text.clone(),
                fused.pooled.clone(),
                backbone.word_embeddings(),
                batch,
                &pairs,
            ));
            if o.masks_regions() {
                self.masked_regions(o, batch, &fused, &mut out)?;
            }
            if o.mpp > 0.0 {
                out.push((o.mpp, self.mpp(batch, &fused)?));
            }
            if o.wra > 0.0 {
                let wra =
                    fused_wra_objective(o.wra, &fused, text_padding, image_padding, pairs.labels)?;
                out.push((o.wra, wra));
            }
        }
        if o.vqa > 0.0 {
            out.push((o.vqa, self.vqa(batch, &image)?));
        }

        PretrainOutput::weighted(out, None)
    }

    /// An objective of `o` whose head this model lacks.
    fn missing_head(&self, o: &UniterObjectives) -> Option<&'static str> {
        [
            ("mlm", o.mlm > 0.0, self.mlm_head.is_some()),
            ("itm", o.itm > 0.0, self.itm_head.is_some()),
            ("itc", o.scores_itc(), self.itc_head.is_some()),
            ("mrfr", o.mrfr > 0.0, self.mrfr_head.is_some()),
            ("mrc", o.mrc > 0.0, self.mrc_head.is_some()),
            ("mrc_kl", o.mrc_kl > 0.0, self.mrc_kl_head.is_some()),
            ("mpp", o.mpp > 0.0, self.mpp_head.is_some()),
            ("vqa", o.vqa > 0.0, self.vqa_head.is_some()),
        ]
        .into_iter()
        .find(|&(_, wanted, built)| wanted && !built)
        .map(|(name, _, _)| name)
    }

    /// Probability that text row `i` matches image row `i`, `[N]`, from the
    /// ITM head on one fused pass (UNITER ranks retrieval candidates by it);
    /// `None` without an ITM head.
    pub fn match_probability(
        &self,
        ids: Tensor<B, 2, Int>,
        padding: Tensor<B, 2, Bool>,
        visual: &VisualBatch<B>,
    ) -> Option<Tensor<B, 1>> {
        let head = self.itm_head.as_ref()?;
        let backbone = &self.backbone;
        let fused = backbone.fuse(
            backbone.embed_text(ids),
            padding,
            backbone.embed_image(visual),
        );
        Some(head.match_probability(fused.pooled))
    }
}

impl<B: Backend> Pretrainer<B> for UniterPretrainer<B> {
    fn forward(&self, batch: &PretrainBatch<B>) -> PretrainOutput<B> {
        self.forward_with(batch, &self.objectives)
            .expect("the configured objectives have their heads")
    }

    fn forward_step(
        &self,
        batch: &PretrainBatch<B>,
        step: &[WeightedObjective],
    ) -> crate::Result<PretrainOutput<B>> {
        self.forward_with(
            batch,
            &UniterObjectives::of_step(step, self.objectives.itm_hard)?,
        )
    }

    fn temperature(&self) -> Option<f32> {
        self.itc_head
            .as_ref()
            .map(|head| head.temperature().into_scalar().elem())
    }
}

impl<B: Backend> RetrievalModel<B> for UniterPretrainer<B> {
    /// The ITC embedding of the mean-pooled text pass; without an ITC head,
    /// the unit mean-pooled text output itself (the unimodal cosine, which
    /// nothing trains: [`Self::rank_by`] then ranks by the ITM head).
    fn embed_text(&self, ids: Tensor<B, 2, Int>, padding: Tensor<B, 2, Bool>) -> Tensor<B, 2> {
        let hidden = self
            .backbone
            .encode_text(self.backbone.embed_text(ids), padding.clone());
        let pooled = mean_pool(hidden, Some(padding));
        match &self.itc_head {
            Some(head) => head.embed_text(pooled),
            None => l2_normalize(pooled),
        }
    }

    /// As [`Self::embed_text`], for the image-only pass.
    fn embed_image(&self, visual: &VisualBatch<B>) -> Tensor<B, 2> {
        let image = self.backbone.embed_image(visual);
        let padding = image.padding.clone();
        let pooled = mean_pool(self.backbone.encode_image(image), padding);
        match &self.itc_head {
            Some(head) => head.embed_image(pooled),
            None => l2_normalize(pooled),
        }
    }

    /// ITC's embeddings when ITC trains (an ITC head that only samples hard
    /// negatives is never aligned), else the ITM head.
    fn rank_by(&self) -> RankBy {
        if self.objectives.itc > 0.0 {
            RankBy::Embeddings
        } else if self.itm_head.is_some() {
            RankBy::Matching
        } else {
            RankBy::Nothing
        }
    }

    fn match_scores(
        &self,
        ids: Tensor<B, 2, Int>,
        padding: Tensor<B, 2, Bool>,
        visual: &VisualBatch<B>,
    ) -> Option<Tensor<B, 1>> {
        self.match_probability(ids, padding, visual)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_choices_are_named() {
        use vlp_features::{PatchEmbeddingsConfig, VisualEmbeddingsConfig};
        let model = SingleStreamConfig::new(
            20,
            VisualEmbeddingsConfig::Patches(PatchEmbeddingsConfig::new(16, 8, 16)),
        );
        let config = |objectives| UniterPretrainerConfig::new(model.clone(), objectives);
        assert_eq!(
            config(UniterObjectives::new()).validate(),
            Err(UniterConfigError::NoObjective)
        );
        assert_eq!(
            config(UniterObjectives::new().with_mrfr(1.0)).validate(),
            Err(UniterConfigError::NeedsRegions("mrfr"))
        );
        let regions = UniterPretrainerConfig::new(
            SingleStreamConfig::new(
                20,
                VisualEmbeddingsConfig::Regions(vlp_features::RegionEmbeddingsConfig::new(8, 16)),
            ),
            UniterObjectives::new().with_mpp(1.0),
        );
        assert_eq!(
            regions.validate(),
            Err(UniterConfigError::NeedsPatches("mpp"))
        );
        assert!(regions
            .validate()
            .unwrap_err()
            .to_string()
            .contains("objectives.mpp needs image patches"));
        assert_eq!(
            config(UniterObjectives::new().with_itc(1.0).with_itm_hard(true)).validate(),
            Err(UniterConfigError::HardNegativesWithoutItm)
        );
        assert_eq!(
            config(UniterObjectives::new().with_vqa(1.0)).validate(),
            Err(UniterConfigError::NeedsAnswers)
        );
    }
}
