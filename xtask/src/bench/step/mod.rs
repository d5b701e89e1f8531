//! `cargo xtask bench step`: one training step (and one forward-only pass) of
//! the `uniter-bench` model in vlp and in PyTorch
//! (`benches/reference/uniter_step.py`), on the same seeded inputs, in one
//! run. docs/benchmarks.md ("Training step") describes the model, the inputs
//! and the measurement; this module runs them.
//!
//! [`vlp_bench::step`] generates the batch (written as `.npy` files for the
//! script) and times vlp's side; `worker.rs` runs it in a child process of
//! its own (`cargo xtask bench step --worker train|infer`) so that its peak
//! RSS is that measurement's alone; `report.rs` prints the tables. Each
//! figure is the median over `--reps` repetitions of `--steps` steps after
//! `--warmup` steps, on `--threads` threads per side.

mod report;
mod worker;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use vlp_bench::stats::watching_others;
pub use vlp_bench::step::Mode;
use vlp_bench::step::{Inputs, Measurement, Shape, HEADLINE};

use super::common::{
    in_scratch_dir, numeric_flags, reference_command, repo_root, run_for_json, thread_env,
    write_json_rows, ReferenceArgs,
};
use crate::device::{self, DeviceSpec};

/// Arguments of `cargo xtask bench step`.
#[derive(clap::Args, Debug)]
pub struct BenchStepArgs {
    /// Also write the result rows as JSON: a list of {"benchmark", "vlp_ms",
    /// "reference", "reference_ms", "speedup", "vlp_samples_per_s",
    /// "reference_samples_per_s", "vlp_rss_mib", "reference_rss_mib"}.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Backend and device of vlp: ndarray, flex, wgpu or wgpu:N, cuda or cuda:N (default: flex if compiled in).
    #[arg(long, value_parser = DeviceSpec::parse)]
    pub device: Option<DeviceSpec>,
    /// Threads for vlp (rayon pool) and for PyTorch.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Untimed steps before the timed ones.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Steps per timed repetition.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Timed repetitions; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// vlp training splits the batch into this many micro-batches whose
    /// forward and backward passes run concurrently (the runner's
    /// `micro_batches`); each loss is weighted by its share of the masked
    /// tokens and pairs, so the summed gradient is the whole batch's.
    #[arg(long, default_value_t = 2)]
    pub micro_batches: usize,
    /// Also measure training with the batch, the text length and the region
    /// count doubled (b64, t64, r72), one at a time.
    #[arg(long)]
    pub scaling: bool,
    /// `--no-reference`, `--python`.
    #[command(flatten)]
    pub reference: ReferenceArgs,
    /// Seed of the inputs and of both initialisations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the inputs into this folder and keep them (default: a temporary folder).
    #[arg(long)]
    pub keep_inputs: Option<PathBuf>,
    /// Internal: measure vlp in this process (`train` or `infer`) and write the result to --out.
    #[arg(long, hide = true)]
    pub worker: Option<Mode>,
    /// Internal: the worker's shape, e.g. b32-t32-r36.
    #[arg(long, hide = true)]
    pub shape: Option<String>,
    /// Internal: where the worker writes its result.
    #[arg(long, hide = true)]
    pub out: Option<PathBuf>,
}

