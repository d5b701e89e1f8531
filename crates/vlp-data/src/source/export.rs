//! The synthetic world written as real datasets (issue 15's `data export`):
//! PNG images and the annotation files or tar shards of each format, so
//! every reader, the image pipeline and the runner can be tried on files
//! without a download, and read back ([`read_exported`]) for comparison
//! with the in-memory world.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use serde_json::json;

use super::synthetic::split_name;
use super::{
    read_coco, read_delimited, read_jsonl, read_karpathy, read_lavis, read_vqa2, CorruptBudget,
    DelimitedOptions, ImagePattern, KarpathySelect, Sample, SampleSource, ShardSplit,
    SyntheticSource, Vqa2Options, WebDataset, WebDatasetOptions,
};
use crate::regions::write_npz;
use crate::synthetic::{RgbImage, Split, SyntheticDetector, SyntheticWorld};
use crate::DataError;

/// The image names of an exported VQA v2 dataset (COCO's, as PNG).
pub const EXPORT_VQA2_PATTERN: &str = "COCO_{split}2014_{image_id:012}.png";

/// The smallest image side [`export`] accepts (smaller ones leave no room
/// for the world's objects).
pub const MIN_IMAGE_SIZE: usize = 16;

/// A dataset layout [`export`] writes and [`read_exported`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportFormat {
    /// `annotations/captions_{split}2017.json`, images `{split}2017/{id:012}.png`.
    Coco,
    /// `dataset_coco.json` (all splits), images `{split}2014/{id:012}.png`.
    Karpathy,
    /// `{split}.jsonl` (one line per caption), images `images/{id:012}.png`.
    Jsonl,
    /// `annotations/coco_karpathy_{split}.json` (one entry per caption for
    /// train, per image with a caption list otherwise), images `images/`.
    Lavis,
    /// `{split}.csv` with an `image,caption` header, images `images/`.
    Csv,
    /// `{split}.tsv` without header, `caption<TAB>image` (Conceptual
    /// Captions' order), images `images/`.
    Tsv,
    /// Tar shards `{split}-{00000..}.tar` of `{id:012}.png`, `.txt` (first
    /// caption) and `.json` (`caption`: every caption).
    WebDataset,
    /// `v2_OpenEnded_mscoco_{split}2014_questions.json` and
    /// `v2_mscoco_{split}2014_annotations.json` for train and val, images
    /// `{split}2014/COCO_{split}2014_{id:012}.png`.
    Vqa2,
}

impl ExportFormat {
    /// Every format.
    pub const ALL: [ExportFormat; 8] = [
        ExportFormat::Coco,
        ExportFormat::Karpathy,
        ExportFormat::Jsonl,
        ExportFormat::Lavis,
        ExportFormat::Csv,
        ExportFormat::Tsv,
        ExportFormat::WebDataset,
        ExportFormat::Vqa2,
    ];

    /// The format's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Coco => "coco",
            ExportFormat::Karpathy => "karpathy",
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Lavis => "lavis",
            ExportFormat::Csv => "csv",
            ExportFormat::Tsv => "tsv",
            ExportFormat::WebDataset => "webdataset",
            ExportFormat::Vqa2 => "vqa2",
        }
    }

    /// The splits the format holds (VQA v2 has no annotated test split).
    pub fn splits(self) -> &'static [Split] {
        match self {
            ExportFormat::Vqa2 => &[Split::Train, Split::Val],
            _ => &[Split::Train, Split::Val, Split::Test],
        }
    }

    /// Where the images of an exported dataset's `split` are, relative to
    /// its folder, for `id`.
    fn image_path(self, split: Split, id: u64) -> String {
        let s = split_name(split);
        match self {
            ExportFormat::Coco => format!("{s}2017/{id:012}.png"),
            ExportFormat::Karpathy => format!("{s}2014/{id:012}.png"),
            ExportFormat::Vqa2 => format!(
                "{s}2014/{}",
                vqa2_pattern().file_name(vqa2_split(split), id)
            ),
            _ => format!("images/{id:012}.png"),
        }
    }

    /// The key this format's reader gives the sample of image `id`: the
    /// image id where the annotations name one, else the image file's stem
    /// (CSV, TSV) or the WebDataset key.
    pub fn sample_key(self, id: u64) -> String {
        match self {
            ExportFormat::Csv | ExportFormat::Tsv | ExportFormat::WebDataset => format!("{id:012}"),
            _ => id.to_string(),
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ExportFormat {
    type Err = DataError;

    fn from_str(text: &str) -> Result<Self, DataError> {
        Self::ALL
            .into_iter()
            .find(|format| format.name() == text)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|f| f.name()).collect();
                DataError::DatasetFormat(format!(
                    "unknown dataset format {text:?}: use one of {}",
                    names.join(", ")
                ))
            })
    }
}

