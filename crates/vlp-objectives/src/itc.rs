//! Image-text contrastive learning (survey §4.5): project text and image
//! `[CLS]` embeddings into a shared space and pull matching pairs together
//! with a symmetric InfoNCE over the batch, at a learnable temperature.

use burn::module::Param;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;

use crate::loss::{cross_entropy, l2_normalize};

/// Configuration of [`ItcHead`] (ALBEF's settings by default).
#[derive(Config, Debug)]
pub struct ItcHeadConfig {
    pub hidden_size: usize,
    /// Width of the image features when it differs from the text's
    /// (ViLBERT's 1024-wide visual stream).
    #[config(default = "None")]
    pub image_hidden_size: Option<usize>,
    /// Width of the shared embedding space.
    #[config(default = 256)]
    pub embed_dim: usize,
    /// Initial temperature τ.
    #[config(default = 0.07)]
    pub temperature: f64,
    /// τ is clamped to `[min_temperature, max_temperature]` when used.
    #[config(default = 0.001)]
    pub min_temperature: f64,
    #[config(default = 0.5)]
    pub max_temperature: f64,
}

#[derive(Module, Debug)]
pub struct ItcHead<B: Backend> {
    pub text_projection: Linear<B>,
    pub image_projection: Linear<B>,
    /// `[1]` learnable temperature.
    pub temperature: Param<Tensor<B, 1>>,
    pub min_temperature: f64,
    pub max_temperature: f64,
}

impl ItcHeadConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> ItcHead<B> {
        ItcHead {
            text_projection: LinearConfig::new(self.hidden_size, self.embed_dim).init(device),
            image_projection: LinearConfig::new(
                self.image_hidden_size.unwrap_or(self.hidden_size),
                self.embed_dim,
            )
            .init(device),
            temperature: Initializer::Constant {
                value: self.temperature,
            }
            .init([1], device),
            min_temperature: self.min_temperature,
            max_temperature: self.max_temperature,
        }
    }
}

impl<B: Backend> ItcHead<B> {
    /// `[B, H]` text `[CLS]` → `[B, D]` unit vectors.
    pub fn embed_text(&self, text_cls: Tensor<B, 2>) -> Tensor<B, 2> {
        l2_normalize(self.text_projection.forward(text_cls))
    }

    /// `[B, H]` image `[CLS]` → `[B, D]` unit vectors.
    pub fn embed_image(&self, image_cls: Tensor<B, 2>) -> Tensor<B, 2> {
        l2_normalize(self.image_projection.forward(image_cls))
    }

    /// The temperature in use (clamped), `[1]`.
    pub fn temperature(&self) -> Tensor<B, 1> {
        self.temperature
            .val()
            .clamp(self.min_temperature, self.max_temperature)
    }

    /// Text-to-image logits `[B, B]`: cosine similarity / τ.
    pub fn logits(&self, text: Tensor<B, 2>, image: Tensor<B, 2>) -> Tensor<B, 2> {
        text.matmul(image.transpose()) / self.temperature().unsqueeze::<2>()
    }
}

/// Symmetric InfoNCE over `logits` `[B, B]` whose diagonal holds the matching
/// pairs: the mean of the text→image and image→text cross-entropies.
pub fn itc_loss<B: Backend>(logits: Tensor<B, 2>) -> Tensor<B, 1> {
    let [batch, _] = logits.dims();
    let targets = Tensor::<B, 1, Int>::arange(0..batch as i64, &logits.device());
    (cross_entropy(logits.clone(), targets.clone()) + cross_entropy(logits.transpose(), targets))
        / 2.0
}
