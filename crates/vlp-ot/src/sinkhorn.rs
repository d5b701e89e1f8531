//! Entropic optimal transport by Sinkhorn iterations in the log domain.
//!
//! Solves `min ⟨C, T⟩ − ε H(T)` over plans with marginals `a`, `b` by
//! alternating exact updates of the dual potentials (`f`, `g` in units of ε):
//!
//! ```text
//! f_i = log a_i − logsumexp_j (g_j − C_ij/ε)
//! g_j = log b_j − logsumexp_i (f_i − C_ij/ε)
//! T_ij = exp(f_i + g_j − C_ij/ε)
//! ```
//!
//! Working with log-sum-exp instead of the kernel `exp(−C/ε)` keeps every
//! quantity finite for any ε (the kernel itself underflows in `f32` as soon
//! as `C/ε ≳ 88`). After each sweep the column marginals are exact; the
//! reported **marginal error** is the L1 row-marginal error
//! `Σ_i |Σ_j T_ij − a_i|`, checked every `check_every` sweeps and compared
//! against `tolerance`.
//!
//! - [`sinkhorn`]: tensor ops on any backend; the batch stops together when
//!   the worst example is within tolerance (one host read per check).
//! - [`sinkhorn_host`]: hand-written `f64` CPU kernel, parallel over the
//!   batch, each example stopping on its own. Faster on CPU backends for
//!   small problems.
//!
//! Padded rows/columns carry no mass; marginals default to uniform over the
//! unpadded positions. The distance is `⟨C, T⟩` (the transport part only, as
//! POT's `sinkhorn2`), differentiable w.r.t. `C` with `T` held constant.

use burn::tensor::{backend::Backend, Tensor};
use rayon::prelude::*;

use crate::batch::{float_to_host, scatter_plan, CostBatch, HostPlans, Padding};
use crate::error::{shape_err, OtError, Result};
use crate::fastmath::simd_available;
use crate::ipot::valid_masks;

/// Additive mask (in units of ε) that removes padded entries from a
/// log-sum-exp without creating infinities.
const NEG: f64 = -1e9;
/// Floor for marginal weights before taking logs.
const MIN_WEIGHT: f64 = 1e-30;

/// Sinkhorn parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SinkhornConfig {
    /// Entropic regularisation `ε > 0` (same unit as the costs).
    pub epsilon: f64,
    /// Iteration cap (one iteration = one `f` and one `g` update).
    pub max_iterations: usize,
    /// Stop when the L1 row-marginal error is `≤ tolerance` (`0` runs to the cap).
    pub tolerance: f64,
    /// Check the error every this many iterations (`≥ 1`).
    pub check_every: usize,
}

impl Default for SinkhornConfig {
    fn default() -> Self {
        Self {
            epsilon: 0.05,
            max_iterations: 1000,
            tolerance: 1e-6,
            check_every: 10,
        }
    }
}

impl SinkhornConfig {
    /// Checks `ε > 0`, `max_iterations ≥ 1`, `check_every ≥ 1`, `tolerance ≥ 0`.
    pub fn validate(&self) -> Result<()> {
        if !(self.epsilon > 0.0 && self.epsilon.is_finite()) {
            return Err(OtError::Config(format!(
                "Sinkhorn epsilon must be > 0, got {}",
                self.epsilon
            )));
        }
        if self.max_iterations == 0 || self.check_every == 0 {
            return Err(OtError::Config(
                "max_iterations and check_every must be >= 1".into(),
            ));
        }
        if self.tolerance.is_nan() || self.tolerance < 0.0 {
            return Err(OtError::Config("tolerance must be >= 0".into()));
        }
        Ok(())
    }
}

/// Result of the tensor-path Sinkhorn.
#[derive(Clone, Debug)]
pub struct SinkhornOutput<B: Backend> {
    /// Entropic plan `[B, M, N]`, detached, zero at padding.
    pub plan: Tensor<B, 3>,
    /// `⟨C, T⟩` per example `[B]` (gradient through the cost only).
    pub distance: Tensor<B, 1>,
    /// Iterations run (shared by the whole batch).
    pub iterations: usize,
    /// Worst L1 row-marginal error over the batch at exit.
    pub marginal_error: f64,
}

