//! The image pipeline of the anchors' data loaders (CLIP's `_transform`,
//! ALBEF/BLIP's `transform_train` / `transform_test`): decode, crop and
//! resize, flip, normalise, batch. Where PyTorch runs it in worker processes
//! with a per-worker random state, here rayon threads run it and every draw
//! of a sample comes from a generator keyed by (seed, epoch, sample index),
//! so a batch is the same with 1 or N threads; a broken image is skipped
//! and reported, never a panic.

use std::path::Path;

use burn::tensor::{backend::Backend, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::config::ImageTransformConfig;
use super::crop::{center_crop_box, shorter_side_size, CropBox};
use super::decode::{check_image, decode, decode_file};
use super::flip::{flip_horizontal, swap_left_right};
use super::normalize::normalize_into;
use super::resample::resize_region;
use crate::error::DataError;
use crate::synthetic::RgbImage;

/// Training (random draws) or evaluation (none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransformMode {
    /// Resize the shorter side to `resize_to`, centre-crop `image_size`.
    Eval,
    /// Random resized crop to `image_size`, then a random flip. Sample `i`'s
    /// draws come from [`sample_rng`]`(seed, epoch, i)`.
    Train {
        /// The run's seed.
        seed: u64,
        /// The epoch (or the step, for sources without epochs): each one
        /// draws new crops and flips.
        epoch: u64,
    },
}

/// The generator of every random draw of sample `index` in `epoch`: a
/// ChaCha8 stream keyed by its 32-byte seed `seed ‖ epoch ‖ index ‖
/// "vlpimage"` (each number 8 bytes, little-endian). Distinct triples give
/// distinct keys, and no draw depends on which thread runs the sample or on
/// what it ran before.
pub fn sample_rng(seed: u64, epoch: u64, index: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (chunk, bytes) in key.chunks_exact_mut(8).zip([
        seed.to_le_bytes(),
        epoch.to_le_bytes(),
        index.to_le_bytes(),
        *b"vlpimage",
    ]) {
        chunk.copy_from_slice(&bytes);
    }
    ChaCha8Rng::from_seed(key)
}

/// Where a sample's image is.
#[derive(Debug, Clone, Copy)]
pub enum ImageSource<'a> {
    /// An image file, read and decoded ([`decode_file`]).
    File(&'a Path),
    /// Encoded bytes (e.g. a tar member) and the name errors give them.
    Bytes {
        /// JPEG, PNG or WebP bytes.
        bytes: &'a [u8],
        /// The file or member they came from.
        origin: &'a str,
    },
    /// Pixels already decoded (e.g. the synthetic world's).
    Pixels(&'a RgbImage),
}

/// One image-caption pair to load.
#[derive(Debug, Clone, Copy)]
pub struct ImageSample<'a> {
    /// The sample's index in its data set: keys its random draws, so it
    /// must not depend on batching.
    pub index: u64,
    /// The image.
    pub image: ImageSource<'a>,
    /// The caption (flipped images get it with "left" and "right" swapped).
    pub caption: &'a str,
}

/// A sample left out of a batch, and why.
#[derive(Debug)]
pub struct SkippedImage {
    /// The sample's [`ImageSample::index`].
    pub index: u64,
    /// What went wrong (it names the file or origin).
    pub error: DataError,
}

/// Loaded samples: their images (`I`: [`HostImages`] on the host, a
/// `Tensor<B, 4>` on a device), captions and indices, and the samples left
/// out.
#[derive(Debug)]
pub struct ImageBatch<I> {
    /// The `N` images, `[N, 3, S, S]` (`N` = 0 when every sample was skipped).
    pub images: I,
    /// The `N` captions, in order.
    pub captions: Vec<String>,
    /// The `N` samples' indices, in order.
    pub indices: Vec<u64>,
    /// The samples that could not be loaded, in order.
    pub skipped: Vec<SkippedImage>,
}

/// Normalised images on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostImages {
    /// `[N, 3, S, S]` values, row-major.
    pub pixels: Vec<f32>,
    /// `S`, the side of each image.
    pub image_size: usize,
}

/// What [`ImagePipeline::prepare`] returns.
pub type HostImageBatch = ImageBatch<HostImages>;

impl<I> ImageBatch<I> {
    /// The number of images, `N`.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether every sample was skipped (or none was given).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

impl HostImageBatch {
    /// The images on `device` as one `[N, 3, S, S]` tensor.
    pub fn into_device<B: Backend>(self, device: &B::Device) -> ImageBatch<Tensor<B, 4>> {
        let size = self.images.image_size;
        let data = TensorData::new(self.images.pixels, [self.indices.len(), 3, size, size]);
        ImageBatch {
            images: Tensor::from_data(data, device),
            captions: self.captions,
            indices: self.indices,
            skipped: self.skipped,
        }
    }
}

/// Image-caption samples to normalised `image_size` squares (build it with
/// [`ImageTransformConfig::init`]).
#[derive(Debug, Clone)]
pub struct ImagePipeline {
    config: ImageTransformConfig,
    table: Box<[[f32; 256]; 3]>,
}

impl ImagePipeline {
    /// The pipeline of a validated configuration.
    pub(super) fn new(config: ImageTransformConfig) -> ImagePipeline {
        let table = config.normalization.table();
        ImagePipeline { config, table }
    }

