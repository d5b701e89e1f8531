//! The loop of the learning tests and the baselines they beat: a few
//! hundred AdamW steps on a fixed set of synthetic scenes or on fresh ones
//! (masks and negatives drawn anew every step, from a generator seeded
//! with the step), and what a model that ignores its input would score on
//! the same batches.

use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vlp_data::synthetic::Split;
use vlp_data::{HostPretrainBatch, PretrainBatcher};
use vlp_objectives::{PretrainOutput, Pretrainer};

/// Every objective's loss and metric, step by step.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// The objectives' names, in the order every step reports them.
    pub names: Vec<&'static str>,
    /// `losses[step][k]`: the loss of objective `names[k]`.
    pub losses: Vec<Vec<f32>>,
    /// `metrics[step][k]`: the metric of objective `names[k]`.
    pub metrics: Vec<Vec<f32>>,
}

impl History {
    /// Appends one step's losses and metrics; every step has the same objectives.
    pub fn push<B: Backend>(&mut self, output: &PretrainOutput<B>) {
        let names: Vec<&'static str> = output.objectives.iter().map(|o| o.name).collect();
        if self.losses.is_empty() {
            self.names = names;
        } else {
            assert_eq!(names, self.names, "every step has the same objectives");
        }
        let scalar = |t: &Tensor<B, 1>| t.clone().into_scalar().elem::<f32>();
        self.losses
            .push(output.objectives.iter().map(|o| scalar(&o.loss)).collect());
        self.metrics
            .push(output.objectives.iter().map(|o| o.metric_value()).collect());
    }

    /// Number of steps recorded.
    pub fn len(&self) -> usize {
        self.losses.len()
    }

    /// Whether no step was recorded.
    pub fn is_empty(&self) -> bool {
        self.losses.is_empty()
    }

    fn column(&self, name: &str) -> usize {
        self.names
            .iter()
            .position(|&n| n == name)
            .unwrap_or_else(|| panic!("no {name} objective in {:?}", self.names))
    }

    /// The losses of objective `name`, step by step.
    pub fn losses_of(&self, name: &str) -> Vec<f32> {
        let k = self.column(name);
        self.losses.iter().map(|row| row[k]).collect()
    }

    /// The metrics of objective `name`, step by step.
    pub fn metrics_of(&self, name: &str) -> Vec<f32> {
        let k = self.column(name);
        self.metrics.iter().map(|row| row[k]).collect()
    }

    /// Mean loss of `name` over the first `steps` steps.
    pub fn start_loss(&self, name: &str, steps: usize) -> f32 {
        mean(&self.losses_of(name)[..steps])
    }

    /// Mean loss of `name` over the last `steps` steps.
    pub fn end_loss(&self, name: &str, steps: usize) -> f32 {
        let losses = self.losses_of(name);
        mean(&losses[losses.len() - steps..])
    }

    /// Mean metric of `name` over the first `steps` steps.
    pub fn start_metric(&self, name: &str, steps: usize) -> f32 {
        mean(&self.metrics_of(name)[..steps])
    }

    /// Mean metric of `name` over the last `steps` steps.
    pub fn end_metric(&self, name: &str, steps: usize) -> f32 {
        let metrics = self.metrics_of(name);
        mean(&metrics[metrics.len() - steps..])
    }
}

/// The mean of `values`.
pub fn mean(values: &[f32]) -> f32 {
    values.iter().sum::<f32>() / values.len() as f32
}

/// Which scenes a training step sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenes {
    /// Scenes `0..n` of the train split at every step (memorisation).
    Fixed(usize),
    /// `n` random train scenes with distinct descriptions at every step
    /// (generalisation to held-out scenes).
    Random(usize),
}

