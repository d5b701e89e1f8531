//! Image files to model input, as the anchors' loaders do it with PIL and
//! torchvision (CLIP's `_transform`, ALBEF/BLIP's `transform_train` and
//! `transform_test`): decode JPEG, PNG or WebP to 8-bit RGB
//! ([`decode`](decode())), resize and crop (evaluation: shorter side to
//! `resize_to`, centre crop; training: `RandomResizedCrop`, then a flip that
//! swaps "left" and "right" in the caption), normalise with ImageNet, CLIP
//! or Inception statistics, and batch in parallel into `[N, 3, S, S]`
//! tensors. Resizing is Pillow's bilinear filter, bit for bit.
//!
//! Every random draw of sample `i` comes from [`sample_rng`]`(seed, epoch, i)`,
//! so batches are the same on any number of threads; a corrupt or missing
//! image is skipped and reported ([`SkippedImage`]), and [`decode`](decode())
//! refuses images past [`MAX_IMAGE_PIXELS`] before allocating them.
//!
//! ```
//! use vlp_data::image::{decode, ImageSample, ImageSource, ImageTransformConfig, TransformMode};
//!
//! // A 64x48 PNG, written with the `image` crate.
//! let mut png = Vec::new();
//! ::image::RgbImage::from_fn(64, 48, |x, y| ::image::Rgb([x as u8 * 4, y as u8 * 5, 128]))
//!     .write_to(&mut std::io::Cursor::new(&mut png), ::image::ImageFormat::Png)?;
//! let decoded = decode(&png, "generated.png")?;
//! assert_eq!((decoded.width, decoded.height), (64, 48));
//!
//! let pipeline = ImageTransformConfig::new().with_image_size(32).with_resize_to(36).init()?;
//! let samples = [ImageSample {
//!     index: 0,
//!     image: ImageSource::Bytes { bytes: &png, origin: "generated.png" },
//!     caption: "a gradient left of nothing",
//! }];
//! let train = TransformMode::Train { seed: 1, epoch: 0 };
//! let batch = pipeline.batch::<burn::backend::NdArray>(&samples, train, &Default::default());
//! println!("{:?} {:?}", batch.images.dims(), batch.captions);
//! assert_eq!(batch.images.dims(), [1, 3, 32, 32]);
//! assert!(batch.skipped.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod crop;
mod decode;
mod flip;
mod normalize;
mod pipeline;
mod resample;

pub use config::ImageTransformConfig;
pub use crop::{
    center_crop_box, shorter_side_size, CropBox, RandomResizedCrop, RANDOM_CROP_ATTEMPTS,
};
pub use decode::{decode, decode_file, MAX_DECODE_BYTES, MAX_IMAGE_PIXELS};
pub use flip::{flip_horizontal, swap_left_right};
pub use normalize::{
    Normalization, CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, INCEPTION_MEAN, INCEPTION_STD,
};
pub use pipeline::{
    sample_rng, HostImageBatch, HostImages, ImageBatch, ImagePipeline, ImageSample, ImageSource,
    SkippedImage, TransformMode,
};
pub use resample::resize_region;

/// The pipeline that takes `size`-pixel images as they are (eval mode, no
/// resize, Inception's 0.5 normalisation): its output is the synthetic
/// batcher's `[-1, 1]` scaling of the same pixels.
#[cfg(test)]
pub(crate) fn batcher_scaling(size: usize) -> ImagePipeline {
    ImageTransformConfig::new()
        .with_image_size(size)
        .with_resize_to(size)
        .with_normalization(Normalization::Inception)
        .init()
        .unwrap()
}
