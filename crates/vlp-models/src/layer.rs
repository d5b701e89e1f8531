//! One transformer encoder layer: self-attention and feed-forward, each in a
//! residual branch with LayerNorm, either before the branch (pre-norm, ViT)
//! or after the residual sum (post-norm, BERT).

use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig};
use burn::prelude::*;

use crate::attention::{MultiHeadSelfAttention, MultiHeadSelfAttentionConfig};
use crate::feed_forward::{Activation, FeedForward, FeedForwardConfig};

/// Configuration of [`TransformerLayer`].
#[derive(Config, Debug)]
pub struct TransformerLayerConfig {
    pub hidden_size: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    /// Dropout on attention probabilities and on both residual branches.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Pre-norm (`x + f(LN(x))`) when true, post-norm (`LN(x + f(x))`) when false.
    #[config(default = true)]
    pub norm_first: bool,
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Non-linearity of the feed-forward block.
    #[config(default = "Activation::Gelu")]
    pub activation: Activation,
}

#[derive(Module, Debug)]
pub struct TransformerLayer<B: Backend> {
    pub attention: MultiHeadSelfAttention<B>,
    /// LayerNorm of the attention branch (`attention.output.LayerNorm` in BERT).
    pub attention_norm: LayerNorm<B>,
    pub attention_dropout: Dropout,
    pub feed_forward: FeedForward<B>,
    /// LayerNorm of the feed-forward branch (`output.LayerNorm` in BERT).
    pub output_norm: LayerNorm<B>,
    pub norm_first: bool,
}

impl TransformerLayerConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> TransformerLayer<B> {
        let norm = || {
            LayerNormConfig::new(self.hidden_size)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        TransformerLayer {
            attention: MultiHeadSelfAttentionConfig::new(self.hidden_size, self.num_heads)
                .with_dropout(self.dropout)
                .init(device),
            attention_norm: norm(),
            attention_dropout: DropoutConfig::new(self.dropout).init(),
            feed_forward: FeedForwardConfig::new(self.hidden_size, self.intermediate_size)
                .with_dropout(self.dropout)
                .with_activation(self.activation)
                .init(device),
            output_norm: norm(),
            norm_first: self.norm_first,
        }
    }
}

impl<B: Backend> TransformerLayer<B> {
    /// `x` `[B, S, H]`, optional additive attention bias broadcastable to
    /// `[B, heads, S, S]` (`[B, 1, 1, S]` from [`padding_bias`](crate::padding_bias),
    /// plus [`causal_bias`](crate::causal_bias) for causal attention) → `[B, S, H]`.
    pub fn forward(&self, x: Tensor<B, 3>, bias: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        let attend = |h: Tensor<B, 3>| {
            self.attention_dropout
                .forward(self.attention.forward(h, bias.clone()))
        };
        if self.norm_first {
            let x = x.clone() + attend(self.attention_norm.forward(x));
            x.clone() + self.feed_forward.forward(self.output_norm.forward(x))
        } else {
            let x = self.attention_norm.forward(x.clone() + attend(x));
            self.output_norm
                .forward(x.clone() + self.feed_forward.forward(x))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::Distribution;

    fn layer(norm_first: bool) -> TransformerLayer<NdArray> {
        TransformerLayerConfig::new(8, 2, 16)
            .with_dropout(0.0)
            .with_norm_first(norm_first)
            .init(&Default::default())
    }

    #[test]
    fn post_norm_ends_normalised_and_pre_norm_keeps_the_residual_stream() {
        let x = Tensor::<NdArray, 3>::random(
            [2, 5, 8],
            Distribution::Normal(3.0, 2.0),
            &Default::default(),
        );
        let post = layer(false).forward(x.clone(), None);
        // Post-norm output is a LayerNorm output (gamma 1, beta 0 at init).
        let mean = post.clone().mean_dim(2).abs().max().into_scalar();
        let var = post.var_bias(2).mean().into_scalar();
        assert!(
            mean < 1e-4 && (var - 1.0).abs() < 0.02,
            "mean {mean}, variance {var}"
        );
        // Pre-norm adds branch outputs to the raw input, so its large mean survives.
        let pre = layer(true).forward(x, None);
        assert!(pre.mean().into_scalar() > 1.5);
    }
}
