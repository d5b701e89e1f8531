//! A transformer decoder: causal self-attention over the target sequence,
//! cross-attention to an encoder's output, feed-forward (Vaswani et al.'s
//! decoder block, SimVLM's text decoder), with a key/value cache for
//! incremental decoding.

use burn::nn::{LayerNorm, LayerNormConfig};
use burn::prelude::*;

use crate::attention::KeyValue;
use crate::layer::{CrossContext, TransformerLayer, TransformerLayerConfig};
use crate::mask::AttentionMask;

/// Configuration of [`TransformerDecoder`].
#[derive(Config, Debug)]
pub struct TransformerDecoderConfig {
    /// Settings shared by every layer; cross-attention is switched on by
    /// [`init`](Self::init) whatever this says.
    pub layer: TransformerLayerConfig,
    /// Number of layers.
    pub num_layers: usize,
}

/// `[B, T, H]` target tokens reading a `[B, K, C]` context → `[B, T, H]`.
/// Pre-norm stacks end with a final LayerNorm.
#[derive(Module, Debug)]
pub struct TransformerDecoder<B: Backend> {
    /// The layers, each with cross-attention.
    pub layer: Vec<TransformerLayer<B>>,
    /// Final LayerNorm of pre-norm stacks.
    pub final_norm: Option<LayerNorm<B>>,
}

/// What incremental decoding keeps between steps.
#[derive(Debug, Clone)]
pub struct DecoderCache<B: Backend> {
    /// Per layer, the self-attention keys and values of every position
    /// decoded so far (`None` before the first step).
    pub self_attention: Vec<Option<KeyValue<B>>>,
    /// Per layer, the cross-attention keys and values of the context:
    /// computed once, in [`TransformerDecoder::start`].
    pub cross_attention: Vec<KeyValue<B>>,
    /// The context's padding bias, `[B, 1, 1, K]`.
    pub context_bias: Option<Tensor<B, 4>>,
}

impl<B: Backend> DecoderCache<B> {
    /// Number of positions decoded so far.
    pub fn len(&self) -> usize {
        self.self_attention
            .first()
            .and_then(|kv| kv.as_ref())
            .map_or(0, KeyValue::len)
    }

    /// Whether nothing was decoded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows `indices` `[N]` of the batch, e.g. the beams that survive a
    /// beam-search step (a row may be taken several times).
    pub fn select(self, indices: Tensor<B, 1, Int>) -> Self {
        Self {
            self_attention: self
                .self_attention
                .into_iter()
                .map(|kv| kv.map(|kv| kv.select(indices.clone())))
                .collect(),
            cross_attention: self
                .cross_attention
                .into_iter()
                .map(|kv| kv.select(indices.clone()))
                .collect(),
            context_bias: self.context_bias.map(|bias| bias.select(0, indices)),
        }
    }
}

impl TransformerDecoderConfig {
    /// The decoder.
    ///
    /// # Panics
    ///
    /// When the layer config is invalid ([`TransformerLayerConfig::validate`]).
    pub fn init<B: Backend>(&self, device: &B::Device) -> TransformerDecoder<B> {
        let layer = self.layer.clone().with_cross_attention(true);
        TransformerDecoder {
            layer: (0..self.num_layers).map(|_| layer.init(device)).collect(),
            final_norm: self.layer.norm_first.then(|| {
                LayerNormConfig::new(self.layer.hidden_size)
                    .with_epsilon(self.layer.layer_norm_eps)
                    .init(device)
            }),
        }
    }
}