/// `logsumexp` along `dim` (kept), stable: `max + log Σ exp(z − max)`.
fn lse<B: Backend>(z: Tensor<B, 3>, dim: usize) -> Tensor<B, 3> {
    let mx = z.clone().max_dim(dim);
    (z - mx.clone()).exp().sum_dim(dim).log() + mx
}

/// Checks user marginals against the padding and returns them masked.
fn tensor_weights<B: Backend>(
    weights: Option<(Tensor<B, 2>, Tensor<B, 2>)>,
    xv: &Tensor<B, 3>,
    yv: &Tensor<B, 3>,
    nx: &Tensor<B, 3>,
    ny: &Tensor<B, 3>,
) -> Result<(Tensor<B, 3>, Tensor<B, 3>)> {
    let [b, m, _] = xv.dims();
    let n = yv.dims()[2];
    match weights {
        None => Ok((xv.clone() / nx.clone(), yv.clone() / ny.clone())),
        Some((wa, wb)) => {
            if wa.dims() != [b, m] {
                return Err(shape_err("row weights a [B, M]", &[b, m], &wa.dims()));
            }
            if wb.dims() != [b, n] {
                return Err(shape_err("column weights b [B, N]", &[b, n], &wb.dims()));
            }
            let wa = wa.unsqueeze_dim::<3>(2) * xv.clone();
            let wb = wb.unsqueeze_dim::<3>(1) * yv.clone();
            let ha = float_to_host(wa.clone())?;
            let hb = float_to_host(wb.clone())?;
            check_host_weights(&ha, &hb, b, m, n)?;
            Ok((wa, wb))
        }
    }
}

fn check_host_weights<T: Copy + Into<f64>>(
    a: &[T],
    b: &[T],
    batch: usize,
    m: usize,
    n: usize,
) -> Result<()> {
    for e in 0..batch {
        let ra = &a[e * m..(e + 1) * m];
        let rb = &b[e * n..(e + 1) * n];
        if ra
            .iter()
            .chain(rb)
            .any(|&w| !(w.into().is_finite() && w.into() >= 0.0))
        {
            return Err(OtError::Marginals(format!(
                "example {e}: weights must be finite and >= 0"
            )));
        }
        let sa: f64 = ra.iter().map(|&w| w.into()).sum();
        let sb: f64 = rb.iter().map(|&w| w.into()).sum();
        if sa.is_nan() || sa <= 0.0 || (sa - sb).abs() > 1e-4 * sa.max(sb) {
            return Err(OtError::Marginals(format!(
                "example {e}: unpadded masses must be positive and equal, got {sa} and {sb}"
            )));
        }
    }
    Ok(())
}

