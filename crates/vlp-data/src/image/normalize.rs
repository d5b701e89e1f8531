//! Per-channel normalisation, torchvision's `ToTensor()` then
//! `Normalize(mean, std)`: `(v / 255 - mean) / std` in `f32`, channels first.
//! The statistics are those the anchors' preprocessing names: ImageNet's
//! (torchvision's models, UNITER/ViLBERT's detectors), CLIP's (CLIP,
//! open_clip, ALBEF, BLIP, LAVIS) and Inception's 0.5 (ViLT, timm's
//! Inception/ViT-AugReg models; also [`images_to_tensor`](crate::images_to_tensor)'s
//! `[-1, 1]` scaling of the synthetic world).

use crate::synthetic::RgbImage;

/// ImageNet's RGB mean (torchvision's model docs, `Normalize` in its
/// ImageNet reference scripts).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's RGB standard deviation (same source as [`IMAGENET_MEAN`]).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// CLIP's RGB mean over its pre-training images (`clip/clip.py`,
/// `_transform`; also open_clip's `OPENAI_DATASET_MEAN` and ALBEF/BLIP's
/// `Normalize`).
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's RGB standard deviation (same sources as [`CLIP_MEAN`]), published
/// as `(0.26862954, 0.26130258, 0.27577711)`; the literals below are the
/// same `f32` values, written with the digits `f32` keeps.
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];
/// Inception's mean, `0.5` per channel (ViLT's `inception_normalize`,
/// timm's `IMAGENET_INCEPTION_MEAN`): values in `[-1, 1]`.
pub const INCEPTION_MEAN: [f32; 3] = [0.5; 3];
/// Inception's standard deviation, `0.5` per channel.
pub const INCEPTION_STD: [f32; 3] = [0.5; 3];

/// Which per-channel statistics normalise pixels. Serialised in lower case:
/// `"imagenet"`, `"clip"`, `"inception"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalization {
    /// [`IMAGENET_MEAN`] and [`IMAGENET_STD`].
    Imagenet,
    /// [`CLIP_MEAN`] and [`CLIP_STD`].
    Clip,
    /// [`INCEPTION_MEAN`] and [`INCEPTION_STD`].
    Inception,
}

impl Normalization {
    /// `(mean, std)` per RGB channel.
    pub fn statistics(self) -> ([f32; 3], [f32; 3]) {
        match self {
            Normalization::Imagenet => (IMAGENET_MEAN, IMAGENET_STD),
            Normalization::Clip => (CLIP_MEAN, CLIP_STD),
            Normalization::Inception => (INCEPTION_MEAN, INCEPTION_STD),
        }
    }

    /// The normalised value of every 8-bit level, per channel: a lookup
    /// table computed once, in torchvision's order of `f32` operations.
    pub(crate) fn table(self) -> Box<[[f32; 256]; 3]> {
        let (mean, std) = self.statistics();
        let mut table = Box::new([[0f32; 256]; 3]);
        for (c, levels) in table.iter_mut().enumerate() {
            for (v, value) in levels.iter_mut().enumerate() {
                *value = (v as f32 / 255.0 - mean[c]) / std[c];
            }
        }
        table
    }
}

/// Writes `image` into `out` as `[3, H, W]` normalised floats (`out.len()
/// == 3 * H * W`) through a [`Normalization`]'s table.
pub(crate) fn normalize_into(image: &RgbImage, table: &[[f32; 256]; 3], out: &mut [f32]) {
    let plane = image.width * image.height;
    let (red, rest) = out.split_at_mut(plane);
    let (green, blue) = rest.split_at_mut(plane);
    for (p, rgb) in image.pixels.chunks_exact(3).enumerate() {
        red[p] = table[0][rgb[0] as usize];
        green[p] = table[1][rgb[1] as usize];
        blue[p] = table[2][rgb[2] as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vlp_test_support::fixtures::f32s;
    use vlp_test_support::{assert_close, fixture, Tol};

    /// torchvision's `ToTensor` + `Normalize` on the fixture's eval output
    /// (values written to 7 significant digits).
    #[test]
    fn matches_torchvision_on_the_fixture() {
        let reference = fixture!("image_reference.json");
        let case = &reference["eval"][0];
        let size = case["crop"].as_u64().unwrap() as usize;
        let image = RgbImage {
            width: size,
            height: size,
            pixels: f32s(&case["pixels"]).iter().map(|&v| v as u8).collect(),
        };
        for (normalization, key) in [
            (Normalization::Imagenet, "imagenet"),
            (Normalization::Clip, "clip"),
        ] {
            let mut out = vec![0f32; 3 * size * size];
            normalize_into(&image, &normalization.table(), &mut out);
            assert_close(key, out, f32s(&case[key]), Tol::abs(1e-5));
        }
    }

    #[test]
    fn inception_statistics_scale_to_minus_one_one() {
        let table = Normalization::Inception.table();
        assert_eq!((table[1][0], table[1][255]), (-1.0, 1.0));
        let names: Vec<String> = [Normalization::Imagenet, Normalization::Clip]
            .iter()
            .map(|n| serde_json::to_string(n).unwrap())
            .collect();
        assert_eq!(names, ["\"imagenet\"", "\"clip\""]);
    }
}
