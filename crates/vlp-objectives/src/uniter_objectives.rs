//! The objective choice of the single-stream pre-trainer (UNITER §3.2):
//! which objectives train, at which weights, and how a step of UNITER's task
//! sampling turns into a choice.

use burn::prelude::*;

use crate::error::ObjectiveError;
use crate::mixing::{MixStrategy, Objective, ObjectiveMix, WeightedObjective};

/// Which objectives a [`UniterPretrainer`](crate::UniterPretrainer) trains, with their weights in the
/// summed loss (0 = off; every default is off).
#[derive(Config, Debug, PartialEq)]
pub struct UniterObjectives {
    /// Masked language modelling.
    #[config(default = 0.0)]
    pub mlm: f64,
    /// Image-text matching.
    #[config(default = 0.0)]
    pub itm: f64,
    /// ITM negatives sampled from the ITC similarities (ALBEF) instead of the
    /// batch's random ones; needs `itc_embed_dim` (the ITC head scores them
    /// even when `itc` is 0) and weighs ITM (`itm` must be > 0).
    #[config(default = false)]
    pub itm_hard: bool,
    /// Image-text contrastive.
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
    /// VQA (needs a batcher with VQA answers).
    #[config(default = 0.0)]
    pub vqa: f64,
}

impl UniterObjectives {
    /// Whether any masked region objective is on (the batch must mask regions).
    pub fn masks_regions(&self) -> bool {
        self.mrfr > 0.0 || self.mrc > 0.0 || self.mrc_kl > 0.0
    }

    /// Whether the fused pass over the ITM pairs is needed.
    pub(crate) fn fuses_pairs(&self) -> bool {
        self.mlm > 0.0 || self.itm > 0.0 || self.wra > 0.0 || self.mpp > 0.0 || self.masks_regions()
    }

    pub(crate) fn scores_itc(&self) -> bool {
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
