//! Hugging Face BERT (`BertModel`) as vlp's text tower: [`TextEmbeddings`],
//! a post-norm [`TransformerEncoder`] and BERT's [`Pooler`], loaded from a
//! `model.safetensors` and its `config.json` — how UNITER and ALBEF start
//! their text side.

use std::path::Path;

use burn::prelude::*;
use serde::Deserialize;
use vlp_features::{PositionLimitError, TextEmbeddings, TextEmbeddingsConfig};

use crate::config_error::{check_heads, or_panic, ConfigError};
use crate::encoder::{TransformerEncoder, TransformerEncoderConfig};
use crate::feed_forward::Activation;
use crate::import::{self, ImportError, ImportReport, KeyMap};
use crate::pooler::{encode_and_pool, PooledOutput, Pooler, PoolerConfig};
use crate::size::TransformerSize;

/// Configuration of [`BertModel`]; [`BertConfig::from_hf_json`] reads it
/// from a Hugging Face `config.json`.
#[derive(Config, Debug)]
pub struct BertConfig {
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
    #[config(default = 512)]
    pub max_position_embeddings: usize,
    /// Token types (`type_vocab_size`).
    #[config(default = 2)]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon (`layer_norm_eps`).
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Dropout of embeddings and layers (`hidden_dropout_prob`).
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Feed-forward non-linearity (`hidden_act`).
    #[config(default = "Activation::Gelu")]
    pub activation: Activation,
    /// Whether the model has BERT's `[CLS]` pooler (`pooler.dense`).
    #[config(default = true)]
    pub pooler: bool,
}

/// The fields of a Hugging Face BERT `config.json` vlp reads, with
/// `BertConfig`'s defaults in transformers for those a file may omit.
#[derive(Deserialize)]
struct HfBertConfig {
    model_type: Option<String>,
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    intermediate_size: Option<usize>,
    max_position_embeddings: Option<usize>,
    type_vocab_size: Option<usize>,
    layer_norm_eps: Option<f64>,
    hidden_dropout_prob: Option<f64>,
    hidden_act: Option<String>,
    position_embedding_type: Option<String>,
}

impl BertConfig {
    /// Reads a Hugging Face BERT `config.json` (with a pooler; see
    /// [`BertConfig::with_pooler`]).
    pub fn from_hf_json(path: &Path) -> Result<Self, ImportError> {
        let hf: HfBertConfig = import::read_config(path)?;
        import::expect_model_type(path, hf.model_type.as_deref(), "bert")?;
        if let Some(kind) = hf
            .position_embedding_type
            .as_deref()
            .filter(|k| *k != "absolute")
        {
            return Err(ImportError::Config {
                path: path.to_path_buf(),
                message: format!(
                    "position_embedding_type \"{kind}\" is not supported (only \"absolute\")"
                ),
            });
        }
        let activation = import::activation(path, hf.hidden_act.as_deref().unwrap_or("gelu"))?;
        let config = Self::new(
            hf.vocab_size.unwrap_or(30522),
            hf.hidden_size.unwrap_or(768),
            hf.num_hidden_layers.unwrap_or(12),
            hf.num_attention_heads.unwrap_or(12),
            hf.intermediate_size.unwrap_or(3072),
        )
        .with_max_position_embeddings(hf.max_position_embeddings.unwrap_or(512))
        .with_type_vocab_size(hf.type_vocab_size.unwrap_or(2))
        .with_layer_norm_eps(hf.layer_norm_eps.unwrap_or(1e-12))
        .with_dropout(hf.hidden_dropout_prob.unwrap_or(0.1))
        .with_activation(activation);
        import::validated(path, config, Self::validate)
    }

    /// BERT's word, position and token-type embeddings.
    pub fn embeddings(&self) -> TextEmbeddingsConfig {
        TextEmbeddingsConfig::new(self.vocab_size, self.hidden_size)
            .with_max_position_embeddings(self.max_position_embeddings)
            .with_type_vocab_size(self.type_vocab_size)
            .with_layer_norm_eps(self.layer_norm_eps)
            .with_dropout(self.dropout)
    }

