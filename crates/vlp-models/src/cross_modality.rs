//! LXMERT's cross-modality layer (Hugging Face `LxmertXLayer`, the
//! encoder's `x_layers`): cross-attention in both directions through ONE
//! shared attention module (`visual_attention`), then self-attention and a
//! feed-forward block per stream (`lang_self_att`/`lang_inter`/`lang_output`
//! and `visn_…`), all post-norm as in BERT.

use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig};
use burn::prelude::*;

use crate::attention::{MultiHeadAttention, MultiHeadAttentionConfig};
use crate::config_error::{check_heads, or_panic, ConfigError};
use crate::layer::{TransformerLayer, TransformerLayerConfig};

/// Configuration of [`CrossModalityLayer`]; both streams share the width.
#[derive(Config, Debug)]
pub struct CrossModalityLayerConfig {
    /// Width of both streams.
    pub hidden_size: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Feed-forward inner width.
    pub intermediate_size: usize,
    /// Dropout on attention probabilities and residual branches.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// LayerNorm epsilon.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
}

/// One LXMERT cross-modality layer: `[B, T, H]` language and `[B, V, H]` vision in, both updated.
#[derive(Module, Debug)]
pub struct CrossModalityLayer<B: Backend> {
    /// `visual_attention.att` (query/key/value) with `visual_attention.output.dense`:
    /// language→vision and vision→language use these same weights.
    pub visual_attention: MultiHeadAttention<B>,
    /// `visual_attention.output.LayerNorm`.
    pub visual_attention_norm: LayerNorm<B>,
    /// Dropout on the cross-attention output.
    pub dropout: Dropout,
    /// `lang_self_att` + `lang_inter` + `lang_output`.
    pub lang: TransformerLayer<B>,
    /// `visn_self_att` + `visn_inter` + `visn_output`.
    pub visn: TransformerLayer<B>,
}

impl CrossModalityLayerConfig {
    /// Whether `num_heads` splits `hidden_size`; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_heads("hidden_size", self.hidden_size, "num_heads", self.num_heads)
    }

    /// The layer, parameters in checkpoint order.
    ///
    /// # Panics
    ///
    /// When [`validate`](Self::validate) fails, with its message.
    pub fn init<B: Backend>(&self, device: &B::Device) -> CrossModalityLayer<B> {
        or_panic(self.validate());
        let stream =
            TransformerLayerConfig::new(self.hidden_size, self.num_heads, self.intermediate_size)
                .with_dropout(self.dropout)
                .with_norm_first(false)
                .with_layer_norm_eps(self.layer_norm_eps);
        CrossModalityLayer {
            visual_attention: MultiHeadAttentionConfig::new(self.hidden_size, self.num_heads)
                .with_dropout(self.dropout)
                .init(device),
            visual_attention_norm: LayerNormConfig::new(self.hidden_size)
                .with_epsilon(self.layer_norm_eps)
                .init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            lang: stream.init(device),
            visn: stream.init(device),
        }
    }
}

impl<B: Backend> CrossModalityLayer<B> {
    /// `lang` `[B, T, H]` and `visn` `[B, V, H]` with the padding bias of
    /// each (`[B, 1, 1, T]`, `[B, 1, 1, V]`) → both streams updated. Both
    /// cross-attentions read the layer's inputs, as in LXMERT.
    pub fn forward(
        &self,
        lang: Tensor<B, 3>,
        lang_bias: Option<Tensor<B, 4>>,
        visn: Tensor<B, 3>,
        visn_bias: Option<Tensor<B, 4>>,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let cross = |x: Tensor<B, 3>, context: Tensor<B, 3>, bias| {
            let attended = self
                .visual_attention
                .forward_cross(x.clone(), context, bias);
            self.visual_attention_norm
                .forward(x + self.dropout.forward(attended))
        };
        let lang_cross = cross(lang.clone(), visn.clone(), visn_bias.clone());
        let visn_cross = cross(visn, lang, lang_bias.clone());
        (
            self.lang.forward(lang_cross, lang_bias),
            self.visn.forward(visn_cross, visn_bias),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::Distribution;

    #[test]
    fn one_attention_module_serves_both_directions() {
        let device = Default::default();
        let layer = CrossModalityLayerConfig::new(8, 2, 16)
            .with_dropout(0.0)
            .init::<NdArray>(&device);
        let lang = Tensor::<NdArray, 3>::random([2, 3, 8], Distribution::Default, &device);
        let visn = Tensor::<NdArray, 3>::random([2, 4, 8], Distribution::Default, &device);
        let (l, v) = layer.forward(lang.clone(), None, visn.clone(), None);
        assert_eq!((l.dims(), v.dims()), ([2, 3, 8], [2, 4, 8]));
        // Both directions change when the shared query projection changes.
        let mut changed = layer.clone();
        changed.visual_attention.query.weight = changed
            .visual_attention
            .query
            .weight
            .map(|w| w.mul_scalar(3.0));
        let (l2, v2) = changed.forward(lang, None, visn, None);
        assert!((l2 - l).abs().max().into_scalar() > 1e-4);
        assert!((v2 - v).abs().max().into_scalar() > 1e-4);
    }
}
