//! Masked language modelling (survey §4.1): predict the original ids of the
//! masked text tokens from the fused sequence. The head runs on the masked
//! positions only, and its decoder is tied to the word embeddings (BERT).

use burn::module::Param;
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::gelu;

use crate::loss::cross_entropy;

/// Configuration of [`MlmHead`].
#[derive(Config, Debug)]
pub struct MlmHeadConfig {
    /// Width `H` of the fused text tokens.
    pub hidden_size: usize,
    /// Vocabulary size `V` (the tied decoder's rows).
    pub vocab_size: usize,
    /// LayerNorm epsilon (BERT: 1e-12).
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
}

/// `LN(GELU(dense(h))) · Eᵀ + bias`, with `E` the word embedding matrix
/// (BERT's `cls.predictions`).
#[derive(Module, Debug)]
pub struct MlmHead<B: Backend> {
    /// `H → H` transform.
    pub dense: Linear<B>,
    /// LayerNorm after the GELU.
    pub layer_norm: LayerNorm<B>,
    /// `[V]` output bias (the decoder weight is the tied word embedding).
    pub bias: Param<Tensor<B, 1>>,
}

impl MlmHeadConfig {
    /// The head: transform, LayerNorm, zero output bias.
    pub fn init<B: Backend>(&self, device: &B::Device) -> MlmHead<B> {
        MlmHead {
            dense: LinearConfig::new(self.hidden_size, self.hidden_size).init(device),
            layer_norm: LayerNormConfig::new(self.hidden_size)
                .with_epsilon(self.layer_norm_eps)
                .init(device),
            bias: Initializer::Zeros.init([self.vocab_size], device),
        }
    }
}

/// The rows of `hidden` `[B, T, H]` at flat positions `positions` `[N]`
/// (`row * T + t`) → `[N, H]`.
pub fn gather_positions<B: Backend>(
    hidden: Tensor<B, 3>,
    positions: Tensor<B, 1, Int>,
) -> Tensor<B, 2> {
    let [batch, seq_len, width] = hidden.dims();
    hidden
        .reshape([batch * seq_len, width])
        .select(0, positions)
}

impl<B: Backend> MlmHead<B> {
    /// `masked_hidden` `[N, H]`, `word_embeddings` `[V, H]` → logits `[N, V]`.
    pub fn forward(
        &self,
        masked_hidden: Tensor<B, 2>,
        word_embeddings: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        let transformed = self
            .layer_norm
            .forward(gelu(self.dense.forward(masked_hidden)));
        transformed.matmul(word_embeddings.transpose()) + self.bias.val().unsqueeze::<2>()
    }
}

/// MLM loss: mean cross-entropy over the masked positions.
pub fn mlm_loss<B: Backend>(logits: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    cross_entropy(logits, labels)
}
