//! Clips from video datasets (survey §2.1.2: a video enters a model as a
//! few frames sampled from it): `T` frames sampled uniformly, one per equal
//! segment, at the segment's centre for evaluation and at a random offset
//! in training (TSN's and ClipBERT's sparse sampling); frames decoded and
//! transformed by the image pipeline with one crop and one flip for the
//! whole clip, or rows of a per-video feature array taken instead.
//!
//! A frame that does not decode costs that frame, not the clip: it is
//! skipped and counted in the budget, and the nearest readable frame of the
//! same video takes its place; a video with no readable frame (or a feature
//! file that does not parse) is left out of its batch and counted.

use burn::tensor::{backend::Backend, Tensor, TensorData};
use rand::Rng;
use rayon::prelude::*;

use crate::image::{sample_rng, ImagePipeline, ImageSample, ImageSource, TransformMode};
use crate::regions::npy::parse_npy;
use crate::source::{CorruptBudget, VideoFrames, VideoSample};
use crate::DataError;

/// Salt of the generator that draws a clip's frame offset, apart from the
/// one the image pipeline draws its crop and flip from.
const OFFSET_SALT: u64 = 0x6672_616d_6573;

/// `count` frame indices out of `available`, one per equal segment at
/// `offset` (in `[0, 1]`) of the segment: `floor((i + offset) * available /
/// count)`, kept inside segment `i` (`floor(i * available / count)` up to
/// the next segment's start). Fewer frames than `count` repeat frames, in
/// order.
pub fn uniform_frames(available: usize, count: usize, offset: f64) -> Vec<usize> {
    let offset = offset.clamp(0.0, 1.0);
    (0..count)
        .map(|i| {
            let start = i * available / count;
            let end = ((i + 1) * available / count).max(start + 1);
            let at = ((i as f64 + offset) * available as f64 / count as f64).floor() as usize;
            at.clamp(start, end - 1).min(available.saturating_sub(1))
        })
        .collect()
}

/// A clip's frames on the host.
#[derive(Debug, Clone, PartialEq)]
pub enum ClipFrames {
    /// Normalised frames `[T, 3, S, S]`, row-major.
    Pixels(Vec<f32>),
    /// Feature rows `[T, D]`, row-major.
    Features {
        /// The values.
        values: Vec<f32>,
        /// `D`.
        dim: usize,
    },
}

/// One loaded clip.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedClip {
    /// Its frames.
    pub frames: ClipFrames,
    /// The caption ("left" and "right" swapped when the frames were flipped).
    pub caption: String,
    /// Which of the video's frames were taken (after replacing bad ones).
    pub frame_indices: Vec<usize>,
}

/// Loads clips of `num_frames` frames through an image pipeline.
#[derive(Debug, Clone)]
pub struct VideoLoader {
    pipeline: ImagePipeline,
    num_frames: usize,
}

impl VideoLoader {
    /// A loader of `num_frames`-frame clips (at least one).
    pub fn new(pipeline: ImagePipeline, num_frames: usize) -> Result<Self, DataError> {
        if num_frames == 0 {
            return Err(DataError::DatasetFormat(
                "a clip needs at least one frame".into(),
            ));
        }
        Ok(Self {
            pipeline,
            num_frames,
        })
    }

    /// The frame indices a clip of a video of `available` frames takes in
    /// `mode`; `index` keys the training offset.
    pub fn frame_indices(&self, available: usize, mode: TransformMode, index: u64) -> Vec<usize> {
        let offset = match mode {
            TransformMode::Eval => 0.5,
            TransformMode::Train { seed, epoch } => {
                sample_rng(seed ^ OFFSET_SALT, epoch, index).random_range(0.0..1.0)
            }
        };
        uniform_frames(available, self.num_frames, offset)
    }

