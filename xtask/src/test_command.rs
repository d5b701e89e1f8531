//! `cargo xtask test`: the whole test suite, as CI runs it.
//!
//! 1. `cargo xtask assets` (the pretrained checkpoint the import tests
//!    compare against PyTorch; fetched once, then only verified);
//! 2. `cargo fmt --all --check`, `cargo clippy --all-targets` and
//!    `cargo doc --no-deps` with warnings denied (the workspace's lints:
//!    clippy's default set, `missing_docs`), then `cargo test --release
//!    --workspace` (one CPU build of the Burn stack, shared with
//!    `cargo xtask pretrain`);
//! 3. `cargo check -p xtask --features cuda` and `--features wgpu` (the GPU
//!    backends compile without a GPU; the WGPU check is left out when the
//!    smoke test below builds that backend anyway);
//! 4. a forward + backward smoke test on Burn's WGPU backend when a Vulkan
//!    driver is installed (e.g. Debian's lavapipe, `mesa-vulkan-drivers`),
//!    built in the unoptimised `smoke` profile (it rebuilds the Burn stack
//!    with the wgpu feature, and only has to show that backend agrees).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

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
}

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
    crate::assets::run(&crate::assets::AssetsArgs::default())?;
    step("format check", "fmt --all --check")?;
    step(
        "lints",
        "clippy --release --workspace --all-targets -- -D warnings",
    )?;
    let deny = [("RUSTDOCFLAGS", "-D warnings")];
    step_with("docs", "doc --release --workspace --no-deps", &deny)?;
    step("tests", "test --release --workspace")?;
    let wgpu_test = !args.no_wgpu_test && vulkan_available();
    if !args.no_gpu_checks {
        // The smoke test builds the WGPU backend, which checks it too.
        if !wgpu_test {
            step("wgpu compile check", "check -p xtask --features wgpu")?;
        }
        step("cuda compile check", "check -p xtask --features cuda")?;
    }
    if wgpu_test {
        let smoke = "test --profile smoke -p xtask --features wgpu --test wgpu_smoke";
        // It checks values, not speed: CubeCL's least autotuning compiles
        // the fewest candidate kernels (317 s against 343 s on lavapipe).
        step_with(
            "WGPU smoke test",
            smoke,
            &[("CUBECL_AUTOTUNE_LEVEL", "minimal")],
        )?;
    } else if args.no_wgpu_test {
        eprintln!("==> WGPU smoke test: skipped (--no-wgpu-test)");
    } else {
        eprintln!("==> WGPU smoke test: skipped, no Vulkan driver found (apt-get install mesa-vulkan-drivers libvulkan1)");
    }
    eprintln!("==> all done in {:.0}s", started.elapsed().as_secs_f32());
    Ok(())
}
