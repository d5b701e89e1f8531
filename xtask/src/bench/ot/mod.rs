//! `cargo xtask bench ot`: vlp-ot's solvers against the references (a
//! PyTorch implementation of UNITER's batched IPOT, POT's `emd2` and
//! `sinkhorn2` in loops, `benches/reference/ot_reference.py`) on the same
//! seeded problems, in one run; docs/benchmarks.md ("Optimal transport")
//! says what is measured. vlp-ot computes the cosine costs of seeded
//! word/region embeddings and writes both as `.npy` files, so that both
//! sides solve exactly the same problems; every timing is the median of the
//! timed repetitions after warm-up runs, on `--threads` threads per side.

mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::{backend::Backend, Tensor, TensorData};
use serde_json::Value;
use vlp_ot::{
    cosine_cost, exact_host, ipot, ipot_host, ipot_via_host, sinkhorn, sinkhorn_host, wra_distance,
    CostBatch, ExactConfig, IpotConfig, SinkhornConfig, WraConfig,
};

use vlp_bench::stats::{cpu_snapshot, median, others_share, watching_others};
use vlp_bench::{normals, write_npy};

use super::common::{
    in_scratch_dir, reference_command, repo_root, run_for_json, write_json_rows, ReferenceArgs,
};
use report::report;

/// Embedding width of the generated problems (UNITER-base hidden size).
const DIM: usize = 768;
/// Entropic regularisation of the Sinkhorn comparison.
const SINKHORN_REG: f64 = 0.05;
/// Fixed Sinkhorn iteration count (both sides run exactly this many).
const SINKHORN_ITERS: usize = 100;
/// The headline case.
const HEADLINE: (usize, usize, usize) = (32, 40, 36);

/// Arguments of `cargo xtask bench ot`.
#[derive(clap::Args, Debug)]
pub struct BenchOtArgs {
    /// Also write the result rows as JSON: a list of
    /// {"benchmark", "vlp_ms", "reference", "reference_ms", "speedup"}.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Threads for vlp (rayon pool) and for the references (torch, BLAS).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Timed repetitions of the headline case (B = 32, 40 × 36).
    #[arg(long, default_value_t = 21)]
    pub reps: usize,
    /// Timed repetitions of each other cell of the scaling table.
    #[arg(long, default_value_t = 5)]
    pub scaling_reps: usize,
    /// Untimed warm-up runs before each timing.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Only the headline case, no B × size scaling table.
    #[arg(long)]
    pub no_scaling: bool,
    /// `--no-reference`, `--python`.
    #[command(flatten)]
    pub reference: ReferenceArgs,
    /// Seed of the generated embeddings.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// One `B × M × N` problem set and vlp's results on it.
struct Case {
    name: String,
    b: usize,
    m: usize,
    n: usize,
    reps: usize,
    dir: PathBuf,
    headline: bool,
    /// vlp timings (ms) by solver key.
    vlp_ms: BTreeMap<String, f64>,
    /// vlp distances by solver key.
    vlp_dist: BTreeMap<String, Vec<f64>>,
    /// Share of the machine's CPU time other processes used while vlp ran.
    others_share: Option<f64>,
}

impl Case {
    fn record(&mut self, key: &str, ms: f64, distances: Vec<f64>) {
        self.vlp_ms.insert(key.to_string(), ms);
        if !distances.is_empty() {
            self.vlp_dist.insert(key.to_string(), distances);
        }
    }
}

/// Runs the benchmark; see the module docs.
pub fn run(args: &BenchOtArgs) -> Result<()> {
    if args.threads == 0 || args.reps == 0 || args.scaling_reps == 0 {
        bail!("--threads, --reps and --scaling-reps must be >= 1");
    }
    let root = repo_root();
    in_scratch_dir("vlp-bench-ot", None, |tmp| run_in(args, &root, tmp))
}

fn run_in(args: &BenchOtArgs, root: &Path, tmp: &Path) -> Result<()> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .context("building the rayon pool")?;
    let mut shapes = vec![HEADLINE];
    if !args.no_scaling {
        for b in [8, 32, 128] {
            for (m, n) in [(20, 18), (40, 36), (80, 72)] {
                if (b, m, n) != HEADLINE {
                    shapes.push((b, m, n));
                }
            }
        }
    }
    // Other processes competing for the CPU distort every timing (PyTorch's
    // OpenMP pool collapses: seconds instead of milliseconds).
    let idle_check = cpu_snapshot();
    std::thread::sleep(std::time::Duration::from_millis(500));
    if let Some(share) = others_share(idle_check, cpu_snapshot()) {
        if share > 0.1 {
            eprintln!(
                "warning: other processes are using {:.0}% of the CPU; timings will be unreliable",
                share * 100.0
            );
        }
    }
    let python = args.reference.interpreter(
        root,
        "numpy, ot, torch",
        "benches/reference/requirements.txt",
    )?;

