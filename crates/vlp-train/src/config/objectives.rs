//! `[objectives]`: which pre-training objectives a run trains, with what
//! weights, and whether they share every step (weighted sum) or one is
//! sampled per step (UNITER's task sampling).
//!
//! A weight left out takes the architecture's default: MLM, ITM and ITC at
//! 1 where the architecture has them. The single-stream model offers every
//! objective of `vlp_objectives::UniterPretrainer`; the others train their
//! fixed set, whose weights (MLM, ITM, ITC) can be changed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vlp_objectives::{MixStrategy, Objective, ObjectiveMix, UniterObjectives};

use super::{Architecture, VisualKind};
use crate::error::ConfigError;

/// What an objective needs of the visual features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Any visual features.
    Nothing,
    /// Detector regions (`model.visual = "regions"`): masked region modelling.
    Regions,
    /// Image patches (`model.visual = "patches"`): masked patch prediction.
    Patches,
}

/// One objective the runner trains: the one place that names it, gives its
/// default weight, says what it needs and registers it with the
/// single-stream pre-trainer. Adding an objective adds a line to
/// [`OBJECTIVES`] (and its implementation and test in vlp-objectives).
#[derive(Debug, Clone, Copy)]
pub struct ObjectiveSpec {
    /// Its key in `[objectives]` and the prefix of its metrics
    /// (`mlm` → `mlm_loss`, `mlm_accuracy`).
    pub key: &'static str,
    /// The objective in task mixes.
    pub objective: Objective,
    /// Weight of the single-stream architecture when the key is left out.
    pub default_weight: f64,
    /// What it needs of the visual features.
    pub needs: Requirement,
    /// Its weight in a [`UniterObjectives`].
    pub weight_of: fn(&UniterObjectives) -> f64,
    /// A [`UniterObjectives`] with this objective at a weight.
    pub with_weight: fn(UniterObjectives, f64) -> UniterObjectives,
}

/// Every objective of `[objectives]`, in metrics order.
pub const OBJECTIVES: &[ObjectiveSpec] = &[
    ObjectiveSpec {
        key: "mlm",
        objective: Objective::Mlm,
        default_weight: 1.0,
        needs: Requirement::Nothing,
        weight_of: |o| o.mlm,
        with_weight: UniterObjectives::with_mlm,
    },
    ObjectiveSpec {
        key: "itm",
        objective: Objective::Itm,
        default_weight: 1.0,
        needs: Requirement::Nothing,
        weight_of: |o| o.itm,
        with_weight: UniterObjectives::with_itm,
    },
    ObjectiveSpec {
        key: "itc",
        objective: Objective::Itc,
        default_weight: 1.0,
        needs: Requirement::Nothing,
        weight_of: |o| o.itc,
        with_weight: UniterObjectives::with_itc,
    },
    ObjectiveSpec {
        key: "mrfr",
        objective: Objective::Mrfr,
        default_weight: 0.0,
        needs: Requirement::Regions,
        weight_of: |o| o.mrfr,
        with_weight: UniterObjectives::with_mrfr,
    },
    ObjectiveSpec {
        key: "mrc",
        objective: Objective::Mrc,
        default_weight: 0.0,
        needs: Requirement::Regions,
        weight_of: |o| o.mrc,
        with_weight: UniterObjectives::with_mrc,
    },
    ObjectiveSpec {
        key: "mrc_kl",
        objective: Objective::MrcKl,
        default_weight: 0.0,
        needs: Requirement::Regions,
        weight_of: |o| o.mrc_kl,
        with_weight: UniterObjectives::with_mrc_kl,
    },
    ObjectiveSpec {
        key: "mpp",
        objective: Objective::Mpp,
        default_weight: 0.0,
        needs: Requirement::Patches,
        weight_of: |o| o.mpp,
        with_weight: UniterObjectives::with_mpp,
    },
    ObjectiveSpec {
        key: "wra",
        objective: Objective::Wra,
        default_weight: 0.0,
        needs: Requirement::Nothing,
        weight_of: |o| o.wra,
        with_weight: UniterObjectives::with_wra,
    },
    ObjectiveSpec {
        key: "vqa",
        objective: Objective::Vqa,
        default_weight: 0.0,
        needs: Requirement::Nothing,
        weight_of: |o| o.vqa,
        with_weight: UniterObjectives::with_vqa,
    },
];

