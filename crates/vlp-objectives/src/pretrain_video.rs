//! A video pre-training model for frame order modelling (survey §4.7, HERO
//! FOM): per-frame embeddings, HERO's temporal transformer over the frames,
//! and the [`FomHead`] on each frame's output. Text is not needed: the order
//! of a clip is read from its frames alone.
//!
//! The shuffle is drawn on the host ([`FrameOrderShuffle::apply_batch`]); the
//! frames are reordered before the temporal positions are added, so a frame
//! shown at position `p` carries position `p`'s embedding and the head has to
//! recover where it came from from what it shows.

use burn::prelude::*;
use burn::tensor::TensorData;
use vlp_data::{FrameOrderShuffle, ShuffledFrameBatch};
use vlp_features::{VideoEmbeddings, VideoEmbeddingsConfig};
use vlp_models::{ConfigError, TransformerEncoder, TransformerSize};

use crate::error::{shape_error, value_error};
use crate::fom::{fom_loss, FomHead, FomHeadConfig};
use crate::loss::accuracy;
use crate::pretrainer::ObjectiveOutput;

/// Configuration of [`VideoPretrainer`]. The default `temporal` stack is
/// HERO's temporal transformer (3 post-norm layers, 12 heads, FFN 3072 over
/// 768-wide frames), and the shuffle rate is HERO's; the longest clip is
/// `video.max_frames`, and `video.hidden_size` must equal
/// `temporal.hidden_size`.
#[derive(Config, Debug)]
pub struct VideoPretrainerConfig {
    /// Frame backbone, frame projection, temporal positions.
    pub video: VideoEmbeddingsConfig,
    /// The temporal transformer over the frames.
    #[config(default = "TransformerSize::of(768, 12, 3072, 3).with_norm_first(false)")]
    pub temporal: TransformerSize,
    /// Fraction of a clip's frames that [`Self::frame_shuffle`] shuffles.
    #[config(default = 0.15)]
    pub shuffle_probability: f64,
}

/// Frame embeddings, temporal transformer and FOM head:
/// `[B, T, C, H, W]` clip → `[B, T, H]` frame outputs → `[B·T, T]`
/// original-position logits.
#[derive(Module, Debug)]
pub struct VideoPretrainer<B: Backend> {
    /// Frame backbone, projection and temporal positions.
    pub embeddings: VideoEmbeddings<B>,
    /// Temporal transformer over the frames.
    pub temporal: TransformerEncoder<B>,
    /// Frame order head.
    pub fom: FomHead<B>,
}

impl VideoPretrainerConfig {
    /// Whether the sizes fit: the temporal heads split its width, and the
    /// frame embeddings are as wide as the temporal stack (keys
    /// `temporal.*`, `video.hidden_size`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.video.hidden_size != self.temporal.hidden_size {
            return Err(ConfigError::new(
                "video.hidden_size",
                self.video.hidden_size,
                format!(
                    "the frame embeddings' width must equal temporal.hidden_size = {}",
                    self.temporal.hidden_size
                ),
            ));
        }
        self.temporal.validate("temporal")
    }

    /// The pre-trainer: embeddings, temporal layers, FOM head. Panics with
    /// [`Self::validate`]'s error on sizes that do not fit.
    pub fn init<B: Backend>(&self, device: &B::Device) -> VideoPretrainer<B> {
        if let Err(error) = self.validate() {
            panic!("{error}");
        }
        let layer = self
            .temporal
            .layer()
            .with_layer_norm_eps(self.video.layer_norm_eps);
        VideoPretrainer {
            embeddings: self.video.init(device),
            temporal: self.temporal.encoder(layer).init(device),
            fom: FomHeadConfig::new(self.temporal.hidden_size, self.video.max_frames).init(device),
        }
    }

    /// The data-side shuffle this model is trained with; an error names a
    /// `shuffle_probability` outside `[0, 1]`.
    pub fn frame_shuffle(&self) -> crate::Result<FrameOrderShuffle> {
        let shuffle = FrameOrderShuffle {
            probability: self.shuffle_probability,
        };
        shuffle
            .validate()
            .map_err(|err| value_error("shuffle_probability", err.to_string()))?;
        Ok(shuffle)
    }
}

