//! vlp-ot's integration tests, one binary (each test binary links the Burn
//! stack again): POT fixtures, plan marginals, padding, gradients, and
//! UNITER-sized problems.

mod common;
mod gradient;
mod marginals;
mod padding;
mod pot_fixtures;
mod uniter_like;
