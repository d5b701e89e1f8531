//! The integration tests of vlp-objectives, in one binary (one link and one
//! instantiation of the models for the test backends instead of six):
//! losses against PyTorch/NumPy fixtures (`losses_reference`,
//! `objectives_reference`), captioning metrics against pycocoevalcap
//! (`caption_metrics_reference`) and short trainings that must learn (`learns*`).

mod caption_metrics_reference;
mod learns;
mod learns_architectures;
mod learns_simvlm;
mod learns_uniter;
mod losses_reference;
mod objectives_reference;

use vlp_test_support::serial;

/// The seed of the learning tests' models (`VLP_LEARNING_SEED`, default 0):
/// the margins were chosen from runs over several seeds.
fn learning_seed() -> u64 {
    std::env::var("VLP_LEARNING_SEED").map_or(0, |seed| seed.parse().expect("a u64 seed"))
}