impl<B: Backend> VideoPretrainer<B> {
    /// FOM on `clips` `[B, T, C, H, W]` (frames in temporal order) shown in
    /// the order of `shuffled` (`[B, T]` orders and targets, from
    /// [`FrameOrderShuffle::apply_batch`] with `max_frames = T`). The loss is
    /// the mean cross-entropy over the shuffled frames (0 when none is); the
    /// metric is the accuracy of their original-position prediction.
    pub fn forward(
        &self,
        clips: Tensor<B, 5>,
        shuffled: &ShuffledFrameBatch,
    ) -> crate::Result<ObjectiveOutput<B>> {
        let [batch, frames, channels, height, width] = clips.dims();
        let rows = batch * frames;
        if shuffled.frames != frames || shuffled.orders.len() != rows {
            return Err(shape_error(
                "frame shuffle",
                format!("[{batch}, {frames}] orders"),
                &[
                    shuffled.orders.len() / shuffled.frames.max(1),
                    shuffled.frames,
                ],
            ));
        }
        let device = clips.device();
        let shown = clips
            .reshape([rows, channels, height, width])
            .select(0, row_indices(shuffled, &device))
            .reshape([batch, frames, channels, height, width]);
        let embedded = self.embeddings.forward(shown, None);
        let outputs = self.temporal.forward(embedded.embeddings, None);
        let [_, _, hidden] = outputs.dims();
        // A frame can only come from one of the clip's `T` positions: the
        // head's columns past `T` are never a target.
        let logits = self
            .fom
            .forward(outputs.reshape([rows, hidden]))
            .slice([0..rows, 0..frames]);
        let targets = Tensor::<B, 1, Int>::from_data(
            TensorData::new(shuffled.targets.clone(), [rows]),
            &device,
        );
        let loss = fom_loss(logits.clone(), targets.clone())?;
        let moved: Vec<i64> = (0..rows as i64)
            .filter(|&row| shuffled.targets[row as usize] >= 0)
            .collect();
        let metric = if moved.is_empty() {
            Tensor::zeros([1], &device)
        } else {
            let moved = Tensor::from_data(TensorData::new(moved.clone(), [moved.len()]), &device);
            accuracy(logits.select(0, moved.clone()), targets.select(0, moved))
        };
        Ok(ObjectiveOutput {
            name: "fom",
            loss,
            metric,
            metric_name: "accuracy",
        })
    }
}

