//! Optimal transport for word-region alignment (WRA).
//!
//! Everything is batched over image-text pairs: costs are `[B, M, N]`
//! (`M` words × `N` regions), padding masks are `[B, M]` / `[B, N]` with
//! `true` marking padding (UNITER's convention), and every example is solved
//! on its own unpadded sub-problem with uniform marginals unless weights are
//! given.
//!
//! | module | what |
//! |---|---|
//! | [`cost`](mod@cost) | cosine (UNITER, eps-normalised) and squared-Euclidean costs, `[B,M,D] × [B,N,D] → [B,M,N]` |
//! | [`ipot`](mod@ipot) | IPOT as UNITER runs it (β = 0.5, 50 iterations, k = 1) |
//! | [`sinkhorn`](mod@sinkhorn) | log-domain Sinkhorn with tolerance and iteration cap |
//! | [`exact`](mod@exact) | exact OT (network simplex, `f64`), parallel over the batch |
//! | [`wra`](mod@wra) | UNITER's WRA distance `trace(Cᵀ T)` and loss |
//!
//! # Which path to use
//!
//! Each solver has a **tensor path** (generic over `B: Backend`, built from
//! Burn tensor ops, stays on the device) and a **host path** (hand-written
//! CPU kernels over [`CostBatch`], parallel over the batch with rayon's
//! current thread pool):
//!
//! - On **CPU backends** (NdArray, Flex) use the host path
//!   ([`ipot::ipot_host`] / [`ipot::ipot_via_host`],
//!   [`sinkhorn::sinkhorn_host`], [`exact::exact_host`]). WRA problems are
//!   tiny (~40 × 36): a 50-iteration IPOT is ~600 tensor ops of a few
//!   thousand elements each, so per-op overhead dominates, while the fused
//!   kernel keeps each problem in L1 cache (explicit AVX2 + FMA code on
//!   x86-64 CPUs that have it, detected at run time; portable
//!   auto-vectorised code elsewhere). For B = 32, 40 × 36, 2 threads:
//!   ~0.4 ms through [`ipot::ipot_via_host`] against ~4–8 ms for the tensor
//!   path or PyTorch (see `docs/benchmarks.md`).
//! - On **GPU backends** use the tensor path ([`ipot::ipot`],
//!   [`sinkhorn::sinkhorn`]) to avoid a device→host synchronisation per
//!   step ([`wra::SolverPath::Tensor`]). [`wra::WraConfig`]'s default,
//!   [`wra::SolverPath::Auto`], takes the tensor path on CubeCL backends
//!   (WGPU, CUDA) and the host path on the others. Sinkhorn's tensor path still reads
//!   back one number every `check_every` iterations for its stopping test.
//! - The exact solver is host-only (a pivoting algorithm); [`exact::exact`]
//!   accepts a tensor of any backend and reads it back. Use it for
//!   validation and small problems.
//!
//! The host solvers run on rayon's *current* thread pool (the global one
//! unless called inside `ThreadPool::install`), one task per example.
//!
//! Plans are always computed without gradient; distances returned alongside
//! a plan are `Σ C ⊙ T` with `T` detached, so on an autodiff backend the
//! gradient flows to the embeddings through the cost only.
//!
//! Invalid input (mismatched shapes, lengths outside `1..=M`, empty
//! examples, non-finite costs, bad marginals or configuration) is reported
//! as an [`OtError`], never by a panic inside tensor code.
//!
//! # Example
//!
//! Two words and two regions, where word 0 goes with region 1 and word 1
//! with region 0 (zero cost across, cost 1 along the diagonal):
//!
//! ```
//! use burn::backend::NdArray;
//! use burn::tensor::{Tensor, TensorData};
//! use vlp_ot::{emd, ipot_via_host, ExactConfig, IpotConfig};
//!
//! // Exact OT of one problem on the host, uniform marginals.
//! let cost = [1.0, 0.0, 0.0, 1.0];
//! let exact = emd(&[0.5, 0.5], &[0.5, 0.5], &cost, &ExactConfig::default())?;
//! assert_eq!(exact.plan, [0.0, 0.5, 0.5, 0.0]);
//! assert_eq!(exact.cost, 0.0);
//!
//! // UNITER's IPOT on a batch of one `[B, M, N]` cost tensor: the same plan.
//! let costs = TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0], [1, 2, 2]);
//! let costs = Tensor::<NdArray, 3>::from_data(costs, &Default::default());
//! let ipot = ipot_via_host(costs, None, &IpotConfig::default())?;
//! let plan: Vec<f32> = ipot.plan.into_data().to_vec().unwrap();
//! for (got, want) in plan.iter().zip([0.0, 0.5, 0.5, 0.0]) {
//!     assert!((got - want).abs() < 1e-3, "{plan:?}");
//! }
//! # Ok::<(), vlp_ot::OtError>(())
//! ```

#![warn(missing_docs)]

pub mod batch;
pub mod cost;
pub mod error;
pub mod exact;
mod fastmath;
pub mod ipot;
pub mod sinkhorn;
pub mod wra;

pub use batch::{CostBatch, HostPlans, Padding};
pub use cost::{cosine_cost, squared_euclidean_cost, CostKind, COSINE_EPS};
pub use error::{OtError, Result};
pub use exact::{emd, exact, exact_host, EmdSolution, ExactConfig};
pub use ipot::{ipot, ipot_host, ipot_via_host, IpotConfig, PlanOutput};
pub use sinkhorn::{sinkhorn, sinkhorn_host, SinkhornConfig, SinkhornHostOutput, SinkhornOutput};
pub use wra::{wra_distance, wra_loss, wra_objective, SolverPath, WraConfig, WraReduction};

/// Deterministic pseudo-random inputs of the unit tests.
#[cfg(test)]
mod test_rng {
    /// `len` states of a 64-bit linear congruential generator (Knuth's MMIX
    /// constants) from `seed`.
    fn states(seed: u64, len: usize) -> impl Iterator<Item = u64> {
        (0..len).scan(seed, |s, _| {
            *s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            Some(*s)
        })
    }

    /// `len` values in `[0, 1)` with 24 random bits.
    pub(crate) fn lcg_f32(seed: u64, len: usize) -> Vec<f32> {
        states(seed, len)
            .map(|s| (s >> 40) as f32 / (1u64 << 24) as f32)
            .collect()
    }

    /// `len` values in `[0, 1)` with 53 random bits.
    pub(crate) fn lcg_f64(seed: u64, len: usize) -> Vec<f64> {
        states(seed, len)
            .map(|s| (s >> 11) as f64 / (1u64 << 53) as f64)
            .collect()
    }
}
