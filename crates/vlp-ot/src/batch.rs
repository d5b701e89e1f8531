//! Batched problem containers: padding masks for the tensor path and
//! [`CostBatch`], the host-side copy of `[B, M, N]` cost matrices used by the
//! hand-written CPU solvers.
//!
//! Conventions (shared by the whole crate, and the same as UNITER's):
//! - `x` is the row side (words, `M` positions), `y` the column side
//!   (regions, `N` positions);
//! - a padding mask is `true` where the position is **padding**;
//! - an example's length is its number of unpadded positions; padding may sit
//!   anywhere, not only at the end.

use burn::tensor::{backend::Backend, Bool, Tensor, TensorData};

use crate::error::{shape_err, OtError, Result};

/// Padding masks of a batch of problems: `x` is `[B, M]`, `y` is `[B, N]`,
/// `true` marks a padded position.
#[derive(Clone, Debug)]
pub struct Padding<B: Backend> {
    /// Row-side (text) padding `[B, M]`.
    pub x: Tensor<B, 2, Bool>,
    /// Column-side (image) padding `[B, N]`.
    pub y: Tensor<B, 2, Bool>,
}

impl<B: Backend> Padding<B> {
    /// Wraps two padding masks (`[B, M]` and `[B, N]`, `true` = padding).
    pub fn new(x: Tensor<B, 2, Bool>, y: Tensor<B, 2, Bool>) -> Self {
        Self { x, y }
    }

    /// Builds suffix padding from per-example lengths: example `b` keeps its
    /// first `x_len[b]` rows and first `y_len[b]` columns.
    ///
    /// Errors if the two length lists differ in size or a length is outside
    /// `1..=m` (resp. `1..=n`).
    pub fn from_lengths(
        x_len: &[usize],
        m: usize,
        y_len: &[usize],
        n: usize,
        device: &B::Device,
    ) -> Result<Self> {
        if x_len.len() != y_len.len() {
            return Err(shape_err(
                "x lengths vs y lengths",
                &[x_len.len()],
                &[y_len.len()],
            ));
        }
        let x = suffix_mask(x_len, m, "x")?;
        let y = suffix_mask(y_len, n, "y")?;
        let b = x_len.len();
        Ok(Self {
            x: Tensor::from_data(TensorData::new(x, [b, m]), device),
            y: Tensor::from_data(TensorData::new(y, [b, n]), device),
        })
    }

    /// Checks the masks against a `[B, M, N]` problem shape.
    pub(crate) fn check(&self, b: usize, m: usize, n: usize) -> Result<()> {
        let xd = self.x.dims();
        let yd = self.y.dims();
        if xd != [b, m] {
            return Err(shape_err("x padding [B, M]", &[b, m], &xd));
        }
        if yd != [b, n] {
            return Err(shape_err("y padding [B, N]", &[b, n], &yd));
        }
        Ok(())
    }

    /// Reads both masks back to the host (`true` = padding), row-major.
    pub fn to_host(&self) -> Result<(Vec<bool>, Vec<bool>)> {
        Ok((bool_to_host(self.x.clone())?, bool_to_host(self.y.clone())?))
    }
}

/// Suffix padding mask from lengths (`true` = padding), row-major `[B, len]`.
pub(crate) fn suffix_mask(lengths: &[usize], max: usize, side: &'static str) -> Result<Vec<bool>> {
    let mut mask = Vec::with_capacity(lengths.len() * max);
    for (example, &length) in lengths.iter().enumerate() {
        if length == 0 || length > max {
            return Err(OtError::Length {
                side,
                example,
                length,
                max,
            });
        }
        mask.extend((0..max).map(|i| i >= length));
    }
    Ok(mask)
}

/// Reads a float tensor back to the host as `f32`.
///
/// The `+ 0` materialises a fresh, uniquely owned buffer first: some CPU
/// backends (NdArray) fall back to a slow element-by-element copy when the
/// tensor being read shares its storage with a live clone (~25 ns/element,
/// 1.3 ms for a 32 × 40 × 36 cost), whereas the extra element-wise op costs
/// a few microseconds.
pub(crate) fn float_to_host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>> {
    t.add_scalar(0.0)
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| OtError::Data(format!("{e:?}")))
}

/// Reads a bool tensor back to the host.
pub(crate) fn bool_to_host<B: Backend, const D: usize>(t: Tensor<B, D, Bool>) -> Result<Vec<bool>> {
    Ok(t.into_data().iter::<f32>().map(|v| v > 0.5).collect())
}

/// A batch of cost matrices on the host: row-major `[B, M, N]` `f32` values
/// plus padding masks `[B, M]` / `[B, N]` (`true` = padding).
///
/// This is the input of the hand-written CPU solvers
/// ([`crate::ipot::ipot_host`], [`crate::sinkhorn::sinkhorn_host`],
/// [`crate::exact::exact_host`]). Each solver works on the compacted
/// unpadded sub-matrix of every example, so a padded problem gives exactly
/// the plan of the unpadded one.
#[derive(Clone, Debug, PartialEq)]
pub struct CostBatch {
    costs: Vec<f32>,
    batch: usize,
    rows: usize,
    cols: usize,
    x_pad: Vec<bool>,
    y_pad: Vec<bool>,
}

