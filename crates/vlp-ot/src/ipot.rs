//! IPOT, the inexact proximal point method for optimal transport
//! (Xie et al., 2018), exactly as UNITER runs it for word-region alignment.
//!
//! For one example with `n_x` valid rows, `n_y` valid columns, uniform
//! marginals `a = 1/n_x`, `b = 1/n_y` and kernel `A = exp(-C/β)` (zero at
//! padded entries), starting from `σ = 1/n_x`, `T = 1` (on valid entries):
//!
//! ```text
//! repeat `iterations` times:
//!     Q = A ⊙ T
//!     repeat `inner` (k) times:
//!         δ = 1 / (n_y · Qᵀσ)        // column scaling, [N]
//!         σ = 1 / (n_x · Q δ)        // row scaling,    [M]
//!     T = diag(σ) Q diag(δ)
//! ```
//!
//! Every outer step is a Bregman proximal step `T ← argmin ⟨C,T⟩ + β·KL(T‖T_prev)`
//! solved inexactly by `k` Sinkhorn sweeps, so `T` approaches the exact OT plan
//! as the number of iterations grows (not the entropic one). Row marginals
//! are exact after every outer step; column marginals converge.
//!
//! Two implementations share [`IpotConfig`]:
//! - [`ipot`]: tensor ops, any backend, no host round trip (use on GPU);
//! - [`ipot_host`]: a fused hand-written `f32` CPU kernel, parallel over the
//!   batch with rayon. Much faster on CPU backends for UNITER-sized problems
//!   (tens of rows/columns), where per-op tensor overhead dominates.
//!
//! Both compute the plan without gradient. The UNITER distance
//! `trace(Cᵀ T) = Σ C ⊙ T` is differentiable w.r.t. `C` only: see
//! [`crate::wra::wra_distance`].

use burn::tensor::{backend::Backend, Tensor};
use rayon::prelude::*;

use crate::batch::{float_to_host, scatter_plan, CostBatch, HostPlans, Padding};
use crate::error::{shape_err, OtError, Result};
use crate::fastmath::{exp_f32, simd_available};

/// Floor for the IPOT denominators (guards against `1/0` when a whole kernel
/// column underflows; padded rows/columns get a zero scaling instead).
const TINY: f32 = 1e-30;

/// IPOT parameters. Defaults are UNITER's: `β = 0.5`, 50 outer iterations,
/// `k = 1` inner Sinkhorn sweep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IpotConfig {
    /// Proximal step size `β > 0` (kernel `exp(-C/β)`).
    pub beta: f64,
    /// Number of outer (proximal) iterations, `≥ 1`.
    pub iterations: usize,
    /// Number of inner Sinkhorn sweeps `k ≥ 1` per outer iteration.
    pub inner: usize,
}

impl Default for IpotConfig {
    fn default() -> Self {
        Self {
            beta: 0.5,
            iterations: 50,
            inner: 1,
        }
    }
}

impl IpotConfig {
    /// Checks `β > 0` (finite), `iterations ≥ 1`, `inner ≥ 1`.
    pub fn validate(&self) -> Result<()> {
        if !(self.beta > 0.0 && self.beta.is_finite()) {
            return Err(OtError::Config(format!(
                "IPOT beta must be > 0, got {}",
                self.beta
            )));
        }
        if self.iterations == 0 || self.inner == 0 {
            return Err(OtError::Config(
                "IPOT iterations and inner steps must be >= 1".into(),
            ));
        }
        Ok(())
    }
}

/// Result of the tensor-path solvers.
#[derive(Clone, Debug)]
pub struct PlanOutput<B: Backend> {
    /// Transport plans `[B, M, N]`, detached, zero at padded entries.
    pub plan: Tensor<B, 3>,
    /// `Σ C ⊙ T` per example, `[B]`; differentiable w.r.t. the input cost
    /// only (the plan is treated as a constant).
    pub distance: Tensor<B, 1>,
}

