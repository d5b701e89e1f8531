//! One transformer layer: self-attention, optionally cross-attention to
//! another sequence (a decoder, ALBEF's fusion layers), and feed-forward,
//! each in a residual branch with LayerNorm, either before the branch
//! (pre-norm, ViT) or after the residual sum (post-norm, BERT).

use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig};
use burn::prelude::*;

use crate::attention::{KeyValue, MultiHeadAttention, MultiHeadAttentionConfig};
use crate::config_error::{check_heads, ConfigError};
use crate::feed_forward::{Activation, FeedForward, FeedForwardConfig};

/// Configuration of [`TransformerLayer`].
#[derive(Config, Debug)]
pub struct TransformerLayerConfig {
    /// Token width.
    pub hidden_size: usize,
    /// Attention heads; must divide `hidden_size`.
    pub num_heads: usize,
    /// Feed-forward inner width.
    pub intermediate_size: usize,
    /// Dropout on attention probabilities and on every residual branch.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Pre-norm (`x + f(LN(x))`) when true, post-norm (`LN(x + f(x))`) when false.
    #[config(default = true)]
    pub norm_first: bool,
    /// LayerNorm epsilon.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Non-linearity of the feed-forward block.
    #[config(default = "Activation::Gelu")]
    pub activation: Activation,
    /// Add a cross-attention branch between self-attention and feed-forward
    /// (BERT's `crossattention`, a transformer decoder's encoder attention).
    #[config(default = false)]
    pub cross_attention: bool,
    /// Width of the sequence cross-attention reads, when not `hidden_size`.
    #[config(default = "None")]
    pub context_size: Option<usize>,
}

/// One layer: `[B, S, H]` → `[B, S, H]`.
#[derive(Module, Debug)]
pub struct TransformerLayer<B: Backend> {
    /// Self-attention (`attention.self` + `attention.output.dense` in BERT).
    pub attention: MultiHeadAttention<B>,
    /// LayerNorm of the attention branch (`attention.output.LayerNorm` in BERT).
    pub attention_norm: LayerNorm<B>,
    /// Dropout on the attention branches.
    pub attention_dropout: Dropout,
    /// BERT's `crossattention` (with `crossattention.output.LayerNorm`).
    pub cross_attention: Option<MultiHeadAttention<B>>,
    /// LayerNorm of the cross-attention branch.
    pub cross_attention_norm: Option<LayerNorm<B>>,
    /// The feed-forward block.
    pub feed_forward: FeedForward<B>,
    /// LayerNorm of the feed-forward branch (`output.LayerNorm` in BERT).
    pub output_norm: LayerNorm<B>,
    /// Pre-norm when true, post-norm when false.
    pub norm_first: bool,
}

/// The sequence a layer's cross-attention reads: `hidden` `[B, K, C]` and
/// the bias of its padding (`AttentionMask::padding`, `[B, 1, 1, K]`).
#[derive(Debug, Clone)]
pub struct CrossContext<B: Backend> {
    /// The context `[B, K, C]`.
    pub hidden: Tensor<B, 3>,
    /// Its padding bias `[B, 1, 1, K]`, if any.
    pub bias: Option<Tensor<B, 4>>,
}

