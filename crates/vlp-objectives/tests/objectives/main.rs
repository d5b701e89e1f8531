//! The integration tests of vlp-objectives, in one binary (one link and one
//! instantiation of the models for the test backends instead of six):
//! losses against PyTorch/NumPy fixtures (`losses_reference`,
//! `objectives_reference`) and short trainings that must learn (`learns*`).

mod learns;
mod learns_architectures;
mod learns_simvlm;
mod learns_uniter;
mod losses_reference;
mod objectives_reference;