    eprintln!(
        "vlp-ot benchmark: {} threads, D = {DIM}, seed {}",
        args.threads, args.seed
    );
    let mut cases = Vec::new();
    for (k, &(b, m, n)) in shapes.iter().enumerate() {
        let headline = k == 0;
        let name = format!("b{b}-{m}x{n}");
        let dir = tmp.join(&name);
        std::fs::create_dir_all(&dir)?;
        let reps = if headline {
            args.reps
        } else {
            args.scaling_reps
        };
        let mut case = Case {
            name,
            b,
            m,
            n,
            reps,
            dir,
            headline,
            vlp_ms: BTreeMap::new(),
            vlp_dist: BTreeMap::new(),
            others_share: None,
        };
        let ((), share) = watching_others(|| {
            pool.install(|| bench_vlp(&mut case, args.seed + k as u64, args.warmup))
        })?;
        case.others_share = share;
        eprintln!(
            "  vlp {}: {}",
            case.name,
            case.vlp_ms
                .iter()
                .map(|(k, v)| format!("{k} {v:.3} ms"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        cases.push(case);
    }

    let reference = match &python {
        Some(py) => Some(run_reference(py, root, tmp, &cases, args)?),
        None => None,
    };
    let rows = report(&cases, reference.as_ref(), args)?;
    write_json_rows(args.json.as_deref(), &rows)
}

/// Median wall time in milliseconds of `reps` runs after `warmup` runs.
fn time_ms<T>(reps: usize, warmup: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut out = None;
    for _ in 0..warmup {
        out = Some(f());
    }
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        out = Some(f());
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    (median(&times), out.expect("reps >= 1"))
}

fn host<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

fn bench_vlp(case: &mut Case, seed: u64, warmup: usize) -> Result<()> {
    let (b, m, n) = (case.b, case.m, case.n);
    let xv = normals(seed * 2 + 1, b * m * DIM);
    let yv = normals(seed * 2 + 2, b * n * DIM);
    // The problems: cosine costs of the embeddings, computed once by vlp-ot on
    // the first CPU backend compiled in, and shared with the references.
    #[cfg(feature = "ndarray")]
    let cost_host = primary_costs::<burn::backend::NdArray>(&xv, &yv, [b, m, n])?;
    #[cfg(all(not(feature = "ndarray"), feature = "flex"))]
    let cost_host = primary_costs::<burn::backend::Flex>(&xv, &yv, [b, m, n])?;
    #[cfg(not(any(feature = "ndarray", feature = "flex")))]
    let cost_host: Vec<f32> =
        bail!("cargo xtask bench ot needs a CPU backend: build xtask with `ndarray` or `flex`");
    write_npy(&case.dir.join("cost.npy"), &cost_host, &[b, m, n])?;
    if case.headline {
        write_npy(&case.dir.join("x.npy"), &xv, &[b, m, DIM])?;
        write_npy(&case.dir.join("y.npy"), &yv, &[b, n, DIM])?;
    }
    let batch = CostBatch::new(cost_host, [b, m, n])?;
    let reps = case.reps;
    let ipot_cfg = IpotConfig::default();

    // Host kernels on host data.
    let (ms, out) = time_ms(reps, warmup, || ipot_host(&batch, &ipot_cfg));
    case.record(
        "ipot-kernel",
        ms,
        out?.distances.iter().map(|&d| d as f64).collect(),
    );
    let (ms, out) = time_ms(reps, warmup, || exact_host(&batch, &ExactConfig::default()));
    case.record("exact", ms, out?.distances);
    let (ms, out) = time_ms(reps, warmup, || {
        sinkhorn_host(&batch, None, &sinkhorn_config())
    });
    case.record("sinkhorn", ms, out?.plans.distances);

    // Tensor API rows, per CPU backend compiled in.
    #[cfg(feature = "ndarray")]
    tensor_rows::<burn::backend::NdArray>(case, "ndarray", &xv, &yv, &batch, warmup)?;
    #[cfg(feature = "flex")]
    tensor_rows::<burn::backend::Flex>(case, "flex", &xv, &yv, &batch, warmup)?;
    Ok(())
}

fn sinkhorn_config() -> SinkhornConfig {
    // Fixed iteration count, like the POT runs (stopThr = 0).
    SinkhornConfig {
        epsilon: SINKHORN_REG,
        max_iterations: SINKHORN_ITERS,
        tolerance: 0.0,
        check_every: SINKHORN_ITERS,
    }
}

#[allow(dead_code)]
fn primary_costs<Bk: Backend>(xv: &[f32], yv: &[f32], [b, m, n]: [usize; 3]) -> Result<Vec<f32>> {
    let dev = Default::default();
    let x: Tensor<Bk, 3> = Tensor::from_data(TensorData::new(xv.to_vec(), [b, m, DIM]), &dev);
    let y: Tensor<Bk, 3> = Tensor::from_data(TensorData::new(yv.to_vec(), [b, n, DIM]), &dev);
    Ok(cosine_cost(x, y)?.into_data().iter::<f32>().collect())
}

/// Rows that go through the tensor API of backend `Bk`: IPOT through the
/// host kernel (`ipot_via_host`, the headline row for the first backend),
/// IPOT and Sinkhorn as tensor ops, and on the headline case the cosine
/// cost and the whole WRA distance from embeddings.
#[allow(dead_code)]
fn tensor_rows<Bk: Backend>(
    case: &mut Case,
    name: &str,
    xv: &[f32],
    yv: &[f32],
    batch: &CostBatch,
    warmup: usize,
) -> Result<()> {
    let (b, m, n, reps) = (case.b, case.m, case.n, case.reps);
    let dev = Default::default();
    let cost: Tensor<Bk, 3> =
        Tensor::from_data(TensorData::new(batch.costs().to_vec(), [b, m, n]), &dev);
    let ipot_cfg = IpotConfig::default();
    let (ms, out) = time_ms(reps, warmup, || {
        ipot_via_host(cost.clone(), None, &ipot_cfg)
    });
    let d = host(out?.distance);
    if !case.vlp_ms.contains_key("ipot") {
        case.record("ipot", ms, d.clone());
    }
    case.record(&format!("ipot-via-host-{name}"), ms, d);
    let (ms, out) = time_ms(reps, warmup, || ipot(cost.clone(), None, &ipot_cfg));
    case.record(&format!("ipot-tensor-{name}"), ms, host(out?.distance));
    if !case.headline {
        return Ok(());
    }
    let (ms, out) = time_ms(reps, warmup, || {
        sinkhorn(cost.clone(), None, None, &sinkhorn_config())
    });
    case.record(&format!("sinkhorn-tensor-{name}"), ms, host(out?.distance));
    let x: Tensor<Bk, 3> = Tensor::from_data(TensorData::new(xv.to_vec(), [b, m, DIM]), &dev);
    let y: Tensor<Bk, 3> = Tensor::from_data(TensorData::new(yv.to_vec(), [b, n, DIM]), &dev);
    let (ms, out) = time_ms(reps, warmup, || cosine_cost(x.clone(), y.clone()));
    out?;
    case.record(&format!("cost-{name}"), ms, Vec::new());
    let wra = WraConfig::default();
    let (ms, out) = time_ms(reps, warmup, || {
        wra_distance(x.clone(), y.clone(), None, &wra)
    });
    case.record(&format!("wra-{name}"), ms, host(out?));
    Ok(())
}

fn run_reference(
    py: &Path,
    root: &Path,
    tmp: &Path,
    cases: &[Case],
    args: &BenchOtArgs,
) -> Result<Value> {
    let manifest = serde_json::json!({
        "threads": args.threads,
        "cases": cases.iter().map(|c| serde_json::json!({
            "name": c.name,
            "dir": c.dir,
            "reps": c.reps,
            "warmup": args.warmup,
            "embeddings": c.headline,
            "ipot": {"beta": 0.5, "iterations": 50, "k": 1},
            "sinkhorn": {"reg": SINKHORN_REG, "iterations": SINKHORN_ITERS},
        })).collect::<Vec<_>>(),
    });
    let manifest_path = tmp.join("manifest.json");
    let out_path = tmp.join("results.json");
    std::fs::write(&manifest_path, serde_json::to_string(&manifest)?)?;
    let script = root.join("benches/reference/ot_reference.py");
    eprintln!("running the references ({}) ...", script.display());
    let mut command = reference_command(py, &script, args.threads);
    command
        .arg("--manifest")
        .arg(&manifest_path)
        .arg("--out")
        .arg(&out_path);
    run_for_json(&mut command, "the reference script", &out_path)
}
