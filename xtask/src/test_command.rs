//! `cargo xtask test`: the whole test suite, as CI runs it.
//!
//! 1. `cargo xtask assets` (the pretrained checkpoint the import tests
//!    compare against PyTorch; fetched once, then only verified);
//! 2. `cargo fmt --all --check`, `cargo clippy --all-targets` and
//!    `cargo doc --no-deps` with warnings denied (the workspace's lints:
//!    clippy's default set, `missing_docs`), then the tests in release (one
//!    CPU build of the Burn stack, shared with `cargo xtask pretrain`):
//!    `cargo nextest run --release --workspace` and the doctests when
//!    cargo-nextest is installed (each test in a process of its own), else
//!    `cargo test --release --workspace`;
//! 3. `cargo check -p xtask --features cuda` and `--features wgpu` (the GPU
//!    backends compile without a GPU; the WGPU check is left out when the
//!    smoke test below builds that backend anyway);
//! 4. a forward + backward smoke test on Burn's WGPU backend when a Vulkan
//!    driver is installed (e.g. Debian's lavapipe, `mesa-vulkan-drivers`),
//!    built in the unoptimised `smoke` profile (it rebuilds the Burn stack
//!    with the wgpu feature, and only has to show that backend agrees).
//!    Under `--time-limit` it runs only while [`SMOKE_MINUTES`] are left,
//!    so a slow CI host skips it (and says so) rather than hit its limit.

use std::path::Path;
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};

/// Options of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Skip the `cargo check` of the GPU backends.
    #[arg(long)]
    pub no_gpu_checks: bool,
    /// Skip the WGPU smoke test even when Vulkan is available.
    #[arg(long)]
    pub no_wgpu_test: bool,
    /// The suite's wall-clock limit in minutes (CI's), counted from
    /// `--started-at`: the WGPU smoke test, which rebuilds Burn with the
    /// wgpu feature, is skipped (and says so) when less than 25 minutes
    /// would be left for it.
    #[arg(long, value_name = "MINUTES")]
    pub time_limit: Option<u64>,
    /// When the suite started, in Unix seconds (default: when this
    /// command started), e.g. before CI installed and built anything.
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub started_at: Option<u64>,
}

/// Minutes kept for the WGPU smoke test under `--time-limit`: its build and
/// run took 21.5 min on the slowest 2-core host seen (1,292 s).
pub const SMOKE_MINUTES: u64 = 25;

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

fn step(title: &str, args: &str) -> anyhow::Result<()> {
    step_with(title, args, &[])
}

/// Runs `cargo ARGS` (split at spaces) with the environment variables `env` set.
fn step_with(title: &str, args: &str, env: &[(&str, &str)]) -> anyhow::Result<()> {
    eprintln!("==> {title}: cargo {args}");
    let started = Instant::now();
    let status = Command::new(cargo())
        .args(args.split(' '))
        .envs(env.iter().copied())
        .status()
        .with_context(|| format!("cannot run cargo for {title}"))?;
    eprintln!(
        "==> {title}: {} in {:.0}s",
        if status.success() { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f32()
    );
    if !status.success() {
        bail!("{title} failed ({status})");
    }
    Ok(())
}

/// Whether cargo-nextest is installed. It runs every test in a process of
/// its own: Burn's CPU backends draw from one generator per process, so
/// under `cargo test` a test that seeds and draws twice sees the draws of
/// the tests running beside it as threads (each crate's tests hold a lock
/// for that; nextest makes it hold by construction). It also schedules the
/// tests of every binary together rather than one binary after another.
fn nextest_available() -> bool {
    Command::new(cargo())
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Whether a Vulkan loader and at least one driver manifest are installed.
pub fn vulkan_available() -> bool {
    let loader = [
        "/usr/lib/x86_64-linux-gnu/libvulkan.so.1",
        "/usr/lib/aarch64-linux-gnu/libvulkan.so.1",
        "/usr/lib/libvulkan.so.1",
    ]
    .iter()
    .any(|path| Path::new(path).exists());
    let drivers = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"]
        .iter()
        .any(|dir| {
            std::fs::read_dir(dir).is_ok_and(|entries| {
                entries
                    .flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "json"))
            })
        });
    loader && drivers
}

/// Runs the whole suite as CI does.
pub fn run(args: &TestArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let suite_started = args.started_at.unwrap_or_else(unix_now);
    crate::assets::run(&crate::assets::AssetsArgs::default())?;
    step("format check", "fmt --all --check")?;
    step(
        "lints",
        "clippy --release --workspace --all-targets -- -D warnings",
    )?;
    let deny = [("RUSTDOCFLAGS", "-D warnings")];
    step_with("docs", "doc --release --workspace --no-deps", &deny)?;
    if nextest_available() {
        step("tests", "nextest run --release --workspace --no-fail-fast")?;
        // nextest leaves doctests out.
        step("doc tests", "test --release --workspace --doc")?;
    } else {
        eprintln!(
            "==> cargo-nextest not found: `cargo test` runs a binary's tests as threads \
             of one process (cargo install cargo-nextest --locked runs each in its own)"
        );
        step("tests", "test --release --workspace")?;
    }
    if !args.no_gpu_checks {
        step("cuda compile check", "check -p xtask --features cuda")?;
    }
    match smoke_skipped(args, suite_started) {
        None => {
            let smoke = "test --profile smoke -p xtask --features wgpu --test wgpu_smoke";
            // It checks values, not speed: CubeCL's least autotuning compiles
            // the fewest candidate kernels (317 s against 343 s on lavapipe).
            step_with(
                "WGPU smoke test",
                smoke,
                &[("CUBECL_AUTOTUNE_LEVEL", "minimal")],
            )?;
        }
        Some(why) => {
            eprintln!("==> WGPU smoke test: skipped, {why}");
            // The smoke test's build checks the WGPU backend; without it:
            if !args.no_gpu_checks {
                step("wgpu compile check", "check -p xtask --features wgpu")?;
            }
        }
    }
    eprintln!("==> all done in {:.0}s", started.elapsed().as_secs_f32());
    Ok(())
}

/// Unix seconds now.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Why the WGPU smoke test does not run now, if it does not.
fn smoke_skipped(args: &TestArgs, suite_started: u64) -> Option<String> {
    if args.no_wgpu_test {
        return Some("--no-wgpu-test".to_string());
    }
    if !vulkan_available() {
        return Some(
            "no Vulkan driver found (apt-get install mesa-vulkan-drivers libvulkan1)".to_string(),
        );
    }
    let limit = args.time_limit?;
    let spent = unix_now().saturating_sub(suite_started) / 60;
    (spent + SMOKE_MINUTES > limit).then(|| {
        format!(
            "{spent} of --time-limit {limit} minutes spent and it needs up to {SMOKE_MINUTES} \
             (alone: cargo test --profile smoke -p xtask --features wgpu --test wgpu_smoke)"
        )
    })
}
