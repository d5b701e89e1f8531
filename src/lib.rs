//! vlp: vision-language pre-training on Burn.
//!
//! This facade re-exports the workspace's crates under one name; each is
//! also usable on its own:
//!
//! - [`data`] (`vlp-data`): synthetic world, tokenization, masking, batching.
//! - [`features`] (`vlp-features`): text and ViT patch embeddings.
//! - [`models`] (`vlp-models`): transformer blocks and fusion models.
//! - [`objectives`] (`vlp-objectives`): MLM, ITM, ITC heads and losses.
//! - [`ot`] (`vlp-ot`): optimal transport for word-region alignment.

pub use vlp_data as data;
pub use vlp_features as features;
pub use vlp_models as models;
pub use vlp_objectives as objectives;
pub use vlp_ot as ot;
