//! Held-out evaluation of a pre-trained model (survey §6): retrieval for
//! models with a shared space or a matching head, captioning for generative
//! ones, and every objective's loss and metric on held-out batches. Runs on
//! a model without autodiff (`model.valid()`): no graph, no dropout.

mod captioning;
mod heldout;
mod retrieval;

use std::path::Path;

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use vlp_data::source::SkipReport;
use vlp_data::{PairSource, PretrainBatcher};
use vlp_objectives::{
    AlbefPretrainer, ClipPretrainer, DualStreamPretrainer, HeroPretrainer, Pretrainer,
    RetrievalModel, SimVlmPretrainer, UniterPretrainer,
};

pub(crate) use captioning::words;
pub use captioning::{captioning, CaptionExample, Captioning};
pub use heldout::{heldout_objectives, HeldOutObjectives, ObjectiveScore};
pub(crate) use retrieval::floats;
pub use retrieval::{
    ranks, recall, recall_with_captions, rerank_top_k, retrieval, retrieval_with_captions,
    text_to_image_examples, Recall, Retrieval, RetrievalExample, EXAMPLES, MATCHING_CANDIDATES,
};

use crate::checkpoint::write_atomic;
use crate::config::PretrainConfig;
use crate::error::Result;

/// How much held-out data to score, and how: the evaluation's own
/// settings, which [`EvalSettings::of`] reads off a run's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalSettings {
    /// Held-out scenes retrieved among (or captioned).
    pub candidates: usize,
    /// Each query's top candidates by similarity re-ranked by the matching
    /// head (0: none).
    pub rerank_top_k: usize,
    /// Captions per image retrieval ranks (1: each pair's own).
    pub captions_per_image: usize,
    /// Beam size of held-out captioning (1: greedy).
    pub caption_beam_size: usize,
    /// α of the beam's ranking `log_prob / len^α`.
    pub caption_length_penalty: f64,
    /// Longest caption in tokens.
    pub max_text_len: usize,
    /// Held-out batches each objective is scored on.
    pub objective_batches: usize,
    /// Pairs per held-out objective batch.
    pub batch_size: usize,
    /// Seed of the held-out batches' draws (the same batches before and after training).
    pub seed: u64,
}

impl EvalSettings {
    /// Held-out objective batches scored at the end of a run.
    pub const OBJECTIVE_BATCHES: usize = 4;

    /// The settings of a run's configuration.
    pub fn of(config: &PretrainConfig) -> Self {
        Self {
            candidates: config.eval_candidates,
            rerank_top_k: config.eval_rerank_top_k,
            captions_per_image: config.eval_captions_per_image,
            caption_beam_size: config.caption_beam_size,
            caption_length_penalty: config.caption_length_penalty,
            max_text_len: config.data.max_text_len,
            objective_batches: Self::OBJECTIVE_BATCHES,
            batch_size: config.batch_size,
            seed: config.seed,
        }
    }
}

/// The content of `eval.json`: what the model's architecture can be measured on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Image-text retrieval, for models with a shared space or a matching head.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<Retrieval>,
    /// Each objective's mean loss and metric on held-out batches
    /// ([`heldout_objectives`]), where measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objectives: Option<HeldOutObjectives>,
    /// Held-out captioning, for generative models.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub captioning: Option<Captioning>,
    /// What the run read of its datasets on disk (none for the synthetic world).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<SkipReport>,
}

/// What `batcher` read of its datasets on disk and skipped as corrupt;
/// `None` for the synthetic world.
pub fn data_report(batcher: &PretrainBatcher) -> Option<SkipReport> {
    match &batcher.source {
        PairSource::World(_) => None,
        PairSource::Datasets(datasets) => Some(datasets.budget.report()),
    }
}

/// A trained model measured on the held-out pairs of a batcher (the
/// synthetic world's test split or the held-out dataset,
/// [`PretrainBatcher::held_out_pairs`]), tokenized by its tokenizer.
pub trait Evaluate<B: Backend> {
    /// Retrieval or captioning, as the model's architecture allows.
    fn evaluate(
        &self,
        data: &PretrainBatcher,
        settings: &EvalSettings,
        device: &B::Device,
    ) -> Result<EvalReport>;

    /// The model as a [`RetrievalModel`] (its unimodal embeddings or
    /// matching head), for inference on a run folder
    /// ([`crate::inference`]); `None` for a generative model.
    fn retrieval_model(&self) -> Option<&dyn RetrievalModel<B>> {
        None
    }
}

/// Models with a shared text-image space (or a matching head) are measured
/// by retrieval.
macro_rules! evaluate_by_retrieval {
    ($($model:ident),*) => {$(
        impl<B: Backend> Evaluate<B> for $model<B> {
            fn evaluate(&self, data: &PretrainBatcher, settings: &EvalSettings, device: &B::Device) -> Result<EvalReport> {
                let retrieval = retrieval(self, data, settings, device)?;
                Ok(EvalReport { retrieval, ..EvalReport::default() })
            }

            fn retrieval_model(&self) -> Option<&dyn RetrievalModel<B>> {
                Some(self)
            }
        }
    )*};
}

evaluate_by_retrieval!(
    UniterPretrainer,
    DualStreamPretrainer,
    AlbefPretrainer,
    ClipPretrainer,
    HeroPretrainer
);

/// Generative models are measured by captioning.
impl<B: Backend> Evaluate<B> for SimVlmPretrainer<B> {
    fn evaluate(
        &self,
        data: &PretrainBatcher,
        settings: &EvalSettings,
        device: &B::Device,
    ) -> Result<EvalReport> {
        let captioning = Some(captioning(self, data, settings, device)?);
        Ok(EvalReport {
            captioning,
            ..EvalReport::default()
        })
    }
}

/// What `eval.json` holds for a trained model: retrieval or captioning, and
/// every objective's loss and metric on held-out batches of `batcher`.
pub fn evaluate<B: Backend, M: Evaluate<B> + Pretrainer<B>>(
    model: &M,
    batcher: &PretrainBatcher,
    settings: &EvalSettings,
    device: &B::Device,
) -> Result<EvalReport> {
    let mut report = model.evaluate(batcher, settings, device)?;
    report.objectives = Some(heldout_objectives(model, batcher, settings, device)?);
    Ok(report)
}

impl EvalReport {
    /// Writes the report as pretty JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("a report of plain values serialises");
        write_atomic(path, json.as_bytes())
    }

    /// A small table for the terminal.
    pub fn table(&self) -> String {
        let mut sections = Vec::new();
        if let Some(retrieval) = &self.retrieval {
            sections.push(retrieval.table());
        }
        if let Some(c) = &self.captioning {
            sections.push(format!(
                "held-out captioning of {} images (beam {}): BLEU-4 {:.3}, CIDEr-D {:.3}, exact match {:.3}",
                c.images, c.beam_size, c.bleu4, c.cider, c.exact_match
            ));
            for example in &c.examples {
                sections.push(format!(
                    "  {:?}  (reference: {:?})",
                    example.generated, example.reference
                ));
            }
        }
        if let Some(objectives) = &self.objectives {
            sections.push(heldout::table(objectives));
        }
        if let Some(data) = &self.data {
            let mut line = format!(
                "data: {} samples read, {} skipped as corrupt",
                data.read, data.skipped
            );
            if let Some(first) = data.reasons.first() {
                line.push_str(&format!(" (first: {first})"));
            }
            sections.push(line);
        }
        sections.join("\n")
    }
}
