//! What a run logs: one [`MetricsRecord`] per `log_every` steps (a line of
//! `metrics.jsonl`), the means of every objective's loss and metric since
//! the previous record (survey §4's objectives, by their short names).

use std::collections::BTreeMap;

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
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

/// One step's named values (the loss, each objective's loss and metric),
/// one list per micro-batch, still on the device.
pub type StepValues<B> = Vec<Vec<(String, Tensor<B, 1>)>>;

/// The named values a metrics line averages: the loss, and each objective's
/// loss and metric, detached from the graph and left on the device (read by
/// [`PendingValues::read_into`]).
pub fn step_values<B: AutodiffBackend>(
    output: &PretrainOutput<B>,
) -> Vec<(String, Tensor<B::InnerBackend, 1>)> {
    let mut values = vec![("loss".to_string(), output.loss.clone().inner())];
    for objective in &output.objectives {
        values.push((
            format!("{}_loss", objective.name),
            objective.loss.clone().inner(),
        ));
        values.push((
            format!("{}_{}", objective.name, objective.metric_name),
            objective.metric.clone().inner(),
        ));
    }
    values
}

/// The values of the steps since the last read, on the device: a step reads
/// nothing back, so a GPU runs ahead of the host between two metrics lines
/// (or checkpoints), and then one read brings every value of those steps.
pub struct PendingValues<B: Backend> {
    steps: Vec<(usize, StepValues<B>)>,
}

impl<B: Backend> Default for PendingValues<B> {
    fn default() -> Self {
        Self { steps: Vec::new() }
    }
}

impl<B: Backend> PendingValues<B> {
    /// Keeps the values of (0-based) step `step`.
    pub fn push(&mut self, step: usize, values: StepValues<B>) {
        self.steps.push((step, values));
    }

    /// Reads every pending value back in one transfer and adds them to
    /// `accumulator`, step by step in order (the sums of a run that read
    /// each step at once). Errors on the first step whose loss is not
    /// finite, naming it; the values of the steps before it are added.
    pub fn read_into(&mut self, accumulator: &mut Accumulator) -> Result<()> {
        let steps = std::mem::take(&mut self.steps);
        let tensors: Vec<Tensor<B, 1>> = steps
            .iter()
            .flat_map(|(_, parts)| parts.iter().flatten())
            .map(|(_, value)| value.clone().reshape([1]))
            .collect();
        if tensors.is_empty() {
            return Ok(());
        }
        let read: Vec<f32> = Tensor::cat(tensors, 0)
            .into_data()
            .convert::<f32>()
            .to_vec()
            .expect("converted to f32");
        let mut read = read.into_iter();
        for (step, parts) in steps {
            for part in parts {
                let named: Vec<(String, f32)> = part
                    .into_iter()
                    .map(|(name, _)| (name, read.next().unwrap_or(f32::NAN)))
                    .collect();
                if let Some(&(_, loss)) = named
                    .iter()
                    .find(|(name, value)| name == "loss" && !value.is_finite())
                {
                    return Err(TrainError::NonFiniteLoss {
                        step,
                        loss,
                        last_checkpoint: None,
                    });
                }
                accumulator.add(named);
            }
        }
        Ok(())
    }
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