/// A host solver run on a cost tensor: reads `cost` `[B, M, N]` (and its
/// padding) back, solves with `solve`, uploads the plan, and returns it with
/// the distance `Σ C ⊙ T`, differentiable w.r.t. `cost` (plan detached).
pub(crate) fn plan_via_host<B: Backend, T: Copy + Into<f64>>(
    cost: Tensor<B, 3>,
    padding: Option<&Padding<B>>,
    solve: impl FnOnce(&CostBatch) -> Result<HostPlans<T>>,
) -> Result<PlanOutput<B>> {
    let batch = CostBatch::from_tensor(cost.clone().detach(), padding)?;
    let plan = solve(&batch)?.plans_tensor::<B>(&cost.device());
    let distance = (cost * plan.clone()).sum_dims_squeeze::<1, _>(&[1, 2]);
    Ok(PlanOutput { plan, distance })
}

/// Float masks derived from optional padding: `(x_valid [B,M,1], y_valid [B,1,N],
/// n_x [B,1,1], n_y [B,1,1])`.
pub(crate) type ValidMasks<B> = (Tensor<B, 3>, Tensor<B, 3>, Tensor<B, 3>, Tensor<B, 3>);

/// Validates the optional padding against `cost` and returns float masks.
pub(crate) fn valid_masks<B: Backend>(
    cost: &Tensor<B, 3>,
    padding: Option<&Padding<B>>,
) -> Result<ValidMasks<B>> {
    let [b, m, n] = cost.dims();
    if b == 0 || m == 0 || n == 0 {
        return Err(shape_err(
            "cost [B, M, N] (no empty dimension)",
            &[1, 1, 1],
            &[b, m, n],
        ));
    }
    let device = cost.device();
    match padding {
        None => Ok((
            Tensor::ones([b, m, 1], &device),
            Tensor::ones([b, 1, n], &device),
            Tensor::full([b, 1, 1], m as f32, &device),
            Tensor::full([b, 1, 1], n as f32, &device),
        )),
        Some(p) => {
            p.check(b, m, n)?;
            let xv: Tensor<B, 3> = p.x.clone().bool_not().float().unsqueeze_dim(2);
            let yv: Tensor<B, 3> = p.y.clone().bool_not().float().unsqueeze_dim(1);
            let nx = xv.clone().sum_dim(1);
            let ny = yv.clone().sum_dim(2);
            // Every example needs at least one valid row and column.
            let min_len = float_to_host(nx.clone().min_pair(ny.clone()))?;
            if let Some(example) = min_len.iter().position(|&l| l < 0.5) {
                return Err(OtError::EmptyProblem { example });
            }
            Ok((xv, yv, nx, ny))
        }
    }
}

/// IPOT on tensors (any backend).
///
/// `cost: [B, M, N]`, optional `padding` (`[B, M]`, `[B, N]`, `true` = pad).
/// Returns the detached plan `[B, M, N]` and `Σ C ⊙ T` `[B]` (gradient through
/// `cost` only). Errors on shape mismatches, empty examples or a bad config.
pub fn ipot<B: Backend>(
    cost: Tensor<B, 3>,
    padding: Option<&Padding<B>>,
    config: &IpotConfig,
) -> Result<PlanOutput<B>> {
    config.validate()?;
    let (xv, yv, nx, ny) = valid_masks(&cost, padding)?;
    let [b, m, n] = cost.dims();
    // Row-vector broadcasts ([B, 1, N] against [B, M, N]) take a slow strided
    // path on some CPU backends, so they are written as (batched) matmuls:
    // outer products with a ones column, and Q δ as a matrix-vector product.
    let ones_m: Tensor<B, 3> = Tensor::ones([b, m, 1], &cost.device());
    let joint = xv.clone().matmul(yv.clone()); // [B, M, N]
    let c = cost.clone().detach() * joint.clone();
    let a = c.div_scalar(-config.beta).exp() * joint.clone();
    let mut t = joint.clone();
    let mut u = xv.clone() / nx.clone(); // σ, [B, M, 1]
    let mut v = yv.clone(); // δ, [B, 1, N]
    for _ in 0..config.iterations {
        let q = a.clone() * t;
        for _ in 0..config.inner {
            let col = (q.clone() * u).sum_dim(1); // Qᵀσ, [B, 1, N]
            v = yv.clone() / (col * ny.clone()).clamp_min(TINY);
            let row = q.clone().matmul(v.clone().reshape([b, n, 1])); // Q δ, [B, M, 1]
            u = xv.clone() / (row * nx.clone()).clamp_min(TINY);
        }
        t = (q * u.clone()) * ones_m.clone().matmul(v.clone());
    }
    let plan = t.detach();
    let distance = (cost * joint * plan.clone()).sum_dims_squeeze::<1, _>(&[1, 2]);
    Ok(PlanOutput { plan, distance })
}

