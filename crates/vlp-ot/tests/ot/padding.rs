//! A padded problem gives the plan of the unpadded one, for every solver and
//! both paths, with padding anywhere (not only at the end) and junk costs in
//! the padded entries.

use crate::common::{host1, host3, Rng};
use burn::backend::NdArray;
use burn::tensor::{Bool, Tensor, TensorData};
use vlp_ot::{
    exact_host, ipot, ipot_host, sinkhorn, sinkhorn_host, CostBatch, ExactConfig, IpotConfig,
    Padding, SinkhornConfig,
};
use vlp_test_support::{assert_close, Tol};

type B = NdArray;

struct Case {
    /// Unpadded problems: (m_e, n_e, costs).
    small: Vec<(usize, usize, Vec<f32>)>,
    /// Padded batch `[B, M, N]` and masks (`true` = padding).
    big: Vec<f32>,
    x_pad: Vec<bool>,
    y_pad: Vec<bool>,
    shape: [usize; 3],
}

/// Picks `keep` of `max` positions at random (sorted) and returns the mask.
fn scattered(rng: &mut Rng, keep: usize, max: usize) -> Vec<bool> {
    let mut pad = vec![true; max];
    let mut left = keep;
    while left > 0 {
        let i = rng.below(max);
        if pad[i] {
            pad[i] = false;
            left -= 1;
        }
    }
    pad
}

fn case() -> Case {
    let mut rng = Rng::new(5);
    let (bsz, m, n) = (4, 11, 9);
    let sizes = [(11, 9), (6, 9), (3, 4), (1, 7)];
    let mut big: Vec<f32> = (0..bsz * m * n)
        .map(|_| 3.0 + 4.0 * rng.uniform() as f32)
        .collect();
    let (mut x_pad, mut y_pad, mut small) = (Vec::new(), Vec::new(), Vec::new());
    for (e, &(me, ne)) in sizes.iter().enumerate() {
        let xp = scattered(&mut rng, me, m);
        let yp = scattered(&mut rng, ne, n);
        let c: Vec<f32> = (0..me * ne).map(|_| rng.uniform() as f32).collect();
        let rows: Vec<usize> = (0..m).filter(|&i| !xp[i]).collect();
        let cols: Vec<usize> = (0..n).filter(|&j| !yp[j]).collect();
        for (ci, &i) in rows.iter().enumerate() {
            for (cj, &j) in cols.iter().enumerate() {
                big[(e * m + i) * n + j] = c[ci * ne + cj];
            }
        }
        x_pad.extend(xp);
        y_pad.extend(yp);
        small.push((me, ne, c));
    }
    Case {
        small,
        big,
        x_pad,
        y_pad,
        shape: [bsz, m, n],
    }
}

/// The unpadded block of example `e` of a `[B, M, N]` plan, and whether the
/// padded entries are all exactly zero.
fn block(case: &Case, plan: &[f64], e: usize) -> (Vec<f64>, bool) {
    let [_, m, n] = case.shape;
    let mut out = Vec::new();
    let mut zeros = true;
    for i in 0..m {
        for j in 0..n {
            let v = plan[(e * m + i) * n + j];
            if case.x_pad[e * m + i] || case.y_pad[e * n + j] {
                zeros &= v == 0.0;
            } else {
                out.push(v);
            }
        }
    }
    (out, zeros)
}

fn padded_tensors(case: &Case) -> (Tensor<B, 3>, Padding<B>) {
    let dev = Default::default();
    let [bsz, m, n] = case.shape;
    let cost = Tensor::from_data(TensorData::new(case.big.clone(), case.shape), &dev);
    let x: Tensor<B, 2, Bool> =
        Tensor::from_data(TensorData::new(case.x_pad.clone(), [bsz, m]), &dev);
    let y: Tensor<B, 2, Bool> =
        Tensor::from_data(TensorData::new(case.y_pad.clone(), [bsz, n]), &dev);
    (cost, Padding::new(x, y))
}

