//! Held-out objective metrics: a pre-trainer's own losses and metrics on a
//! few test-split batches, without gradients, so that "the loss falls and
//! the metric rises" is measured on data the model never trained on, at
//! initialisation and after training.

use std::collections::BTreeMap;

use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use vlp_data::PretrainBatcher;
use vlp_objectives::Pretrainer;

use super::EvalSettings;
use crate::error::Result;

/// One objective's means over the held-out batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveScore {
    /// Mean loss.
    pub loss: f32,
    /// Mean metric.
    pub metric: f32,
    /// What `metric` measures ("accuracy", "mse", "gap", "vqa_score").
    pub metric_name: String,
}

/// Scores by objective name.
pub type HeldOutObjectives = BTreeMap<String, ObjectiveScore>;

/// Means of every objective's loss and metric over `settings.objective_batches`
/// held-out batches of `settings.batch_size` pairs. The batches depend only on `settings.seed`, so two
/// calls (before and after training) score the same examples. Run it on a
/// model without autodiff (`model.valid()`): no graph is kept and dropout is off.
pub fn heldout_objectives<B: Backend, M: Pretrainer<B>>(
    model: &M,
    batcher: &PretrainBatcher,
    settings: &EvalSettings,
    device: &B::Device,
) -> Result<HeldOutObjectives> {
    let (batches, batch_size, seed) = (
        settings.objective_batches,
        settings.batch_size,
        settings.seed,
    );
    let mut sums: BTreeMap<String, (f32, f32, &'static str)> = BTreeMap::new();
    for batch in 0..batches {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (batch as u64 + 1) << 32);
        let host = batcher.held_out_batch(batch_size, &mut rng)?;
        let output = model.forward(&host.to_device(device));
        for objective in output.objectives {
            let entry =
                sums.entry(objective.name.to_string())
                    .or_insert((0.0, 0.0, objective.metric_name));
            entry.1 += objective.metric_value();
            entry.0 += objective.loss.into_scalar().elem::<f32>();
        }
    }
    let n = batches.max(1) as f32;
    Ok(sums
        .into_iter()
        .map(|(name, (loss, metric, metric_name))| {
            (
                name,
                ObjectiveScore {
                    loss: loss / n,
                    metric: metric / n,
                    metric_name: metric_name.to_string(),
                },
            )
        })
        .collect())
}

/// A small table for the terminal.
pub fn table(objectives: &HeldOutObjectives) -> String {
    let mut lines = vec![format!(
        "held-out objectives\n{:<10} {:>8} {:>10} {:>8}",
        "", "loss", "metric", "value"
    )];
    for (name, score) in objectives {
        lines.push(format!(
            "{name:<10} {:>8.4} {:>10} {:>8.4}",
            score.loss, score.metric_name, score.metric
        ));
    }
    lines.join("\n")
}