fn vqa2_pattern() -> ImagePattern {
    ImagePattern::parse(EXPORT_VQA2_PATTERN).expect("the export pattern parses")
}

/// VQA v2's split names in file names.
fn vqa2_split(split: Split) -> &'static str {
    match split {
        Split::Train => "train",
        _ => "val",
    }
}

/// What [`export`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportOptions {
    /// The layout.
    pub format: ExportFormat,
    /// Training scenes: the world's scenes `0..scenes` of the train split.
    pub scenes: usize,
    /// Validation and test scenes each: the first `held_out` scenes of
    /// distinct descriptions ([`SyntheticWorld::distinct_indices`], as the
    /// runner's held-out retrieval takes them).
    pub held_out: usize,
    /// Samples per tar shard (WebDataset).
    pub shard_size: usize,
}

impl ExportOptions {
    /// `format` with 1000 training scenes, 100 held-out scenes per split
    /// and 1000 samples per shard.
    pub fn new(format: ExportFormat) -> Self {
        Self {
            format,
            scenes: 1000,
            held_out: 100,
            shard_size: 1000,
        }
    }
}

/// One exported scene: its id in the files and where it is in the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportedScene {
    /// Its id in the files (image id, file name digits, WebDataset key); 1,
    /// 2, ... over train, then val, then test.
    pub id: u64,
    /// The world's split.
    pub split: Split,
    /// The world's scene index in that split.
    pub index: usize,
}

/// What [`export`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// The layout.
    pub format: ExportFormat,
    /// The folder.
    pub dir: PathBuf,
    /// Every scene written, in id order.
    pub scenes: Vec<ExportedScene>,
    /// Files written (images, annotation files, shards).
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
}

impl fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = |split| self.scenes.iter().filter(|s| s.split == split).count();
        write!(
            f,
            "exported {} scenes ({} train, {} val, {} test) as {} to {}: {} files, {:.1} MB",
            self.scenes.len(),
            count(Split::Train),
            count(Split::Val),
            count(Split::Test),
            self.format,
            self.dir.display(),
            self.files,
            self.bytes as f64 / 1e6
        )
    }
}

/// Counts what is written under one folder.
pub(super) struct Writer {
    dir: PathBuf,
    pub(super) files: usize,
    pub(super) bytes: u64,
}

impl Writer {
    /// Writes under `dir`.
    pub(super) fn new(dir: &Path) -> Writer {
        Writer {
            dir: dir.to_path_buf(),
            files: 0,
            bytes: 0,
        }
    }

    pub(super) fn write(&mut self, relative: &str, bytes: &[u8]) -> Result<(), DataError> {
        let path = self.dir.join(relative);
        let error = |err: std::io::Error| DataError::DatasetWrite {
            path: path.clone(),
            reason: err.to_string(),
        };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(error)?;
        }
        fs::write(&path, bytes).map_err(error)?;
        self.files += 1;
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    pub(super) fn write_json(
        &mut self,
        relative: &str,
        value: &serde_json::Value,
    ) -> Result<(), DataError> {
        self.write(relative, value.to_string().as_bytes())
    }
}

/// Writes the detector regions of every scene `summary` exported as
/// `regions/<key>.npz` in its folder, one UNITER-style file per image named
/// by the key its reader gives the sample ([`ExportFormat::sample_key`]),
/// so that a dataset's `regions` can name that folder; returns the folder.
///
/// # Errors
/// [`DataError::RegionIo`] naming a file that cannot be written.
pub fn export_regions(
    world: &SyntheticWorld,
    detector: &SyntheticDetector,
    summary: &ExportSummary,
) -> Result<PathBuf, DataError> {
    let dir = summary.dir.join("regions");
    fs::create_dir_all(&dir).map_err(|err| DataError::RegionIo {
        path: dir.clone(),
        reason: err.to_string(),
    })?;
    for scene in &summary.scenes {
        let mut record = detector.detect(&world.sample(scene.split, scene.index).scene);
        record.image_id = summary.format.sample_key(scene.id);
        write_npz(&dir.join(format!("{}.npz", record.image_id)), &record)?;
    }
    Ok(dir)
}