/// The host batch of step `step`: its scenes, phrasings, masks and
/// negatives drawn from `ChaCha8Rng::seed_from_u64(step)`.
pub fn step_batch(batcher: &PretrainBatcher, scenes: Scenes, step: u64) -> HostPretrainBatch {
    let mut rng = ChaCha8Rng::seed_from_u64(step);
    let host = match scenes {
        Scenes::Fixed(n) => {
            let indices: Vec<usize> = (0..n).collect();
            batcher.batch(Split::Train, &indices, &mut rng)
        }
        Scenes::Random(n) => {
            let samples = batcher.draw(Split::Train, n, false, &mut rng);
            batcher.batch_of(samples, &mut rng)
        }
    };
    host.expect("the tiny batcher makes batches")
}

/// Trains `model` for `steps` AdamW steps at `learning_rate` on the
/// batches [`step_batch`] gives; calls [`Pretrainer::after_step`] after
/// every update, as the trainer does.
pub fn train<B, M>(
    mut model: M,
    batcher: &PretrainBatcher,
    scenes: Scenes,
    steps: u64,
    learning_rate: f64,
    device: &B::Device,
) -> (M, History)
where
    B: AutodiffBackend,
    M: Pretrainer<B> + AutodiffModule<B>,
{
    let mut optimizer = AdamWConfig::new().init::<B, M>();
    let mut history = History::default();
    for step in 0..steps {
        let host = step_batch(batcher, scenes, step);
        let output = model.forward(&host.to_device(device));
        history.push(&output);
        let grads = GradientsParams::from_grads(output.loss.backward(), &model);
        model = optimizer.step(learning_rate, model, grads);
        model = model
            .after_step(&output)
            .expect("the step's output fits the model");
    }
    (model, history)
}

/// How often each token is a masked MLM target in the batches of steps
/// `steps` (what a model that ignores its input can learn at best).
fn mlm_target_counts(
    batcher: &PretrainBatcher,
    scenes: Scenes,
    steps: std::ops::Range<u64>,
) -> Vec<usize> {
    let mut counts = std::collections::HashMap::new();
    for step in steps {
        for &(_, _, id) in &step_batch(batcher, scenes, step).mlm_targets {
            *counts.entry(id).or_insert(0usize) += 1;
        }
    }
    counts.into_values().collect()
}

/// The MLM accuracy of always predicting the most frequent target: the
/// share of the most common token among the masked targets of the
/// batches of steps `steps` (what a model that ignores its input scores).
pub fn mlm_majority_baseline(
    batcher: &PretrainBatcher,
    scenes: Scenes,
    steps: std::ops::Range<u64>,
) -> f32 {
    let counts = mlm_target_counts(batcher, scenes, steps);
    let total: usize = counts.iter().sum();
    counts.iter().copied().max().unwrap_or(0) as f32 / total.max(1) as f32
}

/// The entropy (nats) of the masked targets' token distribution in the
/// batches of steps `steps`: the MLM loss of the best model that ignores
/// its input (predicting every target with its frequency). Measured on the
/// very batches it is compared with, so it is, if anything, low.
pub fn mlm_unigram_entropy(
    batcher: &PretrainBatcher,
    scenes: Scenes,
    steps: std::ops::Range<u64>,
) -> f32 {
    let counts = mlm_target_counts(batcher, scenes, steps);
    let total = counts.iter().sum::<usize>() as f64;
    let entropy: f64 = counts
        .iter()
        .map(|&n| {
            let p = n as f64 / total;
            -p * p.ln()
        })
        .sum();
    entropy as f32
}

/// The ITM accuracy of always answering the commoner label: the share of
/// the majority label among the matching examples of the batches of steps
/// `steps` (chance, with the label prior of those very batches).
pub fn itm_majority_baseline(
    batcher: &PretrainBatcher,
    scenes: Scenes,
    steps: std::ops::Range<u64>,
) -> f32 {
    let (mut matches, mut total) = (0usize, 0usize);
    for step in steps {
        let labels = step_batch(batcher, scenes, step).itm_labels;
        matches += labels.iter().filter(|&&matched| matched).count();
        total += labels.len();
    }
    matches.max(total - matches) as f32 / total.max(1) as f32
}
