//! `cargo xtask ablate`: short pre-trainings of a tiny UNITER-style region
//! model on the synthetic world, one per objective set: (a) each objective
//! alone (WRA on the batch's ITM pairs; hard-negative ITM with the ITC head
//! that samples its negatives), scored on held-out batches at
//! initialisation and after training; (b) MLM+ITM, then MLM+ITM+X, scored
//! by held-out retrieval R@1. Retrieval ranks by the ITC embeddings when the
//! run has ITC and by the cosine of the mean-pooled unimodal outputs
//! otherwise. Prints a markdown table; `--json FILE` writes the numbers.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use vlp_data::synthetic::{Split, NUM_DETECTOR_LABELS};
use vlp_data::{AnswerVocabulary, MlmMasking, PretrainBatcher, RegionMasking};
use vlp_objectives::{Pretrainer, UniterObjectives, UniterPretrainer, UniterPretrainerConfig};

use crate::config::{PretrainConfig, VisualKind};
use crate::device::{self, BackendJob, DeviceSpec};
use crate::eval::{retrieval, Retrieval};
use crate::heldout::{heldout_objectives, HeldOutObjectives};
use crate::train::{detector, learning_rate, tokenizer, world};
use crate::UsageError;

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
    #[arg(long, value_parser = DeviceSpec::parse)]
    pub device: Option<DeviceSpec>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// One run of the ablation.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub name: String,
    pub objectives: UniterObjectives,
}

/// (a) each objective alone, then (b) MLM+ITM and MLM+ITM+X.
pub fn runs() -> Vec<RunSpec> {
    let none = UniterObjectives::new;
    let run = |name: &str, objectives: UniterObjectives| RunSpec {
        name: name.to_string(),
        objectives,
    };
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
        run("vqa", none().with_vqa(1.0)),
        run("mlm+itm", base()),
        run("mlm+itm+itc", base().with_itc(1.0)),
        run("mlm+itm+mrfr", base().with_mrfr(1.0)),
        run("mlm+itm+mrc", base().with_mrc(1.0)),
        run("mlm+itm+mrc_kl", base().with_mrc_kl(1.0)),
        run("mlm+itm+wra", base().with_wra(1.0)),
        run("mlm+itm+vqa", base().with_vqa(1.0)),
        run("mlm+itm+itm_hard", base().with_itm_hard(true)),
        run("fom", none()),
    ]
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub name: String,
    pub steps: usize,
    pub seconds: f32,
    pub init: HeldOutObjectives,
    pub trained: HeldOutObjectives,
    pub retrieval: Retrieval,
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

const HELD_OUT_BATCHES: usize = 4;

struct AblationJob {
    config: PretrainConfig,
    runs: Vec<RunSpec>,
}

impl BackendJob for AblationJob {
    type Output = anyhow::Result<Vec<RunResult>>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let config = &self.config;
        let tokenizer = tokenizer(config, None)?;
        let answers = AnswerVocabulary::synthetic();
        let mut results = Vec::new();
        for spec in &self.runs {
            if spec.name == "fom" {
                let (steps, size, seed) = (config.steps, config.batch_size, config.seed);
                results.push(crate::ablate_video::fom_run::<B>(
                    steps, size, seed, &device,
                )?);
                continue;
            }
            let o = &spec.objectives;
            let batcher = PretrainBatcher {
                world: world(config),
                tokenizer: tokenizer.clone(),
                max_text_len: config.data.max_text_len,
                masking: MlmMasking {
                    probability: config.data.mlm_probability,
                    ..MlmMasking::default()
                },
                itm_negative_probability: config.data.itm_negative_probability,
                fused_pairs: Some(config.data.fused_pairs),
                detector: detector(config),
                region_masking: o.masks_regions().then(RegionMasking::uniter),
                vqa_answers: (o.vqa > 0.0).then(|| answers.clone()),
            };
            let model_config = UniterPretrainerConfig::new(
                config.pretrainer(tokenizer.vocab_size()).model,
                o.clone(),
            )
            .with_num_region_classes(NUM_DETECTOR_LABELS)
            .with_num_answers(answers.len())
            .with_itc_embed_dim(config.model.itc_embed_dim);
            model_config
                .validate()
                .map_err(|err| UsageError(format!("run {}: {err}", spec.name)))?;
            B::seed(&device, config.seed);
            let mut model: UniterPretrainer<B> = model_config.init(&device);
            let held_out = |model: &UniterPretrainer<B::InnerBackend>| {
                heldout_objectives(
                    model,
                    &batcher,
                    HELD_OUT_BATCHES,
                    config.batch_size,
                    config.seed,
                    &device,
                )
            };
            let init = held_out(&model.valid())?;
            let mut optimizer = AdamWConfig::new()
                .with_weight_decay(config.weight_decay as f32)
                .init::<B, UniterPretrainer<B>>();
            let started = Instant::now();
            for step in 0..config.steps {
                let mut rng = ChaCha8Rng::seed_from_u64(
                    config.seed ^ (step as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                );
                let samples = batcher.draw(Split::Train, config.batch_size, false, &mut rng);
                let host = batcher.batch_of(samples, &mut rng)?;
                let output = model.forward(&host.to_device(&device));
                let loss = output.loss.clone().into_scalar().elem::<f32>();
                if !loss.is_finite() {
                    anyhow::bail!("run {}: loss became {loss} at step {step}", spec.name);
                }
                let grads = GradientsParams::from_grads(output.loss.backward(), &model);
                model = optimizer.step(learning_rate(config, step), model, grads);
            }
            let seconds = started.elapsed().as_secs_f32();
            let trained_model = model.valid();
            let trained = held_out(&trained_model)?;
            let retrieval = retrieval(&trained_model, &world(config), &tokenizer, config, &device)?;
            eprintln!(
                "{}: {} steps in {seconds:.0}s, R@1 t2i {:.3} i2t {:.3}",
                spec.name, config.steps, retrieval.t2i.r1, retrieval.i2t.r1
            );
            results.push(RunResult {
                name: spec.name.clone(),
                steps: config.steps,
                seconds,
                init,
                trained,
                retrieval,
            });
        }
        Ok(results)
    }
}

/// The markdown table: one line per (run, objective), with the held-out
/// loss and metric at initialisation and after training, and the run's R@1.
pub fn markdown(results: &[RunResult]) -> String {
    let mut lines = vec![
        "| run | objective | loss init | loss trained | metric | metric init | metric trained | R@1 t2i | R@1 i2t |".to_string(),
        "|---|---|---|---|---|---|---|---|---|".to_string(),
    ];
    for result in results {
        for (name, trained) in &result.trained {
            let init = &result.init[name];
            lines.push(format!(
                "| {} | {name} | {:.4} | {:.4} | {} | {:.4} | {:.4} | {:.3} | {:.3} |",
                result.name,
                init.loss,
                trained.loss,
                trained.metric_name,
                init.metric,
                trained.metric,
                result.retrieval.t2i.r1,
                result.retrieval.i2t.r1
            ));
        }
    }
    lines.join("\n")
}

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
