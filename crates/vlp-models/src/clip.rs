//! Hugging Face CLIP (`CLIPModel`): a vision tower and a causal text tower
//! from vlp's parts, linear projections without bias into a shared space,
//! and the learned temperature `logit_scale`.

use std::path::Path;

use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use serde::Deserialize;

use crate::clip_text::{ClipTextConfig, ClipTextOutput, ClipTextTransformer};
use crate::clip_vision::{ClipVisionConfig, ClipVisionOutput, ClipVisionTransformer};
use crate::config_error::{or_panic, ConfigError};
use crate::import::{self, ImportError, ImportReport, KeyMap};
use crate::pooling::l2_normalize;

/// Configuration of [`ClipModel`]; [`ClipConfig::from_hf_json`] reads it
/// from a Hugging Face `config.json`.
#[derive(Config, Debug)]
pub struct ClipConfig {
    /// The text tower (`text_config`).
    pub text: ClipTextConfig,
    /// The vision tower (`vision_config`).
    pub vision: ClipVisionConfig,
    /// Width of the shared embedding space.
    pub projection_dim: usize,
    /// Initial `logit_scale` = ln(1 / 0.07).
    #[config(default = 2.6592)]
    pub logit_scale_init: f64,
}

/// `CLIPTextConfig` fields, with transformers' defaults.
#[derive(Deserialize, Default)]
#[serde(default)]
struct HfClipText {
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    max_position_embeddings: Option<usize>,
    layer_norm_eps: Option<f64>,
    hidden_act: Option<String>,
    eos_token_id: Option<usize>,
}

/// `CLIPVisionConfig` fields, with transformers' defaults.
#[derive(Deserialize, Default)]
#[serde(default)]
struct HfClipVision {
    image_size: Option<usize>,
    patch_size: Option<usize>,
    num_channels: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    layer_norm_eps: Option<f64>,
    hidden_act: Option<String>,
}

#[derive(Deserialize)]
struct HfClip {
    model_type: Option<String>,
    #[serde(default)]
    text_config: HfClipText,
    #[serde(default)]
    vision_config: HfClipVision,
    projection_dim: Option<usize>,
    logit_scale_init_value: Option<f64>,
}

impl ClipConfig {
    /// Reads a Hugging Face CLIP `config.json`. As in transformers, an
    /// `eos_token_id` of 2 (the value of configs written before the fix of
    /// the end-of-text id) means pooling at the largest id.
    pub fn from_hf_json(path: &Path) -> Result<Self, ImportError> {
        let hf: HfClip = import::read_config(path)?;
        import::expect_model_type(path, hf.model_type.as_deref(), "clip")?;
        let (t, v) = (&hf.text_config, &hf.vision_config);
        let text = ClipTextConfig::new(
            t.vocab_size.unwrap_or(49408),
            t.hidden_size.unwrap_or(512),
            t.num_hidden_layers.unwrap_or(12),
            t.num_attention_heads.unwrap_or(8),
            t.intermediate_size.unwrap_or(2048),
        )
        .with_max_position_embeddings(t.max_position_embeddings.unwrap_or(77))
        .with_layer_norm_eps(t.layer_norm_eps.unwrap_or(1e-5))
        .with_activation(import::activation(
            path,
            t.hidden_act.as_deref().unwrap_or("quick_gelu"),
        )?)
        .with_eos_token_id(Some(t.eos_token_id.unwrap_or(49407)).filter(|&id| id != 2));
        let vision = ClipVisionConfig::new(
            v.image_size.unwrap_or(224),
            v.patch_size.unwrap_or(32),
            v.hidden_size.unwrap_or(768),
            v.num_hidden_layers.unwrap_or(12),
            v.num_attention_heads.unwrap_or(12),
            v.intermediate_size.unwrap_or(3072),
        )
        .with_channels(v.num_channels.unwrap_or(3))
        .with_layer_norm_eps(v.layer_norm_eps.unwrap_or(1e-5))
        .with_activation(import::activation(
            path,
            v.hidden_act.as_deref().unwrap_or("quick_gelu"),
        )?);
        let config = Self::new(text, vision, hf.projection_dim.unwrap_or(512))
            .with_logit_scale_init(hf.logit_scale_init_value.unwrap_or(2.6592));
        import::validated(path, config, Self::validate)
    }

