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
use vlp_features::{VisualEmbeddings, VisualTokens};
use vlp_models::{FusedOutput, SingleStreamConfig, SingleStreamModel};
use vlp_ot::{wra_distance, Padding};

use crate::error::ObjectiveError;
use crate::itc::{itc_loss, ItcHead, ItcHeadConfig};
use crate::itm::{hard_negative_indices, itm_loss, ItmHead, ItmHeadConfig};
use crate::loss::{accuracy, l2_normalize};
use crate::mixing::{MixStrategy, Objective, ObjectiveMix, WeightedObjective};
use crate::mlm::{gather_positions, mlm_loss, MlmHead, MlmHeadConfig};
use crate::mvm::{
    feature_classification_hard_loss, feature_classification_kl_loss, feature_regression_loss,
    masked_patch_loss, MppHead, MppHeadConfig, MvmClassificationHead, MvmClassificationHeadConfig,
    MvmRegressionHead, MvmRegressionHeadConfig, RGB_BINS,
};
use crate::pooling::mean_pool;
use crate::pretrainer::{ObjectiveOutput, PretrainOutput, Pretrainer, RankBy, RetrievalModel};
use crate::vqa::{vqa_bce_loss, vqa_score, VqaHead, VqaHeadConfig};
use crate::wra::uniter_wra_config;

/// Which objectives a [`UniterPretrainer`] trains, with their weights in the
/// summed loss (0 = off; every default is off).
#[derive(Config, Debug, PartialEq)]
pub struct UniterObjectives {
    #[config(default = 0.0)]
    pub mlm: f64,
    #[config(default = 0.0)]
    pub itm: f64,
    /// ITM negatives sampled from the ITC similarities (ALBEF) instead of the
    /// batch's random ones; needs `itc_embed_dim` (the ITC head scores them
    /// even when `itc` is 0) and weighs ITM (`itm` must be > 0).
    #[config(default = false)]
    pub itm_hard: bool,
    #[config(default = 0.0)]
    pub itc: f64,
    /// Masked region feature regression (L2).
    #[config(default = 0.0)]
    pub mrfr: f64,
    /// Masked region classification, hard labels.
    #[config(default = 0.0)]
    pub mrc: f64,
    /// Masked region classification, KL to the detector's distribution.
    #[config(default = 0.0)]
    pub mrc_kl: f64,
    /// Masked patch prediction (ViLT): mean-RGB bins of masked patches.
    #[config(default = 0.0)]
    pub mpp: f64,
    /// Word-region alignment on the ITM pairs (its weight multiplies UNITER's 0.1).
    #[config(default = 0.0)]
    pub wra: f64,
    #[config(default = 0.0)]
    pub vqa: f64,
}

impl UniterObjectives {
    /// Whether any masked region objective is on (the batch must mask regions).
    pub fn masks_regions(&self) -> bool {
        self.mrfr > 0.0 || self.mrc > 0.0 || self.mrc_kl > 0.0
    }

    /// Whether the fused pass over the ITM pairs is needed.
    fn fuses_pairs(&self) -> bool {
        self.mlm > 0.0 || self.itm > 0.0 || self.wra > 0.0 || self.mpp > 0.0 || self.masks_regions()
    }

    fn scores_itc(&self) -> bool {
        self.itc > 0.0 || self.itm_hard
    }

    /// The weighted objectives (weight > 0) as a task mix with `strategy`:
    /// UNITER samples one per step by these ratios; the weighted sum runs all.
    pub fn mix(&self, strategy: MixStrategy) -> crate::Result<ObjectiveMix> {
        let entries = [
            (Objective::Mlm, self.mlm),
            (Objective::Itm, self.itm),
            (Objective::Itc, self.itc),
            (Objective::Mrfr, self.mrfr),
            (Objective::Mrc, self.mrc),
            (Objective::MrcKl, self.mrc_kl),
            (Objective::Mpp, self.mpp),
            (Objective::Wra, self.wra),
            (Objective::Vqa, self.vqa),
        ];
        ObjectiveMix::new(
            strategy,
            entries
                .into_iter()
                .filter(|&(_, weight)| weight > 0.0)
                .map(|(objective, weight)| WeightedObjective { objective, weight })
                .collect(),
        )
    }

