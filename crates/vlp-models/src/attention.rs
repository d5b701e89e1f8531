//! Multi-head self-attention with a padding mask (BERT's `attention.self`
//! plus the output projection `attention.output.dense`).

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;

/// Configuration of [`MultiHeadSelfAttention`].
#[derive(Config, Debug)]
pub struct MultiHeadSelfAttentionConfig {
    /// Model width; must be a multiple of `num_heads`.
    pub hidden_size: usize,
    /// Number of attention heads.
    pub num_heads: usize,
    /// Dropout on the attention probabilities.
    #[config(default = 0.1)]
    pub dropout: f64,
}

/// `softmax(QKᵀ/√d + mask) V`, heads concatenated and projected back to `H`.
#[derive(Module, Debug)]
pub struct MultiHeadSelfAttention<B: Backend> {
    pub query: Linear<B>,
    pub key: Linear<B>,
    pub value: Linear<B>,
    /// Output projection (`attention.output.dense` in BERT).
    pub output: Linear<B>,
    pub dropout: Dropout,
    pub num_heads: usize,
}

impl MultiHeadSelfAttentionConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> MultiHeadSelfAttention<B> {
        assert!(
            self.hidden_size.is_multiple_of(self.num_heads),
            "hidden size {} is not a multiple of {} heads",
            self.hidden_size,
            self.num_heads
        );
        let linear = || LinearConfig::new(self.hidden_size, self.hidden_size).init(device);
        MultiHeadSelfAttention {
            query: linear(),
            key: linear(),
            value: linear(),
            output: linear(),
            dropout: DropoutConfig::new(self.dropout).init(),
            num_heads: self.num_heads,
        }
    }
}

/// The additive attention bias of a padding mask: `[B, S]` (`true` at
/// padding) → `[B, 1, 1, S]` with a large negative value at padding. Build it
/// once per sequence and share it across layers.
pub fn padding_bias<B: Backend>(padding: Tensor<B, 2, Bool>) -> Tensor<B, 4> {
    let [batch, seq_len] = padding.dims();
    padding
        .float()
        .mul_scalar(-1e9)
        .reshape([batch, 1, 1, seq_len])
}

/// The additive attention bias of causal (left-to-right) attention, as in
/// GPT and CLIP's text tower: `[1, 1, S, S]`, a large negative value where a
/// query would see a later key. Add it to a [`padding_bias`] to combine both.
pub fn causal_bias<B: Backend>(seq_len: usize, device: &B::Device) -> Tensor<B, 4> {
    Tensor::<B, 2>::ones([seq_len, seq_len], device)
        .triu(1)
        .mul_scalar(-1e9)
        .reshape([1, 1, seq_len, seq_len])
}

impl<B: Backend> MultiHeadSelfAttention<B> {
    /// `x` `[B, S, H]`, `bias` broadcastable to `[B, heads, S, S]`
    /// ([`padding_bias`] `[B, 1, 1, S]`, [`causal_bias`] `[1, 1, S, S]` or
    /// their sum) → `[B, S, H]`.
    pub fn forward(&self, x: Tensor<B, 3>, bias: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        let [batch, seq_len, hidden] = x.dims();
        let head_dim = hidden / self.num_heads;
        let heads = |t: Tensor<B, 3>| {
            t.reshape([batch, seq_len, self.num_heads, head_dim])
                .swap_dims(1, 2)
        };
        let q = heads(self.query.forward(x.clone()));
        let k = heads(self.key.forward(x.clone()));
        let v = heads(self.value.forward(x));
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .div_scalar((head_dim as f32).sqrt());
        let scores = match bias {
            Some(bias) => scores + bias,
            None => scores,
        };
        let probs = self.dropout.forward(softmax(scores, 3));
        let context = probs
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch, seq_len, hidden]);
        self.output.forward(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::{Distribution, TensorData, Tolerance};

    #[test]
    fn padding_changes_nothing_for_real_tokens() {
        let device = Default::default();
        let attention = MultiHeadSelfAttentionConfig::new(8, 2)
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
            .forward(padded_x, Some(padding_bias(padding)))
            .slice([0..1, 0..3]);
        padded
            .into_data()
            .assert_approx_eq::<f32>(&unpadded.into_data(), Tolerance::absolute(1e-5));
    }

    #[test]
    fn causal_attention_ignores_later_tokens() {
        let device = Default::default();
        let attention = MultiHeadSelfAttentionConfig::new(8, 2)
            .with_dropout(0.0)
            .init::<NdArray>(&device);
        let x = Tensor::<NdArray, 3>::random([1, 5, 8], Distribution::Default, &device);
        let full = attention.forward(x.clone(), Some(causal_bias(5, &device)));
        // Changing the last two tokens leaves the first three outputs as they were.
        let changed = x.slice_assign([0..1, 3..5], Tensor::ones([1, 2, 8], &device) * 50.0);
        let after = attention.forward(changed, Some(causal_bias(5, &device)));
        after
            .clone()
            .slice([0..1, 0..3])
            .into_data()
            .assert_approx_eq::<f32>(
                &full.clone().slice([0..1, 0..3]).into_data(),
                Tolerance::absolute(1e-5),
            );
        assert!((after - full).slice([0..1, 3..5]).abs().max().into_scalar() > 1e-3);
    }

    #[test]
    fn one_head_matches_the_formula() {
        let device = Default::default();
        let attention = MultiHeadSelfAttentionConfig::new(4, 1)
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
}