    /// The post-norm encoder (BERT's layers, no final LayerNorm).
    pub fn encoder(&self) -> TransformerEncoderConfig {
        self.size()
            .encoder_with(self.layer_norm_eps, self.activation)
    }

    /// The stack's size (BERT is post-norm).
    pub fn size(&self) -> TransformerSize {
        TransformerSize::of(
            self.hidden_size,
            self.num_heads,
            self.intermediate_size,
            self.num_layers,
        )
        .with_norm_first(false)
        .with_dropout(self.dropout)
    }

    /// Whether the values can build a model; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_heads("hidden_size", self.hidden_size, "num_heads", self.num_heads)
    }

    /// The model, parameters in checkpoint order.
    ///
    /// # Panics
    ///
    /// When [`validate`](Self::validate) fails, with its message.
    pub fn init<B: Backend>(&self, device: &B::Device) -> BertModel<B> {
        or_panic(self.validate());
        BertModel {
            embeddings: self.embeddings().init(device),
            encoder: self.encoder().init(device),
            pooler: self
                .pooler
                .then(|| PoolerConfig::new(self.hidden_size).init(device)),
        }
    }
}

/// BERT: `[B, T]` token ids → `[B, T, H]` contextual tokens (+ pooled `[CLS]`).
///
/// The fields are vlp's own modules, so a [`SingleStreamModel`](crate::SingleStreamModel)'s
/// `embeddings`, `encoder` and `pooler` can be moved in, loaded with
/// [`BertModel::load_safetensors`] and moved back.
///
/// # Inference: `valid()` or an inference backend
///
/// Burn applies dropout only on an autodiff backend: on `Autodiff<Flex>` a
/// Hugging Face model keeps its `hidden_dropout_prob` (0.1) and every
/// forward pass drops activations (sentence embeddings then drift to a
/// cosine of about 0.8 against transformers'). Run inference on an
/// inference backend (`Flex`, `NdArray`, … without `Autodiff`), or take a
/// trained model there with [`AutodiffModule::valid`](burn::module::AutodiffModule::valid):
///
/// ```
/// use std::path::Path;
/// use burn::backend::{Autodiff, NdArray};
/// use burn::module::AutodiffModule;
/// use burn::prelude::*;
/// use vlp_models::BertModel;
///
/// type Train = Autodiff<NdArray>;
/// let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_bert");
/// let device = Default::default();
/// let (model, _) = BertModel::<Train>::from_pretrained(&dir, &device)?;
/// let ids = || Tensor::<NdArray, 2, Int>::from_data([[2, 17, 40, 3]], &device);
/// let padding = || Tensor::<NdArray, 2, Bool>::from_data([[false; 4]], &device);
///
/// // The same weights on the inference backend (`NdArray`): dropout is off,
/// // so two passes agree exactly.
/// let inference: BertModel<NdArray> = model.valid();
/// let first = inference.forward(ids(), padding()).last_hidden_state;
/// let second = inference.forward(ids(), padding()).last_hidden_state;
/// first.into_data().assert_eq(&second.into_data(), true);
///
/// // On the autodiff backend (training), dropout changes every pass.
/// Train::seed(&device, 0);
/// let train = |m: &BertModel<Train>| {
///     m.forward(Tensor::from_inner(ids()), Tensor::from_inner(padding()))
///         .last_hidden_state
///         .inner()
/// };
/// let (a, b) = (train(&model), train(&model));
/// assert!((a - b).abs().max().into_scalar() > 0.0);
/// # Ok::<(), vlp_models::ImportError>(())
/// ```
///
/// `vlp_train::embed` (`cargo xtask embed`) embeds sentences with
/// all-MiniLM-L6-v2 this way. Text longer than the position table is an error from
/// [`BertModel::try_forward`] ([`BertModel::forward`] panics on it); encode
/// with `max_len = model.embeddings.max_positions()` to truncate it instead.
#[derive(Module, Debug)]
pub struct BertModel<B: Backend> {
    /// Word, position and token-type embeddings (`embeddings`).
    pub embeddings: TextEmbeddings<B>,
    /// The post-norm layers (`encoder.layer`).
    pub encoder: TransformerEncoder<B>,
    /// The `[CLS]` pooler (`pooler.dense`), when configured.
    pub pooler: Option<Pooler<B>>,
}