    /// The objectives of one step of a mix ([`ObjectiveMix::step`]) at their
    /// weights; hard negatives stay on when ITM is drawn and `itm_hard` is set.
    pub fn of_step(step: &[WeightedObjective], itm_hard: bool) -> crate::Result<Self> {
        let mut objectives = Self::new();
        for entry in step {
            let weight = entry.weight;
            match entry.objective {
                Objective::Mlm => objectives.mlm = weight,
                Objective::Itm => {
                    objectives.itm = weight;
                    objectives.itm_hard = itm_hard;
                }
                Objective::Itc => objectives.itc = weight,
                Objective::Mrfr => objectives.mrfr = weight,
                Objective::Mrc => objectives.mrc = weight,
                Objective::MrcKl => objectives.mrc_kl = weight,
                Objective::Mpp => objectives.mpp = weight,
                Objective::Wra => objectives.wra = weight,
                Objective::Vqa => objectives.vqa = weight,
                other => {
                    return Err(ObjectiveError::Unsupported(format!(
                        "the UNITER pre-trainer has no {other:?} objective"
                    )))
                }
            }
        }
        Ok(objectives)
    }
}

/// Configuration of [`UniterPretrainer`].
#[derive(Config, Debug)]
pub struct UniterPretrainerConfig {
    pub model: SingleStreamConfig,
    pub objectives: UniterObjectives,
    /// Detector classes, background included (`C + 1`), for MRC / MRC-kl.
    #[config(default = 0)]
    pub num_region_classes: usize,
    /// Answers of the VQA head.
    #[config(default = 0)]
    pub num_answers: usize,
    #[config(default = 128)]
    pub itc_embed_dim: usize,
    #[config(default = 0.07)]
    pub itc_temperature: f64,
}

#[derive(Module, Debug)]
pub struct UniterPretrainer<B: Backend> {
    pub backbone: SingleStreamModel<B>,
    pub mlm_head: Option<MlmHead<B>>,
    pub itm_head: Option<ItmHead<B>>,
    pub itc_head: Option<ItcHead<B>>,
    pub mrfr_head: Option<MvmRegressionHead<B>>,
    pub mrc_head: Option<MvmClassificationHead<B>>,
    pub mrc_kl_head: Option<MvmClassificationHead<B>>,
    pub mpp_head: Option<MppHead<B>>,
    pub vqa_head: Option<VqaHead<B>>,
    pub objectives: UniterObjectives,
}

