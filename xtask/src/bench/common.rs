//! What the benches share in the runner: the reference interpreter and its
//! virtual environment, child processes that report JSON, thread control
//! and the JSON rows (the statistics are [`vlp_bench::stats`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

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
