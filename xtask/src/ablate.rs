//! `cargo xtask ablate`: short pre-trainings of a tiny UNITER-style region
//! model on the synthetic world, one per objective set: (a) each objective
//! alone (WRA on the batch's ITM pairs; hard-negative ITM with the ITC head
//! that samples its negatives; ViLT's masked patch prediction on the same
//! model reading patches), scored on held-out batches at
//! initialisation and after training; (b) MLM+ITM, then MLM+ITM+X, scored
//! by held-out retrieval R@1; (c) UNITER's task sampling against the
//! weighted sum of the same objectives. Retrieval ranks by the ITC
//! embeddings when the run has ITC and by the ITM head's score of every
//! pair otherwise (UNITER). Prints a markdown table; `--json FILE` writes
//! the numbers.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use serde::Serialize;
use vlp_data::TextTokenizer;
use vlp_objectives::{MixStrategy, Pretrainer, UniterObjectives};
use vlp_train::config::{Architecture, ObjectivesConfig, VisualKind};
use vlp_train::data::{batcher, detector, tokenizer, world};
use vlp_train::eval::{heldout_objectives, Captioning, HeldOutObjectives, Retrieval};
use vlp_train::{
    with_model, EvalSettings, Evaluate, HeldOutData, ModelTask, PretrainConfig, Trainer,
};

use crate::device::{self, BackendJob, DeviceSpec};
use crate::{report, UsageError};

#[derive(Debug, clap::Args)]
pub struct AblateArgs {
    /// Training steps of each run (1500: the 17 runs take ~12 min on 2 CPU cores).
    #[arg(long, default_value_t = 1500)]
    pub steps: usize,
    /// Scenes per batch.
    #[arg(long, default_value_t = 24)]
    pub batch_size: usize,
    /// Only these runs (comma-separated names, e.g. `mlm,mlm+itm+wra`); all by default.
    #[arg(long, value_delimiter = ',')]
    pub runs: Vec<String>,
    /// Writes the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Backend and device (default: flex if compiled in).
    #[arg(long, value_parser = DeviceSpec::parse)]
    pub device: Option<DeviceSpec>,
    /// Seed of every run's data, initialisation and sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
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
    /// The video pre-trainer (FOM) on the world's clips (`ablate_video.rs`).
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

/// The runs' shared setting: the tiny region model and the synthetic world.
pub fn base_config(args: &AblateArgs) -> PretrainConfig {
    let mut config = PretrainConfig {
        seed: args.seed,
        steps: args.steps,
        batch_size: args.batch_size,
        learning_rate: 1e-3,
        warmup_steps: (args.steps / 10).max(1),
        eval_candidates: 100,
        ..PretrainConfig::default()
    };
    config.data.fused_pairs = args.batch_size;
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

struct AblationJob {
    config: PretrainConfig,
    runs: Vec<RunSpec>,
}

impl BackendJob for AblationJob {
    type Output = anyhow::Result<Vec<RunResult>>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let tokenizer = tokenizer(&self.config, None).map_err(report)?;
        let mut results = Vec::new();
        for spec in &self.runs {
            let architecture = match &spec.model {
                RunModel::Image(architecture) => architecture.clone(),
                RunModel::Video => {
                    let c = &self.config;
                    results.push(crate::ablate_video::fom_run::<B>(
                        c.steps,
                        c.batch_size,
                        c.seed,
                        &device,
                    )?);
                    continue;
                }
            };
            let mut config = PretrainConfig {
                objectives: spec.objectives.clone(),
                ..self.config.clone()
            };
            config.model.architecture = architecture;
            if let Some(visual) = spec.visual {
                config.model.visual = visual;
            }
            config
                .validate()
                .map_err(|err| UsageError(format!("run {}: {err}", spec.name)))?;
            let result = with_model::<B, _>(
                &config,
                tokenizer.vocab_size(),
                tokenizer.special(),
                None,
                &device,
                AblationRun {
                    name: &spec.name,
                    config: &config,
                    tokenizer: &tokenizer,
                    device: device.clone(),
                },
            )
            .map_err(report)??;
            eprintln!(
                "{}: {} steps in {:.0}s, {}",
                result.name,
                result.steps,
                result.seconds,
                match (&result.retrieval, &result.captioning) {
                    (Some(r), _) => format!(
                        "R@1 t2i {:.3} i2t {:.3} ({})",
                        r.t2i.r1, r.i2t.r1, r.ranked_by
                    ),
                    (None, Some([_, trained])) => format!("BLEU-4 {:.3}", trained.bleu4),
                    (None, None) => "no retrieval measure".into(),
                }
            );
            results.push(result);
        }
        Ok(results)
    }
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
    type Output = anyhow::Result<RunResult>;

    fn run<M>(self, mut model: M) -> Self::Output
    where
        M: AutodiffModule<B> + Pretrainer<B> + 'static,
        M::InnerModule: Evaluate<B::InnerBackend> + Pretrainer<B::InnerBackend>,
    {
        let (config, device) = (self.config, &self.device);
        let batcher = batcher(config, self.tokenizer.clone());
        let (world, detector) = (world(config), detector(config));
        let data = HeldOutData {
            world: &world,
            detector: detector.as_ref(),
            tokenizer: self.tokenizer,
        };
        let settings = EvalSettings::of(config);
        let held_out = |model: &M::InnerModule| -> vlp_train::Result<_> {
            let objectives = heldout_objectives(model, &batcher, &settings, device)?;
            Ok((objectives, model.evaluate(&data, &settings, device)?))
        };
        // The held-out scores at initialisation are of the weights training starts from.
        vlp_train::materialize(&model);
        let (init, init_report) = held_out(&model.valid())?;
        let mut trainer = Trainer::new(config, device)?;
        let started = Instant::now();
        model = trainer
            .fit(model, &batcher, &mut ())
            .map_err(|err| anyhow::anyhow!("run {}: {err}", self.name))?;
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

/// The markdown table: one line per (run, objective), with the held-out
/// loss and metric at initialisation and after training, and the run's R@1.
pub fn markdown(results: &[RunResult]) -> String {
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

/// Runs the chosen ablation runs, prints the table and writes the JSON.
pub fn run(args: &AblateArgs) -> anyhow::Result<()> {
    let all = runs();
    let chosen: Vec<RunSpec> = if args.runs.is_empty() {
        all
    } else {
        args.runs
            .iter()
            .map(|name| {
                all.iter()
                    .find(|r| &r.name == name)
                    .cloned()
                    .ok_or_else(|| {
                        let names: Vec<&str> = all.iter().map(|r| r.name.as_str()).collect();
                        UsageError(format!(
                            "unknown run {name:?}; known runs: {}",
                            names.join(", ")
                        ))
                    })
            })
            .collect::<Result<_, _>>()?
    };
    if args.steps == 0 || args.batch_size < 2 {
        return Err(UsageError("--steps must be >= 1 and --batch-size >= 2".into()).into());
    }
    let spec = args
        .device
        .or_else(device::default_device)
        .ok_or_else(|| UsageError("this build has no backend".into()))?;
    let started = Instant::now();
    let results = device::dispatch(
        spec,
        AblationJob {
            config: base_config(args),
            runs: chosen,
        },
    )
    .map_err(UsageError)??;
    println!("{}", markdown(&results));
    eprintln!(
        "ablation: {} runs in {:.0}s",
        results.len(),
        started.elapsed().as_secs_f32()
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&results)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
