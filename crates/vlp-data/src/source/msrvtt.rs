//! MSR-VTT (Xu et al. 2016, "MSR-VTT: A Large Video Description Dataset
//! for Bridging Video and Language"; survey §2.1.2's video input):
//! `videodatainfo.json` lists the videos (`video_id`, `split`: `train`,
//! `validate` or `test`) and, separately, the sentences (`video_id`,
//! `caption`; about twenty per video). The frames are one folder per video
//! (`frames/video0/000001.jpg`, ... as a frame extractor writes them) or one
//! `.npy` array `[T, D]` of precomputed frame features per video
//! (`features/video0.npy`, as HERO's and ClipBERT's feature dumps).
//!
//! [`export_msrvtt`] writes the synthetic world's motion clips in this
//! layout, both frames and features.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::json;

use super::export::{png, Writer, MIN_IMAGE_SIZE};
use super::{read_json, CorruptBudget};
use crate::regions::npy_bytes;
use crate::synthetic::{RgbImage, Split, SyntheticWorld, NUM_CLIP_PHRASINGS};
use crate::DataError;

/// Extensions of frame files, lower case.
const FRAME_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// Side of the grid [`frame_features`] pools a frame to.
pub const FEATURE_GRID: usize = 4;

/// Length of one exported frame feature: mean RGB over a
/// [`FEATURE_GRID`]² grid.
pub const FRAME_FEATURE_DIM: usize = 3 * FEATURE_GRID * FEATURE_GRID;

#[derive(Deserialize)]
struct MsrVttFile {
    videos: Vec<MsrVttVideo>,
    sentences: Vec<MsrVttSentence>,
}

#[derive(Deserialize)]
struct MsrVttVideo {
    video_id: String,
    #[serde(default)]
    split: Option<String>,
}

#[derive(Deserialize)]
struct MsrVttSentence {
    video_id: String,
    caption: String,
}

/// Where a dataset's frames are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameStore {
    /// One folder of frame images per video, `DIR/<video_id>/`, frames in
    /// file-name order (JPEG, PNG or WebP).
    Folders(PathBuf),
    /// One `.npy` array `[T, D]` per video, `DIR/<video_id>.npy`.
    Features(PathBuf),
}

/// The frames of one video, not yet read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoFrames {
    /// Frame files in temporal order.
    Files(Vec<PathBuf>),
    /// A `[T, D]` feature array.
    Features(PathBuf),
}

/// One captioned video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoSample {
    /// The dataset's id (`video7`).
    pub video_id: String,
    /// Its captions, in file order.
    pub captions: Vec<String>,
    /// Its frames.
    pub frames: VideoFrames,
}

/// The videos of an MSR-VTT caption file with their captions, in the file's
/// video order, keeping those whose `split` is `split` (all when `None`).
/// A sentence naming a video the file does not list, and a video without
/// frames (no folder, no frame image in it, no `.npy` file), are skipped
/// and counted in `budget`; videos without a caption are left out. A file
/// that does not parse (or lacks a key) is an error naming the file and
/// the key.
pub fn read_msrvtt(
    annotations: &Path,
    frames: &FrameStore,
    split: Option<&str>,
    budget: &CorruptBudget,
) -> Result<Vec<VideoSample>, DataError> {
    let file: MsrVttFile = read_json(annotations)?;
    let position: HashMap<&str, usize> = file
        .videos
        .iter()
        .enumerate()
        .map(|(i, video)| (video.video_id.as_str(), i))
        .collect();
    let mut captions = vec![Vec::new(); file.videos.len()];
    for (i, sentence) in file.sentences.iter().enumerate() {
        match position.get(sentence.video_id.as_str()) {
            Some(&at) => captions[at].push(sentence.caption.clone()),
            None => budget.skip(format!(
                "{} sentences[{i}]: video {:?} is not in the file's videos",
                annotations.display(),
                sentence.video_id
            ))?,
        }
    }
    let mut samples = Vec::new();
    for (video, captions) in file.videos.into_iter().zip(captions) {
        if captions.is_empty() || split.is_some_and(|s| video.split.as_deref() != Some(s)) {
            continue;
        }
        match frames_of(frames, &video.video_id) {
            Ok(frames) => {
                budget.read();
                samples.push(VideoSample {
                    video_id: video.video_id,
                    captions,
                    frames,
                });
            }
            Err(reason) => budget.skip(format!("video {}: {reason}", video.video_id))?,
        }
    }
    Ok(samples)
}