fn small_tensor(me: usize, ne: usize, c: &[f32]) -> Tensor<B, 3> {
    Tensor::from_data(
        TensorData::new(c.to_vec(), [1, me, ne]),
        &Default::default(),
    )
}

#[test]
fn host_solvers_ignore_padding_exactly() {
    let case = case();
    let batch = CostBatch::new(case.big.clone(), case.shape)
        .unwrap()
        .with_padding(case.x_pad.clone(), case.y_pad.clone())
        .unwrap();
    let ipot_cfg = IpotConfig::default();
    let sk_cfg = SinkhornConfig {
        epsilon: 0.05,
        ..Default::default()
    };
    let ip = ipot_host(&batch, &ipot_cfg).unwrap();
    let ip: Vec<f64> = ip.plans.iter().map(|&v| v as f64).collect();
    let sk = sinkhorn_host(&batch, None, &sk_cfg).unwrap();
    let ex = exact_host(&batch, &ExactConfig::default()).unwrap();
    for (e, (me, ne, c)) in case.small.iter().enumerate() {
        let single = CostBatch::new(c.clone(), [1, *me, *ne]).unwrap();
        let want_ip: Vec<f64> = ipot_host(&single, &ipot_cfg)
            .unwrap()
            .plans
            .iter()
            .map(|&v| v as f64)
            .collect();
        let want_sk = sinkhorn_host(&single, None, &sk_cfg).unwrap().plans.plans;
        let want_ex = exact_host(&single, &ExactConfig::default()).unwrap().plans;
        for (plan, want, what) in [
            (&ip, want_ip, "ipot"),
            (&sk.plans.plans, want_sk, "sinkhorn"),
            (&ex.plans, want_ex, "exact"),
        ] {
            let (got, zeros) = block(&case, plan, e);
            assert!(zeros, "{what} example {e}: mass on padding");
            // Same kernel on the same compacted data: bit-identical.
            assert_eq!(got, want, "{what} example {e}");
        }
    }
}

#[test]
fn tensor_solvers_ignore_padding() {
    let case = case();
    let (cost, pad) = padded_tensors(&case);
    let ipot_cfg = IpotConfig::default();
    let sk_cfg = SinkhornConfig {
        epsilon: 0.05,
        tolerance: 1e-5,
        ..Default::default()
    };
    let ip = ipot(cost.clone(), Some(&pad), &ipot_cfg).unwrap();
    let ip_d = host1(ip.distance);
    let ip = host3(ip.plan);
    let sk = sinkhorn(cost, Some(&pad), None, &sk_cfg).unwrap();
    let sk_d = host1(sk.distance);
    let sk = host3(sk.plan);
    for (e, (me, ne, c)) in case.small.iter().enumerate() {
        let w_ip = ipot(small_tensor(*me, *ne, c), None, &ipot_cfg).unwrap();
        let w_sk = sinkhorn(small_tensor(*me, *ne, c), None, None, &sk_cfg).unwrap();
        assert_close(
            format!("ipot distance {e}"),
            ip_d[e],
            host1(w_ip.distance)[0],
            Tol::abs(1e-6),
        );
        assert_close(
            format!("sinkhorn distance {e}"),
            sk_d[e],
            host1(w_sk.distance)[0],
            Tol::abs(1e-5),
        );
        let (got, zeros) = block(&case, &ip, e);
        assert!(zeros, "ipot example {e}: mass on padding");
        assert_close(
            format!("ipot example {e}"),
            got,
            host3(w_ip.plan),
            Tol::abs(1e-6),
        );
        let (got, zeros) = block(&case, &sk, e);
        assert!(zeros, "sinkhorn example {e}: mass on padding");
        // The batch stops when its worst example converges, the lone
        // problem may stop earlier: compare to the tolerance's order.
        assert_close(
            format!("sinkhorn example {e}"),
            got,
            host3(w_sk.plan),
            Tol::abs(1e-5),
        );
    }
}
