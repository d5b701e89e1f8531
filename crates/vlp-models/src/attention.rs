//! Multi-head attention (BERT's `attention.self` plus the output projection
//! `attention.output.dense`): self-attention, cross-attention to another
//! sequence, and incremental decoding with a key/value cache.

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::config_error::{check_heads, or_panic, ConfigError};

/// Configuration of [`MultiHeadAttention`].
#[derive(Config, Debug)]
pub struct MultiHeadAttentionConfig {
    /// Model width; must be a multiple of `num_heads`.
    pub hidden_size: usize,
    /// Number of attention heads.
    pub num_heads: usize,
    /// Width of the sequence keys and values are read from, when it differs
    /// from `hidden_size` (cross-attention to a wider or narrower encoder).
    #[config(default = "None")]
    pub context_size: Option<usize>,
    /// Dropout on the attention probabilities.
    #[config(default = 0.1)]
    pub dropout: f64,
}

/// `softmax(QKᵀ/√d + bias) V`, heads concatenated and projected back to `H`.
#[derive(Module, Debug)]
pub struct MultiHeadAttention<B: Backend> {
    /// Query projection `[H, H]`.
    pub query: Linear<B>,
    /// Key projection `[C, H]` (`C`: the context width).
    pub key: Linear<B>,
    /// Value projection `[C, H]`.
    pub value: Linear<B>,
    /// Output projection (`attention.output.dense` in BERT).
    pub output: Linear<B>,
    /// Dropout on the attention probabilities.
    pub dropout: Dropout,
    /// Number of heads.
    pub num_heads: usize,
}

/// Keys and values split into heads, `[B, heads, S, d]` each: what a decoder
/// caches between steps, and what cross-attention computes once per
/// encoder output.
#[derive(Debug, Clone)]
pub struct KeyValue<B: Backend> {
    /// Keys `[B, heads, S, d]`.
    pub key: Tensor<B, 4>,
    /// Values `[B, heads, S, d]`.
    pub value: Tensor<B, 4>,
}

impl<B: Backend> KeyValue<B> {
    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.key.dims()[2]
    }

    /// Whether no position is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// These positions followed by `next`'s.
    pub fn append(self, next: KeyValue<B>) -> Self {
        Self {
            key: Tensor::cat(vec![self.key, next.key], 2),
            value: Tensor::cat(vec![self.value, next.value], 2),
        }
    }

    /// The rows `indices` `[N]` of the batch (beam search reorders its
    /// hypotheses this way).
    pub fn select(self, indices: Tensor<B, 1, Int>) -> Self {
        Self {
            key: self.key.select(0, indices.clone()),
            value: self.value.select(0, indices),
        }
    }
}

impl MultiHeadAttentionConfig {
    /// Whether `num_heads` splits `hidden_size`; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_heads("hidden_size", self.hidden_size, "num_heads", self.num_heads)
    }

    /// The attention block, its projections initialised in the order
    /// query, key, value, output.
    ///
    /// # Panics
    ///
    /// When [`validate`](Self::validate) fails, with its message.
    pub fn init<B: Backend>(&self, device: &B::Device) -> MultiHeadAttention<B> {
        or_panic(self.validate());
        let context = self.context_size.unwrap_or(self.hidden_size);
        let linear = |input| LinearConfig::new(input, self.hidden_size).init(device);
        MultiHeadAttention {
            query: linear(self.hidden_size),
            key: linear(context),
            value: linear(context),
            output: linear(self.hidden_size),
            dropout: DropoutConfig::new(self.dropout).init(),
            num_heads: self.num_heads,
        }
    }
}

/// `softmax(QKᵀ/√d + bias) V` with dropout on the probabilities, heads
/// merged: `query` `[B, heads, Q, d]`, `key` and `value` `[B, heads, K, d]`,
/// `bias` broadcastable to `[B, heads, Q, K]` → `[B, Q, heads·d]`. The
/// training path of [`MultiHeadAttention`] and ViLBERT's co-attention.
pub(crate) fn scaled_dot_product<B: Backend>(
    query: Tensor<B, 4>,
    key: Tensor<B, 4>,
    value: Tensor<B, 4>,
    bias: Option<Tensor<B, 4>>,
    dropout: &Dropout,
) -> Tensor<B, 3> {
    let [batch, heads, queries, head_dim] = query.dims();
    let scores = query
        .matmul(key.swap_dims(2, 3))
        .div_scalar((head_dim as f32).sqrt());
    let scores = match bias {
        Some(bias) => scores + bias,
        None => scores,
    };
    dropout
        .forward(softmax(scores, 3))
        .matmul(value)
        .swap_dims(1, 2)
        .reshape([batch, queries, heads * head_dim])
}