impl BenchStepArgs {
    /// The flags both measuring processes (vlp's worker, the PyTorch
    /// script) take from the runner's.
    fn timing_flags(&self) -> [(&'static str, u64); 5] {
        [
            ("--threads", self.threads as u64),
            ("--warmup", self.warmup as u64),
            ("--steps", self.steps as u64),
            ("--reps", self.reps as u64),
            ("--seed", self.seed),
        ]
    }
}

/// Runs the benchmark (or, with `--worker`, one vlp measurement); see the module docs.
pub fn run(args: &BenchStepArgs) -> Result<()> {
    if args.threads == 0 || args.reps == 0 || args.steps == 0 || args.micro_batches == 0 {
        bail!("--threads, --steps, --reps and --micro-batches must be >= 1");
    }
    if let Some(mode) = args.worker {
        return worker::worker(args, mode);
    }
    let root = repo_root();
    in_scratch_dir("vlp-bench-step", args.keep_inputs.as_deref(), |dir| {
        run_in(args, &root, dir)
    })
}

/// One measured case: vlp's and the reference's measurements.
struct Case {
    shape: Shape,
    mode: Mode,
    vlp: Measurement,
    vlp_others: Option<f64>,
    reference: Option<Measurement>,
    reference_others: Option<f64>,
    reference_versions: Option<serde_json::Value>,
}

fn run_in(args: &BenchStepArgs, root: &Path, dir: &Path) -> Result<()> {
    let python = args.reference.interpreter(
        root,
        "numpy, ot, torch",
        "benches/reference/requirements.txt",
    )?;
    let spec = args
        .device
        .or_else(device::default_device)
        .context("this build has no backend")?;
    let mut plan = vec![(HEADLINE, Mode::Train), (HEADLINE, Mode::Infer)];
    if args.scaling {
        for shape in ["b64-t32-r36", "b32-t64-r36", "b32-t32-r72"] {
            let shape = Shape::parse(shape)?;
            plan.push((shape, Mode::Train));
        }
    }
    eprintln!(
        "uniter-bench step: vlp on {spec}, {} threads, training in {} micro-batches, {} warm-up + {} × {} timed steps, seed {}",
        args.threads, args.micro_batches, args.warmup, args.reps, args.steps, args.seed
    );
    let mut cases = Vec::new();
    for (shape, mode) in plan {
        let case_dir = dir.join(shape.name());
        if !case_dir.join("itm_labels.npy").exists() {
            Inputs::generate(shape, args.seed).write(&case_dir)?;
        }
        let (vlp, vlp_others) = watching_others(|| run_vlp_worker(args, spec, shape, mode, dir))?;
        progress("vlp", shape, mode, &vlp);
        let (mut reference, mut reference_others, mut reference_versions) = (None, None, None);
        if let Some(py) = &python {
            let ((m, versions), others) =
                watching_others(|| run_reference(py, root, args, &case_dir, mode, dir))?;
            progress("PyTorch", shape, mode, &m);
            (reference, reference_others, reference_versions) = (Some(m), others, versions);
        }
        cases.push(Case {
            shape,
            mode,
            vlp,
            vlp_others,
            reference,
            reference_others,
            reference_versions,
        });
    }
    let rows = report::report(&cases, args, spec)?;
    write_json_rows(args.json.as_deref(), &rows)
}

/// One measurement's line on stderr.
fn progress(side: &str, shape: Shape, mode: Mode, m: &Measurement) {
    eprintln!(
        "  {side:<7} {:<28} {:>7.2} samples/s, peak RSS {}",
        shape.benchmark(mode),
        m.samples_per_s,
        m.peak_rss_mib.map_or("-".into(), |v| format!("{v:.0} MiB"))
    );
}

fn run_vlp_worker(
    args: &BenchStepArgs,
    spec: DeviceSpec,
    shape: Shape,
    mode: Mode,
    dir: &Path,
) -> Result<Measurement> {
    let out = dir.join(format!("vlp-{}-{}.json", mode.name(), shape.name()));
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let mut command = Command::new(exe);
    command
        .args(["bench", "step", "--worker", mode.name(), "--shape"])
        .arg(shape.name())
        .arg("--out")
        .arg(&out)
        .arg("--device")
        .arg(spec.to_string());
    numeric_flags(&mut command, &args.timing_flags());
    numeric_flags(
        &mut command,
        &[("--micro-batches", args.micro_batches as u64)],
    );
    thread_env(&mut command, args.threads);
    let what = format!("the vlp worker ({} {})", mode.name(), shape.name());
    run_for_json(&mut command, &what, &out)
}

fn run_reference(
    py: &Path,
    root: &Path,
    args: &BenchStepArgs,
    inputs: &Path,
    mode: Mode,
    dir: &Path,
) -> Result<(Measurement, Option<serde_json::Value>)> {
    let script = root.join("benches/reference/uniter_step.py");
    let case = inputs
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("case");
    let out = dir.join(format!("reference-{}-{case}.json", mode.name()));
    let mut command = reference_command(py, &script, args.threads);
    command
        .arg("--inputs")
        .arg(inputs)
        .args(["--mode", mode.name()])
        .arg("--out")
        .arg(&out);
    numeric_flags(&mut command, &args.timing_flags());
    // OpenMP threads that spin while waiting collapse when other processes
    // share the cores (3-6× slower steps here, 1-2 s spent in AdamW alone);
    // passive waiting gives PyTorch its best figure on a shared machine.
    command.env("OMP_WAIT_POLICY", "PASSIVE");
    let value: serde_json::Value = run_for_json(&mut command, "the reference script", &out)?;
    let versions = value.get("versions").cloned();
    let measurement =
        serde_json::from_value(value).with_context(|| format!("parsing {}", out.display()))?;
    Ok((measurement, versions))
}
