//! `data check` (issue 15): every sample's annotation read and its image
//! decoded (in parallel), every problem named with its path (and line, key
//! or member): a missing, empty, truncated or corrupt image, an annotation
//! that points at no image, a malformed record.

use std::collections::HashSet;
use std::path::Path;

use rayon::prelude::*;

use super::synthetic::split_name;
use super::{
    read_exported, CorruptBudget, DatasetSpec, ExportFormat, ImageRef, OpenedDataset, Sample,
    ShardSplit, WebDatasetOptions,
};
use crate::image::{decode, decode_file};
use crate::regions::{open_regions, region_record, SharedRegions};
use crate::synthetic::Split;
use crate::DataError;

/// What [`check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Samples read, over every split present.
    pub samples: usize,
    /// Distinct images looked at.
    pub images: usize,
    /// The splits present, with their sample counts.
    pub splits: Vec<(String, usize)>,
    /// Every problem, each naming its file and line, key or member.
    pub problems: Vec<String>,
}

/// `N samples (train N, val N), N images, N problems`.
impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let splits: Vec<String> = self
            .splits
            .iter()
            .map(|(split, count)| format!("{split} {count}"))
            .collect();
        write!(
            f,
            "{} samples ({}), {} images, {} problems",
            self.samples,
            splits.join(", "),
            self.images,
            self.problems.len()
        )
    }
}

/// Why the image of `sample` cannot be used, if it cannot: the file is
/// missing or empty, or it does not decode (truncated, corrupt, not an
/// image, too large).
fn image_problem(sample: &Sample) -> Option<String> {
    let key = &sample.key;
    let decoded = match &sample.image {
        ImageRef::File(path) => match std::fs::metadata(path) {
            Err(err) => return Some(format!("sample {key}: image {}: {err}", path.display())),
            Ok(meta) if meta.len() == 0 => {
                return Some(format!("sample {key}: image {} is empty", path.display()))
            }
            Ok(_) => decode_file(path),
        },
        ImageRef::Bytes { name, bytes } if bytes.is_empty() => {
            return Some(format!("sample {key}: image {name} is empty"))
        }
        ImageRef::Bytes { name, bytes } => decode(bytes, name),
        ImageRef::Pixels(_) => return None,
    };
    decoded.err().map(|err| format!("sample {key}: {err}"))
}

/// The problems of `sample`: its image's, and its region record's when the
/// dataset has region features (missing or undecodable).
fn problems(sample: &Sample, regions: Option<&SharedRegions>) -> Vec<String> {
    let record = regions.and_then(|regions| region_record(regions.as_ref(), &sample.key).err());
    let record = record.map(|err| format!("sample {}: {err}", sample.key));
    image_problem(sample).into_iter().chain(record).collect()
}

impl CheckReport {
    /// Adds `samples` of split `name` (skips counted in `budget`) and the
    /// problems of the images not seen before.
    fn add(
        &mut self,
        name: &str,
        samples: &[Sample],
        budget: &CorruptBudget,
        seen: &mut HashSet<String>,
        regions: Option<&SharedRegions>,
    ) {
        self.splits.push((name.to_string(), samples.len()));
        self.samples += samples.len();
        self.problems.extend(budget.report().reasons);
        let new: Vec<&Sample> = samples
            .iter()
            .filter(|sample| seen.insert(sample.image.describe()))
            .collect();
        self.images += new.len();
        let problems: Vec<Vec<String>> = new.par_iter().map(|s| problems(s, regions)).collect();
        self.problems.extend(problems.into_iter().flatten());
    }
}

