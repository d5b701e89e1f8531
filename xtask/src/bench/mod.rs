//! `cargo xtask bench ot | step | data`: vlp against reference
//! implementations (PyTorch, POT; PIL and tokenizers for the input
//! pipeline) on the same seeded inputs, in one command each.
//!
//! The benches write their inputs as `.npy` files, run the Python
//! reference of `benches/reference/` in the virtual environment `.venv/`
//! (created on demand, [`common`]) with the same thread count as vlp, flag
//! measurements that other processes disturbed, and print a Markdown report
//! with optional JSON rows (docs/benchmarks.md).

pub mod common;
pub mod data;
pub mod ot;
pub mod step;
