//! Text embeddings: word + position + token type, then LayerNorm and dropout
//! (BERT's `embeddings` block; field names follow its checkpoint keys).

use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig,
};
use burn::prelude::*;

/// Configuration of [`TextEmbeddings`].
#[derive(Config, Debug)]
pub struct TextEmbeddingsConfig {
    /// Vocabulary size (rows of the word embedding).
    pub vocab_size: usize,
    /// Width of the embeddings.
    pub hidden_size: usize,
    /// Longest sequence the position table covers.
    #[config(default = 512)]
    pub max_position_embeddings: usize,
    /// Number of token types (segments / modalities).
    #[config(default = 2)]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon (BERT's 1e-12).
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Dropout after the LayerNorm.
    #[config(default = 0.1)]
    pub dropout: f64,
}

/// `LN(word[id] + position[t] + token_type[type]) → dropout`, `[B, T] → [B, T, H]`.
#[derive(Module, Debug)]
pub struct TextEmbeddings<B: Backend> {
    pub word_embeddings: Embedding<B>,
    pub position_embeddings: Embedding<B>,
    pub token_type_embeddings: Embedding<B>,
    pub layer_norm: LayerNorm<B>,
    pub dropout: Dropout,
}

impl TextEmbeddingsConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> TextEmbeddings<B> {
        // BERT's initialisation: N(0, 0.02). Burn's default N(0, 1) makes the
        // tied MLM decoder's first logits huge.
        let table = |rows| {
            EmbeddingConfig::new(rows, self.hidden_size)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: 0.02,
                })
                .init(device)
        };
        TextEmbeddings {
            word_embeddings: table(self.vocab_size),
            position_embeddings: table(self.max_position_embeddings),
            token_type_embeddings: table(self.type_vocab_size),
            layer_norm: LayerNormConfig::new(self.hidden_size)
                .with_epsilon(self.layer_norm_eps)
                .init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl<B: Backend> TextEmbeddings<B> {
    /// Embeds `ids` `[B, T]` as token type 0 → `[B, T, H]`.
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.forward_with_type(ids, 0)
    }

    /// Embeds `ids` `[B, T]`, every token of type `token_type` → `[B, T, H]`.
    pub fn forward_with_type(&self, ids: Tensor<B, 2, Int>, token_type: usize) -> Tensor<B, 3> {
        self.forward_from(ids, 0, token_type)
    }

    /// Embeds `ids` `[B, T]` at positions `start..start + T`: the tokens a
    /// decoder step appends after `start` earlier ones → `[B, T, H]`.
    pub fn forward_from(
        &self,
        ids: Tensor<B, 2, Int>,
        start: usize,
        token_type: usize,
    ) -> Tensor<B, 3> {
        let [_, seq_len] = ids.dims();
        let max = self.position_embeddings.weight.dims()[0];
        assert!(
            start + seq_len <= max,
            "positions {start}..{} exceed the {max} position embeddings",
            start + seq_len
        );
        let hidden = self.word_embeddings.weight.dims()[1];
        let words = self.word_embeddings.forward(ids);
        let positions = self
            .position_embeddings
            .weight
            .val()
            .narrow(0, start, seq_len)
            .unsqueeze::<3>();
        let token_type = self
            .token_type_embeddings
            .weight
            .val()
            .narrow(0, token_type, 1)
            .reshape([1, 1, hidden]);
        let embeddings = self.layer_norm.forward(words + positions + token_type);
        self.dropout.forward(embeddings)
    }

    /// The word embedding matrix `[V, H]` (tied to the MLM decoder).
    pub fn word_embedding_weight(&self) -> Tensor<B, 2> {
        self.word_embeddings.weight.val()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::TensorData;

    #[test]
    fn equals_the_sum_of_its_tables_normalised() {
        let device = Default::default();
        let embeddings = TextEmbeddingsConfig::new(10, 8)
            .with_dropout(0.0)
            .init::<NdArray>(&device);
        let ids = Tensor::<NdArray, 2, Int>::from_data(
            TensorData::new(vec![3i64, 7, 1], [1, 3]),
            &device,
        );
        let out = embeddings.forward_with_type(ids, 1);
        assert_eq!(out.dims(), [1, 3, 8]);
        let words = embeddings.word_embeddings.weight.val();
        let positions = embeddings.position_embeddings.weight.val();
        let types = embeddings.token_type_embeddings.weight.val();
        for (t, id) in [3usize, 7, 1].into_iter().enumerate() {
            let sum = words.clone().narrow(0, id, 1)
                + positions.clone().narrow(0, t, 1)
                + types.clone().narrow(0, 1, 1);
            let mean = sum.clone().mean_dim(1);
            let var = (sum.clone() - mean.clone()).powi_scalar(2).mean_dim(1);
            let expected = (sum - mean) / (var + 1e-12).sqrt();
            let got = out.clone().slice([0..1, t..t + 1]).reshape([1, 8]);
            got.into_data().assert_approx_eq::<f32>(
                &expected.into_data(),
                burn::tensor::Tolerance::absolute(1e-4),
            );
        }
    }

    #[test]
    fn embedding_in_pieces_equals_embedding_at_once() {
        let device = Default::default();
        let embeddings = TextEmbeddingsConfig::new(10, 8)
            .with_dropout(0.0)
            .init::<NdArray>(&device);
        let ids = |v: Vec<i64>| {
            let len = v.len();
            Tensor::<NdArray, 2, Int>::from_data(TensorData::new(v, [1, len]), &device)
        };
        let whole = embeddings.forward(ids(vec![4, 2, 9]));
        let pieces = Tensor::cat(
            vec![
                embeddings.forward_from(ids(vec![4, 2]), 0, 0),
                embeddings.forward_from(ids(vec![9]), 2, 0),
            ],
            1,
        );
        pieces
            .into_data()
            .assert_approx_eq::<f32>(&whole.into_data(), burn::tensor::Tolerance::absolute(1e-6));
    }
}
