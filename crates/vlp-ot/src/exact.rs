//! Exact optimal transport for small problems: a primal network simplex on
//! the bipartite transportation network, in `f64`.
//!
//! For supplies `a ∈ ℝ^m`, demands `b ∈ ℝ^n` (equal total mass) and costs
//! `C ∈ ℝ^{m×n}` it solves `min ⟨C, T⟩ s.t. T 1 = a, Tᵀ 1 = b, T ≥ 0` exactly
//! (up to floating-point rounding) and also returns an optimal dual
//! `(α, β)` with `α_i + β_j ≤ C_ij` and `⟨a, α⟩ + ⟨b, β⟩ = ⟨C, T⟩`, a
//! certificate of optimality that tests can check independently.
//!
//! Method: the classical network simplex with an artificial root node (every
//! node starts attached to it by a high-cost arc), a strongly feasible
//! spanning tree with the "last blocking arc" leaving rule (no cycling on
//! degenerate pivots), and block-search pricing over the `m·n` real arcs.
//! The tree is stored with parent pointers, depths and child lists; after a
//! pivot only the re-hung subtree has its depths and potentials updated.
//!
//! [`emd`] solves one problem; [`exact_host`] solves a [`CostBatch`] in
//! parallel with rayon (uniform marginals on the unpadded positions, as for
//! WRA); [`exact`] does the same for a cost tensor of any backend (read back
//! to the host).

use burn::tensor::{backend::Backend, Tensor};
use rayon::prelude::*;

use crate::batch::{scatter_plan, CostBatch, HostPlans, Padding};
use crate::error::{OtError, Result};
use crate::ipot::{plan_via_host, PlanOutput};

const NONE: usize = usize::MAX;

/// Solver limits of the network simplex.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExactConfig {
    /// Maximum number of simplex pivots per problem (POT's `numItermax`
    /// default is 100 000 too).
    pub max_pivots: usize,
}

impl Default for ExactConfig {
    fn default() -> Self {
        Self {
            max_pivots: 100_000,
        }
    }
}

/// Optimal solution of one transport problem.
#[derive(Clone, Debug, PartialEq)]
pub struct EmdSolution {
    /// Optimal transport cost `⟨C, T⟩`.
    pub cost: f64,
    /// Optimal plan, row-major `[m, n]`.
    pub plan: Vec<f64>,
    /// Dual potentials of the rows, `[m]`.
    pub alpha: Vec<f64>,
    /// Dual potentials of the columns, `[n]`; `α_i + β_j ≤ C_ij` with equality
    /// wherever `T_ij > 0`.
    pub beta: Vec<f64>,
    /// Number of simplex pivots performed.
    pub pivots: usize,
}

/// Solves `min ⟨C, T⟩` over plans with marginals `a` (`[m]`) and `b` (`[n]`);
/// `cost` is row-major `[m, n]`.
///
/// Marginals must be non-negative, finite and carry the same total mass up to
/// a relative `1e-6` (as POT's `emd`, `b` is then rescaled to `a`'s exact
/// total). Costs must be finite.
pub fn emd(a: &[f64], b: &[f64], cost: &[f64], config: &ExactConfig) -> Result<EmdSolution> {
    let (m, n) = (a.len(), b.len());
    if m == 0 || n == 0 {
        return Err(OtError::EmptyProblem { example: 0 });
    }
    if cost.len() != m * n {
        return Err(crate::error::shape_err(
            "cost [m, n] vs marginals",
            &[m, n],
            &[cost.len()],
        ));
    }
    if cost.iter().any(|c| !c.is_finite()) {
        return Err(OtError::NonFiniteCost { example: 0 });
    }
    if a.iter().chain(b).any(|w| !(w.is_finite() && *w >= 0.0)) {
        return Err(OtError::Marginals("weights must be finite and >= 0".into()));
    }
    let (sa, sb) = (a.iter().sum::<f64>(), b.iter().sum::<f64>());
    if !(sa > 0.0 && sb > 0.0) {
        return Err(OtError::Marginals(
            "marginals must have positive mass".into(),
        ));
    }
    if (sa - sb).abs() > 1e-6 * sa.max(sb) {
        return Err(OtError::Marginals(format!(
            "marginals must have the same total mass, got {sa} and {sb}"
        )));
    }
    let b_scaled: Vec<f64> = b.iter().map(|&x| x * (sa / sb)).collect();
    let mut simplex = NetworkSimplex::new(a, &b_scaled, cost);
    let pivots = simplex.run(config.max_pivots)?;
    Ok(simplex.solution(cost, pivots))
}