    /// `video`'s clip with `caption`, sampled and transformed for `mode`;
    /// `index` (the sample's index in its data set) keys the draws. Bad
    /// frames are counted in `budget` (its error once too many were).
    ///
    /// # Errors
    /// [`DataError::Video`] when no frame of the video is readable or its
    /// feature file does not parse; [`DataError::TooManySkipped`].
    pub fn load(
        &self,
        video: &VideoSample,
        caption: &str,
        mode: TransformMode,
        index: u64,
        budget: &CorruptBudget,
    ) -> Result<LoadedClip, DataError> {
        let error = |reason: String| DataError::Video {
            video: video.video_id.clone(),
            reason,
        };
        match &video.frames {
            VideoFrames::Features(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|err| error(format!("{}: {err}", path.display())))?;
                let array =
                    parse_npy(&bytes).map_err(|err| error(format!("{}: {err}", path.display())))?;
                let [frames, dim] = array.shape[..] else {
                    return Err(error(format!(
                        "{}: shape {:?} is not [T, D]",
                        path.display(),
                        array.shape
                    )));
                };
                if frames == 0 {
                    return Err(error(format!("{}: no frame", path.display())));
                }
                let frame_indices = self.frame_indices(frames, mode, index);
                let values = frame_indices
                    .iter()
                    .flat_map(|&t| array.values[t * dim..(t + 1) * dim].iter().copied())
                    .collect();
                budget.read();
                Ok(LoadedClip {
                    frames: ClipFrames::Features { values, dim },
                    caption: caption.to_string(),
                    frame_indices,
                })
            }
            VideoFrames::Files(files) => {
                let mut frames = FrameCache::new(files.len());
                let mut pixels = Vec::new();
                let mut taken = Vec::with_capacity(self.num_frames);
                let mut flipped_caption = None;
                for wanted in self.frame_indices(files.len(), mode, index) {
                    let (at, frame) = frames
                        .nearest_readable(
                            wanted,
                            |t| {
                                let sample = ImageSample {
                                    index,
                                    image: ImageSource::File(&files[t]),
                                    caption,
                                };
                                self.pipeline.prepare(&[sample], mode)
                            },
                            budget,
                        )?
                        .ok_or_else(|| {
                            error(format!("none of its {} frames decodes", files.len()))
                        })?;
                    pixels.extend_from_slice(&frame.pixels);
                    flipped_caption.get_or_insert_with(|| frame.caption.clone());
                    taken.push(at);
                }
                Ok(LoadedClip {
                    frames: ClipFrames::Pixels(pixels),
                    caption: flipped_caption.unwrap_or_else(|| caption.to_string()),
                    frame_indices: taken,
                })
            }
        }
    }

    /// `clips` (video, caption) loaded in parallel on rayon's current pool;
    /// `indices[i]` keys clip `i`'s draws. A clip that cannot be loaded is
    /// left out and counted in `budget`. The result does not depend on the
    /// number of threads.
    ///
    /// # Errors
    /// [`DataError::TooManySkipped`] once the budget is spent.
    pub fn prepare(
        &self,
        clips: &[(&VideoSample, &str)],
        indices: &[u64],
        mode: TransformMode,
        budget: &CorruptBudget,
    ) -> Result<ClipBatch, DataError> {
        let loaded: Vec<_> = clips
            .par_iter()
            .zip(indices)
            .map(|((video, caption), &index)| self.load(video, caption, mode, index, budget))
            .collect();
        let mut batch = ClipBatch {
            clips: Vec::new(),
            indices: Vec::new(),
            num_frames: self.num_frames,
        };
        for (result, &index) in loaded.into_iter().zip(indices) {
            match result {
                Ok(clip) => {
                    batch.clips.push(clip);
                    batch.indices.push(index);
                }
                Err(err @ DataError::TooManySkipped { .. }) => return Err(err),
                Err(err) => budget.skip(err.to_string())?,
            }
        }
        Ok(batch)
    }
}

/// The readable frames of one video met so far.
struct FrameCache {
    frames: Vec<Option<Option<Decoded>>>,
}

struct Decoded {
    pixels: Vec<f32>,
    caption: String,
}

impl FrameCache {
    fn new(len: usize) -> Self {
        Self {
            frames: (0..len).map(|_| None).collect(),
        }
    }

