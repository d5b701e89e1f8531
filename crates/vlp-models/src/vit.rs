//! Hugging Face ViT (`ViTModel`) from vlp's parts: [`PatchEmbeddings`], a
//! pre-norm [`TransformerEncoder`] whose final LayerNorm is ViT's
//! `layernorm`, and the `[CLS]` [`Pooler`].

use std::path::Path;

use burn::module::Param;
use burn::prelude::*;
use serde::Deserialize;
use vlp_features::{PatchEmbeddings, PatchEmbeddingsConfig};

use crate::config_error::{check_heads, check_patches, or_panic, ConfigError};
use crate::encoder::{TransformerEncoder, TransformerEncoderConfig};
use crate::feed_forward::Activation;
use crate::import::{self, ImportError, ImportReport, KeyMap};
use crate::pooler::{encode_and_pool, PooledOutput, Pooler, PoolerConfig};
use crate::size::TransformerSize;

/// Configuration of [`ViTModel`]; [`ViTConfig::from_hf_json`] reads it
/// from a Hugging Face `config.json`.
#[derive(Config, Debug)]
pub struct ViTConfig {
    /// Side of the square input images in pixels (`image_size`).
    pub image_size: usize,
    /// Side of the square patches; must divide `image_size` (`patch_size`).
    pub patch_size: usize,
    /// Token width (`hidden_size`).
    pub hidden_size: usize,
    /// Layers (`num_hidden_layers`).
    pub num_layers: usize,
    /// Attention heads (`num_attention_heads`).
    pub num_heads: usize,
    /// Feed-forward inner width (`intermediate_size`).
    pub intermediate_size: usize,
    /// Input channels (`num_channels`).
    #[config(default = 3)]
    pub channels: usize,
    /// LayerNorm epsilon (`layer_norm_eps`).
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Dropout of embeddings and layers (`hidden_dropout_prob`).
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Feed-forward non-linearity (`hidden_act`).
    #[config(default = "Activation::Gelu")]
    pub activation: Activation,
    /// Whether the model has the `[CLS]` pooler (`pooler.dense`).
    #[config(default = true)]
    pub pooler: bool,
}

/// The fields of a Hugging Face ViT `config.json` vlp reads, with
/// transformers' `ViTConfig` defaults for those a file may omit.
#[derive(Deserialize)]
struct HfViTConfig {
    model_type: Option<String>,
    image_size: Option<usize>,
    patch_size: Option<usize>,
    num_channels: Option<usize>,
    hidden_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    intermediate_size: Option<usize>,
    layer_norm_eps: Option<f64>,
    hidden_dropout_prob: Option<f64>,
    hidden_act: Option<String>,
    qkv_bias: Option<bool>,
}

impl ViTConfig {
    /// Reads a Hugging Face ViT `config.json` (with a pooler; see [`ViTConfig::with_pooler`]).
    pub fn from_hf_json(path: &Path) -> Result<Self, ImportError> {
        let hf: HfViTConfig = import::read_config(path)?;
        import::expect_model_type(path, hf.model_type.as_deref(), "vit")?;
        if hf.qkv_bias == Some(false) {
            return Err(ImportError::Config {
                path: path.to_path_buf(),
                message: "qkv_bias false is not supported (vlp's attention has biases)".into(),
            });
        }
        let activation = import::activation(path, hf.hidden_act.as_deref().unwrap_or("gelu"))?;
        let config = Self::new(
            hf.image_size.unwrap_or(224),
            hf.patch_size.unwrap_or(16),
            hf.hidden_size.unwrap_or(768),
            hf.num_hidden_layers.unwrap_or(12),
            hf.num_attention_heads.unwrap_or(12),
            hf.intermediate_size.unwrap_or(3072),
        )
        .with_channels(hf.num_channels.unwrap_or(3))
        .with_layer_norm_eps(hf.layer_norm_eps.unwrap_or(1e-12))
        .with_dropout(hf.hidden_dropout_prob.unwrap_or(0.0))
        .with_activation(activation);
        import::validated(path, config, Self::validate)
    }

    /// ViT's patch embeddings (projection with bias, `[CLS]`, positions).
    pub fn embeddings(&self) -> PatchEmbeddingsConfig {
        PatchEmbeddingsConfig::new(self.image_size, self.patch_size, self.hidden_size)
            .with_channels(self.channels)
            .with_dropout(self.dropout)
    }

    /// The pre-norm encoder; its final LayerNorm is ViT's `layernorm`.
    pub fn encoder(&self) -> TransformerEncoderConfig {
        self.size()
            .encoder_with(self.layer_norm_eps, self.activation)
    }