/// `image` as the bytes of a PNG file (lossless: decoding gives the same
/// pixels); an encoder error names the file `name`.
pub fn png(image: &RgbImage, name: &str) -> Result<Vec<u8>, DataError> {
    let mut bytes = Vec::new();
    PngEncoder::new(&mut bytes)
        .write_image(
            &image.pixels,
            image.width as u32,
            image.height as u32,
            ExtendedColorType::Rgb8,
        )
        .map_err(|err| DataError::DatasetWrite {
            path: PathBuf::from(name),
            reason: err.to_string(),
        })?;
    Ok(bytes)
}

/// A scene to write: its id, the world's sample of it and its render.
struct Entry {
    scene: ExportedScene,
    sample: Sample,
    pixels: RgbImage,
}

/// Writes the world's scenes in `options.format` under `dir` (created if
/// needed; existing files of the same names are replaced). Images below
/// [`MIN_IMAGE_SIZE`] pixels are an error.
pub fn export(
    world: &SyntheticWorld,
    options: &ExportOptions,
    dir: &Path,
) -> Result<ExportSummary, DataError> {
    if world.image_size < MIN_IMAGE_SIZE {
        return Err(DataError::DatasetFormat(format!(
            "image size {} is below {MIN_IMAGE_SIZE}: the world's scenes do not fit",
            world.image_size
        )));
    }
    let format = options.format;
    let mut writer = Writer::new(dir);
    let mut scenes = Vec::new();
    let mut splits = Vec::new();
    for &split in format.splits() {
        let source = match split {
            Split::Train => SyntheticSource::new(*world, split, options.scenes),
            _ => SyntheticSource::distinct(*world, split, options.held_out),
        };
        let mut entries = Vec::with_capacity(source.len());
        for &index in source.indices() {
            let scene = ExportedScene {
                id: scenes.len() as u64 + 1,
                split,
                index,
            };
            scenes.push(scene);
            entries.push(Entry {
                scene,
                sample: source.scene_sample(index),
                pixels: world.sample(split, index).image,
            });
        }
        if format != ExportFormat::WebDataset {
            for entry in &entries {
                let path = format.image_path(split, entry.scene.id);
                writer.write(&path, &png(&entry.pixels, &path)?)?;
            }
        }
        splits.push((split, entries));
    }
    for (split, entries) in &splits {
        write_split(&mut writer, format, *split, entries, options.shard_size)?;
    }
    if format == ExportFormat::Karpathy {
        write_karpathy(&mut writer, &splits)?;
    }
    Ok(ExportSummary {
        format,
        dir: dir.to_path_buf(),
        scenes,
        files: writer.files,
        bytes: writer.bytes,
    })
}

/// The annotation file (or shards) of one split.
fn write_split(
    writer: &mut Writer,
    format: ExportFormat,
    split: Split,
    entries: &[Entry],
    shard_size: usize,
) -> Result<(), DataError> {
    let s = split_name(split);
    let image = |entry: &Entry| format.image_path(split, entry.scene.id);
    match format {
        ExportFormat::Coco => {
            let images: Vec<_> = entries
                .iter()
                .map(|e| {
                    let file_name = image(e).rsplit('/').next().unwrap_or_default().to_string();
                    json!({"id": e.scene.id, "file_name": file_name,
                           "width": e.pixels.width, "height": e.pixels.height})
                })
                .collect();
            let annotations: Vec<_> = caption_rows(entries)
                .enumerate()
                .map(|(i, (e, caption))| {
                    json!({"id": i + 1, "image_id": e.scene.id, "caption": caption})
                })
                .collect();
            writer.write_json(
                &format!("annotations/captions_{s}2017.json"),
                &json!({"info": {"description": "vlp synthetic world"},
                        "images": images, "annotations": annotations}),
            )
        }
        ExportFormat::Karpathy => Ok(()),
        ExportFormat::Jsonl => {
            let mut text = String::new();
            for (e, caption) in caption_rows(entries) {
                let line = json!({"image": image(e), "caption": caption, "image_id": e.scene.id});
                text.push_str(&line.to_string());
                text.push('\n');
            }
            writer.write(&format!("{s}.jsonl"), text.as_bytes())
        }
        ExportFormat::Lavis => {
            let records: Vec<_> = if split == Split::Train {
                caption_rows(entries)
                    .map(|(e, caption)| {
                        json!({"image": image(e), "caption": caption, "image_id": e.scene.id})
                    })
                    .collect()
            } else {
                entries
                    .iter()
                    .map(|e| {
                        json!({"image": image(e), "caption": e.sample.captions,
                               "image_id": e.scene.id})
                    })
                    .collect()
            };
            writer.write_json(
                &format!("annotations/coco_karpathy_{s}.json"),
                &serde_json::Value::Array(records),
            )
        }
        ExportFormat::Csv | ExportFormat::Tsv => {
            let tsv = format == ExportFormat::Tsv;
            let mut table = csv::WriterBuilder::new()
                .delimiter(if tsv { b'\t' } else { b',' })
                .quote_style(if tsv {
                    csv::QuoteStyle::Never
                } else {
                    csv::QuoteStyle::Necessary
                })
                .from_writer(Vec::new());
            let path = format!("{s}.{}", format.name());
            let error = |err: csv::Error| DataError::DatasetWrite {
                path: PathBuf::from(&path),
                reason: err.to_string(),
            };
            if !tsv {
                table.write_record(["image", "caption"]).map_err(error)?;
            }
            for (e, caption) in caption_rows(entries) {
                let image = image(e);
                let row = if tsv {
                    [caption, image.as_str()]
                } else {
                    [image.as_str(), caption]
                };
                table.write_record(row).map_err(error)?;
            }
            let bytes = table
                .into_inner()
                .map_err(|err| error(err.into_error().into()))?;
            writer.write(&path, &bytes)
        }
        ExportFormat::WebDataset => {
            for (shard, chunk) in entries.chunks(shard_size.max(1)).enumerate() {
                let name = format!("{s}-{shard:05}.tar");
                writer.write(&name, &tar_shard(chunk, &name)?)?;
            }
            Ok(())
        }
        ExportFormat::Vqa2 => write_vqa2(writer, split, entries),
    }
}

