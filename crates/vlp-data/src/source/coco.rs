//! COCO Captions (Chen et al. 2015, "Microsoft COCO Captions"):
//! `captions_{train,val}2017.json` lists the images and, separately, the
//! captions (about five per image) pointing at them by `image_id`.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{captioned, read_json, CorruptBudget, SampleList};
use crate::DataError;

#[derive(Deserialize)]
struct CocoFile {
    images: Vec<CocoImage>,
    annotations: Vec<CocoCaption>,
}

#[derive(Deserialize)]
struct CocoImage {
    id: u64,
    file_name: String,
}

#[derive(Deserialize)]
struct CocoCaption {
    #[serde(default)]
    id: Option<u64>,
    image_id: u64,
    caption: String,
}

/// The images of a COCO captions file with their captions, in the file's
/// image order, images under `images` (the folder holding `file_name`s).
/// A caption pointing at an image the file does not list is skipped and
/// counted in `budget`; images without a caption are left out. A file that
/// does not parse (or lacks a key) is an error naming the file and the key.
pub fn read_coco(
    annotations: &Path,
    images: &Path,
    budget: &CorruptBudget,
) -> Result<SampleList, DataError> {
    let file: CocoFile = read_json(annotations)?;
    let position: HashMap<u64, usize> = file
        .images
        .iter()
        .enumerate()
        .map(|(i, image)| (image.id, i))
        .collect();
    let mut captions = vec![Vec::new(); file.images.len()];
    for (i, annotation) in file.annotations.into_iter().enumerate() {
        match position.get(&annotation.image_id) {
            Some(&at) => captions[at].push(annotation.caption),
            None => budget.skip(format!(
                "{} annotations[{i}] (id {}): image {} is not in the file's images",
                annotations.display(),
                annotation
                    .id
                    .map_or("none".to_string(), |id| id.to_string()),
                annotation.image_id
            ))?,
        }
    }
    let samples = file
        .images
        .into_iter()
        .zip(captions)
        .filter(|(_, captions)| !captions.is_empty())
        .map(|(image, captions)| {
            captioned(
                image.id.to_string(),
                images.join(&image.file_name),
                captions,
            )
        })
        .collect();
    Ok(SampleList::new(annotations.to_path_buf(), samples))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{test_dir, SampleSource, SkipLimit};

    #[test]
    fn captions_gather_per_image_and_dangling_ones_are_counted() {
        let dir = test_dir("coco");
        let path = dir.join("captions_val2017.json");
        let text = r#"{"images": [{"id": 9, "file_name": "a.jpg"}, {"id": 4, "file_name": "b.jpg"},
                                  {"id": 5, "file_name": "uncaptioned.jpg"}],
                       "annotations": [{"id": 1, "image_id": 4, "caption": "b one"},
                                       {"id": 2, "image_id": 9, "caption": "a one"},
                                       {"id": 3, "image_id": 77, "caption": "nobody's"},
                                       {"id": 4, "image_id": 4, "caption": "b two"}]}"#;
        std::fs::write(&path, text).unwrap();
        let budget = CorruptBudget::default();
        let list = read_coco(&path, &dir.join("val2017"), &budget).unwrap();
        assert_eq!(list.len(), 2);
        let b = list.get(1).unwrap();
        assert_eq!(
            (b.key.as_str(), b.captions.clone()),
            ("4", vec!["b one".into(), "b two".into()])
        );
        assert_eq!(b.image.path().unwrap(), dir.join("val2017/b.jpg"));
        let reasons = budget.report().reasons;
        assert!(
            reasons[0].contains("annotations[2] (id 3): image 77"),
            "{reasons:?}"
        );
        let strict = CorruptBudget::new(SkipLimit::count(0));
        assert!(read_coco(&path, &dir, &strict).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_key_names_the_key_and_the_file() {
        let dir = test_dir("coco-missing-key");
        let path = dir.join("captions_train2017.json");
        std::fs::write(
            &path,
            r#"{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 1}]}"#,
        )
        .unwrap();
        let error = read_coco(&path, &dir, &CorruptBudget::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("captions_train2017.json"), "{error}");
        assert!(error.contains("missing field `caption`"), "{error}");
        let missing = read_coco(&dir.join("nope.json"), &dir, &CorruptBudget::default());
        assert!(missing.unwrap_err().to_string().contains("nope.json"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
