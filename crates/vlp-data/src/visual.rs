//! The visual side of a batch: pixels for end-to-end extractors (patches,
//! CNN grids) or precomputed detector regions, on the host and on a device.

use burn::tensor::{backend::Backend, Bool, Int, Tensor, TensorData};

use crate::batch::images_to_tensor;
use crate::synthetic::{Detections, RgbImage};

/// Host-side visual inputs of `N` examples.
#[derive(Debug, Clone)]
pub enum HostVisual {
    /// Rendered images, all of one size.
    Images(Vec<RgbImage>),
    /// Detector outputs, any number of regions per image.
    Regions(Vec<Detections>),
}

impl HostVisual {
    pub fn len(&self) -> usize {
        match self {
            HostVisual::Images(images) => images.len(),
            HostVisual::Regions(regions) => regions.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn to_device<B: Backend>(&self, device: &B::Device) -> VisualBatch<B> {
        match self {
            HostVisual::Images(images) => {
                let images: Vec<&RgbImage> = images.iter().collect();
                VisualBatch::Images(images_to_tensor(&images, device))
            }
            HostVisual::Regions(regions) => {
                let regions: Vec<&Detections> = regions.iter().collect();
                VisualBatch::Regions(RegionTensors::from_detections(&regions, device))
            }
        }
    }
}

/// Padded region inputs of `N` images with up to `R` regions each.
#[derive(Debug, Clone)]
pub struct RegionTensors<B: Backend> {
    /// `[N, R, F]` detector features (zeros at padding).
    pub features: Tensor<B, 3>,
    /// `[N, R, 4]` normalised `x1, y1, x2, y2` (zeros at padding).
    pub boxes: Tensor<B, 3>,
    /// `[N, R]`, `true` at padding.
    pub padding: Tensor<B, 2, Bool>,
}

impl<B: Backend> RegionTensors<B> {
    /// Pads every image to the largest region count of the batch.
    pub fn from_detections(detections: &[&Detections], device: &B::Device) -> Self {
        let rows = detections.len();
        let regions = detections.iter().map(|d| d.len()).max().unwrap_or(0).max(1);
        let feature_size = detections.first().map_or(0, |d| d.feature_size);
        let mut features = vec![0f32; rows * regions * feature_size];
        let mut boxes = vec![0f32; rows * regions * 4];
        let mut padding = vec![1i64; rows * regions];
        for (n, found) in detections.iter().enumerate() {
            assert_eq!(
                found.feature_size, feature_size,
                "detections of one batch share a feature size"
            );
            let start = n * regions;
            features[start * feature_size..(start + found.len()) * feature_size]
                .copy_from_slice(&found.features);
            for (r, bbox) in found.boxes.iter().enumerate() {
                boxes[(start + r) * 4..(start + r + 1) * 4].copy_from_slice(bbox);
                padding[start + r] = 0;
            }
        }
        Self {
            features: Tensor::from_data(
                TensorData::new(features, [rows, regions, feature_size]),
                device,
            ),
            boxes: Tensor::from_data(TensorData::new(boxes, [rows, regions, 4]), device),
            // Built as Int then cast, like every other mask, so that masks
            // concatenate on backends that store bools in several dtypes.
            padding: Tensor::<B, 2, Int>::from_data(
                TensorData::new(padding, [rows, regions]),
                device,
            )
            .bool(),
        }
    }
}

/// [`HostVisual`] on a device.
#[derive(Debug, Clone)]
pub enum VisualBatch<B: Backend> {
    /// `[N, 3, H, W]` pixels in `[-1, 1]`.
    Images(Tensor<B, 4>),
    Regions(RegionTensors<B>),
}

impl<B: Backend> VisualBatch<B> {
    pub fn len(&self) -> usize {
        match self {
            VisualBatch::Images(images) => images.dims()[0],
            VisualBatch::Regions(regions) => regions.features.dims()[0],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows `indices` (`[K]`) of the batch, in that order.
    pub fn select(&self, indices: Tensor<B, 1, Int>) -> Self {
        match self {
            VisualBatch::Images(images) => VisualBatch::Images(images.clone().select(0, indices)),
            VisualBatch::Regions(regions) => VisualBatch::Regions(RegionTensors {
                features: regions.features.clone().select(0, indices.clone()),
                boxes: regions.boxes.clone().select(0, indices.clone()),
                padding: regions.padding.clone().int().select(0, indices).bool(),
            }),
        }
    }

    /// Rows `start..end`.
    pub fn slice_rows(&self, start: usize, end: usize) -> Self {
        match self {
            VisualBatch::Images(images) => {
                VisualBatch::Images(images.clone().narrow(0, start, end - start))
            }
            VisualBatch::Regions(regions) => VisualBatch::Regions(RegionTensors {
                features: regions.features.clone().narrow(0, start, end - start),
                boxes: regions.boxes.clone().narrow(0, start, end - start),
                padding: regions.padding.clone().narrow(0, start, end - start),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    fn detections(n: usize, offset: f32) -> Detections {
        Detections {
            boxes: (0..n).map(|i| [0.1 * i as f32, 0.0, 0.5, 0.5]).collect(),
            features: (0..n * 2).map(|i| offset + i as f32).collect(),
            feature_size: 2,
            soft_labels: Vec::new(),
        }
    }

    #[test]
    fn regions_pad_to_the_largest_image_and_select_rows() {
        let a = detections(1, 10.0);
        let b = detections(3, 20.0);
        let host = HostVisual::Regions(vec![a, b]);
        let VisualBatch::Regions(regions) = host.to_device::<NdArray>(&Default::default()) else {
            panic!("regions in, regions out");
        };
        assert_eq!(regions.features.dims(), [2, 3, 2]);
        let features: Vec<f32> = regions.features.clone().into_data().to_vec().unwrap();
        assert_eq!(
            features,
            vec![10.0, 11.0, 0.0, 0.0, 0.0, 0.0, 20.0, 21.0, 22.0, 23.0, 24.0, 25.0]
        );
        let padding: Vec<bool> = regions.padding.clone().into_data().to_vec().unwrap();
        assert_eq!(padding, vec![false, true, true, false, false, false]);
        let boxes: Vec<f32> = regions.boxes.clone().into_data().to_vec().unwrap();
        assert_eq!(&boxes[12..16], &[0.0, 0.0, 0.5, 0.5]);
        assert_eq!(&boxes[20..24], &[0.2, 0.0, 0.5, 0.5]);

        let batch = VisualBatch::Regions(regions);
        let swapped = batch.select(Tensor::from_data(
            TensorData::new(vec![1i64, 0], [2]),
            &Default::default(),
        ));
        let VisualBatch::Regions(swapped) = swapped else {
            panic!("regions in, regions out");
        };
        let padding: Vec<bool> = swapped.padding.into_data().to_vec().unwrap();
        assert_eq!(padding, vec![false, false, false, false, true, true]);
        assert_eq!(batch.slice_rows(1, 2).len(), 1);
    }
}
