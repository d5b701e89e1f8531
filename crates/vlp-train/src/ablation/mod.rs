//! Ablation of the pre-training objectives (survey §4, the comparisons of
//! UNITER's Table 7 and ViLT's §4.4): short pre-trainings of a tiny
//! UNITER-style region model on the synthetic world, one per objective set:
//! (a) each objective alone (WRA on the batch's ITM pairs; hard-negative ITM
//! with the ITC head that samples its negatives; ViLT's masked patch
//! prediction on the same model reading patches), scored on held-out batches
//! at initialisation and after training; (b) MLM+ITM, then MLM+ITM+X, scored
//! by held-out retrieval R@1; (c) UNITER's task sampling against the
//! weighted sum of the same objectives; captioning (§4.8) and frame order
//! modelling (§4.7, [`video`]). Retrieval ranks by the ITC embeddings when
//! the run has ITC and by the ITM head's score of every pair otherwise
//! (UNITER). `cargo xtask ablate` prints the table.

pub mod video;

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use serde::Serialize;
use vlp_data::TextTokenizer;
use vlp_objectives::{MixStrategy, Pretrainer, UniterObjectives};

use crate::config::{Architecture, ObjectivesConfig, VisualKind};
use crate::data::{batcher, tokenizer};
use crate::eval::{heldout_objectives, Captioning, HeldOutObjectives, Retrieval};
use crate::{
    with_model, ConfigError, EvalSettings, Evaluate, ModelTask, PretrainConfig, Result, Trainer,
};

/// What every run shares: its length, batch and seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AblationSettings {
    /// Training steps of each run (1500: the 17 runs take ~12 min on 2 CPU cores).
    pub steps: usize,
    /// Scenes per batch.
    pub batch_size: usize,
    /// Seed of every run's data, initialisation and sampling.
    pub seed: u64,
}

impl Default for AblationSettings {
    fn default() -> Self {
        Self {
            steps: 1500,
            batch_size: 24,
            seed: 0,
        }
    }
}

impl AblationSettings {
    /// Whether the settings can run: at least one step, and two scenes a
    /// batch (ITM's and ITC's negatives are the batch's other scenes).
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(ConfigError::invalid("steps", "steps must be at least 1").into());
        }
        if self.batch_size < 2 {
            return Err(ConfigError::invalid(
                "batch_size",
                format!(
                    "batch_size = {} is too small: ITM and ITC draw their negatives from the batch's other scenes, so it must be at least 2",
                    self.batch_size
                ),
            )
            .into());
        }
        Ok(())
    }
}

/// One run of the ablation: the shared setting with this model and these
/// objectives.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The run's name (`--runs`).
    pub name: String,
    /// What it trains.
    pub model: RunModel,
    /// Its objectives.
    pub objectives: ObjectivesConfig,
    /// The visual features, when not the shared setting's regions.
    pub visual: Option<VisualKind>,
}

/// What a run trains.
#[derive(Debug, Clone)]
pub enum RunModel {
    /// An image-text architecture of the runner, on the world's scenes.
    Image(Architecture),
    /// The video pre-trainer (FOM) on the world's clips ([`video`]).
    Video,
}

/// (a) each objective alone, (b) MLM+ITM and MLM+ITM+X, (c) UNITER's
/// itm:mlm:mrfr:mrc-kl = 2:2:1:1 sampled per step and summed.
pub fn runs() -> Vec<RunSpec> {
    let none = UniterObjectives::new;
    let named = |name: &str, objectives: &UniterObjectives, strategy| RunSpec {
        name: name.to_string(),
        model: RunModel::Image(Architecture::SingleStream {}),
        objectives: ObjectivesConfig::of(objectives, strategy),
        visual: None,
    };
    let run = |name: &str, objectives: UniterObjectives| {
        named(name, &objectives, MixStrategy::WeightedSum)
    };
    let uniter_mix = none()
        .with_itm(2.0)
        .with_mlm(2.0)
        .with_mrfr(1.0)
        .with_mrc_kl(1.0);
    let base = || none().with_mlm(1.0).with_itm(1.0);
    vec![
        run("mlm", none().with_mlm(1.0)),
        run("itm", none().with_itm(1.0)),
        run("itc", none().with_itc(1.0)),
        run(
            "itm_hard+itc",
            none().with_itm(1.0).with_itm_hard(true).with_itc(1.0),
        ),
        run("mrfr", none().with_mrfr(1.0)),
        run("mrc", none().with_mrc(1.0)),
        run("mrc_kl", none().with_mrc_kl(1.0)),
        run("wra", none().with_wra(1.0)),
        // ViLT's masked patch prediction reads pixels: the same model on patches.
        RunSpec {
            visual: Some(VisualKind::Patches),
            ..run("mpp", none().with_mpp(1.0))
        },
        run("vqa", none().with_vqa(1.0)),
        run("mlm+itm", base()),
        run("mlm+itm+itc", base().with_itc(1.0)),
        run("mlm+itm+mrfr", base().with_mrfr(1.0)),
        run("mlm+itm+mrc", base().with_mrc(1.0)),
        run("mlm+itm+mrc_kl", base().with_mrc_kl(1.0)),
        run("mlm+itm+wra", base().with_wra(1.0)),
        run("mlm+itm+vqa", base().with_vqa(1.0)),
        run("mlm+itm+itm_hard", base().with_itm_hard(true)),
        named("uniter-mix-sampled", &uniter_mix, MixStrategy::Sample),
        named("uniter-mix-summed", &uniter_mix, MixStrategy::WeightedSum),
        // Captioning as an objective (§4.8): SimVLM's PrefixLM through a
        // decoder, as deep as the single-stream runs' encoder.
        RunSpec {
            name: "caption".into(),
            model: RunModel::Image(Architecture::EncoderDecoder {
                encoder_layers: 2,
                decoder_layers: 2,
            }),
            objectives: ObjectivesConfig::default(),
            visual: None,
        },
        // Frame order modelling (§4.7) on the world's clips.
        RunSpec {
            name: "fom".into(),
            model: RunModel::Video,
            objectives: ObjectivesConfig::default(),
            visual: None,
        },
    ]
}

