//! What a run logs: one [`MetricsRecord`] per `log_every` steps (a line of
//! `metrics.jsonl`), the means of every objective's loss and metric since
//! the previous record (survey §4's objectives, by their short names).

use std::collections::BTreeMap;

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use vlp_objectives::PretrainOutput;

use crate::error::{Result, TrainError};

/// One line of `metrics.jsonl`: means over the steps since the previous line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRecord {
    /// Steps done (1-based: the record after the first step has `step = 1`).
    pub step: usize,
    /// The total (weighted) loss.
    pub loss: f32,
    /// `<objective>_loss` and `<objective>_<metric name>` of every objective
    /// (`mlm_loss`, `itm_accuracy`, `mrfr_mse`, …).
    #[serde(flatten)]
    pub objectives: BTreeMap<String, f32>,
    /// The contrastive temperature, for models with ITC.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub temperature: Option<f32>,
    /// The learning rate of the last step.
    pub learning_rate: f64,
    /// Image-text pairs per second since the previous record.
    pub samples_per_second: f32,
    /// Seconds since training started.
    pub elapsed_seconds: f32,
}

impl MetricsRecord {
    /// The loss of objective `name`, if the run has it.
    pub fn objective_loss(&self, name: &str) -> Option<f32> {
        self.objectives.get(&format!("{name}_loss")).copied()
    }

    /// `loss 1.234 (mlm 2.000 itm 0.500) 300 samples/s`, for progress lines.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .objectives
            .iter()
            .filter_map(|(key, value)| {
                key.strip_suffix("_loss")
                    .map(|name| format!("{name} {value:.3}"))
            })
            .collect();
        format!(
            "loss {:.3} ({}) {:.0} samples/s",
            self.loss,
            parts.join(" "),
            self.samples_per_second
        )
    }
}

/// The named values a metrics line averages: the loss, and each objective's
/// loss and metric. Errors on a loss that is not finite.
pub fn step_values<B: Backend>(
    output: &PretrainOutput<B>,
    step: usize,
) -> Result<Vec<(String, f32)>> {
    let loss = output.loss.clone().into_scalar().elem::<f32>();
    if !loss.is_finite() {
        return Err(TrainError::NonFiniteLoss {
            step,
            loss,
            last_checkpoint: None,
        });
    }
    let mut values = vec![("loss".to_string(), loss)];
    for objective in &output.objectives {
        values.push((
            format!("{}_loss", objective.name),
            objective.loss.clone().into_scalar().elem::<f32>(),
        ));
        values.push((
            format!("{}_{}", objective.name, objective.metric_name),
            objective.metric,
        ));
    }
    Ok(values)
}

/// Running sums of named values between two metrics lines. Each value is
/// averaged over the steps that had it: with task sampling, an objective
/// appears only in the steps that drew it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Accumulator {
    sums: BTreeMap<String, (f32, usize)>,
}

impl Accumulator {
    /// Adds one step's values.
    pub fn add(&mut self, values: impl IntoIterator<Item = (String, f32)>) {
        for (name, value) in values {
            let entry = self.sums.entry(name).or_default();
            entry.0 += value;
            entry.1 += 1;
        }
    }

    /// The means since the last call, and a fresh start.
    pub fn take(&mut self) -> BTreeMap<String, f32> {
        std::mem::take(&mut self.sums)
            .into_iter()
            .map(|(name, (sum, count))| (name, sum / count.max(1) as f32))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_averaged_over_the_steps_that_had_them() {
        let mut accumulator = Accumulator::default();
        accumulator.add([("loss".to_string(), 1.0), ("mlm_loss".to_string(), 4.0)]);
        accumulator.add([("loss".to_string(), 3.0)]);
        let means = accumulator.take();
        assert_eq!(means["loss"], 2.0);
        assert_eq!(means["mlm_loss"], 4.0);
        assert!(accumulator.take().is_empty());
    }
}