    /// Whether both towers can be built; the error names the key
    /// (`text.…` or `vision.…`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let within = |tower: &str, error: ConfigError| ConfigError {
            key: format!("{tower}.{}", error.key),
            ..error
        };
        self.text.validate().map_err(|e| within("text", e))?;
        self.vision.validate().map_err(|e| within("vision", e))
    }

    /// The model, parameters in checkpoint order.
    ///
    /// # Panics
    ///
    /// When [`validate`](Self::validate) fails, with its message.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ClipModel<B> {
        or_panic(self.validate());
        let projection = |width| {
            LinearConfig::new(width, self.projection_dim)
                .with_bias(false)
                .init(device)
        };
        ClipModel {
            text_model: self.text.init(device),
            vision_model: self.vision.init(device),
            text_projection: projection(self.text.hidden_size),
            visual_projection: projection(self.vision.hidden_size),
            logit_scale: Param::from_tensor(Tensor::from_floats(
                [self.logit_scale_init as f32],
                device,
            )),
        }
    }
}

/// CLIP: two towers, their projections and the temperature.
#[derive(Module, Debug)]
pub struct ClipModel<B: Backend> {
    /// The causal text tower (`text_model`).
    pub text_model: ClipTextTransformer<B>,
    /// The vision tower (`vision_model`).
    pub vision_model: ClipVisionTransformer<B>,
    /// Pooled text → shared space, no bias (`text_projection`).
    pub text_projection: Linear<B>,
    /// Pooled image → shared space, no bias (`visual_projection`).
    pub visual_projection: Linear<B>,
    /// `[1]` (a 0-d tensor in checkpoints): logits are scaled by its exponential.
    pub logit_scale: Param<Tensor<B, 1>>,
}

/// Output of [`ClipModel::forward`].
#[derive(Debug, Clone)]
pub struct ClipOutput<B: Backend> {
    /// The text tower's output.
    pub text: ClipTextOutput<B>,
    /// The vision tower's output.
    pub vision: ClipVisionOutput<B>,
    /// `[Bt, D]` L2-normalised projected text.
    pub text_embeds: Tensor<B, 2>,
    /// `[Bi, D]` L2-normalised projected images.
    pub image_embeds: Tensor<B, 2>,
    /// `[Bi, Bt]`: `exp(logit_scale) · cos(image, text)`.
    pub logits_per_image: Tensor<B, 2>,
}

/// The layer renames shared by both towers, for one tower's prefix.
macro_rules! tower_keys {
    ($tower:literal) => {
        [
            (
                concat!($tower, ".encoder.layers.{n}.self_attn.q_proj"),
                concat!($tower, ".encoder.layer.{n}.attention.query"),
            ),
            (
                concat!($tower, ".encoder.layers.{n}.self_attn.k_proj"),
                concat!($tower, ".encoder.layer.{n}.attention.key"),
            ),
            (
                concat!($tower, ".encoder.layers.{n}.self_attn.v_proj"),
                concat!($tower, ".encoder.layer.{n}.attention.value"),
            ),
            (
                concat!($tower, ".encoder.layers.{n}.self_attn.out_proj"),
                concat!($tower, ".encoder.layer.{n}.attention.output"),
            ),
            (
                concat!($tower, ".encoder.layers.{n}.layer_norm1"),
                concat!($tower, ".encoder.layer.{n}.attention_norm"),
            ),
            (
                concat!($tower, ".encoder.layers.{n}.mlp.fc1"),
                concat!($tower, ".encoder.layer.{n}.feed_forward.intermediate"),
            ),
            (
                concat!($tower, ".encoder.layers.{n}.mlp.fc2"),
                concat!($tower, ".encoder.layer.{n}.feed_forward.output"),
            ),
            (
                concat!($tower, ".encoder.layers.{n}.layer_norm2"),
                concat!($tower, ".encoder.layer.{n}.output_norm"),
            ),
        ]
    };
}

