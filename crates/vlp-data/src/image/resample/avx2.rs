//! The two passes of [`resize_region`](super::resize_region) with AVX2:
//! the same fixed-point sums as Pillow's `Resample.c`, eight 32-bit lanes at
//! a time (x86-64's baseline SSE2 has no 32-bit vector multiply, so the
//! portable passes stay scalar). Integer sums do not depend on the order of
//! their additions, so both give the same bytes (tested below).

use std::arch::x86_64::*;
use std::ops::Range;

use super::{clip8, Taps, HALF, PRECISION_BITS};
use crate::synthetic::RgbImage;

/// `(sum >> PRECISION_BITS).clamp(0, 255)` of four lanes, as the low four
/// bytes: Pillow's `clip8` (the saturating packs clamp).
#[inline]
#[target_feature(enable = "avx2")]
fn clip8x4(sum: __m128i) -> u32 {
    let shifted = _mm_srai_epi32::<{ PRECISION_BITS as i32 }>(sum);
    let bytes = _mm_packus_epi16(_mm_packs_epi32(shifted, shifted), _mm_setzero_si128());
    _mm_cvtsi128_si32(bytes) as u32
}

/// The horizontal pass (`horizontal_pass`): each input row is widened to
/// four bytes a pixel (as Pillow stores RGB), and two taps of an output
/// pixel are one 8-lane multiply-add.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn horizontal(image: &RgbImage, columns: &Taps, rows: Range<usize>) -> Vec<u8> {
    let out_width = columns.first.len();
    let pairs = columns.width.div_ceil(2);
    // Per output pixel, its weights with each repeated over the four lanes
    // of a pixel (the odd tap's partner weighs 0).
    let mut lanes = vec![0i32; out_width * pairs * 8];
    for (x, out) in lanes.chunks_exact_mut(pairs * 8).enumerate() {
        for (lane, &w) in out.chunks_exact_mut(4).zip(columns.of(x).1) {
            lane.fill(w);
        }
    }
    // One input row as RGBX, with zero pixels past its end for the last
    // taps' loads (their weights are 0).
    let mut wide = vec![0u8; (image.width + 2 * pairs) * 4];
    // RGB to RGBX, four pixels (12 bytes of 16 loaded) at a time.
    let spread = _mm_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
    let line_bytes = out_width * 3;
    // One byte of slack: every pixel is stored as four bytes, the fourth
    // overwritten by the next pixel's.
    let mut out = vec![0u8; rows.len() * line_bytes + 1];
    for y in 0..rows.len() {
        let input = &image.pixels[(rows.start + y) * image.width * 3..][..image.width * 3];
        let groups = input.len().saturating_sub(4) / 12;
        for (g, pixels) in wide.chunks_exact_mut(16).take(groups).enumerate() {
            let bytes = &input[g * 12..][..16];
            // SAFETY: `bytes` and `pixels` hold 16 bytes (unaligned).
            unsafe {
                let rgb = _mm_loadu_si128(bytes.as_ptr().cast());
                _mm_storeu_si128(pixels.as_mut_ptr().cast(), _mm_shuffle_epi8(rgb, spread));
            }
        }
        let rest = input.chunks_exact(3).skip(groups * 4);
        for (pixel, rgb) in wide.chunks_exact_mut(4).skip(groups * 4).zip(rest) {
            pixel[..3].copy_from_slice(rgb);
        }
        let line = &mut out[y * line_bytes..][..line_bytes + 1];
        for x in 0..out_width {
            // `first < image.width`, so both slices are in bounds.
            let source = &wide[columns.first[x] * 4..][..pairs * 8];
            let weights = &lanes[x * pairs * 8..][..pairs * 8];
            let mut acc = _mm256_setzero_si256();
            for (bytes, w) in source.chunks_exact(8).zip(weights.chunks_exact(8)) {
                // SAFETY: `bytes` holds 8 bytes and `w` 8 i32 (unaligned loads).
                let (p, w) = unsafe {
                    (
                        _mm_loadl_epi64(bytes.as_ptr().cast()),
                        _mm256_loadu_si256(w.as_ptr().cast()),
                    )
                };
                acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(p), w));
            }
            let both = _mm256_extracti128_si256::<1>(acc);
            let sum = _mm_add_epi32(_mm256_castsi256_si128(acc), both);
            let rgbx = clip8x4(_mm_add_epi32(sum, _mm_set1_epi32(HALF)));
            line[x * 3..][..4].copy_from_slice(&rgbx.to_le_bytes());
        }
    }
    out.pop();
    out
}