/// The frames of `video_id` in `store`, or why there are none.
fn frames_of(store: &FrameStore, video_id: &str) -> Result<VideoFrames, String> {
    match store {
        FrameStore::Features(dir) => {
            let path = dir.join(format!("{video_id}.npy"));
            match path.is_file() {
                true => Ok(VideoFrames::Features(path)),
                false => Err(format!("no feature file {}", path.display())),
            }
        }
        FrameStore::Folders(dir) => {
            let folder = dir.join(video_id);
            let entries = std::fs::read_dir(&folder)
                .map_err(|err| format!("no frames folder {}: {err}", folder.display()))?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| {
                    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        FRAME_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())
                    })
                })
                .collect();
            files.sort_unstable();
            match files.is_empty() {
                true => Err(format!("no frame image in {}", folder.display())),
                false => Ok(VideoFrames::Files(files)),
            }
        }
    }
}

/// `image` pooled to a [`FEATURE_GRID`]² grid of mean RGB values in
/// `[0, 1]`, cell by cell (`[cell_y, cell_x, channel]`): the exported frame
/// feature, a stand-in for a CNN's pooled frame feature that keeps where
/// each colour is.
pub fn frame_features(image: &RgbImage) -> Vec<f32> {
    let mut sums = vec![0f32; FRAME_FEATURE_DIM];
    let mut counts = [0f32; FEATURE_GRID * FEATURE_GRID];
    for y in 0..image.height {
        for x in 0..image.width {
            let cell =
                (y * FEATURE_GRID / image.height) * FEATURE_GRID + x * FEATURE_GRID / image.width;
            counts[cell] += 1.0;
            for (c, value) in image.pixel(x, y).into_iter().enumerate() {
                sums[cell * 3 + c] += value as f32 / 255.0;
            }
        }
    }
    for (cell, count) in counts.iter().enumerate() {
        for c in 0..3 {
            sums[cell * 3 + c] /= count.max(1.0);
        }
    }
    sums
}

/// What [`export_msrvtt`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoExportOptions {
    /// Training clips: the world's scenes `0..scenes` of the train split,
    /// each with its own motion.
    pub scenes: usize,
    /// Validation and test scenes each ([`SyntheticWorld::held_out_clips`]).
    pub held_out: usize,
    /// Motion twins written beside each held-out clip (same objects, same
    /// first frame, one object moving another way).
    pub twins: usize,
    /// Frames per clip.
    pub num_frames: usize,
}

impl Default for VideoExportOptions {
    /// 1000 training clips, 100 held-out scenes per split with one twin
    /// each, 8 frames.
    fn default() -> Self {
        Self {
            scenes: 1000,
            held_out: 100,
            twins: 1,
            num_frames: 8,
        }
    }
}

/// One exported clip: its id in the files and where it is in the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedClip {
    /// `video0`, `video1`, ... over train, then val, then test.
    pub video_id: String,
    /// The world's split.
    pub split: Split,
    /// The world's scene index in that split.
    pub index: usize,
    /// The motion variant ([`SyntheticWorld::clip_variant`]).
    pub variant: usize,
}

/// What [`export_msrvtt`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoExportSummary {
    /// The folder.
    pub dir: PathBuf,
    /// Every clip written, in id order.
    pub clips: Vec<ExportedClip>,
    /// Files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
}

impl fmt::Display for VideoExportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = |split| self.clips.iter().filter(|c| c.split == split).count();
        write!(
            f,
            "exported {} clips ({} train, {} val, {} test) as msrvtt to {}: {} files, {:.1} MB",
            self.clips.len(),
            count(Split::Train),
            count(Split::Val),
            count(Split::Test),
            self.dir.display(),
            self.files,
            self.bytes as f64 / 1e6
        )
    }
}

/// MSR-VTT's name of a split.
pub fn msrvtt_split(split: Split) -> &'static str {
    match split {
        Split::Train => "train",
        Split::Val => "validate",
        Split::Test => "test",
    }
}