/// Every (scene, caption) pair, scene by scene.
fn caption_rows(entries: &[Entry]) -> impl Iterator<Item = (&Entry, &str)> {
    entries
        .iter()
        .flat_map(|e| e.sample.captions.iter().map(move |c| (e, c.as_str())))
}

/// Karpathy's one file for every split.
fn write_karpathy(writer: &mut Writer, splits: &[(Split, Vec<Entry>)]) -> Result<(), DataError> {
    let mut images = Vec::new();
    let mut sentence_id = 0;
    for (split, entries) in splits {
        for e in entries {
            let imgid = images.len();
            let sentences: Vec<_> = e
                .sample
                .captions
                .iter()
                .map(|raw| {
                    sentence_id += 1;
                    let tokens: Vec<&str> = raw.split_whitespace().collect();
                    json!({"raw": raw, "tokens": tokens, "imgid": imgid, "sentid": sentence_id - 1})
                })
                .collect();
            let path = ExportFormat::Karpathy.image_path(*split, e.scene.id);
            let (filepath, filename) = path.split_once('/').unwrap_or(("", path.as_str()));
            images.push(
                json!({"filepath": filepath, "filename": filename, "imgid": imgid,
                               "cocoid": e.scene.id, "split": split_name(*split),
                               "sentences": sentences}),
            );
        }
    }
    writer.write_json(
        "dataset_coco.json",
        &json!({"dataset": "coco", "images": images}),
    )
}

/// A tar shard of `entries`: `{id:012}.png`, `.txt`, `.json` per sample.
fn tar_shard(entries: &[Entry], name: &str) -> Result<Vec<u8>, DataError> {
    let error = |err: std::io::Error| DataError::DatasetWrite {
        path: PathBuf::from(name),
        reason: err.to_string(),
    };
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        let key = format!("{:012}", e.scene.id);
        let meta = json!({"image_id": e.scene.id, "split": split_name(e.scene.split),
                          "caption": e.sample.captions});
        let members = [
            (format!("{key}.png"), png(&e.pixels, name)?),
            (
                format!("{key}.txt"),
                e.sample.captions[0].clone().into_bytes(),
            ),
            (format!("{key}.json"), meta.to_string().into_bytes()),
        ];
        for (member, bytes) in members {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_cksum();
            builder
                .append_data(&mut header, member, bytes.as_slice())
                .map_err(error)?;
        }
    }
    let mut bytes = builder.into_inner().map_err(error)?;
    bytes.flush().map_err(error)?;
    Ok(bytes)
}

