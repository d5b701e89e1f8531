//! vlp-objectives: the pre-training objectives of survey §4 as heads and
//! losses, generic over `B: Backend`.
//!
//! - [`mlm`]: masked language modelling, head on masked positions only,
//!   decoder tied to the word embeddings.
//! - [`mvm`]: masked vision modelling: feature regression (UNITER MRFR),
//!   feature classification with hard and KL labels (MRC / MRC-kl), ViLT's
//!   masked patch prediction (head, RGB targets, loss).
//! - [`itm`]: image-text matching on the pooled fused `[CLS]` or on
//!   `[CLS_T]`/`[CLS_V]` (dual stream); hard negatives from ITC similarities.
//! - [`itc`]: image-text contrastive (symmetric InfoNCE, learnable clamped
//!   temperature or CLIP logit scale; ALBEF's queue and distillation;
//!   negatives gathered across a data-parallel step's shards);
//!   [`momentum`]: ALBEF's momentum (EMA) model.
//! - [`wra`]: word-region alignment by optimal transport (UNITER, via `vlp-ot`).
//! - [`fom`]: frame order modelling (HERO).
//! - [`vqa`]: VQA answer classifier, soft-score BCE and accuracy.
//! - [`caption`]: LM and PrefixLM losses with label smoothing.
//! - [`caption_metrics`]: corpus BLEU-1..4 and CIDEr-D as pycocoevalcap
//!   computes them.
//! - [`mixing`]: task mixing by per-step sampling or weighted sum.
//! - [`loss`]: shared primitives (cross-entropy with ignore and smoothing).
//! - [`pretrainer`]: the [`Pretrainer`] and [`RetrievalModel`] traits every
//!   architecture's pre-training model implements.
//! - [`mean_pool`] (re-exported from vlp-models): mean pooling of the non-padding tokens.
//! - [`pretrain_dual_stream`], [`pretrain_albef`], [`pretrain_clip`]: the
//!   pre-training models of ViLBERT/LXMERT (MLM, ITM, ITC), ALBEF (MLM, ITM,
//!   ITC with an optional momentum model and queue) and CLIP (ITC only).
//! - [`pretrain_video`]: frame embeddings, HERO's temporal transformer and
//!   the FOM head; FOM loss and accuracy on a batch of shuffled clips.
//! - [`pretrain_hero`]: HERO on captioned clips (MLM, video-text matching,
//!   video-text contrastive, FOM on the temporal transformer).
//! - [`simvlm`]: SimVLM (encoder-decoder or PrefixLM stack), the PrefixLM
//!   objective on the suffix, and captioning from `[CLS]`.
//! - [`text_matching`]: the masked-text → MLM → ITM block the single-stream,
//!   dual-stream and fusion pre-trainers share.
//! - [`uniter`]: the single-stream pre-training model, whose objectives (MLM,
//!   ITM with random or hard negatives, ITC, MRFR, MRC, MRC-kl, MPP, WRA,
//!   VQA) are chosen in its config ([`uniter_objectives`]), summed with
//!   weights or sampled one per step.
//!
//! Every loss of an empty selection (nothing masked, all labels ignored) is
//! 0, never NaN; bad shapes or labels are [`ObjectiveError`]s.

pub mod caption;
pub mod caption_metrics;
pub mod error;
pub mod fom;
pub mod itc;
pub mod itm;
pub mod loss;
pub mod mixing;
pub mod mlm;
pub mod momentum;
pub mod mvm;
pub mod pretrain_albef;
pub mod pretrain_clip;
pub mod pretrain_dual_stream;
pub mod pretrain_hero;
pub mod pretrain_video;
pub mod pretrainer;
pub mod simvlm;
pub mod text_matching;
pub mod uniter;
pub mod uniter_objectives;
mod uniter_vision;
pub mod vqa;
pub mod vqa_finetune;
pub mod wra;

pub use caption::{lm_loss, prefix_lm_loss, IGNORE_LABEL};
pub use caption_metrics::{bleu::corpus_bleu, cider::cider_d, cider::CiderD};
pub use error::{ObjectiveError, Result};
pub use fom::{fom_loss, FomHead, FomHeadConfig};
pub use itc::{
    gather_pairs, itc_loss, itc_loss_with_queue, itc_objective, own_pairs, ItcHead, ItcHeadConfig,
    ItcQueue, ItcQueueBuffers, TemperatureParameterization,
};
pub use itm::{
    hard_negative_indices, hard_negatives_with_rng, itm_loss, DualStreamFusion, DualStreamItmHead,
    DualStreamItmHeadConfig, ItmHead, ItmHeadConfig,
};
pub use loss::{accuracy, cross_entropy, cross_entropy_with_ignore, l2_normalize};
pub use mixing::{MixStrategy, Objective, ObjectiveMix, WeightedObjective};
pub use mlm::{gather_positions, mlm_loss, MlmHead, MlmHeadConfig};
pub use momentum::{momentum_copy, momentum_update};
pub use mvm::{
    feature_classification_hard_loss, feature_classification_kl_loss, feature_regression_loss,
    masked_patch_loss, MppHead, MppHeadConfig, MvmClassificationHead, MvmClassificationHeadConfig,
    MvmRegressionHead, MvmRegressionHeadConfig, RGB_BINS,
};
pub use pretrain_albef::{AlbefMomentum, AlbefPretrainer, AlbefPretrainerConfig, AlbefUnimodal};
pub use pretrain_clip::{ClipPretrainer, ClipPretrainerConfig};
pub use pretrain_dual_stream::{DualStreamPretrainer, DualStreamPretrainerConfig};
pub use pretrain_hero::{HeroPretrainer, HeroPretrainerConfig};
pub use pretrain_video::{VideoPretrainer, VideoPretrainerConfig};
pub use pretrainer::{ObjectiveOutput, PretrainOutput, Pretrainer, RankBy, RetrievalModel};
pub use simvlm::{SimVlmArchitecture, SimVlmModel, SimVlmPretrainer, SimVlmPretrainerConfig};
pub use text_matching::{FusePairs, ItmPairRows, TextMatching, TextMatchingConfig};
pub use uniter::{UniterConfigError, UniterPretrainer, UniterPretrainerConfig};
pub use uniter_objectives::UniterObjectives;
pub use vlp_models::mean_pool;
pub use vqa::{vqa_bce_loss, vqa_score, VqaHead, VqaHeadConfig};
pub use vqa_finetune::UniterVqa;
pub use wra::{
    distance_gap, fused_wra_objective, uniter_wra_config, word_alignment_mask, word_positions,
    wra_loss,
};

/// Tests that initialise models draw from the backend's global generator:
/// those whose result depends on the draws (seeded learning tests, and the
/// tests that draw beside them) hold this lock, so that tests running in
/// parallel do not interleave their draws.
#[cfg(test)]
pub(crate) fn test_serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