impl<B: Backend> MultiHeadAttention<B> {
    /// Self-attention: `x` `[B, S, H]`, `bias` broadcastable to
    /// `[B, heads, S, S]` (from [`AttentionMask`](crate::AttentionMask)) → `[B, S, H]`.
    pub fn forward(&self, x: Tensor<B, 3>, bias: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        let key_value = self.key_value(x.clone());
        self.attend(x, &key_value, bias)
    }

    /// Cross-attention: queries from `x` `[B, Q, H]`, keys and values from
    /// `context` `[B, K, C]`; `bias` broadcastable to `[B, heads, Q, K]` → `[B, Q, H]`.
    pub fn forward_cross(
        &self,
        x: Tensor<B, 3>,
        context: Tensor<B, 3>,
        bias: Option<Tensor<B, 4>>,
    ) -> Tensor<B, 3> {
        let key_value = self.key_value(context);
        self.attend(x, &key_value, bias)
    }

    /// The attention probabilities `softmax(QKᵀ/√d + bias)` of queries from
    /// `x` `[B, Q, H]` over keys from `context` `[B, K, C]`, without
    /// dropout → `[B, heads, Q, K]`: what [`attend`](Self::attend) mixes
    /// the values by, for pictures and probes of a trained model.
    pub fn probabilities(
        &self,
        x: Tensor<B, 3>,
        context: Tensor<B, 3>,
        bias: Option<Tensor<B, 4>>,
    ) -> Tensor<B, 4> {
        let query = self.split_heads(self.query.forward(x));
        let key = self.split_heads(self.key.forward(context));
        let [_, _, _, head_dim] = query.dims();
        let scores = query
            .matmul(key.swap_dims(2, 3))
            .div_scalar((head_dim as f32).sqrt());
        softmax(
            match bias {
                Some(bias) => scores + bias,
                None => scores,
            },
            3,
        )
    }

    /// `[B, S, C]` → the keys and values of `S` positions.
    pub fn key_value(&self, context: Tensor<B, 3>) -> KeyValue<B> {
        KeyValue {
            key: self.split_heads(self.key.forward(context.clone())),
            value: self.split_heads(self.value.forward(context)),
        }
    }

    /// Queries from `x` `[B, Q, H]` over precomputed keys and values
    /// (`[B, heads, K, d]`) → `[B, Q, H]`.
    pub fn attend(
        &self,
        x: Tensor<B, 3>,
        key_value: &KeyValue<B>,
        bias: Option<Tensor<B, 4>>,
    ) -> Tensor<B, 3> {
        let [batch, queries, hidden] = x.dims();
        let query = self.split_heads(self.query.forward(x));
        if !B::ad_enabled(&query.device()) {
            // Inference: no dropout and no graph, so the backend's fused
            // attention applies (Flex: one pass per head without the
            // intermediate tensors). Its bias must match the scores in the
            // last two dimensions; batch and heads may broadcast.
            let [_, _, keys, _] = key_value.key.dims();
            let bias = bias.map(|bias| {
                let [bias_batch, _, _, _] = bias.dims();
                bias.expand([bias_batch, 1, queries, keys])
            });
            return self.output.forward(
                attention(
                    query,
                    key_value.key.clone(),
                    key_value.value.clone(),
                    None,
                    bias,
                    AttentionModuleOptions::default(),
                )
                .swap_dims(1, 2)
                .reshape([batch, queries, hidden]),
            );
        }
        self.output.forward(scaled_dot_product(
            query,
            key_value.key.clone(),
            key_value.value.clone(),
            bias,
            &self.dropout,
        ))
    }

    /// One decoding step of self-attention: the new positions `x` `[B, N, H]`
    /// attend to the `cache` of earlier positions and to themselves. Returns
    /// the output `[B, N, H]` and the cache extended by `N` positions. `bias`
    /// covers the `N` queries over all `cache + N` keys.
    pub fn forward_cached(
        &self,
        x: Tensor<B, 3>,
        cache: Option<KeyValue<B>>,
        bias: Option<Tensor<B, 4>>,
    ) -> (Tensor<B, 3>, KeyValue<B>) {
        let new = self.key_value(x.clone());
        let key_value = match cache {
            Some(cache) => cache.append(new),
            None => new,
        };
        (self.attend(x, &key_value, bias), key_value)
    }