/// Errors of a configuration that cannot be built.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UniterConfigError {
    #[error("no objective has a positive weight")]
    NoObjective,
    #[error("objectives.itm_hard needs objectives.itm > 0")]
    HardNegativesWithoutItm,
    #[error("objectives.{0} needs detector regions (model.visual = regions)")]
    NeedsRegions(&'static str),
    #[error("objectives.{0} needs image patches (model.visual = patches)")]
    NeedsPatches(&'static str),
    #[error("objectives.{0} needs num_region_classes >= 2 (background and one class)")]
    NeedsRegionClasses(&'static str),
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

    /// Builds the model; call [`Self::validate`] first (an invalid choice
    /// panics here). With MPP on, the patch embeddings get their mask
    /// embedding.
    pub fn init<B: Backend>(&self, device: &B::Device) -> UniterPretrainer<B> {
        if let Err(error) = self.validate() {
            panic!("invalid UniterPretrainerConfig: {error}");
        }
        let o = &self.objectives;
        let hidden = self.model.hidden_size;
        let on = |weight: f64| weight > 0.0;
        let feature_size = match &self.model.visual {
            vlp_features::VisualEmbeddingsConfig::Regions(regions) => regions.feature_size,
            _ => 0,
        };
        let mut model = self.model.clone();
        if let vlp_features::VisualEmbeddingsConfig::Patches(patches) = &mut model.visual {
            patches.mask_embedding |= on(o.mpp);
        }
        UniterPretrainer {
            backbone: model.init(device),
            mlm_head: on(o.mlm)
                .then(|| MlmHeadConfig::new(hidden, self.model.vocab_size).init(device)),
            itm_head: on(o.itm).then(|| ItmHeadConfig::new(hidden).init(device)),
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
        }
    }
}

/// Text positions WRA aligns, `[B, T]`: real tokens other than the first
/// (`[CLS]`) and the last (`[SEP]`) of each row; `padding` `[B, T]`.
pub fn word_positions<B: Backend>(padding: Tensor<B, 2, Bool>) -> Tensor<B, 2, Bool> {
    let [batch, len] = padding.dims();
    let device = padding.device();
    let lengths = padding.bool_not().int().sum_dim(1); // [B, 1]
    let position = Tensor::<B, 1, Int>::arange(0..len as i64, &device)
        .reshape([1, len])
        .expand([batch, len]);
    position
        .clone()
        .greater_equal_elem(1)
        .bool_and(position.lower(lengths.sub_scalar(1).expand([batch, len])))
}

/// `mean(distance | negative) − mean(distance | positive)` of WRA distances
/// `[B]` with labels `positive` `[B]`; a missing group counts as 0.
pub fn distance_gap(distances: &[f32], positive: &[bool]) -> f32 {
    let mean = |want: bool| {
        let values: Vec<f32> = distances
            .iter()
            .zip(positive)
            .filter(|(_, &p)| p == want)
            .map(|(&d, _)| d)
            .collect();
        values.iter().sum::<f32>() / values.len().max(1) as f32
    };
    mean(false) - mean(true)
}

fn floats<B: Backend>(tensor: Tensor<B, 1>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .to_vec()
        .expect("converted to f32")
}

fn bools<B: Backend, const D: usize>(tensor: Tensor<B, D, Bool>) -> Vec<bool> {
    // Through integers: backends store bools in different dtypes.
    tensor
        .int()
        .into_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .expect("converted to i64")
        .into_iter()
        .map(|v| v != 0)
        .collect()
}

/// Rows of image tokens, padding included.
fn select_tokens<B: Backend>(image: &VisualTokens<B>, rows: Tensor<B, 1, Int>) -> VisualTokens<B> {
    VisualTokens {
        tokens: image.tokens.clone().select(0, rows.clone()),
        padding: image
            .padding
            .clone()
            .map(|padding| padding.int().select(0, rows).bool()),
    }
}

/// The ITM pairs of one step: text rows, image rows, labels.
struct Pairs<B: Backend> {
    text: Tensor<B, 1, Int>,
    image: Tensor<B, 1, Int>,
    labels: Tensor<B, 1, Int>,
}

impl<B: Backend> UniterPretrainer<B> {
    /// ALBEF's pairs over the batch's first `F` rows (`F` = its fused pairs):
    /// `F` positives `(i, i)`, then text `i` with a hard negative image, then
    /// image `j` with a hard negative text, sampled from the detached ITC
    /// similarities with the diagonal zeroed.
    fn hard_pairs(&self, batch: &PretrainBatch<B>, itc_logits: Tensor<B, 2>) -> Pairs<B> {
        let [fused] = batch.itm_text.dims();
        let device = itc_logits.device();
        let similarity = itc_logits.detach().slice([0..fused, 0..fused]);
        let uniform = batch.uniforms.clone().slice([0..2, 0..fused]);
        let (image_for_text, text_for_image) = hard_negative_indices(similarity, uniform, 0.0)
            .expect("a batch of two or more pairs has negatives");
        let rows = Tensor::<B, 1, Int>::arange(0..fused as i64, &device);
        Pairs {
            text: Tensor::cat(vec![rows.clone(), rows.clone(), text_for_image], 0),
            image: Tensor::cat(vec![rows.clone(), image_for_text, rows], 0),
            labels: Tensor::cat(
                vec![
                    Tensor::ones([fused], &device),
                    Tensor::zeros([2 * fused], &device),
                ],
                0,
            ),
        }
    }

    fn region_projection(&self) -> Tensor<B, 2> {
        match &self.backbone.visual {
            VisualEmbeddings::Regions(regions) => regions.feature_projection.weight.val(),
            _ => unreachable!("validated: masked region objectives read regions"),
        }
    }

    /// MRFR, MRC and MRC-kl on the masked regions of the matched pairs.
    fn masked_regions(
        &self,
        o: &UniterObjectives,
        batch: &PretrainBatch<B>,
        fused: &FusedOutput<B>,
        out: &mut Vec<(f64, ObjectiveOutput<B>)>,
    ) {
        let mvm = batch
            .mvm
            .as_ref()
            .expect("masked region objectives need a batcher with region_masking");
        let hidden = gather_positions(fused.image.clone(), mvm.positions.clone());
        let [m, _] = hidden.dims();
        if let (Some(head), true) = (&self.mrfr_head, o.mrfr > 0.0) {
            let loss = feature_regression_loss(
                head.forward(hidden.clone(), self.region_projection()),
                mvm.feature_targets.clone(),
            )
            .expect("head and targets share [M, F]");
            out.push((
                o.mrfr,
                ObjectiveOutput {
                    name: "mrfr",
                    metric: loss.clone().into_scalar().elem(),
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
        let class_accuracy = |logits: Tensor<B, 2>| match &argmax {
            Some(argmax) => accuracy(logits.detach(), argmax.clone()),
            None => 0.0,
        };
        if let (Some(head), true) = (&self.mrc_head, o.mrc > 0.0) {
            let logits = head.forward(hidden.clone());
            out.push((
                o.mrc,
                ObjectiveOutput {
                    name: "mrc",
                    metric: class_accuracy(logits.clone()),
                    metric_name: "accuracy",
                    loss: feature_classification_hard_loss(logits, targets.clone())
                        .expect("head width is the detector's class count"),
                },
            ));
        }
        if let (Some(head), true) = (&self.mrc_kl_head, o.mrc_kl > 0.0) {
            let logits = head.forward(hidden);
            out.push((
                o.mrc_kl,
                ObjectiveOutput {
                    name: "mrc_kl",
                    metric: class_accuracy(logits.clone()),
                    metric_name: "accuracy",
                    loss: feature_classification_kl_loss(logits, targets)
                        .expect("head width is the detector's class count"),
                },
            ));
        }
    }

    /// The batch's images with their masked patches embedded as the mask
    /// embedding (MPP's fused input).
    fn masked_patch_tokens(&self, batch: &PretrainBatch<B>) -> VisualTokens<B> {
        let mpp = batch
            .mpp
            .as_ref()
            .expect("the mpp objective needs a batcher with patch_masking");
        match (&self.backbone.visual, &batch.visual) {
            (VisualEmbeddings::Patches(patches), VisualBatch::Images(images)) => VisualTokens {
                tokens: patches.forward_masked(images.clone(), mpp.patch_mask.clone()),
                padding: None,
            },
            _ => panic!("the mpp objective needs a patch model and pixel images"),
        }
    }

    /// MPP on the masked patches of the matched pairs: 256-bin mean colour
    /// per channel; the metric is the bin accuracy over all `M × 3` channels.
    fn mpp(&self, batch: &PretrainBatch<B>, fused: &FusedOutput<B>) -> ObjectiveOutput<B> {
        let mpp = batch
            .mpp
            .as_ref()
            .expect("the mpp objective needs a batcher with patch_masking");
        let head = self.mpp_head.as_ref().expect("built when mpp is on");
        let logits = head.forward(gather_positions(fused.image.clone(), mpp.positions.clone()));
        let [m, _, _] = logits.dims();
        ObjectiveOutput {
            name: "mpp",
            metric: accuracy(
                logits.clone().detach().reshape([m * 3, RGB_BINS]),
                mpp.rgb_targets.clone().reshape([m * 3]),
            ),
            metric_name: "accuracy",
            loss: masked_patch_loss(logits, mpp.rgb_targets.clone())
                .expect("the head has 3 × 256 outputs and targets are bins"),
        }
    }

    /// WRA on the fused pass's contextual words and regions of the ITM pairs.
    fn wra(
        &self,
        weight: f64,
        fused: &FusedOutput<B>,
        text_padding: Tensor<B, 2, Bool>,
        image_padding: Option<Tensor<B, 2, Bool>>,
        labels: Tensor<B, 1, Int>,
    ) -> ObjectiveOutput<B> {
        let [pairs, regions, _] = fused.image.dims();
        let image_padding = image_padding.unwrap_or_else(|| {
            Tensor::<B, 2, Int>::zeros([pairs, regions], &fused.image.device()).bool()
        });
        let padding = Padding::new(word_positions(text_padding).bool_not(), image_padding);
        let config = vlp_ot::WraConfig {
            weight: uniter_wra_config().weight * weight,
            ..uniter_wra_config()
        };
        let positive = labels.equal_elem(1);
        let distances = wra_distance(
            fused.text.clone(),
            fused.image.clone(),
            Some(&padding),
            &config,
        )
        .expect("fused text and image outputs share a width");
        let gap = distance_gap(
            &floats(distances.clone().detach()),
            &bools(positive.clone()),
        );
        ObjectiveOutput {
            name: "wra",
            // The weight is applied with the others', so the reported loss
            // is UNITER's (0.1 × pooled difference).
            loss: vlp_ot::wra_loss(distances, positive, &uniter_wra_config())
                .expect("one label per pair"),
            metric: gap,
            metric_name: "gap",
        }
    }

    /// VQA on a fused pass over (question, image) pairs.
    fn vqa(&self, batch: &PretrainBatch<B>, image: &VisualTokens<B>) -> ObjectiveOutput<B> {
        let vqa = batch
            .vqa
            .as_ref()
            .expect("the vqa objective needs a batcher with vqa_answers");
        let head = self.vqa_head.as_ref().expect("built when vqa is on");
        let [questions, _] = vqa.ids.dims();
        let rows = Tensor::<B, 1, Int>::arange(0..questions as i64, &vqa.ids.device());
        let fused = self.backbone.fuse(
            self.backbone.embed_text(vqa.ids.clone()),
            vqa.padding.clone(),
            select_tokens(image, rows),
        );
        let logits = head.forward(fused.pooled);
        ObjectiveOutput {
            name: "vqa",
            metric: vqa_score(logits.clone().detach(), vqa.soft_targets.clone())
                .expect("head width is the answer count"),
            metric_name: "vqa_score",
            loss: vqa_bce_loss(logits, vqa.soft_targets.clone())
                .expect("head width is the answer count"),
        }
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
                head.logits(head.embed_text(text), head.embed_image(image_pooled))
            });
        if let (Some(logits), true) = (&itc_logits, o.itc > 0.0) {
            let [rows, _] = logits.dims();
            let diagonal = Tensor::<B, 1, Int>::arange(0..rows as i64, &logits.device());
            out.push((
                o.itc,
                ObjectiveOutput {
                    name: "itc",
                    metric: accuracy(logits.clone().detach(), diagonal),
                    metric_name: "accuracy",
                    loss: itc_loss(logits.clone()),
                },
            ));
        }

        if o.fuses_pairs() {
            let pairs = match (&itc_logits, o.itm_hard) {
                (Some(logits), true) => self.hard_pairs(batch, logits.clone()),
                _ => Pairs {
                    text: batch.itm_text.clone(),
                    image: batch.itm_image.clone(),
                    labels: batch.itm_labels.clone(),
                },
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
                _ if o.mpp > 0.0 => self.masked_patch_tokens(batch),
                _ => image.clone(),
            };
            let text_padding = batch.text_padding.clone().select(0, pairs.text.clone());
            let fused_image = select_tokens(&fused_image, pairs.image.clone());
            let image_padding = fused_image.padding.clone();
            let fused = backbone.fuse(
                backbone.embed_text(text_ids.clone().select(0, pairs.text.clone())),
                text_padding.clone(),
                fused_image,
            );
            // Matched pairs come first in both pairings (row i = text i with
            // image i), so the batch's MLM and MVM positions address them.
            if let (Some(head), true) = (&self.mlm_head, o.mlm > 0.0) {
                let hidden = gather_positions(fused.text.clone(), batch.mlm_positions.clone());
                let logits = head.forward(hidden, backbone.embeddings.word_embedding_weight());
                out.push((
                    o.mlm,
                    ObjectiveOutput {
                        name: "mlm",
                        metric: accuracy(logits.clone().detach(), batch.mlm_labels.clone()),
                        metric_name: "accuracy",
                        loss: mlm_loss(logits, batch.mlm_labels.clone()),
                    },
                ));
            }
            if let (Some(head), true) = (&self.itm_head, o.itm > 0.0) {
                let logits = head.forward(fused.pooled.clone());
                out.push((
                    o.itm,
                    ObjectiveOutput {
                        name: "itm",
                        metric: accuracy(logits.clone().detach(), pairs.labels.clone()),
                        metric_name: "accuracy",
                        loss: itm_loss(logits, pairs.labels.clone()),
                    },
                ));
            }
            if o.masks_regions() {
                self.masked_regions(o, batch, &fused, &mut out);
            }
            if o.mpp > 0.0 {
                out.push((o.mpp, self.mpp(batch, &fused)));
            }
            if o.wra > 0.0 {
                let wra = self.wra(o.wra, &fused, text_padding, image_padding, pairs.labels);
                out.push((o.wra, wra));
            }
        }
        if o.vqa > 0.0 {
            out.push((o.vqa, self.vqa(batch, &image)));
        }

        let loss = out
            .iter()
            .map(|(weight, objective)| objective.loss.clone().mul_scalar(*weight))
            .reduce(|a, b| a + b)
            .ok_or_else(|| ObjectiveError::Unsupported("a step with no objective".into()))?;
        Ok(PretrainOutput {
            loss,
            objectives: out.into_iter().map(|(_, objective)| objective).collect(),
            momentum_embeddings: None,
        })
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
        let probabilities = burn::tensor::activation::softmax(head.forward(fused.pooled), 1);
        let [rows, _] = probabilities.dims();
        Some(probabilities.slice([0..rows, 1..2]).reshape([rows]))
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
    use burn::backend::NdArray;
    use burn::tensor::TensorData;

    #[test]
    fn words_exclude_cls_sep_and_padding() {
        let padding = Tensor::<NdArray, 2, Bool>::from_data(
            TensorData::from([
                [false, false, false, false, true],
                [false, false, false, false, false],
            ]),
            &Default::default(),
        );
        let words = bools(word_positions(padding));
        assert_eq!(
            words,
            [
                false, true, true, false, false, //
                false, true, true, true, false
            ]
        );
    }

    #[test]
    fn gap_is_negative_mean_minus_positive_mean() {
        let gap = distance_gap(&[0.2, 0.4, 1.0, 0.6], &[true, true, false, false]);
        assert!((gap - (0.8 - 0.3)).abs() < 1e-6);
        assert_eq!(distance_gap(&[0.5], &[true]), -0.5, "no negatives: 0 − 0.5");
    }

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
