//! vlp-features: turning inputs into token embeddings.
//!
//! - [`TextEmbeddings`]: word + position + token type (BERT's embedding block),
//!   with learned or fixed sinusoidal positions ([`PositionEmbeddingKind`],
//!   [`sinusoidal_positions`]).
//! - [`PatchEmbeddings`]: ViT patches with `[CLS]`, positions and the image
//!   modality's type embedding; the position table is resampled (bicubic)
//!   for images of other sizes.
//! - [`ResNet`]: ResNet-18/50 trunk with torchvision's keys; [`BatchNormMode`]
//!   chooses Burn's training BN or [`frozen_batch_norm`] (running statistics).
//! - [`GridEmbeddings`]: CNN grid features (Pixel-BERT/SOHO): ResNet cells
//!   projected, with row + column positions and the image type embedding.
//! - [`VideoEmbeddings`]: a [`FrameBackbone`] (patches or grid) per frame,
//!   frame projection, temporal positions, type embedding; [`inflate_conv2d`]
//!   and [`InflatedStem`] carry 2-D weights into 3-D convolutions (I3D).
//! - [`FramePatchEmbeddings`]: a clip's ViT patches, frame by frame, with
//!   spatial and temporal positions after one `[CLS]` (spatial tokens per
//!   frame, so motion stays visible).
//! - [`set_trainable`]: freeze or unfreeze a tower's parameters.
//! - [`RegionEmbeddings`]: object-detector regions (feature + box geometry,
//!   [`BoxGeometry`] in LXMERT's, ViLBERT's or UNITER's layout).
//! - [`VisualEmbeddings`]: whichever visual extractor a model is configured
//!   with, applied to a `vlp_data::VisualBatch`.
//!
//! Every module is generic over the Burn backend and built from a
//! `#[derive(Config)]` whose `init::<B>(&device)` returns the module.
//!
//! ```
//! use burn::backend::NdArray;
//! use burn::prelude::*;
//! use burn::tensor::TensorData;
//! use vlp_features::{PositionEmbeddingKind, TextEmbeddingsConfig};
//!
//! let device = Default::default();
//! // Vocabulary 100, width 16, 8 fixed sinusoidal positions.
//! let embeddings = TextEmbeddingsConfig::new(100, 16)
//!     .with_max_position_embeddings(8)
//!     .with_position_embedding(PositionEmbeddingKind::Sinusoidal)
//!     .init::<NdArray>(&device);
//! let ids = Tensor::<NdArray, 2, Int>::from_data(TensorData::new(vec![2i64, 7, 9, 3], [1, 4]), &device);
//! assert_eq!(embeddings.try_forward(ids)?.dims(), [1, 4, 16]);
//!
//! // Nine tokens do not fit eight positions: an error that names the limit.
//! let long = Tensor::<NdArray, 2, Int>::zeros([1, 9], &device);
//! let err = embeddings.try_forward(long).unwrap_err();
//! assert!(err.to_string().starts_with("sequence of 9 tokens exceeds max_position_embeddings 8"));
//! # Ok::<(), vlp_features::PositionLimitError>(())
//! ```

mod batch_norm;
mod frame_patches;
mod freeze;
mod grid;
mod inflated;
mod patch;
mod region;
mod resnet;
mod sinusoid;
mod text;
mod video;
mod visual;

pub use batch_norm::{frozen_batch_norm, BatchNormMode};
pub use frame_patches::{FramePatchEmbeddings, FramePatchEmbeddingsConfig};
pub use freeze::set_trainable;
pub use grid::{GridEmbeddings, GridEmbeddingsConfig};
pub use inflated::{
    inflate_conv2d, inflate_conv2d_channels, InflateError, InflatedStem, InflatedStemConfig,
};
pub use patch::{patch_projection, patch_tokens, PatchEmbeddings, PatchEmbeddingsConfig};
pub use region::{BoxGeometry, RegionEmbeddings, RegionEmbeddingsConfig};
pub use resnet::{Block, Downsample, ResNet, ResNetConfig, ResNetLayout};
pub use sinusoid::sinusoidal_positions;
pub use text::{PositionEmbeddingKind, PositionLimitError, TextEmbeddings, TextEmbeddingsConfig};
pub use video::{
    FrameBackbone, FrameBackboneConfig, VideoEmbeddings, VideoEmbeddingsConfig,
    VideoEmbeddingsOutput,
};
pub use visual::{VisualEmbeddings, VisualEmbeddingsConfig, VisualTokens};
