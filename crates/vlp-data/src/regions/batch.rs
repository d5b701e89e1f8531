//! Padded batches of region records: host-side buffers, then tensors.

use burn::tensor::{backend::Backend, Bool, Int, Tensor, TensorData};

use super::RegionRecord;
use crate::DataError;

/// Region records padded to a common length, on the host.
///
/// Each image keeps its first `max_regions` boxes: detectors (bottom-up
/// attention, UNITER's conversion) write boxes in decreasing confidence, so
/// the first ones are the most confident, as UNITER's own truncation assumes.
/// Batches are padded to the longest kept record, not to `max_regions`, so
/// that batches of small images cost less.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionBatch {
    /// Image id of each row.
    pub image_ids: Vec<String>,
    /// `R`, the padded length.
    pub regions: usize,
    /// `F`.
    pub feature_dim: usize,
    /// `[B, R, F]`, zero at padding.
    pub features: Vec<f32>,
    /// `[B, R, 4]` normalised `x1, y1, x2, y2`, zero at padding.
    pub boxes: Vec<f32>,
    /// `[B, R]`, `true` at padding.
    pub padding: Vec<bool>,
    /// `[B]` boxes kept per image.
    pub lengths: Vec<usize>,
    /// `[B, R, C]` detector class distributions, zero at padding; present
    /// when every record has them with the same `C`.
    pub soft_labels: Option<Vec<f32>>,
    /// `C`; 0 without soft labels.
    pub num_classes: usize,
}

/// [`RegionBatch`] on a device.
#[derive(Debug, Clone)]
pub struct RegionTensors<B: Backend> {
    /// `[B, R, F]`.
    pub features: Tensor<B, 3>,
    /// `[B, R, 4]`.
    pub boxes: Tensor<B, 3>,
    /// `[B, R]`, `true` at padding.
    pub padding: Tensor<B, 2, Bool>,
    /// `[B, R, C]`.
    pub soft_labels: Option<Tensor<B, 3>>,
}

impl RegionBatch {
    /// Pads `records` (all of one feature dimension) to a common length of
    /// at most `max_regions`.
    pub fn from_records(records: &[RegionRecord], max_regions: usize) -> Result<Self, DataError> {
        let first = records
            .first()
            .ok_or_else(|| DataError::RegionBatch("no records".into()))?;
        if max_regions == 0 {
            return Err(DataError::RegionBatch("max_regions is 0".into()));
        }
        let feature_dim = first.feature_dim;
        if let Some(other) = records.iter().find(|r| r.feature_dim != feature_dim) {
            return Err(DataError::RegionBatch(format!(
                "image {} has {} features per box, image {} has {feature_dim}",
                other.image_id, other.feature_dim, first.image_id
            )));
        }
        let lengths: Vec<usize> = records
            .iter()
            .map(|r| r.num_boxes.min(max_regions))
            .collect();
        let regions = lengths.iter().copied().max().unwrap_or(0);
        let num_classes = first.num_classes;
        let with_soft_labels = records
            .iter()
            .all(|r| r.soft_labels.is_some() && r.num_classes == num_classes);
        let slots = records.len() * regions;
        let mut batch = Self {
            image_ids: records.iter().map(|r| r.image_id.clone()).collect(),
            regions,
            feature_dim,
            features: vec![0.0; slots * feature_dim],
            boxes: vec![0.0; slots * 4],
            padding: vec![true; slots],
            lengths,
            soft_labels: with_soft_labels.then(|| vec![0.0; slots * num_classes]),
            num_classes: if with_soft_labels { num_classes } else { 0 },
        };
        for (row, record) in records.iter().enumerate() {
            let kept = batch.lengths[row];
            let slot = row * regions;
            batch.features[slot * feature_dim..(slot + kept) * feature_dim]
                .copy_from_slice(&record.features[..kept * feature_dim]);
            for (n, b) in record.boxes[..kept].iter().enumerate() {
                batch.boxes[(slot + n) * 4..(slot + n + 1) * 4].copy_from_slice(b);
            }
            batch.padding[slot..slot + kept].fill(false);
            if let (Some(out), Some(soft)) = (&mut batch.soft_labels, &record.soft_labels) {
                out[slot * num_classes..(slot + kept) * num_classes]
                    .copy_from_slice(&soft[..kept * num_classes]);
            }
        }
        Ok(batch)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.image_ids.len()
    }

    /// Whether the batch has no image.
    pub fn is_empty(&self) -> bool {
        self.image_ids.is_empty()
    }

    /// The batch as tensors on `device`.
    pub fn to_tensors<B: Backend>(&self, device: &B::Device) -> RegionTensors<B> {
        let (b, r) = (self.len(), self.regions);
        let float = |values: &[f32], last: usize| {
            Tensor::<B, 3>::from_data(TensorData::new(values.to_vec(), [b, r, last]), device)
        };
        // Built as integers and converted, like the other padding masks that
        // models concatenate: backends may give bools from `from_data` and
        // from `bool()` different dtypes, which `cat` rejects.
        let padding: Vec<i64> = self.padding.iter().map(|&p| i64::from(p)).collect();
        RegionTensors {
            features: float(&self.features, self.feature_dim),
            boxes: float(&self.boxes, 4),
            padding: Tensor::<B, 2, Int>::from_data(TensorData::new(padding, [b, r]), device)
                .bool(),
            soft_labels: self
                .soft_labels
                .as_ref()
                .map(|soft| float(soft, self.num_classes)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    fn record(id: &str, num_boxes: usize, soft: bool) -> RegionRecord {
        RegionRecord {
            image_id: id.into(),
            num_boxes,
            feature_dim: 2,
            features: (0..num_boxes * 2).map(|v| v as f32 + 1.0).collect(),
            boxes: (0..num_boxes).map(|n| [n as f32 / 10.0; 4]).collect(),
            image_size: None,
            confidence: None,
            soft_labels: soft.then(|| vec![0.5; num_boxes * 2]),
            num_classes: if soft { 2 } else { 0 },
        }
    }

    #[test]
    fn pads_to_the_longest_kept_record() {
        let records = [record("a", 3, true), record("b", 1, true)];
        let batch = RegionBatch::from_records(&records, 2).unwrap();
        assert_eq!((batch.regions, batch.lengths.clone()), (2, vec![2, 1]));
        assert_eq!(batch.features, [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 0.0, 0.0]);
        assert_eq!(batch.padding, [false, false, false, true]);
        assert_eq!(batch.soft_labels.as_ref().unwrap()[6..], [0.0, 0.0]);
        let tensors = batch.to_tensors::<NdArray>(&Default::default());
        assert_eq!(tensors.features.dims(), [2, 2, 2]);
        assert_eq!(tensors.boxes.dims(), [2, 2, 4]);
        let padding: Vec<bool> = tensors.padding.into_data().to_vec().unwrap();
        assert_eq!(padding, batch.padding);
        let mixed = [record("a", 1, true), record("b", 1, false)];
        assert!(RegionBatch::from_records(&mixed, 4)
            .unwrap()
            .soft_labels
            .is_none());
    }

    #[test]
    fn rejects_mixed_feature_dimensions() {
        let mut other = record("b", 1, false);
        other.feature_dim = 1;
        other.features.truncate(1);
        let error = RegionBatch::from_records(&[record("a", 1, false), other], 4).unwrap_err();
        assert!(error.to_string().contains("image b has 1"));
        assert!(RegionBatch::from_records(&[], 4).is_err());
    }
}