/// The network simplex state for one `m × n` transportation problem.
///
/// Nodes `0..m` are rows (supplies), `m..m+n` columns (demands), `m+n` the
/// root. Arc `e < m·n` goes from row `e / n` to column `m + e % n`; arc
/// `m·n + u` is node `u`'s artificial arc to/from the root.
struct NetworkSimplex {
    m: usize,
    n: usize,
    /// Costs shifted to be `≥ 0`, then artificial costs.
    cost: Vec<f64>,
    flow: Vec<f64>,
    src: Vec<u32>,
    tgt: Vec<u32>,
    pi: Vec<f64>,
    parent: Vec<usize>,
    pred: Vec<usize>,
    /// `true` if `pred[u]` points from `u` to its parent.
    up: Vec<bool>,
    depth: Vec<usize>,
    first_child: Vec<usize>,
    next_sib: Vec<usize>,
    prev_sib: Vec<usize>,
    /// Reduced-cost tolerance for pricing.
    eps: f64,
    block: usize,
    /// Row where the next pricing scan starts.
    next_arc: usize,
    shift: f64,
    stack: Vec<usize>,
}

impl NetworkSimplex {
    fn new(a: &[f64], b: &[f64], cost: &[f64]) -> Self {
        let (m, n) = (a.len(), b.len());
        let arcs = m * n;
        let nodes = m + n + 1;
        let root = m + n;
        let cmin = cost.iter().cloned().fold(f64::INFINITY, f64::min);
        let cmax = cost.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let art = (cmax - cmin + 1.0) * nodes as f64;
        let mut c = Vec::with_capacity(arcs + nodes - 1);
        c.extend(cost.iter().map(|&x| x - cmin));
        c.extend(std::iter::repeat_n(art, nodes - 1));
        let mut src = Vec::with_capacity(arcs + nodes - 1);
        let mut tgt = Vec::with_capacity(arcs + nodes - 1);
        for i in 0..m {
            for j in 0..n {
                src.push(i as u32);
                tgt.push((m + j) as u32);
            }
        }
        let mut flow = vec![0.0; arcs + nodes - 1];
        let mut pi = vec![0.0; nodes];
        let mut up = vec![false; nodes];
        let mut parent = vec![NONE; nodes];
        let mut pred = vec![NONE; nodes];
        let mut depth = vec![0; nodes];
        let mut first_child = vec![NONE; nodes];
        let mut next_sib = vec![NONE; nodes];
        let mut prev_sib = vec![NONE; nodes];
        // Strongly feasible start: nodes with supply >= 0 send to the root,
        // demand nodes receive from it.
        for u in 0..root {
            let supply = if u < m { a[u] } else { -b[u - m] };
            let e = arcs + u;
            parent[u] = root;
            pred[u] = e;
            depth[u] = 1;
            if supply >= 0.0 {
                src.push(u as u32);
                tgt.push(root as u32);
                flow[e] = supply;
                up[u] = true;
                pi[u] = -art;
            } else {
                src.push(root as u32);
                tgt.push(u as u32);
                flow[e] = -supply;
                pi[u] = art;
            }
            // Children of the root, in order.
            if u + 1 < root {
                next_sib[u] = u + 1;
            }
            if u > 0 {
                prev_sib[u] = u - 1;
            }
        }
        first_child[root] = 0;
        let block = ((arcs as f64).sqrt().ceil() as usize).max(10).min(arcs);
        Self {
            m,
            n,
            cost: c,
            flow,
            src,
            tgt,
            pi,
            parent,
            pred,
            up,
            depth,
            first_child,
            next_sib,
            prev_sib,
            eps: art * 1e-14,
            block,
            next_arc: 0,
            shift: cmin,
            stack: Vec::new(),
        }
    }

