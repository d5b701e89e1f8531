//! `cargo xtask bench ot`: vlp-ot's solvers against the references (a
//! PyTorch implementation of UNITER's batched IPOT, POT's `emd2` and
//! `sinkhorn2` in loops) on the same seeded inputs, in one run.
//!
//! The runner generates seeded word/region embeddings (`D = 768`), computes
//! their cosine costs with vlp-ot, writes both as `.npy` files into a
//! temporary folder and runs `benches/reference/ot_reference.py` on them
//! (creating `./.venv` from `benches/reference/requirements.txt` on demand),
//! so both sides solve exactly the same problems. vlp is timed on a rayon
//! pool of `--threads` threads, the references with
//! `torch.set_num_threads(--threads)` and the OMP/MKL/OpenBLAS thread
//! variables set to the same number. Every timing is the median of the timed
//! repetitions after warm-up runs. The share of CPU time taken by other
//! processes during each measurement is read from `/proc` and cells above
//! 10% are flagged (PyTorch's OpenMP pool degrades by orders of magnitude
//! under contention).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::{backend::Backend, Tensor, TensorData};
use serde::Serialize;
use serde_json::Value;
use vlp_ot::{
    cosine_cost, exact_host, ipot, ipot_host, ipot_via_host, sinkhorn, sinkhorn_host, wra_distance,
    CostBatch, ExactConfig, IpotConfig, SinkhornConfig, WraConfig,
};

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
    /// Time vlp only (skip the Python references).
    #[arg(long)]
    pub no_reference: bool,
    /// Python with numpy, POT and torch (default: ./.venv/bin/python, created on demand).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Seed of the generated embeddings.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// One JSON result row.
#[derive(Debug, Serialize)]
struct Row {
    benchmark: String,
    vlp_ms: f64,
    reference: String,
    reference_ms: Option<f64>,
    speedup: Option<f64>,
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
    let tmp = std::env::temp_dir().join(format!("vlp-bench-ot-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let result = run_in(args, &root, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    result
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
    let python = if args.no_reference {
        None
    } else {
        Some(python(args.python.as_deref(), root)?)
    };

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
        let before = cpu_snapshot();
        pool.install(|| bench_vlp(&mut case, args.seed + k as u64, args.warmup))?;
        case.others_share = others_share(before, cpu_snapshot());
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
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// `(busy jiffies of all CPUs, total jiffies, own jiffies incl. waited-for
/// children)` from `/proc` (Linux); `None` elsewhere.
pub(crate) fn cpu_snapshot() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let busy =
        v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7).copied().unwrap_or(0);
    let total = busy + v.get(3)? + v.get(4)?;
    let me = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: utime is the 12th, then
    // stime, cutime, cstime.
    let rest: Vec<u64> = me
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|x| x.parse().ok())
        .collect();
    Some((busy, total, rest.iter().sum()))
}

