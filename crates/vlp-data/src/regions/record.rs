//! One image's detector regions, decoded.

/// The regions of one image, as a detector wrote them (detector order, which
/// for bottom-up attention is confidence order).
#[derive(Debug, Clone, PartialEq)]
pub struct RegionRecord {
    /// Id of the image (the TSV's `image_id`, the NPZ file's stem).
    pub image_id: String,
    /// `N`.
    pub num_boxes: usize,
    /// `F` (2048 for bottom-up attention).
    pub feature_dim: usize,
    /// `[N, F]`, row-major.
    pub features: Vec<f32>,
    /// `[N]` boxes `x1, y1, x2, y2` normalised to the image, in `[0, 1]`.
    pub boxes: Vec<[f32; 4]>,
    /// `(width, height)` in pixels, where the format stores it (BUTD TSV).
    pub image_size: Option<(f32, f32)>,
    /// `[N]` detector confidence of each box, where stored.
    pub confidence: Option<Vec<f32>>,
    /// `[N, C]` detector class distribution of each box (class 0 is
    /// background), where stored.
    pub soft_labels: Option<Vec<f32>>,
    /// `C`; 0 when there are no soft labels.
    pub num_classes: usize,
}

impl RegionRecord {
    /// Features of box `n`: `[F]`.
    pub fn box_features(&self, n: usize) -> &[f32] {
        &self.features[n * self.feature_dim..(n + 1) * self.feature_dim]
    }
}

/// Divides pixel boxes by the image size and clamps them to `[0, 1]`:
/// detectors clip boxes to the image, so only rounding can spill over.
pub(crate) fn normalise_pixel_box(pixels: [f32; 4], width: f32, height: f32) -> [f32; 4] {
    let [x1, y1, x2, y2] = pixels;
    [x1 / width, y1 / height, x2 / width, y2 / height].map(|v| v.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_clamps_pixel_boxes() {
        let b = normalise_pixel_box([64.0, 36.0, 640.5, 180.0], 640.0, 360.0);
        assert_eq!(b, [0.1, 0.1, 1.0, 0.5]);
    }

    #[test]
    fn box_features_are_rows() {
        let record = RegionRecord {
            image_id: "1".into(),
            num_boxes: 2,
            feature_dim: 3,
            features: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
            boxes: vec![[0.0; 4]; 2],
            image_size: None,
            confidence: None,
            soft_labels: None,
            num_classes: 0,
        };
        assert_eq!(record.box_features(1), &[3.0, 4.0, 5.0]);
    }
}
