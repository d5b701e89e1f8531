//! A stack of transformer layers over one token sequence.

use burn::nn::{LayerNorm, LayerNormConfig};
use burn::prelude::*;

use crate::layer::{CrossContext, TransformerLayer, TransformerLayerConfig};
use crate::mask::AttentionMask;

/// Configuration of [`TransformerEncoder`].
#[derive(Config, Debug)]
pub struct TransformerEncoderConfig {
    /// Settings shared by every layer.
    pub layer: TransformerLayerConfig,
    /// Number of layers.
    pub num_layers: usize,
}

/// `[B, S, H] → [B, S, H]`. Pre-norm stacks end with a final LayerNorm.
#[derive(Module, Debug)]
pub struct TransformerEncoder<B: Backend> {
    /// The layers.
    pub layer: Vec<TransformerLayer<B>>,
    /// Final LayerNorm of pre-norm stacks.
    pub final_norm: Option<LayerNorm<B>>,
}

impl TransformerEncoderConfig {
    /// The stack, layer by layer.
    ///
    /// # Panics
    ///
    /// When the layer config is invalid ([`TransformerLayerConfig::validate`]).
    pub fn init<B: Backend>(&self, device: &B::Device) -> TransformerEncoder<B> {
        TransformerEncoder {
            layer: (0..self.num_layers)
                .map(|_| self.layer.init(device))
                .collect(),
            final_norm: self.layer.norm_first.then(|| {
                LayerNormConfig::new(self.layer.hidden_size)
                    .with_epsilon(self.layer.layer_norm_eps)
                    .init(device)
            }),
        }
    }
}

impl<B: Backend> TransformerEncoder<B> {
    /// `x` `[B, S, H]`; `padding` `[B, S]` is `true` at positions no token may attend to.
    pub fn forward(&self, x: Tensor<B, 3>, padding: Option<Tensor<B, 2, Bool>>) -> Tensor<B, 3> {
        self.forward_with_bias(x, padding.and_then(|p| AttentionMask::padding(p).bias()))
    }

    /// `x` `[B, S, H]` with an additive attention bias broadcastable to
    /// `[B, heads, S, S]`, e.g. a padding bias plus a causal one.
    pub fn forward_with_bias(&self, x: Tensor<B, 3>, bias: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        self.forward_with_context(x, bias, None)
    }

    /// The last layer's self-attention probabilities `[B, heads, S, S]` on
    /// `x` `[B, S, H]` with `padding` as in [`forward`](Self::forward);
    /// `None` for a stack without layers.
    pub fn last_attention(
        &self,
        x: Tensor<B, 3>,
        padding: Option<Tensor<B, 2, Bool>>,
    ) -> Option<Tensor<B, 4>> {
        let bias = padding.and_then(|p| AttentionMask::padding(p).bias());
        let (last, earlier) = self.layer.split_last()?;
        let x = earlier
            .iter()
            .fold(x, |x, layer| layer.forward(x, bias.clone()));
        Some(last.attention_probabilities(x, bias))
    }

    /// As [`forward_with_bias`](Self::forward_with_bias), with every layer
    /// that has cross-attention reading `context` (a decoder, fusion layers).
    pub fn forward_with_context(
        &self,
        x: Tensor<B, 3>,
        bias: Option<Tensor<B, 4>>,
        context: Option<&CrossContext<B>>,
    ) -> Tensor<B, 3> {
        let x = self.layer.iter().fold(x, |x, layer| {
            layer.forward_with_context(x, bias.clone(), context)
        });
        match &self.final_norm {
            Some(norm) => norm.forward(x),
            None => x,
        }
    }
}
