//! Crop boxes of torchvision's transforms: `Resize(int)`'s output size (the
//! shorter side set, the longer one scaled and truncated), `CenterCrop`'s
//! box (Python's round-half-to-even offsets) and `RandomResizedCrop.get_params`
//! (Szegedy et al. 2015's "Inception" crop: an area fraction and a log-uniform
//! aspect ratio, 10 attempts, then a centre crop clamped to the ratio range).

use rand::Rng;

/// A rectangle of pixels: columns `[left, left + width)`, rows
/// `[top, top + height)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    /// First column.
    pub left: usize,
    /// First row.
    pub top: usize,
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
}

impl CropBox {
    /// The whole of a `width × height` image.
    pub fn whole(width: usize, height: usize) -> CropBox {
        CropBox {
            left: 0,
            top: 0,
            width,
            height,
        }
    }
}

/// The `(width, height)` that torchvision's `Resize(size)` gives a
/// `width × height` image: the shorter side becomes `size`, the longer one
/// `int(size * long / short)`.
pub fn shorter_side_size(width: usize, height: usize, size: usize) -> (usize, usize) {
    let (short, long) = (width.min(height), width.max(height));
    let new_long = (size as f64 * long as f64 / short as f64) as usize;
    if width <= height {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

/// torchvision's `CenterCrop(size)` box in a `width × height` image
/// (`size` at most each side): offsets `round((side - size) / 2)`, halves
/// rounded to even as Python's `round` does.
pub fn center_crop_box(width: usize, height: usize, size: usize) -> CropBox {
    let offset = |side: usize| ((side - size) as f64 / 2.0).round_ties_even() as usize;
    CropBox {
        left: offset(width),
        top: offset(height),
        width: size,
        height: size,
    }
}

/// The ranges of torchvision's `RandomResizedCrop`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomResizedCrop {
    /// Range of the crop's area as a fraction of the image's, `(min, max)`.
    pub scale: (f64, f64),
    /// Range of the crop's width / height, `(min, max)`, drawn log-uniformly.
    pub ratio: (f64, f64),
}

/// Attempts before [`RandomResizedCrop::draw`] falls back to a centre crop.
pub const RANDOM_CROP_ATTEMPTS: usize = 10;

impl RandomResizedCrop {
    /// A crop box of a `width × height` image (both at least 1), as
    /// torchvision's `get_params`: up to [`RANDOM_CROP_ATTEMPTS`] times draw
    /// an area `width * height * U(scale)` and a ratio `exp(U(ln ratio))`,
    /// round the sides half to even and keep the first box that fits, at a
    /// uniform position; else the largest centred box whose ratio is in
    /// range (at least one pixel each way).
    ///
    /// Draws (per attempt): two `f64`s, then two positions once a box fits.
    pub fn draw(&self, width: usize, height: usize, rng: &mut impl Rng) -> CropBox {
        let area = (width * height) as f64;
        let log_ratio = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..RANDOM_CROP_ATTEMPTS {
            let target_area = area * uniform(self.scale, rng);
            let aspect = uniform(log_ratio, rng).exp();
            let w = (target_area * aspect).sqrt().round_ties_even() as usize;
            let h = (target_area / aspect).sqrt().round_ties_even() as usize;
            if (1..=width).contains(&w) && (1..=height).contains(&h) {
                return CropBox {
                    top: rng.random_range(0..=height - h),
                    left: rng.random_range(0..=width - w),
                    width: w,
                    height: h,
                };
            }
        }
        let in_ratio = width as f64 / height as f64;
        let (w, h) = if in_ratio < self.ratio.0 {
            (
                width,
                (width as f64 / self.ratio.0).round_ties_even() as usize,
            )
        } else if in_ratio > self.ratio.1 {
            (
                (height as f64 * self.ratio.1).round_ties_even() as usize,
                height,
            )
        } else {
            (width, height)
        };
        let (w, h) = (w.clamp(1, width), h.clamp(1, height));
        CropBox {
            left: (width - w) / 2,
            top: (height - h) / 2,
            width: w,
            height: h,
        }
    }
}

/// `U(low, high)` as torch's `uniform_` draws it (an empty range is its
/// one value, where `rand`'s ranges would panic).
fn uniform((low, high): (f64, f64), rng: &mut impl Rng) -> f64 {
    low + (high - low) * rng.random::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn resize_sets_the_shorter_side_and_truncates_the_longer() {
        assert_eq!(shorter_side_size(640, 480, 256), (341, 256));
        assert_eq!(shorter_side_size(480, 640, 256), (256, 341));
        assert_eq!(shorter_side_size(9, 13, 20), (20, 28));
        assert_eq!(shorter_side_size(300, 300, 256), (256, 256));
    }

    #[test]
    fn center_crop_rounds_half_offsets_to_even() {
        // (21 - 14) / 2 = 3.5 -> 4; (16 - 14) / 2 = 1; (19 - 14) / 2 = 2.5 -> 2.
        let crop = center_crop_box(21, 16, 14);
        assert_eq!((crop.left, crop.top), (4, 1));
        assert_eq!(center_crop_box(19, 14, 14).left, 2);
        assert_eq!(center_crop_box(14, 14, 14), CropBox::whole(14, 14));
    }

    #[test]
    fn random_crops_stay_inside_with_area_and_ratio_in_range() {
        let crop = RandomResizedCrop {
            scale: (0.25, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (width, height) = (120, 90);
        let mut fallbacks = 0;
        for _ in 0..500 {
            let crop_box = crop.draw(width, height, &mut rng);
            assert!(crop_box.left + crop_box.width <= width, "{crop_box:?}");
            assert!(crop_box.top + crop_box.height <= height, "{crop_box:?}");
            let area = (crop_box.width * crop_box.height) as f64 / (width * height) as f64;
            let ratio = crop_box.width as f64 / crop_box.height as f64;
            // Rounding each side to a whole pixel moves area and ratio a little.
            let slack = 1.0 / crop_box.height.min(crop_box.width) as f64;
            assert!(area >= 0.25 * (1.0 - 2.0 * slack) - 1e-9, "{crop_box:?}");
            assert!(area <= 1.0, "{crop_box:?}");
            assert!(ratio >= 0.75 * (1.0 - 2.0 * slack), "{crop_box:?}");
            assert!(ratio <= 4.0 / 3.0 * (1.0 + 2.0 * slack), "{crop_box:?}");
            fallbacks += usize::from(crop_box == CropBox::whole(width, height));
        }
        // Whole-image boxes are rare draws (area near 1 and ratio 4/3).
        assert!(fallbacks < 25, "{fallbacks}");
    }

    /// An image far outside the ratio range makes every attempt fail: the
    /// fallback is the centred box of the extreme ratio (torchvision's).
    #[test]
    fn a_very_wide_image_falls_back_to_a_centred_ratio_clamped_box() {
        let crop = RandomResizedCrop {
            scale: (0.9, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        // Area 0.9 * 1000 * 10 needs h >= 82 rows at ratio 4/3: never fits.
        let crop_box = crop.draw(1000, 10, &mut rng);
        assert_eq!(
            crop_box,
            CropBox {
                left: (1000 - 13) / 2,
                top: 0,
                width: 13,
                height: 10
            }
        );
        let tall = crop.draw(1, 50, &mut rng);
        assert_eq!((tall.width, tall.height, tall.top), (1, 1, 24));
    }

    #[test]
    fn the_same_generator_state_draws_the_same_box() {
        let crop = RandomResizedCrop {
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        };
        let draw = |seed| crop.draw(64, 48, &mut ChaCha8Rng::seed_from_u64(seed));
        assert_eq!(draw(7), draw(7));
        assert!((0..8).map(draw).any(|other| other != draw(7)));
    }
}
