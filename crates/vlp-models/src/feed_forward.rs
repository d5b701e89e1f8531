//! Position-wise feed-forward block: `dense → GELU → dense` (BERT's
//! `intermediate.dense` and `output.dense`).

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::gelu;

/// Configuration of [`FeedForward`].
#[derive(Config, Debug)]
pub struct FeedForwardConfig {
    pub hidden_size: usize,
    /// Width of the inner layer (4 × hidden in BERT and ViT).
    pub intermediate_size: usize,
    /// Dropout on the output.
    #[config(default = 0.1)]
    pub dropout: f64,
}

/// `[.., H] → [.., I] → GELU → [.., H] → dropout`.
#[derive(Module, Debug)]
pub struct FeedForward<B: Backend> {
    pub intermediate: Linear<B>,
    pub output: Linear<B>,
    pub dropout: Dropout,
}

impl FeedForwardConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> FeedForward<B> {
        FeedForward {
            intermediate: LinearConfig::new(self.hidden_size, self.intermediate_size).init(device),
            output: LinearConfig::new(self.intermediate_size, self.hidden_size).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl<B: Backend> FeedForward<B> {
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let inner = gelu(self.intermediate.forward(x));
        self.dropout.forward(self.output.forward(inner))
    }
}