/// Reusable buffers of the host kernel (one per rayon worker).
#[derive(Default)]
struct Workspace {
    a: Vec<f32>,
    q: Vec<f32>,
    u: Vec<f32>,
    v: Vec<f32>,
    col: Vec<f32>,
    /// 1 on real columns, 0 on the SIMD padding (AVX2 kernel only).
    mask: Vec<f32>,
}

impl Workspace {
    /// Starts the iterations once `a` holds the kernel `A` (rows `width`
    /// wide): `Q = A`, `σ = 1/m` over `m` rows, `δ` and the column sums zero.
    fn start(&mut self, m: usize, width: usize) {
        self.q.clear();
        self.q.extend_from_slice(&self.a);
        self.u.clear();
        self.u.resize(m, 1.0 / m as f32);
        self.v.clear();
        self.v.resize(width, 0.0);
        self.col.clear();
        self.col.resize(width, 0.0);
    }
}

/// The plan `T = diag(σ) Q diag(δ)` into `plan` `[m, n]`, from `Q` with rows
/// `stride ≥ n` wide, `σ` = `u` `[m]` and `δ` = `v` (`n` or more).
#[inline]
fn write_plan(plan: &mut [f32], n: usize, q: &[f32], stride: usize, u: &[f32], v: &[f32]) {
    for ((pi, qi), &ui) in plan.chunks_exact_mut(n).zip(q.chunks_exact(stride)).zip(u) {
        for ((p, &qij), &vj) in pi.iter_mut().zip(qi).zip(v) {
            *p = ui * qij * vj;
        }
    }
}

/// The fused single-problem kernel: dense `[m, n]` cost in, `[m, n]` plan out.
///
/// On x86-64 CPUs with AVX2 and FMA an explicitly vectorised version
/// ([`avx2::ipot_kernel`]) is picked at run time; elsewhere the portable
/// version below (auto-vectorised by the compiler).
fn ipot_kernel(
    c: &[f32],
    m: usize,
    n: usize,
    cfg: &IpotConfig,
    ws: &mut Workspace,
    plan: &mut [f32],
    simd: bool,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if simd {
            // SAFETY: `simd` is only true when the CPU supports AVX2 and FMA.
            unsafe { avx2::ipot_kernel(c, m, n, cfg, ws, plan) };
            return;
        }
    }
    let _ = simd;
    ipot_kernel_body(c, m, n, cfg, ws, plan)
}

/// Portable kernel (see [`ipot_kernel`]).
fn ipot_kernel_body(
    c: &[f32],
    m: usize,
    n: usize,
    cfg: &IpotConfig,
    ws: &mut Workspace,
    plan: &mut [f32],
) {
    let scale = -1.0 / cfg.beta as f32;
    ws.a.clear();
    ws.a.extend(c.iter().map(|&x| exp_f32(x * scale)));
    ws.start(m, n);
    let (fm, fn_) = (m as f32, n as f32);
    let Workspace {
        a, q, u, v, col, ..
    } = ws;
    for it in 0..cfg.iterations {
        for inner in 0..cfg.inner {
            // Q = A ⊙ T was fused with the first column sum at the end of the
            // previous iteration; otherwise sum now.
            if it == 0 || inner > 0 {
                col.fill(0.0);
                for (qi, &ui) in q.chunks_exact(n).zip(u.iter()) {
                    for (cj, &qij) in col.iter_mut().zip(qi) {
                        *cj += qij * ui;
                    }
                }
            }
            for (vj, &cj) in v.iter_mut().zip(col.iter()) {
                *vj = 1.0 / (fn_ * cj).max(TINY);
            }
            for (ui, qi) in u.iter_mut().zip(q.chunks_exact(n)) {
                *ui = 1.0 / (fm * dot(qi, v)).max(TINY);
            }
        }
        if it + 1 < cfg.iterations {
            // Next Q = A ⊙ (diag(σ) Q diag(δ)), fused with Qᵀσ for the next
            // iteration's first column update (σ is unchanged until then).
            col.fill(0.0);
            for ((qi, ai), &ui) in q.chunks_exact_mut(n).zip(a.chunks_exact(n)).zip(u.iter()) {
                for (((qij, &aij), &vj), cj) in
                    qi.iter_mut().zip(ai).zip(v.iter()).zip(col.iter_mut())
                {
                    let x = aij * *qij * ui * vj;
                    *qij = x;
                    *cj += x * ui;
                }
            }
        }
    }
    write_plan(plan, n, q, n, u, v);
}

