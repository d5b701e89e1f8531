//! One comparison for every test that checks numbers against a reference
//! (NumPy/PyTorch fixtures, closed forms, another backend).

use std::fmt::Display;

use burn::prelude::*;
use burn::tensor::TensorData;
use serde_json::Value;

/// How far a value may be from its reference: `|got - expected| <=
/// max(abs, rel * |expected|)`, i.e. `abs` near zero and `rel` relative
/// for large values (`Tol::scaled(1e-5)`: 1e-5 relative to `max(1, |expected|)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tol {
    /// Absolute tolerance: what counts near zero.
    pub abs: f64,
    /// Relative tolerance, a fraction of `|expected|`.
    pub rel: f64,
}

impl Tol {
    /// Absolute only.
    pub const fn abs(abs: f64) -> Self {
        Self { abs, rel: 0.0 }
    }

    /// `tol` relative to `max(1, |expected|)`: absolute below 1, relative above.
    pub const fn scaled(tol: f64) -> Self {
        Self { abs: tol, rel: tol }
    }

    /// The largest difference allowed from `expected`.
    pub fn bound(&self, expected: f64) -> f64 {
        self.abs.max(self.rel * expected.abs())
    }
}

/// Anything [`assert_close`] compares: its values as `f64` in row-major
/// order, and its shape where it has one (tensors, `{shape, data}` fixtures).
pub trait Values {
    /// `(shape, values)`; `None` shape: a scalar or a flat list.
    fn values(&self) -> (Option<Vec<usize>>, Vec<f64>);
}

impl Values for f32 {
    fn values(&self) -> (Option<Vec<usize>>, Vec<f64>) {
        (None, vec![f64::from(*self)])
    }
}

impl Values for f64 {
    fn values(&self) -> (Option<Vec<usize>>, Vec<f64>) {
        (None, vec![*self])
    }
}

impl Values for [f32] {
    fn values(&self) -> (Option<Vec<usize>>, Vec<f64>) {
        (None, self.iter().map(|&v| f64::from(v)).collect())
    }
}

impl Values for [f64] {
    fn values(&self) -> (Option<Vec<usize>>, Vec<f64>) {
        (None, self.to_vec())
    }
}

impl<const N: usize> Values for [f32; N] {
    fn values(&self) -> (Option<Vec<usize>>, Vec<f64>) {
        self[..].values()
    }
}

impl Values for Vec<f32> {
    fn values(&self) -> (Option<Vec<usize>>, Vec<f64>) {
        self[..].values()
    }
}

impl Values for Vec<f64> {
    fn values(&self) -> (Option<Vec<usize>>, Vec<f64>) {
        self[..].values()
    }
}

/// A number, a list of numbers, or a `{"shape": [...], "data": [...]}` tensor.
impl Values for Value {
    fn values(&self) -> (Option<Vec<usize>>, Vec<f64>) {
        if self.get("data").is_some() {
            let shape = crate::fixtures::shape(self);
            return (Some(shape), crate::fixtures::f64s(&self["data"]));
        }
        match self {
            Value::Array(_) => (None, crate::fixtures::f64s(self)),
            _ => (
                None,
                crate::fixtures::f64s(&Value::Array(vec![self.clone()])),
            ),
        }
    }
}

impl Values for TensorData {
    fn values(&self) -> (Option<Vec<usize>>, Vec<f64>) {
        let values = self
            .clone()
            .convert::<f64>()
            .to_vec()
            .expect("tensor data converts to f64");
        (Some(self.shape.to_vec()), values)
    }
}

impl<B: Backend, const D: usize> Values for Tensor<B, D> {
    fn values(&self) -> (Option<Vec<usize>>, Vec<f64>) {
        self.clone().into_data().values()
    }
}

impl<T: Values + ?Sized> Values for &T {
    fn values(&self) -> (Option<Vec<usize>>, Vec<f64>) {
        (**self).values()
    }
}

/// Asserts that `got` equals `expected` within `tol` entry by entry (and
/// has its shape, where both have one). The panic names `what`, the first
/// entry out of tolerance and the largest difference.
///
/// ```
/// use vlp_test_support::{assert_close, Tol};
///
/// // The closed form of a softmax over [0, ln 3]: [1/4, 3/4].
/// let logits = [0.0f64, 3f64.ln()];
/// let total: f64 = logits.iter().map(|l| l.exp()).sum();
/// let softmax: Vec<f32> = logits.iter().map(|l| (l.exp() / total) as f32).collect();
/// assert_close("softmax", &softmax[..], &[0.25f32, 0.75][..], Tol::scaled(1e-6));
///
/// let off = std::panic::catch_unwind(|| {
///     assert_close("off", 0.26f32, 0.25f32, Tol::abs(1e-3));
/// });
/// assert!(off.is_err(), "0.01 away is outside 1e-3");
/// ```
#[track_caller]
pub fn assert_close(what: impl Display, got: impl Values, expected: impl Values, tol: Tol) {
    let (got_shape, got) = got.values();
    let (expected_shape, expected) = expected.values();
    if let (Some(got_shape), Some(expected_shape)) = (&got_shape, &expected_shape) {
        assert_eq!(got_shape, expected_shape, "{what}: shape");
    }
    assert_eq!(got.len(), expected.len(), "{what}: number of values");
    let largest = got
        .iter()
        .zip(&expected)
        .map(|(g, e)| (g - e).abs())
        .fold(0.0, f64::max);
    for (k, (g, e)) in got.iter().zip(&expected).enumerate() {
        let bound = tol.bound(*e);
        // `!(<=)` also catches NaN.
        assert!(
            (g - e).abs() <= bound,
            "{what}: entry {k} of {}: got {g}, expected {e} (difference {:.3e} > {bound:.1e}; \
             largest difference {largest:.3e})",
            got.len(),
            (g - e).abs(),
        );
    }
}
