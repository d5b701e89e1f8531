//! `bench step`'s vlp side, one measurement per process
//! (`cargo xtask bench step --worker train|infer`), so that its peak RSS is
//! that measurement's alone: [`vlp_bench::step::StepSettings::measure`] on
//! the chosen backend.

use anyhow::{Context, Result};
use burn::tensor::backend::AutodiffBackend;
use vlp_bench::step::{peak_rss_mib, Measurement, Shape, StepSettings};

use super::{BenchStepArgs, Mode};
use crate::device::{self, BackendJob};

/// Measures `mode` in this process and writes the [`Measurement`] to `--out`.
pub(super) fn worker(args: &BenchStepArgs, mode: Mode) -> Result<()> {
    let shape = Shape::parse(args.shape.as_deref().context("--worker needs --shape")?)?;
    let out = args.out.as_ref().context("--worker needs --out")?;
    // The global pool serves Burn's CPU kernels (Flex's gemm uses it too).
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()
        .context("building the rayon pool")?;
    let spec = args
        .device
        .or_else(device::default_device)
        .context("this build has no backend")?;
    let job = StepJob(StepSettings {
        shape,
        mode,
        seed: args.seed,
        warmup: args.warmup,
        steps: args.steps,
        reps: args.reps,
        micro_batches: args.micro_batches,
    });
    let mut measurement = device::dispatch(spec, job).map_err(anyhow::Error::msg)??;
    measurement.peak_rss_mib = peak_rss_mib();
    std::fs::write(out, serde_json::to_string(&measurement)?)
        .with_context(|| format!("writing {}", out.display()))
}

/// One vlp measurement on the backend [`device::dispatch`] picks.
struct StepJob(StepSettings);

impl BackendJob for StepJob {
    type Output = Result<Measurement>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        self.0.measure::<B>(device)
    }
}
