//! vlp-features: turning inputs into token embeddings.
//!
//! - [`TextEmbeddings`]: word + position + token type (BERT's embedding block).
//! - [`PatchEmbeddings`]: ViT patches with `[CLS]`, positions and the image
//!   modality's type embedding.
//!
//! Every module is generic over the Burn backend and built from a
//! `#[derive(Config)]` whose `init::<B>(&device)` returns the module.

mod patch;
mod text;

pub use patch::{PatchEmbeddings, PatchEmbeddingsConfig};
pub use text::{TextEmbeddings, TextEmbeddingsConfig};