/// Log-domain Sinkhorn on tensors (any backend).
///
/// `cost: [B, M, N]`; optional `padding` (`[B, M]`, `[B, N]`, `true` = pad);
/// optional `weights` `(a: [B, M], b: [B, N])` (masked by the padding, equal
/// unpadded mass per example), uniform over unpadded positions otherwise.
pub fn sinkhorn<B: Backend>(
    cost: Tensor<B, 3>,
    padding: Option<&Padding<B>>,
    weights: Option<(Tensor<B, 2>, Tensor<B, 2>)>,
    config: &SinkhornConfig,
) -> Result<SinkhornOutput<B>> {
    config.validate()?;
    let (xv, yv, nx, ny) = valid_masks(&cost, padding)?;
    let (wa, wb) = tensor_weights(weights, &xv, &yv, &nx, &ny)?;
    let [b, m, n] = cost.dims();
    let device = cost.device();
    // Row-vector broadcasts ([B, 1, K] against [B, R, K]) take a slow strided
    // path on some CPU backends: they are expanded with a batched outer
    // product (ones column × row) instead, and the g-update works on the
    // transposed cost so both log-sum-exps reduce over the last dimension.
    let ones_m: Tensor<B, 3> = Tensor::ones([b, m, 1], &device);
    let ones_n: Tensor<B, 3> = Tensor::ones([b, n, 1], &device);
    let joint = xv.clone().matmul(yv.clone());
    let cs = (cost.clone().detach() * joint.clone()).div_scalar(config.epsilon); // [B, M, N]
                                                                                 // Transposed [B, N, M], materialised once by an element-wise op (a
                                                                                 // transposed view would make every iteration's ops strided).
    let cst = cs.clone().swap_dims(1, 2) + Tensor::zeros([b, n, m], &device);
    let loga = wa.clone().clamp_min(MIN_WEIGHT).log() * xv.clone(); // [B, M, 1]
    let logb = (wb.clamp_min(MIN_WEIGHT).log() * yv.clone()).reshape([b, n, 1]); // [B, N, 1]
    let xneg = xv.clone().neg().add_scalar(1.0).mul_scalar(NEG); // [B, M, 1]
    let yneg = yv.clone().neg().add_scalar(1.0).mul_scalar(NEG); // [B, 1, N]
    let yv_t = yv.clone().reshape([b, n, 1]);
    let xneg_t = xneg.clone().reshape([b, 1, m]);
    let mut f: Tensor<B, 3> = Tensor::zeros([b, m, 1], &device);
    let mut g: Tensor<B, 3> = Tensor::zeros([b, 1, n], &device);
    let mut iterations = 0;
    let mut marginal_error = f64::INFINITY;
    // Padded entries get `NEG` added inside the exponent (never `exp(big) · 0`).
    let plan_of = |f: &Tensor<B, 3>, g: &Tensor<B, 3>| {
        (ones_m.clone().matmul(g.clone() + yneg.clone()) + (f.clone() + xneg.clone()) - cs.clone())
            .exp()
    };
    while iterations < config.max_iterations {
        iterations += 1;
        // f_i = log a_i − LSE_j (g_j − C_ij/ε), over [B, M, N].
        let zf = ones_m.clone().matmul(g.clone() + yneg.clone()) - cs.clone();
        f = (loga.clone() - lse(zf, 2)) * xv.clone();
        // g_j = log b_j − LSE_i (f_i − C_ij/ε), over the transposed [B, N, M].
        let zg = ones_n
            .clone()
            .matmul(f.clone().reshape([b, 1, m]) + xneg_t.clone())
            - cst.clone();
        g = ((logb.clone() - lse(zg, 2)) * yv_t.clone()).reshape([b, 1, n]);
        if iterations % config.check_every == 0 || iterations == config.max_iterations {
            let rows = plan_of(&f, &g).sum_dim(2); // [B, M, 1]
            let err = (rows - wa.clone())
                .abs()
                .sum_dims_squeeze::<1, _>(&[1, 2])
                .max();
            marginal_error = float_to_host(err)?[0] as f64;
            if marginal_error <= config.tolerance {
                break;
            }
        }
    }
    let plan = plan_of(&f, &g).detach();
    let distance = (cost * joint * plan.clone()).sum_dims_squeeze::<1, _>(&[1, 2]);
    Ok(SinkhornOutput {
        plan,
        distance,
        iterations,
        marginal_error,
    })
}

/// Result of [`sinkhorn_host`].
#[derive(Clone, Debug, PartialEq)]
pub struct SinkhornHostOutput {
    /// Plans `[B, M, N]` (zero at padding) and `⟨C, T⟩` per example.
    pub plans: HostPlans<f64>,
    /// Iterations run per example.
    pub iterations: Vec<usize>,
    /// L1 row-marginal error per example at exit.
    pub marginal_errors: Vec<f64>,
}

#[derive(Default)]
struct Workspace {
    cs: Vec<f64>,
    cst: Vec<f64>,
    f: Vec<f64>,
    g: Vec<f64>,
    loga: Vec<f64>,
    logb: Vec<f64>,
}

/// `logsumexp_k (pot_k − row_k)`, two passes (max, then sum of exps) with
/// four accumulators so both vectorise.
#[inline(always)]
fn lse_row(pot: &[f64], row: &[f64]) -> f64 {
    const L: usize = 4;
    let (pc, pr) = pot.as_chunks::<L>();
    let (rc, rr) = row.as_chunks::<L>();
    let mut mx = [f64::NEG_INFINITY; L];
    for (p, r) in pc.iter().zip(rc) {
        for l in 0..L {
            let z = p[l] - r[l];
            mx[l] = if z > mx[l] { z } else { mx[l] };
        }
    }
    let mut m = mx[0].max(mx[1]).max(mx[2].max(mx[3]));
    for (p, r) in pr.iter().zip(rr) {
        m = m.max(p - r);
    }
    let mut acc = [0f64; L];
    for (p, r) in pc.iter().zip(rc) {
        for l in 0..L {
            acc[l] += (p[l] - r[l] - m).exp();
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (p, r) in pr.iter().zip(rr) {
        s += (p - r - m).exp();
    }
    m + s.ln()
}

/// [`lse_row`], vectorised when `simd` (the caller checked the CPU).
#[inline(always)]
fn lse_host(pot: &[f64], row: &[f64], simd: bool) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if simd {
            // SAFETY: `simd` is only true when AVX2 and FMA are available.
            return unsafe { avx2::lse_row(pot, row) };
        }
    }
    let _ = simd;
    lse_row(pot, row)
}

