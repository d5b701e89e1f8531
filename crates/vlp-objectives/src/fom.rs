//! Frame order modelling (survey §4.7, HERO FOM): some frame positions of a
//! clip are shuffled among themselves (data side, `vlp-data`), and a head on
//! each frame's contextual output classifies the position it came from.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use crate::loss::cross_entropy_with_ignore;

/// Configuration of [`FomHead`].
#[derive(Config, Debug)]
pub struct FomHeadConfig {
    /// Width `H` of the frame outputs.
    pub hidden_size: usize,
    /// Longest clip, in frames: the number of positions to choose from.
    pub max_clip_len: usize,
}

/// `[N, H]` frame outputs → `[N, T_max]` original-position logits.
/// (HERO wraps this projection in a small MLP; a single linear map keeps the
/// head minimal, the temporal encoder below it does the reasoning.)
#[derive(Module, Debug)]
pub struct FomHead<B: Backend> {
    /// `H → T_max` position classifier.
    pub classifier: Linear<B>,
}

impl FomHeadConfig {
    /// The head, initialised on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> FomHead<B> {
        FomHead {
            classifier: LinearConfig::new(self.hidden_size, self.max_clip_len).init(device),
        }
    }
}

impl<B: Backend> FomHead<B> {
    /// `[N, H]` frame outputs → `[N, T_max]` position logits.
    pub fn forward(&self, frames: Tensor<B, 2>) -> Tensor<B, 2> {
        self.classifier.forward(frames)
    }
}

/// Mean cross-entropy over the frames whose target is not `-1` (HERO:
/// `ignore_index=-1`, `reduction='mean'`). `logits` `[N, T_max]`, `targets`
/// `[N]` original positions in `0..T_max` or `-1`. All frames ignored → 0.
pub fn fom_loss<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
) -> crate::Result<Tensor<B, 1>> {
    cross_entropy_with_ignore(logits, targets, 0.0, "FOM targets")
}
