//! Helpers shared by the tests of the vlp crates (a dev-dependency only):
//! reading the committed fixtures ([`fixture!`], [`fixtures`]), comparing
//! numbers against a reference with one tolerance rule ([`assert_close`]),
//! and the tiny synthetic-world batchers ([`batchers`]), models (`models`)
//! and training loop (`training`; both with the feature `pretrainers`) that
//! the learning and parity tests share, so a change of a constructor touches
//! one file; and inputs drawn from a generator of their own ([`uniform`]).

pub mod batchers;
mod close;
pub mod fixtures;
#[cfg(feature = "pretrainers")]
pub mod models;
#[cfg(feature = "pretrainers")]
pub mod training;

pub use batchers::{tiny_region_batcher, tiny_tokenizer, tiny_world_batcher};
pub use close::{assert_close, Tol, Values};
pub use fixtures::read_json;

use burn::prelude::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use std::sync::{Mutex, MutexGuard};

/// Burn's CPU backends draw from one global generator: a test that seeds it
/// and then initialises a model holds this lock for its whole run, or tests
/// running in parallel in the same binary would interleave their draws and
/// each start from an unpredictable model.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Seeds `B`'s global generator under [`serial`]'s lock, which the caller
/// holds (the returned guard) while it initialises and draws: a test that
/// seeded without the lock would reset the generator in the middle of
/// another test's initialisation.
pub fn seeded<B: Backend>(device: &B::Device, seed: u64) -> MutexGuard<'static, ()> {
    let guard = serial();
    B::seed(device, seed);
    guard
}

/// A tensor of uniform draws in `[0, 1)` from a generator of its own,
/// seeded with `seed`: for inputs a test draws twice and expects to come
/// out the same. Drawn from the backend's one global generator instead,
/// they would change whenever a test running beside it draws between the
/// seeding and the draw, however both are seeded.
pub fn uniform<B: Backend, const D: usize>(
    shape: [usize; D],
    seed: u64,
    device: &B::Device,
) -> Tensor<B, D> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let values: Vec<f32> = (0..shape.iter().product()).map(|_| rng.random()).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}