/// Checks the dataset `spec` names (`data check --format F --annotations
/// FILE --images DIR`, or `--shards`): its training split (every split of
/// a Karpathy file), each record parsed and each image decoded, and each
/// image's region record read when the spec names `regions`.
///
/// # Errors
/// A file that cannot be opened or is not the format.
pub fn check_spec(spec: &DatasetSpec) -> Result<CheckReport, DataError> {
    let regions = spec.regions.as_deref().map(open_regions).transpose()?;
    let regions = regions.as_ref();
    let mut report = CheckReport::default();
    let mut seen = HashSet::new();
    let splits: &[Split] = match spec.format {
        ExportFormat::Karpathy => &[Split::Train, Split::Val, Split::Test],
        _ => &[Split::Train],
    };
    for &split in splits {
        let budget = CorruptBudget::unlimited();
        let name = match spec.format {
            ExportFormat::Karpathy => split_name(split),
            _ => "all",
        };
        match spec.open(split, &budget) {
            Ok(OpenedDataset::Indexed(source)) => {
                let samples = (0..source.len())
                    .map(|i| source.get(i))
                    .collect::<Result<Vec<_>, _>>()?;
                report.add(name, &samples, &budget, &mut seen, regions);
            }
            Ok(OpenedDataset::Shards(shards)) => {
                // Streamed in chunks: memory stays that of one chunk
                // whatever the number of samples (members are unique, so
                // nothing is remembered between chunks).
                const CHUNK: usize = 256;
                let mut stream =
                    shards.stream(ShardSplit::all(), WebDatasetOptions::default(), &budget)?;
                let mut count = 0;
                loop {
                    let chunk = stream.by_ref().take(CHUNK).collect::<Result<Vec<_>, _>>()?;
                    if chunk.is_empty() {
                        break;
                    }
                    count += chunk.len();
                    report.samples += chunk.len();
                    report.images += chunk.len();
                    let problems: Vec<Vec<String>> =
                        chunk.par_iter().map(|s| problems(s, regions)).collect();
                    report.problems.extend(problems.into_iter().flatten());
                }
                report.problems.extend(budget.report().reasons);
                report.splits.push((name.to_string(), count));
            }
            // A Karpathy file without images of one split.
            Err(DataError::DatasetFormat(_)) if splits.len() > 1 => continue,
            Err(err) => return Err(err),
        }
    }
    Ok(report)
}

