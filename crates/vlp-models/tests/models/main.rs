//! The integration tests of vlp-models, in one binary: import of published
//! checkpoints against transformers (`hf_import`, `minilm_parity`), the
//! dual-stream layers against their reference code (`dual_stream_parity`)
//! and the `-base` sizes against PyTorch-built models (`published_sizes`).

mod dual_stream_parity;
mod hf_import;
mod minilm_parity;
mod published_sizes;
