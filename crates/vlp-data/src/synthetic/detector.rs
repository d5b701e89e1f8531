//! The world's frozen object detector: for each object of a scene, the box,
//! a class distribution and a pooled feature vector — what a bottom-up
//! attention detector gives region-based models (UNITER, LXMERT), without
//! running one.
//!
//! Features are compositional, as a real detector's are: the sum of one
//! learned-looking prototype per attribute (colour, shape, size) plus
//! per-detection noise, so a model must decode attributes from a vector
//! rather than read a class id.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::scene::{Scene, COLOURS, NUM_CLASSES, SHAPES, SIZES};
use super::{fnv1a, mix};
use crate::regions::RegionRecord;

/// Settings of [`SyntheticDetector`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorConfig {
    /// Length of each region feature (2048 for a ResNet-101 detector).
    pub feature_size: usize,
    /// Standard deviation of the noise added to each feature coordinate
    /// (prototypes have unit-variance coordinates).
    pub feature_noise: f32,
    /// Logit of the true class in the class distribution; the other classes
    /// get noise around 0, background included.
    pub class_confidence: f32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            feature_size: 64,
            feature_noise: 0.3,
            class_confidence: 6.0,
        }
    }
}

/// Columns of the detector's class distributions: background (0) and the
/// world's object classes (`1 + class_id`), UNITER's `soft_labels` layout.
pub const NUM_DETECTOR_LABELS: usize = 1 + NUM_CLASSES;

/// A detector bound to one world seed: the same scene always gives the same
/// detections, as a frozen detector over a fixed image does.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticDetector {
    /// Feature width, noise and box settings.
    pub config: DetectorConfig,
    seed: u64,
    /// `[colours + shapes + sizes, F]` attribute prototypes.
    prototypes: Vec<Vec<f32>>,
}

impl SyntheticDetector {
    /// The detector of the world seeded `world_seed`.
    pub fn new(world_seed: u64, config: DetectorConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(world_seed ^ 0x6465_7465_6374_6f72));
        let count = COLOURS.len() + SHAPES.len() + SIZES.len();
        let prototypes = (0..count)
            .map(|_| {
                (0..config.feature_size)
                    .map(|_| StandardNormal.sample(&mut rng))
                    .collect()
            })
            .collect();
        Self {
            config,
            seed: world_seed,
            prototypes,
        }
    }

    /// The regions of every object of `scene`, in the scene's object order,
    /// as a [`RegionRecord`] (the type the NPZ and TSV readers return) whose
    /// id is the scene's description key.
    pub fn detect(&self, scene: &Scene) -> RegionRecord {
        let size = scene.image_size as f32;
        let features_len = self.config.feature_size;
        let mut rng =
            ChaCha8Rng::seed_from_u64(mix(self.seed ^ fnv1a(scene.description_key().as_bytes())));
        let count = scene.objects.len();
        let mut boxes = Vec::with_capacity(count);
        let mut features = Vec::with_capacity(count * features_len);
        let mut confidence = Vec::with_capacity(count);
        let mut soft_labels = Vec::with_capacity(count * NUM_DETECTOR_LABELS);
        // Attribute prototypes sum to coordinates of variance 3; scale back to 1.
        let scale = 1.0 / 3f32.sqrt();
        for object in &scene.objects {
            boxes.push(object.bbox().map(|v| (v / size).clamp(0.0, 1.0)));
            let parts = [
                &self.prototypes[object.colour],
                &self.prototypes[COLOURS.len() + object.shape],
                &self.prototypes[COLOURS.len() + SHAPES.len() + object.size],
            ];
            for f in 0..features_len {
                let noise: f32 = StandardNormal.sample(&mut rng);
                let value = parts.iter().map(|p| p[f]).sum::<f32>() * scale;
                features.push(value + self.config.feature_noise * noise);
            }
            let logits: Vec<f32> = (0..NUM_DETECTOR_LABELS)
                .map(|label| {
                    let noise = rng.random_range(-0.5f32..0.5);
                    if label == 1 + object.class_id() {
                        self.config.class_confidence + noise
                    } else {
                        noise
                    }
                })
                .collect();
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
            let total: f32 = exps.iter().sum();
            // The top class's exponential is exp(0) = 1.
            confidence.push(1.0 / total);
            soft_labels.extend(exps.into_iter().map(|e| e / total));
        }
        RegionRecord {
            image_id: scene.description_key(),
            num_boxes: count,
            feature_dim: features_len,
            features,
            boxes,
            image_size: Some((size, size)),
            confidence: Some(confidence),
            soft_labels: Some(soft_labels),
            num_classes: NUM_DETECTOR_LABELS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{Split, SyntheticWorld};

    #[test]
    fn detections_describe_the_scene() {
        let world = SyntheticWorld::new(3, 64);
        let detector = SyntheticDetector::new(world.seed, DetectorConfig::default());
        for index in 0..20 {
            let scene = world.scene(Split::Train, index);
            let found = detector.detect(&scene);
            assert_eq!(found, detector.detect(&scene), "deterministic");
            assert_eq!(found.num_boxes, scene.objects.len());
            assert_eq!(found.features.len(), found.num_boxes * 64);
            let soft_labels = found.soft_labels.as_ref().unwrap();
            for (object, (bbox, labels)) in scene.objects.iter().zip(
                found
                    .boxes
                    .iter()
                    .zip(soft_labels.chunks(NUM_DETECTOR_LABELS)),
            ) {
                let [x1, y1, x2, y2] = object.bbox();
                let expected = [x1, y1, x2, y2].map(|v| (v / 64.0).clamp(0.0, 1.0));
                assert_eq!(*bbox, expected);
                assert!((labels.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                let argmax = (0..labels.len())
                    .max_by(|&a, &b| labels[a].total_cmp(&labels[b]))
                    .unwrap();
                assert_eq!(argmax, 1 + object.class_id());
            }
        }
    }

    #[test]
    fn features_of_one_class_cluster_closer_than_other_classes() {
        let world = SyntheticWorld::new(5, 64);
        let detector = SyntheticDetector::new(world.seed, DetectorConfig::default());
        let mut by_class: Vec<Vec<Vec<f32>>> = vec![Vec::new(); NUM_CLASSES];
        for index in 0..400 {
            let scene = world.scene(Split::Train, index);
            let found = detector.detect(&scene);
            for (object, feature) in scene.objects.iter().zip(found.features.chunks(64)) {
                by_class[object.class_id()].push(feature.to_vec());
            }
        }
        let distance =
            |a: &[f32], b: &[f32]| -> f32 { a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum() };
        let classes: Vec<&Vec<Vec<f32>>> = by_class.iter().filter(|c| c.len() >= 2).collect();
        assert!(classes.len() >= 10);
        let (mut within, mut between) = (0.0, 0.0);
        for pair in classes.windows(2) {
            within += distance(&pair[0][0], &pair[0][1]);
            between += distance(&pair[0][0], &pair[1][0]);
        }
        // Same class: only noise (2·64·0.09 ≈ 11.5); different classes differ
        // in at least one prototype (≈ 2·64/3 ≈ 43 more).
        assert!(
            within * 2.0 < between,
            "within {within} vs between {between}"
        );
    }
}