impl CostBatch {
    /// Wraps `B·M·N` row-major costs of shape `[batch, rows, cols]`, no padding.
    ///
    /// Errors if the buffer length does not match the shape, a dimension is
    /// zero, or a cost is not finite.
    pub fn new(costs: Vec<f32>, shape: [usize; 3]) -> Result<Self> {
        let [batch, rows, cols] = shape;
        if costs.len() != batch * rows * cols {
            return Err(shape_err(
                "cost buffer length vs [B, M, N]",
                &[batch * rows * cols],
                &[costs.len()],
            ));
        }
        if rows == 0 || cols == 0 {
            return Err(OtError::EmptyProblem { example: 0 });
        }
        if let Some(pos) = costs.iter().position(|c| !c.is_finite()) {
            return Err(OtError::NonFiniteCost {
                example: pos / (rows * cols),
            });
        }
        Ok(Self {
            costs,
            batch,
            rows,
            cols,
            x_pad: vec![false; batch * rows],
            y_pad: vec![false; batch * cols],
        })
    }

    /// Sets arbitrary padding masks (`[B, M]` and `[B, N]`, `true` = padding).
    ///
    /// Errors on a length mismatch or an example left without a valid row or
    /// column.
    pub fn with_padding(mut self, x_pad: Vec<bool>, y_pad: Vec<bool>) -> Result<Self> {
        if x_pad.len() != self.batch * self.rows {
            return Err(shape_err(
                "x padding [B, M]",
                &[self.batch, self.rows],
                &[x_pad.len()],
            ));
        }
        if y_pad.len() != self.batch * self.cols {
            return Err(shape_err(
                "y padding [B, N]",
                &[self.batch, self.cols],
                &[y_pad.len()],
            ));
        }
        for b in 0..self.batch {
            let xr = &x_pad[b * self.rows..(b + 1) * self.rows];
            let yr = &y_pad[b * self.cols..(b + 1) * self.cols];
            if xr.iter().all(|&p| p) || yr.iter().all(|&p| p) {
                return Err(OtError::EmptyProblem { example: b });
            }
        }
        self.x_pad = x_pad;
        self.y_pad = y_pad;
        Ok(self)
    }

    /// Sets suffix padding from per-example lengths (`1..=M`, `1..=N`).
    pub fn with_lengths(self, x_len: &[usize], y_len: &[usize]) -> Result<Self> {
        if x_len.len() != self.batch {
            return Err(shape_err("x lengths [B]", &[self.batch], &[x_len.len()]));
        }
        if y_len.len() != self.batch {
            return Err(shape_err("y lengths [B]", &[self.batch], &[y_len.len()]));
        }
        let x = suffix_mask(x_len, self.rows, "x")?;
        let y = suffix_mask(y_len, self.cols, "y")?;
        self.with_padding(x, y)
    }

    /// Reads a `[B, M, N]` cost tensor (and optional padding) back to the host.
    pub fn from_tensor<B: Backend>(
        cost: Tensor<B, 3>,
        padding: Option<&Padding<B>>,
    ) -> Result<Self> {
        let [b, m, n] = cost.dims();
        if let Some(p) = padding {
            p.check(b, m, n)?;
        }
        let batch = Self::new(float_to_host(cost)?, [b, m, n])?;
        match padding {
            Some(p) => {
                let (x, y) = p.to_host()?;
                batch.with_padding(x, y)
            }
            None => Ok(batch),
        }
    }

    /// `[B, M, N]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.batch, self.rows, self.cols]
    }

    /// All costs, row-major `[B, M, N]`.
    pub fn costs(&self) -> &[f32] {
        &self.costs
    }

    /// Row padding `[B, M]` (`true` = padding).
    pub fn x_pad(&self) -> &[bool] {
        &self.x_pad
    }

    /// Column padding `[B, N]` (`true` = padding).
    pub fn y_pad(&self) -> &[bool] {
        &self.y_pad
    }

    /// Whether any position of the batch is padded.
    pub fn is_padded(&self) -> bool {
        self.x_pad.iter().chain(&self.y_pad).any(|&p| p)
    }

    /// The `[M, N]` cost matrix of example `b`.
    pub fn example(&self, b: usize) -> &[f32] {
        let mn = self.rows * self.cols;
        &self.costs[b * mn..(b + 1) * mn]
    }

    /// Indices of the unpadded rows and columns of example `b`.
    pub fn valid_indices(&self, b: usize) -> (Vec<usize>, Vec<usize>) {
        let xs = &self.x_pad[b * self.rows..(b + 1) * self.rows];
        let ys = &self.y_pad[b * self.cols..(b + 1) * self.cols];
        (
            (0..self.rows).filter(|&i| !xs[i]).collect(),
            (0..self.cols).filter(|&j| !ys[j]).collect(),
        )
    }

    /// Lengths (number of unpadded rows, columns) of example `b`.
    pub fn lengths(&self, b: usize) -> (usize, usize) {
        let xs = &self.x_pad[b * self.rows..(b + 1) * self.rows];
        let ys = &self.y_pad[b * self.cols..(b + 1) * self.cols];
        (
            xs.iter().filter(|&&p| !p).count(),
            ys.iter().filter(|&&p| !p).count(),
        )
    }

    /// The unpadded sub-matrix of example `b` (row-major `[m_b, n_b]`),
    /// converted with `f`, together with the kept row and column indices.
    pub(crate) fn compact<T>(
        &self,
        b: usize,
        f: impl Fn(f32) -> T,
    ) -> (Vec<T>, Vec<usize>, Vec<usize>) {
        let (rows, cols) = self.valid_indices(b);
        let full = self.example(b);
        let mut out = Vec::with_capacity(rows.len() * cols.len());
        for &i in &rows {
            let row = &full[i * self.cols..(i + 1) * self.cols];
            out.extend(cols.iter().map(|&j| f(row[j])));
        }
        (out, rows, cols)
    }
}