    /// Block-search pricing over whole rows of the transport matrix: scans
    /// blocks of rows (≈ √(m·n) arcs) cyclically from where the last search
    /// stopped and returns the most negative reduced cost of the first block
    /// that has one below `-eps`. Within a row the reduced costs
    /// `(C_ij − π_j) + π_i` are contiguous, so the minimum is found with
    /// vectorised code and the argmin only searched for in improving rows.
    fn find_entering(&mut self) -> Option<(usize, f64)> {
        let (m, n) = (self.m, self.n);
        let rows_per_block = (self.block / n).max(1);
        let pi_cols = &self.pi[m..m + n];
        let mut best = -self.eps;
        let mut best_arc = NONE;
        let mut count = 0;
        let mut i = self.next_arc;
        for _ in 0..m {
            let row = &self.cost[i * n..(i + 1) * n];
            let d_min = row_min(row, pi_cols);
            let rc_min = d_min + self.pi[i];
            if rc_min < best {
                // The same subtraction as in `row_min`, so equality is exact.
                let j = row
                    .iter()
                    .zip(pi_cols)
                    .position(|(c, p)| c - p == d_min)
                    .expect("the row minimum is attained");
                best = rc_min;
                best_arc = i * n + j;
            }
            i += 1;
            if i == m {
                i = 0;
            }
            count += 1;
            if count == rows_per_block {
                if best_arc != NONE {
                    break;
                }
                count = 0;
            }
        }
        if best_arc == NONE {
            return None;
        }
        self.next_arc = i;
        Some((best_arc, best))
    }

    fn remove_child(&mut self, parent: usize, c: usize) {
        let (p, nx) = (self.prev_sib[c], self.next_sib[c]);
        if p != NONE {
            self.next_sib[p] = nx;
        } else {
            self.first_child[parent] = nx;
        }
        if nx != NONE {
            self.prev_sib[nx] = p;
        }
    }

    fn add_child(&mut self, parent: usize, c: usize) {
        let f = self.first_child[parent];
        self.next_sib[c] = f;
        self.prev_sib[c] = NONE;
        if f != NONE {
            self.prev_sib[f] = c;
        }
        self.first_child[parent] = c;
    }

    /// Runs pivots until no arc has a negative reduced cost; returns the
    /// number of pivots.
    fn run(&mut self, max_pivots: usize) -> Result<usize> {
        let mut pivots = 0;
        while let Some((in_arc, rc)) = self.find_entering() {
            if pivots == max_pivots {
                return Err(OtError::NotConverged {
                    example: 0,
                    iterations: pivots,
                });
            }
            pivots += 1;
            self.pivot(in_arc, rc);
        }
        Ok(pivots)
    }

    fn pivot(&mut self, in_arc: usize, rc: f64) {
        // The entering arc is at its lower bound: flow is pushed along it,
        // i.e. around the cycle join → … → first → second → … → join.
        let first = self.src[in_arc] as usize;
        let second = self.tgt[in_arc] as usize;
        let (mut x, mut y) = (first, second);
        while x != y {
            if self.depth[x] > self.depth[y] {
                x = self.parent[x];
            } else if self.depth[y] > self.depth[x] {
                y = self.parent[y];
            } else {
                x = self.parent[x];
                y = self.parent[y];
            }
        }
        let join = x;
        // Leaving arc: the last blocking arc in cycle order. On the first
        // side (walked against cycle order) ties keep the earliest found; on
        // the second side (walked in cycle order) ties move to the latest.
        let mut delta = f64::INFINITY;
        let mut u_out = NONE;
        let mut out_on_first = true;
        let mut u = first;
        while u != join {
            if self.up[u] {
                let f = self.flow[self.pred[u]];
                if f < delta {
                    delta = f;
                    u_out = u;
                }
            }
            u = self.parent[u];
        }
        u = second;
        while u != join {
            if !self.up[u] {
                let f = self.flow[self.pred[u]];
                if f <= delta {
                    delta = f;
                    u_out = u;
                    out_on_first = false;
                }
            }
            u = self.parent[u];
        }
        debug_assert!(u_out != NONE, "unbounded transport problem");
        // Augment.
        if delta > 0.0 {
            self.flow[in_arc] += delta;
            let mut u = first;
            while u != join {
                let e = self.pred[u];
                if self.up[u] {
                    self.flow[e] -= delta;
                } else {
                    self.flow[e] += delta;
                }
                u = self.parent[u];
            }
            u = second;
            while u != join {
                let e = self.pred[u];
                if self.up[u] {
                    self.flow[e] += delta;
                } else {
                    self.flow[e] -= delta;
                }
                u = self.parent[u];
            }
        }
        // Re-hang the subtree cut off by the leaving arc below the entering arc.
        let (u_in, v_in) = if out_on_first {
            (first, second)
        } else {
            (second, first)
        };
        let shift = if u_in == first { -rc } else { rc };
        let mut node = u_in;
        let mut new_parent = v_in;
        let mut new_pred = in_arc;
        let mut new_up = u_in == first;
        loop {
            let old_parent = self.parent[node];
            let old_pred = self.pred[node];
            let old_up = self.up[node];
            self.remove_child(old_parent, node);
            self.parent[node] = new_parent;
            self.pred[node] = new_pred;
            self.up[node] = new_up;
            self.add_child(new_parent, node);
            if node == u_out {
                break;
            }
            new_parent = node;
            new_pred = old_pred;
            new_up = !old_up;
            node = old_parent;
        }
        // Depths and potentials of the re-hung subtree.
        self.stack.clear();
        self.stack.push(u_in);
        while let Some(w) = self.stack.pop() {
            self.depth[w] = self.depth[self.parent[w]] + 1;
            self.pi[w] += shift;
            let mut c = self.first_child[w];
            while c != NONE {
                self.stack.push(c);
                c = self.next_sib[c];
            }
        }
    }

