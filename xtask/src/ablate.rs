//! `cargo xtask ablate`: the objective ablation of [`vlp_train::ablation`]
//! (short pre-trainings of a tiny model, one per objective set). Prints a
//! markdown table; `--json FILE` writes the numbers.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use burn::tensor::backend::AutodiffBackend;
use vlp_train::ablation::{
    markdown_table, run_ablation, runs_named, AblationSettings, RunResult, RunSpec,
};

use crate::device::{self, BackendJob, DeviceSpec};
use crate::{report, UsageError};

/// Options of `cargo xtask ablate`.
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

struct AblationJob {
    settings: AblationSettings,
    runs: Vec<RunSpec>,
}

impl BackendJob for AblationJob {
    type Output = anyhow::Result<Vec<RunResult>>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        run_ablation::<B>(&self.settings, &self.runs, &device, |result| {
            eprintln!(
                "{}: {} steps in {:.0}s, {}",
                result.name,
                result.steps,
                result.seconds,
                result.summary()
            )
        })
        .map_err(report)
    }
}

/// Runs the chosen ablation runs, prints the table and writes the JSON.
pub fn run(args: &AblateArgs) -> anyhow::Result<()> {
    let chosen = runs_named(&args.runs).map_err(report)?;
    let settings = AblationSettings {
        steps: args.steps,
        batch_size: args.batch_size,
        seed: args.seed,
    };
    settings.validate().map_err(report)?;
    let spec = args
        .device
        .or_else(device::default_device)
        .ok_or_else(|| UsageError("this build has no backend".into()))?;
    let started = Instant::now();
    let results = device::dispatch(
        spec,
        AblationJob {
            settings,
            runs: chosen,
        },
    )
    .map_err(UsageError)??;
    println!("{}", markdown_table(&results));
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
