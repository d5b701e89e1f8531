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
//! - [`pretrain_dual_stream`], [`pretrain_albef`], [`pretrain_clip`]: the
//!   same for ViLBERT/LXMERT (MLM, ITM, ITC), ALBEF (MLM, ITM, ITC) and CLIP
//!   (ITC only).

pub mod itc;
pub mod itm;
pub mod loss;
pub mod mlm;
pub mod pretrain;
pub mod pretrain_albef;
pub mod pretrain_clip;
pub mod pretrain_dual_stream;
pub mod pretrainer;

pub use itc::{itc_loss, ItcHead, ItcHeadConfig};
pub use itm::{itm_loss, ItmHead, ItmHeadConfig};
pub use loss::{accuracy, cross_entropy, l2_normalize};
pub use mlm::{gather_positions, mlm_loss, MlmHead, MlmHeadConfig};
pub use pretrain::{SingleStreamPretrainer, SingleStreamPretrainerConfig};
pub use pretrain_albef::{AlbefPretrainer, AlbefPretrainerConfig};
pub use pretrain_clip::{ClipPretrainer, ClipPretrainerConfig};
pub use pretrain_dual_stream::{DualStreamPretrainer, DualStreamPretrainerConfig};
pub use pretrainer::{ObjectiveOutput, PretrainOutput, Pretrainer, RetrievalModel};