/// `[objectives]`: a weight per objective key of [`OBJECTIVES`], how they
/// share a step, and ITM's negatives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ObjectivesConfig {
    /// "weighted_sum" (default): every objective each step, losses summed
    /// with the weights; "sample": one objective per step, drawn with
    /// probability ∝ weight (UNITER: itm 2, mlm 2, mrfr 1, mrc_kl 1).
    /// Sampling is offered by the single_stream architecture.
    pub strategy: Option<MixStrategy>,
    /// ITM negatives sampled from the ITC similarities (ALBEF) instead of
    /// random ones (single_stream; needs itm > 0).
    pub itm_hard: Option<bool>,
    /// The weights given, by objective key (`mlm = 1`, `mrc_kl = 0.5`); a
    /// key left out takes the architecture's default.
    #[serde(flatten)]
    pub weights: BTreeMap<String, f64>,
}

/// MLM, ITM and ITC weights of an architecture with a fixed objective set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixedWeights {
    /// Masked language modelling.
    pub mlm: f64,
    /// Image-text matching.
    pub itm: f64,
    /// Image-text contrastive.
    pub itc: f64,
}

impl ObjectivesConfig {
    /// Exactly `objectives`, shared by `strategy`.
    pub fn of(objectives: &UniterObjectives, strategy: MixStrategy) -> Self {
        Self {
            strategy: Some(strategy),
            itm_hard: Some(objectives.itm_hard),
            weights: OBJECTIVES
                .iter()
                .map(|spec| (spec.key.to_string(), (spec.weight_of)(objectives)))
                .collect(),
        }
    }

    /// The weight given to `key`, if any.
    pub fn weight(&self, key: &str) -> Option<f64> {
        self.weights.get(key).copied()
    }

    /// Sets the weight of `key` (builder style).
    pub fn with(mut self, key: &str, weight: f64) -> Self {
        self.weights.insert(key.to_string(), weight);
        self
    }

    /// The single-stream model's objectives (defaults: MLM, ITM, ITC at 1).
    pub fn uniter(&self) -> UniterObjectives {
        OBJECTIVES.iter().fold(
            UniterObjectives::new().with_itm_hard(self.itm_hard.unwrap_or(false)),
            |objectives, spec| {
                (spec.with_weight)(
                    objectives,
                    self.weight(spec.key).unwrap_or(spec.default_weight),
                )
            },
        )
    }

    /// The weights of an architecture that trains MLM, ITM and ITC.
    pub fn fixed(&self) -> FixedWeights {
        FixedWeights {
            mlm: self.weight("mlm").unwrap_or(1.0),
            itm: self.weight("itm").unwrap_or(1.0),
            itc: self.weight("itc").unwrap_or(1.0),
        }
    }

    /// The per-step task mix when `strategy = "sample"`.
    pub fn sampled_mix(&self) -> Option<ObjectiveMix> {
        (self.strategy == Some(MixStrategy::Sample)).then(|| {
            self.uniter()
                .mix(MixStrategy::Sample)
                .expect("validated: a positive weight")
        })
    }