/// One compact problem: returns (iterations, marginal error); writes the plan.
fn sinkhorn_kernel(
    c: &[f64],
    a: &[f64],
    b: &[f64],
    cfg: &SinkhornConfig,
    ws: &mut Workspace,
    plan: &mut [f64],
    simd: bool,
) -> (usize, f64) {
    let (m, n) = (a.len(), b.len());
    let inv = 1.0 / cfg.epsilon;
    ws.cs.clear();
    ws.cs.extend(c.iter().map(|x| x * inv));
    ws.cst.clear();
    ws.cst.resize(m * n, 0.0);
    for i in 0..m {
        for j in 0..n {
            ws.cst[j * m + i] = ws.cs[i * n + j];
        }
    }
    ws.loga.clear();
    ws.loga.extend(a.iter().map(|w| w.max(MIN_WEIGHT).ln()));
    ws.logb.clear();
    ws.logb.extend(b.iter().map(|w| w.max(MIN_WEIGHT).ln()));
    ws.f.clear();
    ws.f.resize(m, 0.0);
    ws.g.clear();
    ws.g.resize(n, 0.0);
    let Workspace {
        cs,
        cst,
        f,
        g,
        loga,
        logb,
    } = ws;
    let write_plan = |f: &[f64], g: &[f64], plan: &mut [f64]| -> f64 {
        let mut err = 0.0;
        for ((pr, cr), (&fi, &ai)) in plan
            .chunks_exact_mut(n)
            .zip(cs.chunks_exact(n))
            .zip(f.iter().zip(a))
        {
            let mut s = 0.0;
            for ((p, &cij), &gj) in pr.iter_mut().zip(cr).zip(g.iter()) {
                let t = (fi + gj - cij).exp();
                *p = t;
                s += t;
            }
            err += (s - ai).abs();
        }
        err
    };
    let mut it = 0;
    let mut err = f64::INFINITY;
    while it < cfg.max_iterations {
        it += 1;
        for ((fi, la), row) in f.iter_mut().zip(loga.iter()).zip(cs.chunks_exact(n)) {
            *fi = la - lse_host(g, row, simd);
        }
        for ((gj, lb), colv) in g.iter_mut().zip(logb.iter()).zip(cst.chunks_exact(m)) {
            *gj = lb - lse_host(f, colv, simd);
        }
        if it % cfg.check_every == 0 || it == cfg.max_iterations {
            err = write_plan(f, g, plan);
            if err <= cfg.tolerance {
                return (it, err);
            }
        }
    }
    (it, err)
}