    /// `[B, S, H]` → `[B, heads, S, H / heads]`.
    fn split_heads(&self, t: Tensor<B, 3>) -> Tensor<B, 4> {
        let [batch, len, hidden] = t.dims();
        t.reshape([batch, len, self.num_heads, hidden / self.num_heads])
            .swap_dims(1, 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AttentionMask;
    use burn::backend::NdArray;
    use burn::tensor::{Distribution, TensorData, Tolerance};

    #[test]
    fn padding_changes_nothing_for_real_tokens() {
        let device = Default::default();
        let attention = MultiHeadAttentionConfig::new(8, 2)
            .with_dropout(0.0)
            .init::<NdArray>(&device);
        let x = Tensor::<NdArray, 3>::random([1, 3, 8], Distribution::Default, &device);
        let unpadded = attention.forward(x.clone(), None);
        // The same three tokens followed by two padding tokens of arbitrary value.
        let padded_x = Tensor::cat(
            vec![
                x,
                Tensor::random([1, 2, 8], Distribution::Default, &device) * 100.0,
            ],
            1,
        );
        let padding = Tensor::<NdArray, 2, Bool>::from_data(
            TensorData::new(vec![false, false, false, true, true], [1, 5]),
            &device,
        );
        let padded = attention
            .forward(padded_x, AttentionMask::padding(padding).bias())
            .slice([0..1, 0..3]);
        padded
            .into_data()
            .assert_approx_eq::<f32>(&unpadded.into_data(), Tolerance::absolute(1e-5));
    }

    #[test]
    fn causal_attention_ignores_later_tokens() {
        let device = Default::default();
        let attention = MultiHeadAttentionConfig::new(8, 2)
            .with_dropout(0.0)
            .init::<NdArray>(&device);
        let x = Tensor::<NdArray, 3>::random([1, 5, 8], Distribution::Default, &device);
        let full = attention.forward(x.clone(), AttentionMask::causal(5, &device).bias());
        // Changing the last two tokens leaves the first three outputs as they were.
        let changed = x.slice_assign([0..1, 3..5], Tensor::ones([1, 2, 8], &device) * 50.0);
        let after = attention.forward(changed, AttentionMask::causal(5, &device).bias());
        after
            .clone()
            .slice([0..1, 0..3])
            .into_data()
            .assert_approx_eq::<f32>(
                &full.clone().slice([0..1, 0..3]).into_data(),
                Tolerance::absolute(1e-6),
            );
        assert!((after - full).slice([0..1, 3..5]).abs().max().into_scalar() > 1e-3);
    }

    #[test]
    fn one_head_matches_the_formula() {
        let device = Default::default();
        let attention = MultiHeadAttentionConfig::new(4, 1)
            .with_dropout(0.0)
            .init::<NdArray>(&device);
        let x = Tensor::<NdArray, 3>::random([1, 3, 4], Distribution::Default, &device);
        let x2: Tensor<NdArray, 2> = x.clone().reshape([3, 4]);
        let q = attention.query.forward(x2.clone());
        let k = attention.key.forward(x2.clone());
        let v = attention.value.forward(x2);
        let probs = softmax(q.matmul(k.transpose()) / 2.0, 1);
        let expected = attention.output.forward(probs.matmul(v));
        let got: Tensor<NdArray, 2> = attention.forward(x, None).reshape([3, 4]);
        got.into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-5));
    }

    #[test]
    fn cached_steps_equal_causal_attention_over_the_whole_sequence() {
        let device = Default::default();
        let attention = MultiHeadAttentionConfig::new(8, 2)
            .with_dropout(0.0)
            .init::<NdArray>(&device);
        let x = Tensor::<NdArray, 3>::random([2, 5, 8], Distribution::Default, &device);
        let full = attention.forward(x.clone(), AttentionMask::causal(5, &device).bias());
        // Two positions, then one at a time.
        let causal = AttentionMask::<NdArray>::causal(5, &device);
        let (first, mut cache) = attention.forward_cached(
            x.clone().narrow(1, 0, 2),
            None,
            causal
                .clone()
                .query_rows(0, 2)
                .bias()
                .map(|b| b.narrow(3, 0, 2)),
        );
        let mut outputs = vec![first];
        for t in 2..5 {
            let (out, next) =
                attention.forward_cached(x.clone().narrow(1, t, 1), Some(cache), None);
            assert_eq!(next.len(), t + 1);
            outputs.push(out);
            cache = next;
        }
        Tensor::cat(outputs, 1)
            .into_data()
            .assert_approx_eq::<f32>(&full.into_data(), Tolerance::absolute(1e-6));
    }

