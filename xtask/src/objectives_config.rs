//! `[objectives]`: which pre-training objectives a run trains, with what
//! weights, and whether they share every step (weighted sum) or one is
//! sampled per step (UNITER's task sampling).
//!
//! A weight left out takes the architecture's default: MLM, ITM and ITC at
//! 1 where the architecture has them. The single-stream model offers every
//! objective of `vlp_objectives::UniterPretrainer`; the others train their
//! fixed set, whose weights (MLM, ITM, ITC) can be changed.

use serde::{Deserialize, Serialize};
use vlp_objectives::{MixStrategy, ObjectiveMix, UniterObjectives};

use crate::config::{Architecture, VisualKind};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectivesConfig {
    /// "weighted_sum" (default): every objective each step, losses summed
    /// with the weights; "sample": one objective per step, drawn with
    /// probability ∝ weight (UNITER: itm 2, mlm 2, mrfr 1, mrc_kl 1).
    /// Sampling is offered by the single_stream architecture.
    pub strategy: Option<MixStrategy>,
    /// Masked language modelling (default 1).
    pub mlm: Option<f64>,
    /// Image-text matching (default 1).
    pub itm: Option<f64>,
    /// ITM negatives sampled from the ITC similarities (ALBEF) instead of
    /// random ones (single_stream; needs itm > 0).
    pub itm_hard: Option<bool>,
    /// Image-text contrastive (default 1).
    pub itc: Option<f64>,
    /// Masked region feature regression (single_stream, regions).
    pub mrfr: Option<f64>,
    /// Masked region classification, hard labels (single_stream, regions).
    pub mrc: Option<f64>,
    /// Masked region classification, KL to the detector (single_stream, regions).
    pub mrc_kl: Option<f64>,
    /// Word-region alignment by optimal transport (single_stream).
    pub wra: Option<f64>,
    /// VQA on the world's questions (single_stream).
    pub vqa: Option<f64>,
}

/// MLM, ITM and ITC weights of an architecture with a fixed objective set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixedWeights {
    pub mlm: f64,
    pub itm: f64,
    pub itc: f64,
}

impl ObjectivesConfig {
    /// Exactly `objectives`, shared by `strategy`.
    pub fn of(objectives: &UniterObjectives, strategy: MixStrategy) -> Self {
        Self {
            strategy: Some(strategy),
            mlm: Some(objectives.mlm),
            itm: Some(objectives.itm),
            itm_hard: Some(objectives.itm_hard),
            itc: Some(objectives.itc),
            mrfr: Some(objectives.mrfr),
            mrc: Some(objectives.mrc),
            mrc_kl: Some(objectives.mrc_kl),
            wra: Some(objectives.wra),
            vqa: Some(objectives.vqa),
        }
    }