    /// Frame `wanted` or, when it does not load, the nearest readable one
    /// (later first at equal distance); every frame that fails is counted
    /// once in `budget`. `None` when no frame loads.
    fn nearest_readable(
        &mut self,
        wanted: usize,
        mut load: impl FnMut(usize) -> crate::HostImageBatch,
        budget: &CorruptBudget,
    ) -> Result<Option<(usize, &Decoded)>, DataError> {
        let len = self.frames.len();
        let candidates = std::iter::once(wanted)
            .chain((1..len).flat_map(|d| [wanted + d, wanted.wrapping_sub(d)]));
        let mut found = None;
        for t in candidates.filter(|&t| t < len) {
            if self.frames[t].is_none() {
                let batch = load(t);
                self.frames[t] = Some(match batch.skipped.into_iter().next() {
                    Some(skipped) => {
                        budget.skip(skipped.error.to_string())?;
                        None
                    }
                    None => {
                        budget.read();
                        Some(Decoded {
                            pixels: batch.images.pixels,
                            caption: batch.captions.into_iter().next().unwrap_or_default(),
                        })
                    }
                });
            }
            if matches!(self.frames[t], Some(Some(_))) {
                found = Some(t);
                break;
            }
        }
        Ok(found.map(|t| (t, self.frames[t].as_ref().and_then(Option::as_ref).unwrap())))
    }
}

/// Loaded clips of one batch, all of [`VideoLoader`]'s length.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipBatch {
    /// The clips loaded, in order.
    pub clips: Vec<LoadedClip>,
    /// Their indices, in order.
    pub indices: Vec<u64>,
    /// `T`.
    pub num_frames: usize,
}

impl ClipBatch {
    /// The clips' captions, in order.
    pub fn captions(&self) -> Vec<String> {
        self.clips.iter().map(|clip| clip.caption.clone()).collect()
    }

    /// Pixel clips as `[N, T, 3, S, S]` on `device`; `None` when the clips
    /// are feature rows (or there are none).
    pub fn pixels<B: Backend>(
        &self,
        image_size: usize,
        device: &B::Device,
    ) -> Option<Tensor<B, 5>> {
        let mut values = Vec::new();
        for clip in &self.clips {
            let ClipFrames::Pixels(pixels) = &clip.frames else {
                return None;
            };
            values.extend_from_slice(pixels);
        }
        let shape = [self.clips.len(), self.num_frames, 3, image_size, image_size];
        (!self.clips.is_empty()).then(|| Tensor::from_data(TensorData::new(values, shape), device))
    }