    /// Its configuration.
    pub fn config(&self) -> &ImageTransformConfig {
        &self.config
    }

    /// `image` cropped and resized to an `image_size` square, and the
    /// caption (flipped in training with probability `flip_probability`,
    /// "left" and "right" swapped with it). `index` keys the draws.
    ///
    /// # Errors
    /// [`DataError::ImageDecode`] for an image without pixels or whose
    /// buffer does not match its size.
    pub fn transform(
        &self,
        image: &RgbImage,
        caption: &str,
        mode: TransformMode,
        index: u64,
    ) -> Result<(RgbImage, String), DataError> {
        check_image(image, &format!("sample {index}"))?;
        let size = self.config.image_size;
        let whole = CropBox::whole(image.width, image.height);
        match mode {
            TransformMode::Eval => {
                let (width, height) =
                    shorter_side_size(image.width, image.height, self.config.resize_to);
                let window = center_crop_box(width, height, size);
                Ok((
                    resize_region(image, whole, width, height, window),
                    caption.to_string(),
                ))
            }
            TransformMode::Train { seed, epoch } => {
                let mut rng = sample_rng(seed, epoch, index);
                let source = self
                    .config
                    .random_crop()
                    .draw(image.width, image.height, &mut rng);
                let mut out = resize_region(image, source, size, size, CropBox::whole(size, size));
                if rng.random_bool(self.config.flip_probability) {
                    flip_horizontal(&mut out);
                    Ok((out, swap_left_right(caption)))
                } else {
                    Ok((out, caption.to_string()))
                }
            }
        }
    }

    /// `sample`'s image decoded (if it is not yet) and [`transform`](Self::transform)ed.
    ///
    /// # Errors
    /// Those of [`decode_file`], [`decode`] and [`transform`](Self::transform).
    pub fn load(
        &self,
        sample: &ImageSample,
        mode: TransformMode,
    ) -> Result<(RgbImage, String), DataError> {
        let decoded;
        let image = match sample.image {
            ImageSource::File(path) => {
                decoded = decode_file(path)?;
                &decoded
            }
            ImageSource::Bytes { bytes, origin } => {
                decoded = decode(bytes, origin)?;
                &decoded
            }
            ImageSource::Pixels(image) => image,
        };
        self.transform(image, sample.caption, mode, sample.index)
    }

    /// `samples` loaded in parallel on rayon's current pool and normalised
    /// into one `[N, 3, S, S]` buffer; a sample that fails to load is left
    /// out and listed in [`ImageBatch::skipped`]. The result does not
    /// depend on the number of threads.
    pub fn prepare(&self, samples: &[ImageSample], mode: TransformMode) -> HostImageBatch {
        let loaded: Vec<_> = samples
            .par_iter()
            .map(|sample| self.load(sample, mode))
            .collect();
        let (mut images, mut captions, mut indices, mut skipped) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (sample, result) in samples.iter().zip(loaded) {
            match result {
                Ok((image, caption)) => {
                    images.push(image);
                    captions.push(caption);
                    indices.push(sample.index);
                }
                Err(error) => skipped.push(SkippedImage {
                    index: sample.index,
                    error,
                }),
            }
        }
        let size = self.config.image_size;
        let mut pixels = vec![0f32; images.len() * 3 * size * size];
        pixels
            .par_chunks_mut(3 * size * size)
            .zip(&images)
            .for_each(|(out, image)| normalize_into(image, &self.table, out));
        ImageBatch {
            images: HostImages {
                pixels,
                image_size: size,
            },
            captions,
            indices,
            skipped,
        }
    }