const TEXT_KEYS: [(&str, &str); 8] = tower_keys!("text_model");
const VISION_KEYS: [(&str, &str); 8] = tower_keys!("vision_model");
const RENAMES: [(&str, &str); 17] = {
    let mut all = [(
        "text_model.final_layer_norm",
        "text_model.encoder.final_norm",
    ); 17];
    let mut i = 0;
    while i < 8 {
        all[1 + i] = TEXT_KEYS[i];
        all[9 + i] = VISION_KEYS[i];
        i += 1;
    }
    all
};

/// Hugging Face CLIP keys → vlp paths; the embeddings, `pre_layrnorm`,
/// `post_layernorm`, projections and `logit_scale` keep their names.
const KEYS: KeyMap = KeyMap {
    strip: &[],
    renames: &RENAMES,
    ignored_names: &["position_ids"],
    ignored_prefixes: &[],
    absent: &[],
};

impl<B: Backend> ClipModel<B> {
    /// Builds the model `dir/config.json` describes and loads `dir/model.safetensors`.
    pub fn from_pretrained(
        dir: &Path,
        device: &B::Device,
    ) -> Result<(Self, ImportReport), ImportError> {
        let mut model = ClipConfig::from_hf_json(&dir.join("config.json"))?.init(device);
        let report = model.load_safetensors(&dir.join("model.safetensors"))?;
        Ok((model, report))
    }

    /// Loads a Hugging Face CLIP checkpoint. Fails, naming the keys, on any
    /// missing or unexpected key or wrong shape.
    pub fn load_safetensors(&mut self, path: &Path) -> Result<ImportReport, ImportError> {
        import::load_safetensors(self, path, &KEYS)
    }

    /// `[B, D]` projected (not normalised) text features, as
    /// transformers' `get_text_features`.
    pub fn text_features(&self, text: &ClipTextOutput<B>) -> Tensor<B, 2> {
        self.text_projection.forward(text.pooled.clone())
    }

    /// `[B, D]` projected (not normalised) image features, as
    /// transformers' `get_image_features`.
    pub fn image_features(&self, vision: &ClipVisionOutput<B>) -> Tensor<B, 2> {
        self.visual_projection.forward(vision.pooled.clone())
    }

    /// `ids` `[Bt, T]` with `padding` `[Bt, T]`, `images` `[Bi, C, S, S]` → [`ClipOutput`].
    pub fn forward(
        &self,
        ids: Tensor<B, 2, Int>,
        padding: Tensor<B, 2, Bool>,
        images: Tensor<B, 4>,
    ) -> ClipOutput<B> {
        let text = self.text_model.forward(ids, padding);
        let vision = self.vision_model.forward(images);
        let text_embeds = l2_normalize(self.text_features(&text));
        let image_embeds = l2_normalize(self.image_features(&vision));
        let scale = self.logit_scale.val().exp().unsqueeze::<2>();
        let logits_per_image = image_embeds.clone().matmul(text_embeds.clone().transpose()) * scale;
        ClipOutput {
            text,
            vision,
            text_embeds,
            image_embeds,
            logits_per_image,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn_store::ModuleSnapshot;

    #[test]
    fn every_parameter_has_a_checkpoint_key_that_maps_back_to_it() {
        let config = ClipConfig::new(
            ClipTextConfig::new(20, 8, 2, 2, 16).with_max_position_embeddings(6),
            ClipVisionConfig::new(8, 4, 8, 2, 2, 16),
            4,
        );
        let model = config.init::<NdArray>(&Default::default());
        let keys = crate::import::tests::round_trip(&model, &KEYS);
        for key in [
            "logit_scale",
            "text_projection.weight",
            "visual_projection.weight",
            "text_model.embeddings.token_embedding.weight",
            "text_model.encoder.layers.1.self_attn.out_proj.bias",
            "text_model.final_layer_norm.weight",
            "vision_model.embeddings.class_embedding",
            "vision_model.embeddings.patch_embedding.weight",
            "vision_model.pre_layrnorm.bias",
            "vision_model.encoder.layers.0.mlp.fc2.weight",
            "vision_model.post_layernorm.weight",
        ] {
            assert!(keys.contains(&key.to_string()), "{key} not in {keys:?}");
        }
        assert_eq!(keys.len(), model.collect(None, None, false).len());
    }
}