    #[test]
    fn cross_attention_reads_the_context_and_ignores_its_padding() {
        let device = Default::default();
        let attention = MultiHeadAttentionConfig::new(8, 2)
            .with_context_size(Some(6))
            .with_dropout(0.0)
            .init::<NdArray>(&device);
        let x = Tensor::<NdArray, 3>::random([1, 3, 8], Distribution::Default, &device);
        let context = Tensor::<NdArray, 3>::random([1, 4, 6], Distribution::Default, &device);
        let padding = Tensor::<NdArray, 2, Bool>::from_data(
            TensorData::new(vec![false, false, true, true], [1, 4]),
            &device,
        );
        let short = attention.forward_cross(x.clone(), context.clone().narrow(1, 0, 2), None);
        let padded = attention.forward_cross(
            x.clone(),
            context.clone(),
            AttentionMask::padding(padding).bias(),
        );
        padded
            .into_data()
            .assert_approx_eq::<f32>(&short.clone().into_data(), Tolerance::absolute(1e-6));
        let unpadded = attention.forward_cross(x, context, None);
        assert!((unpadded - short).abs().max().into_scalar() > 1e-4);
    }

    #[test]
    fn the_fused_inference_path_equals_the_training_path() {
        use burn::backend::Autodiff;
        use burn::module::AutodiffModule;
        let device = Default::default();
        let attention = MultiHeadAttentionConfig::new(8, 2)
            .with_dropout(0.0)
            .init::<Autodiff<NdArray>>(&device);
        let x = Tensor::<Autodiff<NdArray>, 3>::random([2, 5, 8], Distribution::Default, &device);
        let padding = Tensor::<Autodiff<NdArray>, 2, Bool>::from_data(
            TensorData::new(
                vec![
                    false, false, false, true, true, false, false, false, false, false,
                ],
                [2, 5],
            ),
            &device,
        );
        let mask = AttentionMask::causal(5, &device).and_padding(padding.clone());
        let training = attention.forward(x.clone(), mask.bias());
        let inference = attention.valid().forward(
            x.inner(),
            AttentionMask::causal(5, &device)
                .and_padding(padding.inner())
                .bias(),
        );
        inference
            .into_data()
            .assert_approx_eq::<f32>(&training.into_data(), Tolerance::absolute(1e-6));
    }

    /// The probabilities mix the values into the layer's output: merging
    /// `P V` per head and projecting gives `forward` (fused inference path),
    /// and padded keys get none.
    #[test]
    fn probabilities_reproduce_the_output_and_skip_padding() {
        let device = Default::default();
        <NdArray as Backend>::seed(&device, 3);
        let attention = MultiHeadAttentionConfig::new(8, 2)
            .with_dropout(0.0)
            .init::<NdArray>(&device);
        let x = Tensor::<NdArray, 3>::random([2, 5, 8], Distribution::Default, &device);
        let padding = Tensor::<NdArray, 2, Bool>::from_data(
            TensorData::new(
                vec![
                    false, false, false, true, true, false, false, false, false, false,
                ],
                [2, 5],
            ),
            &device,
        );
        let bias = AttentionMask::padding(padding).bias();
        let probs = attention.probabilities(x.clone(), x.clone(), bias.clone());
        assert_eq!(probs.dims(), [2, 2, 5, 5]);
        let padded = probs.clone().slice([0..1, 0..2, 0..5, 3..5]);
        assert!(padded.abs().max().into_scalar() < 1e-6);
        let values = attention.split_heads(attention.value.forward(x.clone()));
        let mixed = attention
            .output
            .forward(probs.matmul(values).swap_dims(1, 2).reshape([2, 5, 8]));
        mixed.into_data().assert_approx_eq::<f32>(
            &attention.forward(x, bias).into_data(),
            Tolerance::absolute(1e-5),
        );
    }
}
