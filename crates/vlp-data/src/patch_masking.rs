//! Masked patch prediction (ViLT): which image patches to hide, and the
//! colour each hidden patch is predicted as.

use burn::tensor::{backend::Backend, Bool, Int, Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::synthetic::RgbImage;
use crate::DataError;

/// Which patches to mask. The model replaces the embeddings of the masked
/// patches (with its mask embedding); this only chooses them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PatchMasking {
    /// Fraction of the patches of an image to predict (ViLT: 0.15).
    pub probability: f64,
    /// Side of the model's square patches in pixels.
    pub patch_size: usize,
}

/// The patch masks of a batch of images and the colour targets of every
/// patch, from the original pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskedPatches {
    /// Patches per image, `P`.
    pub num_patches: usize,
    /// `[N, P]` row-major, `true` at the patches to predict.
    pub mask: Vec<bool>,
    /// `[N, P]` row-major [`patch_rgb_targets`] of the original images.
    pub targets: Vec<[u8; 3]>,
}

impl PatchMasking {
    /// ViLT's setting: 15% of the patches of `patch_size`-pixel patches.
    pub fn vilt(patch_size: usize) -> Self {
        Self {
            probability: 0.15,
            patch_size,
        }
    }

    /// Checks that [`Self::probability`] is a probability; [`Self::apply`]
    /// panics otherwise.
    pub fn validate(&self) -> Result<(), DataError> {
        DataError::check_probabilities(&[("patch mask probability", self.probability)])
    }

    /// Masks of `images` (all of one size) and the colour targets of their
    /// patches. Errors on an invalid probability or a patch size that does
    /// not tile the images.
    pub fn apply_to_images(
        &self,
        images: &[RgbImage],
        rng: &mut ChaCha8Rng,
    ) -> Result<MaskedPatches, DataError> {
        self.validate()?;
        let per_image = images
            .iter()
            .map(|image| patch_rgb_targets(image, self.patch_size))
            .collect::<Result<Vec<_>, _>>()?;
        let num_patches = per_image.first().map_or(0, Vec::len);
        Ok(MaskedPatches {
            num_patches,
            mask: self.apply_batch(images.len(), num_patches, rng),
            targets: per_image.into_iter().flatten().collect(),
        })
    }

    /// `[P]`, `true` at the patches to predict: each patch with
    /// [`Self::probability`], and at least one whenever `num_patches > 0`.
    pub fn apply(&self, num_patches: usize, rng: &mut ChaCha8Rng) -> Vec<bool> {
        let mut mask: Vec<bool> = (0..num_patches)
            .map(|_| rng.random_bool(self.probability))
            .collect();
        if num_patches > 0 && !mask.contains(&true) {
            mask[rng.random_range(0..num_patches)] = true;
        }
        mask
    }

    /// `[B, P]` masks of `batch_size` images, row-major.
    pub fn apply_batch(
        &self,
        batch_size: usize,
        num_patches: usize,
        rng: &mut ChaCha8Rng,
    ) -> Vec<bool> {
        (0..batch_size)
            .flat_map(|_| self.apply(num_patches, rng))
            .collect()
    }
}

/// A `[B, P]` patch mask (as [`PatchMasking::apply_batch`]) on a device.
pub fn patch_mask_to_tensor<B: Backend>(
    mask: &[bool],
    batch_size: usize,
    device: &B::Device,
) -> Tensor<B, 2, Bool> {
    let num_patches = mask.len().checked_div(batch_size).unwrap_or(0);
    // Integers converted to bools, like the other masks of a batch (backends
    // may give `from_data` bools and `bool()` bools different dtypes).
    let values: Vec<i64> = mask.iter().map(|&m| i64::from(m)).collect();
    Tensor::<B, 2, Int>::from_data(TensorData::new(values, [batch_size, num_patches]), device)
        .bool()
}