    /// The stack's size (ViT is pre-norm).
    pub fn size(&self) -> TransformerSize {
        TransformerSize::of(
            self.hidden_size,
            self.num_heads,
            self.intermediate_size,
            self.num_layers,
        )
        .with_norm_first(true)
        .with_dropout(self.dropout)
    }

    /// Whether the values can build a model; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_patches("", self.image_size, self.patch_size)?;
        check_heads("hidden_size", self.hidden_size, "num_heads", self.num_heads)
    }

    /// The model, parameters in checkpoint order.
    ///
    /// # Panics
    ///
    /// When [`validate`](Self::validate) fails, with its message.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ViTModel<B> {
        or_panic(self.validate());
        ViTModel {
            embeddings: self.embeddings().init(device),
            encoder: self.encoder().init(device),
            pooler: self
                .pooler
                .then(|| PoolerConfig::new(self.hidden_size).init(device)),
        }
    }
}

/// ViT: `[B, C, S, S]` images → `[B, 1 + P, H]` tokens (+ pooled `[CLS]`).
#[derive(Module, Debug)]
pub struct ViTModel<B: Backend> {
    /// Patch projection, `[CLS]` and positions (`embeddings`).
    pub embeddings: PatchEmbeddings<B>,
    /// The pre-norm layers with ViT's final `layernorm`.
    pub encoder: TransformerEncoder<B>,
    /// The `[CLS]` pooler (`pooler.dense`), when configured.
    pub pooler: Option<Pooler<B>>,
}

/// Output of [`ViTModel::forward`].
pub type ViTOutput<B> = PooledOutput<B>;

/// Hugging Face ViT keys → vlp paths (`vit.` prefixes the task models,
/// `classifier.` is `ViTForImageClassification`'s head).
const KEYS: KeyMap = KeyMap {
    strip: &["vit."],
    renames: &[
        (
            "embeddings.patch_embeddings.projection",
            "embeddings.projection",
        ),
        (
            "encoder.layer.{n}.attention.attention.query",
            "encoder.layer.{n}.attention.query",
        ),
        (
            "encoder.layer.{n}.attention.attention.key",
            "encoder.layer.{n}.attention.key",
        ),
        (
            "encoder.layer.{n}.attention.attention.value",
            "encoder.layer.{n}.attention.value",
        ),
        (
            "encoder.layer.{n}.attention.output.dense",
            "encoder.layer.{n}.attention.output",
        ),
        (
            "encoder.layer.{n}.layernorm_before",
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
            "encoder.layer.{n}.layernorm_after",
            "encoder.layer.{n}.output_norm",
        ),
        ("layernorm", "encoder.final_norm"),
    ],
    ignored_names: &[],
    ignored_prefixes: &["classifier."],
    absent: &["embeddings.type_embedding"],
};

impl<B: Backend> ViTModel<B> {
    /// Builds the model `dir/config.json` describes and loads `dir/model.safetensors`.
    pub fn from_pretrained(
        dir: &Path,
        device: &B::Device,
    ) -> Result<(Self, ImportReport), ImportError> {
        let mut model = ViTConfig::from_hf_json(&dir.join("config.json"))?.init(device);
        let report = model.load_safetensors(&dir.join("model.safetensors"))?;
        Ok((model, report))
    }

    /// Loads a Hugging Face ViT checkpoint. Fails, naming the keys, on any
    /// missing or unexpected key or wrong shape. ViT has no modality type
    /// embedding, so vlp's is set to zero: the model then computes exactly
    /// what ViT computes (and a single-stream model starts from there).
    pub fn load_safetensors(&mut self, path: &Path) -> Result<ImportReport, ImportError> {
        let type_embedding = &self.embeddings.type_embedding;
        self.embeddings.type_embedding = Param::from_tensor(Tensor::zeros(
            type_embedding.dims(),
            &type_embedding.device(),
        ));
        import::load_safetensors(self, path, &KEYS)
    }

    /// `images` `[B, C, S, S]` → [`ViTOutput`].
    pub fn forward(&self, images: Tensor<B, 4>) -> ViTOutput<B> {
        encode_and_pool(
            &self.encoder,
            self.pooler.as_ref(),
            self.embeddings.forward(images),
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn every_parameter_but_the_type_embedding_has_a_checkpoint_key() {
        let model = ViTConfig::new(8, 4, 8, 2, 2, 16).init::<NdArray>(&Default::default());
        let keys = crate::import::tests::round_trip(&model, &KEYS);
        for key in [
            "embeddings.cls_token",
            "embeddings.position_embeddings",
            "embeddings.patch_embeddings.projection.weight",
            "encoder.layer.1.attention.attention.value.bias",
            "encoder.layer.0.layernorm_before.weight",
            "layernorm.bias",
            "pooler.dense.weight",
        ] {
            assert!(keys.contains(&key.to_string()), "{key} not in {keys:?}");
        }
    }
}
