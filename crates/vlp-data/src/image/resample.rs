//! Bilinear resizing exactly as Pillow computes `Image.resize(size,
//! Image.BILINEAR)` (libImaging/Resample.c), which is what torchvision's
//! `Resize`, `CenterCrop` after it and `RandomResizedCrop` run on PIL
//! images: a separable triangle filter whose support widens by the shrink
//! factor (so shrinking is antialiased), weights in fixed point with 22
//! fractional bits, a horizontal pass rounded to 8 bits, then a vertical one.
//! On x86-64 CPUs with AVX2 both passes run vectorised (`avx2.rs`; the same
//! bytes, tested against the portable passes).

use std::ops::Range;

use super::crop::CropBox;
use crate::synthetic::RgbImage;

#[cfg(target_arch = "x86_64")]
mod avx2;

/// Fractional bits of Pillow's fixed-point weights (`PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The filter taps of the output pixels of one axis.
struct Taps {
    /// Per output pixel, its first input index (absolute in the image).
    first: Vec<usize>,
    /// Per output pixel, `width` fixed-point weights (zero-padded).
    weights: Vec<i32>,
    /// Taps per output pixel.
    width: usize,
}

impl Taps {
    /// Taps resizing the input span `[offset, offset + in_size)` to
    /// `out_size` pixels, for the outputs `window.0 .. window.0 + window.1`.
    fn new(offset: usize, in_size: usize, out_size: usize, window: (usize, usize)) -> Taps {
        let scale = in_size as f64 / out_size as f64;
        let filter_scale = scale.max(1.0);
        let inverse_scale = 1.0 / filter_scale;
        // The triangle filter's support is 1 input pixel, widened when shrinking.
        let support = filter_scale;
        let width = support.ceil() as usize * 2 + 1;
        let mut taps = Taps {
            first: Vec::with_capacity(window.1),
            weights: vec![0; window.1 * width],
            width,
        };
        let mut float_weights = vec![0f64; width];
        for (o, out) in (window.0..window.0 + window.1).enumerate() {
            let center = (out as f64 + 0.5) * scale;
            // C's `(int)` truncation, then clamped to the span.
            let min = ((center - support + 0.5) as i64).max(0) as usize;
            let max = ((center + support + 0.5) as i64).clamp(0, in_size as i64) as usize;
            let count = max.saturating_sub(min);
            let mut total = 0.0;
            for (k, weight) in float_weights[..count].iter_mut().enumerate() {
                let x = ((k + min) as f64 - center + 0.5) * inverse_scale;
                *weight = (1.0 - x.abs()).max(0.0);
                total += *weight;
            }
            let row = &mut taps.weights[o * width..o * width + count];
            for (fixed, &weight) in row.iter_mut().zip(&float_weights[..count]) {
                let weight = if total != 0.0 { weight / total } else { weight };
                // Triangle weights are never negative: Pillow's rounding for them.
                *fixed = (0.5 + weight * (1u32 << PRECISION_BITS) as f64) as i32;
            }
            taps.first.push(offset + min);
        }
        taps
    }

    /// Output `o`'s first input index and weights.
    fn of(&self, o: usize) -> (usize, &[i32]) {
        (
            self.first[o],
            &self.weights[o * self.width..(o + 1) * self.width],
        )
    }

    /// The input indices any output reads: `[start, end)`.
    fn span(&self, in_limit: usize) -> (usize, usize) {
        let start = self.first.iter().copied().min().unwrap_or(0);
        let end = self
            .first
            .iter()
            .map(|&first| (first + self.width).min(in_limit))
            .max()
            .unwrap_or(0);
        (start, end)
    }
}

/// Pillow's rounding offset of a fixed-point sum (one half).
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// A fixed-point sum (started at [`HALF`]) back to 8 bits: Pillow's `clip8`.
/// Sums are `i32` as in Pillow: the weights add up to about `2^22`, so a sum
/// of 8-bit samples stays below `2^31`.
fn clip8(sum: i32) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes the region `source` of `image` to `out_width × out_height` and
/// returns the part `window` of the result (`window` inside
/// `[0, out_width) × [0, out_height)`): the same pixels as Pillow's
/// `image.crop(source).resize((out_width, out_height), BILINEAR).crop(window)`,
/// computing only the window.
///
/// `source` and `window` must be non-empty and inside their images (the
/// crop functions of this module only make such boxes).
pub fn resize_region(
    image: &RgbImage,
    source: CropBox,
    out_width: usize,
    out_height: usize,
    window: CropBox,
) -> RgbImage {
    let columns = Taps::new(
        source.left,
        source.width,
        out_width,
        (window.left, window.width),
    );
    let rows = Taps::new(
        source.top,
        source.height,
        out_height,
        (window.top, window.height),
    );
    let (row_start, row_end) = rows.span(source.top + source.height);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        let pixels = unsafe {
            let horizontal = avx2::horizontal(image, &columns, row_start..row_end);
            avx2::vertical(&horizontal, window.width * 3, &rows, row_start)
        };
        return RgbImage {
            width: window.width,
            height: window.height,
            pixels,
        };
    }
    let horizontal = horizontal_pass(image, &columns, row_start..row_end);
    RgbImage {
        width: window.width,
        height: window.height,
        pixels: vertical_pass(&horizontal, window.width * 3, &rows, row_start),
    }
}