/// Output of [`BertModel::forward`].
pub type BertOutput<B> = PooledOutput<B>;

/// Hugging Face BERT keys → vlp paths (`bert.` is the prefix of
/// `BertForPreTraining` and other task models, `cls.` their heads).
const KEYS: KeyMap = KeyMap {
    strip: &["bert."],
    renames: &[
        ("embeddings.LayerNorm", "embeddings.layer_norm"),
        (
            "encoder.layer.{n}.attention.self.query",
            "encoder.layer.{n}.attention.query",
        ),
        (
            "encoder.layer.{n}.attention.self.key",
            "encoder.layer.{n}.attention.key",
        ),
        (
            "encoder.layer.{n}.attention.self.value",
            "encoder.layer.{n}.attention.value",
        ),
        (
            "encoder.layer.{n}.attention.output.dense",
            "encoder.layer.{n}.attention.output",
        ),
        (
            "encoder.layer.{n}.attention.output.LayerNorm",
            "encoder.layer.{n}.attention_norm",
        ),
        (
            "encoder.layer.{n}.intermediate.dense",
            "encoder.layer.{n}.feed_forward.intermediate",
        ),
        (
            "encoder.layer.{n}.output.dense",
            "encoder.layer.{n}.feed_forward.output",
        ),
        (
            "encoder.layer.{n}.output.LayerNorm",
            "encoder.layer.{n}.output_norm",
        ),
    ],
    ignored_names: &["position_ids", "token_type_ids"],
    ignored_prefixes: &["cls."],
    absent: &[],
};

impl<B: Backend> BertModel<B> {
    /// Builds the model `dir/config.json` describes and loads `dir/model.safetensors`.
    pub fn from_pretrained(
        dir: &Path,
        device: &B::Device,
    ) -> Result<(Self, ImportReport), ImportError> {
        let mut model = BertConfig::from_hf_json(&dir.join("config.json"))?.init(device);
        let report = model.load_safetensors(&dir.join("model.safetensors"))?;
        Ok((model, report))
    }

    /// Loads a Hugging Face BERT checkpoint. Fails, naming the keys, on any
    /// missing or unexpected key or wrong shape (on failure the tensors that
    /// did fit may already be loaded). Buffers (`position_ids`) and
    /// pre-training heads (`cls.*`) are ignored.
    pub fn load_safetensors(&mut self, path: &Path) -> Result<ImportReport, ImportError> {
        import::load_safetensors(self, path, &KEYS)
    }

    /// `ids` `[B, T]` (token type 0), `padding` `[B, T]` (`true` at padding).
    ///
    /// # Panics
    /// If `T` exceeds `max_position_embeddings`; [`BertModel::try_forward`]
    /// returns the error instead.
    pub fn forward(&self, ids: Tensor<B, 2, Int>, padding: Tensor<B, 2, Bool>) -> BertOutput<B> {
        self.try_forward(ids, padding)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// [`BertModel::forward`], with a sequence longer than the position
    /// table an error naming the limit.
    pub fn try_forward(
        &self,
        ids: Tensor<B, 2, Int>,
        padding: Tensor<B, 2, Bool>,
    ) -> Result<BertOutput<B>, PositionLimitError> {
        Ok(encode_and_pool(
            &self.encoder,
            self.pooler.as_ref(),
            self.embeddings.try_forward(ids)?,
            Some(padding),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn_store::ModuleSnapshot;

    #[test]
    fn every_parameter_has_a_checkpoint_key_that_maps_back_to_it() {
        let model = BertConfig::new(20, 8, 2, 2, 16).init::<NdArray>(&Default::default());
        let keys = crate::import::tests::round_trip(&model, &KEYS);
        assert!(keys.contains(&"encoder.layer.1.attention.output.LayerNorm.weight".to_string()));
        assert!(keys.contains(&"encoder.layer.0.intermediate.dense.bias".to_string()));
        assert!(keys.contains(&"embeddings.LayerNorm.bias".to_string()));
        assert!(keys.contains(&"pooler.dense.weight".to_string()));
        assert_eq!(keys.len(), model.collect(None, None, false).len());
    }
}
