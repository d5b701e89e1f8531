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

use std::sync::{Mutex, MutexGuard};

/// NdArray's random generator is global: tests of this binary that seed it
/// and then initialise a model hold this lock for their whole run, or
/// tests running in parallel would interleave their draws and each start
/// from an unpredictable model.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