/// The horizontal pass: input rows `rows`, each resized by `columns` to
/// `columns.first.len()` RGB pixels, rounded to 8 bits.
fn horizontal_pass(image: &RgbImage, columns: &Taps, rows: Range<usize>) -> Vec<u8> {
    let out_width = columns.first.len();
    let mut horizontal = vec![0u8; rows.len() * out_width * 3];
    for (y, line) in horizontal.chunks_exact_mut(out_width * 3).enumerate() {
        let input = &image.pixels[(rows.start + y) * image.width * 3..][..image.width * 3];
        for (x, out) in line.chunks_exact_mut(3).enumerate() {
            let (first, weights) = columns.of(x);
            let mut sums = [HALF; 3];
            for (&w, rgb) in weights.iter().zip(input[first * 3..].chunks_exact(3)) {
                for (sum, &p) in sums.iter_mut().zip(rgb) {
                    *sum += w * p as i32;
                }
            }
            for (value, &sum) in out.iter_mut().zip(&sums) {
                *value = clip8(sum);
            }
        }
    }
    horizontal
}

/// The vertical pass over the horizontal pass's rows (`stride` bytes each,
/// the first being input row `row_start`), a whole output row at a time
/// (integer sums: the order of additions does not change them).
fn vertical_pass(horizontal: &[u8], stride: usize, rows: &Taps, row_start: usize) -> Vec<u8> {
    let mut pixels = vec![0u8; rows.first.len() * stride];
    let mut sums = vec![0i32; stride];
    for (y, line) in pixels.chunks_exact_mut(stride).enumerate() {
        let (first, weights) = rows.of(y);
        sums.fill(HALF);
        let input = horizontal[(first - row_start) * stride..].chunks_exact(stride);
        for (&w, row) in weights.iter().zip(input) {
            for (sum, &p) in sums.iter_mut().zip(row) {
                *sum += w * p as i32;
            }
        }
        for (value, &sum) in line.iter_mut().zip(&sums) {
            *value = clip8(sum);
        }
    }
    pixels
}

#[cfg(test)]
mod tests {
    use super::super::crop::{center_crop_box, shorter_side_size};
    use super::super::decode::decode;
    use super::*;
    use vlp_test_support::fixtures::f64s;
    use vlp_test_support::{fixture, fixture_path};

    fn fixture_image(name: &str) -> RgbImage {
        let bytes = std::fs::read(fixture_path!(format!("images/{name}"))).unwrap();
        decode(&bytes, name).unwrap()
    }

    fn max_difference(got: &RgbImage, expected: &serde_json::Value) -> f64 {
        let expected = f64s(expected);
        assert_eq!(got.pixels.len(), expected.len());
        got.pixels
            .iter()
            .zip(expected)
            .map(|(&g, e)| (g as f64 - e).abs())
            .fold(0.0, f64::max)
    }

    /// torchvision's eval recipe on PIL (resize the shorter side, centre
    /// crop), shrinking and enlarging: measured max difference 0 levels
    /// (the same fixed-point arithmetic as Pillow).
    #[test]
    fn resize_and_center_crop_match_pil() {
        let reference = fixture!("image_reference.json");
        for case in reference["eval"].as_array().unwrap() {
            let image = fixture_image(case["file"].as_str().unwrap());
            let resize_to = case["resize_to"].as_u64().unwrap() as usize;
            let crop = case["crop"].as_u64().unwrap() as usize;
            let (width, height) = shorter_side_size(image.width, image.height, resize_to);
            let window = center_crop_box(width, height, crop);
            let out = resize_region(
                &image,
                CropBox::whole(image.width, image.height),
                width,
                height,
                window,
            );
            assert_eq!((out.width, out.height), (crop, crop));
            let difference = max_difference(&out, &case["pixels"]);
            assert!(difference <= 0.0, "{case:?}: max difference {difference}");
        }
    }

    /// torchvision's `resized_crop` (what `RandomResizedCrop` runs once its
    /// box is drawn): measured max difference 0 levels.
    #[test]
    fn resized_crop_matches_pil() {
        let reference = fixture!("image_reference.json");
        let case = &reference["resized_crop"];
        let at = |key: &str| case[key].as_u64().unwrap() as usize;
        let image = fixture_image("noise.png");
        let source = CropBox {
            left: at("left"),
            top: at("top"),
            width: at("width"),
            height: at("height"),
        };
        let size = at("size");
        let out = resize_region(&image, source, size, size, CropBox::whole(size, size));
        assert_eq!(max_difference(&out, &case["pixels"]), 0.0);
    }

    #[test]
    fn same_size_is_the_identity_and_a_window_is_a_crop_of_the_whole() {
        let image = fixture_image("small.png");
        let whole = CropBox::whole(image.width, image.height);
        assert_eq!(
            resize_region(&image, whole, image.width, image.height, whole),
            image
        );
        let full = resize_region(&image, whole, 7, 11, CropBox::whole(7, 11));
        let window = CropBox {
            left: 2,
            top: 3,
            width: 4,
            height: 5,
        };
        let part = resize_region(&image, whole, 7, 11, window);
        for y in 0..5 {
            for x in 0..4 {
                assert_eq!(part.pixel(x, y), full.pixel(x + 2, y + 3));
            }
        }
    }
}
