//! `data check` (issue 15): every sample's annotation read and its image
//! file looked at, every problem named with its path (and line, key or
//! member). Images are not decoded here; the image pipeline does that.

use std::collections::HashSet;
use std::path::Path;

use super::synthetic::split_name;
use super::{read_exported, CorruptBudget, ExportFormat, ImageRef, Sample};
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

/// Why the image of `sample` cannot be used, if it cannot.
fn image_problem(sample: &Sample) -> Option<String> {
    let key = &sample.key;
    match &sample.image {
        ImageRef::File(path) => match std::fs::metadata(path) {
            Err(err) => Some(format!("sample {key}: image {}: {err}", path.display())),
            Ok(meta) if meta.len() == 0 => {
                Some(format!("sample {key}: image {} is empty", path.display()))
            }
            Ok(_) => None,
        },
        ImageRef::Bytes { name, bytes } if bytes.is_empty() => {
            Some(format!("sample {key}: image {name} is empty"))
        }
        _ => None,
    }
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
        report.splits.push((name.to_string(), samples.len()));
        report.samples += samples.len();
        report.problems.extend(budget.report().reasons);
        for sample in &samples {
            if seen.insert(sample.image.describe()) {
                report.images += 1;
                report.problems.extend(image_problem(sample));
            }
        }
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
}
