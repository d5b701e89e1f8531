//! ViLBERT's co-attentional transformer block (vilbert-multi-task's
//! `BertConnectionLayer`, the model's `c_layer`): each stream's queries
//! attend to the other stream's keys and values, then each stream has its
//! own feed-forward block.
//!
//! The two streams may have different widths (text 768, image 1024 in
//! ViLBERT-base) and attend in a third, `bi_hidden_size`. Each stream owns
//! one query, key and value projection into that width (`query1/key1/value1`
//! for the image, `query2/key2/value2` for the text): the text's queries meet
//! the image's keys and values, and the image's queries the text's. That
//! sharing of projections across both directions is why this is its own
//! module rather than two [`MultiHeadAttention`](crate::MultiHeadAttention)s.

use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;

use crate::attention::scaled_dot_product;
use crate::config_error::{check_heads, or_panic, ConfigError};
use crate::feed_forward::{FeedForward, FeedForwardConfig};

/// Configuration of [`CoAttentionLayer`].
#[derive(Config, Debug)]
pub struct CoAttentionLayerConfig {
    /// Text width (`hidden_size`).
    pub hidden_size: usize,
    /// Image width (`v_hidden_size`).
    pub v_hidden_size: usize,
    /// Width both streams attend in (`bi_hidden_size`).
    pub bi_hidden_size: usize,
    /// Heads of the co-attention (`bi_num_attention_heads`).
    pub bi_num_heads: usize,
    /// Text feed-forward inner width (`intermediate_size`).
    pub intermediate_size: usize,
    /// Image feed-forward inner width (`v_intermediate_size`).
    pub v_intermediate_size: usize,
    /// Dropout on attention probabilities and residual branches.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// LayerNorm epsilon.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
}

/// `biattention`: the projections of both streams into the shared width.
#[derive(Module, Debug)]
pub struct BiAttention<B: Backend> {
    /// Image projections, `[Hv, Hbi]` each.
    pub query1: Linear<B>,
    /// Image keys `[Hv, Hbi]`.
    pub key1: Linear<B>,
    /// Image values `[Hv, Hbi]`.
    pub value1: Linear<B>,
    /// Text projections, `[H, Hbi]` each.
    pub query2: Linear<B>,
    /// Text keys `[H, Hbi]`.
    pub key2: Linear<B>,
    /// Text values `[H, Hbi]`.
    pub value2: Linear<B>,
    /// Dropout (attention probabilities, or the output branch).
    pub dropout: Dropout,
    /// Heads of the co-attention.
    pub num_heads: usize,
}

/// `biOutput`: each attention result back to its stream's width, residual
/// and post-norm (`dense1`/`LayerNorm1` image, `dense2`/`LayerNorm2` text).
#[derive(Module, Debug)]
pub struct BiOutput<B: Backend> {
    /// Image branch `[Hbi, Hv]`.
    pub dense1: Linear<B>,
    /// The image's post-norm.
    pub layer_norm1: LayerNorm<B>,
    /// Text branch `[Hbi, H]`.
    pub dense2: Linear<B>,
    /// The text's post-norm.
    pub layer_norm2: LayerNorm<B>,
    /// Dropout on both branches before their residuals.
    pub dropout: Dropout,
}

/// One co-attentional block: bi-attention, its output, then each stream's
/// feed-forward (`v_intermediate`/`v_output`, `t_intermediate`/`t_output`).
#[derive(Module, Debug)]
pub struct CoAttentionLayer<B: Backend> {
    /// Both directions of attention (`biattention`).
    pub biattention: BiAttention<B>,
    /// Their projections back, residuals and norms (`biOutput`).
    pub bi_output: BiOutput<B>,
    /// The image's feed-forward (`v_intermediate`, `v_output.dense`).
    pub v_feed_forward: FeedForward<B>,
    /// The image's output norm (`v_output.LayerNorm`).
    pub v_output_norm: LayerNorm<B>,
    /// The text's feed-forward (`t_intermediate`, `t_output.dense`).
    pub t_feed_forward: FeedForward<B>,
    /// The text's output norm (`t_output.LayerNorm`).
    pub t_output_norm: LayerNorm<B>,
}

impl CoAttentionLayerConfig {
    /// Whether `bi_num_heads` splits `bi_hidden_size`; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_heads(
            "bi_hidden_size",
            self.bi_hidden_size,
            "bi_num_heads",
            self.bi_num_heads,
        )
    }

    /// The block, parameters in checkpoint order.
    ///
    /// # Panics
    ///
    /// When [`validate`](Self::validate) fails, with its message.
    pub fn init<B: Backend>(&self, device: &B::Device) -> CoAttentionLayer<B> {
        or_panic(self.validate());
        let linear = |input, output| LinearConfig::new(input, output).init(device);
        let norm = |width| {
            LayerNormConfig::new(width)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let (h, v, bi) = (self.hidden_size, self.v_hidden_size, self.bi_hidden_size);
        CoAttentionLayer {
            biattention: BiAttention {
                query1: linear(v, bi),
                key1: linear(v, bi),
                value1: linear(v, bi),
                query2: linear(h, bi),
                key2: linear(h, bi),
                value2: linear(h, bi),
                dropout: DropoutConfig::new(self.dropout).init(),
                num_heads: self.bi_num_heads,
            },
            bi_output: BiOutput {
                dense1: linear(bi, v),
                layer_norm1: norm(v),
                dense2: linear(bi, h),
                layer_norm2: norm(h),
                dropout: DropoutConfig::new(self.dropout).init(),
            },
            v_feed_forward: FeedForwardConfig::new(v, self.v_intermediate_size)
                .with_dropout(self.dropout)
                .init(device),
            v_output_norm: norm(v),
            t_feed_forward: FeedForwardConfig::new(h, self.intermediate_size)
                .with_dropout(self.dropout)
                .init(device),
            t_output_norm: norm(h),
        }
    }
}