/// ViLT's masked-patch targets: `[P][3]` the mean R, G, B of each
/// `patch_size × patch_size` patch, row-major over the patch grid, as a bin
/// in `0..256`. ViLT computes `long(255 · mean(x / 255))` in float32, which
/// equals `floor(Σ x / patch_size²)` up to rounding; this is the exact form.
pub fn patch_rgb_targets(image: &RgbImage, patch_size: usize) -> Result<Vec<[u8; 3]>, DataError> {
    if patch_size == 0
        || !image.width.is_multiple_of(patch_size)
        || !image.height.is_multiple_of(patch_size)
    {
        return Err(DataError::PatchSize {
            width: image.width,
            height: image.height,
            patch_size,
        });
    }
    let (columns, rows) = (image.width / patch_size, image.height / patch_size);
    let area = (patch_size * patch_size) as u64;
    let mut targets = Vec::with_capacity(rows * columns);
    for row in 0..rows {
        for column in 0..columns {
            let mut sums = [0u64; 3];
            for y in row * patch_size..(row + 1) * patch_size {
                for x in column * patch_size..(column + 1) * patch_size {
                    for (sum, value) in sums.iter_mut().zip(image.pixel(x, y)) {
                        *sum += u64::from(value);
                    }
                }
            }
            targets.push(sums.map(|sum| (sum / area) as u8));
        }
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use rand::SeedableRng;

    #[test]
    fn invalid_settings_are_named() {
        let error = PatchMasking {
            probability: -0.1,
            patch_size: 2,
        }
        .validate()
        .unwrap_err();
        assert!(
            error.to_string().contains("patch mask probability"),
            "{error}"
        );
    }

    #[test]
    fn masks_at_least_one_patch_at_the_set_rate() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert!(PatchMasking::vilt(2).apply(0, &mut rng).is_empty());
        let (trials, patches, p) = (2000, 16, 0.15);
        let mut masked = 0usize;
        for _ in 0..trials {
            let mask = PatchMasking::vilt(2).apply(patches, &mut rng);
            assert_eq!(mask.len(), patches);
            let count = mask.iter().filter(|&&m| m).count();
            assert!(count >= 1);
            masked += count;
        }
        let n = patches as f64;
        let expected = n * p + (1.0 - p).powf(n);
        let sigma = (n * p * (1.0 - p) / trials as f64).sqrt();
        let mean = masked as f64 / trials as f64;
        assert!(
            (mean - expected).abs() <= 6.0 * sigma,
            "{mean} vs {expected}"
        );

        let batch = PatchMasking::vilt(2).apply_batch(3, 4, &mut rng);
        for row in batch.chunks(4) {
            assert!(row.contains(&true));
        }
        let tensor = patch_mask_to_tensor::<NdArray>(&batch, 3, &Default::default());
        assert_eq!(tensor.dims(), [3, 4]);
        assert_eq!(tensor.into_data().to_vec::<bool>().unwrap(), batch);
    }

    #[test]
    fn targets_are_floored_mean_colours_of_each_patch() {
        // 4×2 image, 2-pixel patches: a left and a right patch.
        #[rustfmt::skip]
        let pixels = vec![
            0, 10, 255,   1, 10, 255,   200, 0, 7,   100, 0, 7,
            0, 11, 255,   2, 10, 254,   0,   0, 7,   100, 1, 8,
        ];
        let image = RgbImage {
            width: 4,
            height: 2,
            pixels,
        };
        // Left: R (0+1+0+2)/4 = 0.75, G 41/4 = 10.25, B 1019/4 = 254.75.
        // Right: R 400/4 = 100, G 1/4, B 29/4 = 7.25.
        assert_eq!(
            patch_rgb_targets(&image, 2).unwrap(),
            [[0, 10, 254], [100, 0, 7]]
        );
        let error = patch_rgb_targets(&image, 3).unwrap_err();
        assert!(error.to_string().contains("4x2"), "{error}");
        assert!(patch_rgb_targets(&image, 0).is_err());
    }
}