/// Fraction of the machine's CPU time used by *other* processes between two
/// [`cpu_snapshot`]s.
pub(crate) fn others_share(a: Option<(u64, u64, u64)>, b: Option<(u64, u64, u64)>) -> Option<f64> {
    let (a, b) = (a?, b?);
    let total = b.1.checked_sub(a.1)?;
    if total == 0 {
        return None;
    }
    let others = (b.0.saturating_sub(a.0)).saturating_sub(b.2.saturating_sub(a.2));
    Some(others as f64 / total as f64)
}

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The reference interpreter: `--python`, or `./.venv/bin/python`, creating
/// the venv and installing `benches/reference/requirements.txt` on demand.
pub(crate) fn python(explicit: Option<&Path>, root: &Path) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let venv = root.join(".venv");
    let py = venv.join("bin").join("python");
    let check = |py: &Path| {
        Command::new(py)
            .args(["-c", "import numpy, ot, torch"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if py.exists() && check(&py) {
        return Ok(py);
    }
    if !py.exists() {
        eprintln!("creating {} ...", venv.display());
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .context("running python3 -m venv (is python3 installed?)")?;
        if !status.success() {
            bail!("python3 -m venv {} failed", venv.display());
        }
    }
    let req = root.join("benches/reference/requirements.txt");
    eprintln!(
        "installing {} into {} (torch is large; this takes a while) ...",
        req.display(),
        venv.display()
    );
    let status = Command::new(venv.join("bin").join("pip"))
        .args(["install", "-q", "-r"])
        .arg(&req)
        .status()
        .context("running pip")?;
    if !status.success() || !check(&py) {
        bail!(
            "could not install the reference requirements into {}",
            venv.display()
        );
    }
    Ok(py)
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
    times.sort_by(|a, b| a.total_cmp(b));
    let mid = times.len() / 2;
    let med = if times.len() % 2 == 1 {
        times[mid]
    } else {
        0.5 * (times[mid - 1] + times[mid])
    };
    (med, out.expect("reps >= 1"))
}

/// SplitMix64 → standard normals (Box-Muller); seeded, reproducible.
pub(crate) fn normals(seed: u64, len: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) ^ 0xD1B54A32D192ED03;
    let mut next = || {
        s = s.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..len)
        .map(|_| {
            let (u1, u2) = (next().max(1e-300), next());
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
        })
        .collect()
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

/// An element type [`write_npy`] can store.
pub(crate) trait NpyElement: Copy {
    /// numpy's `descr` of the little-endian type.
    const DESCR: &'static str;
    fn extend_le(self, bytes: &mut Vec<u8>);
}

impl NpyElement for f32 {
    const DESCR: &'static str = "<f4";
    fn extend_le(self, bytes: &mut Vec<u8>) {
        bytes.extend_from_slice(&self.to_le_bytes());
    }
}

impl NpyElement for i64 {
    const DESCR: &'static str = "<i8";
    fn extend_le(self, bytes: &mut Vec<u8>) {
        bytes.extend_from_slice(&self.to_le_bytes());
    }
}

/// Minimal `.npy` (format 1.0) writer for little-endian `f32` / `i64` arrays.
pub(crate) fn write_npy<T: NpyElement>(path: &Path, data: &[T], shape: &[usize]) -> Result<()> {
    let dims = shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': ({dims},), }}",
        T::DESCR
    );
    // magic (6) + version (2) + length (2) + header + '\n' must be a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + std::mem::size_of_val(data));
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for &v in data {
        v.extend_le(&mut bytes);
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
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
    let threads = args.threads.to_string();
    let status = Command::new(py)
        .arg(&script)
        .arg("--manifest")
        .arg(&manifest_path)
        .arg("--out")
        .arg(&out_path)
        // Older-OpenBLAS workarounds slow a current numpy down; the bench
        // unsets them for the reference process only.
        .env_remove("OPENBLAS_CORETYPE")
        .env_remove("OPENBLAS_L2_SIZE")
        .env("OMP_NUM_THREADS", &threads)
        .env("MKL_NUM_THREADS", &threads)
        .env("OPENBLAS_NUM_THREADS", &threads)
        .status()
        .with_context(|| format!("running {}", py.display()))?;
    if !status.success() {
        bail!("the reference script failed ({status})");
    }
    let text = std::fs::read_to_string(&out_path).context("reading the reference results")?;
    Ok(serde_json::from_str(&text)?)
}

/// (vlp key, reference key, reference label, row prefix)
const PAIRS: &[(&str, &str, &str, &str)] = &[
    ("ipot", "ipot", "PyTorch IPOT (UNITER)", "ipot"),
    (
        "ipot-kernel",
        "ipot",
        "PyTorch IPOT (UNITER)",
        "ipot-host-kernel",
    ),
    (
        "ipot-via-host-flex",
        "ipot",
        "PyTorch IPOT (UNITER)",
        "ipot-via-host-flex",
    ),
    (
        "ipot-tensor-ndarray",
        "ipot",
        "PyTorch IPOT (UNITER)",
        "ipot-tensor-ndarray",
    ),
    (
        "ipot-tensor-flex",
        "ipot",
        "PyTorch IPOT (UNITER)",
        "ipot-tensor-flex",
    ),
    ("exact", "emd2", "POT emd2 loop", "exact"),
    ("sinkhorn", "sinkhorn2", "POT sinkhorn2 loop", "sinkhorn"),
    (
        "sinkhorn",
        "sinkhorn2_log",
        "POT sinkhorn2 log loop",
        "sinkhorn-vs-log",
    ),
    (
        "sinkhorn-tensor-ndarray",
        "sinkhorn2",
        "POT sinkhorn2 loop",
        "sinkhorn-tensor-ndarray",
    ),
    (
        "sinkhorn-tensor-flex",
        "sinkhorn2",
        "POT sinkhorn2 loop",
        "sinkhorn-tensor-flex",
    ),
    (
        "cost-ndarray",
        "cost",
        "PyTorch cosine cost",
        "cost-cosine-ndarray",
    ),
    (
        "cost-flex",
        "cost",
        "PyTorch cosine cost",
        "cost-cosine-flex",
    ),
    (
        "wra-ndarray",
        "wra",
        "PyTorch UNITER WRA distance",
        "wra-ndarray",
    ),
    ("wra-flex", "wra", "PyTorch UNITER WRA distance", "wra-flex"),
];

fn ref_ms(reference: Option<&Value>, case: &str, key: &str) -> Option<f64> {
    reference?
        .get("cases")?
        .get(case)?
        .get(key)?
        .get("ms")?
        .as_f64()
}

fn ref_dist(reference: Option<&Value>, case: &str, key: &str) -> Option<Vec<f64>> {
    let arr = reference?
        .get("cases")?
        .get(case)?
        .get(key)?
        .get("distances")?
        .as_array()?;
    arr.iter().map(Value::as_f64).collect()
}

fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1e-12))
        .fold(0.0, f64::max)
}

