//! vlp-ot solvers against POT (fixtures from `fixtures/gen_fixtures.py`).

use crate::common::load_fixtures;
use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use vlp_ot::{
    emd, exact_host, ipot_host, sinkhorn, sinkhorn_host, CostBatch, ExactConfig, IpotConfig,
    SinkhornConfig,
};

fn close(x: f64, want: f64, tol: f64) -> bool {
    (x - want).abs() <= tol * want.abs().max(1.0)
}

#[test]
fn exact_solver_equals_pot_emd2() {
    let (problems, _) = load_fixtures();
    let mut count = 0;
    for p in problems.iter().filter(|p| p.kind == "emd") {
        let sol = emd(&p.a, &p.b, &p.c, &ExactConfig::default()).unwrap();
        assert!(
            close(sol.cost, p.value, 1e-6),
            "{}: {} vs POT {}",
            p.name,
            sol.cost,
            p.value
        );
        // Plan marginals.
        for i in 0..p.m {
            let s: f64 = sol.plan[i * p.n..(i + 1) * p.n].iter().sum();
            assert!((s - p.a[i]).abs() < 1e-9, "{} row {i}", p.name);
        }
        count += 1;
    }
    assert!(count >= 20, "only {count} emd fixtures");
}

#[test]
fn exact_batch_with_padding_equals_pot_emd2() {
    let (_, fx) = load_fixtures();
    let batch = CostBatch::new(fx.c.iter().map(|&v| v as f32).collect(), fx.shape)
        .unwrap()
        .with_lengths(&fx.xlen, &fx.ylen)
        .unwrap();
    let out = exact_host(&batch, &ExactConfig::default()).unwrap();
    for (e, (&got, &want)) in out.distances.iter().zip(&fx.values).enumerate() {
        assert!(close(got, want, 1e-6), "example {e}: {got} vs POT {want}");
    }
    // Nothing is transported to or from padded positions.
    let [_, m, n] = fx.shape;
    for e in 0..fx.shape[0] {
        let plan = out.plan(e);
        for i in 0..m {
            for j in 0..n {
                if i >= fx.xlen[e] || j >= fx.ylen[e] {
                    assert_eq!(plan[i * n + j], 0.0);
                }
            }
        }
    }
}

#[test]
fn sinkhorn_equals_pot_sinkhorn2_log() {
    let (problems, _) = load_fixtures();
    let mut count = 0;
    for p in problems.iter().filter(|p| p.kind == "sinkhorn") {
        let cfg = SinkhornConfig {
            epsilon: p.reg,
            tolerance: 1e-13,
            max_iterations: 100_000,
            check_every: 10,
        };
        // Host path (f64 kernel). CostBatch stores f32 costs: rounding moves
        // each C_ij by ≤ 6e-8 relative, far below the 1e-6 tolerance.
        let batch = CostBatch::new(p.c.iter().map(|&v| v as f32).collect(), [1, p.m, p.n]).unwrap();
        let host = sinkhorn_host(&batch, Some((&p.a, &p.b)), &cfg).unwrap();
        let got = host.plans.distances[0];
        assert!(
            close(got, p.value, 1e-6),
            "{}: host {got} vs POT {}",
            p.name,
            p.value
        );
        assert!(host.marginal_errors[0] <= 1e-13);
        // Tensor path (f32) to single precision.
        let dev = Default::default();
        let cost: Tensor<NdArray, 3> = Tensor::from_data(
            TensorData::new(
                p.c.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                [1, p.m, p.n],
            ),
            &dev,
        );
        let wa: Tensor<NdArray, 2> = Tensor::from_data(
            TensorData::new(p.a.iter().map(|&v| v as f32).collect::<Vec<_>>(), [1, p.m]),
            &dev,
        );
        let wb: Tensor<NdArray, 2> = Tensor::from_data(
            TensorData::new(p.b.iter().map(|&v| v as f32).collect::<Vec<_>>(), [1, p.n]),
            &dev,
        );
        let cfg32 = SinkhornConfig {
            tolerance: 1e-6,
            max_iterations: 20_000,
            ..cfg
        };
        let t = sinkhorn(cost, None, Some((wa, wb)), &cfg32).unwrap();
        let got32 = crate::common::host1(t.distance)[0];
        assert!(
            close(got32, p.value, 1e-4),
            "{}: tensor {got32} vs POT {}",
            p.name,
            p.value
        );
        count += 1;
    }
    assert!(count >= 4);
}

#[test]
fn ipot_within_two_percent_of_pot_on_uniter_like_problems() {
    let (problems, fx) = load_fixtures();
    let cfg = IpotConfig::default();
    for p in problems.iter().filter(|p| p.name.starts_with("uniter-")) {
        let batch = CostBatch::new(p.c.iter().map(|&v| v as f32).collect(), [1, p.m, p.n]).unwrap();
        let d = ipot_host(&batch, &cfg).unwrap().distances[0] as f64;
        assert!(
            d >= p.value * (1.0 - 1e-5),
            "{}: IPOT {d} below the optimum {}",
            p.name,
            p.value
        );
        assert!(
            d <= p.value * 1.02,
            "{}: IPOT {d} vs POT {}",
            p.name,
            p.value
        );
        // The bound is discriminating: the independent (uniform) plan is not within 2%.
        let uniform: f64 = p.c.iter().sum::<f64>() / (p.m * p.n) as f64;
        assert!(
            uniform > p.value * 1.02,
            "{}: uniform plan {uniform} too close",
            p.name
        );
    }
    let batch = CostBatch::new(fx.c.iter().map(|&v| v as f32).collect(), fx.shape)
        .unwrap()
        .with_lengths(&fx.xlen, &fx.ylen)
        .unwrap();
    let out = ipot_host(&batch, &cfg).unwrap();
    for (e, (&d, &want)) in out.distances.iter().zip(&fx.values).enumerate() {
        let d = d as f64;
        assert!(
            d >= want * (1.0 - 1e-5) && d <= want * 1.02,
            "example {e}: IPOT {d} vs POT {want}"
        );
    }
}
