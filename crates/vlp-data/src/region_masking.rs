//! Masked region modelling: which detector regions to hide and what the model
//! sees in their place (UNITER's MRFR / MRC inputs, LXMERT's 80/10/10 option).

use burn::tensor::{backend::Backend, Bool, Int, Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::regions::{RegionBatch, RegionTensors};
use crate::DataError;

/// How regions are masked. Probabilities lie in `[0, 1]` and
/// `zero_fraction + random_fraction <= 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegionMasking {
    /// Fraction of the (non-padding) regions of an image to predict.
    /// Default 0.15.
    pub probability: f64,
    /// Of the masked regions, the fraction whose feature is set to zero.
    /// Default 1.0 (UNITER: every masked feature is zeroed).
    pub zero_fraction: f64,
    /// Of the masked regions, the fraction whose feature is replaced by the
    /// feature of another region of the batch. Default 0.0. The rest keep
    /// their feature (and are still predicted).
    pub random_fraction: f64,
}

impl Default for RegionMasking {
    fn default() -> Self {
        Self::uniter()
    }
}

impl RegionMasking {
    /// Checks that the settings are probabilities and that the replacement
    /// fractions sum to at most 1; [`Self::apply`] panics otherwise.
    pub fn validate(&self) -> Result<(), DataError> {
        DataError::check_probabilities(&[
            ("region mask probability", self.probability),
            ("region zero fraction", self.zero_fraction),
            ("region random fraction", self.random_fraction),
            (
                "region zero + random fraction",
                self.zero_fraction + self.random_fraction,
            ),
        ])
    }

    /// UNITER: 15% of the regions, features zeroed.
    pub fn uniter() -> Self {
        Self {
            probability: 0.15,
            zero_fraction: 1.0,
            random_fraction: 0.0,
        }
    }

    /// LXMERT: 15% of the regions; of those 80% zeroed, 10% replaced by
    /// another region's feature, 10% kept.
    pub fn lxmert() -> Self {
        Self {
            probability: 0.15,
            zero_fraction: 0.8,
            random_fraction: 0.1,
        }
    }

    /// Masks the regions of `batch`. Each non-padding region is chosen with
    /// [`Self::probability`], and at least one per image that has a region
    /// (UNITER); padding is never chosen. A random replacement is the
    /// original feature of a uniformly drawn other non-padding region of the
    /// batch (LXMERT draws from the whole data set; a batch is the sample at
    /// hand); a batch with a single region zeroes it instead.
    pub fn apply(&self, batch: &RegionBatch, rng: &mut ChaCha8Rng) -> MaskedRegions {
        let (regions, dim) = (batch.regions, batch.feature_dim);
        let mut mask = vec![false; batch.padding.len()];
        for (row, &length) in batch.lengths.iter().enumerate() {
            let row_mask = &mut mask[row * regions..row * regions + length];
            for masked in row_mask.iter_mut() {
                *masked = rng.random_bool(self.probability);
            }
            if length > 0 && !row_mask.contains(&true) {
                row_mask[rng.random_range(0..length)] = true;
            }
        }
        let real: Vec<usize> = (0..batch.padding.len())
            .filter(|&slot| !batch.padding[slot])
            .collect();
        let positions: Vec<usize> = (0..mask.len()).filter(|&slot| mask[slot]).collect();
        let original = |slot: usize| &batch.features[slot * dim..(slot + 1) * dim];
        let mut masked = batch.clone();
        for &slot in &positions {
            let roll: f64 = rng.random();
            let replacement = if roll < self.zero_fraction || real.len() < 2 {
                None
            } else if roll < self.zero_fraction + self.random_fraction {
                // Uniform over the other real regions: draw among all but
                // one and skip over `slot`.
                let mut pick = rng.random_range(0..real.len() - 1);
                if real[pick] >= slot {
                    pick += 1;
                }
                Some(real[pick])
            } else {
                continue;
            };
            let out = &mut masked.features[slot * dim..(slot + 1) * dim];
            match replacement {
                Some(other) => out.copy_from_slice(original(other)),
                None => out.fill(0.0),
            }
        }
        let feature_targets = positions
            .iter()
            .flat_map(|&slot| original(slot).iter().copied())
            .collect();
        let classes = batch.num_classes;
        let soft_label_targets = batch.soft_labels.as_ref().map(|soft| {
            positions
                .iter()
                .flat_map(|&slot| soft[slot * classes..(slot + 1) * classes].iter().copied())
                .collect()
        });
        MaskedRegions {
            batch: masked,
            mask,
            positions,
            feature_targets,
            soft_label_targets,
        }
    }
}

/// A [`RegionBatch`] with masked regions, and what to predict there.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskedRegions {
    /// What the model sees: the input batch with the features of masked
    /// regions replaced (boxes, padding and soft labels unchanged).
    pub batch: RegionBatch,
    /// `[B, R]`, `true` at the regions to predict.
    pub mask: Vec<bool>,
    /// `[M]` flat index `row * R + r` of each masked region, row-major.
    pub positions: Vec<usize>,
    /// `[M, F]` original features of the masked regions (MRFR targets).
    pub feature_targets: Vec<f32>,
    /// `[M, C]` detector class distributions of the masked regions (MRC
    /// targets, background first), when the batch has soft labels.
    pub soft_label_targets: Option<Vec<f32>>,
}

