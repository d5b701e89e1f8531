// TEMPORARY profiling harness; removed before hand-off.
use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use std::time::Instant;
use vlp_ot::*;
fn t<T>(name: &str, reps: usize, mut f: impl FnMut() -> T) {
    let _ = f();
    let s = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(f());
    }
    println!(
        "{name}: {:.4} ms",
        s.elapsed().as_secs_f64() * 1e3 / reps as f64
    );
}
fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let (b, m, n) = (32, 40, 36);
    let mut s = 1u64;
    let c: Vec<f32> = (0..b * m * n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
            0.9 + 0.2 * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect();
    let batch = CostBatch::new(c.clone(), [b, m, n]).unwrap();
    let dev = Default::default();
    let cost: Tensor<NdArray, 3> = Tensor::from_data(TensorData::new(c.clone(), [b, m, n]), &dev);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        if which == "kernel" || which.is_empty() {
            t("ipot_host it=50", 200, || {
                ipot_host(&batch, &IpotConfig::default()).unwrap()
            });
            t("ipot_host it=1", 200, || {
                ipot_host(
                    &batch,
                    &IpotConfig {
                        iterations: 1,
                        ..Default::default()
                    },
                )
                .unwrap()
            });
        }
        if which == "via" || which.is_empty() {
            t("via_host", 200, || {
                ipot_via_host(cost.clone(), None, &IpotConfig::default()).unwrap()
            });
            t("to host", 200, || {
                CostBatch::from_tensor(cost.clone(), None).unwrap()
            });
            t("into_data", 200, || cost.clone().into_data());
            t("costbatch new", 200, || {
                CostBatch::new(c.clone(), [b, m, n]).unwrap()
            });
            let hp = ipot_host(&batch, &IpotConfig::default()).unwrap();
            t("upload", 200, || hp.plans_tensor::<NdArray>(&dev));
            let p = hp.plans_tensor::<NdArray>(&dev);
            t("distance", 200, || {
                (cost.clone() * p.clone()).sum_dims_squeeze::<1, _>(&[1, 2])
            });
        }
        if which == "flex" {
            flex();
        }
        if which == "costs" {
            costs();
        }
        if which == "exact80" {
            exact80();
        }
        if which == "tens" {
            tens();
        }
        if which == "cmp" {
            cmp();
        }
        if which == "flex2" {
            flex2();
        }
        if which == "exact" || which.is_empty() {
            t("exact", 50, || {
                exact_host(&batch, &ExactConfig::default()).unwrap()
            });
        }
        if which == "sinkhorn" || which.is_empty() {
            let sk = SinkhornConfig {
                epsilon: 0.05,
                max_iterations: 100,
                tolerance: 0.0,
                check_every: 100,
            };
            t("sinkhorn", 20, || sinkhorn_host(&batch, None, &sk).unwrap());
        }
    });
}
#[allow(dead_code)]
fn flex() {
    type Fx = burn::backend::Flex;
    let (b, m, n) = (32, 40, 36);
    let c: Vec<f32> = (0..b * m * n)
        .map(|k| 0.9 + (k % 17) as f32 * 0.01)
        .collect();
    let cost: Tensor<Fx, 3> =
        Tensor::from_data(TensorData::new(c.clone(), [b, m, n]), &Default::default());
    t("flex into_data shared", 100, || cost.clone().into_data());
    t("flex via_host", 100, || {
        ipot_via_host(cost.clone(), None, &IpotConfig::default()).unwrap()
    });
    let u: Tensor<Fx, 3> = Tensor::ones([b, m, 1], &Default::default());
    t("flex bcast mul [B,M,N]*[B,M,1]", 100, || {
        cost.clone() * u.clone()
    });
    t("flex mul same shape", 100, || cost.clone() * cost.clone());
    t("flex sum_dim 1", 100, || cost.clone().sum_dim(1));
    t("flex sum_dim 2", 100, || cost.clone().sum_dim(2));
    let cn: Tensor<NdArray, 3> =
        Tensor::from_data(TensorData::new(c.clone(), [b, m, n]), &Default::default());
    let un: Tensor<NdArray, 3> = Tensor::ones([b, m, 1], &Default::default());
    t("nd bcast mul", 100, || cn.clone() * un.clone());
    t("nd mul same", 100, || cn.clone() * cn.clone());
    t("nd sum_dim 1", 100, || cn.clone().sum_dim(1));
    t("nd sum_dim 2", 100, || cn.clone().sum_dim(2));
}
#[allow(dead_code)]
fn flex2() {
    type Fx = burn::backend::Flex;
    let (b, m, n) = (32, 40, 36);
    let dev = Default::default();
    let c: Vec<f32> = (0..b * m * n)
        .map(|k| 0.9 + (k % 17) as f32 * 0.01)
        .collect();
    let cost: Tensor<Fx, 3> = Tensor::from_data(TensorData::new(c.clone(), [b, m, n]), &dev);
    let xv: Tensor<Fx, 3> = Tensor::ones([b, m, 1], &dev);
    let yv: Tensor<Fx, 3> = Tensor::ones([b, 1, n], &dev);
    let nx: Tensor<Fx, 3> = Tensor::full([b, 1, 1], m as f32, &dev);
    let ny: Tensor<Fx, 3> = Tensor::full([b, 1, 1], n as f32, &dev);
    let joint = xv.clone() * yv.clone();
    t("joint", 100, || xv.clone() * yv.clone());
    let a = cost.clone().div_scalar(-0.5).exp() * joint.clone();
    t("a", 100, || {
        cost.clone().div_scalar(-0.5).exp() * joint.clone()
    });
    let u = xv.clone() / nx.clone();
    t("u0", 100, || xv.clone() / nx.clone());
    let q = a.clone() * joint.clone();
    t("q", 100, || a.clone() * joint.clone());
    let col = (q.clone() * u.clone()).sum_dim(1);
    t("col", 100, || (q.clone() * u.clone()).sum_dim(1));
    let v = yv.clone() / (col.clone() * ny.clone()).clamp_min(1e-30);
    t("v", 100, || {
        yv.clone() / (col.clone() * ny.clone()).clamp_min(1e-30)
    });
    let row = (q.clone() * v.clone()).sum_dim(2);
    t("row", 100, || (q.clone() * v.clone()).sum_dim(2));
    let u2 = xv.clone() / (row.clone() * nx.clone()).clamp_min(1e-30);
    t("u", 100, || {
        xv.clone() / (row.clone() * nx.clone()).clamp_min(1e-30)
    });
    let tt = u2.clone() * q.clone() * v.clone();
    t("T", 100, || u2.clone() * q.clone() * v.clone());
    t("q2", 100, || a.clone() * tt.clone());
}
#[allow(dead_code)]
mod old {
    const TINY: f32 = 1e-30;
    #[derive(Default)]
    pub struct Ws {
        a: Vec<f32>,
        q: Vec<f32>,
        u: Vec<f32>,
        v: Vec<f32>,
        col: Vec<f32>,
    }
    fn dot(x: &[f32], y: &[f32]) -> f32 {
        let mut acc = [0f32; 8];
        let cx = x.chunks_exact(8);
        let cy = y.chunks_exact(8);
        let (rx, ry) = (cx.remainder(), cy.remainder());
        for (a, b) in cx.zip(cy) {
            for l in 0..8 {
                acc[l] += a[l] * b[l];
            }
        }
        let mut s =
            ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        for (a, b) in rx.iter().zip(ry) {
            s += a * b;
        }
        s
    }
    pub fn kernel(c: &[f32], m: usize, n: usize, iters: usize, ws: &mut Ws, plan: &mut [f32]) {
        let scale = -1.0 / 0.5f32;
        ws.a.clear();
        ws.a.extend(c.iter().map(|&x| (x * scale).exp()));
        ws.q.clear();
        ws.q.extend_from_slice(&ws.a);
        ws.u.clear();
        ws.u.resize(m, 1.0 / m as f32);
        ws.v.clear();
        ws.v.resize(n, 0.0);
        ws.col.clear();
        ws.col.resize(n, 0.0);
        let (fm, fn_) = (m as f32, n as f32);
        let Ws { a, q, u, v, col } = ws;
        for it in 0..iters {
            if it == 0 {
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
            if it + 1 < iters {
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
        for ((pi, qi), &ui) in plan
            .chunks_exact_mut(n)
            .zip(q.chunks_exact(n))
            .zip(u.iter())
        {
            for ((p, &qij), &vj) in pi.iter_mut().zip(qi).zip(v.iter()) {
                *p = ui * qij * vj;
            }
        }
    }
}
#[allow(dead_code)]
fn cmp() {
    let (b, m, n) = (32, 40, 36);
    let mut s = 1u64;
    let c: Vec<f32> = (0..b * m * n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
            0.9 + 0.2 * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect();
    let batch = CostBatch::new(c.clone(), [b, m, n]).unwrap();
    let mut ws = old::Ws::default();
    let mut plan = vec![0f32; m * n];
    for _ in 0..3 {
        t("old kernel x32", 100, || {
            for e in 0..b {
                old::kernel(&c[e * m * n..(e + 1) * m * n], m, n, 50, &mut ws, &mut plan);
            }
            plan[0]
        });
        t("new ipot_host", 100, || {
            ipot_host(&batch, &IpotConfig::default()).unwrap()
        });
    }
}
#[allow(dead_code)]
fn tens() {
    type Fx = burn::backend::Flex;
    let (b, m, n) = (32, 40, 36);
    let c: Vec<f32> = (0..b * m * n)
        .map(|k| 0.9 + (k % 17) as f32 * 0.01)
        .collect();
    let cf: Tensor<Fx, 3> =
        Tensor::from_data(TensorData::new(c.clone(), [b, m, n]), &Default::default());
    let cn: Tensor<NdArray, 3> =
        Tensor::from_data(TensorData::new(c.clone(), [b, m, n]), &Default::default());
    t("flex ipot tensor", 10, || {
        ipot(cf.clone(), None, &IpotConfig::default()).unwrap()
    });
    t("nd ipot tensor", 10, || {
        ipot(cn.clone(), None, &IpotConfig::default()).unwrap()
    });
    let sk = SinkhornConfig {
        epsilon: 0.05,
        max_iterations: 100,
        tolerance: 0.0,
        check_every: 100,
    };
    t("flex sinkhorn tensor", 3, || {
        sinkhorn(cf.clone(), None, None, &sk).unwrap()
    });
    t("nd sinkhorn tensor", 3, || {
        sinkhorn(cn.clone(), None, None, &sk).unwrap()
    });
}
#[allow(dead_code)]
fn exact80() {
    let (b, m, n) = (32, 80, 72);
    let mut s = 1u64;
    let c: Vec<f32> = (0..b * m * n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
            0.9 + 0.2 * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect();
    let batch = CostBatch::new(c.clone(), [b, m, n]).unwrap();
    t("exact 80x72", 5, || {
        exact_host(&batch, &ExactConfig::default()).unwrap()
    });
    let c64: Vec<f64> = c[..m * n].iter().map(|&x| x as f64).collect();
    let sol = emd(
        &vec![1.0 / m as f64; m],
        &vec![1.0 / n as f64; n],
        &c64,
        &ExactConfig::default(),
    )
    .unwrap();
    println!("pivots {}", sol.pivots);
}
#[allow(dead_code)]
fn costs() {
    type Fx = burn::backend::Flex;
    let (b, m, n, d) = (32, 40, 36, 768);
    let xv: Vec<f32> = (0..b * m * d)
        .map(|k| ((k * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let yv: Vec<f32> = (0..b * n * d)
        .map(|k| ((k * 104729) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let xf: Tensor<Fx, 3> =
        Tensor::from_data(TensorData::new(xv.clone(), [b, m, d]), &Default::default());
    let yf: Tensor<Fx, 3> =
        Tensor::from_data(TensorData::new(yv.clone(), [b, n, d]), &Default::default());
    let xn: Tensor<NdArray, 3> =
        Tensor::from_data(TensorData::new(xv.clone(), [b, m, d]), &Default::default());
    let yn: Tensor<NdArray, 3> =
        Tensor::from_data(TensorData::new(yv.clone(), [b, n, d]), &Default::default());
    for _ in 0..2 {
        t("flex cost", 20, || {
            cosine_cost(xf.clone(), yf.clone()).unwrap()
        });
        t("nd cost", 20, || {
            cosine_cost(xn.clone(), yn.clone()).unwrap()
        });
        t("flex wra", 20, || {
            wra_distance(xf.clone(), yf.clone(), None, &WraConfig::default()).unwrap()
        });
        t("nd wra", 20, || {
            wra_distance(xn.clone(), yn.clone(), None, &WraConfig::default()).unwrap()
        });
    }
}
