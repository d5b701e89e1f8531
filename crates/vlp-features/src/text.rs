//! Text embeddings: word + position + token type, then LayerNorm and dropout
//! (BERT's `embeddings` block; field names follow its checkpoint keys).
//! Positions are BERT's learned table or fixed sinusoids (the survey's
//! §2.1.3; Vaswani et al. 2017), see [`PositionEmbeddingKind`].

use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig,
};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::sinusoid::sinusoidal_positions;

/// How text embeddings encode positions.
///
/// Serialised in lower case (`"learned"`, `"sinusoidal"`), as configuration
/// files spell it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PositionEmbeddingKind {
    /// A trained `[max_position_embeddings, H]` table (BERT), stored under
    /// the checkpoint key `position_embeddings`.
    #[default]
    Learned,
    /// Fixed sinusoids ([`sinusoidal_positions`]): no parameters, nothing in
    /// the record; positions past `max_position_embeddings` are still refused.
    Sinusoidal,
}

/// Configuration of [`TextEmbeddings`].
#[derive(Config, Debug)]
pub struct TextEmbeddingsConfig {
    /// Vocabulary size (rows of the word embedding).
    pub vocab_size: usize,
    /// Width of the embeddings.
    pub hidden_size: usize,
    /// Longest sequence the positions cover.
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
    /// Learned (BERT's default) or fixed sinusoidal positions.
    #[config(default = "PositionEmbeddingKind::Learned")]
    pub position_embedding: PositionEmbeddingKind,
}

/// A sequence longer than the positions [`TextEmbeddings`] covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "sequence of {tokens} tokens exceeds max_position_embeddings {max} \
     (truncate it, e.g. `TextTokenizer::encode(texts, {max})`)"
)]
pub struct PositionLimitError {
    /// Positions the sequence needs (earlier tokens of a decoder included).
    pub tokens: usize,
    /// `max_position_embeddings` of the embeddings.
    pub max: usize,
}

/// `LN(word[id] + position[t] + token_type[type]) → dropout`, `[B, T] → [B, T, H]`.
#[derive(Module, Debug)]
pub struct TextEmbeddings<B: Backend> {
    /// `[V, H]` word table (tied to the MLM decoder).
    pub word_embeddings: Embedding<B>,
    /// `[P, H]` learned positions; `None` with sinusoidal positions, which
    /// are computed in [`TextEmbeddings::forward_from`] (a constant: nothing
    /// to train, nothing in the record). An `Option` keeps a learned model's
    /// record, and so its checkpoints, exactly as before.
    pub position_embeddings: Option<Embedding<B>>,
    /// `[types, H]` token type (segment / modality) table.
    pub token_type_embeddings: Embedding<B>,
    /// LayerNorm over the sum.
    pub layer_norm: LayerNorm<B>,
    /// Dropout after the LayerNorm (off on an inference backend).
    pub dropout: Dropout,
    /// Longest sequence the sinusoidal positions take (the learned table's
    /// rows otherwise); configuration, not state.
    max_sinusoidal_positions: usize,
}

impl TextEmbeddingsConfig {
    /// Builds the embeddings. Parameters are drawn in the order word,
    /// position (learned only), token type.
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
            position_embeddings: match self.position_embedding {
                PositionEmbeddingKind::Learned => Some(table(self.max_position_embeddings)),
                PositionEmbeddingKind::Sinusoidal => None,
            },
            token_type_embeddings: table(self.type_vocab_size),
            layer_norm: LayerNormConfig::new(self.hidden_size)
                .with_epsilon(self.layer_norm_eps)
                .init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            max_sinusoidal_positions: self.max_position_embeddings,
        }
    }
}

