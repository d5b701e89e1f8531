// TEMPORARY harness for developing xtask/src/bench_ot.rs; removed before hand-off.
#[path = "../src/bench_ot.rs"]
mod bench_ot;
use clap::Parser;
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: bench_ot::BenchOtArgs,
}
fn main() -> anyhow::Result<()> {
    bench_ot::run(&Cli::parse().args)
}