    /// Checks the choice against the architecture and the visual features;
    /// errors name the key.
    pub fn validate(
        &self,
        architecture: &Architecture,
        visual: VisualKind,
    ) -> Result<(), ConfigError> {
        for (key, &weight) in &self.weights {
            let invalid =
                |message: String| ConfigError::invalid(format!("objectives.{key}"), message);
            if !OBJECTIVES.iter().any(|spec| spec.key == key) {
                let known: Vec<_> = OBJECTIVES.iter().map(|spec| spec.key).collect();
                return Err(invalid(format!(
                    "objectives.{key} is not an objective (known: strategy, itm_hard, {})",
                    known.join(", ")
                )));
            }
            if !(weight.is_finite() && weight >= 0.0) {
                return Err(invalid(format!(
                    "objectives.{key} must be finite and >= 0, got {weight}"
                )));
            }
        }
        let kind = architecture.name();
        let offered = architecture.offered_objectives();
        if let Some(offered) = offered {
            let refused = self
                .weights
                .keys()
                .map(String::as_str)
                .find(|key| !offered.contains(key))
                .or(self.itm_hard.map(|_| "itm_hard"))
                .or(self.strategy.map(|_| "strategy"));
            if let Some(key) = refused {
                let trains = if offered.is_empty() {
                    "PrefixLM only".to_string()
                } else {
                    offered.join(", ")
                };
                return Err(ConfigError::invalid(
                    format!("objectives.{key}"),
                    format!(
                        "objectives.{key} is not available for architecture {kind} (it trains {trains}; \
                         the single_stream architecture offers every objective)"
                    ),
                ));
            }
            let fixed = self.fixed();
            if offered.len() == 3 && fixed.mlm + fixed.itm + fixed.itc <= 0.0 {
                return Err(ConfigError::invalid(
                    "objectives",
                    "objectives: every weight is 0",
                ));
            }
            return Ok(());
        }
        let objectives = self.uniter();
        if objectives.mix(MixStrategy::WeightedSum).is_err() {
            return Err(ConfigError::invalid(
                "objectives",
                "objectives: every weight is 0",
            ));
        }
        if objectives.itm_hard && objectives.itm <= 0.0 {
            return Err(ConfigError::invalid(
                "objectives.itm_hard",
                "objectives.itm_hard needs objectives.itm > 0",
            ));
        }
        for spec in OBJECTIVES {
            let (needed, name) = match spec.needs {
                Requirement::Nothing => continue,
                Requirement::Regions => (VisualKind::Regions, "detector regions"),
                Requirement::Patches => (VisualKind::Patches, "image patches"),
            };
            if (spec.weight_of)(&objectives) > 0.0 && visual != needed {
                let key = spec.key;
                return Err(ConfigError::invalid(
                    format!("objectives.{key}"),
                    format!(
                        "objectives.{key} needs {name} (model.visual = \"{}\")",
                        needed.name()
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ObjectivesConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_train_mlm_itm_itc_summed() {
        let config = ObjectivesConfig::default();
        assert_eq!(
            config.uniter(),
            UniterObjectives::new()
                .with_mlm(1.0)
                .with_itm(1.0)
                .with_itc(1.0)
        );
        assert_eq!(config.sampled_mix(), None);
    }

    #[test]
    fn uniter_sampling_mix_reads_back() {
        let config =
            parse("strategy = \"sample\"\nmlm = 2\nitm = 2\nitc = 0\nmrfr = 1\nmrc_kl = 1\n");
        assert_eq!(
            config.validate(&Architecture::SingleStream {}, VisualKind::Regions),
            Ok(())
        );
        let mix = config.sampled_mix().unwrap();
        assert_eq!(mix.strategy, MixStrategy::Sample);
        let expected = ObjectiveMix::uniter();
        for entry in &expected.objectives {
            assert!(
                (mix.probability(entry.objective) - expected.probability(entry.objective)).abs()
                    < 1e-12
            );
        }
        let err = parse("mlmm = 1")
            .validate(&Architecture::SingleStream {}, VisualKind::Regions)
            .unwrap_err()
            .to_string();
        assert!(err.contains("objectives.mlmm is not an objective"), "{err}");
    }

    #[test]
    fn invalid_choices_name_the_key() {
        let single = Architecture::SingleStream {};
        let err = parse("mrc = 1")
            .validate(&single, VisualKind::Patches)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("objectives.mrc needs detector regions"),
            "{err}"
        );
        let err = parse("mpp = 1")
            .validate(&single, VisualKind::Regions)
            .unwrap_err()
            .to_string();
        assert!(err.contains("objectives.mpp needs image patches"), "{err}");
        assert_eq!(
            parse("mpp = 1").validate(&single, VisualKind::Patches),
            Ok(())
        );
        assert_eq!(parse("mpp = 0.5").uniter().mpp, 0.5);
        assert_eq!(parse("mpp = 0.5").weight("mpp"), Some(0.5));
        let err = parse("mlm = 0\nitm = 0\nitc = 0")
            .validate(&single, VisualKind::Patches)
            .unwrap_err()
            .to_string();
        assert!(err.contains("every weight is 0"), "{err}");
        let err = parse("itm = -1")
            .validate(&single, VisualKind::Patches)
            .unwrap_err()
            .to_string();
        assert!(err.contains("objectives.itm must be finite"), "{err}");
        let err = parse("itm = 0\nitm_hard = true")
            .validate(&single, VisualKind::Patches)
            .unwrap_err()
            .to_string();
        assert!(err.contains("itm_hard needs"), "{err}");
        let fusion: Architecture = toml::from_str(
            "kind = \"fusion\"\ntext_layers = 1\nfusion_layers = 1\nimage_layers = 1",
        )
        .unwrap();
        let err = parse("wra = 1")
            .validate(&fusion, VisualKind::Patches)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("objectives.wra is not available for architecture fusion"),
            "{err}"
        );
        let err = parse("strategy = \"sample\"")
            .validate(&fusion, VisualKind::Patches)
            .unwrap_err()
            .to_string();
        assert!(err.contains("objectives.strategy"), "{err}");
        assert_eq!(
            parse("itm = 0.5").validate(&fusion, VisualKind::Patches),
            Ok(())
        );
        assert_eq!(parse("itm = 0.5").fixed().itm, 0.5);
        let err = parse("mlm = 1")
            .validate(&Architecture::PrefixLm {}, VisualKind::Patches)
            .unwrap_err()
            .to_string();
        assert!(err.contains("PrefixLM only"), "{err}");
    }
}
