//! What `bench ot` and `bench step` share: the reference interpreter and its
//! virtual environment, child processes that report JSON, thread and
//! contention control, medians, seeded inputs (written as `.npy` files with
//! vlp-data's writer) and the report's pieces.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::de::DeserializeOwned;
use serde::Serialize;
use vlp_data::regions::{npy_bytes, NpyElement};

/// The reference's flags, common to both benches.
#[derive(clap::Args, Debug)]
pub struct ReferenceArgs {
    /// Measure vlp only (skip the Python references).
    #[arg(long)]
    pub no_reference: bool,
    /// Python with the bench's reference requirements installed
    /// (benches/reference/requirements*.txt: numpy, POT, torch; Pillow and
    /// tokenizers for `bench data`) (default: ./.venv/bin/python, created
    /// on demand).
    #[arg(long)]
    pub python: Option<PathBuf>,
}

impl ReferenceArgs {
    /// The reference interpreter, with `modules` importable (installed
    /// from `requirements`, relative to the root, into `./.venv` when
    /// missing); `None` with `--no-reference`.
    pub(crate) fn interpreter(
        &self,
        root: &Path,
        modules: &str,
        requirements: &str,
    ) -> Result<Option<PathBuf>> {
        if self.no_reference {
            return Ok(None);
        }
        match &self.python {
            Some(python) => Ok(Some(python.clone())),
            None => venv_python(root, modules, requirements).map(Some),
        }
    }
}