/// Writes the world's motion clips under `dir` in the MSR-VTT layout:
/// `videodatainfo.json` ([`NUM_CLIP_PHRASINGS`] sentences per clip),
/// `frames/<video_id>/000001.png ...` and `features/<video_id>.npy`
/// (`[T, FRAME_FEATURE_DIM]` float32, [`frame_features`]). Held-out splits
/// hold each scene's clip followed by its motion twins.
pub fn export_msrvtt(
    world: &SyntheticWorld,
    options: &VideoExportOptions,
    dir: &Path,
) -> Result<VideoExportSummary, DataError> {
    if world.image_size < MIN_IMAGE_SIZE || options.num_frames == 0 {
        return Err(DataError::DatasetFormat(format!(
            "clips need an image size of at least {MIN_IMAGE_SIZE} and one frame (got {} and {})",
            world.image_size, options.num_frames
        )));
    }
    let mut writer = Writer::new(dir);
    let (mut clips, mut videos, mut sentences) = (Vec::new(), Vec::new(), Vec::new());
    for split in [Split::Train, Split::Val, Split::Test] {
        let chosen = match split {
            Split::Train => (0..options.scenes).map(|index| (index, 0)).collect(),
            _ => world.held_out_clips(
                split,
                options.held_out,
                1 + options.twins,
                options.num_frames,
            ),
        };
        for (index, variant) in chosen {
            let video_id = format!("video{}", clips.len());
            let clip = world.clip_variant(split, index, variant, options.num_frames);
            let mut features = Vec::with_capacity(clip.frames.len() * FRAME_FEATURE_DIM);
            for (t, frame) in clip.frames.iter().enumerate() {
                let path = format!("frames/{video_id}/{:06}.png", t + 1);
                writer.write(&path, &png(frame, &path)?)?;
                features.extend(frame_features(frame));
            }
            let shape = [clip.frames.len(), FRAME_FEATURE_DIM];
            writer.write(
                &format!("features/{video_id}.npy"),
                &npy_bytes(&features, &shape),
            )?;
            videos.push(json!({
                "video_id": video_id,
                "id": clips.len(),
                "split": msrvtt_split(split),
                "category": 0,
                "start time": 0.0,
                "end time": clip.frames.len() as f64,
            }));
            for phrasing in 0..NUM_CLIP_PHRASINGS {
                sentences.push(json!({
                    "video_id": video_id,
                    "sen_id": sentences.len(),
                    "caption": clip.caption(phrasing),
                }));
            }
            clips.push(ExportedClip {
                video_id,
                split,
                index,
                variant,
            });
        }
    }
    let info = json!({
        "info": {"description": "vlp synthetic motion clips in the MSR-VTT layout"},
        "videos": videos,
        "sentences": sentences,
    });
    writer.write_json("videodatainfo.json", &info)?;
    Ok(VideoExportSummary {
        dir: dir.to_path_buf(),
        clips,
        files: writer.files,
        bytes: writer.bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::decode_file;
    use crate::regions::npy::parse_npy;
    use crate::source::{test_dir, SkipLimit};

    #[test]
    fn exported_clips_read_back_as_the_world_made_them() {
        let dir = test_dir("msrvtt");
        let world = SyntheticWorld::new(5, 32);
        let options = VideoExportOptions {
            scenes: 3,
            held_out: 2,
            twins: 1,
            num_frames: 5,
        };
        let summary = export_msrvtt(&world, &options, &dir).unwrap();
        assert_eq!(summary.clips.len(), 3 + 2 * 2 + 2 * 2);
        assert_eq!(summary.files, summary.clips.len() * (5 + 1) + 1);
        let info = dir.join("videodatainfo.json");
        let budget = CorruptBudget::new(SkipLimit::count(0));
        let folders = FrameStore::Folders(dir.join("frames"));
        let features = FrameStore::Features(dir.join("features"));
        let test = read_msrvtt(&info, &folders, Some("test"), &budget).unwrap();
        let test_features = read_msrvtt(&info, &features, Some("test"), &budget).unwrap();
        assert_eq!((test.len(), test_features.len()), (4, 4));
        let all = read_msrvtt(&info, &folders, None, &budget).unwrap();
        assert_eq!(all.len(), summary.clips.len());
        for (sample, (exported, with_features)) in test
            .iter()
            .zip(summary.clips.iter().skip(7).zip(&test_features))
        {
            assert_eq!(sample.video_id, exported.video_id);
            let clip = world.clip_variant(Split::Test, exported.index, exported.variant, 5);
            let captions: Vec<String> = (0..NUM_CLIP_PHRASINGS).map(|p| clip.caption(p)).collect();
            assert_eq!(sample.captions, captions);
            let VideoFrames::Files(files) = &sample.frames else {
                panic!("{:?}", sample.frames)
            };
            let decoded: Vec<RgbImage> = files.iter().map(|f| decode_file(f).unwrap()).collect();
            assert_eq!(decoded, clip.frames, "PNG is lossless");
            let VideoFrames::Features(path) = &with_features.frames else {
                panic!("{:?}", with_features.frames)
            };
            let array = parse_npy(&std::fs::read(path).unwrap()).unwrap();
            assert_eq!(array.shape, [5, FRAME_FEATURE_DIM]);
            assert_eq!(
                &array.values[..FRAME_FEATURE_DIM],
                &frame_features(&clip.frames[0])[..]
            );
        }
        // The test split holds each clip and its twin: same first frame.
        assert_eq!(summary.clips[7].index, summary.clips[8].index);
        assert_eq!(
            decode_file(&dir.join("frames/video7/000001.png")).unwrap(),
            decode_file(&dir.join("frames/video8/000001.png")).unwrap()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn frame_features_are_cell_means() {
        // Left half white, right half black: cells of the left two columns
        // are 1, the others 0.
        let (w, h) = (8, 4);
        let pixels = (0..w * h)
            .flat_map(|p| if p % w < w / 2 { [255u8; 3] } else { [0; 3] })
            .collect();
        let features = frame_features(&RgbImage {
            width: w,
            height: h,
            pixels,
        });
        for (i, value) in features.iter().enumerate() {
            let column = (i / 3) % FEATURE_GRID;
            assert_eq!(*value, if column < 2 { 1.0 } else { 0.0 }, "{i}");
        }
    }

    #[test]
    fn videos_without_frames_and_dangling_sentences_are_counted() {
        let dir = test_dir("msrvtt-bad");
        let info = dir.join("videodatainfo.json");
        let text = r#"{"videos": [{"video_id": "video0", "split": "train"},
                                   {"video_id": "video1", "split": "train"},
                                   {"video_id": "video2", "split": "test"},
                                   {"video_id": "video3", "split": "train"}],
                       "sentences": [{"video_id": "video0", "caption": "a", "sen_id": 0},
                                     {"video_id": "video9", "caption": "b", "sen_id": 1},
                                     {"video_id": "video1", "caption": "c", "sen_id": 2},
                                     {"video_id": "video2", "caption": "d", "sen_id": 3}]}"#;
        std::fs::write(&info, text).unwrap();
        std::fs::create_dir_all(dir.join("frames/video0")).unwrap();
        std::fs::write(dir.join("frames/video0/000001.jpg"), b"not checked here").unwrap();
        std::fs::write(dir.join("frames/video0/notes.txt"), b"ignored").unwrap();
        std::fs::create_dir_all(dir.join("frames/video1")).unwrap();
        let budget = CorruptBudget::default();
        let store = FrameStore::Folders(dir.join("frames"));
        let train = read_msrvtt(&info, &store, Some("train"), &budget).unwrap();
        assert_eq!(train.len(), 1, "video1 has no frame, video3 no caption");
        assert_eq!(
            train[0].frames,
            VideoFrames::Files(vec![dir.join("frames/video0/000001.jpg")])
        );
        let report = budget.report();
        assert_eq!((report.read, report.skipped), (1, 2));
        assert!(
            report.reasons[0].contains("sentences[1]: video \"video9\""),
            "{report:?}"
        );
        assert!(
            report.reasons[1].contains("video video1: no frame image"),
            "{report:?}"
        );
        let strict = CorruptBudget::new(SkipLimit::count(0));
        assert!(read_msrvtt(&info, &store, None, &strict).is_err());
        let missing = read_msrvtt(&dir.join("nope.json"), &store, None, &budget);
        assert!(missing.unwrap_err().to_string().contains("nope.json"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
