//! What a runner needs of any model being pre-trained, whatever its
//! architecture: one step's losses, and (for models with a shared
//! text-image space) unimodal embeddings for retrieval.

use burn::prelude::*;
use vlp_data::{PretrainBatch, VisualBatch};

use crate::error::ObjectiveError;
use crate::loss::accuracy;
use crate::mixing::WeightedObjective;

/// One objective's loss (still attached to the graph) and its metric.
#[derive(Debug, Clone)]
pub struct ObjectiveOutput<B: Backend> {
    /// Short name used in logs and metrics files ("mlm", "itm", "itc", …).
    pub name: &'static str,
    /// `[1]` loss, attached to the graph.
    pub loss: Tensor<B, 1>,
    /// The objective's own measure: masked-token accuracy for MLM, match
    /// accuracy for ITM, in-batch text→image accuracy for ITC, next-token
    /// accuracy for language modelling, mean squared error for feature
    /// regression, the negative-minus-positive distance gap for WRA. `[1]`,
    /// detached and left on the device: a training step reads nothing back
    /// (the trainer reads a run's metrics once per metrics line).
    pub metric: Tensor<B, 1>,
    /// What [`Self::metric`] measures ("accuracy", "mse", "gap", "vqa_score"),
    /// the suffix of its key in metrics files (`mlm_accuracy`).
    pub metric_name: &'static str,
}

/// Losses of one step.
#[derive(Debug, Clone)]
pub struct PretrainOutput<B: Backend> {
    /// Weighted sum of the objectives' losses: what the step minimises.
    pub loss: Tensor<B, 1>,
    /// Every objective of the step, in a fixed order.
    pub objectives: Vec<ObjectiveOutput<B>>,
    /// Unit text and image embeddings `[B, D]` of the step's pairs by a
    /// momentum model (ALBEF), detached: what [`Pretrainer::after_step`]
    /// enqueues. `None` without one.
    pub momentum_embeddings: Option<(Tensor<B, 2>, Tensor<B, 2>)>,
}

impl<B: Backend> ObjectiveOutput<B> {
    /// [`Self::metric`] read back to the host.
    pub fn metric_value(&self) -> f32 {
        self.metric.clone().into_scalar().elem()
    }

    /// A classification objective called `name`: `loss(logits, labels)` on
    /// `logits` `[N, C]` and `labels` `[N]`, measured by accuracy.
    pub fn classification(
        name: &'static str,
        logits: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        loss: impl FnOnce(Tensor<B, 2>, Tensor<B, 1, Int>) -> Tensor<B, 1>,
    ) -> Self {
        Self {
            name,
            metric: accuracy(logits.clone().detach(), labels.clone()),
            metric_name: "accuracy",
            loss: loss(logits, labels),
        }
    }
}

impl<B: Backend> PretrainOutput<B> {
    /// The step of `objectives` with their weights: the loss is the sum of
    /// `weight × loss`, in order. Errors on an empty step.
    pub fn weighted(
        objectives: Vec<(f64, ObjectiveOutput<B>)>,
        momentum_embeddings: Option<(Tensor<B, 2>, Tensor<B, 2>)>,
    ) -> crate::Result<Self> {
        let loss = objectives
            .iter()
            .map(|(weight, objective)| objective.loss.clone().mul_scalar(*weight))
            .reduce(|a, b| a + b)
            .ok_or_else(|| ObjectiveError::Unsupported("a step with no objective".into()))?;
        Ok(Self {
            loss,
            objectives: objectives
                .into_iter()
                .map(|(_, objective)| objective)
                .collect(),
            momentum_embeddings,
        })
    }

    /// The objective called `name`, if the step has it.
    pub fn objective(&self, name: &str) -> Option<&ObjectiveOutput<B>> {
        self.objectives.iter().find(|o| o.name == name)
    }
}

/// A model with its pre-training heads.
pub trait Pretrainer<B: Backend> {
    /// One step's losses on `batch`.
    fn forward(&self, batch: &PretrainBatch<B>) -> PretrainOutput<B>;

    /// One step's losses with only the objectives of `step`, at its weights:
    /// a step of per-step task sampling ([`crate::ObjectiveMix::step`]).
    /// Pre-trainers that train a fixed set of objectives refuse.
    fn forward_step(
        &self,
        _batch: &PretrainBatch<B>,
        _step: &[WeightedObjective],
    ) -> crate::Result<PretrainOutput<B>> {
        Err(ObjectiveError::Unsupported(
            "this pre-trainer trains a fixed set of objectives every step (no task sampling)"
                .into(),
        ))
    }

    /// The contrastive temperature in use, for logging; `None` without ITC.
    fn temperature(&self) -> Option<f32> {
        None
    }

    /// Updates after the optimiser step that followed `output`: ALBEF moves
    /// its momentum model towards the new weights and enqueues the step's
    /// momentum embeddings. Nothing by default.
    fn after_step(self, _output: &PretrainOutput<B>) -> crate::Result<Self>
    where
        Self: Sized,
    {
        Ok(self)
    }
}

/// How a model ranks retrieval candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankBy {
    /// Similarity of the unimodal embeddings (a contrastive space).
    Embeddings,
    /// The matching head's score of every (text, image) pair (UNITER):
    /// `N²` fused passes.
    Matching,
    /// Neither was trained: retrieval would measure chance.
    Nothing,
}

/// A model that embeds text and images into one space (retrieval).
pub trait RetrievalModel<B: Backend> {
    /// `[N, T]` ids with `[N, T]` padding → unit embeddings `[N, D]`.
    fn embed_text(&self, ids: Tensor<B, 2, Int>, padding: Tensor<B, 2, Bool>) -> Tensor<B, 2>;

    /// Pixels or regions of `N` images → unit embeddings `[N, D]`.
    fn embed_image(&self, visual: &VisualBatch<B>) -> Tensor<B, 2>;

    /// Which scores rank candidates; models with a shared space use the embeddings.
    fn rank_by(&self) -> RankBy {
        RankBy::Embeddings
    }

    /// Matching scores `[N]` of the row-aligned pairs (text `i`, image `i`),
    /// for [`RankBy::Matching`].
    fn match_scores(
        &self,
        _ids: Tensor<B, 2, Int>,
        _padding: Tensor<B, 2, Bool>,
        _visual: &VisualBatch<B>,
    ) -> Option<Tensor<B, 1>> {
        None
    }
}