/// The runs of [`runs`] named in `names`, in that order (all of them when
/// `names` is empty).
///
/// # Errors
/// [`ConfigError::UnknownRun`] for a name no run has, listing the names.
pub fn runs_named(names: &[String]) -> Result<Vec<RunSpec>> {
    let all = runs();
    if names.is_empty() {
        return Ok(all);
    }
    let find = |name: &String| {
        let run = all.iter().find(|run| &run.name == name).cloned();
        run.ok_or_else(|| {
            let known: Vec<&str> = all.iter().map(|run| run.name.as_str()).collect();
            let (name, known) = (name.clone(), known.join(", "));
            ConfigError::UnknownRun { name, known }.into()
        })
    };
    names.iter().map(find).collect()
}

/// The results as a markdown table: a line per (run, objective) with the
/// held-out loss and metric at initialisation and after training and the
/// run's R@1, and a line per captioning run with its BLEU-4.
pub fn markdown_table(results: &[RunResult]) -> String {
    let mut lines = vec![
        "| run | objective | loss init | loss trained | metric | metric init | metric trained | R@1 t2i | R@1 i2t | ranked by |".to_string(),
        "|---|---|---|---|---|---|---|---|---|---|".to_string(),
    ];
    for result in results {
        let recall = match &result.retrieval {
            Some(r) => format!("{:.3} | {:.3} | {}", r.t2i.r1, r.i2t.r1, r.ranked_by),
            None => "– | – | –".to_string(),
        };
        for (name, trained) in &result.trained {
            let init = &result.init[name];
            lines.push(format!(
                "| {} | {name} | {:.4} | {:.4} | {} | {:.4} | {:.4} | {recall} |",
                result.name,
                init.loss,
                trained.loss,
                trained.metric_name,
                init.metric,
                trained.metric,
            ));
        }
        if let Some([init, trained]) = &result.captioning {
            lines.push(format!(
                "| {} | caption | – | – | bleu4 (beam {}) | {:.4} | {:.4} | {recall} |",
                result.name, trained.beam_size, init.bleu4, trained.bleu4,
            ));
        }
    }
    lines.join("\n")
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The run's name.
    pub name: String,
    /// Training steps.
    pub steps: usize,
    /// Training time.
    pub seconds: f32,
    /// Held-out objectives at initialisation.
    pub init: HeldOutObjectives,
    /// Held-out objectives after training.
    pub trained: HeldOutObjectives,
    /// `None` for runs with neither ITC nor ITM, and for captioning runs.
    pub retrieval: Option<Retrieval>,
    /// Held-out captioning at initialisation and after training (captioning runs).
    pub captioning: Option<[Captioning; 2]>,
}

impl RunResult {
    /// One line of what the run reached: retrieval R@1 when it ranks,
    /// BLEU-4 when it captions, otherwise each held-out metric from
    /// initialisation to the end (`fom accuracy 0.170 -> 0.712`).
    pub fn summary(&self) -> String {
        if let Some(r) = &self.retrieval {
            return format!(
                "R@1 t2i {:.3} i2t {:.3} ({})",
                r.t2i.r1, r.i2t.r1, r.ranked_by
            );
        }
        if let Some([_, trained]) = &self.captioning {
            return format!("BLEU-4 {:.3}", trained.bleu4);
        }
        let metrics: Vec<String> = self
            .trained
            .iter()
            .filter_map(|(name, trained)| {
                let init = self.init.get(name)?;
                Some(format!(
                    "held-out {name} {} {:.3} -> {:.3}",
                    trained.metric_name, init.metric, trained.metric
                ))
            })
            .collect();
        if metrics.is_empty() {
            "no held-out measure".into()
        } else {
            metrics.join(", ")
        }
    }
}