    fn solution(&self, cost: &[f64], pivots: usize) -> EmdSolution {
        let (m, n) = (self.m, self.n);
        let plan = self.flow[..m * n].to_vec();
        let total = plan.iter().zip(cost).map(|(t, c)| t * c).sum();
        // rc(i→j) = c'_ij + π_i − π_j ≥ 0 ⇒ (−π_i) + π_j ≤ c'_ij = C_ij − shift.
        let alpha = (0..m).map(|i| -self.pi[i] + self.shift).collect();
        let beta = (0..n).map(|j| self.pi[m + j]).collect();
        EmdSolution {
            cost: total,
            plan,
            alpha,
            beta,
            pivots,
        }
    }
}

/// `min_j (row_j − p_j)`, four lanes so that it vectorises (no NaN here:
/// costs and potentials are finite).
#[inline]
fn row_min(row: &[f64], p: &[f64]) -> f64 {
    let (rc, rr) = row.as_chunks::<4>();
    let (pc, pr) = p.as_chunks::<4>();
    let mut acc = [f64::INFINITY; 4];
    for (r, q) in rc.iter().zip(pc) {
        for l in 0..4 {
            let d = r[l] - q[l];
            acc[l] = if d < acc[l] { d } else { acc[l] };
        }
    }
    let mut best = acc[0].min(acc[1]).min(acc[2].min(acc[3]));
    for (r, q) in rr.iter().zip(pr) {
        best = best.min(r - q);
    }
    best
}

/// Exact OT for every example of a host batch, in parallel (rayon's current
/// pool), with uniform marginals `1/n_x`, `1/n_y` on the unpadded positions
/// (the WRA setting). Costs are promoted to `f64`.
///
/// Returns `[B, M, N]` plans (zero at padding) and the optimal costs.
pub fn exact_host(batch: &CostBatch, config: &ExactConfig) -> Result<HostPlans<f64>> {
    let [b, m, n] = batch.shape();
    let mn = m * n;
    let mut plans = vec![0f64; b * mn];
    let mut distances = vec![0f64; b];
    plans
        .par_chunks_mut(mn)
        .zip(distances.par_iter_mut())
        .enumerate()
        .try_for_each(|(e, (plan, dist))| -> Result<()> {
            let (c, rows, cols) = batch.compact(e, f64::from);
            let a = vec![1.0 / rows.len() as f64; rows.len()];
            let bw = vec![1.0 / cols.len() as f64; cols.len()];
            let sol = emd(&a, &bw, &c, config).map_err(|err| match err {
                OtError::NotConverged { iterations, .. } => OtError::NotConverged {
                    example: e,
                    iterations,
                },
                other => other,
            })?;
            scatter_plan(&sol.plan, &rows, &cols, n, plan);
            *dist = sol.cost;
            Ok(())
        })?;
    Ok(HostPlans {
        plans,
        distances,
        shape: [b, m, n],
    })
}

