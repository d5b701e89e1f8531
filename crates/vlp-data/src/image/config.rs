//! Settings of the image pipeline, after the anchors' preprocessing: CLIP
//! and BLIP pre-train at 224 pixels; evaluation resizes the shorter side to
//! 256 and centre-crops 224 (the ImageNet recipe torchvision's and timm's
//! ViTs are evaluated with, crop fraction 0.875); training takes
//! torchvision's `RandomResizedCrop` with BLIP's `min_scale` 0.5 and
//! `RandomHorizontalFlip(0.5)` (ALBEF, BLIP); CLIP's statistics (CLIP,
//! ALBEF, BLIP, open_clip).

use burn::config::Config;

use super::crop::RandomResizedCrop;
use super::normalize::Normalization;
use super::pipeline::ImagePipeline;
use crate::error::DataError;

/// Configuration of an [`ImagePipeline`]: decoded images to square
/// `image_size` crops, normalised, in training mode (random resized crop and
/// flip) or evaluation mode (resize and centre crop). One configuration
/// serves both modes of a model, as one `image_res` does in ALBEF and BLIP.
#[derive(Config, Debug)]
pub struct ImageTransformConfig {
    /// Side of the square output in pixels (CLIP ViT-B, BLIP pre-training: 224).
    #[config(default = 224)]
    pub image_size: usize,
    /// Evaluation: the shorter side is resized to this before the centre
    /// crop; at least `image_size` (256 for 224: the ImageNet recipe).
    #[config(default = 256)]
    pub resize_to: usize,
    /// Training: range of the crop's area as a fraction of the image's,
    /// `(min, max)` with `0 < min <= max`. `(0.5, 1.0)` is BLIP's default
    /// `min_scale`: crops keep most of the objects a caption names (ALBEF
    /// and BLIP pre-training use 0.2, torchvision's ImageNet default 0.08
    /// loses them more often).
    #[config(default = "(0.5, 1.0)")]
    pub scale: (f64, f64),
    /// Training: range of the crop's width / height, `(min, max)` with
    /// `0 < min <= max` (torchvision's `(3/4, 4/3)`).
    #[config(default = "(0.75, 4.0 / 3.0)")]
    pub ratio: (f64, f64),
    /// Training: probability of a horizontal flip (which swaps "left" and
    /// "right" in the caption); torchvision's and ALBEF/BLIP's 0.5.
    #[config(default = 0.5)]
    pub flip_probability: f64,
    /// Statistics of the per-channel normalisation (`"imagenet"`, `"clip"`
    /// or `"inception"`).
    #[config(default = "Normalization::Clip")]
    pub normalization: Normalization,
}

impl ImageTransformConfig {
    /// Checks the settings and builds the pipeline.
    ///
    /// # Errors
    /// [`DataError::ImageTransform`] naming a size or range out of bounds,
    /// [`DataError::Probability`] for `flip_probability`.
    pub fn init(&self) -> Result<ImagePipeline, DataError> {
        self.validate()?;
        Ok(ImagePipeline::new(self.clone()))
    }

    /// Checks the settings (see [`init`](Self::init)).
    ///
    /// # Errors
    /// As [`init`](Self::init).
    pub fn validate(&self) -> Result<(), DataError> {
        let error = |key, reason: String| Err(DataError::ImageTransform { key, reason });
        if self.image_size == 0 {
            return error("image_size", "is 0".to_string());
        }
        if self.resize_to < self.image_size {
            return error(
                "resize_to",
                format!(
                    "is {}, less than image_size {}",
                    self.resize_to, self.image_size
                ),
            );
        }
        for (key, (min, max)) in [("scale", self.scale), ("ratio", self.ratio)] {
            if !(min.is_finite() && max.is_finite() && 0.0 < min && min <= max) {
                return error(key, format!("is ({min}, {max}), not 0 < min <= max"));
            }
        }
        DataError::check_probabilities(&[("flip_probability", self.flip_probability)])
    }

    /// The training crop's ranges.
    pub(crate) fn random_crop(&self) -> RandomResizedCrop {
        RandomResizedCrop {
            scale: self.scale,
            ratio: self.ratio,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_settings_are_named() {
        assert!(ImageTransformConfig::new().init().is_ok());
        let key_of = |config: ImageTransformConfig| match config.validate() {
            Err(DataError::ImageTransform { key, .. }) => key,
            Err(DataError::Probability { name, .. }) => name,
            other => panic!("{other:?}"),
        };
        let config = ImageTransformConfig::new;
        assert_eq!(key_of(config().with_image_size(0)), "image_size");
        assert_eq!(key_of(config().with_resize_to(100)), "resize_to");
        assert_eq!(key_of(config().with_scale((0.0, 1.0))), "scale");
        assert_eq!(key_of(config().with_scale((0.8, 0.5))), "scale");
        assert_eq!(key_of(config().with_ratio((0.75, f64::NAN))), "ratio");
        assert_eq!(
            key_of(config().with_flip_probability(1.5)),
            "flip_probability"
        );
    }

    #[test]
    fn names_the_normalisation_in_lower_case() {
        let config = ImageTransformConfig::new().with_normalization(Normalization::Imagenet);
        let json = serde_json::to_string(&config).unwrap();
        assert!(json.contains(r#""normalization":"imagenet""#), "{json}");
        let back: ImageTransformConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back.normalization, Normalization::Imagenet);
    }
}