/// Log-domain Sinkhorn with the hand-written `f64` CPU kernel, parallel over
/// the batch (rayon's current pool); every example stops on its own.
///
/// `weights`: optional row-major `(a: [B·M], b: [B·N])`, read on the
/// unpadded positions only (which must carry equal mass); uniform otherwise.
pub fn sinkhorn_host(
    batch: &CostBatch,
    weights: Option<(&[f64], &[f64])>,
    config: &SinkhornConfig,
) -> Result<SinkhornHostOutput> {
    config.validate()?;
    let [bsz, m, n] = batch.shape();
    let mn = m * n;
    // Per-example compact weights.
    let mut compact_w = Vec::with_capacity(bsz);
    for e in 0..bsz {
        let (rows, cols) = batch.valid_indices(e);
        let (a, b) = match weights {
            None => (
                vec![1.0 / rows.len() as f64; rows.len()],
                vec![1.0 / cols.len() as f64; cols.len()],
            ),
            Some((wa, wb)) => {
                if wa.len() != bsz * m {
                    return Err(shape_err("row weights a [B, M]", &[bsz, m], &[wa.len()]));
                }
                if wb.len() != bsz * n {
                    return Err(shape_err("column weights b [B, N]", &[bsz, n], &[wb.len()]));
                }
                let a: Vec<f64> = rows.iter().map(|&i| wa[e * m + i]).collect();
                let b: Vec<f64> = cols.iter().map(|&j| wb[e * n + j]).collect();
                check_host_weights(&a, &b, 1, a.len(), b.len()).map_err(|err| match err {
                    OtError::Marginals(msg) => {
                        OtError::Marginals(msg.replacen("example 0", &format!("example {e}"), 1))
                    }
                    other => other,
                })?;
                (a, b)
            }
        };
        compact_w.push((a, b));
    }
    let simd = simd_available();
    let mut plans = vec![0f64; bsz * mn];
    let mut distances = vec![0f64; bsz];
    let mut iterations = vec![0usize; bsz];
    let mut errors = vec![0f64; bsz];
    plans
        .par_chunks_mut(mn)
        .zip(distances.par_iter_mut())
        .zip(iterations.par_iter_mut())
        .zip(errors.par_iter_mut())
        .enumerate()
        .for_each_init(
            Workspace::default,
            |ws, (e, (((plan, dist), iters), err))| {
                let (c, rows, cols) = batch.compact(e, f64::from);
                let (a, b) = &compact_w[e];
                let mut p = vec![0f64; c.len()];
                let (it, er) = sinkhorn_kernel(&c, a, b, config, ws, &mut p, simd);
                *dist = c.iter().zip(&p).map(|(c, t)| c * t).sum();
                scatter_plan(&p, &rows, &cols, n, plan);
                *iters = it;
                *err = er;
            },
        );
    Ok(SinkhornHostOutput {
        plans: HostPlans {
            plans,
            distances,
            shape: [bsz, m, n],
        },
        iterations,
        marginal_errors: errors,
    })
}