impl<B: Backend> TransformerDecoder<B> {
    /// The whole target at once (training): `x` `[B, T, H]`, `padding`
    /// `[B, T]` (`true` at padding), `context` the encoder output with its
    /// padding bias → `[B, T, H]`. Position `t` sees positions `..=t` only.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        padding: Tensor<B, 2, Bool>,
        context: &CrossContext<B>,
    ) -> Tensor<B, 3> {
        let [_, len, _] = x.dims();
        let bias = AttentionMask::causal(len, &x.device())
            .and_padding(padding)
            .bias();
        let x = self.layer.iter().fold(x, |x, layer| {
            layer.forward_with_context(x, bias.clone(), Some(context))
        });
        self.normalise(x)
    }

    /// A cache for decoding against `context`: every layer's cross-attention
    /// keys and values, computed here once rather than at every step.
    pub fn start(&self, context: &CrossContext<B>) -> DecoderCache<B> {
        DecoderCache {
            self_attention: vec![None; self.layer.len()],
            cross_attention: self
                .layer
                .iter()
                .map(|layer| {
                    layer
                        .cross_key_value(context.hidden.clone())
                        .expect("decoder layers have cross-attention")
                })
                .collect(),
            context_bias: context.bias.clone(),
        }
    }

    /// The next `N` positions `x_new` `[B, N, H]` (no padding among them),
    /// attending causally to themselves and to every position in `cache` →
    /// `[B, N, H]` and the cache extended by `N` positions. Steps over a
    /// sequence give [`forward`](Self::forward)'s outputs.
    pub fn step(
        &self,
        x_new: Tensor<B, 3>,
        cache: DecoderCache<B>,
    ) -> (Tensor<B, 3>, DecoderCache<B>) {
        let [_, new, _] = x_new.dims();
        let past = cache.len();
        let bias = AttentionMask::causal(past + new, &x_new.device())
            .query_rows(past, new)
            .bias();
        let DecoderCache {
            self_attention,
            cross_attention,
            context_bias,
        } = cache;
        let mut next = Vec::with_capacity(self.layer.len());
        let mut x = x_new;
        for ((layer, past), cross) in self.layer.iter().zip(self_attention).zip(&cross_attention) {
            let (out, kv) =
                layer.forward_cached(x, past, bias.clone(), Some((cross, context_bias.clone())));
            next.push(Some(kv));
            x = out;
        }
        let cache = DecoderCache {
            self_attention: next,
            cross_attention,
            context_bias,
        };
        (self.normalise(x), cache)
    }

    fn normalise(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match &self.final_norm {
            Some(norm) => norm.forward(x),
            None => x,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::{Distribution, TensorData, Tolerance};

    fn decoder(norm_first: bool) -> TransformerDecoder<NdArray> {
        TransformerDecoderConfig::new(
            TransformerLayerConfig::new(8, 2, 16)
                .with_dropout(0.0)
                .with_norm_first(norm_first),
            2,
        )
        .init(&Default::default())
    }

    fn context(batch: usize) -> CrossContext<NdArray> {
        let device = Default::default();
        // The second row's last context token is padding.
        let padding = Tensor::<NdArray, 2, Bool>::from_data(
            TensorData::new(
                (0..batch * 3).map(|i| i == 5).collect::<Vec<_>>(),
                [batch, 3],
            ),
            &device,
        );
        CrossContext {
            hidden: Tensor::random([batch, 3, 8], Distribution::Default, &device),
            bias: AttentionMask::padding(padding).bias(),
        }
    }

    fn no_padding(batch: usize, len: usize) -> Tensor<NdArray, 2, Bool> {
        Tensor::<NdArray, 2, Int>::zeros([batch, len], &Default::default()).bool()
    }

    #[test]
    fn later_tokens_leave_earlier_outputs_unchanged() {
        let device = Default::default();
        for norm_first in [true, false] {
            let decoder = decoder(norm_first);
            let context = context(2);
            let x = Tensor::<NdArray, 3>::random([2, 5, 8], Distribution::Default, &device);
            let before = decoder.forward(x.clone(), no_padding(2, 5), &context);
            let changed = x.slice_assign(
                [0..2, 3..5],
                Tensor::random([2, 2, 8], Distribution::Normal(0.0, 10.0), &device),
            );
            let after = decoder.forward(changed, no_padding(2, 5), &context);
            after
                .clone()
                .narrow(1, 0, 3)
                .into_data()
                .assert_approx_eq::<f32>(
                    &before.clone().narrow(1, 0, 3).into_data(),
                    Tolerance::absolute(1e-6),
                );
            let moved = (after - before).narrow(1, 3, 2).abs().max().into_scalar();
            assert!(moved > 1e-3, "later outputs do change: {moved}");
        }
    }

    #[test]
    fn cached_steps_equal_the_full_pass_and_select_reorders_rows() {
        let device = Default::default();
        let decoder = decoder(true);
        let context = context(2);
        let x = Tensor::<NdArray, 3>::random([2, 5, 8], Distribution::Default, &device);
        let full = decoder.forward(x.clone(), no_padding(2, 5), &context);

        // Two positions at once, then one at a time.
        let cache = decoder.start(&context);
        let (first, mut cache) = decoder.step(x.clone().narrow(1, 0, 2), cache);
        let mut outputs = vec![first];
        for t in 2..5 {
            let (out, next) = decoder.step(x.clone().narrow(1, t, 1), cache);
            assert_eq!(next.len(), t + 1);
            outputs.push(out);
            cache = next;
        }
        Tensor::cat(outputs, 1)
            .into_data()
            .assert_approx_eq::<f32>(&full.clone().into_data(), Tolerance::absolute(1e-5));

        // Rows swapped after three steps continue as the swapped full pass.
        let swap =
            Tensor::<NdArray, 1, Int>::from_data(TensorData::new(vec![1i64, 0], [2]), &device);
        let (_, cache) = decoder.step(x.clone().narrow(1, 0, 3), decoder.start(&context));
        let (last, _) = decoder.step(
            x.clone().narrow(1, 3, 1).select(0, swap.clone()),
            cache.select(swap.clone()),
        );
        last.into_data().assert_approx_eq::<f32>(
            &full.narrow(1, 3, 1).select(0, swap).into_data(),
            Tolerance::absolute(1e-5),
        );
    }
}
