//! Pre-trains a tiny single-stream model (UNITER-style, survey §3.1) on the
//! synthetic world and evaluates held-out retrieval, in a few lines of Rust:
//!
//! ```sh
//! cargo run --release -p vlp-train --example pretrain_tiny [STEPS]
//! ```
//!
//! The run folder (`config.toml`, `tokenizer.json`, `metrics.jsonl`,
//! `model.mpk`, `eval.json`) goes to `runs/example-pretrain-tiny/`.

use burn::backend::{Autodiff, Flex};
use vlp_train::{presets, MetricsRecord, PretrainConfig, PretrainRun, TrainObserver};

/// Prints each metrics record as it is logged.
struct PrintMetrics;

impl TrainObserver for PrintMetrics {
    fn logged(&mut self, record: &MetricsRecord) -> vlp_train::Result<()> {
        println!("step {:>4}: {}", record.step, record.summary());
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps = match std::env::args().nth(1) {
        Some(steps) => steps.parse()?,
        None => 200,
    };
    // The uniter-tiny preset: detector regions, MLM + ITM + ITC.
    let mut config = PretrainConfig::from_layers(Some(presets::find("uniter-tiny")?), None)?;
    config.steps = steps;
    config.warmup_steps = steps / 10;
    config.log_every = (steps / 10).max(1);
    config.validate()?;
    let run = PretrainRun {
        config,
        out: "runs/example-pretrain-tiny".into(),
        tokenizer: None,
        init_text: None,
        init: None,
    };
    let report = run.run::<Autodiff<Flex>>(&Default::default(), &mut PrintMetrics)?;
    println!("{}", report.table());
    Ok(())
}