/// AVX2 + FMA log-sum-exp (4 × f64 lanes, vectorised `exp`).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// `ln 2` split so that `n · LN2_HI` is exact for `|n| < 2^11` (fdlibm's
    /// constants).
    const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);

    /// `e^x` on four lanes: `2^n · e^r` with `n = round(x / ln 2)` by the
    /// 1.5·2^52 rounding trick, Cody–Waite `r`, a degree-13 Taylor polynomial
    /// and `2^n` built in the exponent bits; `0` below `-708.3`, NaN kept.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn exp4(x: __m256d) -> __m256d {
        let xc = _mm256_min_pd(
            _mm256_max_pd(x, _mm256_set1_pd(-708.3)),
            _mm256_set1_pd(709.7),
        );
        let magic = _mm256_set1_pd(6_755_399_441_055_744.0);
        let t = _mm256_fmadd_pd(xc, _mm256_set1_pd(std::f64::consts::LOG2_E), magic);
        let n = _mm256_sub_pd(t, magic);
        let r = _mm256_fnmadd_pd(n, _mm256_set1_pd(LN2_HI), xc);
        let r = _mm256_fnmadd_pd(n, _mm256_set1_pd(LN2_LO), r);
        let coef = [
            1.0 / 479_001_600.0,
            1.0 / 39_916_800.0,
            1.0 / 3_628_800.0,
            1.0 / 362_880.0,
            1.0 / 40_320.0,
            1.0 / 5_040.0,
            1.0 / 720.0,
            1.0 / 120.0,
            1.0 / 24.0,
            1.0 / 6.0,
            0.5,
            1.0,
            1.0,
        ];
        let mut p = _mm256_set1_pd(1.0 / 6_227_020_800.0);
        for c in coef {
            p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(c));
        }
        let bits = _mm256_slli_epi64::<52>(_mm256_add_epi64(
            _mm256_castpd_si256(t),
            _mm256_set1_epi64x(1023),
        ));
        let y = _mm256_mul_pd(p, _mm256_castsi256_pd(bits));
        let under = _mm256_cmp_pd::<_CMP_LT_OQ>(x, _mm256_set1_pd(-708.3));
        let y = _mm256_andnot_pd(under, y);
        let nan = _mm256_cmp_pd::<_CMP_UNORD_Q>(x, x);
        _mm256_blendv_pd(y, x, nan)
    }

    /// `logsumexp_k (pot_k − row_k)`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn lse_row(pot: &[f64], row: &[f64]) -> f64 {
        let len = pot.len().min(row.len());
        let (pc, pr) = pot[..len].as_chunks::<4>();
        let (rc, rr) = row[..len].as_chunks::<4>();
        let mut mx = _mm256_set1_pd(f64::NEG_INFINITY);
        for (p, r) in pc.iter().zip(rc) {
            // SAFETY: each chunk is exactly 4 f64.
            let z =
                unsafe { _mm256_sub_pd(_mm256_loadu_pd(p.as_ptr()), _mm256_loadu_pd(r.as_ptr())) };
            mx = _mm256_max_pd(mx, z);
        }
        let mut lanes = [0f64; 4];
        // SAFETY: `lanes` holds 4 f64.
        unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), mx) };
        let mut m = lanes[0].max(lanes[1]).max(lanes[2].max(lanes[3]));
        for (p, r) in pr.iter().zip(rr) {
            m = m.max(p - r);
        }
        let mv = _mm256_set1_pd(m);
        let mut acc = _mm256_setzero_pd();
        for (p, r) in pc.iter().zip(rc) {
            // SAFETY: each chunk is exactly 4 f64.
            let z =
                unsafe { _mm256_sub_pd(_mm256_loadu_pd(p.as_ptr()), _mm256_loadu_pd(r.as_ptr())) };
            acc = _mm256_add_pd(acc, exp4(_mm256_sub_pd(z, mv)));
        }
        unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), acc) };
        let mut s = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
        for (p, r) in pr.iter().zip(rr) {
            s += (p - r - m).exp();
        }
        m + s.ln()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn exp4_matches_std() {
            if !crate::fastmath::simd_available() {
                return;
            }
            let mut worst = 0f64;
            let mut x = -708.0f64;
            let mut out = [0f64; 4];
            while x < 709.0 {
                let xs = [x, x + 0.004, x + 0.009, x + 0.013];
                // SAFETY: AVX2 + FMA checked above; `xs`/`out` hold 4 f64.
                unsafe { _mm256_storeu_pd(out.as_mut_ptr(), exp4(_mm256_loadu_pd(xs.as_ptr()))) };
                for (o, x) in out.iter().zip(xs) {
                    worst = worst.max((o - x.exp()).abs() / x.exp());
                }
                x += 0.0173;
            }
            assert!(worst < 4.0 * f64::EPSILON, "worst relative error {worst}");
            let special = [0.0, -1e9, f64::NEG_INFINITY, f64::NAN];
            // SAFETY: as above.
            unsafe { _mm256_storeu_pd(out.as_mut_ptr(), exp4(_mm256_loadu_pd(special.as_ptr()))) };
            assert_eq!(&out[..3], &[1.0, 0.0, 0.0]);
            assert!(out[3].is_nan());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::lcg_f32 as lcg;
    use burn::tensor::TensorData;
    type Nd = burn::backend::NdArray;

    #[test]
    fn rank_one_closed_form_with_small_epsilon() {
        // C_ij = x_i + y_j: the entropic plan is a ⊗ b whatever ε (a separable
        // cost only shifts the potentials). With ε = 1e-3 (host, f64) and
        // ε = 1e-2 (tensor, f32) the kernel exp(-C/ε) underflows, the log
        // domain does not. Values are multiples of 1/8 so C is exact in f32.
        let (m, n) = (4, 3);
        let x = [0.25, 1.25, -0.5, 0.875];
        let y = [2.0, -1.0, 0.5];
        let c: Vec<f32> = (0..m * n).map(|k| x[k / n] + y[k % n]).collect();
        let a = [0.1, 0.2, 0.3, 0.4];
        let b = [0.5, 0.25, 0.25];
        let batch = CostBatch::new(c.clone(), [1, m, n]).unwrap();
        let cfg = SinkhornConfig {
            epsilon: 1e-3,
            tolerance: 1e-12,
            ..Default::default()
        };
        let out = sinkhorn_host(&batch, Some((&a, &b)), &cfg).unwrap();
        assert!(out.marginal_errors[0] <= 1e-12);
        let dev = Default::default();
        let cost: Tensor<Nd, 3> = Tensor::from_data(TensorData::new(c, [1, m, n]), &dev);
        let wa: Tensor<Nd, 2> =
            Tensor::from_data(TensorData::new(a.map(|v| v as f32).to_vec(), [1, m]), &dev);
        let wb: Tensor<Nd, 2> =
            Tensor::from_data(TensorData::new(b.map(|v| v as f32).to_vec(), [1, n]), &dev);
        let cfg = SinkhornConfig {
            epsilon: 1e-2,
            tolerance: 1e-6,
            ..Default::default()
        };
        let t = sinkhorn(cost, None, Some((wa, wb)), &cfg).unwrap();
        let tp = t.plan.into_data().into_vec::<f32>().unwrap();
        for i in 0..m {
            for j in 0..n {
                let want = a[i] * b[j];
                assert!((out.plans.plans[i * n + j] - want).abs() < 1e-10);
                assert!(
                    (tp[i * n + j] as f64 - want).abs() < 2e-5,
                    "{} vs {want}",
                    tp[i * n + j]
                );
            }
        }
    }

    #[test]
    fn tensor_and_host_paths_agree_with_padding() {
        let (b, m, n) = (3, 6, 5);
        let c = lcg(9, b * m * n);
        let dev = Default::default();
        let pad = Padding::<Nd>::from_lengths(&[6, 3, 2], m, &[5, 4, 1], n, &dev).unwrap();
        let cost: Tensor<Nd, 3> = Tensor::from_data(TensorData::new(c.clone(), [b, m, n]), &dev);
        let cfg = SinkhornConfig {
            epsilon: 0.1,
            tolerance: 1e-6,
            ..Default::default()
        };
        let t = sinkhorn(cost.clone(), Some(&pad), None, &cfg).unwrap();
        let hb = CostBatch::from_tensor(cost, Some(&pad)).unwrap();
        let h = sinkhorn_host(&hb, None, &cfg).unwrap();
        assert!(t.marginal_error <= 1e-6);
        assert!(h.marginal_errors.iter().all(|&e| e <= 1e-6));
        let tp = t.plan.into_data().into_vec::<f32>().unwrap();
        for (x, y) in tp.iter().zip(&h.plans.plans) {
            assert!((*x as f64 - y).abs() < 1e-5, "{x} vs {y}");
        }
    }

    #[test]
    fn simd_and_portable_kernels_agree() {
        for (m, n) in [(12, 9), (5, 3), (1, 6)] {
            let c: Vec<f64> = lcg(m as u64 + 7 * n as u64, m * n)
                .iter()
                .map(|&x| x as f64)
                .collect();
            let (a, b) = (vec![1.0 / m as f64; m], vec![1.0 / n as f64; n]);
            let cfg = SinkhornConfig {
                epsilon: 0.02,
                ..Default::default()
            };
            let (mut p1, mut p2) = (vec![0.0; m * n], vec![0.0; m * n]);
            let r1 = sinkhorn_kernel(&c, &a, &b, &cfg, &mut Workspace::default(), &mut p1, false);
            let r2 = sinkhorn_kernel(
                &c,
                &a,
                &b,
                &cfg,
                &mut Workspace::default(),
                &mut p2,
                simd_available(),
            );
            assert_eq!(r1.0, r2.0);
            for (x, y) in p1.iter().zip(&p2) {
                assert!((x - y).abs() < 1e-12, "{x} vs {y}");
            }
        }
    }

    #[test]
    fn invalid_weights_and_config_are_errors() {
        let batch = CostBatch::new(vec![0.0; 4], [1, 2, 2]).unwrap();
        let cfg = SinkhornConfig::default();
        assert!(matches!(
            sinkhorn_host(&batch, Some((&[0.5, 0.5], &[0.5, 0.6])), &cfg),
            Err(OtError::Marginals(_))
        ));
        assert!(matches!(
            sinkhorn_host(&batch, Some((&[0.5, 0.5, 0.0], &[0.5, 0.5])), &cfg),
            Err(OtError::Shape { .. })
        ));
        let bad = SinkhornConfig {
            epsilon: -1.0,
            ..cfg
        };
        assert!(matches!(
            sinkhorn_host(&batch, None, &bad),
            Err(OtError::Config(_))
        ));
    }
}