    /// Feature clips as `[N, T, D]` on `device`; `None` when the clips are
    /// pixels (or there are none).
    pub fn features<B: Backend>(&self, device: &B::Device) -> Option<Tensor<B, 3>> {
        let mut values = Vec::new();
        let mut dim = 0;
        for clip in &self.clips {
            let ClipFrames::Features {
                values: rows,
                dim: d,
            } = &clip.frames
            else {
                return None;
            };
            values.extend_from_slice(rows);
            dim = *d;
        }
        let shape = [self.clips.len(), self.num_frames, dim];
        (!self.clips.is_empty()).then(|| Tensor::from_data(TensorData::new(values, shape), device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{batcher_scaling, ImageTransformConfig};
    use crate::source::{
        export_msrvtt, read_msrvtt, test_dir, FrameStore, SkipLimit, VideoExportOptions,
    };
    use crate::synthetic::{Split, SyntheticWorld};
    use burn::backend::NdArray;

    #[test]
    fn uniform_frames_take_one_per_segment() {
        assert_eq!(uniform_frames(16, 4, 0.5), [2, 6, 10, 14]);
        assert_eq!(uniform_frames(16, 4, 0.0), [0, 4, 8, 12]);
        assert_eq!(uniform_frames(16, 4, 1.0), [3, 7, 11, 15]);
        assert_eq!(uniform_frames(3, 6, 0.5), [0, 0, 1, 1, 2, 2]);
        assert_eq!(uniform_frames(5, 5, 0.9), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn training_offsets_stay_in_their_segments_and_follow_the_seed() {
        let pipeline = ImageTransformConfig::new().init().unwrap();
        let loader = VideoLoader::new(pipeline, 4).unwrap();
        let train =
            |seed, index| loader.frame_indices(40, TransformMode::Train { seed, epoch: 0 }, index);
        let mut seen = std::collections::HashSet::new();
        for index in 0..50 {
            let frames = train(1, index);
            for (i, t) in frames.iter().enumerate() {
                assert!((i * 10..(i + 1) * 10).contains(t), "{frames:?}");
            }
            assert_eq!(frames, train(1, index));
            seen.insert(frames[0]);
        }
        assert!(seen.len() >= 8, "offsets vary: {seen:?}");
        assert_eq!(
            loader.frame_indices(40, TransformMode::Eval, 3),
            [5, 15, 25, 35]
        );
    }

    /// The exported clips load through the pipeline as the world drew them;
    /// a corrupt frame is replaced by its neighbour and counted, a video
    /// whose frames are all corrupt is left out and counted.
    #[test]
    fn exported_clips_load_and_bad_frames_are_skipped_and_counted() {
        let dir = test_dir("video-loader");
        let world = SyntheticWorld::new(6, 32);
        let options = VideoExportOptions {
            scenes: 3,
            held_out: 1,
            twins: 1,
            num_frames: 8,
        };
        export_msrvtt(&world, &options, &dir).unwrap();
        let info = dir.join("videodatainfo.json");
        let budget = CorruptBudget::new(SkipLimit::count(0));
        let videos = read_msrvtt(
            &info,
            &FrameStore::Folders(dir.join("frames")),
            Some("train"),
            &budget,
        )
        .unwrap();
        let loader = VideoLoader::new(batcher_scaling(32), 4).unwrap();
        let clips: Vec<(&VideoSample, &str)> =
            videos.iter().map(|v| (v, v.captions[0].as_str())).collect();
        let batch = loader
            .prepare(&clips, &[0, 1, 2], TransformMode::Eval, &budget)
            .unwrap();
        let pixels = batch.pixels::<NdArray>(32, &Default::default()).unwrap();
        assert_eq!(pixels.dims(), [3, 4, 3, 32, 32]);
        // Frames 1, 3, 5, 7 of each clip, scaled as the batcher scales them.
        let clip = world.clip(Split::Train, 1, 8);
        let expected: Vec<&_> = [1, 3, 5, 7].iter().map(|&t| &clip.frames[t]).collect();
        let expected: Vec<f32> = crate::images_to_tensor::<NdArray>(&expected, &Default::default())
            .into_data()
            .to_vec()
            .unwrap();
        let ClipFrames::Pixels(got) = &batch.clips[1].frames else {
            panic!()
        };
        vlp_test_support::assert_close(
            "clip 1",
            &got[..],
            &expected[..],
            vlp_test_support::Tol::abs(1e-6),
        );
        assert_eq!(batch.captions()[1], clip.caption(0));

        // Corrupt frame 3 of video1 (the nearest, frame 4, replaces it) and
        // every frame of video2.
        std::fs::write(dir.join("frames/video1/000004.png"), b"broken").unwrap();
        for t in 1..=8 {
            std::fs::write(dir.join(format!("frames/video2/{t:06}.png")), b"broken").unwrap();
        }
        let strict = CorruptBudget::new(SkipLimit::count(0));
        let error = loader
            .prepare(&clips[..2], &[0, 1], TransformMode::Eval, &strict)
            .unwrap_err();
        assert!(error.to_string().contains("000004.png"), "{error}");
        let budget = CorruptBudget::unlimited();
        let batch = loader
            .prepare(&clips, &[0, 1, 2], TransformMode::Eval, &budget)
            .unwrap();
        assert_eq!(batch.indices, [0, 1]);
        assert_eq!(batch.clips[1].frame_indices, [1, 4, 5, 7]);
        let report = budget.report();
        // 1 bad frame of video1, 8 of video2, and video2 itself.
        assert_eq!(report.skipped, 1 + 8 + 1, "{report:?}");
        let named = |text: &str| report.reasons.iter().filter(|r| r.contains(text)).count();
        assert_eq!(named("video1/000004.png"), 1, "{report:?}");
        assert_eq!(
            named("video video2: none of its 8 frames decodes"),
            1,
            "{report:?}"
        );

        // The feature variant gives the exported rows.
        let with_features = read_msrvtt(
            &info,
            &FrameStore::Features(dir.join("features")),
            Some("train"),
            &budget,
        )
        .unwrap();
        let clips: Vec<(&VideoSample, &str)> = with_features
            .iter()
            .map(|v| (v, v.captions[0].as_str()))
            .collect();
        let batch = loader
            .prepare(&clips, &[0, 1, 2], TransformMode::Eval, &budget)
            .unwrap();
        let features = batch.features::<NdArray>(&Default::default()).unwrap();
        assert_eq!(features.dims(), [3, 4, crate::source::FRAME_FEATURE_DIM]);
        let row: Vec<f32> = features.slice([1..2, 1..2]).into_data().to_vec().unwrap();
        assert_eq!(row, crate::source::frame_features(&clip.frames[3]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
