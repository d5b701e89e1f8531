//! vlp: vision-language pre-training on Burn.
//!
//! This facade re-exports the workspace's library crates under one name;
//! each is also usable on its own:
//!
//! - [`data`] (`vlp-data`): synthetic world, region-feature readers,
//!   tokenization, masking, batching; [`data::tokens_to_tensors`] turns
//!   tokenized text into a model's input tensors.
//! - [`features`] (`vlp-features`): input embeddings (text with learned or
//!   sinusoidal positions, ViT patches, ResNet grids, detector regions,
//!   video frames).
//! - [`models`] (`vlp-models`): transformer blocks, single-stream,
//!   dual-stream, fusion, dual-encoder and generative models, Hugging Face
//!   imports (BERT, ViT, CLIP).
//! - [`objectives`] (`vlp-objectives`): pre-training heads and losses (MLM,
//!   ITM, ITC, masked region and patch modelling, WRA, captioning, VQA) and
//!   the pre-trainers that combine them.
//! - [`ot`] (`vlp-ot`): optimal transport (IPOT, Sinkhorn, exact) for
//!   word-region alignment.
//!
//! # Crate graph
//!
//! ```text
//! vlp-data → vlp-features → vlp-models → vlp-objectives → vlp-train → xtask
//!                                              │
//!                                              └──→ vlp-ot
//! ```
//!
//! Each crate depends on those to its left. `vlp-ot` stands beside the
//! chain: it needs only Burn, and `vlp-objectives` calls it for WRA.
//! `vlp-train` is the training library (configuration, model building
//! from a configuration, the `Trainer`, learning-rate schedule, held-out
//! evaluation, run folders and checkpoints); `xtask` is the command-line
//! runner on top of it (`cargo xtask pretrain`, `eval`, `ablate`, `bench`).
//!
//! Every library crate is generic over the Burn backend and names none; a
//! binary picks one (`burn` with the `flex`, `ndarray`, `wgpu` or `cuda`
//! feature). Train on an autodiff backend (`Autodiff<Flex>`); run inference
//! on the inner backend (`Flex`, or `model.valid()`), where dropout is off.
//! The README's "Using the crates" section, compiled as a doc test of this
//! crate, builds a model and runs it on the synthetic world.

pub use vlp_data as data;
pub use vlp_features as features;
pub use vlp_models as models;
pub use vlp_objectives as objectives;
pub use vlp_ot as ot;

/// The README, whose `rust` blocks run as doc tests of this crate.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
