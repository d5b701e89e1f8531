//! The language-model head of generative models: hidden states to
//! next-token logits, with the output matrix tied to the word embeddings.
//!
//! Laid out as BERT's `cls.predictions` (`dense → GELU → LayerNorm`, then
//! `· Eᵀ + bias`): the transform gives the tied projection a space of its
//! own, which a model whose embedding table also feeds the encoder needs
//! more than an untied LM does, and it is what the MLM heads of this
//! workspace use too, so a checkpoint's head carries over.

use burn::module::Param;
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::gelu;

/// Configuration of [`LmHead`].
#[derive(Config, Debug)]
pub struct LmHeadConfig {
    /// Token width.
    pub hidden_size: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// LayerNorm epsilon.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
}

/// `LN(GELU(dense(h))) · Eᵀ + bias`, `E` the `[V, H]` word embeddings.
#[derive(Module, Debug)]
pub struct LmHead<B: Backend> {
    /// The transform `[H, H]` before the tied decoder.
    pub dense: Linear<B>,
    /// LayerNorm after the transform.
    pub layer_norm: LayerNorm<B>,
    /// `[V]` output bias.
    pub bias: Param<Tensor<B, 1>>,
}

impl LmHeadConfig {
    /// The head: dense, norm, output bias.
    pub fn init<B: Backend>(&self, device: &B::Device) -> LmHead<B> {
        LmHead {
            dense: LinearConfig::new(self.hidden_size, self.hidden_size).init(device),
            layer_norm: LayerNormConfig::new(self.hidden_size)
                .with_epsilon(self.layer_norm_eps)
                .init(device),
            bias: Initializer::Zeros.init([self.vocab_size], device),
        }
    }
}

impl<B: Backend> LmHead<B> {
    /// `hidden` `[B, T, H]`, `word_embeddings` `[V, H]` → logits `[B, T, V]`.
    pub fn forward(&self, hidden: Tensor<B, 3>, word_embeddings: Tensor<B, 2>) -> Tensor<B, 3> {
        let [batch, len, width] = hidden.dims();
        let [vocab, _] = word_embeddings.dims();
        let h = self
            .layer_norm
            .forward(gelu(self.dense.forward(hidden)))
            .reshape([batch * len, width]);
        let logits = h.matmul(word_embeddings.transpose()) + self.bias.val().unsqueeze::<2>();
        logits.reshape([batch, len, vocab])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::{Distribution, Tolerance};

    #[test]
    fn logits_are_dot_products_with_the_embeddings_plus_bias() {
        let device = Default::default();
        let mut head = LmHeadConfig::new(4, 5).init::<NdArray>(&device);
        head.bias = Param::from_tensor(Tensor::random([5], Distribution::Default, &device));
        let hidden = Tensor::<NdArray, 3>::random([2, 3, 4], Distribution::Default, &device);
        let embeddings = Tensor::<NdArray, 2>::random([5, 4], Distribution::Default, &device);
        let logits = head.forward(hidden.clone(), embeddings.clone());
        assert_eq!(logits.dims(), [2, 3, 5]);
        // Row (1, 2), token 3, by hand.
        let h: Tensor<NdArray, 1> = hidden.slice([1..2, 2..3]).reshape([4]);
        let t = head
            .layer_norm
            .forward(gelu(head.dense.forward(h.unsqueeze::<2>())))
            .reshape([4]);
        let expected =
            (t * embeddings.narrow(0, 3, 1).reshape([4])).sum() + head.bias.val().narrow(0, 3, 1);
        logits
            .slice([1..2, 2..3, 3..4])
            .reshape([1])
            .into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-5));
    }
}