    fn weights(&self) -> [(&'static str, Option<f64>); 8] {
        [
            ("mlm", self.mlm),
            ("itm", self.itm),
            ("itc", self.itc),
            ("mrfr", self.mrfr),
            ("mrc", self.mrc),
            ("mrc_kl", self.mrc_kl),
            ("wra", self.wra),
            ("vqa", self.vqa),
        ]
    }

    /// The single-stream model's objectives (defaults: MLM, ITM, ITC at 1).
    pub fn uniter(&self) -> UniterObjectives {
        let or = |weight: Option<f64>, default: f64| weight.unwrap_or(default);
        UniterObjectives::new()
            .with_mlm(or(self.mlm, 1.0))
            .with_itm(or(self.itm, 1.0))
            .with_itc(or(self.itc, 1.0))
            .with_itm_hard(self.itm_hard.unwrap_or(false))
            .with_mrfr(or(self.mrfr, 0.0))
            .with_mrc(or(self.mrc, 0.0))
            .with_mrc_kl(or(self.mrc_kl, 0.0))
            .with_wra(or(self.wra, 0.0))
            .with_vqa(or(self.vqa, 0.0))
    }

    /// The weights of an architecture that trains MLM, ITM and ITC.
    pub fn fixed(&self) -> FixedWeights {
        FixedWeights {
            mlm: self.mlm.unwrap_or(1.0),
            itm: self.itm.unwrap_or(1.0),
            itc: self.itc.unwrap_or(1.0),
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
    pub fn validate(&self, architecture: &Architecture, visual: VisualKind) -> Result<(), String> {
        for (name, weight) in self.weights() {
            if let Some(weight) = weight {
                if !(weight.is_finite() && weight >= 0.0) {
                    return Err(format!(
                        "objectives.{name} must be finite and >= 0, got {weight}"
                    ));
                }
            }
        }
        let kind = architecture.name();
        // What each architecture trains besides the single stream's full set.
        let offered: &[&str] = match architecture {
            Architecture::SingleStream {} => &[],
            Architecture::DualStream { .. } | Architecture::Fusion { .. } => &["mlm", "itm", "itc"],
            Architecture::DualEncoder { .. } => &["itc"],
            Architecture::EncoderDecoder { .. } | Architecture::PrefixLm {} => &[],
        };
        if !matches!(architecture, Architecture::SingleStream {}) {
            let refused = self
                .weights()
                .into_iter()
                .find(|(name, weight)| weight.is_some() && !offered.contains(name))
                .map(|(name, _)| name)
                .or(self.itm_hard.map(|_| "itm_hard"))
                .or(self.strategy.map(|_| "strategy"));
            if let Some(name) = refused {
                let trains = if offered.is_empty() {
                    "PrefixLM only".to_string()
                } else {
                    offered.join(", ")
                };
                return Err(format!(
                    "objectives.{name} is not available for architecture {kind} (it trains {trains}; \
                     the single_stream architecture offers every objective)"
                ));
            }
            let fixed = self.fixed();
            if offered.len() == 3 && fixed.mlm + fixed.itm + fixed.itc <= 0.0 {
                return Err("objectives: every weight is 0".into());
            }
            return Ok(());
        }
        let objectives = self.uniter();
        if objectives.mix(MixStrategy::WeightedSum).is_err() {
            return Err("objectives: every weight is 0".into());
        }
        if objectives.itm_hard && objectives.itm <= 0.0 {
            return Err("objectives.itm_hard needs objectives.itm > 0".into());
        }
        if objectives.masks_regions() && visual != VisualKind::Regions {
            let name = [
                ("mrfr", objectives.mrfr),
                ("mrc", objectives.mrc),
                ("mrc_kl", objectives.mrc_kl),
            ]
            .into_iter()
            .find(|(_, weight)| *weight > 0.0)
            .map_or("mrfr", |(name, _)| name);
            return Err(format!(
                "objectives.{name} needs detector regions (model.visual = \"regions\")"
            ));
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
        assert!(toml::from_str::<ObjectivesConfig>("mlmm = 1").is_err());
    }

    #[test]
    fn invalid_choices_name_the_key() {
        let single = Architecture::SingleStream {};
        let err = parse("mrc = 1")
            .validate(&single, VisualKind::Patches)
            .unwrap_err();
        assert!(
            err.contains("objectives.mrc needs detector regions"),
            "{err}"
        );
        let err = parse("mlm = 0\nitm = 0\nitc = 0")
            .validate(&single, VisualKind::Patches)
            .unwrap_err();
        assert!(err.contains("every weight is 0"), "{err}");
        let err = parse("itm = -1")
            .validate(&single, VisualKind::Patches)
            .unwrap_err();
        assert!(err.contains("objectives.itm must be finite"), "{err}");
        let err = parse("itm = 0\nitm_hard = true")
            .validate(&single, VisualKind::Patches)
            .unwrap_err();
        assert!(err.contains("itm_hard needs"), "{err}");
        let fusion: Architecture = toml::from_str(
            "kind = \"fusion\"\ntext_layers = 1\nfusion_layers = 1\nimage_layers = 1",
        )
        .unwrap();
        let err = parse("wra = 1")
            .validate(&fusion, VisualKind::Patches)
            .unwrap_err();
        assert!(
            err.contains("objectives.wra is not available for architecture fusion"),
            "{err}"
        );
        let err = parse("strategy = \"sample\"")
            .validate(&fusion, VisualKind::Patches)
            .unwrap_err();
        assert!(err.contains("objectives.strategy"), "{err}");
        assert_eq!(
            parse("itm = 0.5").validate(&fusion, VisualKind::Patches),
            Ok(())
        );
        assert_eq!(parse("itm = 0.5").fixed().itm, 0.5);
        let err = parse("mlm = 1")
            .validate(&Architecture::PrefixLm {}, VisualKind::Patches)
            .unwrap_err();
        assert!(err.contains("PrefixLM only"), "{err}");
    }
}
