//! Shared helpers of the integration tests: a seeded RNG, UNITER-like
//! embeddings and the POT fixture parser.
#![allow(dead_code)]

use burn::tensor::{backend::Backend, Tensor, TensorData};

/// SplitMix64: small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    pub fn normals(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.normal() as f32).collect()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize
    }
}

/// UNITER-like word and region embeddings `[b, m, d]`, `[b, n, d]`.
/// `structured`: words are noisy copies of regions plus a shared component
/// (cosine costs spread over ~[0.2, 1.2]); otherwise i.i.d. Gaussian
/// (costs ≈ 1 ± 0.1).
pub fn embeddings(
    rng: &mut Rng,
    b: usize,
    m: usize,
    n: usize,
    d: usize,
    structured: bool,
) -> (Vec<f32>, Vec<f32>) {
    let mut y = rng.normals(b * n * d);
    if !structured {
        return (rng.normals(b * m * d), y);
    }
    let mut x = vec![0f32; b * m * d];
    for e in 0..b {
        let shared = rng.normals(d);
        for i in 0..m {
            let src = rng.below(n);
            for k in 0..d {
                x[(e * m + i) * d + k] =
                    0.8 * y[(e * n + src) * d + k] + 0.6 * rng.normal() as f32 + 0.3 * shared[k];
            }
        }
        for j in 0..n {
            for k in 0..d {
                y[(e * n + j) * d + k] += 0.3 * shared[k];
            }
        }
    }
    (x, y)
}

pub fn tensor3<B: Backend>(v: Vec<f32>, shape: [usize; 3], device: &B::Device) -> Tensor<B, 3> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

pub fn host3<B: Backend>(t: Tensor<B, 3>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

pub fn host1<B: Backend>(t: Tensor<B, 1>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

/// One problem of `pot_fixtures.txt`.
#[derive(Debug)]
pub struct Problem {
    pub kind: String,
    pub name: String,
    pub m: usize,
    pub n: usize,
    pub reg: f64,
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    pub c: Vec<f64>,
    pub value: f64,
}

/// The padded batch of `pot_fixtures.txt`.
#[derive(Debug)]
pub struct Batch {
    pub shape: [usize; 3],
    pub xlen: Vec<usize>,
    pub ylen: Vec<usize>,
    pub c: Vec<f64>,
    pub values: Vec<f64>,
}

fn floats(rest: &str) -> Vec<f64> {
    rest.split_whitespace()
        .map(|t| t.parse().expect("float"))
        .collect()
}

pub fn load_fixtures() -> (Vec<Problem>, Batch) {
    let text = include_str!("../../fixtures/pot_fixtures.txt");
    let mut problems = Vec::new();
    let mut batch = None;
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    while let Some(head) = lines.next() {
        let mut field = |key: &str| -> String {
            let line = lines.next().expect("truncated fixture");
            let (k, rest) = line.split_once(' ').expect("field");
            assert_eq!(k, key);
            rest.to_string()
        };
        let h: Vec<&str> = head.split_whitespace().collect();
        match h[0] {
            "problem" => {
                let (m, n): (usize, usize) = (h[3].parse().unwrap(), h[4].parse().unwrap());
                let p = Problem {
                    kind: h[1].into(),
                    name: h[2].into(),
                    m,
                    n,
                    reg: h[5].parse().unwrap(),
                    a: floats(&field("a")),
                    b: floats(&field("b")),
                    c: floats(&field("c")),
                    value: floats(&field("value"))[0],
                };
                assert_eq!(
                    (p.a.len(), p.b.len(), p.c.len()),
                    (m, n, m * n),
                    "{}",
                    p.name
                );
                problems.push(p);
            }
            "batch" => {
                let shape = [
                    h[2].parse().unwrap(),
                    h[3].parse().unwrap(),
                    h[4].parse().unwrap(),
                ];
                let ints = |s: String| s.split_whitespace().map(|t| t.parse().unwrap()).collect();
                let xlen = ints(field("xlen"));
                let ylen = ints(field("ylen"));
                batch = Some(Batch {
                    shape,
                    xlen,
                    ylen,
                    c: floats(&field("c")),
                    values: floats(&field("value")),
                });
            }
            other => panic!("unknown fixture record {other}"),
        }
        assert_eq!(lines.next(), Some("end"));
    }
    (problems, batch.expect("batch record"))
}
