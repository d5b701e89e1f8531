//! Fixed sinusoidal positions (Vaswani et al. 2017, §3.5; the survey's
//! §2.1.3 lists them beside BERT's learned table):
//! `PE(pos, 2i) = sin(pos / 10000^(2i/d))`, `PE(pos, 2i+1) = cos(pos / 10000^(2i/d))`.

use std::ops::Range;

use burn::prelude::*;
use burn::tensor::TensorData;

/// The sinusoid table rows `positions` of width `width` → `[positions.len(), width]`.
///
/// Column `2i` is `sin(pos / 10000^(2i/width))` and column `2i + 1` its
/// cosine at the same frequency; an odd `width` ends on a sine column.
/// Computed in `f64` on the host, then stored as `f32`: a constant, never a
/// parameter (the tensor does not require a gradient on any backend).
pub fn sinusoidal_positions<B: Backend>(
    positions: Range<usize>,
    width: usize,
    device: &B::Device,
) -> Tensor<B, 2> {
    let rows = positions.len();
    let values: Vec<f32> = positions
        .flat_map(|pos| {
            (0..width).map(move |column| {
                let pair = (column - column % 2) as f64;
                let angle = pos as f64 / 10_000f64.powf(pair / width as f64);
                if column.is_multiple_of(2) {
                    angle.sin() as f32
                } else {
                    angle.cos() as f32
                }
            })
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [rows, width]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};

    /// The closed form in the exp-log spelling PyTorch's tutorials use:
    /// `pos · exp(-ln(10000) · 2i / d)` for columns `2i` and `2i + 1`.
    fn closed_form(pos: usize, column: usize, width: usize) -> f64 {
        let i = column / 2;
        let angle = pos as f64 * (-(10_000f64.ln()) * (2 * i) as f64 / width as f64).exp();
        if column.is_multiple_of(2) {
            angle.sin()
        } else {
            angle.cos()
        }
    }

    #[test]
    fn matches_the_closed_form_for_even_and_odd_widths() {
        let device = Default::default();
        for width in [8, 5] {
            let table = sinusoidal_positions::<NdArray>(3..10, width, &device);
            assert_eq!(table.dims(), [7, width]);
            let values: Vec<f32> = table.into_data().to_vec().unwrap();
            for (row, pos) in (3..10).enumerate() {
                for column in 0..width {
                    let expected = closed_form(pos, column, width);
                    let got = values[row * width + column] as f64;
                    assert!(
                        (got - expected).abs() < 1e-6,
                        "PE({pos}, {column}) of d = {width}"
                    );
                }
            }
        }
        // Position 0: sines 0, cosines 1; an odd width ends on a sine.
        let first: Vec<f32> = sinusoidal_positions::<NdArray>(0..1, 5, &device)
            .into_data()
            .to_vec()
            .unwrap();
        assert_eq!(first, [0.0, 1.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn is_a_constant_on_an_autodiff_backend() {
        let table = sinusoidal_positions::<Autodiff<NdArray>>(0..4, 6, &Default::default());
        assert!(!table.is_require_grad());
    }
}