    /// [`prepare`](Self::prepare), then the images on `device`.
    pub fn batch<B: Backend>(
        &self,
        samples: &[ImageSample],
        mode: TransformMode,
        device: &B::Device,
    ) -> ImageBatch<Tensor<B, 4>> {
        self.prepare(samples, mode).into_device(device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use vlp_test_support::fixture_path;

    fn striped(width: usize, height: usize) -> RgbImage {
        let pixels = (0..width * height)
            .flat_map(|p| {
                let (x, y) = (p % width, p / width);
                [(x * 255 / width) as u8, (y * 255 / height) as u8, 128]
            })
            .collect();
        RgbImage {
            width,
            height,
            pixels,
        }
    }

    fn pipeline() -> ImagePipeline {
        ImageTransformConfig::new()
            .with_image_size(16)
            .with_resize_to(18)
            .init()
            .unwrap()
    }

    const TRAIN: TransformMode = TransformMode::Train { seed: 5, epoch: 2 };

    #[test]
    fn sample_generators_depend_on_seed_epoch_and_index_only() {
        let draw = |seed, epoch, index| sample_rng(seed, epoch, index).random::<u64>();
        assert_eq!(draw(1, 2, 3), draw(1, 2, 3));
        let others = [draw(2, 2, 3), draw(1, 3, 3), draw(1, 2, 4), draw(3, 2, 1)];
        assert!(others.iter().all(|&other| other != draw(1, 2, 3)));
    }

    #[test]
    fn training_draws_are_per_index_and_thread_count_free() {
        let pipeline = pipeline();
        let images: Vec<RgbImage> = (0..12).map(|n| striped(40 + n, 30)).collect();
        let captions: Vec<String> = (0..12)
            .map(|n| format!("shape {n} left of a box"))
            .collect();
        let samples: Vec<ImageSample> = images
            .iter()
            .zip(&captions)
            .enumerate()
            .map(|(n, (image, caption))| ImageSample {
                index: 100 + n as u64,
                image: ImageSource::Pixels(image),
                caption,
            })
            .collect();
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| pipeline.prepare(&samples, TRAIN))
        };
        let (one, two) = (run(1), run(2));
        assert_eq!(one.images, two.images);
        assert_eq!(one.captions, two.captions);
        // A sample's output depends on its index, not on its neighbours...
        let alone = pipeline.prepare(&samples[3..4], TRAIN);
        let plane = 3 * 16 * 16;
        assert_eq!(alone.images.pixels, one.images.pixels[3 * plane..4 * plane]);
        // ... and another index draws another crop of the same image.
        let crop = |index| pipeline.transform(&images[0], "", TRAIN, index).unwrap().0;
        assert_eq!(crop(7), crop(7));
        assert_ne!(crop(7), crop(8));
        // With p = 0.5 over 12 samples, some flip and some do not.
        let flipped = one.captions.iter().filter(|c| c.contains("right")).count();
        assert!((1..12).contains(&flipped), "{flipped} of 12 flipped");
        let next_epoch = pipeline.prepare(&samples, TransformMode::Train { seed: 5, epoch: 3 });
        assert_ne!(next_epoch.images, one.images);
    }

    /// A flip mirrors the crop it follows: with a whole-image crop
    /// (scale 1, the image's ratio) and p = 1 the output is the mirrored
    /// eval resize.
    #[test]
    fn a_certain_flip_mirrors_the_image_and_swaps_the_caption() {
        let config = ImageTransformConfig::new()
            .with_image_size(16)
            .with_resize_to(16)
            .with_scale((1.0, 1.0))
            .with_ratio((1.0, 1.0))
            .with_flip_probability(1.0);
        let pipeline = config.init().unwrap();
        let image = striped(24, 24);
        let (mut train, caption) = pipeline
            .transform(&image, "a red circle left of a blue square", TRAIN, 0)
            .unwrap();
        let (eval, _) = pipeline
            .transform(&image, "", TransformMode::Eval, 0)
            .unwrap();
        assert_eq!(caption, "a red circle right of a blue square");
        flip_horizontal(&mut train);
        assert_eq!(train, eval);
    }

    #[test]
    fn broken_samples_are_skipped_with_their_reason() {
        let pipeline = pipeline();
        let png = std::fs::read(fixture_path!("images/noise.png")).unwrap();
        let empty = RgbImage {
            width: 0,
            height: 4,
            pixels: Vec::new(),
        };
        let missing = fixture_path!("images/missing.png");
        let samples = [
            ImageSample {
                index: 0,
                image: ImageSource::Bytes {
                    bytes: &png,
                    origin: "noise.png",
                },
                caption: "noise",
            },
            ImageSample {
                index: 1,
                image: ImageSource::Bytes {
                    bytes: &png[..100],
                    origin: "cut.png",
                },
                caption: "cut",
            },
            ImageSample {
                index: 2,
                image: ImageSource::File(&missing),
                caption: "missing",
            },
            ImageSample {
                index: 3,
                image: ImageSource::Pixels(&empty),
                caption: "empty",
            },
            ImageSample {
                index: 4,
                image: ImageSource::File(&fixture_path!("images/photo.jpg")),
                caption: "photo",
            },
        ];
        let batch = pipeline.batch::<NdArray>(&samples, TransformMode::Eval, &Default::default());
        assert_eq!(batch.images.dims(), [2, 3, 16, 16]);
        assert_eq!(batch.indices, [0, 4]);
        assert_eq!(batch.captions, ["noise", "photo"]);
        let reasons: Vec<(u64, String)> = batch
            .skipped
            .iter()
            .map(|s| (s.index, s.error.to_string()))
            .collect();
        assert_eq!(reasons.len(), 3);
        assert!(
            reasons[0].0 == 1 && reasons[0].1.contains("cut.png"),
            "{reasons:?}"
        );
        assert!(
            reasons[1].0 == 2 && reasons[1].1.contains("missing.png"),
            "{reasons:?}"
        );
        assert!(
            reasons[2].0 == 3 && reasons[2].1.contains("sample 3"),
            "{reasons:?}"
        );
        let none =
            pipeline.batch::<NdArray>(&samples[1..2], TransformMode::Eval, &Default::default());
        assert_eq!(none.images.dims(), [0, 3, 16, 16]);
    }
}
