//! The gradient of `wra_distance` w.r.t. both embeddings matches central
//! finite differences of `Σ C(x, y) ⊙ T` with the plan `T` held at its value
//! at the evaluation point (the plan is detached: gradients flow through the
//! cost only), for both solver paths, with padding.

use crate::common::Rng;
use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Tensor, TensorData};
use vlp_ot::{
    ipot, ipot_via_host, wra_distance, wra_objective, CostKind, Padding, SolverPath, WraConfig,
};

type Inner = NdArray<f64>;
type Ad = Autodiff<Inner>;

fn t3<Bk: burn::tensor::backend::Backend>(v: &[f64], s: [usize; 3]) -> Tensor<Bk, 3> {
    Tensor::from_data(TensorData::new(v.to_vec(), s), &Default::default())
}

fn host<Bk: burn::tensor::backend::Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

#[test]
fn wra_distance_gradient_matches_finite_differences() {
    let (bsz, m, n, d) = (2, 5, 4, 6);
    let (xlen, ylen) = ([5, 3], [4, 2]);
    let weights = [1.0, -2.5]; // distinct per-example weights of the scalar objective
    let mut rng = Rng::new(77);
    let x: Vec<f64> = (0..bsz * m * d).map(|_| rng.normal()).collect();
    let y: Vec<f64> = (0..bsz * n * d).map(|_| rng.normal()).collect();
    let dev = Default::default();
    for kind in [CostKind::Cosine, CostKind::SquaredEuclidean] {
        for path in [SolverPath::Host, SolverPath::Tensor] {
            let cfg = WraConfig {
                path,
                cost: kind,
                ..Default::default()
            };
            // Autodiff gradient.
            let xa = t3::<Ad>(&x, [bsz, m, d]).require_grad();
            let ya = t3::<Ad>(&y, [bsz, n, d]).require_grad();
            let pad = Padding::<Ad>::from_lengths(&xlen, m, &ylen, n, &dev).unwrap();
            let w: Tensor<Ad, 1> =
                Tensor::from_data(TensorData::new(weights.to_vec(), [bsz]), &dev);
            let obj = (wra_distance(xa.clone(), ya.clone(), Some(&pad), &cfg).unwrap() * w).sum();
            let grads = obj.backward();
            let gx = host(xa.grad(&grads).unwrap());
            let gy = host(ya.grad(&grads).unwrap());

            // The plan at the evaluation point, then f(x, y) = Σ_e w_e Σ C ⊙ T.
            let pad_i = Padding::<Inner>::from_lengths(&xlen, m, &ylen, n, &dev).unwrap();
            let c0 = kind
                .compute(t3::<Inner>(&x, [bsz, m, d]), t3::<Inner>(&y, [bsz, n, d]))
                .unwrap();
            let plan = match path {
                SolverPath::Tensor => ipot(c0, Some(&pad_i), &cfg.ipot).unwrap().plan,
                _ => ipot_via_host(c0, Some(&pad_i), &cfg.ipot).unwrap().plan,
            };
            let plan = host(plan);
            let f = |xv: &[f64], yv: &[f64]| -> f64 {
                let c = host(
                    kind.compute(t3::<Inner>(xv, [bsz, m, d]), t3::<Inner>(yv, [bsz, n, d]))
                        .unwrap(),
                );
                c.iter()
                    .zip(&plan)
                    .enumerate()
                    .map(|(k, (c, t))| weights[k / (m * n)] * c * t)
                    .sum()
            };
            let h = 1e-6;
            let check = |g: &[f64], is_x: bool| {
                let base = if is_x { &x } else { &y };
                for k in 0..base.len() {
                    let (mut p, mut q) = (base.clone(), base.clone());
                    p[k] += h;
                    q[k] -= h;
                    let fd = if is_x {
                        (f(&p, &y) - f(&q, &y)) / (2.0 * h)
                    } else {
                        (f(&x, &p) - f(&x, &q)) / (2.0 * h)
                    };
                    assert!(
                        (g[k] - fd).abs() <= 1e-7 + 1e-5 * fd.abs(),
                        "{kind:?} {path:?} d/d{}[{k}]: autodiff {} vs fd {fd}",
                        if is_x { "x" } else { "y" },
                        g[k]
                    );
                }
            };
            check(&gx, true);
            check(&gy, false);
            // Padded positions get exactly zero gradient; real ones do not.
            for e in 0..bsz {
                for i in 0..m {
                    let row = &gx[(e * m + i) * d..(e * m + i + 1) * d];
                    if i >= xlen[e] {
                        assert!(row.iter().all(|&v| v == 0.0), "padded word {e}/{i}");
                    } else {
                        assert!(row.iter().any(|&v| v != 0.0), "word {e}/{i}");
                    }
                }
            }
        }
    }
}

#[test]
fn wra_objective_backpropagates_to_both_embeddings() {
    // The loss is weight·(mean_pos − mean_neg): its gradient is the matching
    // combination of per-pair distance gradients.
    let (bsz, m, n, d) = (3, 4, 3, 5);
    let mut rng = Rng::new(3);
    let x: Vec<f64> = (0..bsz * m * d).map(|_| rng.normal()).collect();
    let y: Vec<f64> = (0..bsz * n * d).map(|_| rng.normal()).collect();
    let dev = Default::default();
    let cfg = WraConfig::default();
    let labels = vec![true, false, false];
    let xa = t3::<Ad>(&x, [bsz, m, d]).require_grad();
    let ya = t3::<Ad>(&y, [bsz, n, d]).require_grad();
    let pos = Tensor::from_data(TensorData::new(labels, [bsz]), &dev);
    let loss = wra_objective(xa.clone(), ya.clone(), None, pos, &cfg).unwrap();
    let gx = host(xa.grad(&loss.backward()).unwrap());
    // Reference: backprop of Σ_e c_e d_e with c = 0.1·(1, −1/2, −1/2).
    let xb = t3::<Ad>(&x, [bsz, m, d]).require_grad();
    let yb = t3::<Ad>(&y, [bsz, n, d]).require_grad();
    let coef: Tensor<Ad, 1> =
        Tensor::from_data(TensorData::new(vec![0.1, -0.05, -0.05], [bsz]), &dev);
    let r = (wra_distance(xb.clone(), yb, None, &cfg).unwrap() * coef).sum();
    let want = host(xb.grad(&r.backward()).unwrap());
    for (a, b) in gx.iter().zip(&want) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    assert!(gx.iter().any(|&v| v.abs() > 1e-6));
}
