//! The `uniter-bench` step (docs/benchmarks.md, "Training step"): UNITER's
//! single-stream model with MLM + ITM (survey §5) over BERT-sized text and
//! detector regions. [`inputs`] generates one seeded batch (and writes it
//! as `.npy` files for `benches/reference/uniter_step.py`); [`measure`]
//! times vlp's training or forward-only steps on it. Training runs in
//! micro-batches side by side when asked, each loss weighted by its share
//! of the masked tokens and pairs so that the summed gradient is the whole
//! batch's.

pub mod inputs;
pub mod measure;

pub use inputs::{Inputs, Shape, HEADLINE, VOCAB_SIZE};
pub use measure::{peak_rss_mib, Measurement, Phases, StepSettings, ONLY_IN_VLP};

/// What one measurement runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward, backward and AdamW update.
    Train,
    /// Forward only, no autodiff, dropout off.
    Infer,
}

impl Mode {
    /// `train` or `infer`, as the reports and the reference script name it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Train => "train",
            Mode::Infer => "infer",
        }
    }
}