/// `[B·T]` row of the flattened `[B·T, …]` clip shown at each position.
fn row_indices<B: Backend>(shuffled: &ShuffledFrameBatch, device: &B::Device) -> Tensor<B, 1, Int> {
    let frames = shuffled.frames;
    let rows: Vec<i64> = shuffled
        .orders
        .iter()
        .enumerate()
        .map(|(position, &original)| ((position / frames) * frames + original) as i64)
        .collect();
    let len = rows.len();
    Tensor::from_data(TensorData::new(rows, [len]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::module::AutodiffModule;
    use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use vlp_data::clips_to_tensor;
    use vlp_data::synthetic::{Clip, Split, SyntheticWorld};
    use vlp_features::{FrameBackboneConfig, PatchEmbeddingsConfig};

    const FRAMES: usize = 4;
    const SIDE: usize = 16;

    /// One patch per frame: the frame vector is a learned linear map of the
    /// whole frame, so where the objects are survives the mean pooling.
    fn config() -> VideoPretrainerConfig {
        let patches = PatchEmbeddingsConfig::new(SIDE, SIDE, 32).with_dropout(0.0);
        let video = VideoEmbeddingsConfig::new(FrameBackboneConfig::Patch(patches), 32)
            .with_max_frames(FRAMES)
            .with_dropout(0.0);
        VideoPretrainerConfig::new(video)
            .with_temporal(TransformerSize::of(32, 4, 64, 2).with_dropout(0.0))
    }

    /// Clips `first..first + count` of `split`, shuffled.
    fn batch<B: Backend>(
        world: &SyntheticWorld,
        split: Split,
        first: usize,
        count: usize,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> (Tensor<B, 5>, ShuffledFrameBatch) {
        let shuffle = config().frame_shuffle().unwrap();
        shuffle.synthetic_batch(world, split, first..first + count, FRAMES, rng, device)
    }

    #[test]
    fn validate_names_the_width_and_the_heads() {
        let mut config = config();
        assert_eq!(config.validate(), Ok(()));
        config.video.hidden_size = 48;
        assert_eq!(config.validate().unwrap_err().key, "video.hidden_size");
        config.video.hidden_size = 32;
        config.temporal.num_attention_heads = 3;
        assert_eq!(
            config.validate().unwrap_err().key,
            "temporal.hidden_size",
            "32 does not split into 3 heads"
        );
    }

    #[test]
    fn shuffling_on_the_device_matches_the_host_reorder_and_nothing_shuffled_costs_nothing() {
        let _serial = crate::test_serial();
        let device = Default::default();
        <NdArray as Backend>::seed(&device, 0);
        let model = config().init::<NdArray>(&device);
        let world = SyntheticWorld::new(0, SIDE);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let (clips, shuffled) = batch::<NdArray>(&world, Split::Train, 0, 3, &mut rng, &device);
        let output = model.forward(clips, &shuffled).unwrap();
        assert_eq!((output.name, output.metric_name), ("fom", "accuracy"));
        assert_eq!(output.loss.dims(), [1]);
        let loss: f32 = output.loss.into_scalar().elem();
        assert!(loss.is_finite() && loss > 0.0, "{loss}");

        // The same clips reordered on the host, shown as they are.
        let reordered: Vec<Clip> = (0..3)
            .map(|row| {
                let clip = world.clip(Split::Train, row, FRAMES);
                let order = vlp_data::ShuffledFrames {
                    order: shuffled.orders[row * FRAMES..(row + 1) * FRAMES].to_vec(),
                    targets: vec![],
                };
                Clip {
                    frames: order.reorder(&clip.frames),
                    ..clip
                }
            })
            .collect();
        let refs: Vec<&Clip> = reordered.iter().collect();
        let in_place = ShuffledFrameBatch {
            orders: (0..3).flat_map(|_| 0..FRAMES).collect(),
            ..shuffled.clone()
        };
        let host: f32 = model
            .forward(clips_to_tensor(&refs, &device), &in_place)
            .unwrap()
            .loss
            .into_scalar()
            .elem();
        assert!((host - loss).abs() < 1e-5, "{host} vs {loss}");

        let unshuffled = ShuffledFrameBatch {
            targets: vec![-1; 3 * FRAMES],
            ..in_place
        };
        let none = model
            .forward(clips_to_tensor(&refs, &device), &unshuffled)
            .unwrap();
        assert_eq!(none.metric_value(), 0.0);
        assert_eq!(none.loss.into_scalar().elem::<f32>(), 0.0);

        let error = model
            .forward(clips_to_tensor(&refs[..2], &device), &shuffled)
            .unwrap_err();
        assert!(error.to_string().contains("frame shuffle"), "{error}");
        let error = config()
            .with_shuffle_probability(1.5)
            .frame_shuffle()
            .unwrap_err();
        assert!(error.to_string().contains("shuffle_probability"), "{error}");
    }

    /// Mean held-out (loss, accuracy) on fixed test-split clips and shuffles.
    fn held_out(model: &VideoPretrainer<NdArray>, world: &SyntheticWorld) -> (f32, f32) {
        let device = Default::default();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (batches, size) = (4, 32);
        let (mut loss, mut accuracy) = (0.0, 0.0);
        for b in 0..batches {
            let (clips, shuffled) = batch(world, Split::Test, b * size, size, &mut rng, &device);
            let output = model.forward(clips, &shuffled).unwrap();
            accuracy += output.metric_value() / batches as f32;
            loss += output.loss.into_scalar().elem::<f32>() / batches as f32;
        }
        (loss, accuracy)
    }

    /// The best accuracy without looking at the frames: for each position,
    /// always guess the original index the shuffle most often puts there
    /// (estimated from many draws of the same shuffle).
    fn position_only_accuracy() -> f32 {
        let shuffle = config().frame_shuffle().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut counts = [[0usize; FRAMES]; FRAMES];
        for _ in 0..20_000 {
            let clip = shuffle.apply(FRAMES, &mut rng);
            for (position, &target) in clip.targets.iter().enumerate() {
                if target >= 0 {
                    counts[position][target as usize] += 1;
                }
            }
        }
        let best: usize = counts.iter().map(|row| row.iter().max().unwrap()).sum();
        let total: usize = counts.iter().flatten().sum();
        best as f32 / total as f32
    }

    #[test]
    fn learns_the_order_of_held_out_clips() {
        let _serial = crate::test_serial();
        type Ad = Autodiff<NdArray>;
        let device = Default::default();
        Ad::seed(&device, 0);
        let world = SyntheticWorld::new(0, SIDE);
        let mut model = config().init::<Ad>(&device);
        let (init_loss, init_accuracy) = held_out(&model.valid(), &world);
        let mut optimizer = AdamWConfig::new().init::<Ad, VideoPretrainer<Ad>>();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (steps, size) = (600, 32);
        for step in 0..steps {
            let (clips, shuffled) =
                batch(&world, Split::Train, step * size, size, &mut rng, &device);
            let output = model.forward(clips, &shuffled).unwrap();
            let grads = GradientsParams::from_grads(output.loss.backward(), &model);
            model = optimizer.step(3e-3, model, grads);
        }
        let (loss, accuracy) = held_out(&model.valid(), &world);
        // The head picks one of T positions: a guess is right 1/T of the
        // time, and ln T is the loss of a uniform guess.
        let chance = 1.0 / FRAMES as f32;
        let blind = position_only_accuracy();
        eprintln!("FOM held-out: loss {init_loss:.3} -> {loss:.3}, accuracy {init_accuracy:.3} -> {accuracy:.3} (chance {chance}, position-only {blind:.3})");
        assert!(blind < 0.4, "{blind}");
        // The bar is the computed position-only baseline (above chance), not
        // a multiple of chance: the same seeds gave 0.49 to 0.61 over seven
        // processes here, since training on NdArray is not bit-reproducible
        // from one process to the next (the initial model is).
        assert!(
            accuracy > blind + 0.1,
            "accuracy {init_accuracy} -> {accuracy}, chance {chance}, position-only {blind}"
        );
        assert!(
            (init_loss - (FRAMES as f32).ln()).abs() < 0.3 && loss < init_loss - 0.4,
            "loss {init_loss} -> {loss}"
        );
    }
}