/// Writes a compact `[rows.len(), cols.len()]` plan into a zeroed full
/// `[M, N]` slot at the kept indices.
pub(crate) fn scatter_plan<T: Copy>(
    compact: &[T],
    rows: &[usize],
    cols: &[usize],
    n: usize,
    out: &mut [T],
) {
    let nc = cols.len();
    for (ci, &i) in rows.iter().enumerate() {
        for (cj, &j) in cols.iter().enumerate() {
            out[i * n + j] = compact[ci * nc + cj];
        }
    }
}

/// Host-side plans and distances of a batch, as returned by the CPU solvers.
#[derive(Clone, Debug, PartialEq)]
pub struct HostPlans<T> {
    /// Transport plans, row-major `[B, M, N]`, zero at padded positions.
    pub plans: Vec<T>,
    /// `⟨C, T⟩` per example, `[B]`.
    pub distances: Vec<T>,
    /// `[B, M, N]`.
    pub shape: [usize; 3],
}

impl<T: Copy + Into<f64>> HostPlans<T> {
    /// The `[M, N]` plan of example `b`.
    pub fn plan(&self, b: usize) -> &[T] {
        let mn = self.shape[1] * self.shape[2];
        &self.plans[b * mn..(b + 1) * mn]
    }

    /// Uploads the plans as a `[B, M, N]` tensor (backend float type).
    pub fn plans_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 3> {
        let v: Vec<f32> = self.plans.iter().map(|&x| x.into() as f32).collect();
        Tensor::from_data(TensorData::new(v, self.shape), device)
    }

    /// Uploads the distances as a `[B]` tensor (backend float type).
    pub fn distances_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 1> {
        let v: Vec<f32> = self.distances.iter().map(|&x| x.into() as f32).collect();
        Tensor::from_data(TensorData::new(v, [self.shape[0]]), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    type Nd = burn::backend::NdArray;

    #[test]
    fn lengths_build_suffix_masks_and_reject_out_of_range() {
        let dev = Default::default();
        let p = Padding::<Nd>::from_lengths(&[2, 3], 3, &[1, 2], 2, &dev).unwrap();
        let (x, y) = p.to_host().unwrap();
        assert_eq!(x, vec![false, false, true, false, false, false]);
        assert_eq!(y, vec![false, true, false, false]);
        assert!(matches!(
            Padding::<Nd>::from_lengths(&[4], 3, &[1], 2, &dev),
            Err(OtError::Length {
                side: "x",
                length: 4,
                ..
            })
        ));
        assert!(matches!(
            Padding::<Nd>::from_lengths(&[1], 3, &[0], 2, &dev),
            Err(OtError::Length {
                side: "y",
                length: 0,
                ..
            })
        ));
        assert!(Padding::<Nd>::from_lengths(&[1, 1], 3, &[1], 2, &dev).is_err());
    }

    #[test]
    fn cost_batch_validates_and_compacts() {
        assert!(CostBatch::new(vec![0.0; 5], [1, 2, 3]).is_err());
        assert!(matches!(
            CostBatch::new(vec![0.0, f32::NAN, 0.0, 0.0], [2, 1, 2]),
            Err(OtError::NonFiniteCost { example: 0 })
        ));
        let c: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let batch = CostBatch::new(c, [2, 2, 3]).unwrap();
        assert!(matches!(
            batch
                .clone()
                .with_padding(vec![true, true, false, false], vec![false; 6]),
            Err(OtError::EmptyProblem { example: 0 })
        ));
        let batch = batch.with_lengths(&[2, 1], &[2, 3]).unwrap();
        assert_eq!(batch.lengths(0), (2, 2));
        assert_eq!(batch.lengths(1), (1, 3));
        let (v, rows, cols) = batch.compact(0, |x| x as f64);
        assert_eq!(v, vec![0.0, 1.0, 3.0, 4.0]);
        let mut full = vec![-1.0; 6];
        scatter_plan(&v, &rows, &cols, 3, &mut full);
        assert_eq!(full, vec![0.0, 1.0, -1.0, 3.0, 4.0, -1.0]);
    }
}