/// The repository root (the folder above `xtask/`).
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `./.venv/bin/python`, creating the venv and installing `requirements`
/// from PyPI on demand, until `modules` import.
fn venv_python(root: &Path, modules: &str, requirements: &str) -> Result<PathBuf> {
    let venv = root.join(".venv");
    let py = venv.join("bin").join("python");
    let check = |py: &Path| {
        Command::new(py)
            .args(["-c", &format!("import {modules}")])
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
    let req = root.join(requirements);
    eprintln!(
        "installing {} into {} (torch is large; this may take a while) ...",
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

/// Runs `body` in a scratch folder `<temp>/<name>-<pid>`, or in `keep`
/// (left in place) when given; the scratch folder is removed afterwards.
pub(crate) fn in_scratch_dir<T>(
    name: &str,
    keep: Option<&Path>,
    body: impl FnOnce(&Path) -> Result<T>,
) -> Result<T> {
    let dir = match keep {
        Some(dir) => dir.to_path_buf(),
        None => std::env::temp_dir().join(format!("{name}-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = body(&dir);
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// Thread-count variables for a child process: rayon, ndarray's
/// matrixmultiply, OpenMP, MKL and OpenBLAS.
pub(crate) fn thread_env(command: &mut Command, threads: usize) -> &mut Command {
    let threads = threads.to_string();
    for var in [
        "RAYON_NUM_THREADS",
        "MATMUL_NUM_THREADS",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
    ] {
        command.env(var, &threads);
    }
    command
}

/// A Python reference process: [`thread_env`], and without the
/// older-OpenBLAS workarounds, which slow a current numpy down.
pub(crate) fn reference_command(py: &Path, script: &Path, threads: usize) -> Command {
    let mut command = Command::new(py);
    command.arg(script);
    thread_env(&mut command, threads)
        .env_remove("OPENBLAS_CORETYPE")
        .env_remove("OPENBLAS_L2_SIZE");
    command
}

/// Appends `--flag value` for each pair.
pub(crate) fn numeric_flags(command: &mut Command, flags: &[(&str, u64)]) {
    for (flag, value) in flags {
        command.arg(flag).arg(value.to_string());
    }
}

/// Runs `command` (`what` names it in errors) and parses the JSON it wrote to `out`.
pub(crate) fn run_for_json<T: DeserializeOwned>(
    command: &mut Command,
    what: &str,
    out: &Path,
) -> Result<T> {
    let status = command
        .status()
        .with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    let text =
        std::fs::read_to_string(out).with_context(|| format!("reading {}", out.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", out.display()))
}

/// The JSON result row's columns both benches have.
#[derive(Debug, Serialize)]
pub(crate) struct Row {
    pub(crate) benchmark: String,
    /// Median ms (per run of `bench ot`'s solvers, per `bench step` step).
    pub(crate) vlp_ms: f64,
    /// What vlp is compared with.
    pub(crate) reference: String,
    pub(crate) reference_ms: Option<f64>,
    /// `reference_ms / vlp_ms`.
    pub(crate) speedup: Option<f64>,
}

/// Writes the result rows as pretty JSON to `path`, when given.
pub(crate) fn write_json_rows<T: Serialize>(path: Option<&Path>, rows: &[T]) -> Result<()> {
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_string_pretty(rows)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The median of `values` (the mean of the middle two for an even count).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        0.5 * (sorted[mid - 1] + sorted[mid])
    }
}

/// `a / b` as `1.23×` (with `digits` decimals), `-` when either is missing.
pub(crate) fn ratio(a: Option<f64>, b: Option<f64>, digits: usize) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.digits$}×", a / b),
        _ => "-".into(),
    }
}

/// `value` with `digits` decimals, `-` when missing.
pub(crate) fn optional(value: Option<f64>, digits: usize) -> String {
    value.map_or("-".into(), |v| format!("{v:.digits$}"))
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

/// Runs `measure` and returns its result with the share of the CPU other
/// processes used meanwhile.
pub(crate) fn watching_others<T>(measure: impl FnOnce() -> Result<T>) -> Result<(T, Option<f64>)> {
    let before = cpu_snapshot();
    let value = measure()?;
    Ok((value, others_share(before, cpu_snapshot())))
}

/// Measurements where other processes used more than this share of the CPU are flagged.
const NOISY_SHARE: f64 = 0.1;

/// `what (side, N%)` for a measurement other processes disturbed (their
/// share of the CPU above 10%), `None` otherwise.
pub(crate) fn noisy(what: &str, side: &str, share: Option<f64>) -> Option<String> {
    share
        .filter(|&s| s > NOISY_SHARE)
        .map(|s| format!("{what} ({side}, {:.0}%)", s * 100.0))
}

/// The report's line on contention; `noisy` lists the disturbed
/// measurements ([`noisy`]).
pub(crate) fn contention_line(noisy: &[String]) -> String {
    if noisy.is_empty() {
        "Other processes used < 10% of the CPU during every measurement.".into()
    } else {
        format!(
            "WARNING: other processes used > 10% of the CPU while measuring {}; \
             rerun on an idle machine before quoting those cells.",
            noisy.join(", ")
        )
    }
}

/// Writes `values` (row-major, `shape`) as a `.npy` file for the Python
/// references.
pub(crate) fn write_npy<T: NpyElement>(path: &Path, values: &[T], shape: &[usize]) -> Result<()> {
    std::fs::write(path, npy_bytes(values, shape))
        .with_context(|| format!("writing {}", path.display()))
}

/// `len` standard normals from a ChaCha8 stream seeded with `seed`.
pub(crate) fn normals(seed: u64, len: usize) -> Vec<f32> {
    let rng = ChaCha8Rng::seed_from_u64(seed);
    rng.sample_iter(StandardNormal).take(len).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_ratios_and_contention_lines() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(ratio(Some(3.0), Some(2.0), 2), "1.50×");
        assert_eq!(ratio(Some(3.0), None, 1), "-");
        assert_eq!(ratio(Some(3.0), Some(0.0), 1), "-");
        assert_eq!(optional(Some(2.345), 1), "2.3");
        assert_eq!(noisy("b8", "vlp", Some(0.05)), None);
        let flagged = [
            noisy("b8", "vlp", Some(0.25)).unwrap(),
            noisy("b32", "PyTorch", Some(0.5)).unwrap(),
        ];
        assert_eq!(
            contention_line(&flagged),
            "WARNING: other processes used > 10% of the CPU while measuring b8 (vlp, 25%), \
             b32 (PyTorch, 50%); rerun on an idle machine before quoting those cells."
        );
        assert!(contention_line(&[]).starts_with("Other processes used < 10%"));
    }
}
