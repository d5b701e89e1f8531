//! vlp-models: transformer building blocks and vision-language fusion models.
//!
//! - [`MultiHeadSelfAttention`], [`FeedForward`], [`TransformerLayer`]
//!   (pre- or post-norm) and [`TransformerEncoder`].
//! - [`SingleStreamModel`]: merged attention over text and image tokens.
//! - [`Pooler`]: BERT's `[CLS]` pooler.

mod attention;
mod encoder;
mod feed_forward;
mod layer;
mod pooler;
mod single_stream;

pub use attention::{padding_bias, MultiHeadSelfAttention, MultiHeadSelfAttentionConfig};
pub use encoder::{TransformerEncoder, TransformerEncoderConfig};
pub use feed_forward::{FeedForward, FeedForwardConfig};
pub use layer::{TransformerLayer, TransformerLayerConfig};
pub use pooler::{Pooler, PoolerConfig};
pub use single_stream::{FusedOutput, SingleStreamConfig, SingleStreamModel};