/// [`MaskedRegions`] on a device.
#[derive(Debug, Clone)]
pub struct MaskedRegionTensors<B: Backend> {
    /// The masked regions the model sees.
    pub regions: RegionTensors<B>,
    /// `[B, R]`, `true` at the regions to predict.
    pub mask: Tensor<B, 2, Bool>,
    /// `[M]` flat positions `row * R + r`.
    pub positions: Tensor<B, 1, Int>,
    /// `[M, F]`.
    pub feature_targets: Tensor<B, 2>,
    /// `[M, C]`.
    pub soft_label_targets: Option<Tensor<B, 2>>,
}

impl MaskedRegions {
    /// Number of masked regions, `M`.
    pub fn num_masked(&self) -> usize {
        self.positions.len()
    }

    /// The masked regions and their targets as tensors on `device`.
    pub fn to_device<B: Backend>(&self, device: &B::Device) -> MaskedRegionTensors<B> {
        let (b, r, m) = (self.batch.len(), self.batch.regions, self.num_masked());
        let int = |values: Vec<i64>| {
            let n = values.len();
            Tensor::<B, 1, Int>::from_data(TensorData::new(values, [n]), device)
        };
        // Built as integers and converted, as `RegionBatch::to_tensors` does
        // for its padding mask, so every mask of a batch has one bool dtype.
        let mask: Vec<i64> = self.mask.iter().map(|&v| i64::from(v)).collect();
        let mask = Tensor::<B, 2, Int>::from_data(TensorData::new(mask, [b, r]), device).bool();
        let float = |values: &[f32], last: usize| {
            Tensor::<B, 2>::from_data(TensorData::new(values.to_vec(), [m, last]), device)
        };
        MaskedRegionTensors {
            regions: self.batch.to_tensors(device),
            mask,
            positions: int(self.positions.iter().map(|&p| p as i64).collect()),
            feature_targets: float(&self.feature_targets, self.batch.feature_dim),
            soft_label_targets: self
                .soft_label_targets
                .as_ref()
                .map(|soft| float(soft, self.batch.num_classes)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regions::RegionRecord;
    use burn::backend::NdArray;
    use rand::SeedableRng;

    const DIM: usize = 3;

    /// Images with `lengths` boxes; every region's feature is distinct and
    /// non-zero, so a feature tells which region it came from.
    fn batch(lengths: &[usize]) -> RegionBatch {
        let records: Vec<RegionRecord> = lengths
            .iter()
            .enumerate()
            .map(|(image, &n)| RegionRecord {
                image_id: format!("{image}"),
                num_boxes: n,
                feature_dim: DIM,
                features: (0..n * DIM)
                    .map(|v| (image * 1000 + v) as f32 + 1.0)
                    .collect(),
                boxes: vec![[0.1, 0.2, 0.3, 0.4]; n],
                image_size: None,
                confidence: None,
                soft_labels: Some((0..n * 2).map(|v| v as f32).collect()),
                num_classes: 2,
            })
            .collect();
        RegionBatch::from_records(&records, usize::MAX).unwrap()
    }

    fn feature(batch: &RegionBatch, slot: usize) -> &[f32] {
        &batch.features[slot * DIM..(slot + 1) * DIM]
    }

    #[test]
    fn invalid_settings_are_named() {
        assert!(RegionMasking::lxmert().validate().is_ok());
        let error = RegionMasking {
            probability: 1.5,
            ..RegionMasking::uniter()
        }
        .validate()
        .unwrap_err();
        assert!(
            error.to_string().contains("region mask probability is 1.5"),
            "{error}"
        );
    }

    #[test]
    fn uniter_zeroes_at_least_one_real_region_per_image_at_the_set_rate() {
        let input = batch(&[12, 1, 7, 0]);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let trials = 3000;
        let mut per_row = [0usize; 4];
        for _ in 0..trials {
            let out = RegionMasking::uniter().apply(&input, &mut rng);
            for slot in 0..input.padding.len() {
                let row = slot / input.regions;
                if input.padding[slot] {
                    assert!(!out.mask[slot], "padding is never masked");
                }
                if out.mask[slot] {
                    per_row[row] += 1;
                    assert!(feature(&out.batch, slot).iter().all(|&v| v == 0.0));
                } else {
                    assert_eq!(feature(&out.batch, slot), feature(&input, slot));
                }
            }
            for (row, &length) in input.lengths.iter().enumerate() {
                let masked = out.mask[row * input.regions..(row + 1) * input.regions]
                    .iter()
                    .filter(|&&m| m)
                    .count();
                assert_eq!(masked >= 1, length >= 1);
            }
            // Targets are the original features and labels, in position order.
            assert_eq!(out.positions.len() * DIM, out.feature_targets.len());
            let soft = input.soft_labels.as_ref().unwrap();
            for (k, &slot) in out.positions.iter().enumerate() {
                assert!(out.mask[slot]);
                assert_eq!(
                    &out.feature_targets[k * DIM..(k + 1) * DIM],
                    feature(&input, slot)
                );
                assert_eq!(
                    &out.soft_label_targets.as_ref().unwrap()[k * 2..(k + 1) * 2],
                    &soft[slot * 2..(slot + 1) * 2]
                );
            }
        }
        // Expected masked regions of an image with n regions: n p plus the
        // forced one when none was drawn, (1 - p)^n.
        let p = 0.15;
        for (row, &n) in input.lengths.iter().enumerate() {
            let n = n as f64;
            let expected = n * p + if n > 0.0 { (1.0 - p).powf(n) } else { 0.0 };
            let sigma = (n * p * (1.0 - p) / trials as f64).sqrt();
            let mean = per_row[row] as f64 / trials as f64;
            assert!(
                (mean - expected).abs() <= 6.0 * sigma,
                "row {row}: {mean} vs {expected}"
            );
        }
    }

    #[test]
    fn lxmert_zeroes_swaps_and_keeps_80_10_10() {
        let input = batch(&[20, 15, 9]);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (mut zeroed, mut swapped, mut kept) = (0usize, 0usize, 0usize);
        for _ in 0..2000 {
            let out = RegionMasking::lxmert().apply(&input, &mut rng);
            for &slot in &out.positions {
                let seen = feature(&out.batch, slot);
                if seen.iter().all(|&v| v == 0.0) {
                    zeroed += 1;
                } else if seen == feature(&input, slot) {
                    kept += 1;
                } else {
                    let source = (0..input.padding.len())
                        .find(|&other| feature(&input, other) == seen)
                        .expect("a replacement is another region's feature");
                    assert!(source != slot && !input.padding[source]);
                    swapped += 1;
                }
            }
        }
        let total = (zeroed + swapped + kept) as f64;
        for (count, p) in [(zeroed, 0.8), (swapped, 0.1), (kept, 0.1)] {
            let sigma = (p * (1.0 - p) / total).sqrt();
            let rate = count as f64 / total;
            assert!((rate - p).abs() <= 6.0 * sigma, "{rate} vs {p}");
        }
    }

    #[test]
    fn masks_the_synthetic_detectors_regions_with_their_class_distributions() {
        use crate::synthetic::{DetectorConfig, Split, SyntheticDetector, SyntheticWorld};
        let world = SyntheticWorld::new(0, 32);
        let detector = SyntheticDetector::new(0, DetectorConfig::default());
        let records: Vec<RegionRecord> = (0..4)
            .map(|i| detector.detect(&world.scene(Split::Train, i)))
            .collect();
        let input = RegionBatch::from_records(&records, usize::MAX).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let out = RegionMasking::lxmert().apply(&input, &mut rng);
        let (dim, classes) = (input.feature_dim, input.num_classes);
        assert!(out.num_masked() >= 4, "one region per image at least");
        let soft = out.soft_label_targets.as_ref().unwrap();
        for (k, &slot) in out.positions.iter().enumerate() {
            let distribution = &soft[k * classes..(k + 1) * classes];
            assert!((distribution.iter().sum::<f32>() - 1.0).abs() < 1e-4);
            assert_eq!(
                &out.feature_targets[k * dim..(k + 1) * dim],
                &input.features[slot * dim..(slot + 1) * dim]
            );
        }
    }

    #[test]
    fn a_lone_region_is_zeroed_and_tensors_have_the_masked_shapes() {
        let input = batch(&[1]);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let everything_swapped = RegionMasking {
            probability: 1.0,
            zero_fraction: 0.0,
            random_fraction: 1.0,
        };
        let out = everything_swapped.apply(&input, &mut rng);
        assert_eq!(out.batch.features, [0.0; DIM]);

        let empty = RegionMasking::uniter().apply(&batch(&[0, 0]), &mut rng);
        assert_eq!(empty.num_masked(), 0);
        let tensors = empty.to_device::<NdArray>(&Default::default());
        assert_eq!(tensors.feature_targets.dims(), [0, DIM]);
        assert_eq!(tensors.mask.dims(), [2, 0]);

        let input = batch(&[4, 2]);
        let out = RegionMasking::uniter().apply(&input, &mut rng);
        let m = out.num_masked();
        let tensors = out.to_device::<NdArray>(&Default::default());
        assert_eq!(tensors.mask.dims(), [2, 4]);
        assert_eq!(tensors.positions.dims(), [m]);
        assert_eq!(tensors.feature_targets.dims(), [m, DIM]);
        assert_eq!(tensors.soft_label_targets.unwrap().dims(), [m, 2]);
        let mask: Vec<bool> = tensors.mask.into_data().to_vec().unwrap();
        assert_eq!(mask, out.mask);
        let features: Vec<f32> = tensors.regions.features.into_data().to_vec().unwrap();
        assert_eq!(features, out.batch.features);
    }
}
