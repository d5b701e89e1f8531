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

impl<B: Backend> MultiHeadSelfAttention<B> {
    /// `x` `[B, S, H]`, `bias` `[B, 1, 1, S]` from [`padding_bias`] → `[B, S, H]`.
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