/// The vertical pass (`vertical_pass`): eight bytes of an output row at a
/// time, every tap's row multiplied in one 8-lane multiply-add.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn vertical(
    horizontal: &[u8],
    stride: usize,
    rows: &Taps,
    row_start: usize,
) -> Vec<u8> {
    let available = horizontal.len() / stride;
    let mut pixels = vec![0u8; rows.first.len() * stride];
    let vectors = stride / 8;
    for (y, line) in pixels.chunks_exact_mut(stride).enumerate() {
        let (first, weights) = rows.of(y);
        let first = first - row_start;
        // The zero-padded taps may point past the last row: leave them out.
        let weights = &weights[..weights.len().min(available - first)];
        let input = &horizontal[first * stride..][..weights.len() * stride];
        for (v, out) in line.chunks_exact_mut(8).enumerate() {
            let mut acc = _mm256_set1_epi32(HALF);
            for (row, &w) in input.chunks_exact(stride).zip(weights) {
                let bytes = &row[v * 8..][..8];
                // SAFETY: `bytes` holds 8 bytes (unaligned load).
                let p = unsafe { _mm_loadl_epi64(bytes.as_ptr().cast()) };
                let product = _mm256_mullo_epi32(_mm256_cvtepu8_epi32(p), _mm256_set1_epi32(w));
                acc = _mm256_add_epi32(acc, product);
            }
            let low = clip8x4(_mm256_castsi256_si128(acc));
            let high = clip8x4(_mm256_extracti128_si256::<1>(acc));
            out[..4].copy_from_slice(&low.to_le_bytes());
            out[4..].copy_from_slice(&high.to_le_bytes());
        }
        for (i, value) in line.iter_mut().enumerate().skip(vectors * 8) {
            let column = input.chunks_exact(stride).map(|row| row[i] as i32);
            *value = clip8(HALF + column.zip(weights).map(|(p, &w)| w * p).sum::<i32>());
        }
    }
    pixels
}

#[cfg(test)]
mod tests {
    use super::super::{horizontal_pass, vertical_pass, Taps};
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Both passes give the portable passes' bytes, shrinking and
    /// enlarging, on whole images and on windows of them.
    #[test]
    fn the_avx2_passes_give_the_portable_bytes() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..40 {
            let (width, height) = (rng.random_range(1..90), rng.random_range(1..90));
            let pixels = (0..width * height * 3).map(|_| rng.random()).collect();
            let image = RgbImage {
                width,
                height,
                pixels,
            };
            let (out_width, out_height) = (rng.random_range(1..120), rng.random_range(1..120));
            let left = rng.random_range(0..out_width);
            let top = rng.random_range(0..out_height);
            let window = (left, rng.random_range(1..=out_width - left));
            let columns = Taps::new(0, width, out_width, window);
            let window = (top, rng.random_range(1..=out_height - top));
            let rows = Taps::new(0, height, out_height, window);
            let (start, end) = rows.span(height);
            let portable = horizontal_pass(&image, &columns, start..end);
            // SAFETY: AVX2 is present, checked above.
            let fast = unsafe { horizontal(&image, &columns, start..end) };
            assert_eq!(
                fast, portable,
                "{width}x{height} -> {out_width}x{out_height}"
            );
            let stride = columns.first.len() * 3;
            let expected = vertical_pass(&portable, stride, &rows, start);
            // SAFETY: as above.
            assert_eq!(
                unsafe { vertical(&portable, stride, &rows, start) },
                expected
            );
        }
    }
}
