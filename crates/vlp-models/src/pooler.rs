//! BERT's pooler: `tanh(dense(h[:, 0]))`.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

#[derive(Config, Debug)]
pub struct PoolerConfig {
    pub hidden_size: usize,
}

#[derive(Module, Debug)]
pub struct Pooler<B: Backend> {
    pub dense: Linear<B>,
}

impl PoolerConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Pooler<B> {
        Pooler {
            dense: LinearConfig::new(self.hidden_size, self.hidden_size).init(device),
        }
    }
}

impl<B: Backend> Pooler<B> {
    /// `[B, S, H]` → `[B, H]` from the first token.
    pub fn forward(&self, hidden: Tensor<B, 3>) -> Tensor<B, 2> {
        let [batch, _, width] = hidden.dims();
        let first = hidden.slice([0..batch, 0..1]).reshape([batch, width]);
        self.dense.forward(first).tanh()
    }
}
