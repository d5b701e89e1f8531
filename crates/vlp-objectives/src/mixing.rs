//! Task mixing: which objectives a training step optimises. UNITER samples
//! one objective per step by ratio (itm : mlm : mrfr : mrc-kl = 2 : 2 : 1 : 1),
//! HERO likewise (mlm : mfm-nce : fom : vsm = 2 : 2 : 1 : 2); the alternative
//! is every objective each step, their losses summed with weights. Pure
//! logic, serialisable into a run's configuration.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{value_error, Result};

/// The objectives of survey §4, by the names used in configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// Masked language modelling.
    Mlm,
    /// PrefixLM (SimVLM).
    PrefixLm,
    /// Masked feature regression (UNITER MRFR).
    Mrfr,
    /// Masked feature classification, hard labels (UNITER MRC).
    Mrc,
    /// Masked feature classification, soft labels (UNITER MRC-kl).
    MrcKl,
    /// Masked patch prediction (ViLT).
    Mpp,
    /// Image-text matching.
    Itm,
    /// Image-text contrastive.
    Itc,
    /// Word-region alignment (UNITER).
    Wra,
    /// Frame order modelling (HERO).
    Fom,
    /// Visual question answering.
    Vqa,
    /// Captioning.
    Caption,
}

/// How the objectives of a mix share a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MixStrategy {
    /// One objective per step, drawn with probability ∝ its weight.
    Sample,
    /// Every objective each step; the loss is `Σ weight · loss`.
    WeightedSum,
}

/// One objective and its ratio (sampling) or loss weight (weighted sum).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WeightedObjective {
    /// The objective.
    pub objective: Objective,
    /// Its sampling ratio or loss weight (> 0).
    pub weight: f64,
}

/// A task mix: a strategy and the objectives with their weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveMix {
    /// Sampled one per step, or summed.
    pub strategy: MixStrategy,
    /// The objectives with their weights.
    pub objectives: Vec<WeightedObjective>,
}

impl ObjectiveMix {
    /// A mix after checking it: at least one objective, each named once,
    /// weights finite and `≥ 0` with a positive sum.
    pub fn new(strategy: MixStrategy, objectives: Vec<WeightedObjective>) -> Result<Self> {
        let mix = Self {
            strategy,
            objectives,
        };
        mix.validate()?;
        Ok(mix)
    }

    /// UNITER's pre-training mix: sample itm : mlm : mrfr : mrc-kl = 2 : 2 : 1 : 1.
    pub fn uniter() -> Self {
        let entry = |objective, weight| WeightedObjective { objective, weight };
        Self {
            strategy: MixStrategy::Sample,
            objectives: vec![
                entry(Objective::Itm, 2.0),
                entry(Objective::Mlm, 2.0),
                entry(Objective::Mrfr, 1.0),
                entry(Objective::MrcKl, 1.0),
            ],
        }
    }

    /// Checks a mix read from a configuration (see [`ObjectiveMix::new`]).
    pub fn validate(&self) -> Result<()> {
        if self.objectives.is_empty() {
            return Err(value_error("objective mix", "names no objective"));
        }
        for (i, entry) in self.objectives.iter().enumerate() {
            if !(entry.weight.is_finite() && entry.weight >= 0.0) {
                return Err(value_error(
                    "objective mix",
                    format!(
                        "weight of {:?} must be finite and >= 0, got {}",
                        entry.objective, entry.weight
                    ),
                ));
            }
            if self.objectives[..i]
                .iter()
                .any(|e| e.objective == entry.objective)
            {
                return Err(value_error(
                    "objective mix",
                    format!("{:?} is listed twice", entry.objective),
                ));
            }
        }
        if self.total_weight() <= 0.0 {
            return Err(value_error("objective mix", "weights sum to 0"));
        }
        Ok(())
    }

    fn total_weight(&self) -> f64 {
        self.objectives.iter().map(|e| e.weight).sum()
    }

    /// Probability that a sampled step runs `objective` (its share of the
    /// total weight; 0 when absent).
    pub fn probability(&self, objective: Objective) -> f64 {
        self.objectives
            .iter()
            .find(|e| e.objective == objective)
            .map_or(0.0, |e| e.weight / self.total_weight())
    }

