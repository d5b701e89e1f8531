//! The visual side of a batch: pixels for end-to-end extractors (patches,
//! CNN grids), clips of frames (spatio-temporal patches) or precomputed
//! detector regions, on the host and on a device.

use burn::tensor::{backend::Backend, Int, Tensor};

use crate::collate::{clips_to_tensor, images_to_tensor};
use crate::regions::{RegionBatch, RegionTensors};
use crate::synthetic::{Clip, RgbImage};

/// Host-side visual inputs of `N` examples.
#[derive(Debug, Clone)]
pub enum HostVisual {
    /// Rendered images, all of one size.
    Images(Vec<RgbImage>),
    /// Detector regions, padded to the batch's largest region count.
    Regions(RegionBatch),
    /// Clips, all of one length and frame size.
    Clips(Vec<Clip>),
}

impl HostVisual {
    /// Number of examples.
    pub fn len(&self) -> usize {
        match self {
            HostVisual::Images(images) => images.len(),
            HostVisual::Regions(regions) => regions.len(),
            HostVisual::Clips(clips) => clips.len(),
        }
    }

    /// Whether there is no example.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[examples, width, height]` of images, `[examples, regions, feature
    /// size]` of regions, `[examples, frames, side]` of clips: what the
    /// batch's tensor shape depends on.
    pub fn shape(&self) -> [usize; 3] {
        match self {
            HostVisual::Images(images) => {
                let (width, height) = images.first().map_or((0, 0), |i| (i.width, i.height));
                [images.len(), width, height]
            }
            HostVisual::Regions(regions) => [regions.len(), regions.regions, regions.feature_dim],
            HostVisual::Clips(clips) => {
                let first = clips.first();
                let frames = first.map_or(0, |clip| clip.frames.len());
                let side = first
                    .and_then(|clip| clip.frames.first())
                    .map_or(0, |f| f.width);
                [clips.len(), frames, side]
            }
        }
    }

    /// The inputs as tensors on `device`.
    pub fn to_device<B: Backend>(&self, device: &B::Device) -> VisualBatch<B> {
        match self {
            HostVisual::Images(images) => {
                let images: Vec<&RgbImage> = images.iter().collect();
                VisualBatch::Images(images_to_tensor(&images, device))
            }
            HostVisual::Regions(regions) => VisualBatch::Regions(regions.to_tensors(device)),
            HostVisual::Clips(clips) => {
                let clips: Vec<&Clip> = clips.iter().collect();
                VisualBatch::Clips(clips_to_tensor(&clips, device))
            }
        }
    }
}

/// [`HostVisual`] on a device.
#[derive(Debug, Clone)]
pub enum VisualBatch<B: Backend> {
    /// `[N, 3, H, W]` pixels in `[-1, 1]`.
    Images(Tensor<B, 4>),
    /// Detector regions with boxes and padding.
    Regions(RegionTensors<B>),
    /// `[N, T, 3, H, W]` frames in `[-1, 1]`.
    Clips(Tensor<B, 5>),
}

impl<B: Backend> VisualBatch<B> {
    /// Number of examples.
    pub fn len(&self) -> usize {
        match self {
            VisualBatch::Images(images) => images.dims()[0],
            VisualBatch::Regions(regions) => regions.features.dims()[0],
            VisualBatch::Clips(clips) => clips.dims()[0],
        }
    }

    /// Whether there is no example.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The device the inputs are on.
    pub fn device(&self) -> B::Device {
        match self {
            VisualBatch::Images(images) => images.device(),
            VisualBatch::Regions(regions) => regions.features.device(),
            VisualBatch::Clips(clips) => clips.device(),
        }
    }

    /// Rows `indices` (`[K]`) of the batch, in that order.
    pub fn select(&self, indices: Tensor<B, 1, Int>) -> Self {
        match self {
            VisualBatch::Images(images) => VisualBatch::Images(images.clone().select(0, indices)),
            VisualBatch::Clips(clips) => VisualBatch::Clips(clips.clone().select(0, indices)),
            VisualBatch::Regions(regions) => VisualBatch::Regions(RegionTensors {
                features: regions.features.clone().select(0, indices.clone()),
                boxes: regions.boxes.clone().select(0, indices.clone()),
                padding: regions
                    .padding
                    .clone()
                    .int()
                    .select(0, indices.clone())
                    .bool(),
                soft_labels: regions
                    .soft_labels
                    .as_ref()
                    .map(|soft| soft.clone().select(0, indices)),
            }),
        }
    }

    /// Rows `start..end`.
    pub fn slice_rows(&self, start: usize, end: usize) -> Self {
        match self {
            VisualBatch::Images(images) => {
                VisualBatch::Images(images.clone().narrow(0, start, end - start))
            }
            VisualBatch::Clips(clips) => {
                VisualBatch::Clips(clips.clone().narrow(0, start, end - start))
            }
            VisualBatch::Regions(regions) => VisualBatch::Regions(RegionTensors {
                features: regions.features.clone().narrow(0, start, end - start),
                boxes: regions.boxes.clone().narrow(0, start, end - start),
                padding: regions.padding.clone().narrow(0, start, end - start),
                soft_labels: regions
                    .soft_labels
                    .as_ref()
                    .map(|soft| soft.clone().narrow(0, start, end - start)),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regions::RegionRecord;
    use burn::backend::NdArray;
    use burn::tensor::TensorData;

    fn record(n: usize, offset: f32) -> RegionRecord {
        RegionRecord {
            image_id: format!("{offset}"),
            num_boxes: n,
            feature_dim: 2,
            features: (0..n * 2).map(|i| offset + i as f32).collect(),
            boxes: (0..n).map(|i| [0.1 * i as f32, 0.0, 0.5, 0.5]).collect(),
            image_size: None,
            confidence: None,
            soft_labels: None,
            num_classes: 0,
        }
    }

    #[test]
    fn region_rows_select_and_slice_together() {
        let batch = RegionBatch::from_records(&[record(1, 10.0), record(3, 20.0)], 8).unwrap();
        let host = HostVisual::Regions(batch);
        assert_eq!(host.len(), 2);
        let device = Default::default();
        let batch = host.to_device::<NdArray>(&device);
        let swapped = batch.select(Tensor::from_data(
            TensorData::new(vec![1i64, 0], [2]),
            &device,
        ));
        let VisualBatch::Regions(swapped) = swapped else {
            panic!("regions in, regions out");
        };
        let padding: Vec<bool> = swapped.padding.into_data().to_vec().unwrap();
        assert_eq!(padding, vec![false, false, false, false, true, true]);
        let features: Vec<f32> = swapped.features.into_data().to_vec().unwrap();
        assert_eq!(&features[..6], &[20.0, 21.0, 22.0, 23.0, 24.0, 25.0]);
        let VisualBatch::Regions(second) = batch.slice_rows(1, 2) else {
            panic!("regions in, regions out");
        };
        let boxes: Vec<f32> = second.boxes.into_data().to_vec().unwrap();
        assert_eq!(&boxes[8..12], &[0.2, 0.0, 0.5, 0.5]);
    }
}
