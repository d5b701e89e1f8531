//! The one attention-mask builder: padding, causal, prefix and cross masks,
//! as the additive bias every attention layer takes.
//!
//! A mask says which keys each query may see. Attention adds its bias to the
//! scores before the softmax: 0 where a key is visible, a large negative
//! value where it is not. Masks combine by adding their biases, so
//! `AttentionMask::causal(l).and_padding(p)` is causal attention over a
//! padded batch.

use burn::prelude::*;
use burn::tensor::TensorData;

/// The bias of a hidden key (BERT's original -10,000). Large enough that
/// `exp` underflows to exactly 0 after the softmax's max subtraction, small
/// enough that it and two of them added stay finite in f16 (max 65,504):
/// -1e9 would be -inf there, and `0 × -inf` NaN in [`AttentionMask::padding`].
pub const HIDDEN: f32 = -1e4;

/// Which keys each query may attend to, broadcastable to `[B, heads, Q, K]`.
#[derive(Debug, Clone)]
pub struct AttentionMask<B: Backend> {
    bias: Option<Tensor<B, 4>>,
}

impl<B: Backend> AttentionMask<B> {
    /// Every query sees every key.
    pub fn none() -> Self {
        Self { bias: None }
    }

    /// Hides padded keys: `key_padding` `[B, K]`, `true` at padding → bias
    /// `[B, 1, 1, K]`. This is also the cross-attention mask: the queries of
    /// one sequence over the keys (e.g. image tokens) of another.
    pub fn padding(key_padding: Tensor<B, 2, Bool>) -> Self {
        let [batch, keys] = key_padding.dims();
        Self {
            bias: Some(
                key_padding
                    .float()
                    .mul_scalar(HIDDEN)
                    .reshape([batch, 1, 1, keys]),
            ),
        }
    }

    /// Left-to-right attention over `len` positions (GPT, CLIP's text tower,
    /// decoders): query `i` sees keys `0..=i`. Bias `[1, 1, len, len]`.
    pub fn causal(len: usize, device: &B::Device) -> Self {
        Self::prefix(&[0], len, device)
    }

    /// PrefixLM attention (SimVLM, UniLM): row `b`'s first
    /// `prefix_lengths[b]` positions see each other in both directions, and
    /// every later position sees the prefix and the positions before it.
    /// A prefix of 0 or 1 is causal attention; a prefix of `len` is
    /// bidirectional. Bias `[B, 1, len, len]`.
    pub fn prefix(prefix_lengths: &[usize], len: usize, device: &B::Device) -> Self {
        let mut bias = Vec::with_capacity(prefix_lengths.len() * len * len);
        for &prefix in prefix_lengths {
            for query in 0..len {
                bias.extend((0..len).map(|key| {
                    if key <= query || key < prefix {
                        0.0
                    } else {
                        HIDDEN
                    }
                }));
            }
        }
        Self {
            bias: Some(Tensor::from_data(
                TensorData::new(bias, [prefix_lengths.len(), 1, len, len]),
                device,
            )),
        }
    }

    /// This mask with padded keys hidden as well (`[B, K]`, `true` at padding).
    pub fn and_padding(self, key_padding: Tensor<B, 2, Bool>) -> Self {
        self.and(AttentionMask::padding(key_padding))
    }

    /// Keys visible under both masks.
    pub fn and(self, other: Self) -> Self {
        let bias = match (self.bias, other.bias) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        Self { bias }
    }

    /// The additive bias, `None` when nothing is hidden.
    pub fn bias(&self) -> Option<Tensor<B, 4>> {
        self.bias.clone()
    }

    /// Only the rows `start..start + len` of the queries: what a decoder step
    /// needs when it runs `len` new positions against all earlier keys.
    pub fn query_rows(self, start: usize, len: usize) -> Self {
        let bias = self.bias.map(|bias| {
            let [_, _, queries, _] = bias.dims();
            if queries == 1 {
                bias
            } else {
                bias.narrow(2, start, len)
            }
        });
        Self { bias }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    fn visible(mask: &AttentionMask<NdArray>) -> Vec<Vec<Vec<bool>>> {
        let bias = mask.bias().expect("a bias");
        let [batch, _, queries, keys] = bias.dims();
        let values = bias.into_data().to_vec::<f32>().unwrap();
        (0..batch)
            .map(|b| {
                (0..queries)
                    .map(|q| {
                        (0..keys)
                            .map(|k| values[(b * queries + q) * keys + k] == 0.0)
                            .collect()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn causal_sees_the_past_only() {
        let mask = AttentionMask::<NdArray>::causal(3, &Default::default());
        assert_eq!(
            visible(&mask)[0],
            vec![
                vec![true, false, false],
                vec![true, true, false],
                vec![true, true, true]
            ]
        );
    }

    #[test]
    fn prefix_is_bidirectional_inside_and_causal_after() {
        let mask = AttentionMask::<NdArray>::prefix(&[2, 4], 4, &Default::default());
        let rows = visible(&mask);
        assert_eq!(
            rows[0],
            vec![
                vec![true, true, false, false],
                vec![true, true, false, false],
                vec![true, true, true, false],
                vec![true, true, true, true],
            ]
        );
        assert!(rows[1].iter().flatten().all(|&v| v), "full prefix");
    }

    #[test]
    fn padding_combines_with_causal() {
        let device = Default::default();
        let padding = Tensor::<NdArray, 2, Bool>::from_data(
            TensorData::new(vec![false, false, true], [1, 3]),
            &device,
        );
        let mask = AttentionMask::causal(3, &device).and_padding(padding);
        assert_eq!(
            visible(&mask)[0],
            vec![
                vec![true, false, false],
                vec![true, true, false],
                vec![true, true, false]
            ]
        );
        let last = mask.query_rows(2, 1);
        assert_eq!(visible(&last)[0], vec![vec![true, true, false]]);
    }
}