/// `Σ x_i y_i` with eight independent accumulators so that it vectorises.
#[inline(always)]
fn dot(x: &[f32], y: &[f32]) -> f32 {
    let (cx, rx) = x.as_chunks::<8>();
    let (cy, ry) = y.as_chunks::<8>();
    let mut acc = [0f32; 8];
    for (a, b) in cx.iter().zip(cy) {
        for l in 0..8 {
            acc[l] += a[l] * b[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (a, b) in rx.iter().zip(ry) {
        s += a * b;
    }
    s
}

fn transport_cost(c: &[f32], plan: &[f32]) -> f32 {
    c.iter()
        .zip(plan)
        .map(|(&c, &p)| c as f64 * p as f64)
        .sum::<f64>() as f32
}

/// IPOT on one dense `[m, n]` problem (row-major, no padding) on the host.
/// Returns the `[m, n]` plan, whose marginals are the uniform `1/m`, `1/n`.
///
/// ```
/// use vlp_ot::ipot::{ipot_single, IpotConfig};
///
/// // Matching costs 0 on the diagonal, 1 across: the optimal plan moves
/// // all mass along the diagonal, half per row.
/// let cost = [0.0, 1.0, 1.0, 0.0];
/// let plan = ipot_single(&cost, 2, 2, &IpotConfig::default()).unwrap();
/// for i in 0..2 {
///     let row: f32 = plan[2 * i] + plan[2 * i + 1];
///     let column: f32 = plan[i] + plan[2 + i];
///     assert!((row - 0.5).abs() < 1e-5, "row {i} sums to {row}");
///     assert!((column - 0.5).abs() < 1e-5, "column {i} sums to {column}");
///     assert!(plan[3 * i] > 0.49, "diagonal entry {i} is {}", plan[3 * i]);
/// }
/// ```
pub fn ipot_single(cost: &[f32], m: usize, n: usize, config: &IpotConfig) -> Result<Vec<f32>> {
    let batch = CostBatch::new(cost.to_vec(), [1, m, n])?;
    Ok(ipot_host(&batch, config)?.plans)
}

/// IPOT with the hand-written CPU kernel, parallel over the batch (rayon's
/// current pool). Padded examples are solved on their compacted unpadded
/// sub-matrix, so padding never changes a plan.
///
/// Returns `[B, M, N]` plans (zero at padding) and `Σ C ⊙ T` per example.
pub fn ipot_host(batch: &CostBatch, config: &IpotConfig) -> Result<HostPlans<f32>> {
    ipot_host_with(batch, config, simd_available())
}

fn ipot_host_with(batch: &CostBatch, config: &IpotConfig, simd: bool) -> Result<HostPlans<f32>> {
    config.validate()?;
    let [b, m, n] = batch.shape();
    let mn = m * n;
    let mut plans = vec![0f32; b * mn];
    let mut distances = vec![0f32; b];
    let padded = batch.is_padded();
    plans
        .par_chunks_mut(mn)
        .zip(distances.par_iter_mut())
        .enumerate()
        .for_each_init(Workspace::default, |ws, (e, (plan, dist))| {
            if padded {
                let (c, rows, cols) = batch.compact(e, |x| x);
                let mut p = vec![0f32; c.len()];
                ipot_kernel(&c, rows.len(), cols.len(), config, ws, &mut p, simd);
                *dist = transport_cost(&c, &p);
                scatter_plan(&p, &rows, &cols, n, plan);
            } else {
                let c = batch.example(e);
                ipot_kernel(c, m, n, config, ws, plan, simd);
                *dist = transport_cost(c, plan);
            }
        });
    Ok(HostPlans {
        plans,
        distances,
        shape: [b, m, n],
    })
}

/// Host-path IPOT for tensors: reads `cost` (and padding) back, runs
/// [`ipot_host`], uploads the plan, and returns the same [`PlanOutput`] as
/// [`ipot`] (distance differentiable w.r.t. `cost`).
pub fn ipot_via_host<B: Backend>(
    cost: Tensor<B, 3>,
    padding: Option<&Padding<B>>,
    config: &IpotConfig,
) -> Result<PlanOutput<B>> {
    config.validate()?;
    plan_via_host(cost, padding, |batch| ipot_host(batch, config))
}

/// AVX2 + FMA version of the IPOT kernel. Rows are stored with a stride
/// padded to a multiple of 8 (one `__m256`), the padding holding zero kernel
/// entries and a zero column scaling, so every loop is whole vectors.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{write_plan, IpotConfig, Workspace, TINY};
    use crate::fastmath::exp_f32;
    use std::arch::x86_64::*;

    const W: usize = 8;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
    }

    /// `out_i = 1 / max(scale · out_i, TINY)` over a whole slice.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn recip_scaled(out: &mut [f32], scale: f32) {
        let (groups, rest) = out.as_chunks_mut::<W>();
        let (sv, tiny, one) = (
            _mm256_set1_ps(scale),
            _mm256_set1_ps(TINY),
            _mm256_set1_ps(1.0),
        );
        for g in groups {
            // SAFETY: `g` is exactly 8 f32.
            let x = unsafe { _mm256_loadu_ps(g.as_ptr()) };
            let r = _mm256_div_ps(one, _mm256_max_ps(_mm256_mul_ps(sv, x), tiny));
            unsafe { _mm256_storeu_ps(g.as_mut_ptr(), r) };
        }
        for x in rest {
            *x = 1.0 / (scale * *x).max(TINY);
        }
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA; `c` is `[m, n]`, `plan` is `[m, n]`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn ipot_kernel(
        c: &[f32],
        m: usize,
        n: usize,
        cfg: &IpotConfig,
        ws: &mut Workspace,
        plan: &mut [f32],
    ) {
        assert!(c.len() == m * n && plan.len() == m * n && m > 0 && n > 0);
        let np = n.div_ceil(W) * W;
        let groups = np / W;
        let scale = -1.0 / cfg.beta as f32;
        ws.a.clear();
        ws.a.resize(m * np, 0.0);
        for (ar, cr) in ws.a.chunks_exact_mut(np).zip(c.chunks_exact(n)) {
            for (x, &cv) in ar.iter_mut().zip(cr) {
                *x = exp_f32(cv * scale);
            }
        }
        ws.start(m, np);
        ws.mask.clear();
        ws.mask
            .extend((0..np).map(|j| if j < n { 1.0 } else { 0.0 }));
        let (fm, fn_) = (m as f32, n as f32);
        let Workspace {
            a,
            q,
            u,
            v,
            col,
            mask,
        } = ws;
        let fnv = _mm256_set1_ps(fn_);
        let tiny = _mm256_set1_ps(TINY);
        // SAFETY (all raw accesses below): `a`, `q` hold `m·np` floats, `v`,
        // `col`, `mask` hold `np`, `u` holds `m`; offsets are `i·np + g·8`
        // with `i < m`, `g < np/8`, so every 8-float access is in bounds.
        let (ap, qp, vp, cp, mp) = (
            a.as_ptr(),
            q.as_mut_ptr(),
            v.as_mut_ptr(),
            col.as_mut_ptr(),
            mask.as_ptr(),
        );
        for it in 0..cfg.iterations {
            for inner in 0..cfg.inner {
                if it == 0 || inner > 0 {
                    col.fill(0.0);
                    for (i, &ui) in u.iter().enumerate() {
                        let uv = _mm256_set1_ps(ui);
                        for g in 0..groups {
                            unsafe {
                                let cc = cp.add(g * W);
                                let x = _mm256_loadu_ps(qp.add(i * np + g * W));
                                _mm256_storeu_ps(cc, _mm256_fmadd_ps(x, uv, _mm256_loadu_ps(cc)));
                            }
                        }
                    }
                }
                // δ = mask / max(n · col, TINY): zero on the padding.
                for g in 0..groups {
                    unsafe {
                        let d =
                            _mm256_max_ps(_mm256_mul_ps(fnv, _mm256_loadu_ps(cp.add(g * W))), tiny);
                        _mm256_storeu_ps(
                            vp.add(g * W),
                            _mm256_div_ps(_mm256_loadu_ps(mp.add(g * W)), d),
                        );
                    }
                }
                // σ_i = 1 / max(m · ⟨Q_i, δ⟩, TINY).
                for (i, ui) in u.iter_mut().enumerate() {
                    let mut acc = _mm256_setzero_ps();
                    for g in 0..groups {
                        unsafe {
                            acc = _mm256_fmadd_ps(
                                _mm256_loadu_ps(qp.add(i * np + g * W)),
                                _mm256_loadu_ps(vp.add(g * W)),
                                acc,
                            );
                        }
                    }
                    *ui = unsafe { hsum(acc) };
                }
                unsafe { recip_scaled(u, fm) };
            }
            if it + 1 < cfg.iterations {
                // Q ← A ⊙ diag(σ) Q diag(δ), fused with col = Qᵀσ. Column
                // blocks outermost: δ and the column sums stay in registers
                // (four partial sums to hide the FMA latency).
                let up = u.as_ptr();
                for g in 0..groups {
                    unsafe {
                        let vg = _mm256_loadu_ps(vp.add(g * W));
                        let mut acc = [_mm256_setzero_ps(); 4];
                        for i in 0..m {
                            let uv = _mm256_set1_ps(*up.add(i));
                            let off = i * np + g * W;
                            let x = _mm256_mul_ps(
                                _mm256_mul_ps(
                                    _mm256_loadu_ps(ap.add(off)),
                                    _mm256_loadu_ps(qp.add(off)),
                                ),
                                _mm256_mul_ps(uv, vg),
                            );
                            _mm256_storeu_ps(qp.add(off), x);
                            acc[i & 3] = _mm256_fmadd_ps(x, uv, acc[i & 3]);
                        }
                        let s = _mm256_add_ps(
                            _mm256_add_ps(acc[0], acc[1]),
                            _mm256_add_ps(acc[2], acc[3]),
                        );
                        _mm256_storeu_ps(cp.add(g * W), s);
                    }
                }
            }
        }
        write_plan(plan, n, q, np, u, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::lcg_f32 as lcg;
    use burn::tensor::TensorData;
    type Nd = burn::backend::NdArray;

    #[test]
    fn constant_cost_gives_the_uniform_plan() {
        // With C constant every IPOT step keeps T ∝ 1, so T = 1/(mn) exactly.
        let (m, n) = (5, 3);
        let plan = ipot_single(&vec![0.7; m * n], m, n, &IpotConfig::default()).unwrap();
        for p in plan {
            assert!((p - 1.0 / 15.0).abs() < 1e-6);
        }
    }

    #[test]
    fn zero_diagonal_cost_converges_to_the_identity_plan() {
        // C = 1 - I: the unique optimum is I/n with cost 0; the off-diagonal
        // mass decays like exp(-t/β).
        let n = 6;
        let c: Vec<f32> = (0..n * n)
            .map(|k| if k / n == k % n { 0.0 } else { 1.0 })
            .collect();
        let cfg = IpotConfig::default();
        let plan = ipot_single(&c, n, n, &cfg).unwrap();
        for (k, p) in plan.iter().enumerate() {
            let want = if k / n == k % n { 1.0 / n as f32 } else { 0.0 };
            assert!((p - want).abs() < 1e-6, "entry {k}: {p} vs {want}");
        }
    }

    #[test]
    fn tensor_and_host_paths_agree_with_padding() {
        let (b, m, n) = (3, 7, 5);
        let c = lcg(3, b * m * n);
        let dev = Default::default();
        let pad = Padding::<Nd>::from_lengths(&[7, 4, 2], m, &[5, 5, 3], n, &dev).unwrap();
        let cost: Tensor<Nd, 3> = Tensor::from_data(TensorData::new(c.clone(), [b, m, n]), &dev);
        let cfg = IpotConfig::default();
        let t = ipot(cost.clone(), Some(&pad), &cfg).unwrap();
        let h = ipot_via_host(cost, Some(&pad), &cfg).unwrap();
        let tp = t.plan.into_data().into_vec::<f32>().unwrap();
        let hp = h.plan.into_data().into_vec::<f32>().unwrap();
        for (x, y) in tp.iter().zip(&hp) {
            assert!((x - y).abs() < 1e-6, "{x} vs {y}");
        }
        let td = t.distance.into_data().into_vec::<f32>().unwrap();
        let hd = h.distance.into_data().into_vec::<f32>().unwrap();
        for (x, y) in td.iter().zip(&hd) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
        // Row marginals are exact after each step: 1/n_x on valid rows, 0 on padding.
        for (e, &len) in [7usize, 4, 2].iter().enumerate() {
            for i in 0..m {
                let s: f32 = hp[(e * m + i) * n..(e * m + i + 1) * n].iter().sum();
                let want = if i < len { 1.0 / len as f32 } else { 0.0 };
                assert!((s - want).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn simd_and_portable_kernels_agree() {
        // Odd sizes exercise the SIMD padding; k = 2 the extra column sums.
        for (m, n, inner) in [(40, 36, 1), (7, 13, 2), (1, 9, 1), (17, 1, 1)] {
            let c: Vec<f32> = lcg(m as u64 * 31 + n as u64, m * n)
                .iter()
                .map(|x| 2.0 * x)
                .collect();
            let batch = CostBatch::new(c, [1, m, n]).unwrap();
            let cfg = IpotConfig {
                inner,
                ..Default::default()
            };
            let p = ipot_host_with(&batch, &cfg, false).unwrap();
            let s = ipot_host_with(&batch, &cfg, simd_available()).unwrap();
            for (x, y) in p.plans.iter().zip(&s.plans) {
                assert!(
                    (x - y).abs() <= 1e-5 * x.abs().max(1e-3),
                    "{m}x{n}: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn bad_config_and_shapes_are_errors() {
        let dev = Default::default();
        let cost: Tensor<Nd, 3> = Tensor::zeros([2, 3, 4], &dev);
        let bad = IpotConfig {
            beta: 0.0,
            ..Default::default()
        };
        assert!(matches!(
            ipot(cost.clone(), None, &bad),
            Err(OtError::Config(_))
        ));
        let bad = IpotConfig {
            iterations: 0,
            ..Default::default()
        };
        assert!(ipot_via_host(cost.clone(), None, &bad).is_err());
        let pad = Padding::<Nd>::from_lengths(&[3, 3], 3, &[4, 4], 5, &dev).unwrap();
        assert!(matches!(
            ipot(cost.clone(), Some(&pad), &IpotConfig::default()),
            Err(OtError::Shape { .. })
        ));
        // A padding mask that leaves an example empty.
        let all_pad = Padding::<Nd>::new(
            Tensor::from_data(
                TensorData::new(vec![true, true, true, false, false, false], [2, 3]),
                &dev,
            ),
            Tensor::from_data(TensorData::new(vec![false; 8], [2, 4]), &dev),
        );
        assert!(matches!(
            ipot(cost.clone(), Some(&all_pad), &IpotConfig::default()),
            Err(OtError::EmptyProblem { example: 0 })
        ));
        assert!(matches!(
            ipot_via_host(cost, Some(&all_pad), &IpotConfig::default()),
            Err(OtError::EmptyProblem { example: 0 })
        ));
    }
}