impl TransformerLayerConfig {
    /// Whether `num_heads` splits `hidden_size`; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_heads("hidden_size", self.hidden_size, "num_heads", self.num_heads)
    }

    /// The layer, parameters in order: self-attention, its norm,
    /// cross-attention and its norm (when on), feed-forward, output norm.
    ///
    /// # Panics
    ///
    /// When [`validate`](Self::validate) fails, with its message.
    pub fn init<B: Backend>(&self, device: &B::Device) -> TransformerLayer<B> {
        let norm = || {
            LayerNormConfig::new(self.hidden_size)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let attention = |context_size| {
            MultiHeadAttentionConfig::new(self.hidden_size, self.num_heads)
                .with_context_size(context_size)
                .with_dropout(self.dropout)
                .init(device)
        };
        TransformerLayer {
            attention: attention(None),
            attention_norm: norm(),
            attention_dropout: DropoutConfig::new(self.dropout).init(),
            cross_attention: self.cross_attention.then(|| attention(self.context_size)),
            cross_attention_norm: self.cross_attention.then(norm),
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
    /// `[B, heads, S, S]` (from [`AttentionMask`](crate::AttentionMask)) →
    /// `[B, S, H]`. A layer with cross-attention skips that branch here (it
    /// then reads text alone, as BLIP's text mode does).
    pub fn forward(&self, x: Tensor<B, 3>, bias: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        self.forward_with_context(x, bias, None)
    }

    /// As [`forward`](Self::forward), with cross-attention to `context` when
    /// the layer has that branch.
    pub fn forward_with_context(
        &self,
        x: Tensor<B, 3>,
        bias: Option<Tensor<B, 4>>,
        context: Option<&CrossContext<B>>,
    ) -> Tensor<B, 3> {
        let x = self.residual(x, &self.attention_norm, |h| {
            self.attention_dropout
                .forward(self.attention.forward(h, bias))
        });
        let x = match (&self.cross_attention, &self.cross_attention_norm, context) {
            (Some(cross), Some(norm), Some(context)) => self.residual(x, norm, |h| {
                self.attention_dropout.forward(cross.forward_cross(
                    h,
                    context.hidden.clone(),
                    context.bias.clone(),
                ))
            }),
            _ => x,
        };
        self.residual(x, &self.output_norm, |h| self.feed_forward.forward(h))
    }

    /// The self-attention probabilities of this layer on its input `x`
    /// `[B, S, H]` (after the pre-norm when it has one) → `[B, heads, S, S]`.
    pub fn attention_probabilities(
        &self,
        x: Tensor<B, 3>,
        bias: Option<Tensor<B, 4>>,
    ) -> Tensor<B, 4> {
        let x = match self.norm_first {
            true => self.attention_norm.forward(x),
            false => x,
        };
        self.attention.probabilities(x.clone(), x, bias)
    }

    /// The keys and values this layer's cross-attention reads from
    /// `context` `[B, K, C]`: computed once per encoder output when decoding.
    /// `None` for a layer without cross-attention.
    pub fn cross_key_value(&self, context: Tensor<B, 3>) -> Option<KeyValue<B>> {
        self.cross_attention
            .as_ref()
            .map(|cross| cross.key_value(context))
    }

    /// One decoding step over the new positions `x` `[B, N, H]`: self-attention
    /// to the `cache` of earlier positions and to themselves (`bias` covers the
    /// `N` queries over all keys), cross-attention to precomputed keys and
    /// values with their bias. Returns `[B, N, H]` and the extended cache.
    pub fn forward_cached(
        &self,
        x: Tensor<B, 3>,
        cache: Option<KeyValue<B>>,
        bias: Option<Tensor<B, 4>>,
        cross: Option<(&KeyValue<B>, Option<Tensor<B, 4>>)>,
    ) -> (Tensor<B, 3>, KeyValue<B>) {
        let mut next_cache = None;
        let x = self.residual(x, &self.attention_norm, |h| {
            let (out, cache) = self.attention.forward_cached(h, cache, bias);
            next_cache = Some(cache);
            self.attention_dropout.forward(out)
        });
        let x = match (&self.cross_attention, &self.cross_attention_norm, cross) {
            (Some(attention), Some(norm), Some((key_value, bias))) => self.residual(x, norm, |h| {
                self.attention_dropout
                    .forward(attention.attend(h, key_value, bias))
            }),
            _ => x,
        };
        let out = self.residual(x, &self.output_norm, |h| self.feed_forward.forward(h));
        (out, next_cache.expect("self-attention ran"))
    }

    /// `x + f(LN(x))` (pre-norm) or `LN(x + f(x))` (post-norm).
    fn residual(
        &self,
        x: Tensor<B, 3>,
        norm: &LayerNorm<B>,
        branch: impl FnOnce(Tensor<B, 3>) -> Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        if self.norm_first {
            x.clone() + branch(norm.forward(x))
        } else {
            norm.forward(x.clone() + branch(x))
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

    #[test]
    fn cross_attention_layer_reads_the_context_and_caches_like_a_full_pass() {
        use crate::AttentionMask;
        use burn::tensor::Tolerance;
        let device = Default::default();
        let layer: TransformerLayer<NdArray> = TransformerLayerConfig::new(8, 2, 16)
            .with_dropout(0.0)
            .with_cross_attention(true)
            .with_context_size(Some(4))
            .init(&device);
        let x = Tensor::<NdArray, 3>::random([2, 4, 8], Distribution::Default, &device);
        let context = CrossContext {
            hidden: Tensor::random([2, 3, 4], Distribution::Default, &device),
            bias: None,
        };
        let causal = AttentionMask::<NdArray>::causal(4, &device);
        let full = layer.forward_with_context(x.clone(), causal.bias(), Some(&context));
        let without = layer.forward(x.clone(), causal.bias());
        assert!((full.clone() - without).abs().max().into_scalar() > 1e-4);

        let cross = layer.cross_key_value(context.hidden.clone()).unwrap();
        let mut cache = None;
        let mut steps = Vec::new();
        for t in 0..4 {
            let (out, next) =
                layer.forward_cached(x.clone().narrow(1, t, 1), cache, None, Some((&cross, None)));
            steps.push(out);
            cache = Some(next);
        }
        Tensor::cat(steps, 1)
            .into_data()
            .assert_approx_eq::<f32>(&full.into_data(), Tolerance::absolute(1e-5));
    }
}
