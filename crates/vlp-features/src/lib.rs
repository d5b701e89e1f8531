//! vlp-features: turning inputs into token embeddings.
//!
//! - [`TextEmbeddings`]: word + position + token type (BERT's embedding block).
//! - [`PatchEmbeddings`]: ViT patches with `[CLS]`, positions and the image
//!   modality's type embedding.
//! - [`RegionEmbeddings`]: object-detector regions (feature + box geometry,
//!   [`BoxGeometry`] in LXMERT's, ViLBERT's or UNITER's layout).
//! - [`VisualEmbeddings`]: whichever visual extractor a model is configured
//!   with, applied to a `vlp_data::VisualBatch`.
//!
//! Every module is generic over the Burn backend and built from a
//! `#[derive(Config)]` whose `init::<B>(&device)` returns the module.

mod patch;
mod region;
mod text;
mod visual;

pub use patch::{PatchEmbeddings, PatchEmbeddingsConfig};
pub use region::{BoxGeometry, RegionEmbeddings, RegionEmbeddingsConfig};
pub use text::{TextEmbeddings, TextEmbeddingsConfig};
pub use visual::{VisualEmbeddings, VisualEmbeddingsConfig, VisualTokens};
