//! vlp-features: turning inputs into token embeddings.
//!
//! - [`TextEmbeddings`]: word + position + token type (BERT's embedding block).
//! - [`PatchEmbeddings`]: ViT patches with `[CLS]`, positions and the image
//!   modality's type embedding.
//!
//! Every module is generic over the Burn backend and built from a
//! `#[derive(Config)]` whose `init::<B>(&device)` returns the module.

mod batch_norm;
mod freeze;
mod grid;
mod inflated;
mod patch;
mod resnet;
mod text;
mod video;

pub use batch_norm::{frozen_batch_norm, BatchNormMode};
pub use freeze::set_trainable;
pub use grid::{GridEmbeddings, GridEmbeddingsConfig};
pub use inflated::{inflate_conv2d, InflateError, InflatedStem, InflatedStemConfig};
pub use patch::{PatchEmbeddings, PatchEmbeddingsConfig};
pub use resnet::{Block, Downsample, ResNet, ResNetConfig, ResNetLayout};
pub use text::{TextEmbeddings, TextEmbeddingsConfig};
pub use video::{
    FrameBackbone, FrameBackboneConfig, VideoEmbeddings, VideoEmbeddingsConfig,
    VideoEmbeddingsOutput,
};
