//! vlp-objectives: pre-training objectives as heads and losses.
//!
//! - [`mlm`]: masked language modelling, head on masked positions only,
//!   decoder tied to the word embeddings.
//! - [`itm`]: image-text matching on the pooled fused `[CLS]`.
//! - [`itc`]: image-text contrastive (symmetric InfoNCE, learnable clamped
//!   temperature).
//! - [`pretrainer`]: the [`Pretrainer`] and [`RetrievalModel`] traits every
//!   architecture's pre-training model implements.
//! - [`pretrain`]: a single-stream model with the three heads, one step's losses.
//! - [`simvlm`]: SimVLM (encoder-decoder or PrefixLM stack), the PrefixLM
//!   objective on the suffix, and captioning from `[CLS]`.

pub mod itc;
pub mod itm;
pub mod loss;
pub mod mlm;
pub mod pretrain;
pub mod pretrainer;
pub mod simvlm;

pub use itc::{itc_loss, ItcHead, ItcHeadConfig};
pub use itm::{itm_loss, ItmHead, ItmHeadConfig};
pub use loss::{accuracy, cross_entropy, l2_normalize};
pub use mlm::{gather_positions, mlm_loss, MlmHead, MlmHeadConfig};
pub use pretrain::{SingleStreamPretrainer, SingleStreamPretrainerConfig};
pub use pretrainer::{ObjectiveOutput, PretrainOutput, Pretrainer, RetrievalModel};
pub use simvlm::{SimVlmArchitecture, SimVlmModel, SimVlmPretrainer, SimVlmPretrainerConfig};
