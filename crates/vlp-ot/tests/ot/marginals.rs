//! Plan marginals: Sinkhorn (both paths, non-uniform weights, padding) and
//! IPOT after convergence equal `a` and `b` to 1e-4.

use crate::common::{embeddings, host3, tensor3, Rng};
use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use vlp_ot::{
    cosine_cost, ipot, ipot_host, sinkhorn, sinkhorn_host, CostBatch, IpotConfig, Padding,
    SinkhornConfig,
};

type B = NdArray;

/// Max |row sums − a| and |col sums − b| over a `[bsz, m, n]` plan.
fn marginal_errors(
    plan: &[f64],
    a: &[f64],
    b: &[f64],
    bsz: usize,
    m: usize,
    n: usize,
) -> (f64, f64) {
    let (mut er, mut ec) = (0f64, 0f64);
    for e in 0..bsz {
        let p = &plan[e * m * n..(e + 1) * m * n];
        for i in 0..m {
            let s: f64 = p[i * n..(i + 1) * n].iter().sum();
            er = er.max((s - a[e * m + i]).abs());
        }
        for j in 0..n {
            let s: f64 = (0..m).map(|i| p[i * n + j]).sum();
            ec = ec.max((s - b[e * n + j]).abs());
        }
    }
    (er, ec)
}

/// Random weights, zero on padding, equal unpadded mass 1 per example.
fn weights(rng: &mut Rng, lens: &[usize], max: usize) -> Vec<f64> {
    let mut w = vec![0.0; lens.len() * max];
    for (e, &l) in lens.iter().enumerate() {
        let raw: Vec<f64> = (0..l).map(|_| 0.05 + rng.uniform()).collect();
        let s: f64 = raw.iter().sum();
        for i in 0..l {
            w[e * max + i] = raw[i] / s;
        }
    }
    w
}

#[test]
fn sinkhorn_plans_have_the_requested_marginals() {
    let mut rng = Rng::new(11);
    let (bsz, m, n, d) = (4, 12, 10, 16);
    let (xlen, ylen) = ([12, 7, 3, 12], [10, 10, 6, 2]);
    let (x, y) = embeddings(&mut rng, bsz, m, n, d, true);
    let dev = Default::default();
    let cost = cosine_cost(
        tensor3::<B>(x, [bsz, m, d], &dev),
        tensor3::<B>(y, [bsz, n, d], &dev),
    )
    .unwrap();
    let pad = Padding::<B>::from_lengths(&xlen, m, &ylen, n, &dev).unwrap();
    let a = weights(&mut rng, &xlen, m);
    let b = weights(&mut rng, &ylen, n);
    for eps in [0.5, 0.05, 0.01] {
        let cfg = SinkhornConfig {
            epsilon: eps,
            tolerance: 1e-6,
            max_iterations: 5000,
            check_every: 10,
        };
        // Host path.
        let batch = CostBatch::from_tensor(cost.clone(), Some(&pad)).unwrap();
        let out = sinkhorn_host(&batch, Some((&a, &b)), &cfg).unwrap();
        assert!(
            out.marginal_errors.iter().all(|&e| e <= 1e-6),
            "eps {eps}: {:?}",
            out.marginal_errors
        );
        let (er, ec) = marginal_errors(&out.plans.plans, &a, &b, bsz, m, n);
        assert!(er <= 1e-4 && ec <= 1e-4, "host eps {eps}: {er} {ec}");
        // Tensor path (f32).
        let wa: Tensor<B, 2> = Tensor::from_data(
            TensorData::new(a.iter().map(|&v| v as f32).collect::<Vec<_>>(), [bsz, m]),
            &dev,
        );
        let wb: Tensor<B, 2> = Tensor::from_data(
            TensorData::new(b.iter().map(|&v| v as f32).collect::<Vec<_>>(), [bsz, n]),
            &dev,
        );
        // f32 sums of ~10 terms floor the L1 error near 1e-6: stop at 1e-5.
        let cfg32 = SinkhornConfig {
            tolerance: 1e-5,
            ..cfg
        };
        let t = sinkhorn(cost.clone(), Some(&pad), Some((wa, wb)), &cfg32).unwrap();
        assert!(
            t.marginal_error <= 1e-5,
            "eps {eps}: error {} after {}",
            t.marginal_error,
            t.iterations
        );
        let (er, ec) = marginal_errors(&host3(t.plan), &a, &b, bsz, m, n);
        assert!(er <= 1e-4 && ec <= 1e-4, "tensor eps {eps}: {er} {ec}");
    }
}

#[test]
fn ipot_converged_plans_have_uniform_marginals() {
    let mut rng = Rng::new(12);
    let (bsz, m, n, d) = (3, 40, 36, 64);
    let (xlen, ylen) = ([40, 25, 9], [36, 30, 17]);
    let (x, y) = embeddings(&mut rng, bsz, m, n, d, true);
    let dev = Default::default();
    let cost = cosine_cost(
        tensor3::<B>(x, [bsz, m, d], &dev),
        tensor3::<B>(y, [bsz, n, d], &dev),
    )
    .unwrap();
    let pad = Padding::<B>::from_lengths(&xlen, m, &ylen, n, &dev).unwrap();
    let uniform = |lens: &[usize], max: usize| -> Vec<f64> {
        lens.iter()
            .flat_map(|&l| (0..max).map(move |i| if i < l { 1.0 / l as f64 } else { 0.0 }))
            .collect()
    };
    let (a, b) = (uniform(&xlen, m), uniform(&ylen, n));
    for inner in [1, 3] {
        let cfg = IpotConfig {
            iterations: 1000,
            inner,
            ..Default::default()
        };
        let host = ipot_host(
            &CostBatch::from_tensor(cost.clone(), Some(&pad)).unwrap(),
            &cfg,
        )
        .unwrap();
        let plan: Vec<f64> = host.plans.iter().map(|&v| v as f64).collect();
        let (er, ec) = marginal_errors(&plan, &a, &b, bsz, m, n);
        assert!(er <= 1e-4 && ec <= 1e-4, "host k={inner}: {er} {ec}");
        let t = ipot(cost.clone(), Some(&pad), &cfg).unwrap();
        let (er, ec) = marginal_errors(&host3(t.plan), &a, &b, bsz, m, n);
        assert!(er <= 1e-4 && ec <= 1e-4, "tensor k={inner}: {er} {ec}");
    }
}