    /// One objective drawn with probability ∝ weight (inverse CDF of one
    /// uniform from `rng`), whatever the strategy.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Objective {
        let threshold = rng.random::<f64>() * self.total_weight();
        let mut cumulative = 0.0;
        let mut chosen = self.objectives[0].objective;
        for entry in &self.objectives {
            if entry.weight > 0.0 {
                chosen = entry.objective;
                cumulative += entry.weight;
                if threshold < cumulative {
                    break;
                }
            }
        }
        chosen
    }

    /// The objectives of one step with their loss multipliers: one drawn
    /// objective at weight 1 (`Sample`), or every objective with a positive
    /// weight at that weight (`WeightedSum`).
    pub fn step<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<WeightedObjective> {
        match self.strategy {
            MixStrategy::Sample => vec![WeightedObjective {
                objective: self.sample(rng),
                weight: 1.0,
            }],
            MixStrategy::WeightedSum => self
                .objectives
                .iter()
                .copied()
                .filter(|e| e.weight > 0.0)
                .collect(),
        }
    }
}

/// Each objective with its probability: `Mlm 50%, Itm 50%`.
impl std::fmt::Display for ObjectiveMix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, entry) in self.objectives.iter().enumerate() {
            let separator = if i == 0 { "" } else { ", " };
            let percent = 100.0 * self.probability(entry.objective);
            write!(f, "{separator}{:?} {percent:.0}%", entry.objective)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn sampled_frequencies_follow_the_uniter_ratio() {
        let mix = ObjectiveMix::uniter();
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let draws = 60_000;
        let mut counts = std::collections::HashMap::new();
        for _ in 0..draws {
            let step = mix.step(&mut rng);
            assert_eq!(step.len(), 1);
            assert_eq!(step[0].weight, 1.0);
            *counts.entry(step[0].objective).or_insert(0usize) += 1;
        }
        for (objective, expected) in [
            (Objective::Itm, 1.0 / 3.0),
            (Objective::Mlm, 1.0 / 3.0),
            (Objective::Mrfr, 1.0 / 6.0),
            (Objective::MrcKl, 1.0 / 6.0),
        ] {
            assert!((mix.probability(objective) - expected).abs() < 1e-12);
            let frequency = counts[&objective] as f64 / draws as f64;
            // 5 standard deviations of a binomial proportion.
            let sigma = (expected * (1.0 - expected) / draws as f64).sqrt();
            assert!(
                (frequency - expected).abs() < 5.0 * sigma,
                "{objective:?}: {frequency} vs {expected}"
            );
        }
        assert_eq!(counts.len(), 4);
    }

    #[test]
    fn zero_weights_are_never_drawn_and_weighted_sum_runs_all() {
        let entry = |objective, weight| WeightedObjective { objective, weight };
        let mix = ObjectiveMix::new(
            MixStrategy::WeightedSum,
            vec![
                entry(Objective::Mlm, 1.0),
                entry(Objective::Fom, 0.0),
                entry(Objective::Itc, 0.5),
            ],
        )
        .unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..2_000 {
            assert_ne!(mix.sample(&mut rng), Objective::Fom);
        }
        assert_eq!(
            mix.step(&mut rng),
            vec![entry(Objective::Mlm, 1.0), entry(Objective::Itc, 0.5)]
        );
        // Each weight over the total 1.5.
        assert_eq!(mix.to_string(), "Mlm 67%, Fom 0%, Itc 33%");
    }

    #[test]
    fn invalid_mixes_are_errors_and_names_round_trip() {
        let entry = |objective, weight| WeightedObjective { objective, weight };
        assert!(ObjectiveMix::new(MixStrategy::Sample, vec![]).is_err());
        assert!(ObjectiveMix::new(MixStrategy::Sample, vec![entry(Objective::Mlm, 0.0)]).is_err());
        assert!(ObjectiveMix::new(MixStrategy::Sample, vec![entry(Objective::Mlm, -1.0)]).is_err());
        assert!(ObjectiveMix::new(
            MixStrategy::Sample,
            vec![entry(Objective::Mlm, 1.0), entry(Objective::Mlm, 1.0)]
        )
        .is_err());
        let json = serde_json::to_string(&ObjectiveMix::uniter()).unwrap();
        assert!(
            json.contains("\"mrc-kl\"") && json.contains("\"sample\""),
            "{json}"
        );
        let back: ObjectiveMix = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ObjectiveMix::uniter());
    }
}