/// Checks the dataset in `dir`, laid out as [`super::export`] writes
/// `format`: for each split whose annotation file (or shards) is there,
/// every record is parsed and every image file must exist and be
/// non-empty. A split whose file does not parse is a problem; no split at
/// all is an error naming the folder.
pub fn check(dir: &Path, format: ExportFormat) -> Result<CheckReport, DataError> {
    let mut report = CheckReport::default();
    let mut seen = HashSet::new();
    for &split in format.splits() {
        let budget = CorruptBudget::unlimited();
        let samples = match read_exported(dir, format, split, &budget) {
            Ok(samples) => samples,
            Err(DataError::DatasetIo { .. }) => continue,
            Err(err) => {
                report.problems.push(err.to_string());
                continue;
            }
        };
        let name = split_name(split);
        if format == ExportFormat::WebDataset && samples.is_empty() && budget.report().skipped == 0
        {
            continue;
        }
        report.add(name, &samples, &budget, &mut seen, None);
    }
    if report.splits.is_empty() && report.problems.is_empty() {
        return Err(DataError::DatasetFormat(format!(
            "{} holds no {format} dataset (no annotation file or shard of a train, val or test split)",
            dir.display()
        )));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{export, test_dir, ExportOptions};
    use crate::synthetic::SyntheticWorld;

    #[test]
    fn check_names_a_missing_an_empty_image_and_a_dangling_caption() {
        let dir = test_dir("check");
        let options = ExportOptions {
            scenes: 3,
            held_out: 1,
            ..ExportOptions::new(ExportFormat::Coco)
        };
        export(&SyntheticWorld::new(0, 32), &options, &dir).unwrap();
        assert_eq!(
            check(&dir, ExportFormat::Coco).unwrap().problems,
            Vec::<String>::new()
        );
        std::fs::remove_file(dir.join("train2017/000000000001.png")).unwrap();
        std::fs::write(dir.join("train2017/000000000002.png"), b"").unwrap();
        let annotations = dir.join("annotations/captions_val2017.json");
        let text = std::fs::read_to_string(&annotations).unwrap();
        std::fs::write(
            &annotations,
            text.replace("\"image_id\":4", "\"image_id\":99"),
        )
        .unwrap();
        let report = check(&dir, ExportFormat::Coco).unwrap();
        assert_eq!(report.problems.len(), 2 + 4, "{:?}", report.problems);
        let all = report.problems.join("\n");
        assert!(all.contains("000000000001.png: No such file"), "{all}");
        assert!(all.contains("000000000002.png is empty"), "{all}");
        assert!(
            all.contains("captions_val2017.json annotations[0] (id 1): image 99"),
            "{all}"
        );
        let error = check(&dir.join("train2017"), ExportFormat::Coco).unwrap_err();
        assert!(
            error.to_string().contains("holds no coco dataset"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn checking_files_by_name_finds_a_truncated_jpeg_a_missing_file_and_a_dangling_annotation() {
        let dir = test_dir("check-spec");
        let options = ExportOptions {
            scenes: 4,
            held_out: 1,
            ..ExportOptions::new(ExportFormat::Coco)
        };
        export(&SyntheticWorld::new(0, 32), &options, &dir).unwrap();
        let images = dir.join("train2017");
        // Image 3 becomes a JPEG cut in half.
        let pixels = crate::image::decode_file(&images.join("000000000003.png")).unwrap();
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .encode(&pixels.pixels, 32, 32, image::ExtendedColorType::Rgb8)
            .unwrap();
        std::fs::write(images.join("000000000003.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
        std::fs::remove_file(images.join("000000000001.png")).unwrap();
        let annotations = dir.join("annotations/captions_train2017.json");
        let text = std::fs::read_to_string(&annotations).unwrap();
        let text = text
            .replace("000000000003.png", "000000000003.jpg")
            .replacen("\"image_id\":2", "\"image_id\":77", 1);
        std::fs::write(&annotations, text).unwrap();
        let spec = DatasetSpec {
            annotations: Some(annotations),
            images: Some(images),
            ..DatasetSpec::new(ExportFormat::Coco)
        };
        let report = check_spec(&spec).unwrap();
        let all = report.problems.join("\n");
        assert_eq!(report.problems.len(), 3, "{all}");
        assert!(all.contains("000000000003.jpg"), "{all}");
        assert!(all.contains("000000000001.png: No such file"), "{all}");
        assert!(all.contains("image 77"), "{all}");
        assert_eq!(report.images, 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Every sample's key finds its region record in the folder that
    /// `export_regions` writes, in every layout (image ids, file stems,
    /// WebDataset keys); a missing record is a problem naming the sample.
    #[test]
    fn exported_region_features_are_found_by_each_format_s_keys() {
        use crate::regions::{open_regions, region_record};
        use crate::source::export_regions;
        use crate::synthetic::{DetectorConfig, SyntheticDetector};
        let world = SyntheticWorld::new(2, 32);
        let detector = SyntheticDetector::new(2, DetectorConfig::default());
        for format in [
            ExportFormat::Coco,
            ExportFormat::Csv,
            ExportFormat::WebDataset,
        ] {
            let dir = test_dir(&format!("regions-{format}"));
            let options = ExportOptions {
                scenes: 6,
                held_out: 1,
                shard_size: 4,
                ..ExportOptions::new(format)
            };
            let summary = export(&world, &options, &dir).unwrap();
            let regions = export_regions(&world, &detector, &summary).unwrap();
            let source = open_regions(&regions).unwrap();
            let budget = CorruptBudget::unlimited();
            let samples = read_exported(&dir, format, Split::Train, &budget).unwrap();
            assert!(samples.len() >= 6, "{format}");
            for sample in &samples {
                let record = region_record(source.as_ref(), &sample.key).unwrap();
                // Every layout's key ends in the scene id (1, 2, ...).
                let stem = Path::new(&sample.key)
                    .file_stem()
                    .unwrap()
                    .to_str()
                    .unwrap();
                let scene = summary.scenes[stem.parse::<usize>().unwrap() - 1];
                let expected = detector.detect(&world.sample(scene.split, scene.index).scene);
                assert_eq!(
                    record.features, expected.features,
                    "{format} {}",
                    sample.key
                );
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
        let dir = test_dir("regions-check");
        let options = ExportOptions {
            scenes: 3,
            held_out: 1,
            ..ExportOptions::new(ExportFormat::Coco)
        };
        let summary = export(&world, &options, &dir).unwrap();
        let regions = export_regions(&world, &detector, &summary).unwrap();
        std::fs::remove_file(regions.join("2.npz")).unwrap();
        let spec = DatasetSpec {
            annotations: Some(dir.join("annotations/captions_train2017.json")),
            images: Some(dir.join("train2017")),
            regions: Some(regions),
            ..DatasetSpec::new(ExportFormat::Coco)
        };
        let report = check_spec(&spec).unwrap();
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(
            report.problems[0].starts_with("sample 2: "),
            "{:?}",
            report.problems
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