/// Exact OT for a `[B, M, N]` cost tensor of any backend: reads the costs
/// back, runs [`exact_host`] and uploads the plan. The distance is
/// `Σ C ⊙ T` with the plan detached (differentiable w.r.t. `cost`).
pub fn exact<B: Backend>(
    cost: Tensor<B, 3>,
    padding: Option<&Padding<B>>,
    config: &ExactConfig,
) -> Result<PlanOutput<B>> {
    plan_via_host(cost, padding, |batch| exact_host(batch, config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::lcg_f64 as lcg;

    /// Exhaustive optimum over permutations for an `n × n` assignment with
    /// uniform weights (Birkhoff: a permutation matrix is optimal).
    fn brute_force_assignment(c: &[f64], n: usize) -> f64 {
        fn rec(c: &[f64], n: usize, i: usize, used: &mut Vec<bool>, acc: f64, best: &mut f64) {
            if i == n {
                *best = best.min(acc);
                return;
            }
            for j in 0..n {
                if !used[j] {
                    used[j] = true;
                    rec(c, n, i + 1, used, acc + c[i * n + j], best);
                    used[j] = false;
                }
            }
        }
        let mut best = f64::INFINITY;
        rec(c, n, 0, &mut vec![false; n], 0.0, &mut best);
        best / n as f64
    }

    fn check_certificate(a: &[f64], b: &[f64], c: &[f64], sol: &EmdSolution) {
        let (m, n) = (a.len(), b.len());
        for (i, (row, &ai)) in sol.plan.chunks_exact(n).zip(a).enumerate() {
            let s: f64 = row.iter().sum();
            assert!((s - ai).abs() < 1e-12, "row {i}: {s} vs {ai}");
        }
        for (j, &bj) in b.iter().enumerate() {
            let s: f64 = (0..m).map(|i| sol.plan[i * n + j]).sum();
            assert!((s - bj).abs() < 1e-12, "col {j}");
        }
        assert!(sol.plan.iter().all(|&t| t >= 0.0));
        for i in 0..m {
            for j in 0..n {
                assert!(sol.alpha[i] + sol.beta[j] <= c[i * n + j] + 1e-10);
            }
        }
        let dual: f64 = a.iter().zip(&sol.alpha).map(|(x, y)| x * y).sum::<f64>()
            + b.iter().zip(&sol.beta).map(|(x, y)| x * y).sum::<f64>();
        assert!(
            (dual - sol.cost).abs() < 1e-10,
            "gap {} vs {}",
            dual,
            sol.cost
        );
    }

    #[test]
    fn matches_brute_force_on_small_assignments() {
        for seed in 0..20 {
            let n = 2 + (seed as usize % 5);
            let c = lcg(seed, n * n);
            let w = vec![1.0 / n as f64; n];
            let sol = emd(&w, &w, &c, &ExactConfig::default()).unwrap();
            let want = brute_force_assignment(&c, n);
            assert!(
                (sol.cost - want).abs() < 1e-12,
                "seed {seed}: {} vs {want}",
                sol.cost
            );
            check_certificate(&w, &w, &c, &sol);
        }
    }

    #[test]
    fn duality_certificate_on_rectangular_and_degenerate_problems() {
        let cfg = ExactConfig::default();
        for seed in 0..30u64 {
            let m = 1 + (seed as usize * 7) % 13;
            let n = 1 + (seed as usize * 5) % 11;
            // Integer costs create many ties; some zero weights create degeneracy.
            let c: Vec<f64> = lcg(seed + 100, m * n)
                .iter()
                .map(|x| (x * 4.0).floor() - 1.0)
                .collect();
            let mut a: Vec<f64> = lcg(seed + 200, m)
                .iter()
                .map(|x| if *x < 0.2 { 0.0 } else { *x })
                .collect();
            if a.iter().sum::<f64>() == 0.0 {
                a[0] = 1.0;
            }
            let b: Vec<f64> = lcg(seed + 300, n).iter().map(|x| x + 0.01).collect();
            let (sa, sb) = (a.iter().sum::<f64>(), b.iter().sum::<f64>());
            let b: Vec<f64> = b.iter().map(|x| x * sa / sb).collect();
            let sol = emd(&a, &b, &c, &cfg).unwrap();
            check_certificate(&a, &b, &c, &sol);
        }
    }

    #[test]
    fn invalid_input_is_rejected() {
        let cfg = ExactConfig::default();
        assert!(matches!(
            emd(&[0.5, 0.5], &[1.0], &[0.0; 3], &cfg),
            Err(OtError::Shape { .. })
        ));
        assert!(matches!(
            emd(&[0.5, 0.5], &[0.9], &[0.0; 2], &cfg),
            Err(OtError::Marginals(_))
        ));
        assert!(matches!(
            emd(&[-0.5, 1.5], &[1.0], &[0.0; 2], &cfg),
            Err(OtError::Marginals(_))
        ));
        assert!(matches!(
            emd(&[1.0], &[1.0], &[f64::NAN], &cfg),
            Err(OtError::NonFiniteCost { .. })
        ));
        assert!(matches!(
            emd(&[], &[1.0], &[], &cfg),
            Err(OtError::EmptyProblem { .. })
        ));
        let c = lcg(1, 100);
        let w = vec![0.1; 10];
        assert!(matches!(
            emd(&w, &w, &c, &ExactConfig { max_pivots: 2 }),
            Err(OtError::NotConverged { .. })
        ));
    }
}