impl<B: Backend> TextEmbeddings<B> {
    /// Embeds `ids` `[B, T]` as token type 0 → `[B, T, H]`.
    ///
    /// # Panics
    /// If `T` exceeds [`Self::max_positions`]; [`Self::try_forward`] returns
    /// the error instead.
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.forward_with_type(ids, 0)
    }

    /// [`Self::forward`], with a sequence longer than the positions an error.
    pub fn try_forward(&self, ids: Tensor<B, 2, Int>) -> Result<Tensor<B, 3>, PositionLimitError> {
        self.try_forward_from(ids, 0, 0)
    }

    /// Embeds `ids` `[B, T]`, every token of type `token_type` → `[B, T, H]`.
    ///
    /// # Panics
    /// If `T` exceeds [`Self::max_positions`].
    pub fn forward_with_type(&self, ids: Tensor<B, 2, Int>, token_type: usize) -> Tensor<B, 3> {
        self.forward_from(ids, 0, token_type)
    }

    /// Embeds `ids` `[B, T]` at positions `start..start + T`: the tokens a
    /// decoder step appends after `start` earlier ones → `[B, T, H]`.
    ///
    /// # Panics
    /// If `start + T` exceeds [`Self::max_positions`] (models check their
    /// inputs' lengths when built; [`Self::try_forward_from`] for user input).
    pub fn forward_from(
        &self,
        ids: Tensor<B, 2, Int>,
        start: usize,
        token_type: usize,
    ) -> Tensor<B, 3> {
        self.try_forward_from(ids, start, token_type)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// [`Self::forward_from`], with positions past the table an error
    /// naming the limit.
    pub fn try_forward_from(
        &self,
        ids: Tensor<B, 2, Int>,
        start: usize,
        token_type: usize,
    ) -> Result<Tensor<B, 3>, PositionLimitError> {
        let [_, seq_len] = ids.dims();
        self.check_positions(start + seq_len)?;
        let hidden = self.word_embeddings.weight.dims()[1];
        let positions = match &self.position_embeddings {
            Some(table) => table.weight.val().narrow(0, start, seq_len),
            None => sinusoidal_positions(start..start + seq_len, hidden, &ids.device()),
        };
        let words = self.word_embeddings.forward(ids);
        let token_type = self
            .token_type_embeddings
            .weight
            .val()
            .narrow(0, token_type, 1)
            .reshape([1, 1, hidden]);
        let embeddings = self
            .layer_norm
            .forward(words + positions.unsqueeze::<3>() + token_type);
        Ok(self.dropout.forward(embeddings))
    }

    /// Longest sequence the positions cover (`max_position_embeddings`).
    pub fn max_positions(&self) -> usize {
        match &self.position_embeddings {
            Some(table) => table.weight.dims()[0],
            None => self.max_sinusoidal_positions,
        }
    }

    /// `Ok` when a sequence of `tokens` tokens fits the positions: the check
    /// to run on user input before [`Self::forward`].
    pub fn check_positions(&self, tokens: usize) -> Result<(), PositionLimitError> {
        let max = self.max_positions();
        if tokens > max {
            return Err(PositionLimitError { tokens, max });
        }
        Ok(())
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
        let positions = embeddings
            .position_embeddings
            .as_ref()
            .unwrap()
            .weight
            .val();
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

    /// The module as it was before sinusoidal positions: same fields, same
    /// order. Its records are the learned checkpoints that must still load.
    #[derive(Module, Debug)]
    struct LearnedOnly<B: Backend> {
        word_embeddings: Embedding<B>,
        position_embeddings: Embedding<B>,
        token_type_embeddings: Embedding<B>,
        layer_norm: LayerNorm<B>,
        dropout: Dropout,
    }

    /// Checkpoints of learned-position models, written before sinusoidal
    /// positions existed, load unchanged: same keys, same shapes.
    #[test]
    fn learned_checkpoints_load_as_before() {
        use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
        let device = Default::default();
        let config = TextEmbeddingsConfig::new(10, 8).with_max_position_embeddings(6);
        <NdArray as Backend>::seed(&device, 3);
        let table = |rows| {
            EmbeddingConfig::new(rows, 8)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: 0.02,
                })
                .init(&device)
        };
        let old = LearnedOnly::<NdArray> {
            word_embeddings: table(10),
            position_embeddings: table(6),
            token_type_embeddings: table(2),
            layer_norm: LayerNormConfig::new(8).init(&device),
            dropout: DropoutConfig::new(0.1).init(),
        };
        let weight = |e: &Embedding<NdArray>| e.weight.val().into_data();
        let (positions, words) = (
            weight(&old.position_embeddings),
            weight(&old.word_embeddings),
        );

        // An old record (a learned checkpoint) loads into a fresh model.
        let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::new();
        let bytes = Recorder::<NdArray>::record(&recorder, old.into_record(), ()).unwrap();
        <NdArray as Backend>::seed(&device, 4);
        let loaded = config
            .init::<NdArray>(&device)
            .load_record(Recorder::<NdArray>::load(&recorder, bytes, &device).unwrap());
        let learned = loaded.position_embeddings.as_ref().unwrap();
        assert_eq!(weight(learned), positions);
        assert_eq!(weight(&loaded.word_embeddings), words);
    }

    #[test]
    fn sinusoidal_positions_are_fixed_and_untrained() {
        use burn::backend::Autodiff;
        type A = Autodiff<NdArray>;
        let device = Default::default();
        let config = TextEmbeddingsConfig::new(10, 7)
            .with_max_position_embeddings(6)
            .with_dropout(0.0)
            .with_position_embedding(PositionEmbeddingKind::Sinusoidal);
        A::seed(&device, 5);
        let embeddings = config.init::<A>(&device);
        // Word and token type tables and the LayerNorm: no position parameters.
        assert_eq!(embeddings.num_params(), 10 * 7 + 2 * 7 + 2 * 7);
        assert!(embeddings.position_embeddings.is_none());
        assert_eq!(embeddings.max_positions(), 6);

        let ids = Tensor::<A, 2, Int>::from_data(TensorData::new(vec![3i64, 7], [1, 2]), &device);
        let out = embeddings.forward_from(ids, 2, 0);
        // LN(word + PE(2..4) + type 0) with PE from the closed form.
        let words = embeddings.word_embeddings.weight.val().inner();
        let types = embeddings.token_type_embeddings.weight.val().inner();
        for (t, id) in [3usize, 7].into_iter().enumerate() {
            let pos = (2 + t) as f64;
            let pe: Vec<f32> = (0..7)
                .map(|c| {
                    let angle = pos / 10_000f64.powf((c / 2 * 2) as f64 / 7.0);
                    (if c % 2 == 0 { angle.sin() } else { angle.cos() }) as f32
                })
                .collect();
            let pe = Tensor::<NdArray, 2>::from_data(TensorData::new(pe, [1, 7]), &device);
            let sum = words.clone().narrow(0, id, 1) + pe + types.clone().narrow(0, 0, 1);
            let mean = sum.clone().mean_dim(1);
            let var = (sum.clone() - mean.clone()).powi_scalar(2).mean_dim(1);
            let expected = (sum - mean) / (var + 1e-12).sqrt();
            let got = out.clone().inner().slice([0..1, t..t + 1]).reshape([1, 7]);
            got.into_data().assert_approx_eq::<f32>(
                &expected.into_data(),
                burn::tensor::Tolerance::absolute(1e-5),
            );
        }
        // The gradient reaches the tables there are; positions have none to take.
        let grads = (out.clone() * out).sum().backward();
        assert!(embeddings.word_embeddings.weight.grad(&grads).is_some());
        assert!(embeddings
            .token_type_embeddings
            .weight
            .grad(&grads)
            .is_some());
    }

    #[test]
    fn sequences_past_the_positions_are_an_error_naming_the_limit() {
        use vlp_data::{tokens_to_tensors, TextTokenizer};
        let device = Default::default();
        let corpus: Vec<String> = ["a red circle", "a blue square left of a green cross"]
            .map(String::from)
            .to_vec();
        let tokenizer = TextTokenizer::train_wordpiece(&corpus, 60).unwrap();
        // The longer text takes more than the 8 positions of the table.
        let batch = tokenizer.encode(&corpus, 64).unwrap();
        let tokens = batch.ids[1].len();
        assert!(tokens > 8, "{tokens} tokens");
        let (ids, _) = tokens_to_tensors::<NdArray>(&batch, &device);
        let embeddings = TextEmbeddingsConfig::new(tokenizer.vocab_size(), 4)
            .with_max_position_embeddings(8)
            .init::<NdArray>(&device);
        let err = embeddings.try_forward(ids).unwrap_err();
        assert_eq!(err, PositionLimitError { tokens, max: 8 });
        let expected = format!("sequence of {tokens} tokens exceeds max_position_embeddings 8");
        assert!(err.to_string().starts_with(&expected), "{err}");
        // Truncating to the limit fits.
        let batch = tokenizer
            .encode(&corpus, embeddings.max_positions())
            .unwrap();
        let (ids, _) = tokens_to_tensors::<NdArray>(&batch, &device);
        assert_eq!(embeddings.try_forward(ids).unwrap().dims(), [2, 8, 4]);
        assert!(embeddings.check_positions(9).is_err());
        assert!(embeddings.check_positions(8).is_ok());
    }
}
