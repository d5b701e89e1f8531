//! CLIP's text tower (`CLIPTextTransformer`): token + learned position
//! embeddings, pre-norm layers with causal attention, a final LayerNorm,
//! and the sequence pooled at its end-of-text token.

use burn::nn::{Embedding, EmbeddingConfig, Initializer};
use burn::prelude::*;

use crate::config_error::{check_heads, or_panic, ConfigError};
use crate::encoder::TransformerEncoder;
use crate::feed_forward::Activation;
use crate::mask::AttentionMask;
use crate::size::TransformerSize;

/// Configuration of [`ClipTextTransformer`] (transformers' `CLIPTextConfig`).
#[derive(Config, Debug)]
pub struct ClipTextConfig {
    /// Vocabulary size (`vocab_size`).
    pub vocab_size: usize,
    /// Token width (`hidden_size`).
    pub hidden_size: usize,
    /// Layers (`num_hidden_layers`).
    pub num_layers: usize,
    /// Attention heads (`num_attention_heads`).
    pub num_heads: usize,
    /// Feed-forward inner width (`intermediate_size`).
    pub intermediate_size: usize,
    /// Rows of the position table (`max_position_embeddings`).
    #[config(default = 77)]
    pub max_position_embeddings: usize,
    /// LayerNorm epsilon (`layer_norm_eps`).
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
    /// Feed-forward non-linearity (`hidden_act`).
    #[config(default = "Activation::QuickGelu")]
    pub activation: Activation,
    /// Dropout of the layers (`dropout`; 0 in every released CLIP).
    #[config(default = 0.0)]
    pub dropout: f64,
    /// The end-of-text token whose first occurrence is pooled; `None` pools
    /// at the largest id instead, as the original CLIP configs do (their
    /// end-of-text token has the largest id; transformers keeps that rule
    /// for configs with `eos_token_id` 2).
    #[config(default = "None")]
    pub eos_token_id: Option<usize>,
}

impl ClipTextConfig {
    /// The stack's size: CLIP's text layers are pre-norm.
    pub fn size(&self) -> TransformerSize {
        TransformerSize::of(
            self.hidden_size,
            self.num_heads,
            self.intermediate_size,
            self.num_layers,
        )
        .with_dropout(self.dropout)
    }

    /// Whether the values can build a model; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_heads("hidden_size", self.hidden_size, "num_heads", self.num_heads)
    }

    /// The text tower: token table, position table, layers.
    ///
    /// # Panics
    ///
    /// When [`validate`](Self::validate) fails, with its message.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ClipTextTransformer<B> {
        or_panic(self.validate());
        let table = |rows| {
            EmbeddingConfig::new(rows, self.hidden_size)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: 0.02,
                })
                .init(device)
        };
        ClipTextTransformer {
            embeddings: ClipTextEmbeddings {
                token_embedding: table(self.vocab_size),
                position_embedding: table(self.max_position_embeddings),
            },
            encoder: self
                .size()
                .encoder_with(self.layer_norm_eps, self.activation)
                .init(device),
            eos_token_id: self.eos_token_id,
        }
    }
}

/// `token_embedding[id] + position_embedding[t]`, `[B, T] → [B, T, H]`.
#[derive(Module, Debug)]
pub struct ClipTextEmbeddings<B: Backend> {
    /// `[V, H]` word vectors.
    pub token_embedding: Embedding<B>,
    /// `[max positions, H]` learned positions.
    pub position_embedding: Embedding<B>,
}

/// The text tower; the encoder's final LayerNorm is CLIP's `final_layer_norm`.
#[derive(Module, Debug)]
pub struct ClipTextTransformer<B: Backend> {
    /// Token and position tables.
    pub embeddings: ClipTextEmbeddings<B>,
    /// Pre-norm causal layers; the final norm is CLIP's `final_layer_norm`.
    pub encoder: TransformerEncoder<B>,
    /// The end-of-text token pooled at (`None`: the largest id).
    pub eos_token_id: Option<usize>,
}

/// Output of [`ClipTextTransformer::forward`].
#[derive(Debug, Clone)]
pub struct ClipTextOutput<B: Backend> {
    /// `[B, T, H]`, after the final LayerNorm.
    pub last_hidden_state: Tensor<B, 3>,
    /// `[B, H]`: the hidden state at each sequence's end-of-text token.
    pub pooled: Tensor<B, 2>,
}

impl<B: Backend> ClipTextTransformer<B> {
    /// `ids` `[B, T]`, `padding` `[B, T]` (`true` at padding) → [`ClipTextOutput`].
    pub fn forward(
        &self,
        ids: Tensor<B, 2, Int>,
        padding: Tensor<B, 2, Bool>,
    ) -> ClipTextOutput<B> {
        let [batch, seq_len] = ids.dims();
        let device = ids.device();
        let positions = self
            .embeddings
            .position_embedding
            .weight
            .val()
            .narrow(0, 0, seq_len)
            .unsqueeze::<3>();
        let x = self.embeddings.token_embedding.forward(ids.clone()) + positions;
        let bias = AttentionMask::causal(seq_len, &device)
            .and_padding(padding)
            .bias();
        let last_hidden_state = self.encoder.forward_with_bias(x, bias);
        let hidden = last_hidden_state.dims()[2];
        let index = self
            .pooling_positions(ids)
            .reshape([batch, 1, 1])
            .expand([batch, 1, hidden]);
        let pooled = last_hidden_state
            .clone()
            .gather(1, index)
            .reshape([batch, hidden]);
        ClipTextOutput {
            last_hidden_state,
            pooled,
        }
    }

    /// `[B, T]` ids → `[B]`: the first end-of-text token of each sequence
    /// (position 0 where there is none, as in transformers), or the first
    /// largest id without an `eos_token_id`.
    pub fn pooling_positions(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 1, Int> {
        let [batch, seq_len] = ids.dims();
        // Scores whose unique maximum is the wanted position: the key
        // (is-EOS or the id) first, then earlier positions, so ties cannot
        // depend on how a backend breaks them.
        let earlier = Tensor::<B, 1, Int>::arange(0..seq_len as i64, &ids.device())
            .neg()
            .add_scalar(seq_len as i64 - 1)
            .unsqueeze::<2>();
        let key = match self.eos_token_id {
            Some(eos) => ids.equal_elem(eos as i64).int(),
            None => ids,
        };
        (key * seq_len as i64 + earlier).argmax(1).reshape([batch])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::TensorData;

    fn positions(eos_token_id: Option<usize>, ids: Vec<i64>, shape: [usize; 2]) -> Vec<i64> {
        let device = Default::default();
        let tower = ClipTextConfig::new(100, 8, 1, 2, 16)
            .with_eos_token_id(eos_token_id)
            .init::<NdArray>(&device);
        let ids = Tensor::<NdArray, 2, Int>::from_data(TensorData::new(ids, shape), &device);
        tower.pooling_positions(ids).into_data().to_vec().unwrap()
    }

    #[test]
    fn pools_at_the_first_end_of_text_token() {
        // Padding with the end-of-text token itself (as OpenAI's tokenizer
        // does) must not move the pooled position.
        let ids = vec![5, 9, 3, 3, 3, 5, 3, 8, 3, 3, 7, 7, 7, 7, 7];
        assert_eq!(positions(Some(3), ids, [3, 5]), vec![2, 1, 0]);
    }

    #[test]
    fn without_an_eos_id_pools_at_the_first_largest_id() {
        let ids = vec![5, 99, 3, 99, 1, 7, 2, 7, 0, 0];
        assert_eq!(positions(None, ids, [2, 5]), vec![1, 0]);
    }
}