impl<B: Backend> BiAttention<B> {
    /// `text` `[B, T, H]`, `image` `[B, V, Hv]`, each with the padding bias
    /// of its keys (`[B, 1, 1, T]`, `[B, 1, 1, V]`) → the text's view of the
    /// image `[B, T, Hbi]` and the image's view of the text `[B, V, Hbi]`.
    pub fn forward(
        &self,
        text: Tensor<B, 3>,
        text_bias: Option<Tensor<B, 4>>,
        image: Tensor<B, 3>,
        image_bias: Option<Tensor<B, 4>>,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let text_sees_image = self.attend(
            self.query2.forward(text.clone()),
            self.key1.forward(image.clone()),
            self.value1.forward(image.clone()),
            image_bias,
        );
        let image_sees_text = self.attend(
            self.query1.forward(image),
            self.key2.forward(text.clone()),
            self.value2.forward(text),
            text_bias,
        );
        (text_sees_image, image_sees_text)
    }

    /// `softmax(QKᵀ/√d + bias) V` per head: `[B, Q, Hbi]`, `[B, K, Hbi]` ×2 → `[B, Q, Hbi]`.
    fn attend(
        &self,
        query: Tensor<B, 3>,
        key: Tensor<B, 3>,
        value: Tensor<B, 3>,
        bias: Option<Tensor<B, 4>>,
    ) -> Tensor<B, 3> {
        let split = |t: Tensor<B, 3>| {
            let [batch, len, width] = t.dims();
            t.reshape([batch, len, self.num_heads, width / self.num_heads])
                .swap_dims(1, 2)
        };
        scaled_dot_product(split(query), split(key), split(value), bias, &self.dropout)
    }
}

impl<B: Backend> CoAttentionLayer<B> {
    /// `text` `[B, T, H]` and `image` `[B, V, Hv]`, with the additive padding
    /// bias of each (from [`AttentionMask::padding`](crate::AttentionMask::padding))
    /// → both streams updated, same shapes.
    pub fn forward(
        &self,
        text: Tensor<B, 3>,
        text_bias: Option<Tensor<B, 4>>,
        image: Tensor<B, 3>,
        image_bias: Option<Tensor<B, 4>>,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let (text_context, image_context) =
            self.biattention
                .forward(text.clone(), text_bias, image.clone(), image_bias);
        let out = &self.bi_output;
        let image = out
            .layer_norm1
            .forward(image + out.dropout.forward(out.dense1.forward(image_context)));
        let text = out
            .layer_norm2
            .forward(text + out.dropout.forward(out.dense2.forward(text_context)));
        let image = self
            .v_output_norm
            .forward(image.clone() + self.v_feed_forward.forward(image));
        let text = self
            .t_output_norm
            .forward(text.clone() + self.t_feed_forward.forward(text));
        (text, image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AttentionMask;
    use burn::backend::NdArray;
    use burn::tensor::{Distribution, TensorData, Tolerance};

    #[test]
    fn each_stream_reads_the_other_and_ignores_its_padding() {
        let device = Default::default();
        let layer = CoAttentionLayerConfig::new(8, 12, 16, 4, 16, 24)
            .with_dropout(0.0)
            .init::<NdArray>(&device);
        let text = Tensor::<NdArray, 3>::random([1, 3, 8], Distribution::Default, &device);
        let image = Tensor::<NdArray, 3>::random([1, 2, 12], Distribution::Default, &device);
        let (t, v) = layer.forward(text.clone(), None, image.clone(), None);
        assert_eq!((t.dims(), v.dims()), ([1, 3, 8], [1, 2, 12]));

        // A third, padded image token changes nothing for either stream.
        let padded_image = Tensor::cat(
            vec![
                image.clone(),
                Tensor::random([1, 1, 12], Distribution::Default, &device) * 50.0,
            ],
            1,
        );
        let padding = Tensor::<NdArray, 2, Bool>::from_data(
            TensorData::new(vec![false, false, true], [1, 3]),
            &device,
        );
        let (tp, vp) = layer.forward(
            text.clone(),
            None,
            padded_image,
            AttentionMask::padding(padding).bias(),
        );
        tp.into_data()
            .assert_approx_eq::<f32>(&t.clone().into_data(), Tolerance::absolute(1e-5));
        vp.narrow(1, 0, 2)
            .into_data()
            .assert_approx_eq::<f32>(&v.into_data(), Tolerance::absolute(1e-5));

        // Another image moves the text.
        let other = Tensor::<NdArray, 3>::random([1, 2, 12], Distribution::Default, &device);
        let (t2, _) = layer.forward(text, None, other, None);
        assert!((t2 - t).abs().max().into_scalar() > 1e-4);
    }
}