/// VQA v2's questions and annotations files of one split: each question
/// has id `image_id * 1000 + q` and ten humans giving the world's answer.
fn write_vqa2(writer: &mut Writer, split: Split, entries: &[Entry]) -> Result<(), DataError> {
    let s = vqa2_split(split);
    let mut questions = Vec::new();
    let mut annotations = Vec::new();
    for e in entries {
        for (q, item) in e.sample.questions.iter().enumerate() {
            let question_id = e.scene.id * 1000 + q as u64;
            let answer = item.answer.clone().unwrap_or_default();
            let kind = item.answer_type.as_deref().unwrap_or("other");
            questions.push(json!({"image_id": e.scene.id, "question": item.question,
                                  "question_id": question_id}));
            let answers: Vec<_> = (1..=10)
                .map(|i| json!({"answer": answer, "answer_confidence": "yes", "answer_id": i}))
                .collect();
            annotations.push(json!({"question_id": question_id, "image_id": e.scene.id,
                                    "answers": answers, "multiple_choice_answer": answer,
                                    "answer_type": kind, "question_type": "what"}));
        }
    }
    writer.write_json(
        &format!("v2_OpenEnded_mscoco_{s}2014_questions.json"),
        &json!({"task_type": "Open-Ended", "data_type": "mscoco",
                "data_subtype": format!("{s}2014"), "questions": questions}),
    )?;
    writer.write_json(
        &format!("v2_mscoco_{s}2014_annotations.json"),
        &json!({"data_subtype": format!("{s}2014"), "annotations": annotations}),
    )
}

/// Every sample of `split` of a dataset that [`export`] wrote to `dir` in
/// `format`, in file order, read by that format's reader (skips counted in
/// `budget`). Images are not opened.
pub fn read_exported(
    dir: &Path,
    format: ExportFormat,
    split: Split,
    budget: &CorruptBudget,
) -> Result<Vec<Sample>, DataError> {
    let s = split_name(split);
    let list = match format {
        ExportFormat::Coco => read_coco(
            &dir.join(format!("annotations/captions_{s}2017.json")),
            &dir.join(format!("{s}2017")),
            budget,
        )?,
        ExportFormat::Karpathy => read_karpathy(
            &dir.join("dataset_coco.json"),
            dir,
            KarpathySelect::new(split),
        )?,
        ExportFormat::Jsonl => read_jsonl(&dir.join(format!("{s}.jsonl")), budget)?,
        ExportFormat::Lavis => read_lavis(
            &dir.join(format!("annotations/coco_karpathy_{s}.json")),
            dir,
        )?,
        ExportFormat::Csv | ExportFormat::Tsv => {
            let path = dir.join(format!("{s}.{}", format.name()));
            read_delimited(&path, &DelimitedOptions::for_path(&path), budget)?
        }
        ExportFormat::Vqa2 => {
            let v = vqa2_split(split);
            let options = Vqa2Options {
                split: v.to_string(),
                image_pattern: vqa2_pattern(),
            };
            read_vqa2(
                &dir.join(format!("v2_OpenEnded_mscoco_{v}2014_questions.json")),
                Some(&dir.join(format!("v2_mscoco_{v}2014_annotations.json"))),
                &dir.join(format!("{v}2014")),
                &options,
                budget,
            )?
        }
        ExportFormat::WebDataset => {
            let shards = shards_of(dir, s)?;
            return WebDataset::new(shards)
                .stream(ShardSplit::all(), WebDatasetOptions::default(), budget)?
                .collect();
        }
    };
    Ok(list.into_samples())
}

