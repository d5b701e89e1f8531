//! BERT's pooler: `tanh(dense(h[:, 0]))`.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use crate::encoder::TransformerEncoder;

/// Configuration of [`Pooler`].
#[derive(Config, Debug)]
pub struct PoolerConfig {
    /// Token width.
    pub hidden_size: usize,
}

/// BERT's pooler: `[B, S, H]` → `tanh(dense(h[:, 0]))` `[B, H]`.
#[derive(Module, Debug)]
pub struct Pooler<B: Backend> {
    /// `[H, H]` (`pooler.dense`).
    pub dense: Linear<B>,
}

impl PoolerConfig {
    /// The pooler.
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

/// Output of an encoder with an optional `[CLS]` pooler
/// ([`BertModel`](crate::BertModel), [`ViTModel`](crate::ViTModel)).
#[derive(Debug, Clone)]
pub struct PooledOutput<B: Backend> {
    /// `[B, S, H]`, after the stack (and its final LayerNorm, if any).
    pub last_hidden_state: Tensor<B, 3>,
    /// `[B, H]`: `tanh(dense(h[:, 0]))`, when the model has a pooler.
    pub pooled: Option<Tensor<B, 2>>,
}

/// `x` `[B, S, H]` with its `padding` `[B, S]` through `encoder`, then
/// `pooler` on the first token when there is one.
pub(crate) fn encode_and_pool<B: Backend>(
    encoder: &TransformerEncoder<B>,
    pooler: Option<&Pooler<B>>,
    x: Tensor<B, 3>,
    padding: Option<Tensor<B, 2, Bool>>,
) -> PooledOutput<B> {
    let last_hidden_state = encoder.forward(x, padding);
    let pooled = pooler.map(|pooler| pooler.forward(last_hidden_state.clone()));
    PooledOutput {
        last_hidden_state,
        pooled,
    }
}