/// The runs' shared setting: the tiny region model and the synthetic world.
pub fn base_config(settings: &AblationSettings) -> PretrainConfig {
    let mut config = PretrainConfig {
        seed: settings.seed,
        steps: settings.steps,
        batch_size: settings.batch_size,
        learning_rate: 1e-3,
        warmup_steps: (settings.steps / 10).max(1),
        eval_candidates: 100,
        ..PretrainConfig::default()
    };
    config.data.fused_pairs = settings.batch_size;
    config.model.visual = VisualKind::Regions;
    config.model.norm_first = false;
    config.model.hidden_size = 64;
    config.model.num_layers = 2;
    config.model.num_heads = 4;
    config.model.intermediate_size = 128;
    config.model.itc_embed_dim = 64;
    config.model.dropout = 0.0;
    config
}

/// Runs `runs` in the shared setting, one after the other, and hands each
/// result to `finished` as it comes (the runner prints a line per run).
pub fn run_ablation<B: AutodiffBackend>(
    settings: &AblationSettings,
    runs: &[RunSpec],
    device: &B::Device,
    mut finished: impl FnMut(&RunResult),
) -> Result<Vec<RunResult>> {
    settings.validate()?;
    let base = base_config(settings);
    let tokenizer = tokenizer(&base, None)?;
    let mut results = Vec::new();
    for spec in runs {
        let result = match &spec.model {
            RunModel::Video => video::fom_run::<B>(settings, device)?,
            RunModel::Image(architecture) => {
                let mut config = PretrainConfig {
                    objectives: spec.objectives.clone(),
                    ..base.clone()
                };
                config.model.architecture = architecture.clone();
                if let Some(visual) = spec.visual {
                    config.model.visual = visual;
                }
                config.validate().map_err(|err| {
                    ConfigError::invalid("runs", format!("run {}: {err}", spec.name))
                })?;
                with_model::<B, _>(
                    &config,
                    tokenizer.vocab_size(),
                    tokenizer.special(),
                    None,
                    device,
                    AblationRun {
                        name: &spec.name,
                        config: &config,
                        tokenizer: &tokenizer,
                        device: device.clone(),
                    },
                )??
            }
        };
        finished(&result);
        results.push(result);
    }
    Ok(results)
}

/// One run: held-out objectives at initialisation, training, held-out
/// objectives and retrieval (or captioning) after training.
struct AblationRun<'a, B: AutodiffBackend> {
    name: &'a str,
    config: &'a PretrainConfig,
    tokenizer: &'a TextTokenizer,
    device: B::Device,
}

impl<B: AutodiffBackend> ModelTask<B> for AblationRun<'_, B> {
    type Output = Result<RunResult>;

    fn run<M>(self, mut model: M) -> Self::Output
    where
        M: AutodiffModule<B> + Pretrainer<B> + 'static,
        M::InnerModule: Evaluate<B::InnerBackend> + Pretrainer<B::InnerBackend>,
    {
        let (config, device) = (self.config, &self.device);
        let batcher = batcher(config, self.tokenizer.clone())?;
        let settings = EvalSettings::of(config);
        let held_out = |model: &M::InnerModule| -> Result<_> {
            let objectives = heldout_objectives(model, &batcher, &settings, device)?;
            Ok((objectives, model.evaluate(&batcher, &settings, device)?))
        };
        // The held-out scores at initialisation are of the weights training starts from.
        crate::materialize(&model);
        let (init, init_report) = held_out(&model.valid())?;
        let mut trainer = Trainer::new(config, device)?;
        let started = Instant::now();
        model = trainer.fit(model, &batcher, &mut ())?;
        let seconds = started.elapsed().as_secs_f32();
        let (trained, report) = held_out(&model.valid())?;
        Ok(RunResult {
            name: self.name.to_string(),
            steps: config.steps,
            seconds,
            init,
            trained,
            retrieval: report.retrieval,
            captioning: init_report
                .captioning
                .zip(report.captioning)
                .map(|(a, b)| [a, b]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::ObjectiveScore;
    use crate::TrainError;

    fn key(settings: AblationSettings) -> Option<String> {
        match settings.validate() {
            Ok(()) => None,
            Err(TrainError::Config(ConfigError::Invalid { key, .. })) => Some(key),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn settings_name_the_setting_that_cannot_run() {
        let good = AblationSettings::default();
        assert_eq!(key(good), None);
        assert_eq!(
            key(AblationSettings { steps: 0, ..good }).as_deref(),
            Some("steps")
        );
        assert_eq!(
            key(AblationSettings {
                batch_size: 1,
                ..good
            })
            .as_deref(),
            Some("batch_size")
        );
    }

    #[test]
    fn a_run_without_retrieval_sums_up_its_held_out_metrics() {
        let score = |metric| ObjectiveScore {
            loss: 1.0,
            metric,
            metric_name: "accuracy".into(),
        };
        let result = RunResult {
            name: "fom".into(),
            steps: 3,
            seconds: 1.0,
            init: HeldOutObjectives::from([("fom".to_string(), score(0.17))]),
            trained: HeldOutObjectives::from([("fom".to_string(), score(0.712))]),
            retrieval: None,
            captioning: None,
        };
        assert_eq!(result.summary(), "held-out fom accuracy 0.170 -> 0.712");
    }
}
