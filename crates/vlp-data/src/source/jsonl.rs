//! JSON Lines caption manifests (the one-object-per-line form of the
//! `{"image", "caption"}` records that BLIP/LAVIS and open_clip users
//! write): one image-caption pair per line.

use std::path::Path;

use serde::Deserialize;

use super::{
    captioned, folder_of, id_text, read_bytes, resolve, Captions, CorruptBudget, SampleList,
};
use crate::DataError;

#[derive(Deserialize)]
struct JsonlRecord {
    image: String,
    caption: Captions,
    #[serde(default)]
    image_id: Option<serde_json::Value>,
}

/// One sample per non-empty line `{"image": path, "caption": text}` (an
/// optional `image_id` becomes the key, else the image path; `caption` may
/// also be a list). Image paths are relative to the file's folder. A line
/// that does not parse is skipped and counted in `budget` with its line
/// number.
pub fn read_jsonl(path: &Path, budget: &CorruptBudget) -> Result<SampleList, DataError> {
    let bytes = read_bytes(path)?;
    let root = folder_of(path);
    let mut samples = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<JsonlRecord>(line) {
            Ok(record) => {
                let key = record
                    .image_id
                    .as_ref()
                    .map_or_else(|| record.image.clone(), id_text);
                samples.push(captioned(
                    key,
                    resolve(root, &record.image),
                    record.caption.into_vec(),
                ));
            }
            Err(err) => budget.skip(format!("{} line {}: {err}", path.display(), i + 1))?,
        }
    }
    Ok(SampleList::new(path.to_path_buf(), samples))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{SampleSource, SkipLimit};

    #[test]
    fn a_bad_line_is_skipped_with_its_number() {
        let dir = crate::source::test_dir("jsonl-bad-line");
        let path = dir.join("pairs.jsonl");
        let lines = [
            r#"{"image": "a.png", "caption": "one"}"#,
            "",
            r#"{"image": "b.png", "captoin": "two"}"#,
            r#"{"image": "c.png", "caption": ["three", "four"], "image_id": 7}"#,
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        let budget = CorruptBudget::default();
        let list = read_jsonl(&path, &budget).unwrap();
        assert_eq!(list.len(), 2);
        let last = list.get(1).unwrap();
        assert_eq!((last.key.as_str(), last.captions.len()), ("7", 2));
        assert_eq!(last.image.path().unwrap(), dir.join("c.png"));
        let report = budget.report();
        assert_eq!(report.skipped, 1);
        assert!(
            report.reasons[0].contains("pairs.jsonl line 3"),
            "{report:?}"
        );
        assert!(report.reasons[0].contains("caption"), "{report:?}");
        // With no skips allowed, the error names line 3.
        let error = read_jsonl(&path, &CorruptBudget::new(SkipLimit::count(0))).unwrap_err();
        assert!(error.to_string().contains("line 3"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