fn report(cases: &[Case], reference: Option<&Value>, args: &BenchOtArgs) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut out = String::new();
    let head = &cases[0];
    writeln!(
        out,
        "\n## Optimal transport: vlp-ot vs references ({} threads, D = {DIM}, median of {} runs after {} warm-up)\n",
        args.threads, head.reps, args.warmup
    )?;
    writeln!(
        out,
        "| benchmark | vlp (ms) | reference | reference (ms) | speedup |"
    )?;
    writeln!(out, "|---|---:|---|---:|---:|")?;
    for case in cases {
        for &(vk, rk, label, prefix) in PAIRS {
            let Some(&vms) = case.vlp_ms.get(vk) else {
                continue;
            };
            let suffix = if vk.starts_with("cost") || vk.starts_with("wra") {
                format!("{}x{DIM}", case.name)
            } else {
                case.name.clone()
            };
            let rms = ref_ms(reference, &case.name, rk);
            let row = Row {
                benchmark: format!("{prefix}-{suffix}"),
                vlp_ms: vms,
                reference: label.to_string(),
                reference_ms: rms,
                speedup: rms.map(|r| r / vms),
            };
            if case.headline {
                writeln!(
                    out,
                    "| {} | {:.3} | {} | {} | {} |",
                    row.benchmark,
                    row.vlp_ms,
                    row.reference,
                    rms.map_or("-".into(), |r| format!("{r:.3}")),
                    row.speedup.map_or("-".into(), |s| format!("{s:.1}×"))
                )?;
            }
            rows.push(row);
        }
    }

    // Sanity: same problems, same answers.
    writeln!(out, "\nSanity ({}):", head.name)?;
    let vd = |k: &str| head.vlp_dist.get(k).cloned().unwrap_or_default();
    let exact = vd("exact");
    let ipot_d = vd("ipot");
    let gap: Vec<f64> = ipot_d
        .iter()
        .zip(&exact)
        .map(|(i, e)| (i - e) / e * 100.0)
        .collect();
    writeln!(
        out,
        "- vlp IPOT vs vlp exact: IPOT is {:.3}% to {:.3}% above the optimum",
        gap.iter().cloned().fold(f64::INFINITY, f64::min),
        gap.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
    )?;
    for k in [
        "ipot-kernel",
        "ipot-tensor-ndarray",
        "ipot-tensor-flex",
        "wra-ndarray",
        "wra-flex",
    ] {
        if let Some(d) = head.vlp_dist.get(k) {
            writeln!(
                out,
                "- vlp {k} vs vlp ipot: max relative difference {:.2e}",
                max_rel_diff(d, &ipot_d)
            )?;
        }
    }
    let sk_d = vd("sinkhorn");
    for k in ["sinkhorn-tensor-ndarray", "sinkhorn-tensor-flex"] {
        if let Some(d) = head.vlp_dist.get(k) {
            writeln!(
                out,
                "- vlp {k} (f32) vs vlp sinkhorn (f64): max relative difference {:.2e}",
                max_rel_diff(d, &sk_d)
            )?;
        }
    }
    for (vk, rk, what) in [
        ("ipot", "ipot", "PyTorch IPOT"),
        ("wra-ndarray", "wra", "PyTorch WRA distance"),
        ("exact", "emd2", "POT emd2"),
        ("sinkhorn", "sinkhorn2", "POT sinkhorn2"),
        ("sinkhorn", "sinkhorn2_log", "POT sinkhorn2 log"),
    ] {
        if let (Some(v), Some(r)) = (head.vlp_dist.get(vk), ref_dist(reference, &head.name, rk)) {
            let abs = v
                .iter()
                .zip(&r)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            writeln!(
                out,
                "- vlp {vk} vs {what}: max |Δ| {abs:.2e}, max relative {:.2e} over {} problems",
                max_rel_diff(v, &r),
                v.len()
            )?;
        }
    }
    // Distances must agree across all scaling cells too (loud failure otherwise).
    for case in cases {
        if let (Some(v), Some(r)) = (
            case.vlp_dist.get("exact"),
            ref_dist(reference, &case.name, "emd2"),
        ) {
            let abs = v
                .iter()
                .zip(&r)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            if abs > 1e-6 {
                writeln!(
                    out,
                    "- WARNING {}: vlp exact differs from POT emd2 by {abs:.2e}",
                    case.name
                )?;
            }
        }
    }

    if cases.len() > 1 {
        writeln!(
            out,
            "\n### Scaling (median ms; speedup = reference / vlp)\n"
        )?;
        writeln!(
            out,
            "| B | M×N | IPOT vlp | IPOT PyTorch | × | exact vlp | POT emd2 | × | Sinkhorn vlp | POT sinkhorn2 | × |"
        )?;
        writeln!(
            out,
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        )?;
        let mut sorted: Vec<&Case> = cases.iter().collect();
        sorted.sort_by_key(|c| (c.m, c.b));
        for c in sorted {
            let cell = |vk: &str, rk: &str| -> String {
                let v = c.vlp_ms[vk];
                match ref_ms(reference, &c.name, rk) {
                    Some(r) => format!("{v:.3} | {r:.3} | {:.1}×", r / v),
                    None => format!("{v:.3} | - | -"),
                }
            };
            writeln!(
                out,
                "| {} | {}×{} | {} | {} | {} |",
                c.b,
                c.m,
                c.n,
                cell("ipot", "ipot"),
                cell("exact", "emd2"),
                cell("sinkhorn", "sinkhorn2")
            )?;
        }
    }
    let mut noisy = Vec::new();
    for c in cases {
        if let Some(share) = c.others_share.filter(|&s| s > 0.1) {
            noisy.push(format!("{} (vlp side, {:.0}%)", c.name, share * 100.0));
        }
        let r = reference.and_then(|r| {
            r.get("cases")?
                .get(&c.name)?
                .get("others_cpu_share")?
                .as_f64()
        });
        if let Some(share) = r.filter(|&s| s > 0.1) {
            noisy.push(format!(
                "{} (reference side, {:.0}%)",
                c.name,
                share * 100.0
            ));
        }
    }
    if noisy.is_empty() {
        writeln!(
            out,
            "\nOther processes used < 10% of the CPU during every measurement."
        )?;
    } else {
        writeln!(
            out,
            "\nWARNING: other processes used > 10% of the CPU while measuring {}; rerun on an idle machine \
             before quoting those cells.",
            noisy.join(", ")
        )?;
    }
    if let Some(v) = reference.and_then(|r| r.get("versions")) {
        writeln!(out, "\nReferences: {v}")?;
    }
    writeln!(
        out,
        "IPOT: beta 0.5, 50 iterations, k = 1. Sinkhorn: eps {SINKHORN_REG}, exactly {SINKHORN_ITERS} iterations on both sides."
    )?;
    print!("{out}");
    Ok(rows)
}