/// The shards `{split}-*.tar` in `dir`, sorted.
fn shards_of(dir: &Path, split: &str) -> Result<Vec<PathBuf>, DataError> {
    let listing = fs::read_dir(dir).map_err(|err| DataError::DatasetIo {
        path: dir.to_path_buf(),
        reason: err.to_string(),
    })?;
    let prefix = format!("{split}-");
    let mut shards: Vec<PathBuf> = listing
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".tar"))
        })
        .collect();
    shards.sort();
    Ok(shards)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{normalize_answer, test_dir, ImageRef};
    use crate::synthetic::{caption, NUM_PHRASINGS};
    use std::collections::BTreeMap;

    /// The id an exported sample's image name carries (`.../000000000003.png`).
    fn id_of(sample: &Sample) -> u64 {
        let name = match &sample.image {
            ImageRef::File(path) => path.to_string_lossy().into_owned(),
            ImageRef::Bytes { name, .. } => name.clone(),
            ImageRef::Pixels(_) => panic!("exported samples name files"),
        };
        let stem = name.rsplit('/').next().unwrap().trim_end_matches(".png");
        stem[stem.len() - 12..].parse().unwrap()
    }

    fn decoded(sample: &Sample) -> Vec<u8> {
        let bytes = match &sample.image {
            ImageRef::File(path) => fs::read(path).unwrap(),
            ImageRef::Bytes { bytes, .. } => bytes.clone(),
            ImageRef::Pixels(_) => panic!("exported samples name files"),
        };
        image::load_from_memory(&bytes)
            .unwrap()
            .to_rgb8()
            .into_raw()
    }

    #[test]
    fn every_format_reads_back_the_worlds_scenes() {
        let world = SyntheticWorld::new(5, 32);
        for format in ExportFormat::ALL {
            let dir = test_dir(&format!("roundtrip-{format}"));
            let options = ExportOptions {
                scenes: 3,
                held_out: 2,
                shard_size: 2,
                ..ExportOptions::new(format)
            };
            let summary = export(&world, &options, &dir).unwrap();
            assert_eq!(summary.scenes.len(), 3 + 2 * (format.splits().len() - 1));
            for &split in format.splits() {
                let budget = CorruptBudget::new(crate::source::SkipLimit::count(0));
                let samples = read_exported(&dir, format, split, &budget).unwrap();
                // Samples of one image (one per caption in line formats), in order.
                let mut by_id: BTreeMap<u64, Vec<&Sample>> = BTreeMap::new();
                for sample in &samples {
                    by_id.entry(id_of(sample)).or_default().push(sample);
                }
                let expected: Vec<&ExportedScene> =
                    summary.scenes.iter().filter(|s| s.split == split).collect();
                let ids: Vec<u64> = expected.iter().map(|s| s.id).collect();
                assert_eq!(by_id.keys().copied().collect::<Vec<_>>(), ids, "{format}");
                for scene in expected {
                    let world_sample = world.sample(split, scene.index);
                    let read = &by_id[&scene.id];
                    let at = format!("{format} {split:?} id {}", scene.id);
                    assert_eq!(decoded(read[0]), world_sample.image.pixels, "{at}");
                    if !matches!(format, ExportFormat::Csv | ExportFormat::Tsv) {
                        let key = read[0].key.trim_start_matches('0');
                        assert_eq!(key, scene.id.to_string(), "{at}");
                    }
                    if format == ExportFormat::Vqa2 {
                        let world_questions = world.questions(split, scene.index);
                        let questions = &read[0].questions;
                        assert_eq!(questions.len(), world_questions.len(), "{at}");
                        for (q, world_q) in questions.iter().zip(&world_questions) {
                            let answer = normalize_answer(&world_q.answer);
                            assert_eq!(q.question, world_q.question, "{at}");
                            assert_eq!(q.answer.as_deref(), Some(answer.as_str()), "{at}");
                            assert_eq!(q.answers, vec![answer; 10], "{at}");
                        }
                        continue;
                    }
                    let captions: Vec<&String> = read.iter().flat_map(|s| &s.captions).collect();
                    let world_captions: Vec<String> = (0..NUM_PHRASINGS)
                        .map(|p| caption(&world_sample.scene, p))
                        .collect();
                    assert_eq!(captions, world_captions.iter().collect::<Vec<_>>(), "{at}");
                }
            }
            fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn shards_hold_the_configured_number_of_samples() {
        let dir = test_dir("shard-size");
        let options = ExportOptions {
            scenes: 5,
            held_out: 1,
            shard_size: 2,
            ..ExportOptions::new(ExportFormat::WebDataset)
        };
        let summary = export(&SyntheticWorld::new(1, 32), &options, &dir).unwrap();
        // 3 train shards (2 + 2 + 1), one val, one test.
        assert_eq!(summary.files, 5);
        assert_eq!(shards_of(&dir, "train").unwrap().len(), 3);
        assert!(summary
            .to_string()
            .starts_with("exported 7 scenes (5 train, 1 val, 1 test)"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn format_names_parse() {
        for format in ExportFormat::ALL {
            assert_eq!(format.name().parse::<ExportFormat>().unwrap(), format);
        }
        let tiny = export(
            &SyntheticWorld::new(0, 8),
            &ExportOptions::new(ExportFormat::Coco),
            Path::new("unused"),
        );
        assert!(tiny.unwrap_err().to_string().contains("image size 8"));
        let error = "parquet".parse::<ExportFormat>().unwrap_err().to_string();
        assert!(
            error.contains("parquet") && error.contains("webdataset"),
            "{error}"
        );
    }
}
